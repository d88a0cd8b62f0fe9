//! Child processes for the cross-process tests: the test binary re-run with
//! `--exact ROLE`, where the test named ROLE sees [`ROLE_VAR`] set and plays
//! the child's part (every other test returns at once); and handing a ring's
//! fd to a child over a Unix socket.

use std::io::Read;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Names the role a re-spawned test binary plays.
pub const ROLE_VAR: &str = "FUSION_RING_TEST_CHILD_ROLE";

/// Whether this process was spawned to play `role`.
pub fn is_child(role: &str) -> bool {
    std::env::var(ROLE_VAR).ok().as_deref() == Some(role)
}

/// A variable the parent passed to this child.
pub fn child_var(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("child: variable {var} missing"))
}

/// A re-spawned test binary playing a child role; killed and reaped on drop
/// (so a panicking parent leaves no child behind).
pub struct ChildGuard {
    child: Child,
    role: &'static str,
    reaped: bool,
}

impl ChildGuard {
    /// Starts the test binary as `role`, with `vars` in its environment and
    /// its output captured.
    pub fn spawn(role: &'static str, vars: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", role, "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning child {role}: {e}"));
        ChildGuard {
            child,
            role,
            reaped: false,
        }
    }

    /// The child's stdout, for a parent that reads it while it runs.
    pub fn stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout taken once")
    }

    /// What the child printed (call once it has exited).
    pub fn output(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// Panics with `why` and what the child printed.
    pub fn fail(&mut self, why: String) -> ! {
        let output = self.output();
        panic!(
            "child {} (pid {}) {why}; its output:\n{output}",
            self.role,
            self.child.id()
        );
    }

    /// Panics (with the child's output) if the child has failed. A child
    /// that exited successfully did all it had to do (e.g. a producer that
    /// finished); the parent's own checks judge the rest.
    pub fn assert_running(&mut self) {
        if self.reaped {
            return;
        }
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            self.reaped = true;
            if !status.success() {
                self.fail(format!("failed with {status}"));
            }
        }
    }

    /// Waits for the child to exit, killing it (and failing) once
    /// `deadline` has passed since `start`. Returns its status and output.
    pub fn wait(&mut self, start: Instant, deadline: Duration) -> (ExitStatus, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.reaped = true;
                self.fail(format!(
                    "did not finish within {deadline:?} and was killed (watchdog)"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        self.reaped = true;
        (status, self.output())
    }

    /// [`ChildGuard::wait`] for a successful exit.
    pub fn wait_success(&mut self, start: Instant, deadline: Duration) -> String {
        let (status, output) = self.wait(start, deadline);
        if !status.success() {
            panic!(
                "child {} failed with {status}; its output:\n{output}",
                self.role
            );
        }
        output
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes a socket path on drop.
pub struct PathGuard(pub PathBuf);

impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Hands a ring's fd to the process at the other end of `stream`.
pub fn send_fd(stream: &UnixStream, fd: BorrowedFd<'_>) {
    fusion_ring::handoff::send_fd(stream, fd).expect("sendmsg with SCM_RIGHTS");
}

/// Receives a ring's fd from the other end of `stream`.
pub fn recv_fd(stream: &UnixStream) -> OwnedFd {
    fusion_ring::handoff::recv_fd(stream).expect("recvmsg with SCM_RIGHTS")
}

/// Heavy cross-process tests spin two processes each: on 2 cores, hold this
/// to run them one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A ring or socket name no other test or process uses: `tag`, this
/// process's id and a counter.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child made with `fork(2)`, running on the parent's inherited memory:
/// SIGKILLed and reaped on drop unless already reaped.
pub struct ForkGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl ForkGuard {
    /// Forks; the child runs `child` and `_exit`s with what it returns
    /// (`on_panic` if it panics), without running the parent's destructors.
    ///
    /// # Safety
    /// The test process is multi-threaded: `child` must only do what is safe
    /// after `fork` in such a process (no lock another thread may have held).
    pub unsafe fn fork(child: impl FnOnce() -> i32, on_panic: i32) -> Self {
        // SAFETY: the caller vouches for what the child runs.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(on_panic);
            // SAFETY: ends the child here, destructors not run.
            unsafe { libc::_exit(code) };
        }
        ForkGuard { pid, reaped: false }
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
