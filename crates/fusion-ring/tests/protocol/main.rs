//! The slot protocol as the API shows it: batches claimed and published
//! whole, in order, with each message's bytes and priority, and batches cut
//! to a prefix when the ring or the arena runs out.
//!
//! - [`whole_runs`]: two threads; neither side ever finds part of a run;
//! - [`batches`]: one thread; order, contents and prefixes of batches;
//! - [`packed`]: one thread; small messages of a batch packed several to a
//!   slot, received one by one every way.
//!
//! The multi-threaded stress tests of the protocol are the `stress` target
//! (the one ThreadSanitizer runs).

#![cfg(not(fusion_ring_loom))]

#[path = "../common/mod.rs"]
mod common;

mod batches;
mod packed;
mod whole_runs;
