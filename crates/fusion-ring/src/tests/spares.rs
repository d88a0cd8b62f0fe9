//! A handle's spare block (`handle::allocator`), through the ring types.

use crate::fusion::FusionRing;
use crate::priority::PriorityClass;
use crate::shm::config::Config;

fn zero_copy_ring(blocks_of_1k: usize) -> FusionRing {
    let bytes = blocks_of_1k * (1024 + 64);
    FusionRing::with_config(&Config::new(8).arena_bytes(bytes).max_message(1024)).unwrap()
}

/// After a sent loan the handle keeps the next block ready: the next
/// loan of that size gets it, and it counts as free meanwhile.
#[test]
fn a_sent_loan_leaves_a_spare_that_the_next_loan_takes() {
    let ring = zero_copy_ring(4);
    let r = ring.as_ring();
    let first = ring.loan(1000).unwrap();
    let first_at = first.descriptor().offset;
    ring.send_loan(first, PriorityClass::Normal).unwrap();
    let spare = r.allocator().spare();
    assert_ne!(spare, 0, "no spare after a sent loan");
    assert_ne!(spare - 1, first_at);
    assert_eq!(r.arena_usage().blocks_in_use, 1, "the spare counts as free");
    let second = ring.loan(900).unwrap();
    assert_eq!(second.descriptor().offset, spare - 1, "the spare is used");
    assert_eq!(second.len(), 900);
    drop(second);
    drop(ring.recv_zerocopy().unwrap());
    assert_eq!(r.arena_usage().blocks_in_use, 0);
}

/// A spare is claimed by CAS: two handles naming the same one (as a
/// handle and its copy in a forked child do) never both get it, and a
/// handle that finds the arena otherwise exhausted takes another's.
#[test]
fn spares_are_claimed_once_and_taken_when_the_arena_runs_out() {
    let ring = zero_copy_ring(2);
    let other = ring.clone();
    let (a, b) = (ring.as_ring(), other.as_ring());
    let sent = ring.loan(1000).unwrap();
    ring.send_loan(sent, PriorityClass::Normal).unwrap();
    let spare = a.allocator().spare();
    assert_ne!(spare, 0);
    // The other handle: the only block not queued is the spare.
    let mut stolen = other.loan(1000).expect("takes the spare");
    stolen.copy_from_slice(&[5; 1000]);
    assert_eq!(stolen.descriptor().offset, spare - 1);
    // Its maker no longer finds it, and the arena is exhausted.
    assert!(matches!(
        ring.loan(1000),
        Err(crate::error::RingError::ArenaExhausted { .. })
    ));
    // A copy of a spare claims nothing once it is claimed.
    b.allocator().set_spare(spare);
    assert!(b
        .allocator()
        .take_spare(b.arena().unwrap(), b.caller())
        .is_none());
    drop(stolen);
    drop(ring.recv_zerocopy().unwrap());
    drop((ring, other));
}

/// A handle's spare goes back to its free list when the handle goes.
#[test]
fn a_dropped_handle_gives_its_spare_back() {
    let ring = zero_copy_ring(4);
    let sender = ring.clone();
    let loan = sender.loan(1000).unwrap();
    sender.send_loan(loan, PriorityClass::Normal).unwrap();
    assert_ne!(sender.as_ring().allocator().spare(), 0);
    drop(sender);
    drop(ring.recv_zerocopy().unwrap());
    let usage = ring.as_ring().arena_usage();
    assert_eq!(usage.blocks_in_use, 0);
    // Both blocks are on the free list, none a spare: two loans fit
    // without carving more.
    let carved = usage.bytes_carved;
    let (x, y) = (ring.loan(1000).unwrap(), ring.loan(1000).unwrap());
    assert_eq!(ring.as_ring().arena_usage().bytes_carved, carved);
    drop((x, y));
}
