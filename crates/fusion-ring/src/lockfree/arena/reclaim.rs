//! Reclaiming what dead processes left in the arena ([`Arena::reclaim`]):
//! blocks whose recorded holder died, and blocks a process was killed in
//! the middle of taking or handing back (see the module docs of `arena`,
//! "A process killed at any instruction").

use super::{claim_word, Arena, Taker, MAX_CLASSES, ON_FREE_LIST, TAKING};
use crate::atomic::Ordering;

/// What `Arena::reclaim` needs to know of the processes sharing the arena.
pub(crate) trait Peers {
    /// Whether process `pid` is dead.
    fn dead(&mut self, pid: u32) -> bool;
    /// Whether a live participant's claim names block `index`, read now
    /// (Acquire, SYNC POINT "block claimed").
    fn live_claim(&mut self, index: u64) -> bool;
    /// Whether a dead participant's claim word is `word`.
    fn dead_claim(&mut self, word: u64) -> bool;
    /// Whether every live participant has a claim word of its own (else
    /// abandoned blocks cannot be told from blocks being taken).
    fn sweep_allowed(&mut self) -> bool;
    /// Clears the claims of dead participants that name none of the
    /// blocks in `unsettled` (their block was linked back in, or they never
    /// took it): their entries can then be reaped.
    fn clear_dead_claims(&mut self, unsettled: &std::collections::HashSet<u64>);
}

/// What `Arena::reclaim` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    /// Blocks put back on their free lists.
    pub(crate) freed: u64,
    /// Blocks that looked abandoned or held by a dead process but were
    /// left for a later call: a live process was taking them, or the free
    /// list moved while it was read.
    pub(crate) deferred: u64,
}

impl Arena {
    /// Frees what dead processes left in the arena, in two passes; `me` is
    /// the reclaiming handle (its claim announces the blocks it frees).
    ///
    /// 1. **Held blocks**: blocks whose recorded holder is dead (its loans,
    ///    spares, and the messages it received and still held), unless a
    ///    queued message names them (`queued`, the offsets that messages
    ///    still in the ring name, read with Acquire before calling: see
    ///    `take`) or a live process is taking them (its claim names them).
    /// 2. **Abandoned blocks** (a sweep, one process at a time): blocks a
    ///    process was killed in the middle of taking or handing back, which
    ///    name no holder: freshly carved and never owned, taken off a free
    ///    list and never owned, marked free and never linked in, or a spare
    ///    being claimed. A block is abandoned when no live process's claim
    ///    names it and, for one marked free, its marker is dead or a dead
    ///    process's claim names it at its current generation. Such a block
    ///    is on no free list as one snapshot of the list shows, and it is
    ///    linked back in front of that very snapshot (one CAS), so a list
    ///    that moved meanwhile makes the sweep leave it for another time.
    ///
    /// Returns the blocks freed and the blocks left for later (in use by a
    /// live process's step in progress, or a list that moved).
    pub(crate) fn reclaim(
        &self,
        queued: &std::collections::HashSet<u64>,
        me: Taker<'_>,
        peers: &mut impl Peers,
        sweep: bool,
    ) -> Reclaimed {
        let mut done = self.reclaim_held(queued, me, peers);
        if sweep && peers.sweep_allowed() {
            let swept = self.sweep(me.pid, peers);
            done.freed += swept.freed;
            done.deferred += swept.deferred;
        }
        done
    }

    fn reclaim_held(
        &self,
        queued: &std::collections::HashSet<u64>,
        me: Taker<'_>,
        peers: &mut impl Peers,
    ) -> Reclaimed {
        let mut done = Reclaimed::default();
        for (offset, h, _) in self.carved_blocks() {
            // Acquire: the holder's last writes to the block happen before
            // we free it (as the refcount's AcqRel does), and a spare's
            // claimer's claim is visible (SYNC POINT "block claimed").
            let refs = h.refcount.load(Ordering::Acquire);
            let owner = h.owner_pid.load(Ordering::Relaxed);
            if matches!(refs, ON_FREE_LIST | TAKING)
                || owner == 0
                || queued.contains(&(offset as u64))
                || !peers.dead(owner)
            {
                continue;
            }
            let index = offset as u64 / 64;
            // A live process claiming it (a spare its dead maker left): it
            // is that process's now. The holder re-read after the claims
            // catches one that finished claiming in between.
            if peers.live_claim(index) || h.owner_pid.load(Ordering::Relaxed) != owner {
                done.deferred += 1;
                continue;
            }
            me.announce(index, h.generation.load(Ordering::Relaxed));
            // One survivor frees it; a holder that was not dead after all
            // would have changed the count.
            if h.refcount
                .compare_exchange(refs, ON_FREE_LIST, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.free(h, offset as u64, me.pid);
                done.freed += 1;
            }
            me.done();
        }
        done
    }

    /// Pass 2 of [`Arena::reclaim`].
    fn sweep(&self, pid: u32, peers: &mut impl Peers) -> Reclaimed {
        let mut done = Reclaimed::default();
        if !self.lock_sweep(pid, peers) {
            return done;
        }
        let mut unsettled = std::collections::HashSet::new();
        let mut carved = [0u64; MAX_CLASSES];
        for (_, _, class) in self.carved_blocks() {
            carved[class] += 1;
        }
        // One snapshot per class (a few tries: live traffic moves a head
        // only briefly); `None`: no usable snapshot, leave the class alone.
        let mut lists: [Option<(u64, std::collections::HashSet<u64>)>; MAX_CLASSES] =
            core::array::from_fn(|c| {
                (0..4).take_while(|_| c <= self.max_class).find_map(|_| {
                    self.list(c)
                        .snapshot(carved[c])
                        .map(|(head, blocks)| (head, blocks.into_iter().collect()))
                })
            });
        for (offset, h, class) in self.carved_blocks() {
            let index = offset as u64 / 64;
            // Acquire: the marker's holder field (see `free`), and the
            // claims of carvers and spare claimers (SYNC POINTs "block
            // carved" and "block claimed").
            let refs = h.refcount.load(Ordering::Acquire);
            let owner = h.owner_pid.load(Ordering::Relaxed);
            let generation = h.generation.load(Ordering::Relaxed);
            let marked_free = refs == ON_FREE_LIST;
            let candidate = match refs {
                0 => owner == 0, // carved, never owned
                TAKING => true,
                ON_FREE_LIST => lists[class]
                    .as_ref()
                    .is_none_or(|(_, blocks)| !blocks.contains(&index)),
                _ => false,
            };
            if !candidate {
                continue;
            }
            let Some((head, _)) = lists[class].as_ref() else {
                done.deferred += 1;
                unsettled.insert(index);
                continue;
            };
            let head = *head;
            // The claims are read after the block (a taker announces before
            // it takes), the block again after the claims (a taker that
            // finished in between changed it).
            let abandoned = !peers.live_claim(index)
                && (!marked_free
                    || owner == 0
                    || peers.dead(owner)
                    || peers.dead_claim(claim_word(index, generation)));
            let unchanged = h.refcount.load(Ordering::Acquire) == refs
                && h.owner_pid.load(Ordering::Relaxed) == owner
                && h.generation.load(Ordering::Relaxed) == generation;
            if !abandoned || !unchanged {
                if !abandoned {
                    done.deferred += 1;
                    unsettled.insert(index);
                }
                continue;
            }
            // The last block's header may never have been written.
            if h.class.load(Ordering::Relaxed) != class as u32 {
                h.class.store(class as u32, Ordering::Relaxed);
            }
            let linked = self.list(class).push_onto(head, index, |b| {
                // No holder: if we die before the link, the next sweep
                // takes the block as abandoned again.
                b.owner_pid.store(0, Ordering::Relaxed);
                b.refcount.store(ON_FREE_LIST, Ordering::Release);
            });
            match linked {
                Some(new_head) => {
                    if let Some((head, blocks)) = lists[class].as_mut() {
                        *head = new_head;
                        blocks.insert(index);
                    }
                    done.freed += 1;
                }
                None => {
                    lists[class] = None;
                    done.deferred += 1;
                    unsettled.insert(index);
                }
            }
        }
        peers.clear_dead_claims(&unsettled);
        // Release: our links happen before the next sweeper's walk.
        let _ = self.ctrl().sweeper.compare_exchange(
            u64::from(pid),
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
        done
    }

    /// Takes the sweep lock for `pid`: free, or held by a dead process.
    fn lock_sweep(&self, pid: u32, peers: &mut impl Peers) -> bool {
        let lock = &self.ctrl().sweeper;
        // Acquire: the previous sweeper's links happen before our walk.
        let holder = lock.load(Ordering::Acquire);
        let free = holder == 0 || u32::try_from(holder).map_or(true, |p| p != pid && peers.dead(p));
        free && lock
            .compare_exchange(holder, u64::from(pid), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}
