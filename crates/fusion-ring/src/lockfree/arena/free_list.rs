//! A lock-free LIFO free list (Treiber stack) of arena blocks, linked by
//! index through the blocks' headers, with a tagged head against ABA.
//!
//! The head word is `tag << 32 | (index + 1)`; 0 in the low half is the
//! empty list. Every successful push or pop increments the tag, so a pop
//! whose snapshot of the head went stale (the block was popped, reused and
//! pushed back meanwhile) fails its CAS instead of installing a stale link.
//!
//! - SYNC POINT "block free": push's CAS is `Release` (the freer's accesses
//!   to the block, and the link it wrote, happen before), pop's head load is
//!   `Acquire` (pairs with it).
//! - Links read during a pop may be stale or scribbled on; they are
//!   range-checked by the caller's `node` function, and a failed check ends
//!   the pop (the list is reported empty) instead of following garbage.

use crate::atomic::{AtomicU64, Ordering};
use crate::shm::layout::BlockHeader;

const INDEX_MASK: u64 = 0xffff_ffff;

/// One class's free list: its head word and a way to reach a block's header
/// by index (`None` for an index that is out of range or not of this class).
pub(crate) struct FreeList<'a, F> {
    head: &'a AtomicU64,
    node: F,
}

impl<'a, F> FreeList<'a, F>
where
    F: Fn(u64) -> Option<&'a BlockHeader>,
{
    pub(crate) fn new(head: &'a AtomicU64, node: F) -> Self {
        Self { head, node }
    }

    /// Pushes block `index`; `mark` is called on its header right before
    /// each attempt to link it in (the arena marks it free there, as late
    /// as it can: see `Arena::release`).
    pub(crate) fn push(&self, index: u64, mark: impl Fn(&BlockHeader)) {
        let Some(block) = (self.node)(index) else {
            return;
        };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            block.next.store(head & INDEX_MASK, Ordering::Relaxed);
            let new = (head >> 32).wrapping_add(1) << 32 | (index + 1);
            mark(block);
            // SYNC POINT "block free" (Release; pairs with `pop`).
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
            crate::atomic::spin_hint();
        }
    }

    /// Pops a block index, or `None` if the list is empty (or a link failed
    /// its range check). `claim(index, block)` is called right before each
    /// attempt to unlink a block: the arena records there which block it is
    /// taking (`Taker`), so that survivors of a process killed between this
    /// CAS and its next steps can tell the block is abandoned.
    pub(crate) fn pop_with(&self, claim: impl Fn(u64, &BlockHeader)) -> Option<u64> {
        // SYNC POINT "block free" (Acquire; pairs with `push`).
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let first = head & INDEX_MASK;
            if first == 0 {
                return None;
            }
            let block = (self.node)(first - 1)?;
            // Relaxed: the Acquire above (or of the failed CAS) ordered it.
            let next = block.next.load(Ordering::Relaxed) & INDEX_MASK;
            let new = (head >> 32).wrapping_add(1) << 32 | next;
            claim(first - 1, block);
            // Acquire: SYNC POINT "block free". Release: SYNC POINT "block
            // claimed": the claim written above happens before anything a
            // reader of the head (`snapshot`) does after its Acquire load
            // (every later write of the head is a CAS, so they all continue
            // this release sequence).
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(first - 1),
                Err(now) => head = now,
            }
            crate::atomic::spin_hint();
        }
    }

    /// Pops a block index without recording the taker (the loom model).
    #[cfg(all(test, fusion_ring_loom))]
    pub(crate) fn pop(&self) -> Option<u64> {
        self.pop_with(|_, _| {})
    }

    /// The list as it was at one moment: its head word and the indices of
    /// its blocks, or `None` if it changed while it was walked (retry), a
    /// link failed its range check, or it is longer than `bound` (a
    /// scribbled cycle). Every push and pop changes the head's tag, so the
    /// same head word read before and after the walk means no push or pop
    /// came in between, and the links read (nobody writes the link of a
    /// block on the list) were those of one list.
    pub(crate) fn snapshot(&self, bound: u64) -> Option<(u64, Vec<u64>)> {
        // Acquire: SYNC POINT "block free" (the links of the pushed blocks)
        // and "block claimed" (the claims of the poppers).
        let head = self.head.load(Ordering::Acquire);
        let mut blocks = Vec::new();
        let mut link = head & INDEX_MASK;
        while link != 0 {
            if blocks.len() as u64 >= bound {
                return None;
            }
            let block = (self.node)(link - 1)?;
            blocks.push(link - 1);
            // Relaxed: ordered by the Acquire load of the head.
            link = block.next.load(Ordering::Relaxed) & INDEX_MASK;
        }
        (self.head.load(Ordering::Acquire) == head).then_some((head, blocks))
    }

    /// Links block `index`, which is on no list and which nobody else may
    /// link, in front of the list as it was when its head read `head` (from
    /// [`FreeList::snapshot`]). One attempt: `None` if the list changed since
    /// (or `index` is out of range), else the new head word. `mark` is
    /// called on the block's header before the attempt.
    pub(crate) fn push_onto(
        &self,
        head: u64,
        index: u64,
        mark: impl Fn(&BlockHeader),
    ) -> Option<u64> {
        let block = (self.node)(index)?;
        // Relaxed: published by the Release CAS below.
        block.next.store(head & INDEX_MASK, Ordering::Relaxed);
        let new = (head >> 32).wrapping_add(1) << 32 | (index + 1);
        mark(block);
        // SYNC POINT "block free" (Release; pairs with `pop_with`).
        self.head
            .compare_exchange(head, new, Ordering::Release, Ordering::Relaxed)
            .ok()
            .map(|_| new)
    }

    /// Number of blocks on the list, counting at most `bound` (a scribbled
    /// link could make a cycle). A racy snapshot, for statistics.
    pub(crate) fn len_bounded(&self, bound: u64) -> u64 {
        let mut n = 0;
        let mut link = self.head.load(Ordering::Acquire) & INDEX_MASK;
        while link != 0 && n < bound {
            let Some(block) = (self.node)(link - 1) else {
                break;
            };
            n += 1;
            link = block.next.load(Ordering::Relaxed) & INDEX_MASK;
        }
        n
    }
}

/// Loom model of the free list: threads pop a block, own it, push it back,
/// while others do the same; a block must never be handed to two owners at
/// once (the ABA case the tag exists for), and none may get lost.
#[cfg(all(test, fusion_ring_loom))]
mod loom_model {
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;

    use super::FreeList;
    use crate::atomic::{AtomicU32, AtomicU64, Ordering};
    use crate::shm::layout::BlockHeader;

    struct Model {
        head: AtomicU64,
        blocks: Vec<BlockHeader>,
        owned: Vec<AtomicBool>,
    }

    fn block() -> BlockHeader {
        BlockHeader {
            refcount: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            len: AtomicU32::new(0),
            class: AtomicU32::new(0),
            next: AtomicU64::new(0),
            owner_pid: AtomicU32::new(0),
            _pad: 0,
        }
    }

    impl Model {
        fn list<'a>(&'a self) -> FreeList<'a, impl Fn(u64) -> Option<&'a BlockHeader> + 'a> {
            FreeList::new(&self.head, |i| self.blocks.get(i as usize))
        }
    }

    /// Pops `hold` blocks (holding them all: the ABA case needs a thread
    /// to hold two while another sleeps on a stale head), then pushes them
    /// back in the order they were popped.
    fn cycle(m: &Model, hold: usize) {
        let mut held = Vec::new();
        for _ in 0..hold {
            if let Some(i) = m.list().pop() {
                // Ownership is exclusive: nobody else holds block i.
                assert!(
                    !m.owned[i as usize].swap(true, Ordering::Relaxed),
                    "block {i} handed out twice"
                );
                held.push(i);
            }
        }
        for i in held {
            m.owned[i as usize].store(false, Ordering::Relaxed);
            m.list().push(i, |_| {});
        }
    }

    #[test]
    fn free_list_never_hands_a_block_out_twice() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let m = Arc::new(Model {
                head: AtomicU64::new(0),
                blocks: (0..3).map(|_| block()).collect(),
                owned: (0..3).map(|_| AtomicBool::new(false)).collect(),
            });
            for i in 0..3 {
                m.list().push(i, |_| {});
            }
            let t = {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || cycle(&m, 2))
            };
            cycle(&m, 1);
            t.join().unwrap();
            // Nothing lost: all three blocks are back on the list.
            let mut seen = [false; 3];
            while let Some(i) = m.list().pop() {
                assert!(!seen[i as usize], "block {i} on the list twice");
                seen[i as usize] = true;
            }
            assert_eq!(seen, [true; 3], "a block was lost");
        });
    }
}
