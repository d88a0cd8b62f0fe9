//! Hostile-peer fuzzing: the other side of shared memory is untrusted.
//!
//! Whatever a peer writes into the segment, our side may report
//! `RingError::Corrupt` (or hand out garbage message bytes), but must never
//! panic, crash (SIGSEGV / SIGBUS), read out of bounds, loop or wait forever.
//!
//! - `open_fuzz_*`: proptest builds files under `/dev/shm` from arbitrary
//!   bytes and from real segments with words overwritten (header fields,
//!   control block, slots, participants, arena), opens them with the three
//!   ring types and `inspect`, and runs a bounded mix of operations.
//! - `live_scribbling_*`: a producer and a consumer run on a live ring while
//!   a third party maps the same file and writes random words at random
//!   offsets and times (threads of one child, or three child processes).
//! - `regression_*`: reduced reproducers of what the fuzzers found.
//!
//! Every fuzz run happens in a child process (this binary, re-run as one of
//! its `child_*` tests: the test kit's `child` module) under a watchdog in
//! the parent, so a hang or a crash is a test failure that names the seed.
//! Inside a child a second watchdog names the operation that stalled and
//! prints the stacks (with gdb, when installed).
//!
//! Environment: `FRING_FUZZ_SEED` (base seed, decimal or 0x-hex; every
//! episode prints its own seed, which reproduces it as the base seed),
//! `FRING_FUZZ_SECS` (run each fuzz test for that long instead of the short
//! in-suite budget), `FRING_FUZZ_SKIP` (comma-separated operation names as
//! `op_name` spells them, e.g. `arena_usage`, to leave out, and
//! `too_small_check` to drop that check, `huge_heads` to keep head values
//! below 2^62: to look past a known bug). See docs/FUZZING.md.
//!
//! The parts: [`harness`] (seeds, budgets, child processes, watchdogs),
//! [`layout_mirror`] (where the words are), [`peer`] (what a hostile peer
//! writes, and its view of the segment), [`operations`] (our side: a
//! bounded mix of ring operations and their tally), then the tests:
//! [`open_fuzz`], [`live_scribbling`], [`regressions`].

#![cfg(not(fusion_ring_loom))]

mod harness;
mod layout_mirror;
mod live_scribbling;
mod open_fuzz;
mod operations;
mod peer;
mod regressions;
