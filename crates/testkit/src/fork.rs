//! Children made with `fork(2)`, running on the parent's inherited memory
//! (mappings, handles, fds): [`ForkGuard`] for tests, [`with_peer`] for
//! two-process measurements.
//!
//! After `fork` in a multi-threaded process the child has one thread, and
//! any lock another thread held at the time stays locked in it: a child
//! must only do what is safe then (atomics on shared memory, syscalls),
//! which is why forking is `unsafe` here.

use std::time::{Duration, Instant};

use crate::cpu::{cores, pin};

/// A child made with `fork(2)`: SIGKILLed and reaped on drop unless already
/// reaped.
#[derive(Debug)]
pub struct ForkGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl ForkGuard {
    /// Forks; the child runs `child` and `_exit`s with what it returns
    /// (`on_panic` if it panics), without running the parent's destructors.
    /// Panics if `fork` fails.
    ///
    /// # Safety
    /// The process may be multi-threaded: `child` must only do what is safe
    /// after `fork` in such a process (no lock another thread may have held).
    ///
    /// ```
    /// use fusion_ring_testkit::fork::ForkGuard;
    /// use std::time::{Duration, Instant};
    /// // SAFETY: the child only returns a number.
    /// let mut child = unsafe { ForkGuard::fork(|| 7, 101) };
    /// assert_eq!(child.exit_code(Instant::now(), Duration::from_secs(10)), 7);
    /// ```
    pub unsafe fn fork(child: impl FnOnce() -> i32, on_panic: i32) -> Self {
        // SAFETY: the caller vouches for what the child runs.
        unsafe { Self::try_fork(child, on_panic) }.unwrap_or_else(|e| panic!("fork: {e}"))
    }

    /// [`ForkGuard::fork`], with `fork`'s failure returned.
    ///
    /// # Safety
    /// As for [`ForkGuard::fork`].
    pub unsafe fn try_fork(child: impl FnOnce() -> i32, on_panic: i32) -> std::io::Result<Self> {
        // SAFETY: the caller vouches for what the child runs.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // A panicking child must not unwind into the parent's code.
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(on_panic);
            // SAFETY: ends the child here, destructors and atexit handlers
            // not run (they are the parent's).
            unsafe { libc::_exit(code) };
        }
        Ok(ForkGuard { pid, reaped: false })
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// `Some(wait status)` once the child has exited.
    pub fn try_wait(&mut self) -> Option<i32> {
        let mut status = 0;
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == self.pid {
            self.reaped = true;
            Some(status)
        } else {
            None
        }
    }

    /// Waits for the child to exit, however long it takes; returns its wait
    /// status (0: it exited with code 0).
    pub fn wait(&mut self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: plain syscall on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return status;
            }
            let e = std::io::Error::last_os_error();
            assert!(e.kind() == std::io::ErrorKind::Interrupted, "waitpid: {e}");
        }
    }

    /// Waits (up to `deadline` from `start`) for the child to exit and
    /// returns its exit code; panics if it was killed or ran out of time.
    pub fn exit_code(&mut self, start: Instant, deadline: Duration) -> i32 {
        loop {
            if let Some(status) = self.try_wait() {
                assert!(
                    libc::WIFEXITED(status),
                    "forked child {} ended by signal (status {status:#x})",
                    self.pid
                );
                return libc::WEXITSTATUS(status);
            }
            assert!(
                start.elapsed() < deadline,
                "forked child {} still running after {deadline:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ForkGuard {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: plain syscalls on our own, not yet reaped, child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Runs `child` in a forked process pinned to the second of [`cores`] while
/// `parent` runs pinned to the first; returns the parent's result, or an
/// error if the fork or the child failed. (Pinning is best effort: a CPU
/// this process may not use is left alone.) A parent that panics kills the
/// child.
///
/// # Safety
/// As for [`ForkGuard::fork`]: best called while the process is
/// single-threaded, else `child` must only do what is safe after `fork` in
/// a multi-threaded process.
///
/// ```
/// use fusion_ring_testkit::{fork::with_peer, shared_page::SharedPage};
/// use std::sync::atomic::Ordering;
/// let page = SharedPage::new();
/// let flag = page.word(0);
/// // SAFETY: the child stores to shared memory and returns.
/// let seen = unsafe {
///     with_peer(
///         || flag.store(1, Ordering::Release),
///         || while flag.load(Ordering::Acquire) == 0 { std::hint::spin_loop() },
///     )
/// };
/// assert!(seen.is_ok());
/// ```
pub unsafe fn with_peer<T>(child: impl FnOnce(), parent: impl FnOnce() -> T) -> Result<T, String> {
    let (c0, c1) = cores();
    let run_child = || {
        let _ = pin(c1);
        child();
        0
    };
    // SAFETY: the caller vouches for what the child runs.
    let mut peer =
        unsafe { ForkGuard::try_fork(run_child, 1) }.map_err(|e| format!("fork failed: {e}"))?;
    let _ = pin(c0);
    let out = parent();
    let status = peer.wait();
    if status != 0 {
        return Err(format!("peer process failed (wait status {status})"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::serial;
    use crate::shared_page::SharedPage;
    use std::sync::atomic::Ordering;

    const LIMIT: Duration = Duration::from_secs(30);

    #[test]
    fn the_exit_code_is_the_childs_and_a_panic_has_its_own() {
        let _serial = serial();
        // SAFETY: the children return a number, or unwind.
        let mut ok = unsafe { ForkGuard::fork(|| 3, 101) };
        assert_eq!(ok.exit_code(Instant::now(), LIMIT), 3);
        // A panic without the panic hook (which takes locks another test
        // thread may hold at fork time: the backtrace's, stderr's).
        let unwind = || std::panic::resume_unwind(Box::new("in the child"));
        // SAFETY: as above.
        let mut panics = unsafe { ForkGuard::fork(unwind, 42) };
        assert_eq!(panics.exit_code(Instant::now(), LIMIT), 42);
        // SAFETY: as above.
        let mut waited = unsafe { ForkGuard::fork(|| 0, 1) };
        assert_eq!(waited.wait(), 0);
    }

    #[test]
    fn a_dropped_guard_kills_its_child() {
        let _serial = serial();
        // SAFETY: the child spins on nothing shared, then is killed.
        let child = unsafe {
            ForkGuard::fork(
                || loop {
                    std::hint::spin_loop()
                },
                1,
            )
        };
        let pid = child.pid();
        drop(child);
        // SAFETY: signal 0 only checks whether the (reaped) pid exists.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "child {pid} still there");
    }

    #[test]
    fn with_peer_returns_the_parents_result_or_the_childs_failure() {
        let _serial = serial();
        let page = SharedPage::new();
        let word = page.word(8);
        // SAFETY: the child stores to the shared page, or unwinds.
        let got = unsafe {
            with_peer(
                || word.store(5, Ordering::Release),
                || {
                    while word.load(Ordering::Acquire) != 5 {
                        std::thread::yield_now();
                    }
                    "parent"
                },
            )
        };
        assert_eq!(got, Ok("parent"));
        let unwind = || std::panic::resume_unwind(Box::new("peer fails"));
        // SAFETY: as above (the panic skips the hook, see above).
        let failed = unsafe { with_peer(unwind, || ()) };
        assert!(failed.unwrap_err().contains("peer process failed"));
    }
}
