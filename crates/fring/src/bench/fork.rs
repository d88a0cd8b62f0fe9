//! Two real processes for a measurement: the parent (core 0) and a forked
//! child (core 1) that runs the other side and exits.
//!
//! `fring bench` stays single-threaded (no progress-bar ticker thread), so
//! forking is safe: the child runs only the peer loop, then `_exit`s.

use rustix::thread::{sched_setaffinity, CpuSet};

/// Pins the calling thread to `cpu` (if the machine has it).
pub fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    let _ = sched_setaffinity(None, &set);
}

/// CPUs this process may use, counted once, before any pinning (after
/// `pin`, the affinity mask, and so `available_parallelism`, says 1).
pub fn cpu_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPUs the two sides run on: 0 and 1 when the machine has two.
pub fn cores() -> (usize, usize) {
    if cpu_count() >= 2 {
        (0, 1)
    } else {
        (0, 0)
    }
}

/// Runs `child` in a forked process pinned to the second core while
/// `parent` runs pinned to the first; returns the parent's result, or an
/// error if the child failed.
pub fn with_peer<T>(child: impl FnOnce(), parent: impl FnOnce() -> T) -> Result<T, String> {
    let (c0, c1) = cores();
    // SAFETY: fring bench is single-threaded when it forks; the child only
    // runs `child` (which touches shared memory and fds set up before the
    // fork) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        pin(c1);
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
        // SAFETY: _exit ends the child without running the parent's atexit
        // handlers or destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pin(c0);
    let out = parent();
    let mut status = 0;
    // SAFETY: pid is our child; status is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if status != 0 {
        return Err(format!("peer process failed (wait status {status})"));
    }
    Ok(out)
}

/// An anonymous shared mapping inherited by forked children.
pub struct SharedPage {
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
    /// One page.
    pub fn new() -> Self {
        Self::with_len(4096)
    }

    /// `len` bytes (zeroed).
    pub fn with_len(len: usize) -> Self {
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .expect("mmap of shared memory");
        SharedPage {
            ptr: ptr.cast(),
            len,
        }
    }

    /// The atomic at byte `offset` (a multiple of 8).
    pub fn word(&self, offset: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: in bounds and aligned; the mapping is zero-initialised
        // shared memory, a valid AtomicU64 for any bit pattern, alive as
        // long as self.
        unsafe { &*(self.ptr.add(offset) as *const std::sync::atomic::AtomicU64) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}
