//! Where a batch receive puts the messages it takes.

use crate::priority::PriorityClass;

use super::message::{Body, Received};
use super::packed::Records;

/// The receiver of a batch receive's messages, in order.
pub(crate) trait Sink {
    /// Takes one message.
    fn message(&mut self, r: Received);

    /// Takes up to `room` messages of a packed slot, all of one class and
    /// latency; returns how many it took and their bytes. The default
    /// hands each to [`Sink::message`]; a sink that can copy the records
    /// straight to where they go does better (`InlineSink`).
    #[inline]
    fn packed(
        &mut self,
        records: &mut Records,
        priority: PriorityClass,
        latency: Option<u64>,
        room: usize,
    ) -> (usize, usize) {
        let (mut taken, mut bytes) = (0, 0);
        while taken < room {
            let Some((words, len)) = records.next_words() else {
                break;
            };
            self.message(Received {
                body: Body::Inline(words),
                len,
                priority,
                latency,
            });
            taken += 1;
            bytes += len;
        }
        (taken, bytes)
    }
}

impl<F: FnMut(Received)> Sink for F {
    #[inline(always)]
    fn message(&mut self, r: Received) {
        self(r)
    }
}
