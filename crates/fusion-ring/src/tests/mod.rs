//! Unit tests of the handle layer that need the whole library: they drive
//! it through the public ring types and look at crate-private state (which
//! integration tests cannot). Each file names the module it tests.

mod batches;
mod broadcast;
#[cfg(not(miri))] // heap segments have no file to lock
mod liveness;
mod peer;
mod roles;
mod spares;
mod stats;

/// Plays a producer that died holding the producer role of `ring` (a
/// single-producer ring, or a broadcast ring's publisher), having published
/// only the second slot of a run of two at positions 0 and 1 ("late",
/// class High) and not its head: an entry registered without a mark, with
/// the role noted and the holder word naming it.
fn plant_dead_producer_with_half_a_run(ring: &crate::Ring) {
    use crate::atomic::Ordering;
    use crate::handle::participant::{self, ROLE_SENDER};
    use crate::lockfree::protocol::pack_payload;
    use crate::shm::layout::{pack_meta, SlotKind};
    use crate::shm::liveness::EntryLock;
    use crate::PriorityClass;

    let entries = ring.segment().participants();
    let core = ring.core();
    let (dead, _) = participant::register(entries, &EntryLock::Pids);
    entries[dead].id.role.store(ROLE_SENDER, Ordering::Relaxed);
    if cfg!(miri) {
        let other = crate::shm::process::current_pid() + 1;
        entries[dead].id.pid.store(other, Ordering::Relaxed);
    }
    core.ctrl()
        .producer_holder
        .value
        .store(dead as u64 + 1, Ordering::Relaxed);
    let meta = pack_meta(4, SlotKind::Inline, PriorityClass::High as u8);
    core.publish(1, 0, meta, &pack_payload(b"late"), false);
}
