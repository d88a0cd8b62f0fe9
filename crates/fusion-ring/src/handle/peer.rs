//! Peer death (DESIGN section 8): telling live participants from dead ones,
//! reporting `Disconnected` to blocked callers, and reclaiming what a
//! process killed at any instruction left behind.
//!
//! # What a dead process can leave
//! - **A slot it claimed to send into and never published.** Consumers
//!   would wait at that position forever. Each producer writes the
//!   positions it is about to claim into its participant entry before the
//!   claim CAS (`RingCore::claim_send_as`), so a survivor that finds a
//!   claimed, unpublished position no live producer's record covers knows
//!   its claimer is dead, and publishes an empty tombstone there, which
//!   consumers skip.
//! - **A slot it claimed to receive and never released.** Producers would
//!   find the ring full forever at that position. The same records, kept
//!   by consumers, let a survivor release it; a zero-copy block the dead
//!   consumer had not yet taken over is released with it.
//! - **Arena blocks it held** (loans, spares, received payloads): each
//!   block records its holder's pid (`Arena::take`); blocks of dead holders
//!   that no queued message names are freed (`Arena::reclaim`, pass 1).
//! - **Arena blocks it was taking or handing back**: killed after popping a
//!   block off a free list, carving one or claiming a spare, and before
//!   recording itself as holder; or after marking a block free and before
//!   linking it in. The taker names the block in its entry's claim word
//!   first (`arena::Taker`), the freer records itself in the mark: a sweep
//!   links back the blocks that no live process is taking or freeing
//!   (`Arena::reclaim`, pass 2). A carver killed before writing its block's
//!   header cannot make later blocks unreachable: the bump word names the
//!   class of the last block carved.
//! - On a single-producer single-consumer ring (`lockfree::single`) there
//!   are no claims to record: neither head moves before its side is done.
//!   A dead consumer's run stays queued for the next one; the producer
//!   that takes over from a dead one fills the holes it left
//!   (`RingCore::adopt_single_producer`, called by `handle::roles`).
//! - **Its participant entry**: freed (counters folded into the shared
//!   entry) once its claims are settled, so the table does not fill up.
//!
//! None of this is on the hot path: a handle looks for a stuck claim every
//! few thousand `Full`/`Empty` results (two loads when there is none) and
//! for dead holders' blocks every 256 exhausted allocations, blocked calls
//! look at every sleep slice (at the arena every 100 ms, blocks abandoned
//! halfway included), and [`Ring::recover`] does all of it on demand.
//!
//! # Limits
//! - Liveness is a mark the kernel drops when a process dies
//!   (`shm::liveness`), so participants in other pid namespaces are told
//!   apart and a reused pid is no one's. Marks are locks on the segment's
//!   file: a file on a network file system (locks that a remote machine's
//!   death may not drop) is refused (`RingError::UnsupportedFileSystem`);
//!   rings live in `/dev/shm` or a memfd. A forked child that keeps a copy of its parent's handle
//!   unused also keeps the parent's marks (their descriptions) while it
//!   runs: if the parent dies first, its claims and blocks are reclaimed
//!   once the child exits or uses the handle.
//! - Handles beyond the 63 entries of the table share one record, so while
//!   any is registered nothing is reclaimed (it could be theirs).
//! - A handle carried into a forked child registers the child on its first
//!   use there (`Registration::follow_fork`), noticed through the pid that a
//!   `pthread_atfork` handler refreshes in the child. A child made by a raw
//!   `clone(2)` that skips the C library's fork handlers is not noticed: its
//!   handle goes on using the parent's entry (clone the handle there).
//! - A survivor killed in the middle of a reclaim is taken over from (its
//!   record covers the slot, as a claimer's does), but a block reference
//!   it may not have dropped yet is leaked rather than dropped twice.
//! - A block received while another process also held it (a forwarded
//!   payload) is recorded with no holder and is never reclaimed.
//! - A block abandoned halfway is left alone while a live process's claim
//!   names it or (marked free) while its marker lives; also while the free
//!   list it belongs to keeps moving, and while another process sweeps.
//!   `Recovery::blocks_deferred` counts those; a later call takes them
//!   (blocked calls retry every second). A dead process's claim keeps its
//!   entry from being reaped until a sweep has settled the block it names.
//! - Arena blocks name their holder by pid, whose process mark is shared
//!   by the processes of that pid number in every pid namespace mapping
//!   the segment: a dead holder's blocks are kept while another process of
//!   the same pid number maps the segment (a leak until it exits, never a
//!   live holder's block freed).

use std::collections::{HashMap, HashSet};

use crate::atomic::Ordering;
use crate::shm::layout::{
    pack_meta, unpack_meta, ClaimRecord, ParticipantEntry, ParticipantId, SlotKind,
    MAX_PARTICIPANTS,
};
use crate::handle::participant::{self, IN_USE};
use crate::lockfree::protocol::{holds_or_marks, RingCore, SlotContent, POSITION, RECLAIMING};
use crate::priority::PriorityClass;
use crate::handle::participant::Caller;
use crate::handle::shared::{notify_block_freed, SharedRing};
use crate::lockfree::event;
use crate::shm::liveness::EntryLock;
use crate::shm::segment::Segment;

/// What [`crate::Ring::recover`] found and put right.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Slots a dead producer claimed and never published, now skipped.
    pub unpublished_slots: u64,
    /// Slots a dead consumer claimed and never released, now free again.
    pub unreleased_slots: u64,
    /// Arena blocks dead processes held, or were killed in the middle of
    /// taking or handing back, now free.
    pub blocks: u64,
    /// Arena blocks that looked held by a dead process or abandoned
    /// halfway, left for a later call: a live process was taking them at
    /// that moment, or the free list they belong to kept moving while it
    /// was read. (While another process sweeps the arena, this call does
    /// not look for abandoned blocks at all.)
    pub blocks_deferred: u64,
    /// Participant entries of dead processes, now free.
    pub participants: u64,
}

/// Which claim record of an entry to look at.
#[derive(Clone, Copy)]
enum Claims {
    Send,
    Recv,
}

impl Claims {
    fn of(self, id: &ParticipantId) -> &ClaimRecord {
        match self {
            Claims::Send => &id.send_claim,
            Claims::Recv => &id.recv_claim,
        }
    }
}

/// Which entries belong to live handles, each looked up once.
struct Liveness<'a> {
    segment: &'a Segment,
    entries: &'a [ParticipantEntry],
    known: [Option<bool>; MAX_PARTICIPANTS],
}

impl<'a> Liveness<'a> {
    fn new(segment: &'a Segment) -> Self {
        Liveness {
            segment,
            entries: segment.participants(),
            known: [None; MAX_PARTICIPANTS],
        }
    }

    /// Indices of the entries (the shared entry 0 excluded).
    fn indices(&self) -> core::ops::Range<usize> {
        1..self.entries.len().min(MAX_PARTICIPANTS)
    }

    fn registered(&self, i: usize) -> bool {
        self.entries[i].id.state.load(Ordering::Acquire) == IN_USE
    }

    fn alive(&mut self, i: usize) -> bool {
        *self.known[i].get_or_insert_with(|| self.segment.entry_alive(i, &self.entries[i].id))
    }

    /// Whether entry `i` is registered and its claim covers `pos`.
    fn claims(&self, i: usize, pos: u64, claims: Claims) -> bool {
        self.registered(i) && claims.of(&self.entries[i].id).covers(pos)
    }

    /// Whether a live participant's claim covers `pos`.
    fn live_claim(&mut self, pos: u64, claims: Claims) -> bool {
        self.indices()
            .any(|i| self.claims(i, pos, claims) && self.alive(i))
    }

    /// The pid of a dead participant whose claim covers `pos`.
    fn dead_claimer(&mut self, pos: u64, claims: Claims) -> Option<u32> {
        self.indices()
            .find(|&i| self.claims(i, pos, claims) && !self.alive(i))
            .map(|i| self.entries[i].id.pid.load(Ordering::Relaxed))
    }
}

/// Whether the claims recorded in an entry are all settled: every
/// position it claimed to send into is published, every one it claimed to
/// receive is released (so nothing needs its record any more).
fn settled(core: &RingCore, id: &ParticipantId) -> bool {
    let range = |r: &ClaimRecord| {
        let start = r.start.load(Ordering::Relaxed);
        let end = r.end.load(Ordering::Relaxed);
        // A scribbled record may name any range: look at one lap at most.
        start..end.min(start.saturating_add(core.capacity()))
    };
    let seq = |pos: u64| core.slot(pos).seq.load(Ordering::Relaxed) & POSITION;
    range(&id.send_claim).all(|pos| seq(pos) != pos & POSITION)
        && range(&id.recv_claim).all(|pos| seq(pos) != pos.wrapping_add(1) & POSITION)
        // A block it was taking: settled once a sweep cleared the claim
        // (see `arena::Peers::clear_dead_claims`).
        && id.arena_claim.load(Ordering::Relaxed) == 0
}

/// Publishes tombstones over the positions dead producers claimed and
/// left unpublished, and releases those dead consumers claimed and left
/// unreleased. Returns `(unpublished, unreleased)` slots put right.
pub(crate) fn recover_slots(ring: &SharedRing, me: Caller<'_>) -> (u64, u64) {
    if ring.single() || ring.broadcast() {
        // No claims to recover (module docs).
        return (0, 0);
    }
    let entries = ring.participants();
    let core = ring.core();
    let (stuck_publish, stuck_release) = (core.stalled_publish(), core.stalled_release());
    if (stuck_publish.is_none() && stuck_release.is_none())
        || participant::unidentified(entries) > 0
    {
        return (0, 0);
    }
    let mut live = Liveness::new(ring.segment());
    let ctrl = core.ctrl();
    let mut tombstones = 0;
    if let Some(first) = stuck_publish {
        // Acquire: SYNC POINT "claim recorded" (see `stalled_publish`).
        let head = ctrl.producer_head.value.load(Ordering::Acquire);
        let meta = pack_meta(0, SlotKind::Tombstone, PriorityClass::Background as u8);
        let record = &me.entry.id.send_claim;
        for pos in first..head.min(first.saturating_add(core.capacity())) {
            // Acquire: SYNC POINT "claim recorded", for a mark left by a
            // survivor (see `RingCore::tombstone`).
            let seq = core.slot(pos).seq.load(Ordering::Acquire);
            if holds_or_marks(seq, pos)
                && !live.live_claim(pos, Claims::Send)
                && core.tombstone(pos, seq, meta, Some(record))
            {
                tombstones += 1;
            }
        }
        if tombstones > 0 && ring.wakeups() {
            event::wake_all(&ring.sync_block().not_empty.value);
        }
    }
    let mut released = 0;
    if let Some(first) = stuck_release {
        // Acquire: SYNC POINT "claim recorded" (see `stalled_release`).
        let tail = ctrl.consumer_head.value.load(Ordering::Acquire);
        let record = &me.entry.id.recv_claim;
        for pos in first..tail.min(first.saturating_add(core.capacity())) {
            // Acquire: as above.
            let seq = core.slot(pos).seq.load(Ordering::Acquire);
            if !holds_or_marks(seq, pos.wrapping_add(1)) || live.live_claim(pos, Claims::Recv) {
                continue;
            }
            let dead = live.dead_claimer(pos, Claims::Recv);
            if core.force_release(pos, seq, Some(record), |content| {
                drop_untaken_block(ring, me, content, dead)
            }) {
                released += 1;
            }
        }
        if released > 0 && ring.wakeups() {
            event::wake_all(&ring.sync_block().not_full.value);
        }
    }
    (tombstones, released)
}

/// The message of a slot released for a dead consumer: if it names a block
/// the consumer had not taken over yet (`Arena::take` records the taker),
/// the message's reference dies with it. If the consumer is unknown, or
/// took it, the block is left to `Arena::reclaim_dead`.
fn drop_untaken_block(
    ring: &SharedRing,
    me: Caller<'_>,
    content: &SlotContent,
    dead_consumer: Option<u32>,
) {
    let (len, kind, _) = unpack_meta(content.meta);
    let (Some(arena), Some(dead)) = (ring.arena(), dead_consumer) else {
        return;
    };
    if kind != SlotKind::ZeroCopy as u8 {
        return;
    }
    let desc = crate::lockfree::arena::Descriptor::from_words(&content.payload);
    if desc.len != len || arena.check(&desc).is_err() {
        return;
    }
    let holder = arena.owner(desc.offset);
    if holder != 0 && holder != dead {
        ring.release_block(desc.offset, me.pid);
    }
}

/// What the arena's reclaim learns of the participants (`arena::Peers`).
struct ArenaPeers<'a> {
    live: Liveness<'a>,
    /// Holders looked up so far: dead or not.
    dead: HashMap<u32, bool>,
}

impl ArenaPeers<'_> {
    /// The claim word of registered entry `i` (Acquire: SYNC POINT "block
    /// claimed", and a claim cleared after the block's holder was set).
    fn claim(&self, i: usize) -> Option<u64> {
        self.live
            .registered(i)
            .then(|| self.live.entries[i].id.arena_claim.load(Ordering::Acquire))
    }
}

impl crate::lockfree::arena::Peers for ArenaPeers<'_> {
    fn dead(&mut self, pid: u32) -> bool {
        pid != 0
            && *self
                .dead
                .entry(pid)
                .or_insert_with(|| !self.live.segment.holder_alive(pid))
    }

    fn live_claim(&mut self, index: u64) -> bool {
        // Handles sharing entry 0 write one claim word: while there are any,
        // `sweep_allowed` is false, and a claim there counts as live.
        let shared = self.live.entries[participant::SHARED_ENTRY]
            .id
            .arena_claim
            .load(Ordering::Acquire);
        crate::lockfree::arena::claimed_index(shared) == Some(index)
            || self.live.indices().any(|i| {
                self.claim(i)
                    .and_then(crate::lockfree::arena::claimed_index)
                    .is_some_and(|b| b == index)
                    && self.live.alive(i)
            })
    }

    fn dead_claim(&mut self, word: u64) -> bool {
        word != 0
            && self
                .live
                .indices()
                .any(|i| self.claim(i) == Some(word) && !self.live.alive(i))
    }

    fn sweep_allowed(&mut self) -> bool {
        participant::unidentified(self.live.entries) == 0
    }

    fn clear_dead_claims(&mut self, unsettled: &HashSet<u64>) {
        for i in self.live.indices() {
            let Some(word) = self.claim(i) else { continue };
            let moot = crate::lockfree::arena::claimed_index(word).is_some_and(|b| !unsettled.contains(&b));
            if moot && !self.live.alive(i) {
                // A CAS: the entry may be reaped and taken by a new handle
                // meanwhile (which starts with no claim anyway).
                let _ = self.live.entries[i].id.arena_claim.compare_exchange(
                    word,
                    0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }
}

/// Frees the arena blocks dead processes held or abandoned halfway (see
/// `Arena::reclaim`; the second kind only with `sweep`): `(freed, left for a
/// later call)`.
pub(crate) fn reclaim_blocks(ring: &SharedRing, me: Caller<'_>, sweep: bool) -> (u64, u64) {
    let Some(arena) = ring.arena() else {
        return (0, 0);
    };
    let core = ring.core();
    // First the blocks queued messages name, with Acquire loads of the
    // sequence words (SYNC POINT "block taken": a receiver records itself
    // as holder before releasing the slot), then the holders.
    let mut queued = HashSet::new();
    // On a single-producer single-consumer ring a consumed slot keeps its
    // sequence word: it holds a message if that is at or past the
    // consumer's head. Acquire: SYNC POINT "run free" (the consumer records
    // itself as holder before its head passes the slot), read before the
    // sequence words, so a run consumed meanwhile counts as queued.
    let consumed = ring
        .single()
        .then(|| core.ctrl().consumer_head.value.load(Ordering::Acquire));
    for i in 0..core.capacity() {
        let seq = core.slot(i).seq.load(Ordering::Acquire);
        let holds_message = match consumed {
            Some(tail) => {
                seq.wrapping_sub(1) % core.capacity() == i
                    && seq.wrapping_sub(1).wrapping_sub(tail) < core.capacity()
            }
            None => seq & RECLAIMING != 0 || seq.wrapping_sub(1) % core.capacity() == i,
        };
        let content = core.read(i);
        let (_, kind, _) = unpack_meta(content.meta);
        if holds_message && kind == SlotKind::ZeroCopy as u8 {
            queued.insert(content.payload[0]);
        }
    }
    let mut peers = ArenaPeers {
        live: Liveness::new(ring.segment()),
        dead: HashMap::new(),
    };
    let done = arena.reclaim(&queued, me.taker(), &mut peers, sweep);
    if done.freed > 0 {
        notify_block_freed(arena);
    }
    (done.freed, done.deferred)
}

/// Frees the entries of dead handles whose claims are settled, taking
/// each one's mark through `lock` meanwhile (see `participant::reap`).
pub(crate) fn reap_dead(segment: &Segment, core: &RingCore, lock: &EntryLock) -> u64 {
    let entries = segment.participants();
    let mut live = Liveness::new(segment);
    live.indices()
        .filter(|&i| {
            live.registered(i)
                && !live.alive(i)
                && settled(core, &entries[i].id)
                && participant::reap(entries, i, lock)
        })
        .count() as u64
}

/// Whether a blocked caller should give up: the other side (`role`, the
/// `ROLE_*` bit of the peers it waits for) has had participants, and none
/// is alive now. The caller's own handle counts if it has that role too.
pub(crate) fn disconnected(ring: &SharedRing, role: u32) -> bool {
    let entries = ring.participants();
    let seen = ring.core().ctrl().roles_seen.value.load(Ordering::Relaxed);
    if seen & role as u64 == 0 || participant::unidentified(entries) > 0 {
        return false;
    }
    let mut live = Liveness::new(ring.segment());
    !live.indices().any(|i| {
        live.registered(i)
            && entries[i].id.role.load(Ordering::Relaxed) & role != 0
            && live.alive(i)
    })
}

/// Everything above, for [`Ring::recover`]; `lock` is the caller's.
pub(crate) fn recover(ring: &SharedRing, me: Caller<'_>, lock: &EntryLock) -> Recovery {
    let (unpublished_slots, unreleased_slots) = recover_slots(ring, me);
    let (blocks, blocks_deferred) = reclaim_blocks(ring, me, true);
    let participants = reap_dead(ring.segment(), ring.core(), lock);
    Recovery {
        unpublished_slots,
        unreleased_slots,
        blocks,
        blocks_deferred,
        participants,
    }
}
