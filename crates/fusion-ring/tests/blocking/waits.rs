//! Blocking calls in one process: they wait for what they need (a slot,
//! a message, an arena block) and return once another thread provides it,
//! not before (spurious wakes), with wake-ups or, on a ring without them,
//! by polling. `RingSync`'s waits likewise.

use std::thread;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, PriorityClass, RingError, RingSync};

use crate::common::fusion::{
    assert_waited, blocks, expect_next, finished, pattern, spawn, still_blocked, two_block_ring,
    LIMIT, T,
};

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
        let third = receiver.recv_zerocopy_blocking().map(|p| p.to_vec());
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
