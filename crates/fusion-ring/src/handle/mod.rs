//! One process's handle on a segment, below the public ring types: its
//! participant entry (registration, and following the handle across a
//! fork), its stats lanes, and what it does about dead peers (their
//! claims, blocks and entries).

pub(crate) mod participant;
pub(crate) mod peer;
pub(crate) mod stats;
