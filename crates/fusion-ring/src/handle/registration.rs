//! [`Registration`]: a handle's participant entry, and following the
//! handle into a forked child.

use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use std::sync::Arc;

use crate::shm::process;
use crate::atomic::Ordering;
use crate::handle::broadcast;
use crate::handle::participant::{self, Caller, ROLE_RECEIVER, ROLE_SENDER, ROLE_SUBSCRIBER};
use crate::error::{Result, RingError};
use crate::handle::peer;
use crate::handle::roles;
use crate::handle::stats::StatsWriter;
use crate::lockfree::protocol::RingCore;
use crate::priority::PriorityClass;
use crate::shm::layout::{pack_meta, ParticipantEntry, SlotKind};
use crate::shm::liveness::EntryLock;
use crate::shm::segment::Segment;

/// A handle's entry in the participant table: its index, whether it is the
/// shared entry 0 (the table was full), the process it is registered for,
/// the roles it has noted there, and the description through which it
/// holds the entry's mark (its liveness, see `shm::liveness`).
///
/// A handle carried into a forked child still names its parent's entry:
/// claims recorded there would look alive while the parent lives (and dead
/// when it dies), the two processes would write one set of counters, and
/// blocks would name the parent as their holder. So on its first use in
/// another process a handle registers there, as a clone would
/// ([`Registration::follow_fork`]: one load of the cached pid and a
/// compare).
pub(crate) struct Registration {
    entry: Cell<NonNull<ParticipantEntry>>,
    index: Cell<usize>,
    shared_stats: Cell<bool>,
    /// The process the entry is registered for.
    owner_pid: Cell<u32>,
    /// Roles noted in the entry by this process.
    roles: Cell<u32>,
    /// Holds the entry's mark; replaced in a forked child (the inherited
    /// description is the parent's).
    lock: RefCell<EntryLock>,
    segment: Arc<Segment>,
}

/// Registers a handle on `segment` with `lock`; if the table is full,
/// first frees the entries of dead handles whose claims are settled.
fn register(segment: &Segment, core: &RingCore, lock: &EntryLock) -> (usize, bool) {
    let entries = segment.participants();
    let registered = participant::register(entries, lock);
    if !registered.1 {
        return registered;
    }
    participant::unregister(entries, registered.0);
    peer::reap_dead(segment, core, lock);
    participant::register(entries, lock)
}

/// Marks this process alive on `segment` (a forked child: the first time).
/// Blocks it takes name its pid: without a mark they would look abandoned
/// while it uses them, so a failure (no lock memory left, `ENOLCK`) stops
/// here rather than lose data.
fn mark_this_process(segment: &Segment) {
    if let Err(e) = segment.mark_process() {
        panic!(
            "fusion-ring: this process cannot mark itself alive on {}: {e}",
            segment.label()
        );
    }
}

impl Registration {
    /// Registers a new handle on `segment`. Constructors that can fail mark
    /// the process first (`Segment::mark_process`), so that this one only
    /// marks a forked child (a clone there).
    pub(crate) fn new(segment: &Arc<Segment>, core: &RingCore) -> Self {
        mark_this_process(segment);
        let lock = segment.entry_lock();
        let (index, shared) = register(segment, core, &lock);
        Registration {
            entry: Cell::new(NonNull::from(&segment.participants()[index])),
            index: Cell::new(index),
            shared_stats: Cell::new(shared),
            owner_pid: Cell::new(process::current_pid()),
            roles: Cell::new(0),
            lock: RefCell::new(lock),
            segment: Arc::clone(segment),
        }
    }

    /// Moves to an entry of this process's own if the handle was carried
    /// across a fork.
    #[inline(always)]
    pub(crate) fn follow_fork(&self, core: &RingCore) {
        if self.owner_pid.get() != process::current_pid() {
            self.register_after_fork(core);
        }
    }

    #[cold]
    #[inline(never)]
    fn register_after_fork(&self, core: &RingCore) {
        mark_this_process(&self.segment);
        // Whether a forked child inherits its parent's registration is the
        // kernel's business: it registers itself.
        crate::lockfree::event::register_light_wakers(process::current_pid());
        // A description of its own: the inherited one is the parent's, and
        // closing this process's copy of it leaves the parent's mark alone.
        let lock = self.segment.entry_lock();
        let (index, shared) = register(&self.segment, core, &lock);
        *self.lock.borrow_mut() = lock;
        self.entry.set(NonNull::from(&self.segment.participants()[index]));
        self.index.set(index);
        self.shared_stats.set(shared);
        self.owner_pid.set(process::current_pid());
        // The roles seen were the parent's: this process notes its own.
        self.roles.set(0);
    }

    /// The entry, for a caller that has just called `follow_fork` (the hot
    /// paths: one check per call, not one per use).
    #[inline(always)]
    pub(crate) fn entry_followed(&self) -> &ParticipantEntry {
        // SAFETY: `entry` points into the mapping kept alive by `segment`.
        unsafe { self.entry.get().as_ref() }
    }

    /// The caller, for a caller that has just called `follow_fork`.
    #[inline(always)]
    pub(crate) fn caller_followed(&self) -> Caller<'_> {
        Caller {
            entry: self.entry_followed(),
            pid: self.owner_pid.get(),
        }
    }

    /// The caller, first following a fork.
    #[inline(always)]
    pub(crate) fn caller(&self, core: &RingCore) -> Caller<'_> {
        self.follow_fork(core);
        self.caller_followed()
    }

    /// The counters' writer, for a caller that has called `follow_fork`.
    #[inline(always)]
    pub(crate) fn stats_writer(&self) -> StatsWriter<'_> {
        StatsWriter {
            entry: self.entry_followed(),
            shared: self.shared_stats.get(),
        }
    }

    /// Notes `role` (`ROLE_*`) in the entry and the ring's roles seen, once
    /// per process, taking the role first on a ring that allows one holder
    /// (`RoleTaken` if another live handle has it; see `handle::roles`);
    /// the caller has called `follow_fork`.
    #[inline(always)]
    pub(crate) fn note_role(&self, role: u32, core: &RingCore) -> Result<()> {
        if self.roles.get() & role == 0 {
            return self.note_new_role(role, core);
        }
        Ok(())
    }

    /// [`Registration::note_role`], calling `first` after noting a role
    /// this handle had not noted yet (in this process).
    #[inline(always)]
    pub(crate) fn note_role_then(
        &self,
        role: u32,
        core: &RingCore,
        first: impl FnOnce(),
    ) -> Result<()> {
        if self.roles.get() & role == 0 {
            self.note_new_role(role, core)?;
            first();
        }
        Ok(())
    }

    /// Whether this handle has noted `role` (in this process).
    pub(crate) fn has_role(&self, role: u32) -> bool {
        self.roles.get() & role != 0
    }

    #[cold]
    fn note_new_role(&self, role: u32, core: &RingCore) -> Result<()> {
        let entry = &self.entry_followed().id;
        if role == ROLE_SUBSCRIBER {
            self.join(core)?;
        }
        if roles::is_single(&self.segment, role) {
            // Noted before the claim, so that a rival reading our claim sees
            // a live holder (`handle::roles`).
            if !self.shared_stats.get() {
                entry.role.fetch_or(role, Ordering::Relaxed);
            }
            let claimed = roles::claim(
                &self.segment,
                core,
                self.index.get(),
                self.shared_stats.get(),
                role,
            );
            match claimed {
                Err(e) => {
                    if !self.shared_stats.get() {
                        entry.role.fetch_and(!role, Ordering::Relaxed);
                    }
                    return Err(e);
                }
                // A producer that did not give the role back may have died
                // halfway through publishing a run (`lockfree::single`).
                Ok(true) if role == ROLE_SENDER && roles::is_single(&self.segment, ROLE_RECEIVER) => {
                    let tombstone =
                        pack_meta(0, SlotKind::Tombstone, PriorityClass::Background as u8);
                    core.adopt_single_producer(tombstone);
                }
                // The same for a broadcast ring's publisher.
                Ok(true) if role == ROLE_SENDER && self.segment.max_subscribers() != 0 => {
                    let tombstone =
                        pack_meta(0, SlotKind::Tombstone, PriorityClass::Background as u8);
                    core.adopt_broadcast_publisher(tombstone);
                }
                Ok(_) => {}
            }
        }
        self.roles.set(self.roles.get() | role);
        entry.role.fetch_or(role, Ordering::Relaxed);
        // Relaxed: a hint for `peer::disconnected`, read after a sleep.
        core.ctrl()
            .roles_seen
            .value
            .fetch_or(role as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Joins the broadcast ring's subscribers, at the next message: the
    /// entry's cursor, then its role bit, which the publisher's scan reads
    /// (`lockfree::broadcast`, "subscriber joined"). One subscriber more
    /// than the ring admits leaves again with `TooManySubscribers` (two
    /// racing for the last place may both leave: rare, and they may retry).
    fn join(&self, core: &RingCore) -> Result<()> {
        if self.shared_stats.get() {
            return Err(RingError::NoEntryForRole {
                ring: self.segment.label().to_string(),
                role: "subscriber",
            });
        }
        let id = &self.entry_followed().id;
        core.join_broadcast(&id.cursor.value, || {
            // Release: the cursor before the bit, for the scan's Acquire.
            id.role.fetch_or(ROLE_SUBSCRIBER, Ordering::Release);
        });
        let limit = self.segment.max_subscribers();
        if broadcast::count(self.segment.participants()) > limit {
            id.role.fetch_and(!ROLE_SUBSCRIBER, Ordering::Release);
            return Err(broadcast::too_many(limit));
        }
        Ok(())
    }

    /// Whether this process is the one the entry is registered for (false
    /// in a forked child that has not used the handle).
    pub(crate) fn is_current_process(&self) -> bool {
        self.owner_pid.get() == process::current_pid()
    }

    /// Gives the single roles it holds back, the entry (its counters fold
    /// into the shared entry), then its mark.
    pub(crate) fn unregister(&self, core: &RingCore) {
        for role in [participant::ROLE_SENDER, participant::ROLE_RECEIVER] {
            if self.roles.get() & role != 0 && roles::is_single(&self.segment, role) {
                roles::release(core, self.index.get(), role);
            }
        }
        participant::unregister(self.segment.participants(), self.index.get());
        if !self.shared_stats.get() {
            self.lock.borrow().give_back(self.index.get());
        }
    }

    /// The description holding this handle's mark, for reaping other
    /// entries (see `participant::reap`).
    pub(crate) fn lock(&self) -> core::cell::Ref<'_, EntryLock> {
        self.lock.borrow()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Registration;
    use crate::handle::participant::ROLE_SENDER;
    use crate::shm::process::current_pid;
    use crate::handle::shared::SharedRing;
    use crate::shm::config::Config;
    use crate::shm::layout::MAX_PARTICIPANTS;
    use crate::shm::segment::Segment;

    fn shared() -> SharedRing {
        SharedRing::new(Arc::new(Segment::create_anonymous(&Config::new(8)).unwrap()))
    }

    /// Each registration takes an entry of its own, and gives it back.
    #[test]
    fn registrations_take_distinct_entries_and_give_them_back() {
        let ring = shared();
        let a = Registration::new(ring.segment(), ring.core());
        let b = Registration::new(ring.segment(), ring.core());
        let (ea, eb) = (a.caller(ring.core()), b.caller(ring.core()));
        assert!(!core::ptr::eq(ea.entry, eb.entry));
        assert_eq!((ea.pid, eb.pid), (current_pid(), current_pid()));
        assert_eq!(ea.entry.id.pid.load(crate::atomic::Ordering::Relaxed), current_pid());
        a.unregister(ring.core());
        let c = Registration::new(ring.segment(), ring.core());
        assert!(core::ptr::eq(c.caller(ring.core()).entry, ea.entry), "a's entry is free again");
        b.unregister(ring.core());
        c.unregister(ring.core());
    }

    /// A full table leaves later handles on the shared entry 0.
    #[test]
    fn a_full_table_shares_entry_zero() {
        let ring = shared();
        let regs: Vec<_> = (1..MAX_PARTICIPANTS)
            .map(|_| Registration::new(ring.segment(), ring.core()))
            .collect();
        let extra = Registration::new(ring.segment(), ring.core());
        assert!(extra.shared_stats.get());
        assert!(core::ptr::eq(
            extra.caller(ring.core()).entry,
            &ring.participants()[0]
        ));
        extra.unregister(ring.core());
        regs.iter().for_each(|r| r.unregister(ring.core()));
    }

    /// A role is noted once in the entry and in the ring's roles seen.
    #[test]
    fn a_role_is_noted_in_the_entry_and_the_ring() {
        let ring = shared();
        let r = Registration::new(ring.segment(), ring.core());
        r.follow_fork(ring.core());
        r.note_role(ROLE_SENDER, ring.core()).unwrap();
        let relaxed = crate::atomic::Ordering::Relaxed;
        assert_eq!(r.entry_followed().id.role.load(relaxed), ROLE_SENDER);
        assert_eq!(
            ring.core().ctrl().roles_seen.value.load(relaxed),
            ROLE_SENDER as u64
        );
        r.unregister(ring.core());
    }
}
