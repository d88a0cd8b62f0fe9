//! Recovery from dead peers (`handle::peer`), through the ring types.

use std::time::Duration;

use crate::atomic::Ordering;
use crate::error::RingError;
use crate::fusion::FusionRing;
use crate::handle::participant::{self, IN_USE};
use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER};
use crate::handle::peer::*;
use crate::lockfree::arena::Taker;
use crate::priority::PriorityClass;
use crate::shm::config::Config;
use crate::shm::layout::{pack_meta, ParticipantEntry, SlotKind};
use crate::shm::process;

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    // Miri cannot spawn a process; there every pid but ours is dead
    // (see `participant::proc_stat`).
    if cfg!(miri) {
        return process::current_pid() + 1;
    }
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    assert!(!process::process_alive(pid, 0));
    pid
}

/// Registers a participant entry that looks like a handle of a process
/// that has died (registered, then killed before unregistering).
fn dead_entry(ring: &crate::ring::Ring, role: u32) -> &ParticipantEntry {
    let entries = ring.segment().participants();
    // Without a mark (`EntryLock::Pids` takes none): as if its process died.
    let (i, shared) = participant::register(entries, &crate::shm::liveness::EntryLock::Pids);
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
    slot.store(
        crate::lockfree::protocol::reclaim_mark(0, 0),
        Ordering::Relaxed,
    );
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
            e.id.pid.load(Ordering::Relaxed) == process::current_pid()
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
        (
            crate::ring::message::Outgoing::Block(sent),
            PriorityClass::Normal,
        )
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
        .alloc(100, Taker::detached(process::current_pid()))
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
        .alloc(100, Taker::detached(process::current_pid()))
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
    let me = process::current_pid();
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
    let me = Taker::detached(process::current_pid());
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
        .alloc(100, Taker::detached(process::current_pid()))
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
    assert_eq!(
        arena.pop_killed_for_test(1, live.caller().taker()),
        Some(offset)
    );
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
    let me = process::current_pid();
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
    let me = process::current_pid();
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
