//! Loans, payloads and forwards in one process: every failure leaves the
//! ring and the arena as they were, every block comes back (dropped loans,
//! refused loans, clones, forwards, an exhausted arena).

use fusion_ring::{
    allocate_zerocopy_buffer, send_zerocopy, BatchMessage, FusionRing, LoanError, PriorityClass,
    RingError,
};

use crate::common::fusion::{
    arena, blocks, expect_next, finished, pattern, snapshot, spawn, two_block_ring,
};

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
