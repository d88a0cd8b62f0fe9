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
//! - Liveness is a pid plus its start time in `/proc`: participants must
//!   share a pid namespace.
//! - Handles beyond the 63 entries of the table share one record, so while
//!   any is registered nothing is reclaimed (it could be theirs).
//! - A handle carried into a forked child registers the child on its first
//!   use there (`Ring::follow_fork`), noticed through the pid that a
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
//! - Holders are told dead by pid alone (`/proc/PID`, start time unknown):
//!   a dead holder's pid reused by a new process keeps its blocks until that
//!   process exits too.

use std::collections::{HashMap, HashSet};

use crate::atomic::Ordering;
use crate::shm::layout::{
    pack_meta, unpack_meta, ClaimRecord, ParticipantEntry, ParticipantId, SlotKind,
    MAX_PARTICIPANTS,
};
use crate::handle::participant::{self, IN_USE};
use crate::lockfree::protocol::{holds_or_marks, RingCore, SlotContent, POSITION, RECLAIMING};
use crate::priority::PriorityClass;
use crate::handle::registration::Caller;
use crate::handle::shared::{notify_block_freed, SharedRing};
use crate::lockfree::event;

/// What [`Ring::recover`] found and put right.
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

/// Which entries belong to live processes, each looked up once.
struct Liveness<'a> {
    entries: &'a [ParticipantEntry],
    known: [Option<bool>; MAX_PARTICIPANTS],
}

impl<'a> Liveness<'a> {
    fn new(entries: &'a [ParticipantEntry]) -> Self {
        Liveness {
            entries,
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
        *self.known[i].get_or_insert_with(|| participant::entry_alive(&self.entries[i]))
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
    let entries = ring.participants();
    let core = ring.core();
    let (stuck_publish, stuck_release) = (core.stalled_publish(), core.stalled_release());
    if (stuck_publish.is_none() && stuck_release.is_none())
        || participant::unidentified(entries) > 0
    {
        return (0, 0);
    }
    let mut live = Liveness::new(entries);
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
    /// Pids looked up so far: dead or not.
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
                .or_insert_with(|| !participant::process_alive(pid, 0))
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
    for i in 0..core.capacity() {
        let seq = core.slot(i).seq.load(Ordering::Acquire);
        let holds_message = seq & RECLAIMING != 0 || seq.wrapping_sub(1) % core.capacity() == i;
        let content = core.read(i);
        let (_, kind, _) = unpack_meta(content.meta);
        if holds_message && kind == SlotKind::ZeroCopy as u8 {
            queued.insert(content.payload[0]);
        }
    }
    let mut peers = ArenaPeers {
        live: Liveness::new(ring.participants()),
        dead: HashMap::new(),
    };
    let done = arena.reclaim(&queued, me.taker(), &mut peers, sweep);
    if done.freed > 0 {
        notify_block_freed(arena);
    }
    (done.freed, done.deferred)
}

/// Frees the entries of dead processes whose claims are settled.
pub(crate) fn reap_dead(entries: &[ParticipantEntry], core: &RingCore) -> u64 {
    let mut live = Liveness::new(entries);
    live.indices()
        .filter(|&i| {
            live.registered(i)
                && !live.alive(i)
                && settled(core, &entries[i].id)
                && participant::reap(entries, i)
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
    let mut live = Liveness::new(entries);
    !live.indices().any(|i| {
        live.registered(i)
            && entries[i].id.role.load(Ordering::Relaxed) & role != 0
            && live.alive(i)
    })
}

/// Everything above, for [`Ring::recover`].
pub(crate) fn recover(ring: &SharedRing, me: Caller<'_>) -> Recovery {
    let (unpublished_slots, unreleased_slots) = recover_slots(ring, me);
    let (blocks, blocks_deferred) = reclaim_blocks(ring, me, true);
    let participants = reap_dead(ring.participants(), ring.core());
    Recovery {
        unpublished_slots,
        unreleased_slots,
        blocks,
        blocks_deferred,
        participants,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lockfree::arena::Taker;
    use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER};
    use crate::shm::config::Config;
    use crate::fusion::FusionRing;
    use crate::error::RingError;

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        // Miri cannot spawn a process; there every pid but ours is dead
        // (see `participant::proc_stat`).
        if cfg!(miri) {
            return participant::current_pid() + 1;
        }
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!participant::process_alive(pid, 0));
        pid
    }

    /// Registers a participant entry that looks like a handle of a process
    /// that has died (registered, then killed before unregistering).
    fn dead_entry(ring: &crate::ring::Ring, role: u32) -> &ParticipantEntry {
        let entries = ring.segment().participants();
        let (i, shared) = participant::register(entries);
        assert!(!shared);
        let e = &entries[i];
        e.id.pid.store(dead_pid(), Ordering::Relaxed);
        e.id.start_time.store(0, Ordering::Relaxed);
        e.id.role.store(role, Ordering::Relaxed);
        ring.core()
            .ctrl()
            .roles_seen
            .value
            .fetch_or(role as u64, Ordering::Relaxed);
        e
    }

    fn ring(capacity: usize) -> FusionRing {
        FusionRing::with_config(
            &Config::new(capacity)
                .arena_bytes(64 * 1024)
                .max_message(4096),
        )
        .expect("ring")
    }

    #[test]
    fn a_slot_a_dead_producer_claimed_is_skipped() {
        let ring = ring(8);
        let r = ring.as_ring();
        let dead = dead_entry(r, ROLE_SENDER);
        // The dead producer claimed position 0 and never published it.
        let claim = r
            .core()
            .claim_send_as(1, Some(&dead.id.send_claim))
            .expect("claim");
        assert_eq!(claim.pos, 0);
        ring.send(b"after the gap").expect("send");
        let mut buf = [0u8; 64];
        assert_eq!(ring.recv(&mut buf), Err(RingError::Empty), "stuck at 0");
        assert_eq!(r.core().stalled_publish(), Some(0));

        let done = r.recover();
        assert_eq!(done.unpublished_slots, 1, "{done:?}");
        assert_eq!(done.participants, 1, "the dead entry is settled: {done:?}");
        let n = ring.recv(&mut buf).expect("the message behind the gap");
        assert_eq!(&buf[..n], b"after the gap");
        assert_eq!(r.stats().head, 2);
        assert_eq!(r.recover(), Recovery::default(), "nothing left to do");
    }

    #[test]
    fn a_polling_consumer_gets_past_a_dead_producers_slot_by_itself() {
        let ring = crate::ultra::UltraFastRing::with_config(&Config::new(8)).expect("ring");
        let r = ring.as_ring();
        let dead = dead_entry(r, ROLE_SENDER);
        r.core()
            .claim_send_as(1, Some(&dead.id.send_claim))
            .expect("claim");
        ring.send_fast(b"behind", PriorityClass::Normal)
            .expect("send");
        // No blocking call, no `recover`: only `Empty` results, and every
        // few thousand of them a look for a stuck claim.
        let mut buf = [0u8; 40];
        let mut polls = 0;
        let len = loop {
            polls += 1;
            match ring.recv_fast(&mut buf) {
                Ok((len, _, _)) => break len,
                Err(RingError::Empty) if polls < 100_000 => {}
                r => panic!("after {polls} polls: {r:?}"),
            }
        };
        assert_eq!(&buf[..len], b"behind");
        assert!(polls > 1, "the gap was there first");
    }

    #[test]
    fn a_survivor_that_died_while_reclaiming_is_taken_over() {
        let ring = ring(8);
        let r = ring.as_ring();
        let dead = dead_entry(r, ROLE_SENDER);
        r.core()
            .claim_send_as(1, Some(&dead.id.send_claim))
            .expect("claim");
        ring.send(b"behind").expect("send");
        // A survivor recorded position 0, marked its slot, and then stopped
        // (first alive: a clone of ours; then gone).
        let survivor = r.clone();
        let record = &survivor.entry().id.send_claim;
        record.start.store(0, Ordering::Relaxed);
        record.end.store(1, Ordering::Relaxed);
        let slot = &r.core().slot(0).seq;
        slot.store(crate::lockfree::protocol::reclaim_mark(0, 0), Ordering::Relaxed);
        let mut buf = [0u8; 64];
        assert_eq!(ring.recv(&mut buf), Err(RingError::Empty));
        assert_eq!(
            r.recover().unpublished_slots,
            0,
            "the survivor is alive: wait for it"
        );
        drop(survivor);
        assert_eq!(r.recover().unpublished_slots, 1, "taken over");
        let n = ring.recv(&mut buf).expect("the message behind");
        assert_eq!(&buf[..n], b"behind");
    }

    #[test]
    fn a_live_producer_claim_is_left_alone() {
        let ring = ring(8);
        let r = ring.as_ring();
        let other = r.clone();
        let entries = r.segment().participants();
        let live = entries
            .iter()
            .find(|e| {
                e.id.pid.load(Ordering::Relaxed) == participant::current_pid()
                    && e.id.state.load(Ordering::Relaxed) == IN_USE
            })
            .expect("an entry of ours");
        let claim = other
            .core()
            .claim_send_as(1, Some(&live.id.send_claim))
            .expect("claim");
        assert_eq!(r.recover(), Recovery::default(), "the claimer is alive");
        let meta = pack_meta(0, SlotKind::Inline, PriorityClass::Normal as u8);
        other.core().publish(claim.pos, 0, meta, &[0; 5], false);
        assert_eq!(ring.recv(&mut [0u8; 8]), Ok(0));
    }

    #[test]
    fn a_slot_a_dead_consumer_claimed_is_released_with_its_block() {
        let ring = ring(4);
        let r = ring.as_ring();
        let dead = dead_entry(r, ROLE_RECEIVER);
        let big = [7u8; 1000];
        ring.send(&big).expect("zero-copy message");
        for i in 0..3u8 {
            ring.send(&[i]).expect("inline");
        }
        assert_eq!(ring.send(b"x"), Err(RingError::Full));
        assert_eq!(r.arena_usage().blocks_in_use, 1);
        // The dead consumer claimed position 0 (the block) and died.
        let claim = r
            .core()
            .claim_recv_as(1, None, Some(&dead.id.recv_claim))
            .expect("claim");
        assert_eq!(claim.pos, 0);
        let mut buf = [0u8; 8];
        for i in 0..3u8 {
            assert_eq!(ring.recv(&mut buf), Ok(1));
            assert_eq!(buf[0], i);
        }
        assert_eq!(
            ring.send(b"x"),
            Err(RingError::Full),
            "slot 0 is still held"
        );
        assert_eq!(r.core().stalled_release(), Some(0));

        let done = r.recover();
        assert_eq!(done.unreleased_slots, 1, "{done:?}");
        assert_eq!(r.arena_usage().blocks_in_use, 0, "its block went with it");
        ring.send(b"x").expect("room again");
        assert_eq!(ring.recv(&mut buf), Ok(1));
    }

    #[test]
    fn blocks_a_dead_process_held_are_freed_but_not_queued_ones() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let pid = dead_pid();
        // A loan the dead process never sent, and one it sent.
        arena.alloc(100, Taker::detached(pid)).expect("loan");
        let sent = arena.alloc(200, Taker::detached(pid)).expect("loan");
        r.send_with(1, |_| {
            (crate::ring::message::Outgoing::Block(sent), PriorityClass::Normal)
        })
        .expect("send");
        assert_eq!(r.arena_usage().blocks_in_use, 2);
        assert_eq!(r.recover().blocks, 1, "only the unsent loan");
        // Received by a live process: it holds the block now.
        let payload = ring.recv_zerocopy().expect("recv");
        assert_eq!(payload.len(), 200);
        assert_eq!(r.recover().blocks, 0, "held by us, alive");
        drop(payload);
        assert_eq!(r.arena_usage().blocks_in_use, 0);
    }

    #[test]
    fn a_spare_whose_maker_died_is_freed_once() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let d = arena
            .alloc_spare(100, Taker::detached(dead_pid()))
            .expect("spare");
        // Spares count as free, but nobody will claim this one by its
        // maker's handle: a survivor puts it back on its free list.
        assert_eq!(r.arena_usage().blocks_in_use, 0);
        assert_eq!(r.recover().blocks, 1);
        assert_eq!(r.recover().blocks, 0);
        assert!(
            arena.claim_spare(d.offset, Taker::detached(1)).is_none(),
            "not a spare any more"
        );
        let again = arena
            .alloc(100, Taker::detached(participant::current_pid()))
            .expect("reuse");
        assert_eq!(again.offset, d.offset);
    }

    #[test]
    fn a_block_whose_holder_died_while_freeing_it_is_freed() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let d = arena.alloc(100, Taker::detached(dead_pid())).expect("loan");
        // Its holder dropped the last reference and died before the block
        // reached its free list: count 0, holder still recorded.
        let h = arena.header_for_test(d.offset);
        h.refcount.store(0, Ordering::Relaxed);
        assert_eq!(r.arena_usage().blocks_in_use, 1);
        assert_eq!(r.recover().blocks, 1);
        assert_eq!(r.arena_usage().blocks_in_use, 0);
        // Back in use from the free list, once.
        let again = arena
            .alloc(100, Taker::detached(participant::current_pid()))
            .expect("reuse");
        assert_eq!(again.offset, d.offset);
        assert_eq!(r.recover().blocks, 0);
    }

    /// The taker of a participant entry (its pid and claim word).
    fn taker_of(e: &ParticipantEntry) -> Taker<'_> {
        Taker {
            pid: e.id.pid.load(Ordering::Relaxed),
            claim: &e.id.arena_claim,
        }
    }

    /// A block freed by this (live) process, now on its free list.
    fn freed_block(ring: &FusionRing, len: usize) -> u64 {
        let arena = ring.as_ring().arena().expect("arena");
        let me = participant::current_pid();
        let d = arena.alloc(len, Taker::detached(me)).expect("alloc");
        assert!(arena.release(d.offset, me));
        d.offset
    }

    #[test]
    fn a_block_whose_carver_died_before_labelling_it_hides_no_later_block() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        // A producer carved a 100-byte block (class 1) and was killed right
        // after the bump CAS: its header was never written. (Before the bump
        // word carried the last class, every later block was lost to the
        // walks over the carved area: a dead holder's blocks leaked, one
        // per kill, with `recover` reporting none.)
        arena.carve_killed_for_test(1);
        // Another dead process's loan, carved after it.
        arena
            .alloc(1000, Taker::detached(dead_pid()))
            .expect("loan");
        assert_eq!(r.arena_usage().blocks_in_use, 2);
        let done = r.recover();
        assert_eq!(r.arena_usage().blocks_in_use, 0, "{done:?}");
        assert_eq!(done.blocks, 2, "both blocks are back: {done:?}");
        assert_eq!(r.recover(), Recovery::default(), "nothing left to do");
        // Both are on their free lists, once: allocated again, not carved.
        let carved = r.arena_usage().bytes_carved;
        let me = Taker::detached(participant::current_pid());
        let a = arena.alloc(100, me).expect("class 1 again");
        let b = arena.alloc(1000, me).expect("class 4 again");
        assert_ne!(a.offset, b.offset);
        assert_eq!(r.arena_usage().bytes_carved, carved, "nothing new carved");
    }

    #[test]
    fn a_block_popped_by_a_process_killed_before_it_recorded_itself_is_freed() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        // We freed the block (its free mark names us, alive); a producer
        // popped it and died before writing its count and holder.
        let offset = freed_block(&ring, 100);
        let dead = dead_entry(r, ROLE_SENDER);
        assert_eq!(arena.pop_killed_for_test(1, taker_of(dead)), Some(offset));
        assert_eq!(r.arena_usage().blocks_in_use, 1);
        let done = r.recover();
        assert_eq!((done.blocks, done.blocks_deferred), (1, 0), "{done:?}");
        assert_eq!(done.participants, 1, "its entry is settled: {done:?}");
        assert_eq!(r.arena_usage().blocks_in_use, 0);
        let again = arena
            .alloc(100, Taker::detached(participant::current_pid()))
            .expect("reuse");
        assert_eq!(again.offset, offset, "back on its list");
    }

    #[test]
    fn a_block_a_live_process_is_taking_is_left_alone() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let offset = freed_block(&ring, 100);
        // A live handle (a clone of ours) in the middle of its pop.
        let live = r.clone();
        assert_eq!(arena.pop_killed_for_test(1, live.caller().taker()), Some(offset));
        let done = r.recover();
        assert_eq!((done.blocks, done.blocks_deferred), (0, 1), "{done:?}");
        assert_eq!(r.arena_usage().blocks_in_use, 1);
        assert_eq!(
            live.caller().taker().claim.load(Ordering::Relaxed) & 0xffff_ffff,
            offset / 64 + 1,
            "its claim still names the block"
        );
    }

    #[test]
    fn a_block_whose_freer_died_before_linking_it_is_freed_once() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let pid = dead_pid();
        let d = arena.alloc(100, Taker::detached(pid)).expect("loan");
        arena.free_killed_for_test(d.offset, pid);
        assert_eq!(r.arena_usage().blocks_in_use, 1);
        assert_eq!(r.recover().blocks, 1);
        assert_eq!(r.recover().blocks, 0);
        assert_eq!(r.arena_usage().blocks_in_use, 0);
        // Marked free by a live process: it may be about to link it.
        let me = participant::current_pid();
        let d = arena.alloc(100, Taker::detached(me)).expect("loan");
        arena.free_killed_for_test(d.offset, me);
        let done = r.recover();
        assert_eq!((done.blocks, done.blocks_deferred), (0, 1), "{done:?}");
    }

    #[test]
    fn a_spare_whose_claimer_died_while_its_maker_lives_is_freed() {
        let ring = ring(8);
        let r = ring.as_ring();
        let arena = r.arena().expect("arena");
        let me = participant::current_pid();
        let spare = arena.alloc_spare(100, Taker::detached(me)).expect("spare");
        let dead = dead_entry(r, ROLE_SENDER);
        assert!(arena.claim_killed_for_test(spare.offset, taker_of(dead)));
        assert_eq!(r.arena_usage().blocks_in_use, 1, "taken, not a spare");
        let done = r.recover();
        assert_eq!((done.blocks, done.blocks_deferred), (1, 0), "{done:?}");
        assert_eq!(r.arena_usage().blocks_in_use, 0);
        assert!(
            arena
                .claim_spare(spare.offset, Taker::detached(me))
                .is_none(),
            "on its free list, not a spare"
        );
    }

    #[test]
    fn blocked_calls_report_disconnected_once_the_other_side_died() {
        let ring = ring(2);
        let mut buf = [0u8; 8];
        // No sender ever: a plain timeout.
        assert_eq!(
            ring.recv_with_timeout(&mut buf, Duration::from_millis(20)),
            Err(RingError::Timeout)
        );
        // A sender that died: Disconnected, well before the timeout.
        dead_entry(ring.as_ring(), ROLE_SENDER);
        let start = std::time::Instant::now();
        assert_eq!(
            ring.recv_with_timeout(&mut buf, Duration::from_secs(30)),
            Err(RingError::Disconnected)
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        // A live sender (a clone that has sent): back to waiting.
        let sender = ring.clone();
        sender.send(b"hi").expect("send");
        assert_eq!(ring.recv(&mut buf), Ok(2));
        assert_eq!(
            ring.recv_with_timeout(&mut buf, Duration::from_millis(20)),
            Err(RingError::Timeout)
        );
        // And the mirror image for senders on a full ring.
        dead_entry(ring.as_ring(), ROLE_RECEIVER);
        drop(ring);
        sender.send(b"1").expect("send");
        sender.send(b"2").expect("send");
        assert_eq!(
            sender.send_with_timeout(b"3", Duration::from_secs(30)),
            Err(RingError::Disconnected)
        );
    }
}
