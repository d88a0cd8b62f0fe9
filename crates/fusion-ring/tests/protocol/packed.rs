//! Packed batches: a batch of small messages of one class goes several to a
//! slot line, and comes out message by message, in order, whichever way it
//! is received; what a receive has no room for waits in its handle.

use fusion_ring::{
    BatchMessage, Config, FusionRing, InlineMessage, Payload, PriorityClass, RingError,
    UltraFastRing,
};

/// `n` messages, the k-th `len(k)` bytes of a pattern that names it.
fn messages(n: usize, len: impl Fn(usize) -> usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| (0..len(k)).map(|b| (k * 31 + b) as u8).collect())
        .collect()
}

fn refs(m: &[Vec<u8>]) -> Vec<&[u8]> {
    m.iter().map(Vec::as_slice).collect()
}

#[test]
fn small_messages_share_slots_and_arrive_in_order_every_way() {
    for config in [
        Config::new(64),
        Config::new(64).single_producer(true).single_consumer(true),
    ] {
        let sender = UltraFastRing::with_config(&config).unwrap();
        let receiver = FusionRing::from(sender.as_ring().clone());
        // At most 8 bytes: four to a slot (a count byte, then a length byte
        // before each message).
        let batch = messages(30, |k| k % 9);
        assert_eq!(
            sender.send_batch(&refs(&batch), PriorityClass::High),
            Ok(30)
        );
        assert_eq!(sender.as_ring().len(), 8, "30 messages in 8 slots");
        let stats = sender.stats();
        assert_eq!((stats.sent, stats.inline_count), (30, 30));

        let mut got = Vec::new();
        let mut buf = [0u8; 40];
        let mut out: Vec<Payload> = Vec::new();
        while got.len() < batch.len() {
            match got.len() % 3 {
                0 => {
                    let (n, p, _) = receiver.recv_with_meta(&mut buf).unwrap();
                    got.push((buf[..n].to_vec(), p));
                }
                1 => {
                    out.clear();
                    let n = receiver.recv_batch(&mut out, 3).unwrap();
                    assert_eq!(n, out.len());
                    got.extend(out.iter().map(|m| (m.to_vec(), m.priority())));
                }
                _ => {
                    let p = receiver.recv_zerocopy().unwrap();
                    assert!(!p.is_zerocopy());
                    got.push((p.to_vec(), p.priority()));
                }
            }
        }
        let want: Vec<_> = batch
            .iter()
            .map(|m| (m.clone(), PriorityClass::High))
            .collect();
        assert_eq!(got, want);
        assert_eq!(receiver.recv(&mut buf), Err(RingError::Empty));
        assert!(receiver.as_ring().is_empty());
        let stats = receiver.stats();
        assert_eq!((stats.sent, stats.received), (30, 30));
        let bytes: u64 = batch.iter().map(|m| m.len() as u64).sum();
        let lane = &stats.lanes[PriorityClass::High.lane()];
        assert_eq!((lane.sent_bytes, lane.received_bytes), (bytes, bytes));
    }
}

#[test]
fn a_batch_packs_only_messages_two_of_which_fit_a_slot() {
    let ring = UltraFastRing::new(64).unwrap();
    // 18 bytes: two to a slot.
    assert_eq!(
        ring.send_batch(&refs(&messages(4, |_| 18)), PriorityClass::Low),
        Ok(4)
    );
    assert_eq!(ring.as_ring().len(), 2);
    // One message of 19 bytes: the batch goes a slot a message.
    let mixed = messages(4, |k| if k == 2 { 19 } else { 1 });
    assert_eq!(ring.send_batch(&refs(&mixed), PriorityClass::Low), Ok(4));
    assert_eq!(ring.as_ring().len(), 6);
    // A lone message is never packed.
    ring.send_fast(b"x", PriorityClass::Low).unwrap();
    assert_eq!(ring.as_ring().len(), 7);
    let mut out = [InlineMessage::default(); 16];
    assert_eq!(ring.recv_batch(&mut out), Ok(9));
    assert_eq!(out[4].as_bytes(), &mixed[0][..]);
    assert_eq!(out[6].as_bytes(), &mixed[2][..]);
    assert_eq!(out[8].as_bytes(), b"x");
}

#[test]
fn a_full_ring_takes_the_messages_of_the_slots_it_has() {
    let ring = UltraFastRing::new(8).unwrap();
    for _ in 0..6 {
        ring.send_fast(b"old", PriorityClass::Normal).unwrap();
    }
    // Two free slots: eight 8-byte messages go, the rest stays with the caller.
    let batch = messages(20, |_| 8);
    assert_eq!(ring.send_batch(&refs(&batch), PriorityClass::Normal), Ok(8));
    assert_eq!(
        ring.send_batch(&refs(&batch[8..]), PriorityClass::Normal),
        Err(RingError::Full)
    );
    let mut out = [InlineMessage::default(); 32];
    assert_eq!(ring.recv_batch(&mut out), Ok(14));
    assert_eq!(out[6].as_bytes(), &batch[0][..]);
    assert_eq!(out[13].as_bytes(), &batch[7][..]);
    assert_eq!(
        ring.send_batch(&refs(&batch[8..]), PriorityClass::Normal),
        Ok(12)
    );
    assert_eq!(ring.recv_batch(&mut out), Ok(12));
    assert_eq!(out[11].as_bytes(), &batch[19][..]);
}

#[test]
fn a_waiting_message_too_long_for_the_buffer_stays() {
    let ring = UltraFastRing::new(8).unwrap();
    let batch = messages(3, |k| [2, 12, 3][k]);
    assert_eq!(ring.send_batch(&refs(&batch), PriorityClass::Normal), Ok(3));
    // The claim checks the buffer against the slot's longest message.
    let mut small = [0u8; 4];
    assert_eq!(
        ring.recv_fast(&mut small),
        Err(RingError::BufferTooSmall { needed: 12, got: 4 })
    );
    let mut buf = [0u8; 12];
    assert_eq!(ring.recv_fast(&mut buf).unwrap().0, 2);
    // The second now waits in the handle, and is checked there.
    assert_eq!(
        ring.recv_fast(&mut small),
        Err(RingError::BufferTooSmall { needed: 12, got: 4 })
    );
    assert_eq!(ring.recv_fast(&mut buf).unwrap().0, 12);
    assert_eq!(&buf[..12], &batch[1][..]);
    assert_eq!(ring.recv_fast(&mut small).unwrap().0, 3);
    assert_eq!(ring.recv_fast(&mut small), Err(RingError::Empty));
}

#[test]
fn a_claim_takes_no_more_messages_than_asked_beyond_the_first_slot() {
    let config = Config::new(8).arena_bytes(1 << 16).max_message(4096);
    let ring = FusionRing::with_config(&config).unwrap();
    let small = messages(8, |_| 8);
    let ultra = UltraFastRing::from(ring.as_ring().clone());
    assert_eq!(
        ultra.send_batch(&refs(&small[..4]), PriorityClass::Normal),
        Ok(4)
    );
    ring.send_batch(&[BatchMessage::new(&[5u8; 1000], PriorityClass::Normal)])
        .unwrap();
    assert_eq!(
        ultra.send_batch(&refs(&small[4..]), PriorityClass::Normal),
        Ok(4)
    );
    assert_eq!(ring.as_ring().len(), 3);

    let receiver = FusionRing::from(ring.as_ring().clone());
    let mut out = Vec::new();
    // Two asked for: the first slot is taken whole (two returned, two wait
    // in the handle); the block stays in the ring.
    assert_eq!(receiver.recv_batch(&mut out, 2), Ok(2));
    assert_eq!(ring.as_ring().len(), 2);
    // What waits in the handle comes first, alone.
    out.clear();
    assert_eq!(receiver.recv_batch(&mut out, 4), Ok(2));
    // Four asked for: the block, one message; the packed slot after it
    // (four more) would go past four.
    out.clear();
    assert_eq!(receiver.recv_batch(&mut out, 4), Ok(1));
    assert!(out[0].is_zerocopy());
    assert_eq!(ring.as_ring().len(), 1);
    out.clear();
    assert_eq!(receiver.recv_batch(&mut out, 5), Ok(4));
    assert_eq!(out[3][..], small[7][..]);
    drop(out);
    assert_eq!(ring.stats().arena.blocks_in_use, 0);
}
