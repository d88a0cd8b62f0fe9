//! `FusionRing` in one process: the bytes of test messages, what a failed
//! call must not change ([`Snapshot`]), and blocking calls run on a thread
//! and waited for with a generous limit, so a bug fails the test rather
//! than hanging it. The only timing assertions are lower bounds of
//! timeouts (plus a 1 s slack upper bound).
//!
//! Threads use their own handle (`ring.clone()`): handles are `Send` but
//! not `Sync`.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fusion_ring::{ArenaUsage, Config, FusionRing, PriorityClass};
use testkit::rng::GOLDEN;

/// The timeout the timeout tests use.
pub const T: Duration = Duration::from_millis(100);
/// How long a thread that should finish may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(20);
/// How long a thread that should stay blocked is watched.
pub const STAYS_BLOCKED: Duration = Duration::from_millis(150);

/// Bytes of message `tag`: its first 8 bytes (if it has them) are `tag`.
pub fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| {
            if j < 8 {
                (tag >> (8 * j)) as u8
            } else {
                (tag.wrapping_mul(GOLDEN) >> (j % 56)) as u8 ^ (j as u8)
            }
        })
        .collect()
}

pub fn arena(ring: &FusionRing) -> ArenaUsage {
    ring.stats().arena
}

pub fn blocks(ring: &FusionRing) -> u64 {
    arena(ring).blocks_in_use
}

/// What a failed call must not change: head, tail, sent, received, and
/// the arena's blocks and bytes in use. (Not `bytes_carved`: a call may
/// carve a fresh block and give it back to the free list.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub head: u64,
    pub tail: u64,
    pub sent: u64,
    pub received: u64,
    pub blocks_in_use: u64,
    pub bytes_in_use: u64,
}

pub fn snapshot(ring: &FusionRing) -> Snapshot {
    let s = ring.stats();
    Snapshot {
        head: s.head,
        tail: s.tail,
        sent: s.sent,
        received: s.received,
        blocks_in_use: s.arena.blocks_in_use,
        bytes_in_use: s.arena.bytes_in_use,
    }
}

/// Asserts a timeout took at least `t` (and not absurdly longer).
pub fn assert_waited(start: Instant, t: Duration, what: &str) {
    let elapsed = start.elapsed();
    assert!(
        elapsed >= t,
        "{what}: returned after {elapsed:?}, before {t:?}"
    );
    assert!(
        elapsed < t + Duration::from_secs(1),
        "{what}: returned after {elapsed:?}, the timeout was {t:?}"
    );
}

/// Receives the next message (copy) and checks it is `want`.
pub fn expect_next(ring: &FusionRing, want: &[u8], priority: PriorityClass) {
    let mut buf = vec![0u8; ring.max_message()];
    let (n, p, _) = ring.recv_with_meta(&mut buf).expect("a queued message");
    assert_eq!(n, want.len(), "length");
    assert!(buf[..n] == *want, "bytes of a {n}-byte message");
    assert_eq!(p, priority, "priority");
}

/// Runs `f` on a thread; the receiver gets its result.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// The thread's result, failing the test if it takes over `LIMIT`.
pub fn finished<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|e| panic!("{what}: no result within {LIMIT:?} ({e})"))
}

/// Asserts the thread is still blocked (no result for a while).
pub fn still_blocked<T: std::fmt::Debug>(rx: &mpsc::Receiver<T>, what: &str) {
    match rx.recv_timeout(STAYS_BLOCKED) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("{what}: should still be blocked, got {other:?}"),
    }
}

/// A ring whose arena holds exactly two 4 KiB blocks (the largest message).
pub fn two_block_ring(capacity: usize, wakeups: bool) -> FusionRing {
    let config = Config::new(capacity)
        .arena_bytes(2 * (4096 + 64))
        .max_message(4096)
        .wakeups(wakeups);
    FusionRing::with_config(&config).expect("ring")
}
