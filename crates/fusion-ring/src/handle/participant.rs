//! Participant registration: each ring handle claims an entry in the
//! segment's table, recording who it is (pid + process start time, so a
//! reused pid is not mistaken for a live peer) and owning the stats lanes.
//!
//! Entry 0 is shared: it collects the counters of retired handles, and its
//! `state` counts the live handles that found the table full and use it.
//! Nothing can be said about their claims (they share one record), so
//! survivors reclaim nothing while that count is not zero (see `peer`).

use std::io::Write;

use rustix::fs::{Mode, OFlags};

use crate::atomic::Ordering;
use crate::shm::layout::{ParticipantEntry, MAX_PARTICIPANTS};

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

/// Whether any handle on the table may belong to a running process: an
/// unidentifiable one (the table was full), or a registered entry whose
/// process runs (`inspect::RingInfo::has_live_participants` applies the
/// same rule to what it read).
pub(crate) fn any_live(entries: &[ParticipantEntry]) -> bool {
    unidentified(entries) > 0
        || entries
            .iter()
            .skip(1)
            // Acquire: as in `inspect`, the entry's identity after its state.
            .filter(|e| e.id.state.load(Ordering::Acquire) != FREE)
            .any(entry_alive)
}

/// Handles in use that are not identifiable (the table was full).
pub(crate) fn unidentified(entries: &[ParticipantEntry]) -> u32 {
    entries[SHARED_ENTRY].id.state.load(Ordering::Relaxed)
}

/// This process's pid, cached: ring handles compare it with the pid they
/// registered under on every call (see `Registration::follow_fork`), so it must cost
/// a load, not a syscall. A child forked with `fork(2)` refreshes it before
/// `fork` returns there (`pthread_atfork`).
#[inline(always)]
pub(crate) fn current_pid() -> u32 {
    // Relaxed: each process writes its own copy (the atfork handler runs in
    // the child before any of its code can read it).
    match PID.load(Ordering::Relaxed) {
        0 => cache_pid(),
        pid => pid,
    }
}

/// The cached pid (0: not cached yet).
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[cold]
#[inline(never)]
fn cache_pid() -> u32 {
    static ATFORK: std::sync::Once = std::sync::Once::new();
    // The handler first, the cache after: a fork between the two gives a
    // child whose handler sets its own pid.
    ATFORK.call_once(|| {
        // Miri cannot fork (nor register fork handlers).
        #[cfg(not(miri))]
        // SAFETY: the child handler only makes a getpid syscall and an
        // atomic store, both async-signal-safe, as fork(2) children of
        // multi-threaded processes require.
        unsafe {
            libc::pthread_atfork(None, None, Some(refresh_pid_in_child));
        }
    });
    let pid = getpid();
    PID.store(pid, Ordering::Relaxed);
    pid
}

#[cfg(not(miri))]
extern "C" fn refresh_pid_in_child() {
    PID.store(getpid(), Ordering::Relaxed);
}

fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), to tell a live process from a reused pid.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Whether process `pid`, started at `start` (0: unknown), still runs. A
/// zombie (exited, not yet waited for) is dead: it will not write again.
pub(crate) fn process_alive(pid: u32, start: u64) -> bool {
    match proc_stat(pid) {
        Some((state, now)) => (start == 0 || now == start) && !matches!(state, 'Z' | 'X' | 'x'),
        None => false,
    }
}

/// `(state, start time)` of process `pid`, fields 3 and 22 of
/// `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    // Miri (isolated) cannot read /proc; it runs one process, this one,
    // and it is running (start time unknown).
    if cfg!(miri) {
        return (pid == current_pid()).then_some(('R', 0));
    }
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    // Without allocating: a child forked from a multi-threaded process may
    // register here (`Ring::follow_fork`).
    let mut path = [0u8; 32];
    write!(&mut path[..], "/proc/{pid}/stat\0").ok()?;
    let path = core::ffi::CStr::from_bytes_until_nul(&path).ok()?;
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    // Fields 1-22 fit: a pid, a command name of at most 64 bytes and 19
    // numbers of at most 20 digits.
    let mut buf = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces,
    // parentheses and bytes that are not UTF-8 (it is the executable's file
    // name): count fields after the last ')'.
    let close = buf[..n].iter().rposition(|&b| b == b')')?;
    let mut rest = core::str::from_utf8(&buf[close + 1..n])
        .ok()?
        .split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.nth(18)?.parse().ok()?))
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
        assert!(process_alive(pid, a));
        assert!(
            !process_alive(pid, a + 1),
            "another start time is another process"
        );
        assert!(!process_alive(0, 0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // spawns a process and reads /proc
    fn a_process_whose_name_is_not_utf8_is_alive() {
        use std::os::unix::ffi::OsStrExt;
        // The command name in /proc/PID/stat is the executable's file name.
        let dir = std::env::temp_dir().join(format!("fring-comm-{}", current_pid()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let exe = dir.join(std::ffi::OsStr::from_bytes(b"sl\xffe) (p"));
        let _ = std::fs::remove_file(&exe);
        std::os::unix::fs::symlink("/bin/sleep", &exe).expect("symlink");
        let mut child = std::process::Command::new(&exe)
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let start = process_start_time(pid);
        let alive = start.is_some_and(|s| process_alive(pid, s));
        child.kill().expect("kill");
        child.wait().expect("reap");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            start.is_some(),
            "start time of a process named b\"sl\\xffe) (p\""
        );
        assert!(alive);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // spawns a process and reads /proc
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let start = process_start_time(pid).unwrap_or(0);
        // Not waited for yet: once it exits it stays a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_alive(pid, start) {
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(proc_stat(pid).is_some(), "still in /proc as a zombie");
        child.wait().expect("reap");
        assert!(!process_alive(pid, start));
    }
}
