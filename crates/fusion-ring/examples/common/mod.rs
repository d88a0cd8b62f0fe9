//! Helpers shared by the measurement examples: pinning, forking a pinned
//! child, order statistics.

#![allow(dead_code)]

use rustix::thread::{sched_setaffinity, CpuSet};

pub fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    if let Err(e) = sched_setaffinity(None, &set) {
        eprintln!("warning: cannot pin to cpu {cpu}: {e}");
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `child` in a forked process pinned to core 1 while `parent` runs
/// pinned to core 0; returns parent's result.
pub fn forked<T>(child: impl FnOnce(), parent: impl FnOnce() -> T) -> T {
    // SAFETY: this example is single-threaded when it forks; the child only
    // runs `child` and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        pin(1);
        // A panicking child must not unwind into the parent's code.
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
        if !ok {
            // SAFETY: _exit is async-signal-safe and ends the child here.
            unsafe { libc::_exit(1) };
        }
        // SAFETY: _exit is async-signal-safe and ends the child here.
        unsafe { libc::_exit(0) };
    }
    pin(0);
    let r = parent();
    let mut status = 0;
    // SAFETY: pid is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(status, 0, "child failed");
    r
}

pub fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}
