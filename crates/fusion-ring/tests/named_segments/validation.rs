//! What opening validates: files that are not rings (tiny, zeroed, random,
//! wrong magic), rings with a header field changed (layout version,
//! capacity) or their file truncated, and descriptors adopted with
//! `from_fd` (not a ring, read-only). Each is refused with the error that
//! names the segment, and a restored file opens again with its message.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use fusion_ring::{Config, CorruptError, PriorityClass, RingError, UltraFastRing, INLINE_MAX};
use testkit::names::ShmName;

use crate::open_err;

// ---------------------------------------------------------------------------
// Helpers

/// Asserts `err` is `Corrupt` for `segment`, that its Display names the
/// segment, and returns what it says is wrong.
fn expect_corrupt(err: RingError, segment: &str) -> String {
    let text = err.to_string();
    match err {
        RingError::Corrupt(CorruptError { segment: s, what }) => {
            assert_eq!(s, segment, "segment of {text:?}");
            assert!(text.contains(segment), "{text:?} does not name {segment}");
            what
        }
        other => panic!("expected Corrupt for {segment}, got {other:?} ({other})"),
    }
}

/// A named ring of `capacity` that outlives its creator, holding one
/// message ("kept"); returns the file's length.
fn make_kept_ring(name: &ShmName, capacity: usize) -> u64 {
    let ring = UltraFastRing::create(name.name(), &Config::new(capacity).unlink_on_drop(false))
        .expect("create");
    ring.send_fast(b"kept", PriorityClass::Normal)
        .expect("send");
    drop(ring);
    fs::metadata(name.path()).expect("segment file").len()
}

fn read_u64(name: &ShmName, offset: u64) -> u64 {
    let file = fs::File::open(name.path()).expect("open file");
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, offset).expect("read");
    u64::from_le_bytes(b)
}

fn patch(name: &ShmName, offset: u64, bytes: &[u8]) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .expect("open file for writing");
    file.write_all_at(bytes, offset).expect("patch");
}

/// Opens a ring and receives the "kept" message from it: the file is a
/// good ring.
fn assert_opens_with_kept_message(name: &ShmName) {
    let ring = UltraFastRing::open(name.name())
        .unwrap_or_else(|e| panic!("pristine ring does not open: {e}"));
    let mut buf = [0u8; INLINE_MAX];
    let (len, prio, _) = ring.recv_fast(&mut buf).expect("kept message");
    assert_eq!((&buf[..len], prio), (&b"kept"[..], PriorityClass::Normal));
    // Put it back for the next opener.
    ring.send_fast(b"kept", PriorityClass::Normal)
        .expect("send");
}

/// Deterministic pseudo-random bytes (none of them a valid header).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Hostile files

#[test]
fn open_of_tiny_file_is_corrupt() {
    let name = ShmName::new("fr-seg-tiny");
    fs::write(name.path(), [0xAB; 10]).unwrap();
    let what = expect_corrupt(open_err(&name), &name.label());
    assert!(what.contains("10 bytes"), "{what}");
    fs::write(name.path(), []).unwrap();
    expect_corrupt(open_err(&name), &name.label());
}

#[test]
fn open_of_zero_filled_file_is_corrupt_not_initialised() {
    let name = ShmName::new("fr-seg-zeros");
    fs::write(name.path(), vec![0u8; 8192]).unwrap();
    let start = Instant::now();
    let what = expect_corrupt(open_err(&name), &name.label());
    let waited = start.elapsed();
    assert!(what.contains("not initialised"), "{what}");
    assert!(waited < Duration::from_secs(5), "open waited {waited:?}");
}

#[test]
fn open_of_wrong_magic_is_corrupt() {
    let name = ShmName::new("fr-seg-magic");
    let mut bytes = noise(3 * 4096);
    bytes[..8].copy_from_slice(b"NOTARING");
    fs::write(name.path(), &bytes).unwrap();
    let what = expect_corrupt(open_err(&name), &name.label());
    assert!(what.contains("magic"), "{what}");

    // A real ring with only the magic changed.
    let ring_name = ShmName::new("fr-seg-magic2");
    make_kept_ring(&ring_name, 8);
    let magic = read_u64(&ring_name, 0);
    patch(&ring_name, 0, &(magic ^ 0x0100).to_le_bytes());
    let what = expect_corrupt(open_err(&ring_name), &ring_name.label());
    assert!(what.contains("magic"), "{what}");
    patch(&ring_name, 0, &magic.to_le_bytes());
    assert_opens_with_kept_message(&ring_name);
}

#[test]
fn open_of_other_layout_version_is_version_mismatch() {
    let name = ShmName::new("fr-seg-version");
    make_kept_ring(&name, 8);
    let file = fs::File::open(name.path()).unwrap();
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, 8).unwrap();
    let expected = u32::from_le_bytes(b);
    for found in [expected + 1, 0, u32::MAX] {
        patch(&name, 8, &found.to_le_bytes());
        let err = open_err(&name);
        assert!(err.to_string().contains(name.name()), "{err}");
        assert_eq!(
            err,
            RingError::VersionMismatch {
                segment: name.label(),
                found,
                expected,
            }
        );
    }
    patch(&name, 8, &expected.to_le_bytes());
    assert_opens_with_kept_message(&name);
}

#[test]
fn open_with_changed_capacity_field_is_corrupt() {
    let name = ShmName::new("fr-seg-capacity");
    make_kept_ring(&name, 1024);
    assert_eq!(read_u64(&name, 32), 1024);
    for bad in [3u64, 2048, 1 << 24, 1 << 30, 0, 512, u64::MAX] {
        patch(&name, 32, &bad.to_le_bytes());
        let what = expect_corrupt(open_err(&name), &name.label());
        assert!(!what.is_empty(), "capacity {bad}");
    }
    patch(&name, 32, &1024u64.to_le_bytes());
    assert_opens_with_kept_message(&name);
}

/// A capacity field raised to the next power of two while every region
/// offset and the total size stay the same (small rings: the slot array
/// still ends inside the same page).
#[test]
fn open_with_capacity_field_changed_within_the_same_pages_is_corrupt() {
    let name = ShmName::new("fr-seg-capsame");
    make_kept_ring(&name, 8);
    let mut accepted = Vec::new();
    for bad in [16u64, 4] {
        patch(&name, 32, &bad.to_le_bytes());
        match UltraFastRing::open(name.name()) {
            Err(e) => {
                expect_corrupt(e, &name.label());
            }
            Ok(ring) => accepted.push((bad, ring.as_ring().capacity())),
        }
    }
    patch(&name, 32, &8u64.to_le_bytes());
    assert_opens_with_kept_message(&name);
    assert!(
        accepted.is_empty(),
        "a ring created with capacity 8 opened with the header's capacity changed to: {accepted:?} \
         (header capacity, capacity of the opened ring)"
    );
}

#[test]
fn open_of_truncated_file_is_corrupt() {
    let name = ShmName::new("fr-seg-trunc");
    let len = make_kept_ring(&name, 1024);
    assert_opens_with_kept_message(&name);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let what = expect_corrupt(open_err(&name), &name.label());
    assert!(what.contains("truncated"), "{what}");
    assert!(what.contains(&(len / 2).to_string()), "{what}");
}

// ---------------------------------------------------------------------------
// Adopted file descriptors

#[test]
fn from_fd_of_a_non_ring_file_is_corrupt() {
    // A temporary file with random bytes.
    let path = std::env::temp_dir().join(format!("fr-err-{}-noise", std::process::id()));
    fs::write(&path, noise(64 * 1024)).unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    fs::remove_file(&path).unwrap();
    let fd = OwnedFd::from(file);
    let label = format!("fd {}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let what = expect_corrupt(UltraFastRing::from_fd(fd).unwrap_err(), &label);
    assert!(what.contains("magic"), "{what}");

    // A memfd: random bytes, then an empty one.
    for len in [64 * 1024, 0] {
        let fd = rustix::fs::memfd_create("not-a-ring", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let file = fs::File::from(fd);
        file.write_all_at(&noise(len), 0).unwrap();
        let fd = OwnedFd::from(file);
        let label = format!("fd {}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        expect_corrupt(UltraFastRing::from_fd(fd).unwrap_err(), &label);
    }
}

#[test]
fn from_fd_of_a_read_only_descriptor_is_io_error() {
    let name = ShmName::new("fr-seg-rdonly");
    let ring = UltraFastRing::create(name.name(), &Config::new(8)).unwrap();
    let fd = OwnedFd::from(fs::File::open(name.path()).unwrap());
    match UltraFastRing::from_fd(fd) {
        Err(RingError::Io { source, .. }) => assert_eq!(source.raw_os_error(), libc::EACCES),
        other => panic!("expected Io(EACCES), got {other:?}"),
    }
    // The ring is unaffected.
    ring.send_fast(b"ok", PriorityClass::Normal).unwrap();
    assert_eq!(ring.recv_fast(&mut [0u8; 2]).unwrap().0, 2);
}
