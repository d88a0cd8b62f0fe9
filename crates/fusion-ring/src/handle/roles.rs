//! Single roles: a ring created with `Config::single_producer` (or
//! `single_consumer`) lets one handle at a time send (receive), in any
//! process. The holder is recorded in the control block as its participant
//! entry's index + 1; a handle takes the role on its first send (receive,
//! `Registration::note_role`, the cold path) and gives it back when it is
//! dropped.
//!
//! A recorded holder counts while its entry is in use, alive (its
//! liveness mark is held, `shm::liveness`) and has the role noted: the
//! word of a handle that died, or whose entry was reaped and taken by a
//! handle that never claimed the role, is stale and taken over with a CAS.
//! A claimer notes the role in its entry *before* its CAS, so a rival that
//! reads the word (Acquire, pairing with the CAS's Release) sees the role
//! noted and does not take a live holder's word for stale.

use crate::atomic::{AtomicU64, Ordering};
use crate::error::{Result, RingError};
use crate::handle::participant::{IN_USE, ROLE_RECEIVER, ROLE_SENDER};
use crate::lockfree::protocol::RingCore;
use crate::shm::layout::{FLAG_SINGLE_CONSUMER, FLAG_SINGLE_PRODUCER, MAX_PARTICIPANTS};
use crate::shm::segment::Segment;

/// Whether the ring lets one handle at a time have `role` (`ROLE_*`).
pub(crate) fn is_single(segment: &Segment, role: u32) -> bool {
    let flag = match role {
        ROLE_SENDER => FLAG_SINGLE_PRODUCER,
        ROLE_RECEIVER => FLAG_SINGLE_CONSUMER,
        _ => return false,
    };
    segment.flags() & flag != 0
}

fn name(role: u32) -> &'static str {
    if role == ROLE_SENDER {
        "producer"
    } else {
        "consumer"
    }
}

fn word(core: &RingCore, role: u32) -> &AtomicU64 {
    let ctrl = core.ctrl();
    if role == ROLE_SENDER {
        &ctrl.producer_holder.value
    } else {
        &ctrl.consumer_holder.value
    }
}

/// The entry index a holder word names, if it names a live holder of
/// `role`; `None` for none, a stale word or a scribbled one.
fn live_holder(segment: &Segment, role: u32, word: u64) -> Option<usize> {
    let index = usize::try_from(word.checked_sub(1)?).ok()?;
    let e = segment.participants().get(index).filter(|_| index < MAX_PARTICIPANTS)?;
    // Acquire: the entry's role and identity after its state (as
    // `participant::registered`).
    let counts = index != 0
        && e.id.state.load(Ordering::Acquire) == IN_USE
        && e.id.role.load(Ordering::Relaxed) & role != 0
        && segment.entry_alive(index, &e.id);
    counts.then_some(index)
}

/// The pid of the live holder of `role`, for tools.
pub(crate) fn holder_pid(segment: &Segment, core: &RingCore, role: u32) -> Option<u32> {
    let w = word(core, role).load(Ordering::Acquire);
    live_holder(segment, role, w)
        .map(|i| segment.participants()[i].id.pid.load(Ordering::Relaxed))
}

/// Takes `role` for the handle of entry `me` (`shared`: the shared entry 0,
/// which cannot hold it), which has noted the role in its entry already.
/// `Ok(true)` if it took the role over from a holder that did not give it
/// back (dead, or a stale or scribbled word).
pub(crate) fn claim(
    segment: &Segment,
    core: &RingCore,
    me: usize,
    shared: bool,
    role: u32,
) -> Result<bool> {
    if shared {
        return Err(RingError::NoEntryForRole {
            ring: segment.label().to_string(),
            role: name(role),
        });
    }
    let mine = me as u64 + 1;
    let holder = word(core, role);
    // Acquire: pairs with a claimer's Release CAS, so its noted role is
    // seen (module docs).
    let mut seen = holder.load(Ordering::Acquire);
    loop {
        if seen == mine {
            return Ok(false);
        }
        if let Some(index) = live_holder(segment, role, seen) {
            return Err(RingError::RoleTaken {
                ring: segment.label().to_string(),
                role: name(role),
                holder_pid: segment.participants()[index]
                    .id
                    .pid
                    .load(Ordering::Relaxed),
            });
        }
        // None or stale: take it. AcqRel: Release publishes our noted role
        // to the next reader of the word; Acquire as the load above.
        match holder.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(seen != 0),
            Err(now) => seen = now,
        }
    }
}

/// Gives `role` back if the handle of entry `me` holds it (when it is
/// dropped).
pub(crate) fn release(core: &RingCore, me: usize, role: u32) {
    // Release: what the holder did happens before the next claimer's
    // Acquire load of the word.
    let _ = word(core, role).compare_exchange(
        me as u64 + 1,
        0,
        Ordering::Release,
        Ordering::Relaxed,
    );
}
