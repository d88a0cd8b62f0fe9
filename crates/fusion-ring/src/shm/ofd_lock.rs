//! Open-file-description locks on single bytes of a segment's file: a
//! liveness mark that the kernel drops when the last descriptor of the
//! description closes (its process died or exited), which any process that
//! maps the file can test, whatever pid namespace it is in (issue 13).
//!
//! Unlike classic POSIX record locks, OFD locks belong to the open file
//! description, not to the process: a forked child shares its parent's
//! descriptions (and so its locks), and two descriptions of one process
//! conflict with each other. So each holder opens a description of its
//! own ([`reopen`]), and a tester asks through another one: a description
//! never sees its own locks as conflicting.
//!
//! Checked by hand on this machine: a lock taken by a process under
//! `unshare --user --map-root-user --pid --fork` (pid 1 there) on a file in
//! `/dev/shm` is seen held from outside (`F_OFD_GETLK` reports `l_pid` -1,
//! so no pid crosses the namespaces) and free once that process exits.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

/// A new open file description of the file behind `fd` (through
/// `/proc/self/fd`, which also reopens a memfd), read-write, close-on-exec.
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn byte_range(kind: libc::c_short, byte: u64) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value of it.
    let mut l: libc::flock = unsafe { core::mem::zeroed() };
    l.l_type = kind;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = byte as libc::off_t;
    l.l_len = 1;
    l
}

/// Takes a write lock on `byte` through `fd`'s description, without
/// waiting: `Ok(false)` if another description holds it.
pub(crate) fn try_hold(fd: BorrowedFd<'_>, byte: u64) -> std::io::Result<bool> {
    let mut l = byte_range(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_SETLK reads the `flock` we pass, which lives across the
    // call; `fd` is a valid descriptor for the call's duration.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut l) } {
        0 => Ok(true),
        _ => match std::io::Error::last_os_error() {
            e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            e => Err(e),
        },
    }
}

/// Whether a description other than `fd`'s holds a lock on `byte`.
pub(crate) fn held_by_another(fd: BorrowedFd<'_>, byte: u64) -> std::io::Result<bool> {
    let mut l = byte_range(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_GETLK reads and rewrites the `flock` we pass, which
    // lives across the call; `fd` is valid for the call's duration.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut l) } {
        0 => Ok(l.l_type != libc::F_UNLCK as libc::c_short),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::{held_by_another, reopen, try_hold};

    fn memfd() -> std::os::fd::OwnedFd {
        let fd = rustix::fs::memfd_create("ofd-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        fd
    }

    /// A lock is seen by another description of the same file, on its byte
    /// only, and goes when its description closes; a description does not
    /// see its own lock.
    #[test]
    fn a_lock_is_seen_by_other_descriptions_until_closed() {
        let probe = memfd();
        let holder = reopen(probe.as_fd()).unwrap();
        assert!(try_hold(holder.as_fd(), 5).unwrap());
        assert!(held_by_another(probe.as_fd(), 5).unwrap());
        assert!(!held_by_another(probe.as_fd(), 6).unwrap());
        assert!(!held_by_another(holder.as_fd(), 5).unwrap(), "its own lock");
        let rival = reopen(probe.as_fd()).unwrap();
        assert!(!try_hold(rival.as_fd(), 5).unwrap(), "taken by another");
        drop(holder);
        assert!(!held_by_another(probe.as_fd(), 5).unwrap());
        assert!(try_hold(rival.as_fd(), 5).unwrap());
    }

    /// The kernel drops a dead process's lock: a child that takes one and
    /// exits leaves the byte free (no pid is involved in the test).
    #[test]
    fn a_dead_processs_lock_is_gone() {
        let probe = memfd();
        let holder = reopen(probe.as_fd()).unwrap();
        let (mut r, mut w) = std::io::pipe().unwrap();
        let (mut back_r, mut back_w) = std::io::pipe().unwrap();
        // SAFETY: the child only makes syscalls (fcntl, write, read) and
        // leaves with _exit; the test process may have other threads, none
        // of whose locks the child touches.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = try_hold(holder.as_fd(), 9).unwrap_or(false);
            let _ = w.write_all(&[ok as u8]);
            let mut b = [0u8; 1];
            let _ = back_r.read_exact(&mut b); // until the parent is done
            // SAFETY: ends the child without running the parent's handlers.
            unsafe { libc::_exit(0) };
        }
        // The child shares `holder`'s description: close the parent's copy
        // so that the child's exit closes the last one.
        drop(holder);
        let mut b = [0u8; 1];
        r.read_exact(&mut b).unwrap();
        assert_eq!(b[0], 1, "the child took the lock");
        assert!(held_by_another(probe.as_fd(), 9).unwrap(), "held while the child lives");
        back_w.write_all(&[0]).unwrap();
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(!held_by_another(probe.as_fd(), 9).unwrap(), "gone with the child");
    }
}
