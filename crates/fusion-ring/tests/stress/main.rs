//! In-process stress: many threads, each with its own handle, on one ring,
//! every message checked byte for byte, none lost or received twice.
//!
//! - [`mpmc`]: `UltraFastRing`, 4 x 4 threads one message at a time and
//!   2 x 2 with batches;
//! - [`fusion`]: `FusionRing`, 3 x 3 threads, inline and zero-copy messages
//!   of every size, loans and batches;
//! - [`single`]: one producer and one consumer thread on a
//!   single-producer single-consumer ring (its own protocol), 8 slots;
//! - [`broadcast`]: one publisher and three subscriber threads on a
//!   broadcast ring of 8 slots, one subscriber joining late.
//!
//! One process only (no fork, no child process): this is the target
//! ThreadSanitizer runs (`.ci/sanitizers`, docs/SANITIZERS.md). Run in
//! release mode: `cargo test -p fusion-ring --release --test stress`.

// Under loom the ring types are not built.
#![cfg(not(fusion_ring_loom))]

mod broadcast;
mod fusion;
mod mpmc;
mod single;
