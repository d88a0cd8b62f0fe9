//! The atomics the shared-memory structures are made of.
//!
//! Under `--cfg fusion_ring_loom` these are loom's model-checked atomics, so
//! the slot protocol can be explored exhaustively (loom atomics cannot live in
//! mapped bytes: the loom tests build the structures as ordinary values).

#[cfg(fusion_ring_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(fusion_ring_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Spin-loop hint; under loom a yield so the model can make progress.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(fusion_ring_loom)]
    loom::thread::yield_now();
    #[cfg(not(fusion_ring_loom))]
    std::hint::spin_loop();
}

/// Asks for the cache line at `p` in exclusive state ahead of a write
/// (`prefetchw`): a line that another core wrote last then arrives writable
/// in one transfer, where a load followed by a store (or a CAS) pays a
/// second round trip to take it from the reader's copy to an exclusive one.
/// A hint only: it has no architectural effect and never faults, whatever
/// `p` is.
#[inline(always)]
pub(crate) fn prefetch_for_write<T>(p: *const T) {
    // Miri cannot run inline assembly and loom has no caches: no-ops there.
    #[cfg(all(target_arch = "x86_64", not(fusion_ring_loom), not(miri)))]
    // SAFETY: prefetchw never faults and has no architectural effect (CPUs
    // without it execute it as a NOP); it reads no memory Rust can observe.
    unsafe {
        core::arch::asm!("prefetchw [{p}]", p = in(reg) p, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(all(target_arch = "x86_64", not(fusion_ring_loom), not(miri))))]
    let _ = p;
}

/// Asks for the cache line at `p` ahead of a read (`prefetcht0`); a hint
/// like [`prefetch_for_write`].
#[inline(always)]
pub(crate) fn prefetch_for_read<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(fusion_ring_loom), not(miri)))]
    // SAFETY: as in `prefetch_for_write`: a hint that never faults.
    unsafe {
        core::arch::asm!("prefetcht0 [{p}]", p = in(reg) p, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(all(target_arch = "x86_64", not(fusion_ring_loom), not(miri))))]
    let _ = p;
}
