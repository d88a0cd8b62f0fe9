//! A peer that truncates a named ring's file under our mapping: every
//! access past the new end would raise `SIGBUS` and kill us. The ring must
//! report `Corrupt` instead, with no crash, whether we are busy or blocked;
//! and a `SIGBUS` that is not about a ring must still kill as before.
//!
//! Each scenario runs in a child process (this test binary re-run), so a
//! crash shows as that child's death by signal, with a clear message.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, PriorityClass, RingError};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::names::shm_path;
use testkit::role;

const RING_VAR: &str = "FRING_TRUNC_RING";
const DEADLINE: Duration = Duration::from_secs(30);
const SIGBUS: i32 = 7;

fn unique_name(what: &str) -> String {
    testkit::names::unique_name(&format!("fring-trunc-{what}"))
}

/// Shrinks the ring's file to nothing, as a hostile peer could.
fn truncate(name: &str) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(name))
        .expect("open the ring's file")
        .set_len(0)
        .expect("truncate the ring's file");
}

fn config() -> Config {
    Config::new(16).arena_bytes(1 << 20).max_message(4096)
}

/// Runs this binary's test `role` as a child on ring `name` and waits for
/// it; removes the ring's file afterwards.
fn run_child(role: &'static str, name: &str) -> (ExitStatus, String) {
    let mut child = ChildGuard::spawn(role, &[(RING_VAR, name.to_string())]);
    let out = child.wait(Instant::now(), DEADLINE);
    let _ = std::fs::remove_file(shm_path(name));
    out
}

fn assert_survived(role: &str, (status, output): &(ExitStatus, String)) {
    assert!(
        status.signal() != Some(SIGBUS),
        "{role}: killed by SIGBUS (the truncation was not survived)\n{output}"
    );
    assert!(status.success(), "{role}: {status}\n{output}");
}

fn is_truncation(e: &RingError) -> bool {
    matches!(e, RingError::Corrupt(c) if c.to_string().contains("truncated"))
}

// ---------------------------------------------------------------------------
// The scenarios, each run as a child process.

/// Truncation while we hold a received zero-copy payload and a second
/// handle: both handles report it, the payload stays readable (its bytes
/// are no longer the message's), nothing crashes.
#[test]
fn child_busy_handles() {
    if !is_child(role!(child_busy_handles)) {
        return;
    }
    let name = child_var(RING_VAR);
    let ring = FusionRing::create(&name, &config()).expect("create");
    let other = FusionRing::open(&name).expect("open a second handle");
    ring.send(b"inline").expect("send inline");
    ring.send(&[7u8; 1000]).expect("send zero-copy");
    ring.send(&[8u8; 1000]).expect("send zero-copy");
    let mut buf = [0u8; 64];
    assert_eq!(ring.recv(&mut buf).expect("recv inline"), 6);
    let held = other.recv_zerocopy().expect("recv zero-copy");
    assert_eq!(held.len(), 1000);
    let loan = ring.loan(500).expect("loan");

    truncate(&name);

    let e = ring.recv(&mut buf).expect_err("recv after truncation");
    assert!(is_truncation(&e), "recv: {e}");
    let e = other.send(b"x").expect_err("send after truncation");
    assert!(is_truncation(&e), "send: {e}");
    let e = ring
        .send_loan(loan, PriorityClass::Normal)
        .expect_err("send_loan after truncation");
    assert!(is_truncation(&e.error), "send_loan: {}", e.error);
    drop(e); // the loan, into the poisoned copy
    let _ = std::hint::black_box(held.iter().map(|&b| b as u64).sum::<u64>());
    assert_eq!(
        held.len(),
        1000,
        "the payload's length is ours, not the ring's"
    );
    let _ = std::hint::black_box((ring.as_ring().stats(), ring.as_ring().arena_usage()));
    let _ = std::hint::black_box(ring.as_ring().recover());
    drop(held);
    drop(other);
    drop(ring);
}

/// Truncation while we sleep in `recv_blocking`: the call returns the
/// error instead of faulting (or sleeping on) a file that is gone.
#[test]
fn child_blocked_receiver() {
    if !is_child(role!(child_blocked_receiver)) {
        return;
    }
    let name = child_var(RING_VAR);
    let ring = FusionRing::create(&name, &config()).expect("create");
    println!("ready");
    let mut buf = [0u8; 64];
    let e = ring
        .recv_blocking(&mut buf)
        .expect_err("recv_blocking after truncation");
    assert!(is_truncation(&e), "recv_blocking: {e}");
}

/// A SIGBUS that is not about a ring still kills the process: map an
/// unrelated file, truncate it, read it (after a ring has installed the
/// handler).
#[test]
fn child_foreign_fault() {
    if !is_child(role!(child_foreign_fault)) {
        return;
    }
    let name = child_var(RING_VAR);
    let _ring = FusionRing::create(&name, &config()).expect("create");
    let path = std::env::temp_dir().join(format!("fring-trunc-foreign-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    file.set_len(4096).expect("size");
    // SAFETY: a fresh mapping of our own 4096-byte file, aliasing nothing.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            &file,
            0,
        )
    }
    .expect("mmap");
    file.set_len(0).expect("truncate");
    let _ = std::fs::remove_file(&path);
    // SAFETY: the mapping is live; reading it past the file's end faults,
    // which is the point: the process must die of it.
    let v = unsafe { std::ptr::read_volatile(p as *const u8) };
    println!("read {v} from a truncated file: the fault was swallowed");
    std::process::exit(3);
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn busy_handles_get_corrupt_not_sigbus_after_truncation() {
    let out = run_child(role!(child_busy_handles), &unique_name("busy"));
    assert_survived("child_busy_handles", &out);
}

#[test]
fn a_blocked_receiver_gets_corrupt_after_truncation() {
    let name = unique_name("blocked");
    let mut child = ChildGuard::spawn(role!(child_blocked_receiver), &[(RING_VAR, name.clone())]);
    // Wait for "ready", then give it time to fall asleep in the futex.
    let mut stdout = std::io::BufReader::new(child.stdout());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).expect("child stdout");
        assert!(n > 0, "child ended before it was ready");
        if line.trim_end().ends_with("ready") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    truncate(&name);
    let out = child.wait(Instant::now(), DEADLINE);
    let _ = std::fs::remove_file(shm_path(&name));
    assert_survived("child_blocked_receiver", &out);
}

#[test]
fn a_sigbus_outside_rings_still_kills() {
    let (status, output) = run_child(role!(child_foreign_fault), &unique_name("foreign"));
    assert_eq!(
        status.signal(),
        Some(SIGBUS),
        "the child should have died of SIGBUS: {status}\n{output}"
    );
}
