//! Single producer / consumer roles (`handle::roles`), through the ring
//! types: one handle at a time, given back on drop, taken over from a dead
//! or stale holder, refused to a handle without an entry of its own.

use crate::atomic::Ordering;
use crate::error::RingError;
use crate::fusion::FusionRing;
use crate::handle::participant::{self, ROLE_RECEIVER, ROLE_SENDER};
use crate::priority::PriorityClass;
use crate::shm::config::Config;
use crate::shm::liveness::EntryLock;

fn ring(config: Config) -> FusionRing {
    FusionRing::with_config(&config.arena_bytes(64 * 1024).max_message(4096)).expect("ring")
}

fn taken(r: crate::error::Result<impl std::fmt::Debug>, role: &str) {
    match r {
        Err(RingError::RoleTaken {
            role: r,
            holder_pid,
            ..
        }) => {
            assert_eq!(r, role);
            assert_eq!(holder_pid, std::process::id());
        }
        other => panic!("expected RoleTaken({role}), got {other:?}"),
    }
}

/// One handle sends at a time; another's send (copy, loan, batch) fails
/// with the holder named and leaves the ring as it was (a loan comes back);
/// receivers are not limited; dropping the holder frees the role.
#[test]
fn a_single_producer_ring_lets_one_handle_send_at_a_time() {
    let a = ring(Config::new(8).single_producer(true));
    a.send(b"first").expect("the first sender takes the role");
    let b = a.clone();
    taken(b.send(b"second"), "producer");
    taken(b.send(&[1u8; 1000]), "producer");
    let loan = b.loan(1000).expect("loans are not sends");
    let back = b
        .send_loan(loan, PriorityClass::Normal)
        .expect_err("no role");
    assert!(matches!(back.error, RingError::RoleTaken { .. }));
    drop(back);
    assert_eq!(a.as_ring().len(), 1, "nothing sent");
    assert_eq!(
        a.as_ring().arena_usage().blocks_in_use,
        0,
        "the loan went back"
    );
    // Receivers are many.
    let c = a.clone();
    a.send(b"third").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(b.recv(&mut buf).unwrap(), 5);
    assert_eq!(c.recv(&mut buf).unwrap(), 5);
    drop(a);
    b.send(b"b's now").expect("the role is free again");
    taken(c.send(b"c?"), "producer");
}

/// The same for the consumer role; a receive that finds the ring empty
/// still takes the role.
#[test]
fn a_single_consumer_ring_lets_one_handle_receive_at_a_time() {
    let a = ring(Config::new(8).single_consumer(true));
    let b = a.clone();
    let mut buf = [0u8; 64];
    assert_eq!(a.recv(&mut buf), Err(RingError::Empty));
    b.send(b"x").unwrap();
    a.send(b"y").unwrap();
    taken(b.recv(&mut buf), "consumer");
    taken(b.recv_zerocopy(), "consumer");
    assert_eq!(a.as_ring().len(), 2, "nothing taken");
    assert_eq!(a.recv(&mut buf).unwrap(), 1);
    drop(a);
    assert_eq!(b.recv(&mut buf).unwrap(), 1);
}

/// A holder whose process died (its entry has no mark) or a stale word (an
/// entry now used by a handle that never claimed the role, a scribbled
/// index) does not hold the role: the next claimer takes it over.
#[test]
fn a_dead_or_stale_holder_is_taken_over() {
    let a = ring(Config::new(8).single_producer(true));
    // A handle that neither sends nor receives, to look through.
    let keeper = a.clone();
    let segment = keeper.as_ring().segment();
    let entries = segment.participants();
    let word = &keeper.as_ring().core().ctrl().producer_holder.value;

    // Registered without a mark: as if killed holding the role.
    let (dead, _) = participant::register(entries, &EntryLock::Pids);
    entries[dead].id.role.store(ROLE_SENDER, Ordering::Relaxed);
    if cfg!(miri) {
        // Miri's liveness is by pid: make it a dead one's.
        let other = crate::shm::process::current_pid() + 1;
        entries[dead].id.pid.store(other, Ordering::Relaxed);
    }
    word.store(dead as u64 + 1, Ordering::Relaxed);
    a.send(b"taken over").expect("a dead holder holds nothing");
    assert_ne!(word.load(Ordering::Relaxed), dead as u64 + 1);

    // A live entry that never sent: the word is stale.
    let b = a.clone();
    let mut buf = [0u8; 64];
    b.recv(&mut buf).unwrap();
    let b_entry = (1..entries.len())
        .find(|&i| entries[i].id.role.load(Ordering::Relaxed) == ROLE_RECEIVER)
        .expect("b's entry");
    drop(a);
    word.store(b_entry as u64 + 1, Ordering::Relaxed);
    let c = b.clone();
    c.send(b"stale")
        .expect("a receiver's entry holds no producer role");
    drop(c);
    // Scribbled words name nobody.
    for scribbled in [u64::MAX, 1000, 0] {
        let d = b.clone();
        word.store(scribbled, Ordering::Relaxed);
        d.send(b"scribbled").expect("no holder");
        drop(d);
        let mut buf = [0u8; 64];
        b.recv(&mut buf).unwrap();
    }
}

/// On a single/single ring (`lockfree::single`), a producer that died
/// having published the second slot of a run but not the first, nor its
/// head, leaves the consumer stuck at the hole. The producer that takes
/// the role over fills the hole with a tombstone and goes on after the
/// published message: the consumer gets that message, then the new one.
#[test]
fn a_producer_taking_over_fills_the_hole_a_dead_one_left() {
    let keeper = ring(Config::new(8).single_producer(true).single_consumer(true));
    super::plant_dead_producer_with_half_a_run(keeper.as_ring());

    let consumer = keeper.clone();
    let mut buf = [0u8; 64];
    assert_eq!(consumer.recv(&mut buf), Err(RingError::Empty), "the hole");
    let producer = keeper.clone();
    producer.send(b"next").expect("a dead holder holds nothing");
    assert_eq!(producer.stats().head, 3, "past the dead one's run");
    let n = consumer.recv(&mut buf).expect("the dead one's message");
    assert_eq!(&buf[..n], b"late");
    let n = consumer.recv(&mut buf).expect("the new one's");
    assert_eq!(&buf[..n], b"next");
    assert_eq!(consumer.recv(&mut buf), Err(RingError::Empty));
    // The ring goes on round its laps.
    for k in 0..20u8 {
        producer.send(&[k; 3]).unwrap();
        assert_eq!(consumer.recv(&mut buf).unwrap(), 3);
        assert_eq!(buf[..3], [k; 3]);
    }
}

/// A handle that found the participant table full (the shared entry 0)
/// cannot hold a single role: it is told so, and the ring is unchanged.
#[cfg(not(miri))] // marks: heap segments have no file to lock
#[test]
fn a_handle_without_an_entry_of_its_own_cannot_hold_a_single_role() {
    let a = ring(Config::new(8).single_producer(true));
    let segment = a.as_ring().segment();
    let intruder = segment.entry_lock();
    for i in 1..crate::shm::layout::MAX_PARTICIPANTS {
        intruder.try_take(i);
    }
    let b = a.clone();
    assert_eq!(participant::unidentified(segment.participants()), 1);
    assert!(matches!(
        b.send(b"x"),
        Err(RingError::NoEntryForRole {
            role: "producer",
            ..
        })
    ));
    assert!(a.as_ring().is_empty());
    a.send(b"a has an entry").expect("a still can");
}
