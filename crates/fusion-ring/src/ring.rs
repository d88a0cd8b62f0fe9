//! [`Ring`]: one handle on a segment, the layer every ring type is built on.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::lockfree::arena::{Arena, ArenaUsage, Descriptor};
use crate::atomic::Ordering;
use crate::error::CorruptError;
use crate::shm::layout::{
    pack_meta, unpack_meta, ParticipantEntry, SlotKind, SyncBlock, FLAG_NO_TIMESTAMPS,
    FLAG_WAKEUPS, SLOT_PAYLOAD,
};
use crate::handle::participant::{self, ROLE_RECEIVER, ROLE_SENDER};
use crate::lockfree::protocol::{
    pack_payload, unpack_payload_into, ClaimError, RingCore, SlotContent, PAYLOAD_WORDS,
};
use crate::shm::segment::Segment;
use crate::handle::stats::{aggregate, LaneStats, RecvTally, SendTally, StatsWriter};
use crate::sync;
use crate::inline::{BatchMessage, INLINE_MAX};
use crate::clock::Clock;
use crate::shm::config::Config;
use crate::zerocopy::{Loan, LoanError};
use crate::priority::PriorityClass;
use crate::error::{Result, RingError};

/// The low-level view of a ring: one handle on a shared segment.
///
/// A handle is `Send` but not `Sync`: give each thread its own with
/// [`Clone`] (each clone registers as a participant and keeps its own stats
/// lanes in the segment, which is what lets the hot path update statistics
/// without atomic read-modify-write).
///
/// ```
/// use fusion_ring::{send_inline, Ring};
/// let ring = Ring::new(256)?;
/// send_inline(&ring, b"hello")?;
/// let stats = ring.stats();
/// assert_eq!((stats.head, stats.tail), (1, 0));
/// assert_eq!((stats.inline_count, stats.zerocopy_count), (1, 0));
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub struct Ring {
    core: RingCore,
    /// This handle's participant entry, its index, and whether it is the
    /// shared entry 0 (the table was full). A handle carried into a forked
    /// child moves to an entry of its own on first use (`follow_fork`).
    entry: Cell<NonNull<ParticipantEntry>>,
    entry_index: Cell<usize>,
    shared_stats: Cell<bool>,
    /// The process the entry is registered for.
    owner_pid: Cell<u32>,
    /// Producers stamp messages (header flag, fixed at creation).
    timestamps: bool,
    /// Senders and receivers wake blocked peers (header flag).
    wakeups: bool,
    sync: NonNull<SyncBlock>,
    arena: Option<Arena>,
    /// Largest message (40 without an arena), from the validated geometry.
    max_message: usize,
    roles: Cell<u32>,
    /// `Full`/`Empty` results so far; every `STALL_CHECK_EVERY`th looks for
    /// a dead peer's claim blocking the ring (`peer`).
    misses: Cell<u32>,
    /// The block this handle allocated last: most often the next one it
    /// gets back (free lists are LIFO), so its header is fetched ahead.
    last_block: Cell<u64>,
    /// A block allocated ahead for this handle's next loan (`Arena`'s
    /// `SPARE`), offset + 1; 0: none.
    spare: Cell<u64>,
    segment: Arc<Segment>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Removes the named ring if no running process has a handle on it.
/// Returns whether it did. The file is removed only if it is still the one
/// examined (another process replacing it at the same time keeps its new
/// ring; one of the two creates then gets `AlreadyExists`).
fn remove_if_stale(name: &str) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/dev/shm{}", crate::shm::segment::shm_name(name)?);
    let inode = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(examined) = inode(&path) else {
        return Ok(false);
    };
    match crate::inspect::RingInfo::read(name) {
        Ok(info) if info.is_stale() && inode(&path) == Some(examined) => {
            match crate::remove_named(name) {
                Ok(()) | Err(RingError::NotFound { .. }) => Ok(true),
                Err(e) => Err(e),
            }
        }
        Ok(_) | Err(RingError::Corrupt(_) | RingError::VersionMismatch { .. }) => Ok(false),
        Err(RingError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// How many `Full`/`Empty` results pass between two looks for a dead
/// peer's claim (each look is two loads when there is none).
const STALL_CHECK_EVERY: u32 = 1 << 12;
/// How many exhausted allocations pass between two walks over the arena
/// for blocks of dead processes.
const BLOCK_CHECK_EVERY: u32 = 1 << 8;

// SAFETY: the raw pointers point into `segment`, which the handle keeps alive
// through its Arc; nothing in the handle is tied to the creating thread.
unsafe impl Send for Ring {}

/// Head/tail positions and message counts of a ring.
///
/// `head` is the next position producers will claim, `tail` the next one
/// consumers will claim: `head - tail` messages are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Next position a producer will claim (= messages ever claimed for send).
    pub head: u64,
    /// Next position a consumer will claim (= messages ever claimed for receive).
    pub tail: u64,
    /// Messages sent inline.
    pub inline_count: u64,
    /// Messages sent zero-copy.
    pub zerocopy_count: u64,
    /// Slots in the ring.
    pub capacity: u64,
}

/// One message taken by a batch receive.
///
/// ```
/// use fusion_ring::{InlineMessage, PriorityClass, UltraFastRing};
/// let ring = UltraFastRing::new(8)?;
/// ring.send_batch(&[b"a".as_slice(), b"bc"], PriorityClass::Low)?;
/// let mut out = [InlineMessage::default(); 4];
/// let n = ring.recv_batch(&mut out)?;
/// assert_eq!(n, 2);
/// assert_eq!(out[1].as_bytes(), b"bc");
/// assert_eq!(out[1].priority(), PriorityClass::Low);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineMessage {
    data: [u8; SLOT_PAYLOAD],
    len: u8,
    priority: PriorityClass,
    latency_cycles: u64,
}

impl Default for InlineMessage {
    fn default() -> Self {
        Self {
            data: [0; SLOT_PAYLOAD],
            len: 0,
            priority: PriorityClass::Normal,
            latency_cycles: 0,
        }
    }
}

impl InlineMessage {
    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Its priority class.
    pub fn priority(&self) -> PriorityClass {
        self.priority
    }
    /// Ticks from send to receive.
    pub fn latency_cycles(&self) -> u64 {
        self.latency_cycles
    }
}

/// What a slot holds, checked.
enum Decoded {
    Inline {
        len: usize,
        priority: PriorityClass,
    },
    Block {
        desc: Descriptor,
        priority: PriorityClass,
    },
    Tombstone,
    Bad(String),
}

/// A message to put into a slot (sizes already checked by the caller).
#[derive(Clone, Copy)]
pub(crate) enum Outgoing<'m> {
    Inline(&'m [u8]),
    Block(Descriptor),
}

impl<'m> Outgoing<'m> {
    /// The block if there is one, else the bytes inline.
    fn inline_or(block: Option<Descriptor>, data: &'m [u8]) -> Self {
        block.map_or(Outgoing::Inline(data), Outgoing::Block)
    }
}

/// The body of a received message.
pub(crate) enum Body {
    Inline([u64; PAYLOAD_WORDS]),
    /// A checked block: this receiver now holds the message's reference.
    Block(Descriptor),
}

/// A message taken out of the ring.
pub(crate) struct Received {
    pub(crate) body: Body,
    pub(crate) len: usize,
    pub(crate) priority: PriorityClass,
    pub(crate) latency: Option<u64>,
}

/// Ticks since `stamp` (`None` for an unstamped message), reading the
/// clock unless the caller already has `now`.
#[inline(always)]
fn latency_since(stamp: u64, now: Option<u64>) -> Option<u64> {
    (stamp != 0).then(|| now.unwrap_or_else(Clock::now).saturating_sub(stamp))
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
        Ok(Self::from_segment(Arc::new(Segment::create_anonymous(
            config,
        )?)))
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
        Ok(Self::from_segment(Arc::new(segment)))
    }

    /// Opens a named ring created by another handle or process.
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::open_named(name)?)))
    }

    /// Adopts a ring from a file descriptor (from [`Ring::as_fd`] in another
    /// process, received over a Unix socket or inherited).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::from_fd(fd)?)))
    }

    /// The segment's file descriptor, to hand to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// The segment's name (`/name`), `memfd`, or `fd N` for an adopted fd.
    pub fn label(&self) -> &str {
        self.segment.label()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.segment.geometry().capacity
    }

    /// Messages queued (a snapshot).
    pub fn len(&self) -> usize {
        self.core.len() as usize
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Head/tail positions and inline/zero-copy counts.
    pub fn stats(&self) -> RingStats {
        let ctrl = self.core.ctrl();
        let lanes = self.lane_stats();
        RingStats {
            // Relaxed: a statistics snapshot.
            head: ctrl.producer_head.value.load(Ordering::Relaxed),
            tail: ctrl.consumer_head.value.load(Ordering::Relaxed),
            inline_count: crate::handle::stats::total(&lanes, |l| l.inline_sent),
            zerocopy_count: crate::handle::stats::total(&lanes, |l| l.zerocopy_sent),
            capacity: self.core.capacity(),
        }
    }

    /// Counters of the five lanes, summed over every participant.
    pub fn lane_stats(&self) -> [LaneStats; 5] {
        aggregate(self.segment.participants())
    }

    fn from_segment(segment: Arc<Segment>) -> Self {
        let g = *segment.geometry();
        // SAFETY: the control block and `capacity` slots lie inside the
        // segment's mapping, which `segment` (kept in self) keeps alive.
        let core = unsafe { RingCore::new(segment.control(), segment.slots(), g.capacity as u64) };
        let mut registered = participant::register(segment.participants());
        if registered.1 {
            // The table is full: free the entries of dead processes first.
            participant::unregister(segment.participants(), registered.0);
            crate::handle::peer::reap_dead(segment.participants(), &core);
            registered = participant::register(segment.participants());
        }
        let (entry_index, shared_stats) = registered;
        let entry = NonNull::from(&segment.participants()[entry_index]);
        let arena = segment.arena_parts().map(|(ctrl, blocks)| {
            let waker = (segment.flags() & FLAG_WAKEUPS != 0)
                .then(|| NonNull::from(&segment.sync_block().not_full.value));
            // SAFETY: control block, block area and event count all lie in
            // the segment's mapping (validated geometry), which `segment`
            // keeps alive with the handle and every payload that clones it.
            unsafe { Arena::new(ctrl, blocks, g.blocks_len, g.max_message, waker) }
        });
        Ring {
            core,
            entry: Cell::new(entry),
            entry_index: Cell::new(entry_index),
            shared_stats: Cell::new(shared_stats),
            owner_pid: Cell::new(participant::current_pid()),
            timestamps: segment.flags() & FLAG_NO_TIMESTAMPS == 0,
            wakeups: segment.flags() & FLAG_WAKEUPS != 0,
            sync: NonNull::from(segment.sync_block()),
            arena,
            max_message: g.max_message,
            roles: Cell::new(0),
            misses: Cell::new(0),
            last_block: Cell::new(u64::MAX),
            spare: Cell::new(0),
            segment,
            _not_sync: PhantomData,
        }
    }

    /// The counters' writer; the caller has called `follow_fork`.
    #[inline(always)]
    fn stats_writer(&self) -> StatsWriter<'_> {
        StatsWriter {
            entry: self.entry_followed(),
            shared: self.shared_stats.get(),
        }
    }

    /// This handle's participant entry (first moving to an entry of this
    /// process's own if the handle was carried across a fork).
    #[inline(always)]
    pub(crate) fn entry(&self) -> &ParticipantEntry {
        self.follow_fork();
        self.entry_followed()
    }

    /// [`Ring::entry`] for a caller that has just called `follow_fork` (the
    /// hot paths: one check per call, not one per use).
    #[inline(always)]
    fn entry_followed(&self) -> &ParticipantEntry {
        // SAFETY: `entry` points into the mapping kept alive by `segment`.
        unsafe { self.entry.get().as_ref() }
    }

    /// The pid this handle acts for (block holders, see `Arena::take`).
    #[inline(always)]
    fn owner(&self) -> u32 {
        self.follow_fork();
        self.owner_pid.get()
    }

    /// This handle as a taker of arena blocks: its process and its entry's
    /// claim word (see `arena::Taker`).
    #[inline(always)]
    pub(crate) fn taker(&self) -> crate::lockfree::arena::Taker<'_> {
        let pid = self.owner();
        crate::lockfree::arena::Taker {
            pid,
            claim: &self.entry_followed().id.arena_claim,
        }
    }

    /// A handle carried into a forked child still names its parent's entry:
    /// claims recorded there would look alive while the parent lives (and
    /// dead when it dies), the parent's and the child's counters would be
    /// written by two processes, and blocks would name the parent as their
    /// holder. So on its first use in another process a handle registers
    /// there, as a clone would. The check is one load of the cached pid
    /// (`participant::current_pid`) and a compare.
    #[inline(always)]
    fn follow_fork(&self) {
        if self.owner_pid.get() != participant::current_pid() {
            self.register_after_fork();
        }
    }

    #[cold]
    #[inline(never)]
    fn register_after_fork(&self) {
        let entries = self.segment.participants();
        let mut registered = participant::register(entries);
        if registered.1 {
            participant::unregister(entries, registered.0);
            crate::handle::peer::reap_dead(entries, &self.core);
            registered = participant::register(entries);
        }
        let (index, shared) = registered;
        self.entry.set(NonNull::from(&entries[index]));
        self.entry_index.set(index);
        self.shared_stats.set(shared);
        self.owner_pid.set(participant::current_pid());
        // The roles seen were the parent's: this process notes its own.
        self.roles.set(0);
    }

    #[cold]
    fn note_role(&self, role: u32) {
        self.roles.set(self.roles.get() | role);
        self.entry().id.role.fetch_or(role, Ordering::Relaxed);
        // Relaxed: a hint for `peer::disconnected`, read after a sleep.
        self.core
            .ctrl()
            .roles_seen
            .value
            .fetch_or(role as u64, Ordering::Relaxed);
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
        n.is_multiple_of(BLOCK_CHECK_EVERY) && crate::handle::peer::reclaim_blocks(self, false).0 > 0
    }

    /// The slot protocol over this ring's segment.
    pub(crate) fn core(&self) -> &RingCore {
        &self.core
    }

    /// Counts a `Full`/`Empty`; now and then, looks for a claim of a dead
    /// peer that keeps the ring stuck (cheap when there is none).
    #[cold]
    #[inline(never)]
    fn missed(&self) {
        let n = self.misses.get().wrapping_add(1);
        self.misses.set(n);
        if n.is_multiple_of(STALL_CHECK_EVERY) {
            crate::handle::peer::recover_slots(self);
        }
    }

    pub(crate) fn corrupt(&self, what: String) -> RingError {
        RingError::Corrupt(CorruptError::new(self.segment.label(), what))
    }

    fn claim_error(&self, e: ClaimError) -> RingError {
        match e {
            ClaimError::Full => {
                self.missed();
                RingError::Full
            }
            ClaimError::Empty => {
                self.missed();
                RingError::Empty
            }
            ClaimError::TooSmall { .. } => self.recv_claim_error(e, None),
            ClaimError::Corrupt { .. } if self.segment.truncated() => self.corrupt(
                "another process truncated the segment's file; the ring is lost (its mapping \
                 was replaced by a poisoned copy instead of faulting)"
                    .into(),
            ),
            ClaimError::Corrupt { pos, seq } => self.corrupt(format!(
                "slot sequence {seq} contradicts head position {pos}"
            )),
        }
    }

    /// A receive claim's error; `limit` is the caller's buffer size. A
    /// waiting message longer than any this ring carries is a scribbled
    /// length: reported as corruption, not as a buffer to grow.
    #[cold]
    fn recv_claim_error(&self, e: ClaimError, limit: Option<usize>) -> RingError {
        match e {
            ClaimError::TooSmall { needed } if needed > self.max_message => self.corrupt(format!(
                "a waiting message is {needed} bytes long, more than the largest the ring carries ({})",
                self.max_message
            )),
            ClaimError::TooSmall { needed } => RingError::BufferTooSmall {
                needed,
                got: limit.unwrap_or(0),
            },
            e => self.claim_error(e),
        }
    }

    /// The ring's arena, if it has one.
    pub(crate) fn arena(&self) -> Option<&Arena> {
        self.arena.as_ref()
    }

    /// Allocates a block as `Arena::alloc`: this handle's spare if it is
    /// still there and of the right size class, else from the arena, first
    /// fetching the header of the block this handle allocated last (see
    /// `last_block`).
    pub(crate) fn alloc_block(
        &self,
        arena: &Arena,
        len: usize,
    ) -> core::result::Result<Descriptor, crate::lockfree::arena::AllocError> {
        if let Some(mut d) = self.take_spare(arena) {
            if d.class as usize == crate::lockfree::arena::class_for(len) && len <= self.max_message {
                arena.set_len(&mut d, len);
                return Ok(d);
            }
            arena.release(d.offset, self.owner()); // another size: back to its free list
        }
        arena.prefetch_header(self.last_block.get());
        let d = arena.alloc(len, self.taker())?;
        self.last_block.set(d.offset);
        Ok(d)
    }

    /// Claims this handle's spare, if another handle has not taken it.
    fn take_spare(&self, arena: &Arena) -> Option<Descriptor> {
        match self.spare.replace(0) {
            0 => None,
            s => arena.claim_spare(s - 1, self.taker()),
        }
    }

    /// After a loan of `len` bytes was sent, allocates the next one ahead
    /// (a spare), while the receiver handles this one: the next loan then
    /// touches no line the receiver wrote. In a ping-pong, the free-list
    /// head that the receiver's free last wrote no longer crosses on the
    /// sender's critical path (1 MiB loan one-way 454-484 -> 344-386 ns in
    /// a prototype, 3 alternating runs). Nothing if the arena has no block
    /// to spare.
    fn refill_spare(&self, len: usize) {
        if self.spare.get() != 0 {
            return;
        }
        if let Some(arena) = &self.arena {
            if let Ok(d) = arena.alloc_spare(len, self.taker()) {
                self.last_block.set(d.offset);
                self.spare.set(d.offset + 1);
            }
        }
    }

    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    pub(crate) fn has_wakeups(&self) -> bool {
        self.wakeups
    }

    /// The event counts of the blocking layer.
    pub(crate) fn sync_block(&self) -> &SyncBlock {
        // SAFETY: points into the mapping kept alive by `segment`.
        unsafe { self.sync.as_ref() }
    }

    /// Whether the next slot to receive holds a published message.
    pub(crate) fn readable(&self) -> bool {
        self.core.readable()
    }

    /// Whether the next slot to send into is free.
    pub(crate) fn writable(&self) -> bool {
        self.core.writable()
    }

    /// Largest message this ring carries (40 without an arena).
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Classifies a slot's content, checking zero-copy descriptors against
    /// the arena.
    #[inline(always)]
    fn decode(&self, c: &SlotContent) -> Decoded {
        let (len, kind, prio) = unpack_meta(c.meta);
        if kind == SlotKind::Inline as u8 && len as usize <= INLINE_MAX {
            if let Some(priority) = PriorityClass::from_u8(prio) {
                return Decoded::Inline {
                    len: len as usize,
                    priority,
                };
            }
        }
        self.decode_unusual(c)
    }

    #[cold]
    #[inline(never)]
    fn decode_unusual(&self, c: &SlotContent) -> Decoded {
        let (len, kind, prio) = unpack_meta(c.meta);
        let Some(priority) = PriorityClass::from_u8(prio) else {
            return Decoded::Bad(format!("slot priority {prio} is not one of the 5 classes"));
        };
        match SlotKind::from_u8(kind) {
            Some(SlotKind::Inline) => {
                Decoded::Bad(format!("inline slot length {len} exceeds {INLINE_MAX}"))
            }
            Some(SlotKind::Tombstone) => Decoded::Tombstone,
            Some(SlotKind::ZeroCopy) => {
                let Some(arena) = &self.arena else {
                    return Decoded::Bad("zero-copy slot on a ring without an arena".into());
                };
                let desc = Descriptor::from_words(&c.payload);
                if desc.len != len {
                    return Decoded::Bad(format!(
                        "slot length {len} differs from its descriptor's {}",
                        desc.len
                    ));
                }
                // The receiver writes the header (`take`, then the release)
                // and pushes the block on its class's free list when done:
                // fetch both lines writable now, overlapped with the checks.
                arena.prefetch_header(desc.offset);
                arena.prefetch_free_list(desc.class as usize);
                arena.prefetch_payload(desc.offset);
                match arena.check(&desc) {
                    Ok(()) => {
                        // Before the slot is released (the caller's next
                        // step): see `Arena::take`.
                        arena.take(desc.offset, self.owner());
                        Decoded::Block { desc, priority }
                    }
                    Err(what) => Decoded::Bad(what),
                }
            }
            None => Decoded::Bad(format!("slot kind {kind} is unknown")),
        }
    }

    /// Sends `n` messages with one claim; `msg(k)` gives the k-th (its size
    /// already checked). Returns how many were sent: a prefix, fewer than
    /// `n` if the ring filled up; `Full` if none fitted. The caller still
    /// owns the blocks of unsent messages.
    #[inline(always)]
    pub(crate) fn send_with<'m>(
        &self,
        n: usize,
        msg: impl Fn(usize) -> (Outgoing<'m>, PriorityClass),
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        self.follow_fork();
        if self.roles.get() & ROLE_SENDER == 0 {
            self.note_role(ROLE_SENDER);
        }
        // Read the clock before the claim: the TSC read then overlaps the
        // locked CAS instead of waiting behind it.
        let stamp = if self.timestamps { Clock::now() } else { 0 };
        let claim = self
            .core
            .claim_send_as(n as u64, Some(&self.entry_followed().id.send_claim))
            .map_err(|e| self.claim_error(e))?;
        let stats = self.stats_writer();
        let mut tally = SendTally::default();
        // A single message on a ring with wake-ups publishes with a SeqCst
        // swap, which doubles as the handshake's fence (see `sync`).
        let seqcst = self.wakeups && claim.count == 1;
        // A run is published last slot first: a consumer waiting at its
        // first slot sees the whole run at once and claims it whole, rather
        // than chasing the producer slot by slot and pulling each line away
        // from it mid-write (producer-bound batch-32 streaming: 182-214 ->
        // 105-130 ticks/msg; the consumer took 27 messages per call, now 32).
        for k in (0..claim.count).rev() {
            let (out, priority) = msg(k as usize);
            match out {
                Outgoing::Inline(data) => {
                    let meta = pack_meta(data.len() as u32, SlotKind::Inline, priority as u8);
                    self.core.publish(
                        claim.pos.wrapping_add(k),
                        stamp,
                        meta,
                        &pack_payload(data),
                        seqcst,
                    );
                    stats.tally_send(&mut tally, priority.lane(), data.len() as u64, false);
                }
                Outgoing::Block(desc) => {
                    let meta = pack_meta(desc.len, SlotKind::ZeroCopy, priority as u8);
                    self.core.publish(
                        claim.pos.wrapping_add(k),
                        stamp,
                        meta,
                        &desc.to_words(),
                        seqcst,
                    );
                    stats.tally_send(&mut tally, priority.lane(), desc.len as u64, true);
                }
            }
        }
        stats.flush_send(&mut tally);
        if seqcst {
            sync::notify_after_seqcst(&self.sync_block().not_empty.value);
        } else if self.wakeups {
            sync::notify(&self.sync_block().not_empty.value);
        }
        Ok(claim.count as usize)
    }

    /// Sends `n` inline messages with one claim; all are checked first.
    #[inline(always)]
    pub(crate) fn send_inline_with<'m>(
        &self,
        n: usize,
        msg: impl Fn(usize) -> (&'m [u8], PriorityClass),
    ) -> Result<usize> {
        for i in 0..n {
            let len = msg(i).0.len();
            if len > INLINE_MAX {
                return Err(RingError::TooLarge {
                    len,
                    max: INLINE_MAX,
                });
            }
        }
        self.send_with(n, |k| {
            let (data, priority) = msg(k);
            (Outgoing::Inline(data), priority)
        })
    }

    /// Claims up to `max` messages; `limit`: the first must be at most that
    /// long (else `BufferTooSmall`, nothing taken) and the batch stops
    /// before any longer one. Calls `each` for every message taken, in
    /// order; every claimed slot is released, whatever it held.
    #[inline(always)]
    pub(crate) fn recv_with(
        &self,
        max: usize,
        limit: Option<usize>,
        mut each: impl FnMut(Received),
    ) -> Result<usize> {
        self.follow_fork();
        if self.roles.get() & ROLE_RECEIVER == 0 {
            self.note_role(ROLE_RECEIVER);
        }
        loop {
            let claim = self
                .core
                .claim_recv_as(
                    max as u64,
                    limit,
                    Some(&self.entry_followed().id.recv_claim),
                )
                .map_err(|e| self.recv_claim_error(e, limit))?;
            let now = if claim.count > 1 && self.timestamps {
                Some(Clock::now())
            } else {
                None
            };
            let stats = self.stats_writer();
            let mut tally = RecvTally::default();
            let (mut taken, mut bad) = (0, None);
            // As in `send_with`: a single release doubles as the fence.
            let seqcst = self.wakeups && claim.count == 1;
            for k in 0..claim.count {
                let pos = claim.pos.wrapping_add(k);
                let content = self.core.read(pos);
                let decoded = self.decode(&content);
                let (body, len, priority) = match decoded {
                    Decoded::Inline { len, priority } => {
                        (Body::Inline(content.payload), len, priority)
                    }
                    Decoded::Block { desc, priority } => {
                        (Body::Block(desc), desc.len as usize, priority)
                    }
                    Decoded::Tombstone => continue,
                    Decoded::Bad(what) => {
                        bad = Some(format!("at position {pos}: {what}"));
                        continue;
                    }
                };
                let latency = latency_since(content.stamp, now);
                stats.tally_recv(&mut tally, priority.lane(), len as u64, latency);
                each(Received {
                    body,
                    len,
                    priority,
                    latency,
                });
                taken += 1;
            }
            // The run is released after it is read, last slot first: a
            // producer waiting at its first slot (the ring was full) then
            // finds the whole run free and claims it at once, instead of
            // taking slot after slot as they are released and pulling each
            // line back from us in between (every block was taken, as
            // `Arena::take` requires, while decoding).
            for k in (0..claim.count).rev() {
                self.core.release(claim.pos.wrapping_add(k), seqcst);
            }
            stats.flush_recv(&mut tally);
            if seqcst {
                sync::notify_after_seqcst(&self.sync_block().not_full.value);
            } else if self.wakeups {
                sync::notify(&self.sync_block().not_full.value);
            }
            match (taken, bad) {
                (0, Some(what)) => return Err(self.corrupt(what)),
                (0, None) => continue, // only tombstones: look again
                (n, _) => return Ok(n),
            }
        }
    }

    /// Takes one message: `recv_with` for a single slot, without the batch
    /// bookkeeping (this is the hot path of `recv_fast` and `recv`).
    #[inline(always)]
    pub(crate) fn recv_one(&self, limit: Option<usize>) -> Result<Received> {
        self.follow_fork();
        if self.roles.get() & ROLE_RECEIVER == 0 {
            self.note_role(ROLE_RECEIVER);
        }
        loop {
            let claim = self
                .core
                .claim_recv_as(1, limit, Some(&self.entry_followed().id.recv_claim))
                .map_err(|e| self.recv_claim_error(e, limit))?;
            let content = self.core.read(claim.pos);
            let decoded = self.decode(&content);
            // A single release doubles as the handshake's fence (`sync`).
            self.core.release(claim.pos, self.wakeups);
            if self.wakeups {
                sync::notify_after_seqcst(&self.sync_block().not_full.value);
            }
            let (body, len, priority) = match decoded {
                Decoded::Inline { len, priority } => (Body::Inline(content.payload), len, priority),
                Decoded::Block { desc, priority } => {
                    (Body::Block(desc), desc.len as usize, priority)
                }
                Decoded::Tombstone => continue,
                Decoded::Bad(what) => {
                    return Err(self.corrupt(format!("at position {}: {what}", claim.pos)))
                }
            };
            let latency = latency_since(content.stamp, None);
            self.stats_writer()
                .record_recv(priority.lane(), len as u64, latency);
            return Ok(Received {
                body,
                len,
                priority,
                latency,
            });
        }
    }

    /// Receives one message by copying it into `buf` (inline bytes, or the
    /// block's payload, whose reference is then dropped).
    #[inline(always)]
    pub(crate) fn recv_copy(&self, buf: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        // Without an arena no message is longer than 40 bytes: a buffer that
        // big needs no length check before the claim.
        let limit = (buf.len() < self.max_message).then_some(buf.len());
        let r = self.recv_one(limit)?;
        let result = (r.len, r.priority, r.latency.unwrap_or(0));
        match r.body {
            // The length was checked against `buf` before the claim, but a
            // scribbling peer may have changed it since.
            _ if r.len > buf.len() => {
                if let Body::Block(d) = r.body {
                    self.release_block(d.offset);
                }
                Err(self.corrupt(format!("length changed to {} while being received", r.len)))
            }
            Body::Inline(words) => {
                unpack_payload_into(&words, &mut buf[..r.len]);
                Ok(result)
            }
            Body::Block(d) => {
                let arena = self.arena.as_ref().expect("checked block implies an arena");
                // SAFETY: the block was checked to lie inside the arena with
                // room for `len` bytes, and we hold a reference to it, so no
                // well-behaved process writes it until we release it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        arena.payload_ptr(d.offset).as_ptr(),
                        buf.as_mut_ptr(),
                        r.len,
                    )
                };
                self.release_block(d.offset);
                Ok(result)
            }
        }
    }

    /// Drops one reference to a block; wakes blocked senders if it was freed.
    pub(crate) fn release_block(&self, offset: u64) {
        if let Some(arena) = &self.arena {
            if arena.release(offset, self.owner()) {
                sync::notify_block_freed(arena);
            }
        }
    }

    /// Sends a filled loan (no copy); on failure the loan comes back.
    pub(crate) fn send_loan<'r>(
        &'r self,
        loan: Loan<'r>,
        priority: PriorityClass,
    ) -> std::result::Result<(), LoanError<'r>> {
        // A loan from another segment names a block of another arena, and
        // a loan a forked child inherited is its parent's to give (the
        // parent still holds the reference): copy either into a loan of our
        // own (the original is dropped once the copy is sent, which frees
        // it, or does nothing in the child).
        if !Arc::ptr_eq(loan.ring().segment(), &self.segment) || !loan.is_owned_here() {
            let mut mine = match Loan::new(self, loan.len()) {
                Ok(mine) => mine,
                Err(error) => return Err(LoanError { error, loan }),
            };
            mine.copy_from_slice(&loan);
            return match self.send_loan(mine, priority) {
                Ok(()) => Ok(()),
                Err(e) => Err(LoanError {
                    error: e.error,
                    loan,
                }),
            };
        }
        let desc = loan.descriptor();
        match self.send_with(1, |_| (Outgoing::Block(desc), priority)) {
            Ok(_) => {
                // The queued message now holds the block's reference.
                let _ = loan.into_outgoing();
                // Sized by its class: a truncated loan stays in its class.
                let class_len = crate::lockfree::arena::class_payload(desc.class as usize);
                self.refill_spare(class_len.min(self.max_message));
                Ok(())
            }
            Err(error) => Err(LoanError { error, loan }),
        }
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
    pub fn recover(&self) -> crate::handle::peer::Recovery {
        crate::handle::peer::recover(self)
    }

    /// Arena blocks and bytes in use (zero without an arena).
    pub fn arena_usage(&self) -> ArenaUsage {
        self.arena.as_ref().map(Arena::usage).unwrap_or_default()
    }

    /// Sends a batch of mixed sizes with one claim per chunk of 64: blocks
    /// for the large messages are taken and filled first. Returns how many
    /// were sent (a prefix if the ring or arena filled up).
    pub(crate) fn send_batch_mixed(&self, messages: &[BatchMessage<'_>]) -> Result<usize> {
        const CHUNK: usize = 64;
        let max = self.max_message();
        if let Some(m) = messages.iter().find(|m| m.data().len() > max) {
            return Err(RingError::TooLarge {
                len: m.data().len(),
                max,
            });
        }
        let mut sent = 0;
        for chunk in messages.chunks(CHUNK) {
            let mut blocks: [Option<Descriptor>; CHUNK] = [None; CHUNK];
            let give_back = |blocks: &[Option<Descriptor>]| {
                for d in blocks.iter().flatten() {
                    self.release_block(d.offset);
                }
            };
            for (i, m) in chunk.iter().enumerate() {
                if m.data().len() <= INLINE_MAX {
                    continue;
                }
                match Loan::new(self, m.data().len()) {
                    Ok(mut loan) => {
                        loan.copy_from_slice(m.data());
                        blocks[i] = Some(loan.descriptor());
                        let _ = loan.into_outgoing();
                    }
                    Err(e) => {
                        // Send the prefix before the message that found no
                        // block; report the error only if nothing went.
                        let n = self
                            .send_with(i, |k| {
                                (
                                    Outgoing::inline_or(blocks[k], chunk[k].data()),
                                    chunk[k].priority(),
                                )
                            })
                            .unwrap_or(0);
                        give_back(&blocks[n..i]);
                        sent += n;
                        return if sent == 0 { Err(e) } else { Ok(sent) };
                    }
                }
            }
            let n = match self.send_with(chunk.len(), |k| {
                let out = match blocks[k] {
                    Some(d) => Outgoing::Block(d),
                    None => Outgoing::Inline(chunk[k].data()),
                };
                (out, chunk[k].priority())
            }) {
                Ok(n) => n,
                Err(e) => {
                    give_back(&blocks[..chunk.len()]);
                    return if sent == 0 { Err(e) } else { Ok(sent) };
                }
            };
            give_back(&blocks[n..chunk.len()]);
            sent += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(sent)
    }

    /// Receives up to `out.len()` inline messages with one claim; stops
    /// before a message longer than 40 bytes (which stays queued).
    ///
    /// Each message is written straight into its `out` entry: copying it
    /// through a local first, together with per-message stats writes,
    /// made single-thread `send_batch` + `recv_batch` of 32 cost 50-73
    /// ticks per message; 37-40 now (6 alternating runs; `first_measurement`).
    pub(crate) fn recv_inline_batch(&self, out: &mut [InlineMessage]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        self.recv_with(out.len(), Some(INLINE_MAX), |r| {
            let m = &mut out[n];
            match r.body {
                Body::Inline(words) => unpack_payload_into(&words, &mut m.data),
                Body::Block(d) => {
                    let arena = self.arena.as_ref().expect("checked block implies an arena");
                    let len = r.len.min(INLINE_MAX);
                    // SAFETY: as in `recv_copy`; at most `len` <= block bytes.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            arena.payload_ptr(d.offset).as_ptr(),
                            m.data.as_mut_ptr(),
                            len,
                        )
                    };
                    // Zero padding, as an inline slot's (no stale bytes of
                    // the entry's previous message past `len`).
                    m.data[len..].fill(0);
                    self.release_block(d.offset);
                }
            }
            m.len = r.len.min(INLINE_MAX) as u8;
            m.priority = r.priority;
            m.latency_cycles = r.latency.unwrap_or(0);
            n += 1;
        })
    }
}

impl Clone for Ring {
    /// Another handle on the same ring, with its own participant entry.
    fn clone(&self) -> Self {
        Self::from_segment(Arc::clone(&self.segment))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // A forked child that never used its copy of the handle: the entry
        // and the spare are its parent's, to fold and give back.
        if participant::current_pid() != self.owner_pid.get() {
            return;
        }
        // The spare goes back to its free list (unless another handle, or
        // the other side of a fork, took it first).
        if let Some(arena) = &self.arena {
            if let Some(d) = self.take_spare(arena) {
                arena.release(d.offset, self.owner());
            }
        }
        participant::unregister(self.segment.participants(), self.entry_index.get());
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
            .field("segment", &self.segment.label())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use crate::shm::config::Config;
    use crate::fusion::FusionRing;
    use crate::ring::InlineMessage;
    use crate::priority::PriorityClass;
    use crate::ultra::UltraFastRing;

    /// A short zero-copy message taken by `recv_batch` into an entry that
    /// held a longer one: the bytes past its length are zeros, as for an
    /// inline slot, so equal messages compare equal.
    #[test]
    fn a_batch_entry_reused_for_a_short_block_has_no_stale_bytes() {
        let ring = FusionRing::with_config(&Config::new(8).arena_bytes(1 << 16).max_message(4096))
            .unwrap();
        let batch = UltraFastRing::from(ring.as_ring().clone());
        let mut out = [InlineMessage::default(); 1];
        ring.send(&[0xAA; 40]).unwrap();
        assert_eq!(batch.recv_batch(&mut out).unwrap(), 1);
        assert_eq!(out[0].as_bytes(), &[0xAA; 40]);
        let mut loan = ring.loan(3).unwrap();
        loan.copy_from_slice(b"abc");
        ring.send_loan(loan, PriorityClass::Normal).unwrap();
        assert_eq!(batch.recv_batch(&mut out).unwrap(), 1);
        assert_eq!(out[0].as_bytes(), b"abc");
        ring.send(b"abc").unwrap();
        let mut inline = [InlineMessage::default(); 1];
        assert_eq!(batch.recv_batch(&mut inline).unwrap(), 1);
        assert_eq!(out[0].data, inline[0].data, "padding differs");
        assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
    }

    fn zero_copy_ring(blocks_of_1k: usize) -> FusionRing {
        let bytes = blocks_of_1k * (1024 + 64);
        FusionRing::with_config(&Config::new(8).arena_bytes(bytes).max_message(1024)).unwrap()
    }

    /// After a sent loan the handle keeps the next block ready: the next
    /// loan of that size gets it, and it counts as free meanwhile.
    #[test]
    fn a_sent_loan_leaves_a_spare_that_the_next_loan_takes() {
        let ring = zero_copy_ring(4);
        let r = ring.as_ring();
        let first = ring.loan(1000).unwrap();
        let first_at = first.descriptor().offset;
        ring.send_loan(first, PriorityClass::Normal).unwrap();
        let spare = r.spare.get();
        assert_ne!(spare, 0, "no spare after a sent loan");
        assert_ne!(spare - 1, first_at);
        assert_eq!(r.arena_usage().blocks_in_use, 1, "the spare counts as free");
        let second = ring.loan(900).unwrap();
        assert_eq!(second.descriptor().offset, spare - 1, "the spare is used");
        assert_eq!(second.len(), 900);
        drop(second);
        drop(ring.recv_zerocopy().unwrap());
        assert_eq!(r.arena_usage().blocks_in_use, 0);
    }

    /// A spare is claimed by CAS: two handles naming the same one (as a
    /// handle and its copy in a forked child do) never both get it, and a
    /// handle that finds the arena otherwise exhausted takes another's.
    #[test]
    fn spares_are_claimed_once_and_taken_when_the_arena_runs_out() {
        let ring = zero_copy_ring(2);
        let other = ring.clone();
        let (a, b) = (ring.as_ring(), other.as_ring());
        let sent = ring.loan(1000).unwrap();
        ring.send_loan(sent, PriorityClass::Normal).unwrap();
        let spare = a.spare.get();
        assert_ne!(spare, 0);
        // The other handle: the only block not queued is the spare.
        let mut stolen = other.loan(1000).expect("takes the spare");
        stolen.copy_from_slice(&[5; 1000]);
        assert_eq!(stolen.descriptor().offset, spare - 1);
        // Its maker no longer finds it, and the arena is exhausted.
        assert!(matches!(
            ring.loan(1000),
            Err(crate::error::RingError::ArenaExhausted { .. })
        ));
        // A copy of a spare claims nothing once it is claimed.
        b.spare.set(spare);
        assert!(b.take_spare(b.arena().unwrap()).is_none());
        drop(stolen);
        drop(ring.recv_zerocopy().unwrap());
        drop((ring, other));
    }

    /// A handle's spare goes back to its free list when the handle goes.
    #[test]
    fn a_dropped_handle_gives_its_spare_back() {
        let ring = zero_copy_ring(4);
        let sender = ring.clone();
        let loan = sender.loan(1000).unwrap();
        sender.send_loan(loan, PriorityClass::Normal).unwrap();
        assert_ne!(sender.as_ring().spare.get(), 0);
        drop(sender);
        drop(ring.recv_zerocopy().unwrap());
        let usage = ring.as_ring().arena_usage();
        assert_eq!(usage.blocks_in_use, 0);
        // Both blocks are on the free list, none a spare: two loans fit
        // without carving more.
        let carved = usage.bytes_carved;
        let (x, y) = (ring.loan(1000).unwrap(), ring.loan(1000).unwrap());
        assert_eq!(ring.as_ring().arena_usage().bytes_carved, carved);
        drop((x, y));
    }
}
