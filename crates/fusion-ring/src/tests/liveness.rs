//! Entry marks (`shm::liveness`) in the participant table
//! (`handle::participant`): a mark held by another description keeps its
//! entry from being taken or reaped, and a mark is what tells the living.
//! Not under Miri: heap segments have no file to lock (pids stand in).

use crate::atomic::Ordering;
use crate::fusion::FusionRing;
use crate::handle::participant::{self, IN_USE};
use crate::handle::peer::reap_dead;
use crate::shm::config::Config;
use crate::shm::layout::MAX_PARTICIPANTS;
use crate::shm::liveness::EntryLock;

fn ring() -> FusionRing {
    FusionRing::with_config(&Config::new(8)).expect("ring")
}

/// Entries whose marks another description holds are skipped: with all
/// of them held, a new handle shares entry 0 (and works); with one given
/// back, it takes that one.
#[test]
fn an_entry_whose_mark_another_holds_is_not_taken() {
    let ring = ring();
    let segment = ring.as_ring().segment();
    let entries = segment.participants();
    let intruder = segment.entry_lock();
    let held: Vec<usize> = (1..MAX_PARTICIPANTS)
        .filter(|&i| intruder.try_take(i))
        .collect();
    assert_eq!(
        held.len(),
        MAX_PARTICIPANTS - 2,
        "all but this handle's own"
    );
    let other = ring.clone();
    assert_eq!(participant::unidentified(entries), 1, "on the shared entry");
    other.send(b"still works").expect("send");
    drop(other);
    assert_eq!(participant::unidentified(entries), 0);

    let freed = held[held.len() / 2];
    intruder.give_back(freed);
    let other = ring.clone();
    assert_eq!(participant::unidentified(entries), 0);
    assert_eq!(entries[freed].id.state.load(Ordering::Relaxed), IN_USE);
    assert!(segment.entry_alive(freed, &entries[freed].id));
    drop(other);
    assert!(
        !segment.entry_alive(freed, &entries[freed].id),
        "given back"
    );
}

/// A handle's entry is alive while it lives and free after it is dropped;
/// an entry in use without a mark (its process died) is dead and reaped
/// once; an entry being reaped (its mark held by the reaper) is neither
/// reaped again nor taken.
#[test]
fn the_mark_tells_the_living_and_guards_the_reaping() {
    let ring = ring();
    let segment = ring.as_ring().segment();
    let entries = segment.participants();
    let other = ring.clone();
    let live: Vec<usize> = (1..MAX_PARTICIPANTS)
        .filter(|&i| entries[i].id.state.load(Ordering::Relaxed) == IN_USE)
        .collect();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|&i| segment.entry_alive(i, &entries[i].id)));
    drop(other);

    // Registered without a mark: as if killed after registering.
    let (dead, shared) = participant::register(entries, &EntryLock::Pids);
    assert!(!shared);
    assert!(!segment.entry_alive(dead, &entries[dead].id));
    // A survivor in the middle of reaping it holds its mark.
    let reaper = segment.entry_lock();
    assert!(reaper.try_take(dead));
    let rival = segment.entry_lock();
    assert!(
        !participant::reap(entries, dead, &rival),
        "another is reaping"
    );
    assert_eq!(entries[dead].id.state.load(Ordering::Relaxed), IN_USE);
    reaper.give_back(dead);
    assert_eq!(reap_dead(segment, ring.as_ring().core(), &rival), 1);
    assert_eq!(reap_dead(segment, ring.as_ring().core(), &rival), 0);
    assert_ne!(entries[dead].id.state.load(Ordering::Relaxed), IN_USE);
    // The live handle's entry is never reaped.
    assert!(segment.entry_alive(live[0], &entries[live[0]].id));
}
