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
