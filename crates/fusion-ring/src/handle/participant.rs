//! Participant registration: each ring handle claims an entry in the
//! segment's table, recording who it is (pid + process start time, so a
//! reused pid is not mistaken for a live peer) and owning the stats lanes.
//!
//! Entry 0 is shared: it collects the counters of retired handles, and its
//! `state` counts the live handles that found the table full and use it.
//! Nothing can be said about their claims (they share one record), so
//! survivors reclaim nothing while that count is not zero (see `handle::peer`).

use crate::atomic::Ordering;
use crate::lockfree::arena::Taker;
use crate::shm::layout::{ParticipantEntry, MAX_PARTICIPANTS};
use crate::shm::process::{current_pid, process_alive, process_start_time};

/// Role bit: this handle has sent.
pub(crate) const ROLE_SENDER: u32 = 1;
/// Role bit: this handle has received.
pub(crate) const ROLE_RECEIVER: u32 = 2;

/// Index of the shared entry (retired counters and table-full overflow).
pub(crate) const SHARED_ENTRY: usize = 0;

/// Entry states (entries 1..): free, registered, being reaped.
pub(crate) const FREE: u32 = 0;
pub(crate) const IN_USE: u32 = 1;
const REAPING: u32 = 2;

/// Claims a free entry (1..MAX_PARTICIPANTS) for this process, or falls back
/// to the shared entry 0. Returns `(index, shared)`.
pub(crate) fn register(entries: &[ParticipantEntry]) -> (usize, bool) {
    let pid = current_pid();
    let start = process_start_time(pid).unwrap_or(0);
    for (i, e) in entries.iter().enumerate().take(MAX_PARTICIPANTS).skip(1) {
        // Acquire: pairs with the Release in `unregister`, so the zeroed
        // counters of the previous owner are seen before we write ours.
        if e.id
            .state
            .compare_exchange(FREE, IN_USE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            e.id.pid.store(pid, Ordering::Relaxed);
            e.id.start_time.store(start, Ordering::Relaxed);
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

/// Folds an entry's counters into the shared entry and frees it.
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

/// Whether the handle registered in `e` belongs to a running process.
pub(crate) fn entry_alive(e: &ParticipantEntry) -> bool {
    let pid = e.id.pid.load(Ordering::Relaxed);
    pid != 0 && process_alive(pid, e.id.start_time.load(Ordering::Relaxed))
}

/// Frees the entry of a dead process (its counters folded into the shared
/// entry), unless another survivor is doing it. The caller has checked that
/// the process is dead and that its claims are settled.
pub(crate) fn reap(entries: &[ParticipantEntry], index: usize) -> bool {
    let e = &entries[index];
    // Acquire: pairs with `retire`'s Release by a previous owner, as in
    // `register`; the CAS makes one survivor do the folding.
    e.id.state
        .compare_exchange(IN_USE, REAPING, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
        && {
            retire(e, &entries[SHARED_ENTRY]);
            true
        }
}

/// A registered entry as tools show it: `(pid, roles, alive)`.
pub(crate) fn registered(
    entries: &[ParticipantEntry],
) -> impl Iterator<Item = (u32, u32, bool)> + '_ {
    entries
        .iter()
        .skip(1)
        // Acquire: the entry's identity after its state (pairs with the
        // Release in `unregister`).
        .filter(|e| e.id.state.load(Ordering::Acquire) != FREE)
        .map(|e| {
            let pid = e.id.pid.load(Ordering::Relaxed);
            let role = e.id.role.load(Ordering::Relaxed);
            (pid, role, entry_alive(e))
        })
}

/// Whether any handle on the table may belong to a running process: an
/// unidentifiable one (the table was full), or a registered entry whose
/// process runs (`inspect::RingInfo::has_live_participants` applies the
/// same rule to what `registered` gave it).
pub(crate) fn any_live(entries: &[ParticipantEntry]) -> bool {
    unidentified(entries) > 0 || registered(entries).any(|(_, _, alive)| alive)
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
