//! The slot protocol as the API shows it: batches claimed and published
//! whole, in order, with each message's bytes and priority, and batches cut
//! to a prefix when the ring or the arena runs out.
//!
//! - [`whole_runs`]: two threads; neither side ever finds part of a run;
//! - [`batches`]: one thread; order, contents and prefixes of batches.
//!
//! The multi-threaded stress tests of the protocol are the `stress` target
//! (the one ThreadSanitizer runs).

#![cfg(not(fusion_ring_loom))]

#[path = "../common/mod.rs"]
mod common;

mod batches;
mod whole_runs;
