//! Batches in one thread: a batch arrives in order with each message's
//! bytes and priority (inline and zero-copy mixed), and a batch larger than
//! the free slots, or than the arena's free blocks, sends a prefix (the
//! rest is given back: no slot, no block kept).

use fusion_ring::{
    BatchMessage, FusionRing, InlineMessage, Payload, PriorityClass, RingError, UltraFastRing,
    INLINE_MAX,
};

use crate::common::fusion::{blocks, pattern, snapshot, two_block_ring};

// ---------------------------------------------------------------------------
// UltraFastRing

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
// FusionRing: mixed batches

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
