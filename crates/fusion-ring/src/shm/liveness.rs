//! Liveness marks: open-file-description locks on single bytes of a
//! segment's file, which the kernel drops when the last descriptor of the
//! description closes (its process exited or died), and which any process
//! that has the file open can test, whatever pid namespace it runs in
//! (issue 13).
//!
//! Unlike classic POSIX record locks, OFD locks (`F_OFD_SETLK`) belong to
//! the open file description, not to a process: a forked child shares its
//! parent's descriptions (and so their locks), two descriptions of one
//! process conflict with each other, and closing some other descriptor of
//! the file drops nothing. A holder therefore locks through a description
//! of its own ([`reopen`], through `/proc/self/fd`, which reopens a memfd
//! too), and a tester asks through one that holds no lock (the segment's
//! own descriptor): a description never sees its own locks as conflicting.
//!
//! Two kinds of marks, on bytes past any segment's end (a lock needs no
//! data under it):
//! - **an entry mark** ([`EntryLock`], exclusive): held by a participant
//!   entry's handle from before it claims the entry until after it frees
//!   it, so an entry in use whose mark is free belongs to a dead handle.
//!   The mark is also a mutex: a survivor reaps a dead entry holding it,
//!   and a new handle cannot take the entry meanwhile.
//! - **a process mark** ([`ProcessMark`], shared): held by every process
//!   that maps the segment, on the byte of its pid, as long as it maps it.
//!   Arena blocks record their holder by pid; a holder is dead when nobody
//!   holds its pid's byte. Two processes with the same pid number in two
//!   pid namespaces both hold that byte (a shared lock), so a collision can
//!   only make a dead holder look alive (a leak until the other exits),
//!   never a live one dead.
//!
//! Checked on this machine: a lock taken under `unshare --user
//! --map-root-user --pid --fork` (pid 1 there) on a file in `/dev/shm` is
//! seen held from outside (`F_OFD_GETLK` reports `l_pid` -1: no pid crosses
//! the namespaces) and free once that process exits.
//!
//! Under Miri segments are heap memory with no file, and these functions
//! are not used: liveness falls back to pids (`Segment::entry_alive`).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags};

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use crate::shm::layout::MAX_PARTICIPANTS;

/// The first byte of the marks: past the end of any segment (the largest
/// has a 2^40-byte arena), far below `off_t`'s limit.
const MARKS: u64 = 1 << 46;

/// The byte of participant entry `index`'s mark.
fn entry_byte(index: usize) -> u64 {
    MARKS + index as u64
}

/// The byte of the process mark of pid `pid`.
fn process_byte(pid: u32) -> u64 {
    MARKS + MAX_PARTICIPANTS as u64 + u64::from(pid)
}

/// A new open file description of the file behind `fd`, read-write,
/// close-on-exec. Without allocating: a child forked from a multi-threaded
/// process calls it (`Registration::follow_fork`).
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let mut path = [0u8; 40];
    write!(&mut path[..], "/proc/self/fd/{}\0", fd.as_raw_fd())?;
    let path = core::ffi::CStr::from_bytes_until_nul(&path)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    Ok(rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn byte_range(kind: libc::c_int, byte: u64) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value of it.
    let mut l: libc::flock = unsafe { core::mem::zeroed() };
    l.l_type = kind as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = byte as libc::off_t;
    l.l_len = 1;
    l
}

/// `fcntl(fd, cmd, &mut l)` for the OFD lock commands.
fn fcntl_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, l: &mut libc::flock) -> std::io::Result<()> {
    // SAFETY: the OFD lock commands read (and F_OFD_GETLK rewrites) the
    // `flock` we pass, which is borrowed for the call; `fd` is a valid
    // descriptor for the call's duration.
    match unsafe { libc::fcntl(fd.as_raw_fd(), cmd, l as *mut libc::flock) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Takes a lock of `kind` (`F_WRLCK`, `F_RDLCK`) on `byte` through `fd`'s
/// description, without waiting: `Ok(false)` if another description holds
/// a conflicting one.
fn try_lock(fd: BorrowedFd<'_>, kind: libc::c_int, byte: u64) -> std::io::Result<bool> {
    match fcntl_lock(fd, libc::F_OFD_SETLK, &mut byte_range(kind, byte)) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Drops `fd`'s description's lock on `byte` (if any).
fn unlock(fd: BorrowedFd<'_>, byte: u64) {
    // An unlock cannot fail on a valid descriptor (it may split a range,
    // which a one-byte range never does).
    let _ = fcntl_lock(fd, libc::F_OFD_SETLK, &mut byte_range(libc::F_UNLCK, byte));
}

/// Whether a description other than `probe`'s holds any lock on `byte`.
/// An error (which a valid descriptor does not give) answers yes: a mark
/// that cannot be read is taken for a live one, so nothing is reclaimed.
fn held(probe: BorrowedFd<'_>, byte: u64) -> bool {
    let mut l = byte_range(libc::F_WRLCK, byte);
    fcntl_lock(probe, libc::F_OFD_GETLK, &mut l).map_or(true, |()| {
        l.l_type != libc::F_UNLCK as libc::c_short
    })
}

/// Whether participant entry `index`'s mark is held (its handle lives),
/// asked through `probe`, a description that holds no entry mark.
pub(crate) fn entry_marked(probe: BorrowedFd<'_>, index: usize) -> bool {
    held(probe, entry_byte(index))
}

/// Whether some process with pid `pid` maps the segment (see the module
/// docs for pids shared by two pid namespaces).
pub(crate) fn process_marked(probe: BorrowedFd<'_>, pid: u32) -> bool {
    held(probe, process_byte(pid))
}

/// A handle's description for its entry mark (one per handle: two handles
/// of one process must exclude each other).
#[derive(Debug)]
pub(crate) enum EntryLock {
    /// Marks through this description.
    Held(OwnedFd),
    /// No description could be opened: the handle takes no entry of its
    /// own (it uses the shared entry 0, about which survivors assume the
    /// worst) and reaps nothing.
    Unavailable,
    /// Liveness by pid (Miri): every entry can be taken.
    Pids,
}

impl EntryLock {
    /// Takes entry `index`'s mark, unless another description holds it.
    pub(crate) fn try_take(&self, index: usize) -> bool {
        match self {
            EntryLock::Held(fd) => try_lock(fd.as_fd(), libc::F_WRLCK, entry_byte(index))
                .unwrap_or(false),
            EntryLock::Unavailable => false,
            EntryLock::Pids => true,
        }
    }

    /// Gives entry `index`'s mark back.
    pub(crate) fn give_back(&self, index: usize) {
        if let EntryLock::Held(fd) = self {
            unlock(fd.as_fd(), entry_byte(index));
        }
    }
}

/// This process's mark on a segment: a shared lock on the byte of its pid,
/// through a description of its own, taken before the process can hold an
/// arena block and kept while it maps the segment. A forked child inherits
/// the description (shared with its parent): it takes a description and a
/// mark of its own on its first use of a handle ([`ProcessMark::mark`]).
#[derive(Debug)]
pub(crate) struct ProcessMark {
    /// The pid marked; 0 = none yet; [`REMARKING`] while a thread replaces
    /// the description.
    pid: AtomicU32,
    /// The description (owned; -1 = none).
    fd: AtomicI32,
}

/// [`ProcessMark::pid`] while the description is being replaced.
const REMARKING: u32 = u32::MAX;

impl ProcessMark {
    pub(crate) fn new() -> Self {
        ProcessMark {
            pid: AtomicU32::new(0),
            fd: AtomicI32::new(-1),
        }
    }

    /// Makes sure process `pid` (this one) holds its mark, opening a
    /// description of the file behind `probe` for it. Cheap when it does: a
    /// load and a compare. In a forked child, the description inherited
    /// from the parent is closed here (so the parent's death shows), unless
    /// no new one can be opened: then the child marks through it (its blocks
    /// then look held while the parent lives: a leak, not a loss).
    pub(crate) fn mark(&self, probe: BorrowedFd<'_>, pid: u32) -> std::io::Result<()> {
        loop {
            // Acquire: pairs with the Release below, so the thread that
            // sees its pid also sees the description stored before it.
            match self.pid.load(Ordering::Acquire) {
                p if p == pid => return Ok(()),
                REMARKING => core::hint::spin_loop(),
                p => {
                    if self
                        .pid
                        .compare_exchange(p, REMARKING, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let done = self.replace(probe, pid);
                        // Release: the description stored before the pid
                        // is published (pairs with the Acquire above).
                        self.pid
                            .store(if done.is_ok() { pid } else { p }, Ordering::Release);
                        return done;
                    }
                }
            }
        }
    }

    /// Marks `pid` through a new description and closes the old one.
    fn replace(&self, probe: BorrowedFd<'_>, pid: u32) -> std::io::Result<()> {
        let old = self.fd.load(Ordering::Relaxed);
        match reopen(probe) {
            Ok(new) => {
                if !try_lock(new.as_fd(), libc::F_RDLCK, process_byte(pid))? {
                    // Only a write lock conflicts, and nobody takes one there.
                    return Err(std::io::Error::from(std::io::ErrorKind::WouldBlock));
                }
                self.fd.store(new.into_raw_fd(), Ordering::Relaxed);
                if old >= 0 {
                    // SAFETY: `old` is the descriptor this mark owned (stored
                    // from `into_raw_fd`); nobody else closes it, and it is no
                    // longer stored, so it is closed once.
                    drop(unsafe { OwnedFd::from_raw_fd(old) });
                }
                Ok(())
            }
            Err(e) if old >= 0 => {
                // SAFETY: `old` is owned by this mark and stays open while
                // it is borrowed here (only `replace` and `drop` close it,
                // and this thread is the only one in `replace`).
                let old = unsafe { BorrowedFd::borrow_raw(old as RawFd) };
                match try_lock(old, libc::F_RDLCK, process_byte(pid)) {
                    Ok(true) => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for ProcessMark {
    fn drop(&mut self) {
        let fd = *self.fd.get_mut();
        if fd >= 0 {
            // SAFETY: the mark owns `fd` (see `replace`) and is dropped.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::*;

    /// Whether `marked()` turns false within seconds. A description's
    /// locks go when its last copy is closed, and a test of this binary
    /// that forks meanwhile (as `a_dead_processs_mark_is_gone` does) gives
    /// its child copies of every open descriptor for the child's short
    /// life: a closed mark can linger that long.
    fn let_go(marked: impl Fn() -> bool) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while marked() {
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    fn memfd() -> OwnedFd {
        let fd = rustix::fs::memfd_create("marks-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4096).unwrap();
        fd
    }

    /// An entry mark is seen by other descriptions, on its byte only, and
    /// goes when given back or when its description closes; a description
    /// does not see its own mark; two descriptions exclude each other.
    #[test]
    fn an_entry_mark_is_seen_by_other_descriptions_until_closed() {
        let probe = memfd();
        let holder = EntryLock::Held(reopen(probe.as_fd()).unwrap());
        assert!(holder.try_take(5));
        assert!(entry_marked(probe.as_fd(), 5));
        assert!(!entry_marked(probe.as_fd(), 6));
        let EntryLock::Held(fd) = &holder else { unreachable!() };
        assert!(!entry_marked(fd.as_fd(), 5), "its own lock");
        let rival = EntryLock::Held(reopen(probe.as_fd()).unwrap());
        assert!(!rival.try_take(5), "taken by another");
        holder.give_back(5);
        assert!(!entry_marked(probe.as_fd(), 5));
        assert!(holder.try_take(5));
        drop(holder);
        assert!(let_go(|| entry_marked(probe.as_fd(), 5)));
        assert!(rival.try_take(5));
        assert!(!EntryLock::Unavailable.try_take(7));
    }

    /// Process marks are shared: two holders of one pid's byte, and the
    /// byte is free only when both are gone.
    #[test]
    fn a_process_mark_is_shared_and_goes_with_its_holders() {
        let probe = memfd();
        let (a, b) = (ProcessMark::new(), ProcessMark::new());
        a.mark(probe.as_fd(), 4242).unwrap();
        a.mark(probe.as_fd(), 4242).unwrap();
        b.mark(probe.as_fd(), 4242).unwrap();
        assert!(process_marked(probe.as_fd(), 4242));
        assert!(!process_marked(probe.as_fd(), 4243));
        drop(a);
        assert!(process_marked(probe.as_fd(), 4242), "b still holds it");
        // A new pid (as in a forked child): the old byte is let go.
        b.mark(probe.as_fd(), 4243).unwrap();
        assert!(let_go(|| process_marked(probe.as_fd(), 4242)));
        assert!(process_marked(probe.as_fd(), 4243));
        drop(b);
        assert!(let_go(|| process_marked(probe.as_fd(), 4243)));
    }

    /// The kernel drops a dead process's mark: a child that takes one and
    /// exits leaves the byte free (no pid is involved in the test).
    #[test]
    fn a_dead_processs_mark_is_gone() {
        let probe = memfd();
        let holder = EntryLock::Held(reopen(probe.as_fd()).unwrap());
        let (mut r, mut w) = std::io::pipe().unwrap();
        let (mut back_r, mut back_w) = std::io::pipe().unwrap();
        // SAFETY: the child only makes syscalls (fcntl, write, read) and
        // leaves with _exit; the test process may have other threads, none
        // of whose locks the child touches.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = holder.try_take(9);
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
        assert_eq!(b[0], 1, "the child took the mark");
        assert!(entry_marked(probe.as_fd(), 9), "held while the child lives");
        back_w.write_all(&[0]).unwrap();
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(!entry_marked(probe.as_fd(), 9), "gone with the child");
    }
}
