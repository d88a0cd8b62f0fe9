//! Segments and how processes reach them: named segments under `/dev/shm`
//! (created with `O_EXCL`, opened, removed), what opening a file or
//! adopting a descriptor validates, real processes attached to one ring by
//! name or by a memfd handed over a Unix socket, and a peer that truncates
//! the file under our mapping.
//!
//! - [`lifecycle`]: create, open, remove, modes, unlink on drop;
//! - [`validation`]: files and descriptors that are not (good) rings;
//! - [`streams`]: a million messages between two processes, by name and
//!   by fd;
//! - [`truncation`]: `Corrupt`, not `SIGBUS`, after a truncation.

#![cfg(not(fusion_ring_loom))]

#[path = "../common/mod.rs"]
mod common;

mod lifecycle;
mod streams;
mod truncation;
mod validation;

use fusion_ring::{RingError, UltraFastRing};
use testkit::names::ShmName;

/// The error opening `name` returns (panics if it opens).
fn open_err(name: &ShmName) -> RingError {
    match UltraFastRing::open(name.name()) {
        Ok(ring) => panic!("open of {} succeeded: {ring:?}", name.label()),
        Err(e) => e,
    }
}
