//! Batch receives (`ring::engine`), through the ring types.

use crate::fusion::FusionRing;
use crate::priority::PriorityClass;
use crate::ring::message::InlineMessage;
use crate::shm::config::Config;
use crate::ultra::UltraFastRing;

/// A short zero-copy message taken by `recv_batch` into an entry that
/// held a longer one: the bytes past its length are zeros, as for an
/// inline slot, so equal messages compare equal.
#[test]
fn a_batch_entry_reused_for_a_short_block_has_no_stale_bytes() {
    let ring =
        FusionRing::with_config(&Config::new(8).arena_bytes(1 << 16).max_message(4096)).unwrap();
    let batch = UltraFastRing::from(ring.as_ring().clone());
    let mut out = [InlineMessage::default(); 1];
    ring.send(&[0xAA; 40]).unwrap();
    assert_eq!(batch.recv_batch(&mut out).unwrap(), 1);
    assert_eq!(out[0].as_bytes(), &[0xAA; 40]);
    let mut loan = ring.loan(3).unwrap();
    loan.copy_from_slice(b"abc");
    ring.send_loan(loan, PriorityClass::Normal).unwrap();
    assert_eq!(batch.recv_batch(&mut out).unwrap(), 1);
    assert_eq!(out[0].as_bytes(), b"abc");
    ring.send(b"abc").unwrap();
    let mut inline = [InlineMessage::default(); 1];
    assert_eq!(batch.recv_batch(&mut inline).unwrap(), 1);
    assert_eq!(out[0].data, inline[0].data, "padding differs");
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}
