//! Panics in other threads: a stop flag they raise, and their messages.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

/// Raises the stop flag if its thread unwinds, so the other threads of a
/// stress test stop instead of waiting for it until their deadline.
///
/// ```
/// use fusion_ring_testkit::panics::StopOnPanic;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let stop = AtomicBool::new(false);
/// std::thread::scope(|s| {
///     let _ = s.spawn(|| {
///         let _guard = StopOnPanic(&stop);
///         panic!("a worker fails");
///     }).join();
/// });
/// assert!(stop.load(Ordering::Relaxed));
/// ```
#[derive(Debug)]
pub struct StopOnPanic<'a>(pub &'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Relaxed: the flag carries no data; the others only stop.
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The message of a panic payload (`panic!`'s `String` or `&str`).
///
/// ```
/// use fusion_ring_testkit::panics::panic_text;
/// let e = std::panic::catch_unwind(|| panic!("no {}", 42)).unwrap_err();
/// assert_eq!(panic_text(&*e), "no 42");
/// ```
pub fn panic_text(e: &(dyn Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}
