//! The zero-copy arena: loans written in place, payloads read in place,
//! forwards and clones; every block comes back, after failures in one
//! process and after long streams between two.
//!
//! - [`loans`]: one process, every failure path of loans, payloads and
//!   forwards;
//! - [`round_trips`]: every size class across two processes, byte-exact;
//! - [`mixed_stream`]: a million mixed messages, clones and forwards, and
//!   the arena empty at the end on both sides.

#![cfg(not(fusion_ring_loom))]

#[path = "../common/mod.rs"]
mod common;

mod loans;
mod mixed_stream;
mod round_trips;
