//! A watchdog inside a child process: worker threads beat once per
//! operation ([`Beat`]); when one has been inside the same operation for
//! too long, the [`Watchdog`] prints who, which operation, what the test
//! was doing and every thread's stack (with gdb, if installed), then ends
//! the process with [`EXIT_STALL`]. The parent (see
//! [`child::describe`](crate::child::describe)) reports it as a stall, not
//! a crash.
//!
//! Only for operations that are all bounded (non-blocking, or timeouts of
//! a few ms): a stall is then a bug, never a slow machine.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit code of a process whose watchdog found a stalled operation.
pub const EXIT_STALL: i32 = 86;

/// Heartbeat of a worker: the number of operations started and the one
/// under way (an index the watchdog's `op_name` turns into a name).
#[derive(Debug, Default)]
pub struct Beat {
    count: AtomicU64,
    op: AtomicUsize,
}

impl Beat {
    /// Operation `op` starts.
    pub fn begin(&self, op: usize) {
        // Relaxed: the watchdog only compares counts over 50 ms.
        self.op.store(op, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Another step of the same operation (progress, nothing new to name).
    pub fn tick(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Operations started so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// The watching thread; [`stop`](Watchdog::stop) it (or drop it) when the
/// work is done.
#[derive(Debug)]
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Watches `beats` (named workers) every 50 ms. When one has not moved
    /// for `stall`, prints `STALL: <who> has been in operation <op_name> ...`,
    /// the `context` and the stacks, and exits with [`EXIT_STALL`].
    pub fn start(
        beats: Vec<(String, Arc<Beat>)>,
        context: Arc<Mutex<String>>,
        stall: Duration,
        op_name: impl Fn(usize) -> String + Send + 'static,
    ) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let watching = done.clone();
        let thread = std::thread::spawn(move || {
            let done = watching;
            let mut last: Vec<(u64, Instant)> = beats
                .iter()
                .map(|(_, b)| (b.count(), Instant::now()))
                .collect();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                for (i, (who, b)) in beats.iter().enumerate() {
                    let c = b.count();
                    if c != last[i].0 {
                        last[i] = (c, Instant::now());
                    } else if last[i].1.elapsed() > stall && !done.load(Ordering::Relaxed) {
                        let op = op_name(b.op.load(Ordering::Relaxed));
                        let ctx = context.lock().map(|c| c.clone()).unwrap_or_default();
                        eprintln!(
                            "STALL: {who} has been in operation {op} for {stall:?} ({c} operations started)\ncontext: {ctx}\nstacks:\n{}",
                            stacks_of(std::process::id())
                        );
                        std::process::exit(EXIT_STALL);
                    }
                }
            }
        });
        Watchdog {
            done,
            thread: Some(thread),
        }
    }

    /// The work is done: ends the watching thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("watchdog thread");
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `gdb`'s view of every thread of `pid` (backtrace lines only), if gdb is
/// installed.
pub fn stacks_of(pid: u32) -> String {
    match Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 8"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("(no stacks: gdb: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::{describe, is_child, ChildGuard};
    use crate::role;

    fn names(op: usize) -> String {
        ["send", "recv"]
            .get(op)
            .map_or("?".into(), |s| s.to_string())
    }

    #[test]
    fn a_stalled_operation_ends_the_process_with_its_name() {
        let mut child = ChildGuard::spawn(role!(child_stalls), &[]);
        let (status, out) = child.wait(Instant::now(), Duration::from_secs(120));
        assert_eq!(status.code(), Some(EXIT_STALL), "{out}");
        assert_eq!(describe(status), "a stalled operation (watchdog)");
        assert!(
            out.contains("STALL: stuck has been in operation recv"),
            "{out}"
        );
        assert!(out.contains("context: the test's context"), "{out}");
    }

    #[test]
    fn child_stalls() {
        if !is_child(role!(child_stalls)) {
            return;
        }
        let (busy, stuck) = (Arc::new(Beat::default()), Arc::new(Beat::default()));
        let _dog = Watchdog::start(
            vec![
                ("busy".into(), busy.clone()),
                ("stuck".into(), stuck.clone()),
            ],
            Arc::new(Mutex::new("the test's context".into())),
            Duration::from_millis(300),
            names,
        );
        stuck.begin(1);
        loop {
            busy.begin(0);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn moving_beats_are_left_alone() {
        let mut child = ChildGuard::spawn(role!(child_keeps_moving), &[]);
        let out = child.wait_success(Instant::now(), Duration::from_secs(120));
        assert!(out.contains("stopped after 3 s"), "{out}");
    }

    #[test]
    fn child_keeps_moving() {
        if !is_child(role!(child_keeps_moving)) {
            return;
        }
        let beat = Arc::new(Beat::default());
        let dog = Watchdog::start(
            vec![("worker".into(), beat.clone())],
            Arc::new(Mutex::new(String::new())),
            Duration::from_secs(1),
            names,
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            beat.begin(0);
            beat.tick();
            std::thread::sleep(Duration::from_millis(5));
        }
        dog.stop();
        println!("stopped after 3 s");
    }
}
