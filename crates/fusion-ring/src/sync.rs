//! Blocking: event counts on futex words in the segment ([`RingSync`]).
//!
//! Each direction has an [`EventCount`]: a 32-bit futex word `seq` and a
//! count of announced `waiters`. The protocol, for a receiver waiting for a
//! message (a sender waiting for a free slot is the mirror image):
//!
//! ```text
//! waiter                                  producer
//! 1. if ready(): done (spin a little)      a. publish the slot
//! 2. key = seq                             b. fence(SeqCst)
//! 3. waiters += 1                          c. if waiters > 0:
//! 4. fence(SeqCst)                              seq += 1; FUTEX_WAKE(seq)
//! 5. if ready(): waiters -= 1; done
//! 6. FUTEX_WAIT(seq, key) (sleeps only if seq == key)
//! 7. waiters -= 1; go to 1
//! ```
//!
//! Why no wake-up is lost: steps 3-4-5 and a-b-c form the store-buffering
//! pattern with a `SeqCst` fence on each side, so at least one side sees the
//! other's store: either the producer sees `waiters > 0` (c) or the waiter
//! sees the message (5). In the first case the producer bumps `seq` before
//! waking; the waiter read `key` (2) before announcing (3), so if the bump
//! comes before the waiter's `FUTEX_WAIT`, the kernel sees `seq != key` and
//! returns at once; if it comes after, the waiter is on the futex queue and
//! the `FUTEX_WAKE` finds it. The kernel's check of `seq == key` and the
//! enqueue are atomic with respect to `FUTEX_WAKE` on the same word.
//!
//! Cost: a producer that finds no waiter makes no syscall (a busy stream
//! makes none at all). The fence is paid only on rings created with
//! wake-ups (`Config::wakeups`, the default for `FusionRing`); a single
//! publish or release makes its store a `SeqCst` swap instead and skips
//! the fence (one `xchg` on x86 against an `mfence`, about 12 against 35
//! TSC ticks here), see [`notify_after_seqcst`]; batches store with
//! `Release` and pay one fence for the whole batch.
//!
//! Futex words are used without `FUTEX_PRIVATE_FLAG`, so waiters and wakers
//! may be in different processes mapping the same segment. Sleeps are cut
//! into slices of at most [`SLEEP_SLICE`]: a waiter re-checks its condition
//! (and its deadline) at least that often, so even a peer that never wakes
//! it (one that died, or a ring created without wake-ups) cannot make it
//! sleep forever past its deadline.

use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::atomic::{fence, Ordering};
use crate::layout::EventCount;
use crate::{Result, Ring, RingError};

/// Spins before announcing and sleeping.
const SPIN_ROUNDS: u32 = 200;
/// Longest single futex sleep; see the module docs.
pub(crate) const SLEEP_SLICE: Duration = Duration::from_millis(20);

/// Waits until `ready()` holds, or `deadline` passes (`Timeout`).
pub(crate) fn wait_until(
    ec: &EventCount,
    deadline: Option<Instant>,
    max_sleep: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    for _ in 0..SPIN_ROUNDS {
        if ready() {
            return Ok(());
        }
        std::hint::spin_loop();
    }
    loop {
        // Acquire: pairs with the waker's Release bump (step c), ordering
        // this key after any bump that the key reflects.
        let key = ec.seq.load(Ordering::Acquire);
        ec.waiters.fetch_add(1, Ordering::Relaxed);
        // Step 4: the SeqCst fence of the store-buffering pair (module docs).
        fence(Ordering::SeqCst);
        if ready() {
            ec.waiters.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        let slice = match deadline {
            None => max_sleep,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    ec.waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(RingError::Timeout);
                }
                left.min(max_sleep)
            }
        };
        let ts = futex::Timespec {
            tv_sec: slice.as_secs() as i64,
            tv_nsec: slice.subsec_nanos() as i64,
        };
        // EAGAIN (seq moved), ETIMEDOUT and EINTR all mean "look again".
        let _ = futex::wait(&ec.seq, futex::Flags::empty(), key, Some(&ts));
        ec.waiters.fetch_sub(1, Ordering::Relaxed);
        if ready() {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(RingError::Timeout);
        }
    }
}

/// The waker's side (steps b and c), after the caller made its change.
#[inline(always)]
pub(crate) fn notify(ec: &EventCount) {
    // Step b: the SeqCst fence of the store-buffering pair (module docs).
    fence(Ordering::SeqCst);
    // Relaxed: ordered by the fence above.
    if ec.waiters.load(Ordering::Relaxed) != 0 {
        wake_all(ec);
    }
}

/// The waker's side when the change itself was a `SeqCst` read-modify-write
/// (a single publish or release, see `RingCore::publish`): step b is then
/// that RMW, and a `SeqCst` load of `waiters` completes the pair. If the
/// load comes before the waiter's announcement in the single total order,
/// the RMW does too, and so precedes the waiter's fence: its `ready()` check
/// then sees the change ([atomics.order], fence rule).
#[inline(always)]
pub(crate) fn notify_after_seqcst(ec: &EventCount) {
    let waiters = if cfg!(fusion_ring_loom) {
        // Under loom the RMW was a store + SeqCst fence (see store_seq).
        ec.waiters.load(Ordering::Relaxed)
    } else {
        ec.waiters.load(Ordering::SeqCst)
    };
    if waiters != 0 {
        wake_all(ec);
    }
}

/// Bumps the event count and wakes every sleeper (a syscall).
#[cold]
pub(crate) fn wake_all(ec: &EventCount) {
    // Release: pairs with the waiter's Acquire load of its key.
    ec.seq.fetch_add(1, Ordering::Release);
    let _ = futex::wake(&ec.seq, futex::Flags::empty(), i32::MAX as u32);
}

/// Longest single sleep when polling a ring made without wake-ups.
const POLL_SLICE: Duration = Duration::from_micros(200);

/// Waits on `ec` until `ready()`; on a ring without wake-ups nobody
/// signals, so sleeps are short polls.
pub(crate) fn wait_on(
    ring: &Ring,
    ec: &EventCount,
    deadline: Option<Instant>,
    ready: impl FnMut() -> bool,
) -> Result<()> {
    let slice = if ring.has_wakeups() {
        SLEEP_SLICE
    } else {
        POLL_SLICE
    };
    wait_until(ec, deadline, slice, ready)
}

/// The blocking primitives of a ring (the seeds' `RingSync`): wait until
/// it is not empty / not full, and wake the other side by hand. Works
/// across processes: the futex words live in the ring's segment.
///
/// `FusionRing`'s blocking calls use it; it is public for callers that
/// build their own loops over the non-blocking ones.
///
/// ```
/// use std::time::Duration;
/// use fusion_ring::{FusionRing, RingError, RingSync};
/// let ring = FusionRing::new(8)?;
/// let sync = RingSync::new(&ring);
/// assert_eq!(sync.wait_not_empty_timeout(Duration::from_millis(5)), Err(RingError::Timeout));
/// ring.send(b"wake up")?;
/// sync.wait_not_empty()?;
/// sync.wait_not_full()?;
/// sync.wake_readers();
/// # Ok::<(), RingError>(())
/// ```
pub struct RingSync<'r> {
    ring: &'r Ring,
}

impl<'r> RingSync<'r> {
    /// The blocking primitives of `ring`.
    pub fn new<R: AsRef<Ring>>(ring: &'r R) -> Self {
        RingSync {
            ring: ring.as_ref(),
        }
    }

    fn not_empty(&self) -> &EventCount {
        &self.ring.sync_block().not_empty.value
    }

    fn not_full(&self) -> &EventCount {
        &self.ring.sync_block().not_full.value
    }

    /// Blocks until a message is ready to be received.
    pub fn wait_not_empty(&self) -> Result<()> {
        wait_on(self.ring, self.not_empty(), None, || self.ring.readable())
    }

    /// Like [`RingSync::wait_not_empty`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_empty_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, self.not_empty(), Some(deadline), || {
            self.ring.readable()
        })
    }

    /// Blocks until a slot is free.
    pub fn wait_not_full(&self) -> Result<()> {
        wait_on(self.ring, self.not_full(), None, || self.ring.writable())
    }

    /// Like [`RingSync::wait_not_full`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_full_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, self.not_full(), Some(deadline), || {
            self.ring.writable()
        })
    }

    /// Wakes every receiver sleeping on this ring (one syscall).
    pub fn wake_readers(&self) {
        wake_all(self.not_empty());
    }

    /// Wakes every sender sleeping on this ring (one syscall).
    pub fn wake_writers(&self) {
        wake_all(self.not_full());
    }

    /// Waits until `attempt` stops reporting "not yet" (`None`): the
    /// building block of the blocking calls.
    pub(crate) fn not_empty_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, &ring.sync_block().not_empty.value, deadline, attempt)
    }

    pub(crate) fn not_full_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, &ring.sync_block().not_full.value, deadline, attempt)
    }

    fn until<T>(
        ring: &Ring,
        ec: &EventCount,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let mut out = None;
        wait_on(ring, ec, deadline, || {
            out = attempt();
            out.is_some()
        })?;
        Ok(out.expect("ready means attempt returned Some"))
    }
}
