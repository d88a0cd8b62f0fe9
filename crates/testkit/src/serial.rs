//! The process-wide lock of tests that must not run at the same time.

use std::sync::{Mutex, MutexGuard};

/// Heavy tests spin two processes or threads each: on 2 cores, the ones that
/// hold this run one at a time (whatever module of the binary they are in).
/// A test that panicked while holding it does not block the others.
///
/// ```
/// let _serial = fusion_ring_testkit::serial::serial();
/// ```
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn one_holder_at_a_time_and_a_panic_does_not_block_the_rest() {
        let _ = std::thread::spawn(|| {
            let _held = serial();
            panic!("a test that failed while serial");
        })
        .join();
        let inside = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        let _serial = serial();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                        std::thread::yield_now();
                        inside.store(false, Ordering::SeqCst);
                    }
                });
            }
        });
    }
}
