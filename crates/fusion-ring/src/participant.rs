//! Participant registration: each ring handle claims an entry in the
//! segment's table, recording who it is (pid + process start time, so a
//! reused pid is not mistaken for a live peer) and owning the stats lanes.

use crate::atomic::Ordering;
use crate::layout::{ParticipantEntry, MAX_PARTICIPANTS};

/// Role bit: this handle has sent.
pub(crate) const ROLE_SENDER: u32 = 1;
/// Role bit: this handle has received.
pub(crate) const ROLE_RECEIVER: u32 = 2;

/// Index of the shared entry (retired counters and table-full overflow).
pub(crate) const SHARED_ENTRY: usize = 0;

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
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            e.id.pid.store(pid, Ordering::Relaxed);
            e.id.start_time.store(start, Ordering::Relaxed);
            e.id.role.store(0, Ordering::Relaxed);
            return (i, false);
        }
    }
    (SHARED_ENTRY, true)
}

/// Folds an entry's counters into the shared entry and frees it.
pub(crate) fn unregister(entries: &[ParticipantEntry], index: usize) {
    if index == SHARED_ENTRY || index >= entries.len() {
        return;
    }
    let e = &entries[index];
    crate::stats::fold_into(e, &entries[SHARED_ENTRY]);
    e.id.pid.store(0, Ordering::Relaxed);
    e.id.role.store(0, Ordering::Relaxed);
    // Release: the folded/zeroed counters happen before the entry is seen
    // free (pairs with the Acquire in `register` and in stats::aggregate).
    e.id.state.store(0, Ordering::Release);
}

/// This process's pid.
pub(crate) fn current_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), to tell a live process from a reused pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces:
    // count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let pid = current_pid();
        let a = process_start_time(pid).expect("start time of self");
        assert_eq!(process_start_time(pid), Some(a));
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
