//! Timeouts: a call that times out took at least its timeout, consumed or
//! sent nothing, and gave back any block it had taken.

use std::time::Instant;

use fusion_ring::{FusionRing, PriorityClass, RingError};

use crate::common::fusion::{
    arena, assert_waited, blocks, expect_next, pattern, snapshot, two_block_ring, T,
};

#[test]
fn recv_with_timeout_on_an_empty_ring_times_out_and_consumes_nothing() {
    let ring = FusionRing::new(8).expect("ring");
    let mut buf = vec![0u8; 1 << 20];

    let start = Instant::now();
    assert_eq!(ring.recv_with_timeout(&mut buf, T), Err(RingError::Timeout));
    assert_waited(start, T, "recv_with_timeout");

    let start = Instant::now();
    assert_eq!(
        ring.recv_zerocopy_timeout(T).map(|p| p.len()),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "recv_zerocopy_timeout");

    let start = Instant::now();
    assert_eq!(
        ring.recv_deadline(&mut buf, Instant::now() + T),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "recv_deadline");
    let s = ring.stats();
    assert_eq!((s.head, s.tail, s.received), (0, 0, 0));

    // Nothing was lost or consumed: messages sent now are all received.
    ring.send(b"after").expect("send");
    ring.send(&pattern(7, 5000)).expect("send");
    assert_eq!(ring.recv_with_timeout(&mut buf, T), Ok(5));
    assert_eq!(&buf[..5], b"after");
    let p = ring.recv_zerocopy_timeout(T).expect("zero-copy");
    assert_eq!(*p, pattern(7, 5000)[..]);
    drop(p);

    // A deadline already past still takes a message that is there.
    ring.send(b"ready").expect("send");
    let (n, p, _) = ring
        .recv_deadline(&mut buf, Instant::now())
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
        ring.send_deadline(
            &pattern(98, 1 << 20),
            PriorityClass::High,
            Instant::now() + T
        ),
        Err(RingError::Timeout)
    );
    assert_waited(start, T, "send_deadline (1 MiB)");
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
