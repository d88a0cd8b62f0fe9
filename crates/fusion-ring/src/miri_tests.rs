//! Tests for Miri: they drive the library's unsafe code for real (segment
//! pointers, the slot protocol, arena blocks, loans and payloads, the futex
//! wait / wake) on a heap-backed segment (`segment::anonymous_backing`
//! under `cfg(miri)`), so Miri checks every access for undefined behaviour
//! and every pair of threads for data races.
//!
//! ```text
//! cargo +nightly miri test -p fusion-ring --lib miri_
//! ```
//! (see docs/SANITIZERS.md). Sizes are small: Miri interprets the code
//! orders of magnitude slower than it runs natively.

use std::time::Duration;

use crate::*;

/// The `k`-th byte of message `i`.
fn byte(i: usize, k: usize) -> u8 {
    (i.wrapping_mul(31) ^ k.wrapping_mul(7)) as u8
}

fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| byte(i, k)).collect()
}

/// A ring with a small arena: 16 KiB of blocks, messages up to 2000 bytes.
fn small_fusion(capacity: usize) -> FusionRing {
    FusionRing::with_config(
        &Config::new(capacity)
            .arena_bytes(16 << 10)
            .max_message(2000),
    )
    .unwrap()
}

fn prio(i: usize) -> PriorityClass {
    PriorityClass::from_u8((i % 5) as u8).unwrap()
}

#[test]
fn miri_ultra_send_recv_wrap_around() {
    let ring = UltraFastRing::new(4).unwrap();
    let mut buf = [0u8; INLINE_MAX];
    let (mut sent, mut next_out) = (0, 0);
    // Bursts of 1..=4 messages, each drained: 10 bursts = 23 messages, so
    // the positions wrap around the 4 slots six times at varying offsets.
    for burst in 0..10 {
        for _ in 0..burst % 4 + 1 {
            let len = sent % (INLINE_MAX + 1);
            ring.send_fast(&message(sent, len), prio(sent)).unwrap();
            sent += 1;
        }
        if burst % 4 == 3 {
            assert_eq!(
                ring.send_fast(b"x", PriorityClass::Normal),
                Err(RingError::Full)
            );
        }
        while let Ok((n, p, _)) = ring.recv_fast(&mut buf) {
            assert_eq!(&buf[..n], &message(next_out, next_out % 41)[..]);
            assert_eq!(p, prio(next_out));
            next_out += 1;
        }
    }
    assert_eq!((sent, next_out), (23, 23));
    assert_eq!(ring.recv_fast(&mut buf), Err(RingError::Empty));
    assert_eq!(
        ring.send_fast(&[0; INLINE_MAX + 1], PriorityClass::Normal),
        Err(RingError::TooLarge {
            len: INLINE_MAX + 1,
            max: INLINE_MAX
        })
    );
    // Too small a buffer: the message stays queued; an exact one takes it.
    ring.send_fast(&message(99, 12), PriorityClass::Low)
        .unwrap();
    assert!(matches!(
        ring.recv_fast(&mut buf[..11]),
        Err(RingError::BufferTooSmall { needed: 12, .. })
    ));
    let (n, p, _) = ring.recv_fast(&mut buf[..12]).unwrap();
    assert_eq!((&buf[..n], p), (&message(99, 12)[..], PriorityClass::Low));
}

#[test]
fn miri_ultra_batches_wrap_around() {
    let ring = UltraFastRing::new(8).unwrap();
    let mut out = [InlineMessage::default(); 6];
    let (mut sent, mut got) = (0, 0);
    for round in 0..6 {
        let msgs: Vec<Vec<u8>> = (sent..sent + 5).map(|i| message(i, i % 41)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        // Rounds 3 and 5 find 5 slots taken: only a prefix of 3 fits.
        let n = ring.send_batch(&refs, prio(round)).unwrap();
        assert_eq!(n, if round == 3 || round == 5 { 3 } else { 5 });
        sent += n;
        let take = if round % 2 == 0 { 2 } else { 6 };
        let m = ring.recv_batch(&mut out[..take]).unwrap();
        for msg in &out[..m] {
            assert_eq!(msg.as_bytes(), &message(got, got % 41)[..]);
            got += 1;
        }
    }
    while let Ok(m) = ring.recv_batch(&mut out) {
        for msg in &out[..m] {
            assert_eq!(msg.as_bytes(), &message(got, got % 41)[..]);
            got += 1;
        }
    }
    assert_eq!(got, sent);
    assert!(ring.as_ring().stats().head > 16, "wrapped at least twice");
    assert_eq!(ring.send_batch(&[], PriorityClass::Normal), Ok(0));
    assert!(matches!(
        ring.send_batch(&[b"ok", &[0; 41]], PriorityClass::Normal),
        Err(RingError::TooLarge { len: 41, .. })
    ));
    assert_eq!(ring.recv_batch(&mut out), Err(RingError::Empty));
}

#[test]
fn miri_ultra_stats() {
    let ring = UltraFastRing::new(8).unwrap();
    let other = ring.clone(); // a second participant, stats summed
    for i in 0..6 {
        ring.send_fast(&message(i, 10), prio(i)).unwrap();
    }
    let mut buf = [0u8; 40];
    for _ in 0..4 {
        other.recv_fast(&mut buf).unwrap();
    }
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (6, 4));
    assert_eq!(s.lanes[0].sent, 2);
    assert_eq!(s.lanes[0].sent_bytes, 20);
    assert_eq!(s.lanes[0].inline_sent, 2);
    assert_eq!(s.lanes.iter().map(|l| l.received_bytes).sum::<u64>(), 40);
    assert!(s.lanes.iter().map(LaneStats::timed).sum::<u64>() <= 4);
    drop(other); // folds its counters into the shared entry
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (6, 4));
    // Without timestamps every latency is 0.
    let quiet = UltraFastRing::with_config(&Config::new(4).timestamps(false)).unwrap();
    quiet.send_fast(b"t", PriorityClass::High).unwrap();
    assert_eq!(quiet.recv_fast(&mut buf).unwrap().2, 0);
}

#[test]
fn miri_default_constructors() {
    // The default config: a 32 MiB arena (one zeroed heap block under Miri).
    let fusion = FusionRing::new(8).unwrap();
    fusion.send(&message(1, 5000)).unwrap();
    let mut buf = vec![0u8; 5000];
    assert_eq!(fusion.recv(&mut buf).unwrap(), 5000);
    assert_eq!(buf, message(1, 5000));
    let ring = Ring::new(8).unwrap();
    send_inline(&ring, b"low level").unwrap();
    let s = ring.stats();
    assert_eq!((s.head, s.tail, s.inline_count, s.capacity), (1, 0, 1, 8));
    let ultra = UltraFastRing::with_default_capacity().unwrap();
    assert_eq!(ultra.as_ring().capacity(), DEFAULT_CAPACITY);
    assert!(matches!(
        UltraFastRing::new(3),
        Err(RingError::InvalidCapacity { .. })
    ));
    // Named and fd rings need real files: unsupported under Miri.
    assert!(matches!(
        Ring::create("miri", &Config::new(8)),
        Err(RingError::Io { .. })
    ));
}

#[test]
fn miri_fusion_copying_send_recv() {
    let ring = small_fusion(4);
    ring.send(b"small").unwrap();
    ring.send(&message(2, 1000)).unwrap();
    let mut buf = vec![0u8; 2000];
    // Exact size, inline.
    assert_eq!(ring.recv(&mut buf[..5]).unwrap(), 5);
    assert_eq!(&buf[..5], b"small");
    // One byte short, zero-copy: stays queued.
    assert_eq!(
        ring.recv(&mut buf[..999]),
        Err(RingError::BufferTooSmall {
            needed: 1000,
            got: 999
        })
    );
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 1);
    // Exact size, zero-copy: copied out, block freed.
    let (n, p, _) = ring.recv_with_meta(&mut buf[..1000]).unwrap();
    assert_eq!((n, p), (1000, PriorityClass::Normal));
    assert_eq!(&buf[..1000], &message(2, 1000)[..]);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
    assert!(matches!(
        ring.send(&[0; 2001]),
        Err(RingError::TooLarge {
            len: 2001,
            max: 2000
        })
    ));
    // Mixed batch: one claim for inline and zero-copy messages.
    let (a, b) = (message(3, 40), message(4, 41));
    let batch = [
        BatchMessage::new(&a, PriorityClass::High),
        BatchMessage::new(&b, PriorityClass::Low),
        BatchMessage::new(b"", PriorityClass::Background),
    ];
    assert_eq!(send_batch(&ring, &batch).unwrap(), 3);
    let mut out = Vec::new();
    assert_eq!(ring.recv_batch(&mut out, 8).unwrap(), 3);
    assert_eq!((&out[0][..], out[0].is_zerocopy()), (&a[..], false));
    assert_eq!((&out[1][..], out[1].is_zerocopy()), (&b[..], true));
    assert_eq!(out[1].priority(), PriorityClass::Low);
    assert!(out[2].is_empty());
    drop(out);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

#[test]
fn miri_fusion_loans_and_payloads() {
    let ring = small_fusion(4);
    // Loan, fill in place, shorten, send without a copy.
    let mut loan = ring.loan(300).unwrap();
    for (k, b) in loan.iter_mut().enumerate() {
        *b = byte(5, k);
    }
    loan.truncate(200);
    ring.send_loan(loan, PriorityClass::RealTime)
        .map_err(|e| e.error)
        .unwrap();
    let a = ring.recv_zerocopy().unwrap();
    assert!(a.is_zerocopy());
    assert_eq!(
        (&a[..], a.priority()),
        (&message(5, 200)[..], PriorityClass::RealTime)
    );
    // Clone keeps the block alive after the original goes.
    let b = a.clone();
    drop(a);
    assert_eq!(&b[..], &message(5, 200)[..]);
    // Forward on the same segment: a new reference, no copy.
    ring.forward(&b, PriorityClass::High).unwrap();
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 1);
    let c = ring.recv_zerocopy().unwrap();
    assert_eq!(&c[..], &b[..]);
    drop(b);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 1);
    // Forward to another ring: copied into its arena.
    let other = small_fusion(4);
    other.forward(&c, PriorityClass::Normal).unwrap();
    drop(c);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
    let d = other.recv_zerocopy().unwrap();
    assert_eq!(&d[..], &message(5, 200)[..]);
    // An inline payload, forwarded (copied), sent across threads.
    ring.send(b"inline").unwrap();
    let e = ring.recv_zerocopy().unwrap();
    assert!(!e.is_zerocopy());
    other.forward(&e, PriorityClass::Low).unwrap();
    let moved = std::thread::spawn(move || (d.to_vec(), e.len()))
        .join()
        .unwrap();
    assert_eq!(moved, (message(5, 200), 6));
    assert_eq!(&other.recv_zerocopy().unwrap()[..], b"inline");
    // A loan of one ring sent on another is copied there.
    let mut foreign = other.loan(100).unwrap();
    foreign.copy_from_slice(&message(6, 100));
    ring.send_loan(foreign, PriorityClass::Normal)
        .map_err(|e| e.error)
        .unwrap();
    assert_eq!(other.as_ring().arena_usage().blocks_in_use, 0);
    assert_eq!(&ring.recv_zerocopy().unwrap()[..], &message(6, 100)[..]);
    // The seeds' free functions.
    let mut z = allocate_zerocopy_buffer(&ring, 64).unwrap();
    z.fill(9);
    send_zerocopy(&ring, z).map_err(|e| e.error).unwrap();
    assert_eq!(&ring.recv_zerocopy().unwrap()[..], &[9; 64][..]);
    // A full ring hands the loan back, still writable; dropping frees it.
    for _ in 0..4 {
        ring.send(b"fill").unwrap();
    }
    let mut loan = ring.loan(500).unwrap();
    loan[499] = 1;
    let err = ring.send_loan(loan, PriorityClass::Normal).unwrap_err();
    assert_eq!(err.error, RingError::Full);
    let mut loan = err.loan;
    loan[0] = 2;
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 1);
    drop(loan);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

#[test]
fn miri_arena_exhaustion_and_free_list_reuse() {
    // 512 bytes of blocks: four class-0 blocks (64 B header + 64 B).
    let cfg = Config::new(8).arena_bytes(512).max_message(128);
    let ring = FusionRing::with_config(&cfg).unwrap();
    let mut loans: Vec<Loan<'_>> = (0..4).map(|_| ring.loan(64).unwrap()).collect();
    assert_eq!(
        ring.loan(41).unwrap_err(),
        RingError::ArenaExhausted { len: 41 }
    );
    assert_eq!(
        ring.send(&[1; 50]),
        Err(RingError::ArenaExhausted { len: 50 })
    );
    assert_eq!(ring.as_ring().len(), 0, "nothing sent");
    for (i, l) in loans.iter_mut().enumerate() {
        l.fill(i as u8); // disjoint blocks: Miri would see overlapping writes
    }
    for (i, l) in loans.iter().enumerate() {
        assert!(l.iter().all(|&b| b == i as u8));
    }
    let u = ring.as_ring().arena_usage();
    assert_eq!(
        (u.blocks_in_use, u.bytes_carved, u.capacity_bytes),
        (4, 512, 512)
    );
    // Free two, reuse them from the free list (nothing more is carved).
    loans.truncate(2);
    ring.send(&message(7, 60)).unwrap();
    ring.send(&message(8, 64)).unwrap();
    assert_eq!(
        ring.loan(64).unwrap_err(),
        RingError::ArenaExhausted { len: 64 }
    );
    let mut buf = [0u8; 128];
    assert_eq!(ring.recv(&mut buf).unwrap(), 60);
    assert_eq!(&buf[..60], &message(7, 60)[..]);
    drop(loans);
    let p = ring.recv_zerocopy().unwrap();
    assert_eq!(&p[..], &message(8, 64)[..]);
    let u = ring.as_ring().arena_usage();
    assert_eq!((u.blocks_in_use, u.bytes_carved), (1, 512));
    drop(p);
    // A larger class: no room left to carve, and only class-0 blocks free.
    assert_eq!(
        ring.loan(128).unwrap_err(),
        RingError::ArenaExhausted { len: 128 }
    );
    let again: Vec<Loan<'_>> = (0..4).map(|_| ring.loan(64).unwrap()).collect();
    assert_eq!(ring.as_ring().arena_usage().bytes_carved, 512);
    drop(again);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);

    // A freed larger block serves a smaller request once its class is gone.
    let ring = FusionRing::with_config(&cfg).unwrap();
    drop(ring.loan(128).unwrap()); // carves 192 bytes, then frees them
    let small: Vec<Loan<'_>> = (0..3).map(|_| ring.loan(10).unwrap()).collect();
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 3);
    assert_eq!(
        ring.loan(10).unwrap_err(),
        RingError::ArenaExhausted { len: 10 }
    );
    drop(small);
}

#[test]
fn miri_futex_timeouts() {
    let ring = small_fusion(2);
    let mut buf = [0u8; 64];
    // Empty: the receiver sleeps on the futex (with a timeout) and gives up.
    assert_eq!(
        ring.recv_with_timeout(&mut buf, Duration::from_millis(2)),
        Err(RingError::Timeout)
    );
    assert_eq!(
        ring.sync().wait_not_empty_timeout(Duration::from_millis(1)),
        Err(RingError::Timeout)
    );
    ring.send(b"a").unwrap();
    ring.send(b"b").unwrap();
    // Full: the sender sleeps and gives up, nothing sent.
    assert_eq!(
        ring.send_with_timeout(b"c", Duration::from_millis(2)),
        Err(RingError::Timeout)
    );
    assert_eq!(
        ring.send_with_timeout(&[0; 100], Duration::from_millis(2)),
        Err(RingError::Timeout)
    );
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
    ring.sync().wake_readers();
    ring.sync().wake_writers();
    assert_eq!(ring.recv_blocking(&mut buf).unwrap(), 1);
    let p = ring
        .recv_zerocopy_timeout(Duration::from_millis(1))
        .unwrap();
    assert_eq!(&p[..], b"b");
}

/// Producer and consumer on two threads, each with its own handle, through
/// a 4-slot ring with a small arena: both sides block (futex) often.
#[test]
fn miri_futex_two_threads_fusion_blocking() {
    const N: usize = 200;
    let cfg = Config::new(4).arena_bytes(2048).max_message(200);
    let ring = FusionRing::with_config(&cfg).unwrap();
    let producer = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                // 0..=120 bytes: inline and zero-copy, classes 0..=1.
                let data = message(i, (i * 13) % 121);
                if i % 7 == 0 {
                    let mut loan = loop {
                        match ring.loan(data.len().max(41)) {
                            Ok(l) => break l,
                            Err(RingError::ArenaExhausted { .. }) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    };
                    loan.truncate(data.len());
                    loan[..data.len()].copy_from_slice(&data);
                    let mut pending = loan;
                    loop {
                        match ring.send_loan(pending, prio(i)) {
                            Ok(()) => break,
                            Err(e) if e.error == RingError::Full => {
                                pending = e.loan;
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("{}", e.error),
                        }
                    }
                } else {
                    ring.send_blocking_with_priority(&data, prio(i)).unwrap();
                }
            }
        })
    };
    let mut buf = [0u8; 200];
    let mut held = Vec::new();
    for i in 0..N {
        let want = message(i, (i * 13) % 121);
        if i % 3 == 0 {
            let p = ring.recv_zerocopy_blocking().unwrap();
            assert_eq!((&p[..], p.priority()), (&want[..], prio(i)));
            // Hold a few payloads a while: their blocks stay live while
            // the producer reuses others from the free lists.
            held.push(p);
            if held.len() > 2 {
                held.remove(0);
            }
        } else {
            let (n, p, _) = ring.recv_blocking_with_meta(&mut buf).unwrap();
            assert_eq!((&buf[..n], p), (&want[..], prio(i)));
        }
    }
    producer.join().unwrap();
    drop(held);
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (N as u64, N as u64));
    assert_eq!(s.inline_count + s.zerocopy_count, N as u64);
    assert_eq!(s.arena.blocks_in_use, 0);
    assert_eq!((s.head, s.tail), (N as u64, N as u64));
}

/// Two threads on the inline ring, non-blocking calls and batches, spinning
/// (with a yield) on `Full` / `Empty`.
#[test]
fn miri_two_threads_ultra_batches() {
    const N: usize = 300;
    let ring = UltraFastRing::new(8).unwrap();
    let producer = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            let msgs: Vec<Vec<u8>> = (0..N).map(|i| message(i, i % 41)).collect();
            let mut i = 0;
            while i < N {
                let end = (i + 1 + i % 5).min(N);
                let refs: Vec<&[u8]> = msgs[i..end].iter().map(Vec::as_slice).collect();
                match ring.send_batch(&refs, prio(i)) {
                    Ok(n) => i += n,
                    Err(RingError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let mut out = [InlineMessage::default(); 3];
    let mut buf = [0u8; 40];
    let mut got = 0;
    while got < N {
        if got % 2 == 0 {
            match ring.recv_batch(&mut out) {
                Ok(n) => {
                    for m in &out[..n] {
                        assert_eq!(m.as_bytes(), &message(got, got % 41)[..]);
                        got += 1;
                    }
                }
                Err(RingError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        } else {
            match ring.recv_fast(&mut buf) {
                Ok((n, _, _)) => {
                    assert_eq!(&buf[..n], &message(got, got % 41)[..]);
                    got += 1;
                }
                Err(RingError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    producer.join().unwrap();
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (N as u64, N as u64));
}
