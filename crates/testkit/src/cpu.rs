//! Pinning to CPUs: the two sides of a two-process measurement on two cores.

use rustix::thread::{sched_setaffinity, CpuSet};

/// Pins the calling thread to `cpu`. Fails if this process may not use it
/// (or the machine has no such CPU); the caller decides whether that
/// matters.
///
/// ```
/// use fusion_ring_testkit::cpu::pin;
/// if let Err(e) = pin(0) {
///     eprintln!("warning: cannot pin to cpu 0: {e}");
/// }
/// ```
pub fn pin(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// CPUs this process may use, counted once, before any pinning (after
/// [`pin`], the affinity mask, and so `available_parallelism`, says 1):
/// call it once early in a program that pins.
pub fn cpu_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPUs the two sides of a measurement run on: 0 and 1 when the
/// machine has two, else both on 0.
///
/// ```
/// use fusion_ring_testkit::cpu::{cores, cpu_count};
/// let (a, b) = cores();
/// assert_eq!(a, 0);
/// assert_eq!(b, usize::from(cpu_count() >= 2));
/// ```
pub fn cores() -> (usize, usize) {
    if cpu_count() >= 2 {
        (0, 1)
    } else {
        (0, 0)
    }
}
