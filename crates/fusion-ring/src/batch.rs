//! Batches of mixed sizes: [`BatchMessage`], and sending many with one
//! claim per chunk.

use crate::error::{Result, RingError};
use crate::lockfree::arena::Descriptor;
use crate::priority::PriorityClass;
use crate::ring::message::Outgoing;
use crate::ring::Ring;
use crate::shm::layout::INLINE_MAX;
use crate::zerocopy::Loan;

/// One message of a batch: bytes and priority class.
///
/// ```
/// use fusion_ring::{BatchMessage, PriorityClass};
/// let m = BatchMessage::new(b"msg1", PriorityClass::Normal);
/// assert_eq!(m.data(), b"msg1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMessage<'a> {
    data: &'a [u8],
    priority: PriorityClass,
}

impl<'a> BatchMessage<'a> {
    /// A batch entry.
    pub const fn new(data: &'a [u8], priority: PriorityClass) -> Self {
        Self { data, priority }
    }
    /// Its bytes.
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Its priority class.
    pub const fn priority(&self) -> PriorityClass {
        self.priority
    }
}

/// Sends a batch of mixed sizes with one claim per chunk of 64: blocks
/// for the large messages are taken and filled first. Returns how many
/// were sent (a prefix if the ring or arena filled up).
pub(crate) fn send_mixed(ring: &Ring, messages: &[BatchMessage<'_>]) -> Result<usize> {
    const CHUNK: usize = 64;
    let max = ring.max_message();
    if let Some(m) = messages.iter().find(|m| m.data().len() > max) {
        return Err(RingError::TooLarge {
            len: m.data().len(),
            max,
        });
    }
    let mut sent = 0;
    for chunk in messages.chunks(CHUNK) {
        let mut blocks: [Option<Descriptor>; CHUNK] = [None; CHUNK];
        let give_back = |blocks: &[Option<Descriptor>]| {
            for d in blocks.iter().flatten() {
                ring.release_block(d.offset);
            }
        };
        for (i, m) in chunk.iter().enumerate() {
            if m.data().len() <= INLINE_MAX {
                continue;
            }
            match Loan::new(ring, m.data().len()) {
                Ok(mut loan) => {
                    loan.copy_from_slice(m.data());
                    blocks[i] = Some(loan.descriptor());
                    let _ = loan.into_outgoing();
                }
                Err(e) => {
                    // Send the prefix before the message that found no
                    // block; report the error only if nothing went.
                    let n = ring
                        .send_with(i, |k| {
                            (
                                Outgoing::inline_or(blocks[k], chunk[k].data()),
                                chunk[k].priority(),
                            )
                        })
                        .unwrap_or(0);
                    give_back(&blocks[n..i]);
                    sent += n;
                    return if sent == 0 { Err(e) } else { Ok(sent) };
                }
            }
        }
        let n = match ring.send_with(chunk.len(), |k| {
            let out = match blocks[k] {
                Some(d) => Outgoing::Block(d),
                None => Outgoing::Inline(chunk[k].data()),
            };
            (out, chunk[k].priority())
        }) {
            Ok(n) => n,
            Err(e) => {
                give_back(&blocks[..chunk.len()]);
                return if sent == 0 { Err(e) } else { Ok(sent) };
            }
        };
        give_back(&blocks[n..chunk.len()]);
        sent += n;
        if n < chunk.len() {
            break;
        }
    }
    Ok(sent)
}
