//! Unit tests of the handle layer that need the whole library: they drive
//! it through the public ring types and look at crate-private state (which
//! integration tests cannot). Each file names the module it tests.

mod batches;
mod broadcast;
#[cfg(not(miri))] // heap segments have no file to lock
mod liveness;
mod peer;
mod roles;
mod spares;
mod stats;
