//! The seeds' free functions over any ring type: `fits_inline`,
//! `send_inline`, `send_batch`, `allocate_zerocopy_buffer`, `send_zerocopy`.

use crate::priority::PriorityClass;
use crate::error::Result;
use crate::shm::layout::INLINE_MAX;
use crate::batch::BatchMessage;
use crate::ring::Ring;


/// Whether a message of `len` bytes travels inline.
///
/// ```
/// use fusion_ring::{fits_inline, INLINE_MAX};
/// assert!(fits_inline(0) && fits_inline(INLINE_MAX));
/// assert!(!fits_inline(INLINE_MAX + 1));
/// ```
#[inline(always)]
pub const fn fits_inline(len: usize) -> bool {
    len <= INLINE_MAX
}

/// Sends `data` (at most [`INLINE_MAX`] bytes) inline with
/// [`PriorityClass::Normal`].
///
/// ```
/// use fusion_ring::{fits_inline, send_inline, UltraFastRing};
/// let ring = UltraFastRing::new(16)?;
/// let data = b"tick 42";
/// if fits_inline(data.len()) {
///     send_inline(&ring, data)?;
/// }
/// assert_eq!(ring.as_ring().len(), 1);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub fn send_inline<R: AsRef<Ring>>(ring: &R, data: &[u8]) -> Result<()> {
    ring.as_ref()
        .send_inline_with(1, |_| (data, PriorityClass::Normal))
        .map(drop)
}

/// Sends a batch with one claim; returns how many messages were sent (all
/// of them unless the ring filled up: a prefix is sent, the rest are not).
/// Every message is checked before anything is sent: one too large gives
/// `TooLarge` and sends nothing. On a ring without an arena every message
/// must fit inline.
///
/// ```
/// use fusion_ring::{send_batch, BatchMessage, PriorityClass, UltraFastRing};
/// let ring = UltraFastRing::new(256)?;
/// let messages = [
///     BatchMessage::new(b"msg1", PriorityClass::Normal),
///     BatchMessage::new(b"msg2", PriorityClass::Normal),
///     BatchMessage::new(b"msg3", PriorityClass::RealTime),
/// ];
/// assert_eq!(send_batch(&ring, &messages)?, 3);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub fn send_batch<R: AsRef<Ring>>(ring: &R, messages: &[BatchMessage<'_>]) -> Result<usize> {
    crate::batch::send_mixed(ring.as_ref(), messages)
}

/// The seeds' `allocate_zerocopy_buffer`, in safe form: a writable block of
/// `len` bytes in the ring's arena (see [`crate::Loan`]).
///
/// ```
/// use fusion_ring::{allocate_zerocopy_buffer, send_zerocopy, FusionRing};
/// let ring = FusionRing::new(16)?;
/// let mut buf = allocate_zerocopy_buffer(&ring, 4096)?;
/// buf.copy_from_slice(&[9u8; 4096]);
/// send_zerocopy(&ring, buf).map_err(|e| e.error)?;
/// assert_eq!(ring.recv_zerocopy()?.len(), 4096);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub fn allocate_zerocopy_buffer<R: AsRef<Ring>>(ring: &R, len: usize) -> Result<crate::zerocopy::Loan<'_>> {
    crate::zerocopy::Loan::new(ring.as_ref(), len)
}

/// The seeds' `send_zerocopy`: sends a filled buffer with
/// [`PriorityClass::Normal`] and no copy; on failure the buffer comes back.
pub fn send_zerocopy<'r, R: AsRef<Ring>>(
    ring: &'r R,
    loan: crate::zerocopy::Loan<'r>,
) -> std::result::Result<(), crate::zerocopy::LoanError<'r>> {
    crate::zerocopy::send_loan(ring.as_ref(), loan, PriorityClass::Normal)
}
