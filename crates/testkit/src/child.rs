//! Child processes for the cross-process tests: the test binary itself,
//! re-run with `--exact <test>`, where that test sees [`ROLE_VAR`] name it
//! and plays the child's part (every other test with a role returns at
//! once when it is not its own).
//!
//! A role is the full path of the test that plays it, as [`role!`](crate::role)
//! spells it from inside the test's module, so a typo fails to compile and
//! tests keep working when they move between modules:
//!
//! ```no_run
//! use fusion_ring_testkit::child::{child_var, is_child, ChildGuard};
//! use fusion_ring_testkit::role;
//! use std::time::{Duration, Instant};
//!
//! #[test]
//! fn parent() {
//!     let mut child = ChildGuard::spawn(role!(child_says_hello), &[("GREETING", "hello".into())]);
//!     let out = child.wait_success(Instant::now(), Duration::from_secs(10));
//!     assert!(out.contains("hello"));
//! }
//!
//! #[test]
//! fn child_says_hello() {
//!     if !is_child(role!(child_says_hello)) {
//!         return;
//!     }
//!     println!("{}", child_var("GREETING"));
//! }
//! # fn main() {}
//! ```

use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Names the role a re-spawned test binary plays (a [`role!`](crate::role)).
pub const ROLE_VAR: &str = "FUSION_RING_TEST_CHILD_ROLE";

/// The role of test `name` of the calling module: `crate::module::name`, a
/// `&'static str` for [`ChildGuard::spawn`] and [`is_child`]. `name` must
/// be a `fn()` in scope (the test itself), so a misspelt role does not
/// compile.
#[macro_export]
macro_rules! role {
    ($test:ident) => {{
        let _: fn() = $test;
        concat!(module_path!(), "::", stringify!($test))
    }};
}

/// The name libtest knows `role`'s test by: its path without the crate.
///
/// ```
/// use fusion_ring_testkit::child::test_path;
/// assert_eq!(test_path("hostile_peer::open_fuzz::child_open_fuzz"), "open_fuzz::child_open_fuzz");
/// assert_eq!(test_path("syscalls::child_blocking_sender"), "child_blocking_sender");
/// ```
pub fn test_path(role: &str) -> &str {
    role.split_once("::").map_or(role, |(_, path)| path)
}

/// Whether this process was spawned to play `role`.
pub fn is_child(role: &str) -> bool {
    std::env::var(ROLE_VAR).ok().as_deref() == Some(role)
}

/// Whether this process was spawned to play any role (a parent test run in
/// a child by mistake returns at once).
pub fn is_any_child() -> bool {
    std::env::var_os(ROLE_VAR).is_some()
}

/// A variable the parent passed to this child.
pub fn child_var(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("child: variable {var} missing"))
}

/// A launcher for [`ChildGuard::spawn_under`]: new user, pid and mount
/// namespaces (no privilege needed), in which the child is pid 1 with a
/// `/proc` of its own, as in a container; killed with the launcher.
pub const PID_NAMESPACE: &[&str] = &[
    "unshare",
    "--user",
    "--map-root-user",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
];

/// Whether this machine lets an unprivileged process make the namespaces
/// of [`PID_NAMESPACE`]. Where it does not, panics saying so, unless the
/// environment says `FRING_NO_USERNS=1`: then prints that the test is
/// skipped and returns false.
pub fn pid_namespaces_available() -> bool {
    let ok = Command::new(PID_NAMESPACE[0])
        .args(&PID_NAMESPACE[1..])
        .arg("true")
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var("FRING_NO_USERNS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: no unprivileged user namespaces here (FRING_NO_USERNS=1)");
        return false;
    }
    assert!(
        ok,
        "`{}` fails on this machine: this test needs unprivileged user and pid \
         namespaces (set FRING_NO_USERNS=1 to skip it)",
        PID_NAMESPACE.join(" ")
    );
    true
}

/// Where a child's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Into pipes: read with [`ChildGuard::output`] once it has exited, or
    /// [`ChildGuard::stdout`] while it runs. A child that prints more than a
    /// pipe holds (64 KiB) blocks until it is read.
    Piped,
    /// Both streams into this file, read by [`ChildGuard::output`] and
    /// removed on drop: for chatty children the parent does not read while
    /// they run.
    File(PathBuf),
    /// Standard output discarded, standard error the parent's.
    Quiet,
}

/// A re-spawned test binary playing a child role; killed and reaped on drop
/// (so a panicking parent leaves no child behind).
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    role: &'static str,
    log: Option<PathBuf>,
    reaped: bool,
}

impl ChildGuard {
    /// Starts the test binary as `role` (a [`role!`](crate::role)), with
    /// `vars` in its environment and its output in pipes.
    pub fn spawn(role: &'static str, vars: &[(&str, String)]) -> Self {
        Self::spawn_with(role, vars, Output::Piped)
    }

    /// [`ChildGuard::spawn`] with its output going to `output`.
    pub fn spawn_with(role: &'static str, vars: &[(&str, String)], output: Output) -> Self {
        Self::spawn_under(&[], role, vars, output)
    }

    /// [`ChildGuard::spawn_with`] under the command `launcher` (program and
    /// arguments, the test binary's path and arguments appended): e.g.
    /// [`PID_NAMESPACE`], to play the role in a pid namespace of its own.
    /// Killing the guard kills the launcher, which must then kill the role
    /// (as `unshare --kill-child` does).
    pub fn spawn_under(
        launcher: &[&str],
        role: &'static str,
        vars: &[(&str, String)],
        output: Output,
    ) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = match launcher {
            [] => Command::new(exe),
            [program, args @ ..] => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(exe);
                cmd
            }
        };
        cmd.args([
            "--exact",
            test_path(role),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .stdin(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let log = match output {
            Output::Piped => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                None
            }
            Output::File(path) => {
                let out = File::create(&path).expect("child log file");
                let err = out.try_clone().expect("child log file");
                cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
                Some(path)
            }
            Output::Quiet => {
                cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
                None
            }
        };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning child {role}: {e}"));
        ChildGuard {
            child,
            role,
            log,
            reaped: false,
        }
    }

    /// The role it plays.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, for a parent that reads it while it runs
    /// ([`Output::Piped`] only, once).
    pub fn stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout piped, taken once")
    }

    /// What the child printed (call once it has exited): the pipes'
    /// contents, or the log file's.
    pub fn output(&mut self) -> String {
        let mut text = String::new();
        if let Some(log) = &self.log {
            let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut text));
        }
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

    /// `Some(status)` once the child has exited (reaped then).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait");
        self.reaped |= status.is_some();
        status
    }

    /// Panics (with the child's output) if the child has failed. A child
    /// that exited successfully did all it had to do (e.g. a producer that
    /// finished); the parent's own checks judge the rest.
    pub fn assert_running(&mut self) {
        if self.reaped {
            return;
        }
        if let Some(status) = self.try_wait() {
            if !status.success() {
                self.fail(format!("failed with {status}"));
            }
        }
    }

    /// Panics if the child has exited at all, for children meant to run
    /// until they are killed.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!("child exited on its own: {status}");
        }
    }

    /// SIGKILL, then reap; panics (with the child's output) if the child
    /// had already failed on its own: a child that panicked just before
    /// the kill is not taken for a killed one.
    pub fn kill_running(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        if self.reaped {
            return self.assert_running();
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait");
        self.reaped = true;
        if status.signal() != Some(libc::SIGKILL) && !status.success() {
            self.fail(format!("failed on its own before the kill: {status}"));
        }
    }

    /// SIGKILL, then reap (so its pid is not a zombie's any more).
    pub fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// Waits for the child to exit, killing it (and failing) once
    /// `deadline` has passed since `start`. Returns its status and output.
    pub fn wait(&mut self, start: Instant, deadline: Duration) -> (ExitStatus, String) {
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            if start.elapsed() > deadline {
                self.kill();
                self.fail(format!(
                    "did not finish within {deadline:?} and was killed (watchdog)"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
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
        self.kill();
        if let Some(log) = &self.log {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// How a child ended, in words: success, a stall its
/// [`watchdog`](crate::watchdog) reported, an exit code, or a signal.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(0), _) => "success".into(),
        (Some(crate::watchdog::EXIT_STALL), _) => "a stalled operation (watchdog)".into(),
        (Some(c), _) => format!("exit code {c} (a panic is 101)"),
        (_, Some(s)) => format!("signal {s} (SIGSEGV=11, SIGBUS=7, SIGABRT=6)"),
        _ => format!("{status}"),
    }
}

/// The parent's watch over its children while it works: every child alive
/// (or successfully done) and the test's deadline not passed.
#[derive(Debug)]
pub struct Watch<'a> {
    /// When the test started.
    pub start: Instant,
    /// How long it may take.
    pub deadline: Duration,
    /// Its children.
    pub children: &'a mut [ChildGuard],
}

impl Watch<'_> {
    /// Panics, saying it was busy with `what`, if a child failed or the
    /// deadline passed (the children are killed when their guards drop).
    pub fn check(&mut self, what: &str) {
        for c in self.children.iter_mut() {
            c.assert_running();
        }
        assert!(
            self.start.elapsed() < self.deadline,
            "parent: {what}: the {:?} deadline passed (watchdog; children are killed)",
            self.deadline
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{unique_name, PathGuard};

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_child_plays_its_role_and_its_output_comes_back() {
        let mut child = ChildGuard::spawn(role!(child_prints), &[("TESTKIT_WORD", "hello".into())]);
        assert_eq!(
            child.role(),
            "fusion_ring_testkit::child::tests::child_prints"
        );
        let out = child.wait_success(Instant::now(), LIMIT);
        assert!(out.contains("child says hello"), "{out}");
        // Only that test ran in the child.
        assert!(out.contains("1 passed"), "{out}");
    }

    #[test]
    fn child_prints() {
        if !is_child(role!(child_prints)) {
            return;
        }
        println!("child says {}", child_var("TESTKIT_WORD"));
    }

    #[test]
    fn a_failed_child_is_reported_and_a_log_file_is_removed() {
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("fr-testkit")));
        let _cleanup = PathGuard(log.clone());
        let mut child = ChildGuard::spawn_with(role!(child_fails), &[], Output::File(log.clone()));
        let (status, out) = child.wait(Instant::now(), LIMIT);
        assert_eq!(status.code(), Some(101), "{out}");
        assert_eq!(describe(status), "exit code 101 (a panic is 101)");
        assert!(out.contains("the child's panic"), "{out}");
        assert!(log.exists());
        drop(child);
        assert!(!log.exists());
    }

    #[test]
    fn child_fails() {
        if !is_child(role!(child_fails)) {
            return;
        }
        panic!("the child's panic");
    }

    #[test]
    fn a_child_is_killed_on_drop_and_on_deadline() {
        let mut child = ChildGuard::spawn_with(role!(child_sleeps), &[], Output::Quiet);
        let pid = child.id() as i32;
        child.assert_alive();
        child.assert_running();
        drop(child);
        // SAFETY: signal 0 only checks whether the (reaped) pid exists.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "still there");

        let mut child = ChildGuard::spawn(role!(child_sleeps), &[]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child.wait(Instant::now(), Duration::from_millis(200))
        }));
        let text = crate::panics::panic_text(&*r.expect_err("a deadline"));
        assert!(text.contains("was killed (watchdog)"), "{text}");
    }

    #[test]
    fn child_sleeps() {
        if !is_child(role!(child_sleeps)) {
            return;
        }
        std::thread::sleep(LIMIT);
    }

    #[test]
    fn roles_name_the_test_path() {
        assert_eq!(test_path(role!(child_sleeps)), "child::tests::child_sleeps");
        assert!(!is_child(role!(child_sleeps)) || is_any_child());
    }
}
