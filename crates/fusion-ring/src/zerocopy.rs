//! The zero-copy path's user types: [`Loan`] (a writable block a sender
//! fills in place) and [`Payload`] (a received message read in place).
//!
//! Both are views of arena blocks in shared memory. A block is owned by
//! reference count, so while a `Loan` or `Payload` lives, no well-behaved
//! process writes the bytes it shows. A hostile process mapping the segment
//! could still write them: then the bytes seen are garbage, which the
//! library never uses for anything but handing them to you.

use core::ptr::NonNull;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::error::{Result, RingError};
use crate::shm::process::current_pid;
use crate::handle::shared::notify_block_freed;
use crate::handle::wait::Waiting;
use crate::lockfree::event::Deadline;
use crate::lockfree::arena::{self, AllocError, Arena, Descriptor};
use crate::priority::PriorityClass;
use crate::ring::message::{Body, Outgoing, Received};
use crate::ring::Ring;
use crate::shm::layout::INLINE_MAX;
use crate::shm::segment::Segment;

/// A writable buffer inside the ring's shared memory: fill it in place,
/// then send it with no copy ([`crate::FusionRing::send_loan`]). Dropping an
/// unsent loan gives the block back.
///
/// A loan a forked child inherits stays its parent's: in the child,
/// dropping it gives nothing back and sending it sends a copy (the parent
/// still holds the block and gives it back itself).
///
/// ```
/// use fusion_ring::{FusionRing, PriorityClass};
/// let ring = FusionRing::new(64)?;
/// let mut loan = ring.loan(100_000)?;
/// loan.fill(0xAB);
/// loan[0] = 1;
/// ring.send_loan(loan, PriorityClass::Normal).map_err(|e| e.error)?;
/// let msg = ring.recv_zerocopy()?;
/// assert_eq!(msg.len(), 100_000);
/// assert_eq!((msg[0], msg[99_999]), (1, 0xAB));
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub struct Loan<'r> {
    ring: &'r Ring,
    desc: Descriptor,
    ptr: NonNull<u8>,
    /// The process that holds the block's reference (see [`Loan`]'s
    /// `Drop`): a forked child's copy of the loan is not its owner.
    pid: u32,
}

impl<'r> Loan<'r> {
    pub(crate) fn new(ring: &'r Ring, len: usize) -> Result<Self> {
        let arena = ring.arena().ok_or_else(|| RingError::InvalidConfig {
            field: "arena_bytes",
            value: 0,
            reason: format!(
                "ring {} has no zero-copy arena, so no loan of {len} bytes",
                ring.label()
            ),
        })?;
        let desc = ring
            .alloc_block(arena, len)
            .or_else(|e| match e {
                // Blocks every subscriber of a broadcast ring has read, or
                // blocks dead processes held, may make room.
                AllocError::Exhausted
                    if ring.release_passed_blocks() || ring.reclaimed_blocks_now_and_then() =>
                {
                    ring.alloc_block(arena, len)
                }
                e => Err(e),
            })
            .map_err(|e| match e {
                AllocError::TooLarge { max } => RingError::TooLarge { len, max },
                AllocError::Exhausted => RingError::ArenaExhausted { len },
            })?;
        if ring.is_broadcast() {
            // SYNC POINT "slot rewritten" (`ring::broadcast_engine`): a
            // subscriber still copying this block under an older message's
            // descriptor, that reads a byte written into it from here on,
            // then sees the generation bumped when it was freed (and the
            // mark of the slot that named it).
            crate::atomic::fence(crate::atomic::Ordering::Release);
        }
        let ptr = arena.payload_ptr(desc.offset);
        Ok(Loan {
            ring,
            desc,
            ptr,
            pid: current_pid(),
        })
    }

    /// Gives up ownership to a slot: the message now holds the reference.
    pub(crate) fn into_outgoing(self) -> Outgoing<'static> {
        let desc = self.desc;
        core::mem::forget(self);
        Outgoing::Block(desc)
    }

    pub(crate) fn descriptor(&self) -> Descriptor {
        self.desc
    }

    pub(crate) fn ring(&self) -> &'r Ring {
        self.ring
    }

    /// Whether this process holds the block's reference (false for the
    /// copy a forked child inherited).
    pub(crate) fn is_owned_here(&self) -> bool {
        self.pid == current_pid()
    }

    /// Shortens the message to `len` bytes (no effect if longer than now).
    pub fn truncate(&mut self, len: usize) {
        if len < self.desc.len as usize {
            self.desc.len = len as u32;
        }
    }
}

/// Sends a filled loan on `ring` (no copy); on failure the loan comes back.
///
/// A loan from another segment names a block of another arena, and a loan
/// a forked child inherited is its parent's to give (the parent still holds
/// the reference): either is copied into a loan of `ring`'s own (the
/// original is dropped once the copy is sent, which frees it, or does
/// nothing in the child).
/// Sends `data`: inline up to 40 bytes, else copied once into an arena
/// block. `Full` / `ArenaExhausted` / `TooLarge` leave the ring and the
/// arena as they were.
#[inline]
pub(crate) fn send_bytes(ring: &Ring, data: &[u8], priority: PriorityClass) -> Result<()> {
    if data.len() <= INLINE_MAX {
        return ring.send_inline_with(1, |_| (data, priority)).map(drop);
    }
    let max = ring.max_message();
    if data.len() > max {
        return Err(RingError::TooLarge {
            len: data.len(),
            max,
        });
    }
    let mut loan = Loan::new(ring, data.len())?;
    loan.copy_from_slice(data);
    send_loan(ring, loan, priority).map_err(|e| e.error)
}

/// [`send_bytes`], waiting for a block and then a slot until `deadline`
/// (`Timeout`: nothing was sent).
pub(crate) fn send_bytes_waiting(
ring: &Ring,
data: &[u8],
priority: PriorityClass,
deadline: Deadline,
) -> Result<()> {
    let retry = |r: Result<()>| match r {
        Err(RingError::Full | RingError::ArenaExhausted { .. }) => None,
        r => Some(r),
    };
    if data.len() <= INLINE_MAX {
        return ring.wait_for(Waiting::NotFull, deadline, || {
            retry(send_bytes(ring, data, priority))
        })?;
    }
    let max = ring.max_message();
    if data.len() > max {
        return Err(RingError::TooLarge { len: data.len(), max });
    }
    // A block first (copied into once), then a slot for it.
    let mut loan =
        ring
            .wait_for(Waiting::NotFull, deadline, || match Loan::new(ring, data.len()) {
                Err(RingError::ArenaExhausted { .. }) => None,
                r => Some(r),
            })??;
    loan.copy_from_slice(data);
    let mut pending = Some(loan);
    ring.wait_for(Waiting::NotFull, deadline, || {
        let loan = pending.take()?;
        match send_loan(ring, loan, priority) {
            Ok(()) => Some(Ok(())),
            Err(LoanError {
                error: RingError::Full,
                loan,
            }) => {
                pending = Some(loan);
                None
            }
            Err(e) => Some(Err(e.error)),
        }
    })?
}

#[inline]
pub(crate) fn send_loan<'r>(
    ring: &'r Ring,
    loan: Loan<'r>,
    priority: PriorityClass,
) -> std::result::Result<(), LoanError<'r>> {
    if !Arc::ptr_eq(loan.ring().segment(), ring.segment()) || !loan.is_owned_here() {
        let mut mine = match Loan::new(ring, loan.len()) {
            Ok(mine) => mine,
            Err(error) => return Err(LoanError { error, loan }),
        };
        mine.copy_from_slice(&loan);
        return match send_loan(ring, mine, priority) {
            Ok(()) => Ok(()),
            Err(e) => Err(LoanError {
                error: e.error,
                loan,
            }),
        };
    }
    let desc = loan.descriptor();
    match ring.send_with(1, |_| (Outgoing::Block(desc), priority)) {
        Ok(_) => {
            // The queued message now holds the block's reference.
            let _ = loan.into_outgoing();
            // Sized by its class: a truncated loan stays in its class.
            ring.refill_spare(arena::class_payload(desc.class as usize));
            Ok(())
        }
        Err(error) => Err(LoanError { error, loan }),
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the block was allocated for at least `desc.len` bytes inside
        // the mapping, which `ring` keeps alive; we hold its only reference.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.desc.len as usize) }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only view, and no
        // other owner of the block exists until it is sent.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.desc.len as usize) }
    }
}

impl Drop for Loan<'_> {
    /// Gives the block back, in the process that was lent it only: the copy
    /// of a loan in a forked child is inert, since the parent still holds
    /// (and will give back) the one reference there is.
    fn drop(&mut self) {
        if self.is_owned_here() {
            self.ring.release_block(self.desc.offset);
        }
    }
}

impl core::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Loan").field("len", &self.desc.len).finish()
    }
}

/// A loan that could not be sent, given back with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LoanError<'r> {
    /// Why it was not sent (e.g. `Full`).
    pub error: RingError,
    /// The loan, still yours: retry, or drop it to free the block.
    pub loan: Loan<'r>,
}

/// A received message, read in place: inline bytes, or a block of shared
/// memory that is given back when the last clone is dropped. Cloning is
/// cheap (a reference count), and a payload can be sent on again with no
/// copy ([`crate::FusionRing::forward`]). A payload a forked child inherits
/// stays its parent's: the child may read it, but dropping it there gives
/// nothing back (a clone made in the child is the child's own).
///
/// ```
/// use fusion_ring::{FusionRing, PriorityClass};
/// let ring = FusionRing::new(64)?;
/// ring.send(&[7u8; 5000])?;
/// let a = ring.recv_zerocopy()?;
/// let b = a.clone();
/// drop(a);
/// assert!(b.iter().all(|&x| x == 7));
/// assert_eq!(b.priority(), PriorityClass::Normal);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub struct Payload {
    inner: Inner,
    priority: PriorityClass,
    latency_cycles: u64,
}

enum Inner {
    Inline {
        data: [u8; INLINE_MAX],
        len: u8,
    },
    /// A broadcast ring's block, copied out for this receiver.
    Copied(Box<[u8]>),
    Shared {
        segment: Arc<Segment>,
        arena: Arena,
        desc: Descriptor,
        ptr: NonNull<u8>,
        /// The process holding this reference: a forked child's copy of
        /// the payload is not its owner and does not release it.
        pid: u32,
    },
}

// SAFETY: a Shared payload points into a mapping kept alive by the Arc; the
// block is reference counted with atomics, so it may move to and be read
// from another thread.
unsafe impl Send for Payload {}
// SAFETY: `&Payload` only gives `&[u8]` reads and atomic reference counting.
unsafe impl Sync for Payload {}

impl Payload {
    pub(crate) fn from_received(ring: &Ring, r: Received) -> Self {
        let inner = match r.body {
            Body::Inline(words) => {
                let mut data = [0u8; INLINE_MAX];
                crate::lockfree::protocol::unpack_payload_into(&words, &mut data[..r.len]);
                Inner::Inline {
                    data,
                    len: r.len as u8,
                }
            }
            // A broadcast ring's block, already copied out: its bytes are
            // this value's (shared zero-copy payloads are not built yet).
            Body::Copied(bytes) => Inner::Copied(bytes),
            Body::Block(desc) => {
                let arena = ring
                    .arena()
                    .expect("checked block implies an arena")
                    .clone();
                Inner::Shared {
                    segment: Arc::clone(ring.segment()),
                    ptr: arena.payload_ptr(desc.offset),
                    arena,
                    desc,
                    pid: current_pid(),
                }
            }
        };
        Payload {
            inner,
            priority: r.priority,
            latency_cycles: r.latency.unwrap_or(0),
        }
    }

    /// Its priority class.
    pub fn priority(&self) -> PriorityClass {
        self.priority
    }

    /// Ticks from send to receive (0 on a ring without timestamps).
    pub fn latency_cycles(&self) -> u64 {
        self.latency_cycles
    }

    /// Whether the bytes live in the shared arena (zero-copy) rather than
    /// in this value (inline).
    pub fn is_zerocopy(&self) -> bool {
        matches!(self.inner, Inner::Shared { .. })
    }

    /// The block to send on, if it is one of `segment`'s: takes a new
    /// reference for the new message.
    pub(crate) fn share_into(&self, segment: &Arc<Segment>) -> Option<Outgoing<'_>> {
        match &self.inner {
            Inner::Shared {
                segment: s,
                arena,
                desc,
                ..
            } if Arc::ptr_eq(s, segment) => {
                arena.retain(desc.offset);
                Some(Outgoing::Block(*desc))
            }
            _ => None,
        }
    }
}

impl Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Inline { data, len } => &data[..*len as usize],
            Inner::Copied(bytes) => bytes,
            // SAFETY: the block was checked to lie inside the arena with room
            // for `len` bytes; the Arc keeps the mapping alive and our
            // reference keeps well-behaved processes from reusing the block.
            Inner::Shared { ptr, desc, .. } => unsafe {
                core::slice::from_raw_parts(ptr.as_ptr(), desc.len as usize)
            },
        }
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Inner::Inline { data, len } => Inner::Inline {
                data: *data,
                len: *len,
            },
            Inner::Copied(bytes) => Inner::Copied(bytes.clone()),
            Inner::Shared {
                segment,
                arena,
                desc,
                ptr,
                ..
            } => {
                // A new reference, held by the process that clones.
                arena.retain(desc.offset);
                Inner::Shared {
                    segment: Arc::clone(segment),
                    arena: arena.clone(),
                    desc: *desc,
                    ptr: *ptr,
                    pid: current_pid(),
                }
            }
        };
        Payload {
            inner,
            priority: self.priority,
            latency_cycles: self.latency_cycles,
        }
    }
}

impl Drop for Payload {
    /// Drops the reference, in the process that holds it only (see `Loan`'s
    /// `Drop`: a forked child's copy is inert).
    fn drop(&mut self) {
        if let Inner::Shared {
            arena, desc, pid, ..
        } = &self.inner
        {
            if *pid != current_pid() {
                return;
            }
            if arena.release(desc.offset, *pid) {
                notify_block_freed(arena);
            }
        }
    }
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len())
            .field("priority", &self.priority)
            .field("zerocopy", &self.is_zerocopy())
            .finish()
    }
}
