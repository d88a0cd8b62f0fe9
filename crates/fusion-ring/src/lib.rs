//! # fusion-ring
//!
//! Lock-free message rings in shared memory, for moving messages between
//! threads and, above all, between processes on one Linux machine with no
//! system call, lock or allocation on the hot path.
//!
//! - Messages of up to [`INLINE_MAX`] (40) bytes travel inline in a 64-byte
//!   slot; [`UltraFastRing`] is that path with the least overhead.
//! - Many producers and many consumers, in any processes, claim slots with
//!   one CAS each; a batch claims many slots with one CAS.
//! - Publish-subscribe: on a broadcast ring ([`Config::broadcast`]) one
//!   [`Publisher`] sends and every [`Subscriber`] receives every message;
//!   the publisher waits for the slowest subscriber, or never waits and
//!   tells a subscriber it passed how many it missed
//!   ([`Overflow::Overwrite`], [`RingError::Lagged`]); a subscriber may
//!   start back in the ring's history ([`Subscriber::with_history`]).
//! - Every message carries a [`PriorityClass`] and a send timestamp from
//!   [`Clock`]; each of the five classes has its own stats lane.
//! - A ring is one segment: anonymous ([`Ring::new`], a memfd that children
//!   inherit and that can be sent over a Unix socket, see [`Ring::as_fd`] /
//!   [`Ring::from_fd`]) or named under `/dev/shm` ([`Ring::create`] /
//!   [`Ring::open`]).
//!
//! ## Segment layout
//! ```text
//! +--------------------+ 0
//! | SegmentHeader      |  magic, layout version + hash, capacity, offsets
//! +--------------------+ 4096
//! | ControlBlock       |  producer_head | roles_seen    | consumer_head |
//! |                    |  consumer_tail (one 64-B line each) | reserved
//! +--------------------+
//! | participants x 64  |  pid + start time + role (for people: liveness is
//! |                    |  a lock, see Death below), claim records, a
//! |                    |  subscriber's cursor, 5 lanes of counters
//! +--------------------+
//! | slots x capacity   |  seq u64 | stamp u64 | len u32 kind u8 prio u8 | 40 B
//! +--------------------+
//! ```
//!
//! ## Example: two processes
//! ```no_run
//! use fusion_ring::{Config, PriorityClass, UltraFastRing};
//!
//! // process A
//! let ring = UltraFastRing::create("orders", &Config::new(1024))?;
//! ring.send_fast(b"BUY 100 @ 42.5", PriorityClass::High)?;
//!
//! // process B
//! let ring = UltraFastRing::open("orders")?;
//! let mut buf = [0u8; 40];
//! let (len, prio, latency) = ring.recv_fast(&mut buf)?;
//! # Ok::<(), fusion_ring::RingError>(())
//! ```
//!
//! ## Trust model
//! The other side of shared memory is another program: it may be buggy,
//! hostile, or killed at any instruction. What this crate promises:
//!
//! - **Scribbling.** Everything a peer can write is an atomic, and every
//!   value read from the segment is checked before it is used: opening
//!   checks magic, version, layout hash and every region against the real
//!   file size; slot lengths, kinds and priorities, sequence words against
//!   their heads, zero-copy descriptors (offset, alignment, size class,
//!   generation, length) against the arena, free-list links against the
//!   block area, claim records and counters with saturating arithmetic. A
//!   peer writing any bytes anywhere, at any time, can make this side get
//!   [`RingError::Corrupt`], wrong message bytes, lost messages or leaked
//!   arena blocks; never undefined behaviour, a panic, an access outside the
//!   segment, or a loop that does not end without the peer's help. A peer
//!   that keeps writing can keep this side busy (as one that keeps sending
//!   can); blocking calls with a deadline still return by it.
//! - **Zero-copy payloads** are views into shared memory ([`Payload`],
//!   [`Loan`]): a hostile process that maps the segment can change the bytes
//!   while they are read. Copy what must not change under you.
//! - **Death.** Each handle holds a lock on a byte of the segment's file
//!   (an open-file-description lock, which the kernel drops when its
//!   process dies, and which any process mapping the file can test,
//!   whatever pid namespace it runs in: containers sharing `/dev/shm`
//!   included), and each process a shared lock on the byte of its pid for
//!   the blocks it holds. Pid and start time are recorded for people
//!   (`fring stat`), not as the test of life. A
//!   blocking call whose other side has had participants and has none alive
//!   returns [`RingError::Disconnected`] (checked every few ms while it
//!   sleeps, nothing on the hot path). A slot a dead producer claimed and
//!   never published is skipped; one a dead consumer claimed and never
//!   released is freed; arena blocks a dead process held are returned;
//!   dead participants' entries are freed. Blocked calls do this as they
//!   wait, and [`Ring::recover`] does it on demand. A handle inherited across `fork` registers the child as a
//!   participant of its own on first use; a loan or payload inherited
//!   across `fork` stays the parent's (the child's copy gives nothing back). The limits (files on
//!   network file systems, children made by a raw `clone` that skips fork handlers) are in [`Ring::recover`]'s
//!   module (`handle::peer`) docs and in `docs/ARCHITECTURE.md`.
//! - **Named segments** are files under `/dev/shm`, created with `O_EXCL`
//!   and mode 0600 by default: any process that may open the file is a
//!   peer. Such a peer can also truncate the file, and reading a mapping
//!   past a file's end raises `SIGBUS`. The mapping of every file not
//!   sealed against shrinking is therefore guarded: a process-wide
//!   `SIGBUS` handler (installed the first time such a file is mapped)
//!   replaces a truncated ring's mapping with a private, poisoned copy, and
//!   the ring then reports [`RingError::Corrupt`] ("truncated") on every
//!   claim instead of the process dying. A `SIGBUS` anywhere else goes on
//!   to the handler that was there before (the default kills, as always).
//!   At most 128 such mappings are guarded at once. Anonymous rings (memfd,
//!   passed by inheritance or over a Unix socket with [`handoff`]) are
//!   sealed against shrinking and need none of this: prefer them when
//!   peers are not trusted.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]
#![cfg_attr(fusion_ring_loom, allow(dead_code, unused_imports))]

mod atomic;
mod clock;
mod error;
mod priority;

/// Items that need the whole library (mappings, processes, the handle
/// layer): the loom build (`--cfg fusion_ring_loom`) leaves them out and
/// checks the lock-free core alone. The gate, declared once.
macro_rules! hosted {
    ($($item:item)*) => { $( #[cfg(not(fusion_ring_loom))] $item )* };
}

// The layers (docs/ARCHITECTURE.md), from the bottom: shm, lockfree,
// handle, ring, then the public ring types; each imports only from the
// ones below it.
mod lockfree;
mod shm;
hosted! {
    mod handle;
}

#[cfg(all(test, fusion_ring_loom))]
mod loom_tests;
#[cfg(all(test, miri))]
mod miri_tests;
#[cfg(all(test, not(fusion_ring_loom)))]
mod tests;

hosted! {
    mod batch;
    mod fusion;
    mod inline;
    pub mod inspect;
    mod pubsub;
    mod ring;
    mod split;
    mod sync;
    mod ultra;
    mod zerocopy;
}

pub use clock::Clock;
pub use error::{CorruptError, IoError, Result, RingError};
pub use priority::PriorityClass;

pub use lockfree::arena::ArenaUsage;

hosted! {
    pub use shm::handoff;
    pub use shm::config::{
        Config, Overflow, DEFAULT_ARENA_BYTES, DEFAULT_CAPACITY, DEFAULT_MAX_MESSAGE,
        MAX_ARENA_BYTES,
    };
    pub use fusion::FusionRing;
    pub use batch::BatchMessage;
    pub use inline::{allocate_zerocopy_buffer, fits_inline, send_batch, send_inline, send_zerocopy};
    pub use shm::layout::{INLINE_MAX, MAX_SUBSCRIBERS};
    pub use pubsub::{Publisher, Subscriber};
    pub use handle::peer::Recovery;
    pub use ring::{InlineMessage, Ring, RingStats};
    pub use split::{Consumer, Producer};
    pub use handle::stats::LaneStats;
    pub use sync::RingSync;
    pub use ultra::UltraFastRing;
    pub use zerocopy::{Loan, LoanError, Payload};

    /// Removes a named ring's name from `/dev/shm`. Handles already open keep
    /// working; the memory is freed when the last one is dropped.
    ///
    /// ```
    /// use fusion_ring::{remove_named, Config, Ring, RingError};
    /// let name = format!("doc-remove-{}", std::process::id());
    /// let ring = Ring::create(&name, &Config::new(8).unlink_on_drop(false))?;
    /// remove_named(&name)?;
    /// assert!(matches!(Ring::open(&name), Err(RingError::NotFound { .. })));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn remove_named(name: &str) -> Result<()> {
        shm::segment::unlink_named(name)
    }
}
