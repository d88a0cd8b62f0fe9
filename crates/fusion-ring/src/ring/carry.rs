//! Messages a receive took from the ring but had no room to return.
//!
//! A packed slot (`ring::packed`) holds several messages, and a receive
//! takes a slot whole: the records a call has no room for (and the slots it
//! claimed after them) wait here, in the handle, and the next receive on
//! the handle returns them first, in order. They have left the ring: the
//! ring's `head - tail` no longer counts them, and its stats counted them
//! as received when they were taken.
//!
//! They belong to the process that took them. A forked child's copy of the
//! handle drops them unread (its parent delivers them), and a block among
//! them is released by the handle's drop, or by the peer-death machinery if
//! the process dies (the block was taken in its name).

use core::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::shm::process::current_pid;

use super::message::Received;

/// The handle's queue of taken, undelivered messages.
#[derive(Default)]
pub(crate) struct Carry {
    items: RefCell<VecDeque<Received>>,
    /// How many wait: a plain load on the receive fast path.
    len: Cell<usize>,
    /// The process that took them.
    pid: Cell<u32>,
}

impl Carry {
    /// Whether messages wait (they come before the ring's).
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Keeps `r` for a later receive, after those already kept.
    pub(crate) fn push(&self, r: Received) {
        if self.is_empty() {
            self.pid.set(current_pid());
        }
        self.items.borrow_mut().push_back(r);
        self.len.set(self.len.get() + 1);
    }

    /// The oldest kept message if it is at most `limit` bytes long
    /// (`Err(needed)` if longer: it stays), `Ok(None)` if none is kept for
    /// this process.
    pub(crate) fn pop(&self, limit: Option<usize>) -> Result<Option<Received>, usize> {
        if self.is_empty() {
            return Ok(None);
        }
        if self.pid.get() != current_pid() {
            // A forked child: these are its parent's to deliver.
            self.items.borrow_mut().clear();
            self.len.set(0);
            return Ok(None);
        }
        let mut items = self.items.borrow_mut();
        let front = items.front().expect("len counts the items");
        if limit.is_some_and(|l| front.len > l) {
            return Err(front.len);
        }
        self.len.set(self.len.get() - 1);
        Ok(items.pop_front())
    }

    /// Empties the queue, giving each message that the current process
    /// took to `each` (the handle's drop releases their blocks).
    pub(crate) fn drain(&self, mut each: impl FnMut(Received)) {
        if self.is_empty() {
            return;
        }
        let mine = self.pid.get() == current_pid();
        self.len.set(0);
        for r in self.items.borrow_mut().drain(..) {
            if mine {
                each(r);
            }
        }
    }
}
