//! Participant registration: each ring handle claims an entry in the
//! segment's table and owns its stats lanes and claim records. Whether the
//! handle lives is its entry mark (`shm::liveness`), held from before it
//! claims the entry until after it frees it; the pid and start time it
//! records are for people (`fring stat`), not a test of life.
//!
//! Entry 0 is shared: it collects the counters of retired handles, and its
//! `state` counts the live handles that found the table full and use it.
//! Nothing can be said about their claims (they share one record), so
//! survivors reclaim nothing while that count is not zero (see `handle::peer`).

use crate::atomic::Ordering;
use crate::lockfree::arena::Taker;
use crate::shm::layout::{ParticipantEntry, MAX_PARTICIPANTS};
use crate::shm::liveness::EntryLock;
use crate::shm::process::{current_pid, pid_namespace, process_start_time};
use crate::shm::segment::Segment;

/// Role bit: this handle has sent.
pub(crate) const ROLE_SENDER: u32 = 1;
/// Role bit: this handle has received.
pub(crate) const ROLE_RECEIVER: u32 = 2;
/// Role bit: this handle is a subscriber of a broadcast ring (its entry's
/// cursor gates the publisher, `handle::broadcast`).
pub(crate) const ROLE_SUBSCRIBER: u32 = 4;

/// Index of the shared entry (retired counters and table-full overflow).
pub(crate) const SHARED_ENTRY: usize = 0;

/// Entry states (entries 1..): free, registered, being reaped.
pub(crate) const FREE: u32 = 0;
pub(crate) const IN_USE: u32 = 1;
const REAPING: u32 = 2;

/// Claims a free entry (1..MAX_PARTICIPANTS) for this process, taking its
/// mark through `lock` first, or falls back to the shared entry 0. Returns
/// `(index, shared)`.
pub(crate) fn register(entries: &[ParticipantEntry], lock: &EntryLock) -> (usize, bool) {
    let pid = current_pid();
    let start = process_start_time(pid).unwrap_or(0);
    let pid_ns = pid_namespace();
    for (i, e) in entries.iter().enumerate().take(MAX_PARTICIPANTS).skip(1) {
        // The mark first: an entry in use with a free mark is a dead
        // handle's. A mark held by another description is a live handle's
        // entry, or one being reaped or claimed.
        if e.id.state.load(Ordering::Relaxed) != FREE || !lock.try_take(i) {
            continue;
        }
        // Acquire: pairs with the Release in `unregister`, so the zeroed
        // counters of the previous owner are seen before we write ours.
        if e.id
            .state
            .compare_exchange(FREE, IN_USE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            lock.give_back(i);
        } else {
            e.id.pid.store(pid, Ordering::Relaxed);
            e.id.start_time.store(start, Ordering::Relaxed);
            e.id.pid_ns.store(pid_ns, Ordering::Relaxed);
            e.id.role.store(0, Ordering::Relaxed);
            e.id.arena_claim.store(0, Ordering::Relaxed);
            for record in [&e.id.send_claim, &e.id.recv_claim] {
                record.start.store(0, Ordering::Relaxed);
                record.end.store(0, Ordering::Relaxed);
            }
            return (i, false);
        }
    }
    // Relaxed: a count of unidentifiable handles (module docs).
    entries[SHARED_ENTRY]
        .id
        .state
        .fetch_add(1, Ordering::Relaxed);
    (SHARED_ENTRY, true)
}

/// Folds an entry's counters into the shared entry and frees it; then its
/// mark goes (when `lock`, which holds it, is given back or closed).
pub(crate) fn unregister(entries: &[ParticipantEntry], index: usize) {
    if index == SHARED_ENTRY {
        // Saturating: a scribbler may have zeroed the count.
        let _ = entries[SHARED_ENTRY].id.state.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
        return;
    }
    if let Some(e) = entries.get(index) {
        retire(e, &entries[SHARED_ENTRY]);
    }
}

fn retire(e: &ParticipantEntry, shared: &ParticipantEntry) {
    crate::handle::stats::fold_into(e, shared);
    e.id.pid.store(0, Ordering::Relaxed);
    e.id.role.store(0, Ordering::Relaxed);
    // Release: the folded/zeroed counters happen before the entry is seen
    // free (pairs with the Acquire in `register` and in stats::aggregate).
    e.id.state.store(FREE, Ordering::Release);
}

/// Frees the entry of a dead handle (its counters folded into the shared
/// entry), holding its mark through `lock` meanwhile, unless another
/// survivor is doing it or a handle took the mark back. The caller has
/// checked that the handle is dead and that its claims are settled.
pub(crate) fn reap(entries: &[ParticipantEntry], index: usize, lock: &EntryLock) -> bool {
    let e = &entries[index];
    if !lock.try_take(index) {
        return false;
    }
    // Acquire: pairs with `retire`'s Release by a previous owner, as in
    // `register`; the CAS makes one survivor do the folding (with pid
    // liveness, where every lock is taken, it is the only exclusion).
    let reaped = e
        .id
        .state
        .compare_exchange(IN_USE, REAPING, Ordering::Acquire, Ordering::Relaxed)
        .is_ok();
    if reaped {
        retire(e, &entries[SHARED_ENTRY]);
    }
    lock.give_back(index);
    reaped
}

/// A registered entry as tools show it.
pub(crate) struct Registered {
    pub(crate) pid: u32,
    /// `ROLE_*` bits.
    pub(crate) role: u32,
    pub(crate) alive: bool,
    /// Its pid namespace (`process::pid_namespace`; 0: unknown).
    pub(crate) pid_ns: u32,
    /// Its cursor (meaningful for a broadcast subscriber only).
    pub(crate) cursor: u64,
}

/// The registered entries, as tools show them.
pub(crate) fn registered(segment: &Segment) -> impl Iterator<Item = Registered> + '_ {
    segment
        .participants()
        .iter()
        .enumerate()
        .skip(1)
        // Acquire: the entry's identity after its state (pairs with the
        // Release in `unregister`).
        .filter(|(_, e)| e.id.state.load(Ordering::Acquire) != FREE)
        .map(|(i, e)| Registered {
            pid: e.id.pid.load(Ordering::Relaxed),
            role: e.id.role.load(Ordering::Relaxed),
            alive: segment.entry_alive(i, &e.id),
            pid_ns: e.id.pid_ns.load(Ordering::Relaxed),
            cursor: e.id.cursor.value.load(Ordering::Relaxed),
        })
}

/// Whether any handle on the table may be alive: an unidentifiable one
/// (the table was full), or a registered entry whose mark is held
/// (`inspect::RingInfo::has_live_participants` applies the same rule to
/// what `registered` gave it).
pub(crate) fn any_live(segment: &Segment) -> bool {
    unidentified(segment.participants()) > 0 || registered(segment).any(|r| r.alive)
}

/// Handles in use that are not identifiable (the table was full).
pub(crate) fn unidentified(entries: &[ParticipantEntry]) -> u32 {
    entries[SHARED_ENTRY].id.state.load(Ordering::Relaxed)
}

/// Who is calling: the process a handle acts for and its entry, after the
/// handle followed a fork (see `Registration::caller`).
#[derive(Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) entry: &'a ParticipantEntry,
    pub(crate) pid: u32,
}

impl<'a> Caller<'a> {
    /// The caller as a taker of arena blocks: its process and its entry's
    /// claim word (see `arena::Taker`).
    #[inline(always)]
    pub(crate) fn taker(self) -> Taker<'a> {
        Taker {
            pid: self.pid,
            claim: &self.entry.id.arena_claim,
        }
    }
}
