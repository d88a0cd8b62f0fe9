//! Loom models of reclaiming: a survivor's sweep runs while a live process
//! takes and frees blocks, with a block a dead process abandoned halfway.
//! The sweep must link the abandoned block back exactly once (now or in a
//! later call), never link a block twice, and never take one that the live
//! process is taking or freeing. Each model fails if the check it is about
//! is taken out (the live claims; the free marks' holder), as does the first
//! with a pop CAS that is not `Release`. Not modelled: a process that links
//! a block and dies between a sweep's snapshot and its link (the link's CAS
//! on the snapshot's head is what keeps that one safe).

use std::collections::HashSet;

use loom::sync::Arc;

use super::*;
use crate::atomic::AtomicU32;
use crate::shm::layout::CacheLine;

const LIVE: u32 = 10;
const SWEEPER: u32 = 20;
const DEAD: u32 = 30;
/// Class-0 blocks (128 bytes each) the block area holds.
const BLOCKS: usize = 3;

struct World {
    ctrl: ArenaControl,
    headers: Vec<BlockHeader>,
    bytes: Vec<u8>,
    claims: [AtomicU64; 3], // LIVE, SWEEPER, DEAD
}

// SAFETY: `bytes` is never written (payload writes are not modelled);
// everything else is atomics.
unsafe impl Send for World {}
// SAFETY: as above.
unsafe impl Sync for World {}

impl World {
    fn new() -> Self {
        let zero = || AtomicU64::new(0);
        World {
            ctrl: ArenaControl {
                bump: CacheLine { value: zero() },
                free: core::array::from_fn(|_| CacheLine { value: zero() }),
                sweeper: zero(),
                _reserved: core::array::from_fn(|_| zero()),
            },
            headers: (0..BLOCKS * 2)
                .map(|_| BlockHeader {
                    refcount: AtomicU32::new(0),
                    generation: AtomicU32::new(0),
                    len: AtomicU32::new(0),
                    class: AtomicU32::new(0),
                    next: zero(),
                    owner_pid: AtomicU32::new(0),
                    _pad: 0,
                })
                .collect(),
            bytes: vec![0; BLOCKS * 128],
            claims: core::array::from_fn(|_| zero()),
        }
    }

    fn arena(&self) -> Arena {
        let bytes = NonNull::new(self.bytes.as_ptr().cast_mut()).expect("bytes");
        // SAFETY: the world outlives every arena made of it (each
        // thread holds an Arc of it).
        unsafe { Arena::model(&self.ctrl, &self.headers, bytes, 64) }
    }

    fn taker(&self, pid: u32) -> Taker<'_> {
        let i = [LIVE, SWEEPER, DEAD]
            .iter()
            .position(|&p| p == pid)
            .expect("pid");
        Taker {
            pid,
            claim: &self.claims[i],
        }
    }
}

struct ModelPeers<'a>(&'a World);

impl Peers for ModelPeers<'_> {
    fn dead(&mut self, pid: u32) -> bool {
        pid == DEAD
    }
    fn live_claim(&mut self, index: u64) -> bool {
        self.0.claims[..2]
            .iter()
            .any(|c| claimed_index(c.load(Ordering::Acquire)) == Some(index))
    }
    fn dead_claim(&mut self, word: u64) -> bool {
        word != 0 && self.0.claims[2].load(Ordering::Acquire) == word
    }
    fn sweep_allowed(&mut self) -> bool {
        true
    }
    fn clear_dead_claims(&mut self, unsettled: &HashSet<u64>) {
        let word = self.0.claims[2].load(Ordering::Relaxed);
        if claimed_index(word).is_some_and(|b| !unsettled.contains(&b)) {
            self.0.claims[2].store(0, Ordering::Relaxed);
        }
    }
}

/// Two blocks freed by the dead process (or one, the live process
/// holding the other), then one popped by the dead process, which died
/// before recording itself as holder. `live` runs
/// in a thread of its own while the sweeper reclaims.
fn model(keep_second: bool, live: fn(&World, &Arena, Option<Descriptor>)) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(move || {
        let w = Arc::new(World::new());
        let arena = w.arena();
        let first = arena.alloc(64, w.taker(LIVE)).expect("carve");
        let second = arena.alloc(64, w.taker(LIVE)).expect("carve");
        // Freed by the process that dies next: the free marks name a dead
        // process, so only the live taker's claim tells its block apart.
        assert!(arena.release(first.offset, DEAD));
        // The live process keeps the second one, to free it concurrently
        // in the second model; in the first, it is freed now.
        let held = keep_second.then_some(second);
        if !keep_second {
            assert!(arena.release(second.offset, DEAD));
        }
        let abandoned = arena.pop_killed_for_test(0, w.taker(DEAD));
        assert!(abandoned.is_some(), "a block to abandon");
        let t = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || live(&w, &w.arena(), held))
        };
        let mut freed = arena
            .reclaim(&HashSet::new(), w.taker(SWEEPER), &mut ModelPeers(&w), true)
            .freed;
        t.join().expect("live thread");
        // What the sweep left for later, a later call finishes.
        let again = arena.reclaim(&HashSet::new(), w.taker(SWEEPER), &mut ModelPeers(&w), true);
        assert_eq!(again.deferred, 0);
        freed += again.freed;
        assert_eq!(freed, 1, "the abandoned block, once");
        // Every carved block is on the free list exactly once.
        let mut seen = HashSet::new();
        while let Some(i) = arena.list(0).pop() {
            assert!(seen.insert(i), "block {i} linked twice");
            assert!(seen.len() <= BLOCKS, "a cycle");
        }
        let carved = arena.carved_blocks().count();
        assert_eq!(seen.len(), carved, "a block lost");
    });
}

/// The live process takes a block (popping, possibly the one the sweep
/// is linking back) and frees it.
fn take_and_free(w: &World, arena: &Arena, _: Option<Descriptor>) {
    let d = arena.alloc(64, w.taker(LIVE)).expect("a block");
    assert!(arena.release(d.offset, LIVE));
}

/// The live process frees a block it held (marking it, then linking it).
fn free_held(_: &World, arena: &Arena, held: Option<Descriptor>) {
    assert!(arena.release(held.expect("held").offset, LIVE));
}

#[test]
fn sweep_against_a_live_taker() {
    model(false, take_and_free);
}

#[test]
fn sweep_against_a_live_freer() {
    model(true, free_held);
}
