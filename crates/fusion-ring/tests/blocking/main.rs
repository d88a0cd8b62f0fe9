//! Blocking: the calls that wait (`send_blocking`, `recv_blocking`, the
//! `_timeout` / `_until` forms, `RingSync`'s waits), their timeouts and
//! their wake-ups.
//!
//! - [`timeouts`]: one process; a timed-out call changes nothing;
//! - [`waits`]: one process; blocked calls return once what they wait
//!   for is there, and not before;
//! - [`wakeups`]: sleeping receiver and sender processes lose no wake-up,
//!   and a busy stream does not sleep at all.
//!
//! A blocking call that might hang runs in a spawned thread (or a child
//! process) and is waited for with a generous limit, so a bug fails the
//! test rather than hanging it.

#![cfg(not(fusion_ring_loom))]

#[path = "../common/mod.rs"]
mod common;

mod timeouts;
mod waits;
mod wakeups;
