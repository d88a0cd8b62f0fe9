//! The subscribers of a broadcast ring, as the participant table holds
//! them: a subscriber is a registered handle whose entry has the
//! `ROLE_SUBSCRIBER` bit, and its cursor is the entry's `cursor` line
//! (`lockfree::broadcast` for the protocol over them).
//!
//! A subscriber that dies keeps its entry, and so its cursor gates the
//! publisher, until its entry is reaped (`peer::reap_dead`, which a
//! publisher stalled on a full ring runs now and then, as a blocked call
//! does): its mark is the test of life, so this works across pid
//! namespaces like the rest of the table.

use crate::atomic::Ordering;
use crate::error::RingError;
use crate::handle::participant::{IN_USE, ROLE_SUBSCRIBER, SHARED_ENTRY};
use crate::lockfree::broadcast::gating_cursor;
use crate::shm::layout::{ParticipantEntry, MAX_PARTICIPANTS};

/// The entries that are subscribers now (entry 0 never is).
fn subscribers(entries: &[ParticipantEntry]) -> impl Iterator<Item = &ParticipantEntry> {
    entries
        .iter()
        .take(MAX_PARTICIPANTS)
        .skip(SHARED_ENTRY + 1)
        // Acquire: the role and the cursor after the state (as
        // `participant::registered`); the role's Release store in `join`
        // orders the cursor before it.
        .filter(|e| {
            e.id.state.load(Ordering::Acquire) == IN_USE
                && e.id.role.load(Ordering::Acquire) & ROLE_SUBSCRIBER != 0
        })
}

/// The publisher's scan at position `pos`: the smallest cursor of the
/// subscribers (`Ok(None)`: none), each counted at most a ring behind
/// (`gating_cursor`), or `Err(cursor)` for a cursor that no subscriber can
/// have (ahead of `pos`; only a scribbler writes one). Reads one line per
/// entry.
pub(crate) fn slowest(
    entries: &[ParticipantEntry],
    pos: u64,
    capacity: u64,
) -> Result<Option<u64>, u64> {
    let mut min: Option<u64> = None;
    for e in subscribers(entries) {
        // Acquire: SYNC POINT "run free" (pairs with the subscriber's
        // Release store of its cursor, `RingCore::release_single_on`).
        let c = gating_cursor(e.id.cursor.value.load(Ordering::Acquire), pos, capacity)?;
        min = Some(min.map_or(c, |m| m.min(c)));
    }
    Ok(min)
}

/// How many subscribers the ring has now.
pub(crate) fn count(entries: &[ParticipantEntry]) -> usize {
    subscribers(entries).count()
}

/// The error for one subscriber more than `limit`.
pub(crate) fn too_many(limit: usize) -> RingError {
    RingError::TooManySubscribers { limit }
}
