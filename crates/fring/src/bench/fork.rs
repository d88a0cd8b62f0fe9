//! Two real processes for a measurement: the parent (core 0) and a forked
//! child (core 1) that runs the other side and exits. The forking, pinning
//! and shared pages are the test kit's; what is fring's is why forking is
//! sound here.

pub use fusion_ring_testkit::cpu::cpu_count;
pub use fusion_ring_testkit::shared_page::SharedPage;

/// Runs `child` in a forked process pinned to the second core while
/// `parent` runs pinned to the first; returns the parent's result, or an
/// error if the child failed.
pub fn with_peer<T>(child: impl FnOnce(), parent: impl FnOnce() -> T) -> Result<T, String> {
    // SAFETY: `fring bench` forks only single-threaded (reference rows join
    // their thread first): the child inherits no held lock; it runs `child`
    // (on memory and fds set up before the fork) and leaves with _exit.
    unsafe { fusion_ring_testkit::fork::with_peer(child, parent) }
}
