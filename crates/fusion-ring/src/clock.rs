//! One clock for send timestamps and latencies.
//!
//! On x86_64 it reads the TSC (`rdtsc`; the machines we target have an
//! invariant TSC, the same on every core), on aarch64 the virtual counter
//! `cntvct_el0`, elsewhere monotonic nanoseconds. [`Clock::ticks_per_ns`]
//! calibrates the tick rate once against the OS monotonic clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The timestamp source shared by both ends of a ring.
///
/// ```
/// use fusion_ring::Clock;
/// let a = Clock::now();
/// let b = Clock::now();
/// assert!(b >= a);
/// let ns = Clock::ticks_to_ns(Clock::ticks_per_ns() * 1000.0);
/// assert!((999.0..1001.0).contains(&ns));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Clock;

impl Clock {
    /// The current tick count. Cheap (no syscall); not serialising.
    #[inline(always)]
    pub fn now() -> u64 {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            // SAFETY: rdtsc has no preconditions; it is available on every
            // x86_64 CPU.
            unsafe { core::arch::x86_64::_rdtsc() }
        }
        #[cfg(all(target_arch = "aarch64", not(miri)))]
        {
            let v: u64;
            // SAFETY: reading cntvct_el0 is allowed at EL0 on Linux and has
            // no side effects.
            unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
            v
        }
        // Miri cannot run rdtsc or read cntvct_el0: monotonic ns instead.
        #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
        {
            fallback_ns()
        }
    }

    /// Ticks per nanosecond, measured once per process (about 20 ms the first
    /// time it is called).
    pub fn ticks_per_ns() -> f64 {
        static RATE: OnceLock<f64> = OnceLock::new();
        *RATE.get_or_init(calibrate)
    }

    /// Converts a tick count to nanoseconds.
    pub fn ticks_to_ns(ticks: f64) -> f64 {
        ticks / Self::ticks_per_ns()
    }

    /// Converts a tick count to a [`Duration`].
    pub fn ticks_to_duration(ticks: u64) -> Duration {
        Duration::from_nanos(Self::ticks_to_ns(ticks as f64) as u64)
    }
}

#[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn fallback_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn calibrate() -> f64 {
    // Under Miri the ticks are `fallback_ns` nanoseconds: no need to spin
    // 21 ms of (interpreted, virtual) time to find that out.
    if cfg!(miri) {
        return 1.0;
    }
    // Take the best of a few short windows: a preemption inside a window only
    // ever makes the Instant side longer, and the median of three is robust to
    // one bad window either way.
    let mut rates = [0.0f64; 3];
    for r in &mut rates {
        let (i0, t0) = (Instant::now(), Clock::now());
        while i0.elapsed() < Duration::from_millis(7) {
            std::hint::spin_loop();
        }
        let (t1, i1) = (Clock::now(), Instant::now());
        *r = t1.wrapping_sub(t0) as f64 / (i1 - i0).as_nanos() as f64;
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[1];
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        1.0
    }
}
