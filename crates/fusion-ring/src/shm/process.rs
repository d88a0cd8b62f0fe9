//! The processes on this machine, as far as a segment's participants need
//! them: this process's pid (cached, refreshed across `fork`), and whether
//! a pid still names the process that registered it (pid + start time).

use std::io::Write;

use rustix::fs::{Mode, OFlags};

use crate::atomic::Ordering;

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

/// This process's pid namespace, as the low 32 bits of the inode number
/// of `/proc/self/ns/pid` (0: unknown): two processes with the same value
/// see the same pids. Not cached: a process that unshared its pid
/// namespace forks children into another one.
pub(crate) fn pid_namespace() -> u32 {
    if cfg!(miri) {
        return 0;
    }
    rustix::fs::stat("/proc/self/ns/pid").map_or(0, |s| s.st_ino as u32)
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
    // register here (`Registration::follow_fork`).
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
