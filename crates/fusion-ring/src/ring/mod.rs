//! [`Ring`]: one handle on a segment, the layer every ring type is built
//! on. It puts together the parts of `handle` (the shared ring, the
//! handle's registration, its side of the arena); the send and receive
//! engine over them is in [`engine`], slot decoding in [`decode`].

mod broadcast_engine;
mod decode;
mod engine;
pub(crate) mod message;

use core::cell::Cell;
use core::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Result, RingError};
use crate::atomic::Ordering;
use crate::handle::allocator::BlockAllocator;
use crate::handle::broadcast;
use crate::handle::participant::ROLE_SUBSCRIBER;
use crate::handle::peer::{self, Recovery};
use crate::handle::participant::Caller;
use crate::handle::registration::Registration;
use crate::handle::shared::SharedRing;
use crate::handle::stale::remove_if_stale;
use crate::handle::stats::{aggregate, sum, LaneStats};
use crate::handle::wait::{wait_on, Waiting};
use crate::lockfree::arena::{AllocError, Arena, ArenaUsage, Descriptor};
use crate::lockfree::event::Deadline;
#[cfg(test)]
use crate::lockfree::protocol::RingCore;
use crate::shm::config::Config;
#[cfg(test)]
use crate::shm::layout::ParticipantEntry;
use crate::shm::layout::SyncBlock;
use crate::shm::segment::Segment;

pub use message::InlineMessage;

/// The low-level view of a ring: one handle on a shared segment.
///
/// A handle is `Send` but not `Sync`: give each thread its own with
/// [`Clone`] (each clone registers as a participant and keeps its own stats
/// lanes in the segment, which is what lets the hot path update statistics
/// without atomic read-modify-write).
///
/// A `Ring` makes, opens and shares the segment, and reads its state
/// ([`Ring::stats`], [`Ring::lane_stats`], [`Ring::arena_usage`]) and
/// recovers what dead peers left ([`Ring::recover`]). It sends through the
/// seeds' free functions ([`crate::send_inline`], [`crate::send_batch`],
/// [`crate::send_zerocopy`]); to receive, wrap it in the ring type that
/// fits ([`crate::UltraFastRing::from`], [`crate::FusionRing::from`]),
/// which costs nothing.
///
/// ```
/// use fusion_ring::{send_inline, FusionRing, Ring};
/// let ring = Ring::new(256)?;
/// send_inline(&ring, b"hello")?;
/// let stats = ring.stats();
/// assert_eq!((stats.head, stats.tail), (1, 0));
/// assert_eq!((stats.inline_count, stats.zerocopy_count), (1, 0));
/// let ring = FusionRing::from(ring);
/// let mut buf = [0u8; 8];
/// assert_eq!(ring.recv(&mut buf)?, 5);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub struct Ring {
    shared: SharedRing,
    reg: Registration,
    alloc: BlockAllocator,
    /// `Full`/`Empty` results and exhausted allocations so far; every
    /// `STALL_CHECK_EVERY`th / `BLOCK_CHECK_EVERY`th looks after dead peers.
    misses: Cell<u32>,
    /// On a single-producer single-consumer ring, the producer's cache of
    /// the first position it may not write yet (`lockfree::single`).
    room_end: Cell<u64>,
    /// `Full` results in a row (see `back_off_full`).
    full_streak: Cell<u32>,
    /// On a broadcast ring that overwrites, the messages this subscriber
    /// lost so far (the sum of its `Lagged` reports).
    missed_total: Cell<u64>,
    _not_sync: PhantomData<Cell<()>>,
}

/// How many `Full`/`Empty` results pass between two looks for a dead
/// peer's claim (each look is two loads when there is none).
const STALL_CHECK_EVERY: u32 = 1 << 12;
/// Spin hints before a `Full` is returned, doubled at each `Full` in a row
/// up to `FULL_BACKOFF_MIN << FULL_BACKOFF_MAX_SHIFT` (`engine::back_off_full`).
const FULL_BACKOFF_MIN: u32 = 8;
const FULL_BACKOFF_MAX_SHIFT: u32 = 2;
/// How many exhausted allocations pass between two walks over the arena
/// for blocks of dead processes.
const BLOCK_CHECK_EVERY: u32 = 1 << 8;

/// A snapshot of a ring's state and counters: what `stats()` returns on
/// every ring type ([`Ring`], [`crate::UltraFastRing`],
/// [`crate::FusionRing`]).
///
/// `head` is the next position producers will claim, `tail` the next one
/// consumers will claim: `head - tail` messages are queued. Counters are
/// summed over every handle, in every process, that ever used the ring.
///
/// ```
/// use fusion_ring::{FusionRing, PriorityClass};
/// let ring = FusionRing::new(8)?;
/// ring.send(b"tick")?;
/// ring.send(&[7u8; 4096])?;
/// let mut buf = [0u8; 8];
/// ring.recv(&mut buf)?;
/// let s = ring.stats();
/// assert_eq!((s.head, s.tail, s.capacity), (2, 1, 8));
/// assert_eq!((s.sent, s.received), (2, 1));
/// assert_eq!((s.inline_count, s.zerocopy_count), (1, 1));
/// assert_eq!(s.arena.blocks_in_use, 1);
/// assert_eq!(s.lanes[PriorityClass::Normal.lane()].sent, 2);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingStats {
    /// Next position a producer will claim (= messages ever claimed for send).
    pub head: u64,
    /// Next position a consumer will claim (= messages ever claimed for receive).
    pub tail: u64,
    /// Slots in the ring.
    pub capacity: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Of `sent`, how many travelled inline.
    pub inline_count: u64,
    /// Of `sent`, how many travelled zero-copy.
    pub zerocopy_count: u64,
    /// Mean send-to-receive latency of the timestamped messages, in clock
    /// ticks (see [`crate::Clock`]; 0 if none).
    pub avg_latency: f64,
    /// Per-lane counters, indexed by [`crate::PriorityClass::lane`].
    pub lanes: [LaneStats; 5],
    /// Arena blocks and bytes in use (zero without an arena).
    pub arena: ArenaUsage,
}

impl Ring {
    /// A new ring of `capacity` slots (power of two, 2..=2^24) in an
    /// anonymous shared-memory segment (memfd), shareable with children
    /// (fork) and other processes (see [`Ring::as_fd`]).
    pub fn new(capacity: usize) -> Result<Self> {
        Self::with_config(&Config::new(capacity))
    }

    /// A new anonymous ring (memfd) with the given [`Config`] (its mode and
    /// unlink options only matter for named rings).
    pub fn with_config(config: &Config) -> Result<Self> {
        Self::adopt(Segment::create_anonymous(config)?)
    }

    /// Creates a named ring under `/dev/shm` (`O_EXCL`: fails with
    /// [`RingError::AlreadyExists`] if the name is taken, unless the ring
    /// there is stale and [`Config::replace_stale`] allows replacing it).
    pub fn create(name: &str, config: &Config) -> Result<Self> {
        let segment = match Segment::create_named(name, config) {
            Err(RingError::AlreadyExists { .. })
                if config.replaces_stale() && remove_if_stale(name)? =>
            {
                Segment::create_named(name, config)?
            }
            r => r?,
        };
        Self::adopt(segment)
    }

    /// Opens a named ring created by another handle or process.
    pub fn open(name: &str) -> Result<Self> {
        Self::adopt(Segment::open_named(name)?)
    }

    /// Adopts a ring from a file descriptor (from [`Ring::as_fd`] in another
    /// process, received over a Unix socket or inherited).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::adopt(Segment::from_fd(fd)?)
    }

    /// A handle on a segment just mapped: the process marks itself alive
    /// there first (see `shm::liveness`), an error if it cannot.
    fn adopt(segment: Segment) -> Result<Self> {
        segment.mark_process()?;
        Ok(Self::from_segment(Arc::new(segment)))
    }

    fn from_segment(segment: Arc<Segment>) -> Self {
        let shared = SharedRing::new(segment);
        let reg = Registration::new(shared.segment(), shared.core());
        Ring {
            shared,
            reg,
            alloc: BlockAllocator::new(),
            misses: Cell::new(0),
            room_end: Cell::new(0),
            full_streak: Cell::new(0),
            missed_total: Cell::new(0),
            _not_sync: PhantomData,
        }
    }

    /// The segment's file descriptor, to hand to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.segment().fd()
    }

    /// The segment's name (`/name`), `memfd`, or `fd N` for an adopted fd.
    pub fn label(&self) -> &str {
        self.shared.segment().label()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.segment().geometry().capacity
    }

    /// Messages queued (a snapshot); on a broadcast ring, those its slowest
    /// subscriber has not read.
    pub fn len(&self) -> usize {
        let core = self.shared.core();
        if self.shared.broadcast() {
            // What the slowest subscriber has not read (0 without one).
            let head = core.ctrl().producer_head.value.load(Ordering::Relaxed);
            let slowest = broadcast::slowest(self.shared.participants(), head, core.capacity());
            return match slowest {
                Ok(Some(c)) => head.wrapping_sub(c) as usize,
                Ok(None) | Err(_) => 0,
            };
        }
        core.len() as usize
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Largest message this ring carries (40 without an arena).
    pub fn max_message(&self) -> usize {
        self.shared.max_message()
    }

    /// Whether this is a broadcast ring ([`Config::broadcast`]): a receive
    /// on any handle then subscribes it, at its first receive.
    pub fn is_broadcast(&self) -> bool {
        self.shared.broadcast()
    }

    /// How many subscribers a broadcast ring has now (0 on a work queue).
    pub fn subscribers(&self) -> usize {
        broadcast::count(self.shared.participants())
    }

    /// On a broadcast ring, how many published messages this handle (a
    /// subscriber) has not read yet.
    pub(crate) fn lag(&self) -> u64 {
        let head = self.shared.core().ctrl().producer_head.value.load(Ordering::Relaxed);
        if !self.reg.has_role(ROLE_SUBSCRIBER) {
            return 0;
        }
        // Relaxed: snapshots for people.
        let cursor = self.reg.entry_followed().id.cursor.value.load(Ordering::Relaxed);
        head.saturating_sub(cursor)
    }

    /// On a broadcast ring, the messages this handle (a subscriber) lost to
    /// the publisher overwriting them: the sum of its `Lagged` reports.
    pub(crate) fn messages_missed(&self) -> u64 {
        self.missed_total.get()
    }

    /// Moves this subscriber's cursor back by up to `depth` messages (its
    /// history): `InvalidConfig` past the ring's capacity.
    pub(crate) fn rewind(&self, depth: usize) -> Result<()> {
        let capacity = self.capacity();
        if depth > capacity {
            return Err(RingError::InvalidConfig {
                field: "history",
                value: depth as u64,
                reason: format!("a ring of {capacity} slots keeps at most {capacity} messages"),
            });
        }
        let core = self.shared.core();
        core.rewind_broadcast(&self.reg.entry_followed().id.cursor.value, depth as u64);
        Ok(())
    }

    /// Positions, counters, lanes and arena use (see [`RingStats`]).
    ///
    /// The arena's use is counted by walking its blocks and free lists:
    /// for counters polled often, [`Ring::lane_stats`] reads the lanes
    /// alone.
    pub fn stats(&self) -> RingStats {
        let (head, tail) = self.shared.core().positions();
        let lanes = self.lane_stats();
        let all = sum(&lanes);
        RingStats {
            head,
            tail,
            capacity: self.shared.core().capacity(),
            sent: all.sent,
            received: all.received,
            inline_count: all.inline_sent,
            zerocopy_count: all.zerocopy_sent,
            avg_latency: all.avg_latency(),
            lanes,
            arena: self.arena_usage(),
        }
    }

    /// Counters of the five lanes, summed over every participant.
    pub fn lane_stats(&self) -> [LaneStats; 5] {
        aggregate(self.shared.participants())
    }

    /// Arena blocks and bytes in use (zero without an arena).
    pub fn arena_usage(&self) -> ArenaUsage {
        self.shared.arena().map(Arena::usage).unwrap_or_default()
    }

    /// Reclaims what dead processes left in the ring: slots a producer
    /// claimed and died before publishing (skipped from now on), slots a
    /// consumer claimed and died before releasing (free again), arena
    /// blocks a dead process held, and dead participants' entries.
    ///
    /// Blocked calls do this by themselves while they wait, and a handle
    /// that keeps getting `Full`/`Empty` looks for stuck slots now and
    /// then; call it to reclaim at once (for example after learning that a
    /// peer died). It costs a scan of the ring, the arena and the
    /// participant table.
    ///
    /// ```
    /// use fusion_ring::{FusionRing, Recovery};
    /// let ring = FusionRing::new(8)?;
    /// ring.send(b"nobody died")?;
    /// assert_eq!(ring.as_ring().recover(), Recovery::default());
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn recover(&self) -> Recovery {
        peer::recover(&self.shared, self.caller(), &self.reg.lock())
    }

    // ---- for the ring types built on this one ----

    /// Takes `role` (`ROLE_*`) for this handle now, as its first send or
    /// receive would: on a ring that allows one holder of it, `RoleTaken`
    /// if another live handle has it.
    pub(crate) fn take_role(&self, role: u32) -> Result<()> {
        let core = self.shared.core();
        self.reg.follow_fork(core);
        self.reg.note_role_then(role, core, || {
            if role == crate::handle::participant::ROLE_SENDER {
                self.became_sender();
            }
        })
    }

    /// The calling process and its entry (first following a fork).
    #[inline(always)]
    pub(crate) fn caller(&self) -> Caller<'_> {
        self.reg.caller(self.shared.core())
    }

    /// This handle's participant entry (first following a fork).
    #[cfg(test)]
    pub(crate) fn entry(&self) -> &ParticipantEntry {
        self.caller().entry
    }

    /// The slot protocol over this ring's segment.
    #[cfg(test)]
    pub(crate) fn core(&self) -> &RingCore {
        self.shared.core()
    }

    /// This handle's side of the arena.
    #[cfg(test)]
    pub(crate) fn allocator(&self) -> &BlockAllocator {
        &self.alloc
    }

    /// The ring's arena, if it has one.
    #[inline]
    pub(crate) fn arena(&self) -> Option<&Arena> {
        self.shared.arena()
    }

    #[inline]
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        self.shared.segment()
    }

    /// The event counts of the blocking layer.
    #[inline]
    pub(crate) fn sync_block(&self) -> &SyncBlock {
        self.shared.sync_block()
    }

    /// Whether the next slot to receive holds a published message.
    #[inline]
    pub(crate) fn readable(&self) -> bool {
        let core = self.shared.core();
        if self.shared.broadcast() {
            // This handle's cursor (where it would join: the head, if it
            // has not yet).
            let pos = if self.reg.has_role(ROLE_SUBSCRIBER) {
                self.reg.entry_followed().id.cursor.value.load(Ordering::Relaxed)
            } else {
                core.ctrl().producer_head.value.load(Ordering::Acquire)
            };
            // Acquire: as a receive's claim ("message visible").
            let seq = core.slot(pos).seq.load(Ordering::Acquire);
            // A later lap: the receive has a `Lagged` to report.
            return seq == pos.wrapping_add(1)
                || crate::lockfree::broadcast::is_later_lap(seq, pos, core.capacity());
        }
        core.readable()
    }

    /// Whether the next slot to send into is free.
    #[inline]
    pub(crate) fn writable(&self) -> bool {
        let core = self.shared.core();
        if self.shared.single() {
            core.writable_single()
        } else if self.shared.broadcast() {
            // Relaxed: a hint for waiters, who then claim.
            let pos = core.ctrl().producer_head.value.load(Ordering::Relaxed);
            match broadcast::slowest(self.shared.participants(), pos, core.capacity()) {
                Ok(Some(slowest)) => pos.wrapping_sub(slowest) < core.capacity(),
                // No subscriber holds it back; a scribbled cursor: let the
                // send find it.
                Ok(None) | Err(_) => true,
            }
        } else {
            core.writable()
        }
    }

    pub(crate) fn corrupt(&self, what: String) -> RingError {
        self.shared.corrupt(what)
    }

    /// Drops one reference to a block; wakes blocked senders if it was freed.
    #[inline]
    pub(crate) fn release_block(&self, offset: u64) {
        self.shared.release_block(offset, self.caller().pid);
    }

    /// Allocates a block of `len` bytes for a loan (see `BlockAllocator`).
    #[inline]
    pub(crate) fn alloc_block(
        &self,
        arena: &Arena,
        len: usize,
    ) -> core::result::Result<Descriptor, AllocError> {
        self.alloc
            .alloc(arena, len, self.shared.max_message(), self.caller())
    }

    /// After a loan was sent: allocates the next block ahead, sized by the
    /// sent one's class (see `BlockAllocator::refill_spare`).
    #[inline]
    pub(crate) fn refill_spare(&self, class_len: usize) {
        if let Some(arena) = self.shared.arena() {
            let len = class_len.min(self.shared.max_message());
            self.alloc.refill_spare(arena, len, self.caller());
        }
    }

    /// Counts an exhausted arena; now and then (the walk over the arena
    /// is slow), frees the blocks of dead processes. True if any was.
    #[cold]
    #[inline(never)]
    pub(crate) fn reclaimed_blocks_now_and_then(&self) -> bool {
        let n = self.misses.get().wrapping_add(1);
        self.misses.set(n);
        // Dead holders' blocks only: a sweep for blocks abandoned halfway
        // reads every free list, and done here it cost a sender spinning on
        // a full arena 5-20% of its 1 MiB loan stream (alternating runs);
        // `recover` and blocked calls sweep.
        n.is_multiple_of(BLOCK_CHECK_EVERY)
            && peer::reclaim_blocks(&self.shared, self.caller(), false).0 > 0
    }

    /// Waits until `ready()` (`Timeout` at `deadline`), looking after dead
    /// peers as it sleeps (see `handle::wait`).
    pub(crate) fn wait(
        &self,
        waiting: Waiting,
        deadline: Deadline,
        ready: impl FnMut() -> bool,
    ) -> Result<()> {
        wait_on(&self.shared, &self.reg, waiting, deadline, ready)
    }

    /// Receives into `buffer` as `recv_copy` does, waiting for a message
    /// until `deadline` (the blocking receives of every ring type).
    pub(crate) fn recv_copy_waiting(
        &self,
        buffer: &mut [u8],
        deadline: Deadline,
    ) -> Result<(usize, crate::priority::PriorityClass, u64)> {
        self.wait_for(Waiting::NotEmpty, deadline, || match self.recv_copy(buffer) {
            Err(RingError::Empty) => None,
            r => Some(r),
        })?
    }

    /// Waits until `attempt` stops reporting "not yet" (`None`): the
    /// building block of the blocking calls.
    pub(crate) fn wait_for<T>(
        &self,
        waiting: Waiting,
        deadline: Deadline,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let mut out = None;
        self.wait(waiting, deadline, || {
            out = attempt();
            out.is_some()
        })?;
        Ok(out.expect("ready means attempt returned Some"))
    }
}

// SAFETY: every part points into the segment, which the handle keeps alive
// through its Arcs; nothing in the handle is tied to the creating thread.
unsafe impl Send for Ring {}

impl Clone for Ring {
    /// Another handle on the same ring, with its own participant entry.
    fn clone(&self) -> Self {
        Self::from_segment(Arc::clone(self.shared.segment()))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // A forked child that never used its copy of the handle: the entry
        // and the spare are its parent's, to fold and give back.
        if !self.reg.is_current_process() {
            return;
        }
        if let Some(arena) = self.shared.arena() {
            self.alloc.give_back(arena, self.caller());
        }
        self.reg.unregister(self.shared.core());
    }
}

impl AsRef<Ring> for Ring {
    fn as_ref(&self) -> &Ring {
        self
    }
}

impl core::fmt::Debug for Ring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ring")
            .field("segment", &self.label())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}
