//! Every error a call on a ring promises: the exact variant, and that
//! nothing was lost or changed by the failed call. (The errors of naming,
//! opening and adopting segments are `named_segments`'s.)

#![cfg(not(fusion_ring_loom))]

mod common;

use std::time::Duration;

use fusion_ring::{
    BatchMessage, Config, FusionRing, InlineMessage, PriorityClass, RingError, UltraFastRing,
    INLINE_MAX,
};
use testkit::names::ShmName;

use common::fusion::{self, blocks, expect_next, finished, pattern, spawn, T};

// ---------------------------------------------------------------------------
// Helpers

fn snapshot(ring: &UltraFastRing) -> (fusion_ring::RingStats, usize, fusion_ring::RingStats) {
    (ring.as_ring().stats(), ring.as_ring().len(), ring.stats())
}

// ---------------------------------------------------------------------------
// Message size and buffers (both ring types)

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
            sender.send_blocking_with_priority(&b, PriorityClass::Low),
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
    let before = fusion::snapshot(&ring);
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
        ring.recv_blocking_with_meta(&mut small).map(|(n, _, _)| n),
        Err(err)
    );
    assert_eq!(
        ring.recv(&mut [0u8; 4999]),
        Err(RingError::BufferTooSmall {
            needed: 5000,
            got: 4999
        })
    );
    assert_eq!(
        fusion::snapshot(&ring),
        before,
        "still queued, block still held"
    );

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

        let name = ShmName::new("fr-err-badcap");
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
