//! Every error the API promises: the exact variant, and that nothing was
//! lost or changed by the failed call.

#![cfg(not(fusion_ring_loom))]

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fusion_ring::{
    remove_named, Config, CorruptError, InlineMessage, PriorityClass, RingError, UltraFastRing,
    INLINE_MAX,
};

// ---------------------------------------------------------------------------
// Helpers

/// A unique `/dev/shm` name; whatever file has that name is removed on drop.
struct ShmName {
    name: String,
}

impl ShmName {
    fn new(test: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "fr-err-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ShmName { name }
    }

    /// The name as the API takes it.
    fn name(&self) -> &str {
        &self.name
    }

    /// The normalised form the errors carry.
    fn label(&self) -> String {
        format!("/{}", self.name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(&self.name)
    }

    fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path());
    }
}

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

fn open_err(name: &ShmName) -> RingError {
    match UltraFastRing::open(name.name()) {
        Ok(ring) => panic!("open of {} succeeded: {ring:?}", name.label()),
        Err(e) => e,
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

fn snapshot(ring: &UltraFastRing) -> (fusion_ring::RingStats, usize, fusion_ring::UltraStats) {
    (ring.as_ring().stats(), ring.as_ring().len(), ring.stats())
}

// ---------------------------------------------------------------------------
// Message size and buffers

#[test]
fn send_fast_of_41_bytes_is_too_large_and_changes_nothing() {
    let ring = UltraFastRing::new(8).unwrap();
    ring.send_fast(b"queued before", PriorityClass::High)
        .unwrap();
    let before = snapshot(&ring);

    let err = ring
        .send_fast(&[7u8; 41], PriorityClass::Normal)
        .unwrap_err();
    assert_eq!(err, RingError::TooLarge { len: 41, max: 40 });
    assert!(err.to_string().contains("41"), "{err}");
    assert_eq!(
        ring.send_fast(&[7u8; 4096], PriorityClass::Normal)
            .unwrap_err(),
        RingError::TooLarge { len: 4096, max: 40 }
    );
    assert_eq!(snapshot(&ring), before);

    // 40 bytes is fine.
    ring.send_fast(&[9u8; 40], PriorityClass::Low).unwrap();
    let mut buf = [0u8; 64];
    let (len, prio, _) = ring.recv_fast(&mut buf).unwrap();
    assert_eq!(
        (&buf[..len], prio),
        (&b"queued before"[..], PriorityClass::High)
    );
    let (len, prio, _) = ring.recv_fast(&mut buf).unwrap();
    assert_eq!((&buf[..len], prio), (&[9u8; 40][..], PriorityClass::Low));
    assert_eq!(ring.recv_fast(&mut buf), Err(RingError::Empty));
}

#[test]
fn recv_into_short_buffer_is_buffer_too_small_and_keeps_the_message() {
    let ring = UltraFastRing::new(8).unwrap();
    let message: Vec<u8> = (0..30u8).map(|b| b.wrapping_mul(41) ^ 0x5a).collect();
    ring.send_fast(&message, PriorityClass::RealTime).unwrap();
    ring.send_fast(b"second", PriorityClass::Background)
        .unwrap();
    let before = snapshot(&ring);

    for got in [0usize, 1, 10, 29] {
        let mut small = vec![0xEEu8; got];
        assert_eq!(
            ring.recv_fast(&mut small),
            Err(RingError::BufferTooSmall { needed: 30, got }),
            "buffer of {got}"
        );
        assert!(
            small.iter().all(|&b| b == 0xEE),
            "a failed receive wrote into the buffer"
        );
        assert_eq!(snapshot(&ring), before, "a failed receive changed the ring");
    }

    // Exactly the message's length is enough.
    let mut exact = [0u8; 30];
    let (len, prio, _) = ring.recv_fast(&mut exact).unwrap();
    assert_eq!(
        (&exact[..len], prio),
        (&message[..], PriorityClass::RealTime)
    );
    let mut buf = [0u8; 40];
    let (len, prio, _) = ring.recv_fast(&mut buf).unwrap();
    assert_eq!(
        (&buf[..len], prio),
        (&b"second"[..], PriorityClass::Background)
    );
    assert_eq!(ring.stats().received, 2);

    // A 0-byte message fits an empty buffer.
    ring.send_fast(b"", PriorityClass::Normal).unwrap();
    assert_eq!(ring.recv_fast(&mut []).unwrap().0, 0);
}

// ---------------------------------------------------------------------------
// Capacity

#[test]
fn invalid_capacities_are_rejected_and_named() {
    for capacity in [0usize, 1, 3, 100, 1 << 25] {
        let expected = RingError::InvalidCapacity {
            capacity,
            min: 2,
            max: 1 << 24,
        };
        let err = UltraFastRing::new(capacity).unwrap_err();
        assert_eq!(err, expected);
        assert!(err.to_string().contains(&capacity.to_string()), "{err}");
        assert_eq!(Config::new(capacity).validate().unwrap_err(), expected);

        let name = ShmName::new("badcap");
        assert_eq!(
            UltraFastRing::create(name.name(), &Config::new(capacity)).unwrap_err(),
            expected
        );
        assert!(
            !name.exists(),
            "a rejected create left {} behind",
            name.label()
        );
    }
    // The bounds themselves are accepted.
    assert_eq!(UltraFastRing::new(2).unwrap().as_ring().capacity(), 2);
    assert!(Config::new(1 << 24).validate().is_ok());
}

// ---------------------------------------------------------------------------
// Full and Empty

#[test]
fn full_and_empty() {
    let ring = UltraFastRing::new(4).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(ring.recv_fast(&mut buf), Err(RingError::Empty));
    let mut out = [InlineMessage::default(); 4];
    assert_eq!(ring.recv_batch(&mut out), Err(RingError::Empty));

    for i in 0..4u8 {
        ring.send_fast(&[i; 5], PriorityClass::Normal).unwrap();
    }
    let before = snapshot(&ring);
    assert_eq!(before.1, 4);
    assert_eq!(
        ring.send_fast(b"fifth", PriorityClass::Normal),
        Err(RingError::Full)
    );
    assert_eq!(
        ring.send_batch(&[b"x".as_slice()], PriorityClass::Normal),
        Err(RingError::Full)
    );
    assert_eq!(snapshot(&ring), before, "a failed send changed the ring");

    let (len, _, _) = ring.recv_fast(&mut buf).unwrap();
    assert_eq!(&buf[..len], &[0u8; 5]);
    ring.send_fast(&[4u8; 5], PriorityClass::Normal).unwrap();
    assert_eq!(
        ring.send_fast(b"sixth", PriorityClass::Normal),
        Err(RingError::Full)
    );

    for i in 1..=4u8 {
        let (len, _, _) = ring.recv_fast(&mut buf).unwrap();
        assert_eq!(&buf[..len], &[i; 5]);
    }
    assert_eq!(ring.recv_fast(&mut buf), Err(RingError::Empty));
    assert_eq!(ring.recv_batch(&mut out), Err(RingError::Empty));
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (5, 5));
}

// ---------------------------------------------------------------------------
// Batches

#[test]
fn send_batch_with_one_oversized_message_sends_nothing() {
    let ring = UltraFastRing::new(16).unwrap();
    let before = snapshot(&ring);
    let big = [1u8; 41];
    for batch in [
        vec![b"a".as_slice(), b"b", &big],
        vec![big.as_slice(), b"a"],
        vec![b"a".as_slice(), &[2u8; 200], b"c"],
    ] {
        let len = batch.iter().map(|m| m.len()).find(|&l| l > 40).unwrap();
        assert_eq!(
            ring.send_batch(&batch, PriorityClass::Normal),
            Err(RingError::TooLarge { len, max: 40 })
        );
        assert_eq!(snapshot(&ring), before, "a rejected batch changed the ring");
    }
    assert_eq!(ring.recv_fast(&mut [0u8; 40]), Err(RingError::Empty));
    assert_eq!(ring.send_batch(&[], PriorityClass::Normal), Ok(0));
}

#[test]
fn send_batch_larger_than_free_space_sends_a_prefix() {
    let ring = UltraFastRing::new(8).unwrap();
    for i in 0..3u8 {
        ring.send_fast(&[i], PriorityClass::Normal).unwrap();
    }
    let batch: Vec<Vec<u8>> = (3..13u8).map(|i| vec![i; i as usize]).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    assert_eq!(ring.send_batch(&refs, PriorityClass::Low), Ok(5));
    assert_eq!(ring.as_ring().len(), 8);
    assert_eq!(
        ring.send_batch(&refs[5..], PriorityClass::Low),
        Err(RingError::Full)
    );

    let mut out = [InlineMessage::default(); 4];
    assert_eq!(ring.recv_batch(&mut out), Ok(4));
    let mut big_out = [InlineMessage::default(); 16];
    assert_eq!(ring.recv_batch(&mut big_out), Ok(4));
    let got: Vec<(Vec<u8>, PriorityClass)> = out
        .iter()
        .chain(&big_out[..4])
        .map(|m| (m.as_bytes().to_vec(), m.priority()))
        .collect();
    let mut expected: Vec<(Vec<u8>, PriorityClass)> =
        (0..3u8).map(|i| (vec![i], PriorityClass::Normal)).collect();
    expected.extend(batch[..5].iter().map(|m| (m.clone(), PriorityClass::Low)));
    assert_eq!(got, expected);
    assert_eq!(ring.recv_batch(&mut big_out), Err(RingError::Empty));

    // The unsent rest goes through once there is room.
    assert_eq!(ring.send_batch(&refs[5..], PriorityClass::High), Ok(5));
    assert_eq!(ring.recv_batch(&mut big_out), Ok(5));
    for (m, e) in big_out.iter().zip(&batch[5..]) {
        assert_eq!(
            (m.as_bytes(), m.priority()),
            (e.as_slice(), PriorityClass::High)
        );
    }
}

// ---------------------------------------------------------------------------
// Named segments

#[test]
fn create_twice_is_already_exists_and_keeps_the_first() {
    let name = ShmName::new("twice");
    let first = UltraFastRing::create(name.name(), &Config::new(8)).unwrap();
    first.send_fast(b"first", PriorityClass::Normal).unwrap();
    for config in [Config::new(8), Config::new(16).mode(0o644)] {
        let err = UltraFastRing::create(name.name(), &config).unwrap_err();
        assert_eq!(err, RingError::AlreadyExists { name: name.label() });
        assert!(err.to_string().contains(name.name()), "{err}");
    }
    // Also with the leading slash.
    assert_eq!(
        UltraFastRing::create(&name.label(), &Config::new(8)).unwrap_err(),
        RingError::AlreadyExists { name: name.label() }
    );
    // The existing segment is untouched.
    assert_eq!(
        fs::metadata(name.path()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let other = UltraFastRing::open(name.name()).unwrap();
    assert_eq!(other.as_ring().capacity(), 8);
    let mut buf = [0u8; 40];
    let (len, _, _) = other.recv_fast(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"first");
}

#[test]
fn open_and_remove_of_missing_name_is_not_found() {
    let name = ShmName::new("missing");
    let err = open_err(&name);
    assert_eq!(err, RingError::NotFound { name: name.label() });
    assert!(err.to_string().contains(name.name()), "{err}");
    assert_eq!(
        remove_named(name.name()),
        Err(RingError::NotFound { name: name.label() })
    );
    assert!(!name.exists());
}

#[test]
fn invalid_names_are_rejected_everywhere() {
    let long = "x".repeat(255);
    for bad in ["a/b", "", "/", "/a/b", "..", "a\0b", long.as_str()] {
        let is_invalid = |r: Result<(), RingError>| match r {
            Err(RingError::InvalidName { name, reason }) => {
                assert_eq!(name, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        };
        is_invalid(UltraFastRing::create(bad, &Config::new(8)).map(drop));
        is_invalid(UltraFastRing::open(bad).map(drop));
        is_invalid(remove_named(bad));
    }
}

#[test]
fn named_segment_modes() {
    let default = ShmName::new("mode600");
    let ring = UltraFastRing::create(default.name(), &Config::new(8)).unwrap();
    let mode = fs::metadata(default.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "default mode is {mode:o}");
    drop(ring);

    let group = ShmName::new("mode640");
    let ring = UltraFastRing::create(group.name(), &Config::new(8).mode(0o640)).unwrap();
    let mode = fs::metadata(group.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode(0o640) gave {mode:o}");
    drop(ring);
}

#[test]
fn creator_drop_unlinks_by_default() {
    let name = ShmName::new("unlink");
    let ring = UltraFastRing::create(name.name(), &Config::new(8)).unwrap();
    assert!(name.exists());
    // An opener's drop does not unlink.
    drop(UltraFastRing::open(name.name()).unwrap());
    assert!(name.exists(), "dropping an opener removed the name");
    let opener = UltraFastRing::open(name.name()).unwrap();
    drop(ring);
    assert!(!name.exists(), "dropping the creator kept the name");
    assert_eq!(open_err(&name), RingError::NotFound { name: name.label() });
    // Handles already open keep working.
    opener
        .send_fast(b"still here", PriorityClass::Normal)
        .unwrap();
    let mut buf = [0u8; 40];
    let (len, _, _) = opener.recv_fast(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"still here");
}

#[test]
fn unlink_on_drop_false_keeps_the_name() {
    let name = ShmName::new("keep");
    let ring = UltraFastRing::create(name.name(), &Config::new(8).unlink_on_drop(false)).unwrap();
    ring.send_fast(b"persisted", PriorityClass::High).unwrap();
    drop(ring);
    assert!(name.exists(), "unlink_on_drop(false) removed the name");
    let again = UltraFastRing::open(name.name()).unwrap();
    let mut buf = [0u8; 40];
    let (len, prio, _) = again.recv_fast(&mut buf).unwrap();
    assert_eq!(
        (&buf[..len], prio),
        (&b"persisted"[..], PriorityClass::High)
    );
    drop(again);
    assert!(name.exists());
    remove_named(name.name()).unwrap();
    assert!(!name.exists());
    assert_eq!(
        remove_named(name.name()),
        Err(RingError::NotFound { name: name.label() })
    );
}

// ---------------------------------------------------------------------------
// Hostile files

#[test]
fn open_of_tiny_file_is_corrupt() {
    let name = ShmName::new("tiny");
    fs::write(name.path(), [0xAB; 10]).unwrap();
    let what = expect_corrupt(open_err(&name), &name.label());
    assert!(what.contains("10 bytes"), "{what}");
    fs::write(name.path(), []).unwrap();
    expect_corrupt(open_err(&name), &name.label());
}

#[test]
fn open_of_zero_filled_file_is_corrupt_not_initialised() {
    let name = ShmName::new("zeros");
    fs::write(name.path(), vec![0u8; 8192]).unwrap();
    let start = Instant::now();
    let what = expect_corrupt(open_err(&name), &name.label());
    let waited = start.elapsed();
    assert!(what.contains("not initialised"), "{what}");
    assert!(waited < Duration::from_secs(5), "open waited {waited:?}");
}

#[test]
fn open_of_wrong_magic_is_corrupt() {
    let name = ShmName::new("magic");
    let mut bytes = noise(3 * 4096);
    bytes[..8].copy_from_slice(b"NOTARING");
    fs::write(name.path(), &bytes).unwrap();
    let what = expect_corrupt(open_err(&name), &name.label());
    assert!(what.contains("magic"), "{what}");

    // A real ring with only the magic changed.
    let ring_name = ShmName::new("magic2");
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
    let name = ShmName::new("version");
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
    let name = ShmName::new("capacity");
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
    let name = ShmName::new("capsame");
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
    let name = ShmName::new("trunc");
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
    let name = ShmName::new("rdonly");
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
