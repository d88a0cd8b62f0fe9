//! The messages of a packed slot that a receive took but had no room for.
//!
//! A packed slot (`ring::packed`) holds several messages, and a receive
//! takes a slot whole. Its claim takes no more messages than the caller
//! asked for, except from the first slot, which it takes whatever it
//! holds: the records of that slot the call has no room for wait here, in
//! the handle, and the next receive on the handle returns them first, in
//! order. They have left the ring (its `head - tail` no longer counts
//! them, and its stats counted them as received when they were taken).
//!
//! They belong to the process that took them: a forked child's copy of
//! the handle drops them unread (its parent delivers them).

use core::cell::Cell;

use crate::priority::PriorityClass;
use crate::shm::process::current_pid;

use super::message::{Body, Received};
use super::packed::Records;

/// What is left of one packed slot, in the handle that took it.
#[derive(Default)]
pub(crate) struct Carry {
    /// Whether records wait: one byte to test on every receive.
    waiting: Cell<bool>,
    /// The slot's remaining records.
    slot: Cell<Option<Carried>>,
}

#[derive(Clone, Copy)]
struct Carried {
    records: Records,
    priority: PriorityClass,
    latency: Option<u64>,
    /// The process that took them.
    pid: u32,
}

impl Carry {
    /// Whether messages wait (they come before the ring's).
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        !self.waiting.get()
    }

    /// Keeps the rest of a packed slot's records; `false` (nothing kept)
    /// if records already wait, which only a peer scribbling a slot's
    /// count while it is received can cause.
    pub(crate) fn keep(
        &self,
        records: Records,
        priority: PriorityClass,
        latency: Option<u64>,
    ) -> bool {
        if records.is_empty() {
            return true;
        }
        if !self.is_empty() {
            return false;
        }
        self.slot.set(Some(Carried {
            records,
            priority,
            latency,
            pid: current_pid(),
        }));
        self.waiting.set(true);
        true
    }

    /// The oldest waiting message if it is at most `limit` bytes long
    /// (`Err(needed)` if longer: it stays), `Ok(None)` if none waits for
    /// this process.
    pub(crate) fn pop(&self, limit: Option<usize>) -> Result<Option<Received>, usize> {
        let Some(mut c) = self.slot.take() else {
            return Ok(None);
        };
        self.waiting.set(false);
        if c.pid != current_pid() {
            // A forked child: these are its parent's to deliver.
            return Ok(None);
        }
        let needed = c.records.peek_len();
        if limit.is_some_and(|l| needed > l) {
            self.slot.set(Some(c));
            self.waiting.set(true);
            return Err(needed);
        }
        let (words, len) = c.records.next_words().expect("a kept slot has records left");
        if !c.records.is_empty() {
            self.slot.set(Some(c));
            self.waiting.set(true);
        }
        Ok(Some(Received {
            body: Body::Inline(words),
            len,
            priority: c.priority,
            latency: c.latency,
        }))
    }
}
