//! The test kit of fusion-ring: what its integration tests, its examples and
//! `fring bench` share, so that each helper exists once.
//!
//! Not published, and it depends on nothing of fusion-ring (fusion-ring has
//! it as a dev-dependency). Helpers that need fusion-ring's types stay with
//! the tests (`crates/fusion-ring/tests/common/`).
//!
//! | module | what |
//! |---|---|
//! | [`rng`] | splitmix64 ([`rng::mix`], [`rng::Rng`]) and the content of test messages ([`rng::fill`]) |
//! | [`names`] | names no other test or process uses ([`names::unique_name`]), files removed on drop |
//! | [`serial`] | the process-wide lock of tests that must not run at the same time |
//! | [`child`] | the test binary re-run as a child process playing one test's role |
//! | [`fork`] | `fork(2)`ed children: [`fork::ForkGuard`], [`fork::with_peer`] |
//! | [`cpu`] | pinning to a CPU, the CPUs the two sides of a measurement use |
//! | [`shared_page`] | shared memory for flags and counters between processes |
//! | [`watchdog`] | a thread that ends a process whose operations stall |
//! | [`panics`] | a stop flag raised by a panicking thread, panic messages |

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod child;
pub mod cpu;
pub mod fork;
pub mod names;
pub mod panics;
pub mod rng;
pub mod serial;
pub mod shared_page;
pub mod watchdog;
