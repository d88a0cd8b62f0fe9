//! `FusionRing`'s blocking calls, timeouts and the error paths of the
//! zero-copy arena: every failure leaves the ring and the arena as they
//! were, every block comes back.
//!
//! Threads here use their own handle (`ring.clone()`): handles are `Send`
//! but not `Sync`. A blocking call that might hang runs in a spawned thread
//! and is waited for with a generous limit, so a bug fails the test rather
//! than hanging it. The only timing assertions are lower bounds of timeouts
//! (plus a 1 s slack upper bound).

#![cfg(not(fusion_ring_loom))]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fusion_ring::{
    allocate_zerocopy_buffer, send_zerocopy, ArenaUsage, BatchMessage, Config, FusionRing,
    LoanError, Payload, PriorityClass, RingError, RingSync, INLINE_MAX,
};

/// The timeout the timeout tests use.
const T: Duration = Duration::from_millis(100);
/// How long a thread that should finish may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);
/// How long a thread that should stay blocked is watched.
const STAYS_BLOCKED: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------
// Helpers

/// Bytes of message `tag`: its first 8 bytes (if it has them) are `tag`.
fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| {
            if j < 8 {
                (tag >> (8 * j)) as u8
            } else {
                (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (j % 56)) as u8 ^ (j as u8)
            }
        })
        .collect()
}

fn arena(ring: &FusionRing) -> ArenaUsage {
    ring.stats().arena
}

fn blocks(ring: &FusionRing) -> u64 {
    arena(ring).blocks_in_use
}

/// What a failed call must not change: head, tail, sent, received, and
/// the arena's blocks and bytes in use. (Not `bytes_carved`: a call may
/// carve a fresh block and give it back to the free list.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    head: u64,
    tail: u64,
    sent: u64,
    received: u64,
    blocks_in_use: u64,
    bytes_in_use: u64,
}

fn snapshot(ring: &FusionRing) -> Snapshot {
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
fn assert_waited(start: Instant, t: Duration, what: &str) {
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
fn expect_next(ring: &FusionRing, want: &[u8], priority: PriorityClass) {
    let mut buf = vec![0u8; ring.max_message()];
    let (n, p, _) = ring.recv_with_meta(&mut buf).expect("a queued message");
    assert_eq!(n, want.len(), "length");
    assert!(buf[..n] == *want, "bytes of a {n}-byte message");
    assert_eq!(p, priority, "priority");
}

/// Runs `f` on a thread; the receiver gets its result.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// The thread's result, failing the test if it takes over `LIMIT`.
fn finished<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|e| panic!("{what}: no result within {LIMIT:?} ({e})"))
}

/// Asserts the thread is still blocked (no result for a while).
fn still_blocked<T: std::fmt::Debug>(rx: &mpsc::Receiver<T>, what: &str) {
    match rx.recv_timeout(STAYS_BLOCKED) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("{what}: should still be blocked, got {other:?}"),
    }
}

/// A ring whose arena holds exactly two 4 KiB blocks (the largest message).
fn two_block_ring(capacity: usize, wakeups: bool) -> FusionRing {
    let config = Config::new(capacity)
        .arena_bytes(2 * (4096 + 64))
        .max_message(4096)
        .wakeups(wakeups);
    FusionRing::with_config(&config).expect("ring")
}

// ---------------------------------------------------------------------------
// Timeouts

#[test]
fn recv_with_timeout_on_an_empty_ring_times_out_and_consumes_nothing() {
    let ring = FusionRing::new(8).expect("ring");
    let mut buf = vec![0u8; 1 << 20];

    let start = Instant::now();
    assert_eq!(ring.recv_with_timeout(&mut buf, T), Err(RingError::Timeout));
    assert_waited(start, T, "recv_with_timeout");

    let start = Instant::now();
    assert_eq!(
        ring.recv_zerocopy_timeout(Some(T)).map(|p| p.len()),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "recv_zerocopy_timeout");

    let start = Instant::now();
    assert_eq!(
        ring.recv_until(&mut buf, Some(Instant::now() + T)),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "recv_until");
    let s = ring.stats();
    assert_eq!((s.head, s.tail, s.received), (0, 0, 0));

    // Nothing was lost or consumed: messages sent now are all received.
    ring.send(b"after").expect("send");
    ring.send(&pattern(7, 5000)).expect("send");
    assert_eq!(ring.recv_with_timeout(&mut buf, T), Ok(5));
    assert_eq!(&buf[..5], b"after");
    let p = ring.recv_zerocopy_timeout(Some(T)).expect("zero-copy");
    assert_eq!(*p, pattern(7, 5000)[..]);
    drop(p);

    // A deadline already past still takes a message that is there.
    ring.send(b"ready").expect("send");
    let (n, p, _) = ring
        .recv_until(&mut buf, Some(Instant::now()))
        .expect("a ready message with a past deadline");
    assert_eq!((&buf[..n], p), (&b"ready"[..], PriorityClass::Normal));
    assert_eq!(blocks(&ring), 0);
}

#[test]
fn send_with_timeout_on_a_full_ring_times_out_and_changes_nothing() {
    let ring = FusionRing::new(8).expect("ring");
    // Fill the ring: inline and zero-copy messages alternately.
    let queued: Vec<Vec<u8>> = (0..8)
        .map(|i| pattern(i, if i % 2 == 0 { 20 } else { 1000 }))
        .collect();
    for m in &queued {
        ring.send(m).expect("fill");
    }
    assert_eq!(ring.send(b"x"), Err(RingError::Full));
    let before = snapshot(&ring);
    assert_eq!(before.blocks_in_use, 4);

    let start = Instant::now();
    assert_eq!(ring.send_with_timeout(b"small", T), Err(RingError::Timeout));
    assert_waited(start, T, "send_with_timeout (inline)");
    assert_eq!(snapshot(&ring), before);

    // A large message gets its block first, then waits for a slot: the
    // block must be given back on timeout.
    let start = Instant::now();
    assert_eq!(
        ring.send_with_timeout(&pattern(99, 100_000), T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "send_with_timeout (zero-copy)");
    assert_eq!(snapshot(&ring), before, "no block leaked, nothing sent");

    let start = Instant::now();
    assert_eq!(
        ring.send_until(
            &pattern(98, 1 << 20),
            PriorityClass::High,
            Some(Instant::now() + T)
        ),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "send_until (1 MiB)");
    assert_eq!(snapshot(&ring), before);

    let start = Instant::now();
    assert_eq!(
        ring.sync().wait_not_full_timeout(T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "wait_not_full_timeout");

    for m in &queued {
        expect_next(&ring, m, PriorityClass::Normal);
    }
    assert_eq!(ring.recv(&mut [0u8; 64]), Err(RingError::Empty));
    assert_eq!(arena(&ring).bytes_in_use, 0);
    assert_eq!(blocks(&ring), 0);
}

#[test]
fn send_with_timeout_on_an_exhausted_arena_times_out_and_changes_nothing() {
    let ring = two_block_ring(8, true);
    ring.send(&pattern(1, 4096)).expect("first block");
    ring.send(&pattern(2, 4096)).expect("second block");
    let before = snapshot(&ring);
    assert_eq!(before.blocks_in_use, 2);
    let start = Instant::now();
    assert_eq!(
        ring.send_with_timeout(&pattern(3, 4096), T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "send_with_timeout (arena exhausted)");
    assert_eq!(snapshot(&ring), before);
    expect_next(&ring, &pattern(1, 4096), PriorityClass::Normal);
    expect_next(&ring, &pattern(2, 4096), PriorityClass::Normal);
    assert_eq!(blocks(&ring), 0);
}

// ---------------------------------------------------------------------------
// Arena exhaustion

#[test]
fn send_blocking_waits_for_a_block_freed_by_a_receiver() {
    for wakeups in [true, false] {
        let ring = two_block_ring(8, wakeups);
        let (a, b, c, d) = (
            pattern(1, 4096),
            pattern(2, 4096),
            pattern(3, 4000),
            pattern(4, 3000),
        );
        ring.send(&a).expect("a");
        ring.send(&b).expect("b");
        assert_eq!(blocks(&ring), 2);
        assert_eq!(
            ring.send(&c),
            Err(RingError::ArenaExhausted { len: c.len() })
        );

        // Freed by dropping a payload.
        let sender = ring.clone();
        let c2 = c.clone();
        let done = spawn(move || sender.send_blocking(&c2));
        still_blocked(&done, "send_blocking with no free block");
        assert_eq!(ring.as_ring().len(), 2, "nothing sent while waiting");
        let pa = ring.recv_zerocopy().expect("a");
        assert_eq!(*pa, a[..]);
        still_blocked(&done, "send_blocking while the payload holds the block");
        drop(pa);
        assert_eq!(finished(&done, "send_blocking"), Ok(()));

        // Freed by a receive that copies.
        let sender = ring.clone();
        let d2 = d.clone();
        let done = spawn(move || sender.send_blocking(&d2));
        still_blocked(&done, "second send_blocking");
        expect_next(&ring, &b, PriorityClass::Normal);
        assert_eq!(finished(&done, "second send_blocking"), Ok(()));

        expect_next(&ring, &c, PriorityClass::Normal);
        expect_next(&ring, &d, PriorityClass::Normal);
        assert_eq!(blocks(&ring), 0, "wakeups({wakeups})");
    }
}

#[test]
fn nonblocking_sends_on_an_exhausted_arena_fail_and_change_nothing() {
    let ring = two_block_ring(8, true);
    let queued = pattern(1, 4096);
    ring.send(&queued).expect("queued block");
    let mut held = ring.loan(4096).expect("held block");
    held.copy_from_slice(&pattern(2, 4096));
    let before = snapshot(&ring);
    assert_eq!(before.blocks_in_use, 2);

    for len in [41, 100, 4095, 4096] {
        assert_eq!(
            ring.send(&pattern(9, len)),
            Err(RingError::ArenaExhausted { len }),
            "send of {len}"
        );
        assert_eq!(
            ring.send_with_priority(&pattern(9, len), PriorityClass::RealTime),
            Err(RingError::ArenaExhausted { len })
        );
        assert_eq!(
            ring.loan(len).map(|l| l.len()),
            Err(RingError::ArenaExhausted { len })
        );
        assert_eq!(
            allocate_zerocopy_buffer(&ring, len).map(|l| l.len()),
            Err(RingError::ArenaExhausted { len })
        );
        assert_eq!(snapshot(&ring), before, "after the failed sends of {len}");
    }
    // A batch whose first message needs a block sends nothing.
    let inline = pattern(5, 10);
    let big = pattern(6, 1000);
    assert_eq!(
        ring.send_batch(&[BatchMessage::new(&big, PriorityClass::Normal)]),
        Err(RingError::ArenaExhausted { len: 1000 })
    );
    assert_eq!(snapshot(&ring), before, "after the failed batch");
    // One that fails later sends the prefix before the message that found
    // no block, and nothing after it; no block is taken.
    let batch = [
        BatchMessage::new(&inline, PriorityClass::Normal),
        BatchMessage::new(&big, PriorityClass::Normal),
        BatchMessage::new(&inline, PriorityClass::Normal),
    ];
    assert_eq!(ring.send_batch(&batch), Ok(1), "the inline head only");
    let after = snapshot(&ring);
    assert_eq!((after.head, after.sent), (before.head + 1, before.sent + 1));
    assert_eq!(after.blocks_in_use, before.blocks_in_use);
    let mut first = vec![0u8; 8192];
    assert_eq!(ring.recv(&mut first), Ok(4096), "the queued block first");
    assert_eq!(&first[..4096], &queued[..]);
    assert_eq!(ring.recv(&mut first), Ok(10), "then the batch's head");
    assert_eq!(&first[..10], &inline[..]);
    ring.send(&queued).expect("requeue the block");

    // Inline messages need no block.
    ring.send(&inline).expect("inline on an exhausted arena");

    // The held loan's block comes back when it is dropped, and a smaller
    // message can use it (no block of its own class is left to carve).
    drop(held);
    assert_eq!(blocks(&ring), 1);
    let small = pattern(7, 100);
    ring.send(&small)
        .expect("a small message in a larger free block");
    expect_next(&ring, &queued, PriorityClass::Normal);
    expect_next(&ring, &inline, PriorityClass::Normal);
    expect_next(&ring, &small, PriorityClass::Normal);
    assert_eq!(blocks(&ring), 0);
}

// ---------------------------------------------------------------------------
// Size limits

#[test]
fn too_large_is_rejected_by_every_send_path_and_nothing_is_sent() {
    let ring = FusionRing::new(8).expect("ring");
    let max = ring.max_message();
    assert_eq!(max, 1 << 20);
    let big = vec![0xA5u8; max + 1];
    let too_large = RingError::TooLarge { len: max + 1, max };
    let small = pattern(1, 10);

    assert_eq!(ring.send(&big), Err(too_large.clone()));
    assert_eq!(
        ring.send_with_priority(&big, PriorityClass::RealTime),
        Err(too_large.clone())
    );
    assert_eq!(ring.loan(max + 1).map(|l| l.len()), Err(too_large.clone()));
    assert_eq!(
        ring.send_batch(&[
            BatchMessage::new(&small, PriorityClass::Normal),
            BatchMessage::new(&big, PriorityClass::Normal),
        ]),
        Err(too_large.clone())
    );
    // Blocking sends do not wait for a message that can never fit.
    let sender = ring.clone();
    let b = big.clone();
    let rx = spawn(move || {
        (
            sender.send_blocking(&b),
            sender.send_with_timeout(&b, Duration::from_secs(3600)),
            sender.send_until(&b, PriorityClass::Low, None),
        )
    });
    assert_eq!(
        finished(&rx, "blocking sends of a too-large message"),
        (
            Err(too_large.clone()),
            Err(too_large.clone()),
            Err(too_large.clone())
        )
    );
    let s = ring.stats();
    assert_eq!((s.head, s.sent, s.arena.blocks_in_use), (0, 0, 0));

    // The limit is the configured maximum, not its size class's capacity.
    let ring = FusionRing::with_config(&Config::new(8).max_message(5000)).expect("ring");
    let m = pattern(2, 5001);
    let err = RingError::TooLarge {
        len: 5001,
        max: 5000,
    };
    assert_eq!(ring.send(&m), Err(err.clone()));
    assert_eq!(ring.loan(5001).map(|l| l.len()), Err(err.clone()));
    assert_eq!(
        ring.send_batch(&[BatchMessage::new(&m, PriorityClass::Normal)]),
        Err(err)
    );
    assert_eq!(blocks(&ring), 0);
    ring.send(&m[..5000]).expect("exactly the maximum");
    expect_next(&ring, &m[..5000], PriorityClass::Normal);

    // Without an arena the limit is the inline one.
    let ring = FusionRing::with_config(&Config::new(8).arena_bytes(0)).expect("ring");
    assert_eq!(ring.max_message(), INLINE_MAX);
    let err = RingError::TooLarge {
        len: INLINE_MAX + 1,
        max: INLINE_MAX,
    };
    let m = pattern(3, INLINE_MAX + 1);
    assert_eq!(ring.send(&m), Err(err.clone()));
    assert_eq!(ring.send_blocking(&m), Err(err.clone()));
    assert_eq!(
        ring.send_batch(&[BatchMessage::new(&m, PriorityClass::Normal)]),
        Err(err)
    );
    assert!(ring.as_ring().is_empty());
}

#[test]
fn buffer_too_small_leaves_the_message_queued() {
    let ring = FusionRing::new(8).expect("ring");
    let big = pattern(1, 5000);
    let next = pattern(2, 10);
    ring.send(&big).expect("send");
    ring.send(&next).expect("send");
    let before = snapshot(&ring);
    assert_eq!(before.blocks_in_use, 1);
    let err = RingError::BufferTooSmall {
        needed: 5000,
        got: 100,
    };
    let mut small = [0u8; 100];
    assert_eq!(ring.recv(&mut small), Err(err.clone()));
    assert_eq!(
        ring.recv_with_meta(&mut small).map(|(n, _, _)| n),
        Err(err.clone())
    );
    // The blocking receives report it at once (the message is there).
    assert_eq!(ring.recv_with_timeout(&mut small, T), Err(err.clone()));
    assert_eq!(ring.recv_blocking(&mut small), Err(err.clone()));
    assert_eq!(
        ring.recv_until(&mut small, None).map(|(n, _, _)| n),
        Err(err)
    );
    assert_eq!(
        ring.recv(&mut [0u8; 4999]),
        Err(RingError::BufferTooSmall {
            needed: 5000,
            got: 4999
        })
    );
    assert_eq!(snapshot(&ring), before, "still queued, block still held");

    // A buffer of exactly its size takes it, then the next one follows.
    let mut exact = vec![0u8; 5000];
    assert_eq!(ring.recv(&mut exact), Ok(5000));
    assert_eq!(exact, big);
    assert_eq!(blocks(&ring), 0);
    expect_next(&ring, &next, PriorityClass::Normal);

    // Inline messages too.
    let m = pattern(3, 30);
    ring.send(&m).expect("send");
    assert_eq!(
        ring.recv(&mut [0u8; 29]),
        Err(RingError::BufferTooSmall {
            needed: 30,
            got: 29
        })
    );
    let mut buf = [0u8; 30];
    assert_eq!(ring.recv(&mut buf), Ok(30));
    assert_eq!(buf[..], m[..]);
    // An empty message fits an empty buffer.
    ring.send(&[]).expect("send empty");
    assert_eq!(ring.recv(&mut []), Ok(0));
}

// ---------------------------------------------------------------------------
// Loans and payloads

#[test]
fn a_dropped_unsent_loan_frees_its_block() {
    let ring = FusionRing::new(8).expect("ring");
    let loan = ring.loan(3000).expect("loan");
    assert_eq!(blocks(&ring), 1);
    drop(loan);
    assert_eq!(blocks(&ring), 0);

    let mut loans: Vec<_> = [0, 1, 41, 64, 65, 5000, 100_000, 1 << 20]
        .into_iter()
        .map(|len| ring.loan(len).expect("loan"))
        .collect();
    assert_eq!(blocks(&ring), 8);
    // Drop in a scrambled order.
    for k in [3, 0, 5, 1, 3, 0, 1, 0] {
        drop(loans.remove(k));
    }
    assert!(loans.is_empty());
    let a = arena(&ring);
    assert_eq!((a.blocks_in_use, a.bytes_in_use), (0, 0));
    let s = ring.stats();
    assert_eq!((s.head, s.sent), (0, 0));
}

#[test]
fn a_loan_refused_by_a_full_ring_comes_back_intact() {
    let ring = FusionRing::new(8).expect("ring");
    for i in 0..8 {
        ring.send(&pattern(i, 16)).expect("fill");
    }
    let content = pattern(100, 3000);
    let mut loan = ring.loan(3000).expect("loan");
    loan.copy_from_slice(&content);
    let before = snapshot(&ring);
    let loan = match ring.send_loan(loan, PriorityClass::Low) {
        Err(LoanError {
            error: RingError::Full,
            loan,
        }) => loan,
        other => panic!("expected Full with the loan back, got {other:?}"),
    };
    assert_eq!(loan[..], content[..], "the loan's bytes are unchanged");
    assert_eq!(snapshot(&ring), before, "nothing sent, block still held");
    assert_eq!(before.blocks_in_use, 1);

    // The free function gives it back the same way.
    let loan = match send_zerocopy(&ring, loan) {
        Err(LoanError {
            error: RingError::Full,
            loan,
        }) => loan,
        other => panic!("expected Full, got {other:?}"),
    };
    assert_eq!(loan[..], content[..]);

    expect_next(&ring, &pattern(0, 16), PriorityClass::Normal);
    ring.send_loan(loan, PriorityClass::Low)
        .map_err(|e| e.error)
        .expect("sent once a slot is free");
    for i in 1..8 {
        expect_next(&ring, &pattern(i, 16), PriorityClass::Normal);
    }
    let p = ring.recv_zerocopy().expect("the loan's message");
    assert!(p.is_zerocopy());
    assert_eq!((&p[..], p.priority()), (&content[..], PriorityClass::Low));
    drop(p);
    assert_eq!(blocks(&ring), 0);

    // A truncated loan sends its first bytes only.
    let mut loan = ring.loan(1000).expect("loan");
    loan.copy_from_slice(&pattern(5, 1000));
    loan.truncate(2000);
    assert_eq!(loan.len(), 1000, "truncate never lengthens");
    loan.truncate(300);
    assert_eq!(loan.len(), 300);
    ring.send_loan(loan, PriorityClass::High)
        .map_err(|e| e.error)
        .expect("send");
    expect_next(&ring, &pattern(5, 1000)[..300], PriorityClass::High);
    assert_eq!(blocks(&ring), 0);
}

#[test]
fn a_payload_clone_keeps_the_block_alive() {
    let ring = FusionRing::new(16).expect("ring");
    let a = pattern(1, 10_000);
    ring.send(&a).expect("send");
    let original = ring.recv_zerocopy().expect("recv");
    assert!(original.is_zerocopy());
    let clone = original.clone();
    assert_eq!(blocks(&ring), 1);
    drop(original);
    assert_eq!(blocks(&ring), 1, "the clone still holds the block");

    // Traffic of the same size class would reuse a freed block.
    for i in 2..200 {
        let m = pattern(i, 9000 + i as usize);
        ring.send(&m).expect("send");
        let p = ring.recv_zerocopy().expect("recv");
        assert_eq!(*p, m[..]);
    }
    assert_eq!(*clone, a[..], "the clone's block was not reused");
    assert_eq!(blocks(&ring), 1);

    // A clone read and dropped on another thread.
    let other = clone.clone();
    let want = a.clone();
    let rx = spawn(move || {
        let ok = *other == want[..];
        drop(other);
        ok
    });
    assert!(finished(&rx, "reading a payload on another thread"));
    assert_eq!(blocks(&ring), 1);
    drop(clone);
    let u = arena(&ring);
    assert_eq!((u.blocks_in_use, u.bytes_in_use), (0, 0));

    // Inline payloads clone too (no block involved).
    ring.send(b"inline").expect("send");
    let p = ring.recv_zerocopy().expect("recv");
    assert!(!p.is_zerocopy());
    let q = p.clone();
    drop(p);
    assert_eq!(&q[..], b"inline");

    // A payload outlives every handle of its ring.
    ring.send(&a).expect("send");
    let p = ring.recv_zerocopy().expect("recv");
    drop(ring);
    assert_eq!(*p, a[..]);
    drop(p);
}

#[test]
fn forward_on_a_full_ring_keeps_the_payload_and_leaks_nothing() {
    let ring = FusionRing::new(4).expect("ring");
    let a = pattern(1, 6000);
    ring.send_with_priority(&a, PriorityClass::High)
        .expect("send");
    let p = ring.recv_zerocopy().expect("recv");
    for i in 0..4 {
        ring.send(&pattern(10 + i, 8)).expect("fill");
    }
    let before = snapshot(&ring);
    assert_eq!(ring.forward(&p, p.priority()), Err(RingError::Full));
    assert_eq!(snapshot(&ring), before);
    assert_eq!(*p, a[..]);
    for i in 0..4 {
        expect_next(&ring, &pattern(10 + i, 8), PriorityClass::Normal);
    }
    // Forwarded with no copy: the same block, one more owner.
    ring.forward(&p, PriorityClass::Low).expect("forward");
    assert_eq!(blocks(&ring), 1);
    drop(p);
    assert_eq!(blocks(&ring), 1, "the queued message holds the block");
    let q = ring.recv_zerocopy().expect("forwarded copy");
    assert_eq!((&q[..], q.priority()), (&a[..], PriorityClass::Low));

    // Forwarding into another ring copies.
    let other = FusionRing::new(4).expect("other ring");
    other.forward(&q, PriorityClass::RealTime).expect("forward");
    drop(q);
    assert_eq!(blocks(&ring), 0);
    assert_eq!(blocks(&other), 1);
    expect_next(&other, &a, PriorityClass::RealTime);
    assert_eq!(blocks(&other), 0);
}

// ---------------------------------------------------------------------------
// RingSync

#[test]
fn ring_sync_waits_time_out_and_return_once_ready() {
    let ring = FusionRing::new(8).expect("ring");
    let sync = RingSync::new(ring.as_ring());
    let start = Instant::now();
    assert_eq!(sync.wait_not_empty_timeout(T), Err(RingError::Timeout));
    assert_waited(start, T, "wait_not_empty_timeout");

    // A message from another thread ends the wait.
    let waiter = ring.clone();
    let rx = spawn(move || {
        let r = waiter.sync().wait_not_empty_timeout(LIMIT);
        (r, waiter.as_ring().len())
    });
    thread::sleep(Duration::from_millis(30));
    ring.send(b"wake").expect("send");
    let (r, len) = finished(&rx, "wait_not_empty_timeout");
    assert_eq!(r, Ok(()));
    assert!(len <= 1);
    assert_eq!(sync.wait_not_empty(), Ok(()), "ready: returns at once");
    expect_next(&ring, b"wake", PriorityClass::Normal);

    // Not full: the mirror image.
    for i in 0..8 {
        ring.send(&pattern(i, 8)).expect("fill");
    }
    let start = Instant::now();
    assert_eq!(
        ring.sync().wait_not_full_timeout(T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "wait_not_full_timeout");
    let waiter = ring.clone();
    let rx = spawn(move || waiter.sync().wait_not_full_timeout(LIMIT));
    thread::sleep(Duration::from_millis(30));
    expect_next(&ring, &pattern(0, 8), PriorityClass::Normal);
    assert_eq!(finished(&rx, "wait_not_full_timeout"), Ok(()));
    assert_eq!(sync.wait_not_full(), Ok(()));
}

#[test]
fn spurious_wakes_do_not_disturb_blocked_calls() {
    let ring = FusionRing::new(8).expect("ring");

    // A receiver blocked on an empty ring: wake_readers must not make it
    // return without a message.
    let receiver = ring.clone();
    let rx = spawn(move || {
        let mut buf = [0u8; 64];
        receiver.recv_blocking(&mut buf).map(|n| buf[..n].to_vec())
    });
    for _ in 0..50 {
        ring.sync().wake_readers();
        ring.sync().wake_writers();
        thread::sleep(Duration::from_millis(2));
    }
    still_blocked(&rx, "recv_blocking after wake_readers");
    assert_eq!(ring.stats().tail, 0);
    ring.send(b"the one").expect("send");
    assert_eq!(finished(&rx, "recv_blocking"), Ok(b"the one".to_vec()));

    // A sender blocked on a full ring: wake_writers must not make it send
    // (or fail) without a free slot. The receiver above has gone; this
    // handle receives from now on (a sender with no live receiver would
    // get `Disconnected`, see `disconnected_*` tests).
    assert_eq!(ring.recv(&mut [0u8; 8]), Err(RingError::Empty));
    for i in 0..8 {
        ring.send(&pattern(i, 8)).expect("fill");
    }
    let sender = ring.clone();
    let rx = spawn(move || sender.send_blocking(b"last"));
    for _ in 0..50 {
        ring.sync().wake_writers();
        ring.sync().wake_readers();
        thread::sleep(Duration::from_millis(2));
    }
    still_blocked(&rx, "send_blocking after wake_writers");
    assert_eq!(ring.stats().head, 9);
    expect_next(&ring, &pattern(0, 8), PriorityClass::Normal);
    assert_eq!(finished(&rx, "send_blocking"), Ok(()));
    for i in 1..8 {
        expect_next(&ring, &pattern(i, 8), PriorityClass::Normal);
    }
    expect_next(&ring, b"last", PriorityClass::Normal);
    assert_eq!(ring.recv(&mut [0u8; 8]), Err(RingError::Empty));
}

// ---------------------------------------------------------------------------
// Mixed batches

/// Receives `want` (bytes, priority) in order, alternating the three ways
/// of receiving.
fn receive_in_order(ring: &FusionRing, want: &[(Vec<u8>, PriorityClass)]) {
    let mut buf = vec![0u8; ring.max_message()];
    let mut k = 0;
    let mut batch: Vec<Payload> = Vec::new();
    while k < want.len() {
        let (bytes, priority) = &want[k];
        match k % 3 {
            0 => {
                let (n, p, _) = ring.recv_with_meta(&mut buf).expect("recv_with_meta");
                assert!(buf[..n] == bytes[..], "message {k}: bytes");
                assert_eq!(p, *priority, "message {k}: priority");
                k += 1;
            }
            1 => {
                let p = ring.recv_zerocopy().expect("recv_zerocopy");
                assert!(p[..] == bytes[..], "message {k}: bytes");
                assert_eq!(p.priority(), *priority, "message {k}: priority");
                assert_eq!(p.is_zerocopy(), bytes.len() > INLINE_MAX, "message {k}");
                k += 1;
            }
            _ => {
                batch.clear();
                let n = ring.recv_batch(&mut batch, 4).expect("recv_batch");
                assert_eq!(n, batch.len());
                for p in &batch {
                    let (bytes, priority) = &want[k];
                    assert!(p[..] == bytes[..], "message {k}: bytes");
                    assert_eq!(p.priority(), *priority, "message {k}: priority");
                    k += 1;
                }
            }
        }
    }
    drop(batch);
    assert_eq!(ring.recv(&mut buf), Err(RingError::Empty), "extra messages");
}

#[test]
fn a_mixed_batch_arrives_in_order_with_its_bytes_and_priorities() {
    let ring = FusionRing::new(64).expect("ring");
    let sizes = [0, 1, 40, 41, 64, 65, 7, 4096, 100_000, 1 << 20, 33, 200];
    let want: Vec<(Vec<u8>, PriorityClass)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| (pattern(i as u64, len), PriorityClass::ALL[i % 5]))
        .collect();
    let batch: Vec<BatchMessage<'_>> = want.iter().map(|(b, p)| BatchMessage::new(b, *p)).collect();
    assert_eq!(ring.send_batch(&batch), Ok(want.len()));
    let s = ring.stats();
    let zerocopy = sizes.iter().filter(|&&l| l > INLINE_MAX).count() as u64;
    assert_eq!(
        (s.zerocopy_count, s.inline_count),
        (zerocopy, 12 - zerocopy)
    );
    assert_eq!(s.arena.blocks_in_use, zerocopy);
    assert_eq!(ring.send_batch(&[]), Ok(0));
    receive_in_order(&ring, &want);
    assert_eq!(blocks(&ring), 0);
}

#[test]
fn a_batch_larger_than_the_free_slots_sends_a_prefix_and_frees_the_rest() {
    let ring = FusionRing::new(8).expect("ring");
    let mut want: Vec<(Vec<u8>, PriorityClass)> = Vec::new();
    for i in 0..3 {
        let m = pattern(i, 12);
        ring.send(&m).expect("prefill");
        want.push((m, PriorityClass::Normal));
    }
    let msgs: Vec<(Vec<u8>, PriorityClass)> = (0..10)
        .map(|i| {
            let len = if i % 2 == 0 { 20 } else { 1000 + i };
            (pattern(100 + i as u64, len), PriorityClass::ALL[i % 5])
        })
        .collect();
    let batch: Vec<BatchMessage<'_>> = msgs.iter().map(|(b, p)| BatchMessage::new(b, *p)).collect();
    assert_eq!(ring.send_batch(&batch), Ok(5));
    // Blocks of the 5 unsent messages (2 of them zero-copy) were given back.
    assert_eq!(blocks(&ring), 2, "only the queued zero-copy messages");
    let before = snapshot(&ring);
    assert_eq!(ring.send_batch(&batch), Err(RingError::Full));
    assert_eq!(snapshot(&ring), before, "a batch into a full ring");
    want.extend(msgs[..5].iter().cloned());
    receive_in_order(&ring, &want);
    assert_eq!(blocks(&ring), 0);

    // Across chunks (a batch is claimed 64 messages at a time): 200
    // messages into 128 slots.
    let ring = FusionRing::new(128).expect("ring");
    let msgs: Vec<(Vec<u8>, PriorityClass)> = (0..200)
        .map(|i| {
            let len = if i % 3 == 0 { 41 + 7 * i } else { i % 41 };
            (pattern(1000 + i as u64, len), PriorityClass::ALL[i % 5])
        })
        .collect();
    let batch: Vec<BatchMessage<'_>> = msgs.iter().map(|(b, p)| BatchMessage::new(b, *p)).collect();
    assert_eq!(ring.send_batch(&batch), Ok(128));
    let queued_zerocopy = msgs[..128]
        .iter()
        .filter(|(b, _)| b.len() > INLINE_MAX)
        .count() as u64;
    assert_eq!(blocks(&ring), queued_zerocopy);
    receive_in_order(&ring, &msgs[..128]);
    assert_eq!(ring.send_batch(&batch[128..]), Ok(72));
    receive_in_order(&ring, &msgs[128..]);
    assert_eq!(blocks(&ring), 0);
}

#[test]
fn a_batch_that_exhausts_the_arena_sends_a_consistent_prefix() {
    let ring = two_block_ring(16, true);
    let msgs: Vec<(Vec<u8>, PriorityClass)> = (0..6)
        .map(|i| {
            let len = if i % 2 == 0 { 10 } else { 4096 };
            (pattern(i as u64, len), PriorityClass::Normal)
        })
        .collect();
    let batch: Vec<BatchMessage<'_>> = msgs.iter().map(|(b, p)| BatchMessage::new(b, *p)).collect();
    // The third block cannot be had. Whatever the call reports, the ring
    // must hold exactly the prefix it reports, and the arena exactly that
    // prefix's blocks.
    let sent = match ring.send_batch(&batch) {
        Ok(n) => n,
        Err(RingError::ArenaExhausted { len: 4096 }) => 0,
        Err(e) => panic!("send_batch: {e}"),
    };
    assert!(sent < 6);
    assert_eq!(ring.as_ring().len(), sent);
    let queued_blocks = msgs[..sent].iter().filter(|(b, _)| b.len() > 40).count();
    assert_eq!(blocks(&ring), queued_blocks as u64);
    receive_in_order(&ring, &msgs[..sent]);
    assert_eq!(blocks(&ring), 0);
}

// ---------------------------------------------------------------------------
// Rings without wake-ups

#[test]
fn a_ring_without_wakeups_still_blocks_by_polling() {
    let ring = FusionRing::with_config(&Config::new(8).wakeups(false)).expect("ring");
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    assert_eq!(ring.recv_with_timeout(&mut buf, T), Err(RingError::Timeout));
    assert_waited(start, T, "recv_with_timeout without wake-ups");
    let start = Instant::now();
    assert_eq!(
        ring.sync().wait_not_empty_timeout(T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "wait_not_empty_timeout without wake-ups");

    // recv_blocking returns once another thread sends (nobody wakes it: it
    // polls).
    let receiver = ring.clone();
    let rx = spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let first = receiver.recv_blocking(&mut buf).map(|n| buf[..n].to_vec());
        let second = receiver
            .recv_with_timeout(&mut buf, LIMIT)
            .map(|n| buf[..n].to_vec());
        let third = receiver.recv_zerocopy_timeout(None).map(|p| p.to_vec());
        (first, second, third)
    });
    thread::sleep(Duration::from_millis(30));
    ring.send(b"polled").expect("send");
    thread::sleep(Duration::from_millis(30));
    ring.send(&pattern(1, 50_000)).expect("send");
    thread::sleep(Duration::from_millis(30));
    ring.send(&pattern(2, 3000)).expect("send");
    let (first, second, third) = finished(&rx, "receives without wake-ups");
    assert_eq!(first, Ok(b"polled".to_vec()));
    assert_eq!(second, Ok(pattern(1, 50_000)));
    assert_eq!(third, Ok(pattern(2, 3000)));

    // send_blocking on a full ring returns once a slot is freed.
    for i in 0..8 {
        ring.send(&pattern(i, 8)).expect("fill");
    }
    let start = Instant::now();
    assert_eq!(ring.send_with_timeout(b"late", T), Err(RingError::Timeout));
    assert_waited(start, T, "send_with_timeout without wake-ups");
    let sender = ring.clone();
    let rx = spawn(move || sender.send_blocking(b"last"));
    still_blocked(&rx, "send_blocking on a full ring");
    expect_next(&ring, &pattern(0, 8), PriorityClass::Normal);
    assert_eq!(finished(&rx, "send_blocking without wake-ups"), Ok(()));
    for i in 1..8 {
        expect_next(&ring, &pattern(i, 8), PriorityClass::Normal);
    }
    expect_next(&ring, b"last", PriorityClass::Normal);
    assert_eq!(blocks(&ring), 0);
}

// ---------------------------------------------------------------------------
// Loans are tied to their ring

/// `send_loan<'r>(&'r self, loan: Loan<'r>)` accepts a loan taken from
/// *another* ring (the lifetimes unify), and nothing checks that the block
/// belongs to this ring's arena (`forward` does check, and copies). The
/// descriptor (an offset into the other arena) is published as is: this
/// ring's receivers read whatever block of *their* arena is at that offset,
/// the loan's block in the other ring is never freed, and if a block of
/// this ring is at that offset it gets two messages with one reference
/// (freed while still read, then reused).
///
/// Correct behaviour: refuse the loan (give it back in the `LoanError`), or
/// copy it like `forward` does; either way the receiver never sees bytes
/// that were not sent, and both arenas end up empty.
#[test]
fn a_loan_sent_on_another_ring_is_refused_or_delivered_intact() {
    let a = FusionRing::new(8).expect("ring a");
    let b = FusionRing::new(8).expect("ring b");
    // b's first block (offset 0, class 4, generation 0) is queued.
    let own = vec![0xBBu8; 1000];
    b.send(&own).expect("b's own message");
    // a's first block has the same descriptor.
    let mut loan = a.loan(1000).expect("loan from a");
    loan.fill(0xAA);
    let delivered = match b.send_loan(loan, PriorityClass::Normal) {
        Ok(()) => true,
        Err(LoanError { error, loan }) => {
            assert!(
                loan.iter().all(|&x| x == 0xAA),
                "refused ({error}): loan intact"
            );
            drop(loan);
            false
        }
    };
    let first = b.recv_zerocopy().expect("b's own message");
    assert!(first.iter().all(|&x| x == 0xBB), "b's own message");
    if delivered {
        let second = b.recv_zerocopy().expect("the loan's message");
        assert_eq!(second.len(), 1000);
        assert!(
            second.iter().all(|&x| x == 0xAA),
            "the message sent from a's loan reads b's block instead: first bytes {:02x?}",
            &second[..8]
        );
    }
    assert_eq!(blocks(&a), 0, "a's block was never given back");
    drop(first);
    assert_eq!(blocks(&b), 0);
}
