//! The event count: the wait / wake protocol on a futex word in the segment.
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
//! # Wakers without a fence (asymmetric barriers)
//! A stream that never sleeps still paid step b on every message. Where the
//! kernel has `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (Linux 4.16+),
//! every process that maps a ring registers for it
//! ([`register_light_wakers`]); its wakers then make step b a compiler
//! fence only ([`notify_light`]: a plain store, then a plain load), and
//! each waiter, between steps 4 and 5, makes the kernel run a full barrier
//! on every CPU that runs a thread of a registered process
//! ([`heavy_barrier`], ~0.4 us, paid only on the way to sleep). For each
//! waker, that barrier falls either after its publish (which step 5 then
//! sees) or before its load of `waiters` (which then sees step 3): the
//! store-buffering pair again, the fence moved from the fast side to the
//! slow one (as liburcu and folly's `asymmetricHeavyBarrier` do). A thread
//! not running at that moment passed a full barrier when it was switched
//! out. A process whose registration fails keeps fencing
//! ([`light_wakers`] is false there); a waiter whose `membarrier` call
//! fails (a seccomp filter in its process alone) may sleep one slice
//! ([`SLEEP_SLICE`]) past a wake-up. Loom and Miri run the fenced path.
//!
//! Futex words are used without `FUTEX_PRIVATE_FLAG`, so waiters and wakers
//! may be in different processes mapping the same segment. Sleeps are cut
//! into slices of at most [`SLEEP_SLICE`]: a waiter re-checks its condition
//! (and its deadline) at least that often, so even a peer that never wakes
//! it (one that died, or a ring created without wake-ups) cannot make it
//! sleep forever past its deadline.

use std::time::{Duration, Instant};

use crate::atomic::{fence, Ordering};
use crate::error::{Result, RingError};
use crate::shm::layout::EventCount;

/// How long a waiter spins before it announces itself and sleeps.
///
/// A futex wake-up takes ~30 us on the KVM guests measured (the `blocking`
/// row of `fring bench`), so a waiter that sleeps through a shorter gap
/// pays more than it saves: with 200 rounds (~7 us) of spinning, a
/// copying 1 MiB stream (26 us a message) slept and was woken on every
/// message, at 0.50-0.58x memcpy into two buffers; spinning up to 30 or
/// 60 us, 0.82-0.89x (2 `fring bench --quick` runs each, AMD EPYC guest).
/// The cost bound: a waiter burns at most this much CPU per wait, 1% of a
/// core for a stream of one message every 5 ms.
const SPIN_FOR: Duration = Duration::from_micros(50);

/// Spins until `ready()` or [`SPIN_FOR`] has passed; true if ready. Under
/// loom: not at all (the model explores the sleeping path).
fn spin(ready: &mut impl FnMut() -> bool) -> bool {
    if cfg!(fusion_ring_loom) {
        return false;
    }
    let start = Instant::now();
    loop {
        // The clock is read once per 16 looks (a vDSO call each).
        for _ in 0..16 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN_FOR {
            return false;
        }
    }
}
/// Longest single futex sleep; see the module docs.
pub(crate) const SLEEP_SLICE: Duration = Duration::from_millis(5);

/// When a blocking call gives up: the one deadline type behind every
/// `_blocking`, `_timeout(Duration)` and `_deadline(Instant)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// No limit.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// At `instant`.
    pub(crate) fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    /// `timeout` from now; no limit if that instant is past what `Instant`
    /// can hold (a timeout of `Duration::MAX` waits forever, not panics).
    pub(crate) fn after(timeout: Duration) -> Self {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// Time left, `None` without a limit (zero once passed).
    fn left(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether it has passed.
    pub(crate) fn passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }
}

/// Waits until `ready()` holds, or `deadline` passes (`Timeout`), or
/// `after_sleep` (called after every sleep that did not make the caller
/// ready) gives up with an error.
pub(crate) fn wait_until(
    ec: &EventCount,
    deadline: Deadline,
    max_sleep: Duration,
    mut ready: impl FnMut() -> bool,
    mut after_sleep: impl FnMut() -> Result<()>,
) -> Result<()> {
    if spin(&mut ready) {
        return Ok(());
    }
    loop {
        // Acquire: pairs with the waker's Release bump (step c), ordering
        // this key after any bump that the key reflects.
        let key = ec.seq.load(Ordering::Acquire);
        ec.waiters.fetch_add(1, Ordering::Relaxed);
        // Step 4: the SeqCst fence of the store-buffering pair (module docs),
        // and the barrier that stands in for the light wakers' fences.
        fence(Ordering::SeqCst);
        heavy_barrier();
        if ready() {
            ec.waiters.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        let slice = match deadline.left() {
            None => max_sleep,
            Some(left) => {
                if left.is_zero() {
                    ec.waiters.fetch_sub(1, Ordering::Relaxed);
                    return Err(RingError::Timeout);
                }
                left.min(max_sleep)
            }
        };
        futex_wait(ec, key, slice);
        ec.waiters.fetch_sub(1, Ordering::Relaxed);
        if ready() {
            return Ok(());
        }
        after_sleep()?;
        if deadline.passed() {
            return Err(RingError::Timeout);
        }
    }
}

/// Whether this process registered for [`heavy_barrier`]s (see the module
/// docs): its wakers may then use [`notify_light`]. Relaxed: a flag this
/// process sets once (again in a forked child), read on every send.
#[cfg(not(any(fusion_ring_loom, miri)))]
static LIGHT_WAKERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The process that registered (a forked child registers again).
#[cfg(not(any(fusion_ring_loom, miri)))]
static REGISTERED_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Registers this process for the waiters' [`heavy_barrier`]s, once per
/// process (`pid`: the caller's, to tell a forked child, which registers
/// again); [`light_wakers`] then says whether its wakers skip the fence.
pub(crate) fn register_light_wakers(pid: u32) {
    #[cfg(not(any(fusion_ring_loom, miri)))]
    {
        use std::sync::atomic::Ordering as O;
        if REGISTERED_PID.load(O::Relaxed) != pid {
            use rustix::thread::{membarrier, MembarrierCommand};
            let ok = membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok();
            LIGHT_WAKERS.store(ok, O::Relaxed);
            REGISTERED_PID.store(pid, O::Relaxed);
        }
    }
    #[cfg(any(fusion_ring_loom, miri))]
    let _ = pid;
}

/// Whether this process's wakers skip the fence ([`notify_light`]).
#[inline(always)]
pub(crate) fn light_wakers() -> bool {
    #[cfg(not(any(fusion_ring_loom, miri)))]
    return LIGHT_WAKERS.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(any(fusion_ring_loom, miri))]
    false
}

/// The waiter's half of the asymmetric pair: a full barrier on every CPU
/// running a thread of a registered process (module docs). Without the
/// call (Loom, Miri, or a kernel or filter that refuses it), wakers in
/// processes where it works may be one sleep slice late.
fn heavy_barrier() {
    #[cfg(not(any(fusion_ring_loom, miri)))]
    {
        use rustix::thread::{membarrier, MembarrierCommand};
        let _ = membarrier(MembarrierCommand::GlobalExpedited);
    }
}

/// The waker's side (steps b and c) in a process registered for the
/// waiters' heavy barriers (module docs): no fence, a plain load.
#[inline(always)]
pub(crate) fn notify_light(ec: &EventCount) {
    // The compiler must not move the load above the caller's publish; the
    // CPU may, and the waiter's heavy barrier covers that.
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    // Relaxed: ordered by the waiter's heavy barrier (module docs).
    if ec.waiters.load(Ordering::Relaxed) != 0 {
        wake_all(ec);
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
    futex_wake(ec);
}

/// Futex system calls (waits and wakes) this process has made for rings;
/// see [`crate::RingSync::syscalls`].
#[cfg(not(fusion_ring_loom))]
pub(crate) static SYSCALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sleeps while `ec.seq == key`, at most `timeout` (returns early on a
/// wake-up, a signal, or if `seq` already moved).
#[cfg(not(fusion_ring_loom))]
fn futex_wait(ec: &EventCount, key: u32, timeout: Duration) {
    use rustix::thread::futex;
    // Relaxed: a count for diagnostics, ordered with nothing.
    SYSCALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ts = futex::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    // Shared (not FUTEX_PRIVATE): waker and waiter may be other processes.
    // EAGAIN (seq moved), ETIMEDOUT and EINTR all mean "look again".
    let _ = futex::wait(&ec.seq, futex::Flags::empty(), key, Some(&ts));
}

/// Wakes every thread sleeping on `ec.seq`.
#[cfg(not(fusion_ring_loom))]
fn futex_wake(ec: &EventCount) {
    use rustix::thread::futex;
    // Relaxed: as in `futex_wait`.
    SYSCALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _ = futex::wake(&ec.seq, futex::Flags::empty(), i32::MAX as u32);
}

// Under loom the futex is a mutex + condvar beside the word: the check of
// `seq == key` and the sleep are atomic with respect to a wake, as in the
// kernel. There is no timeout, so a lost wake-up is a deadlock loom reports.
#[cfg(fusion_ring_loom)]
fn futex_wait(ec: &EventCount, key: u32, _timeout: Duration) {
    let guard = ec.parker.lock().unwrap();
    if ec.seq.load(Ordering::SeqCst) == key {
        drop(ec.wakeup.wait(guard).unwrap());
    }
}

#[cfg(fusion_ring_loom)]
fn futex_wake(ec: &EventCount) {
    let _guard = ec.parker.lock().unwrap();
    ec.wakeup.notify_all();
}

/// Loom models of the wake-up handshake: a producer and a consumer that
/// sleep (on the emulated futex, with no timeout) whenever the ring is full
/// or empty. A lost wake-up leaves both asleep, which loom reports as a
/// deadlock. Run with the other loom models (see `loom_tests`).
#[cfg(all(test, fusion_ring_loom))]
mod loom_model {
    use core::ptr::NonNull;
    use std::time::Duration;

    use loom::sync::Arc;

    use super::{notify, notify_after_seqcst, wait_until, Deadline};
    use crate::atomic::{AtomicU32, AtomicU64};
    use crate::lockfree::protocol::{ClaimError, RingCore};
    use crate::shm::layout::{CacheLine, ControlBlock, EventCount, Slot};

    struct Model {
        ctrl: Box<ControlBlock>,
        slots: Box<[Slot]>,
        not_empty: EventCount,
        not_full: EventCount,
    }

    fn line() -> CacheLine<AtomicU64> {
        CacheLine {
            value: AtomicU64::new(0),
        }
    }

    fn event_count() -> EventCount {
        EventCount {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            parker: loom::sync::Mutex::new(()),
            wakeup: loom::sync::Condvar::new(),
        }
    }

    impl Model {
        fn new(capacity: u64) -> Self {
            Model {
                ctrl: Box::new(ControlBlock {
                    producer_head: line(),
                    roles_seen: line(),
                    consumer_head: line(),
                    consumer_tail: line(),
                    producer_holder: line(),
                    consumer_holder: line(),
                    reserved: core::array::from_fn(|_| line()),
                }),
                slots: (0..capacity)
                    .map(|i| Slot {
                        seq: AtomicU64::new(i),
                        stamp: AtomicU64::new(0),
                        meta: AtomicU64::new(0),
                        payload: core::array::from_fn(|_| AtomicU64::new(0)),
                    })
                    .collect(),
                not_empty: event_count(),
                not_full: event_count(),
            }
        }

        fn core(&self) -> RingCore {
            // SAFETY: the model owns both for as long as the threads using
            // the returned core (they hold an Arc of the model).
            unsafe {
                RingCore::new(
                    NonNull::from(&*self.ctrl),
                    NonNull::from(&self.slots[0]),
                    self.slots.len() as u64,
                )
            }
        }
    }

    /// Sends `n` messages (payload word 0 = index), sleeping when full.
    /// `seqcst`: the single-message path (swap + SeqCst load) instead of
    /// the batch path (Release store + fence).
    fn producer(m: &Model, n: u64, seqcst: bool) {
        let ring = m.core();
        for i in 0..n {
            wait_until(
                &m.not_full,
                Deadline::NEVER,
                Duration::MAX,
                || match ring.claim_send(1) {
                    Ok(c) => {
                        ring.publish(c.pos, 0, 0, &[i, 0, 0, 0, 0], seqcst);
                        true
                    }
                    Err(ClaimError::Full) => false,
                    Err(e) => panic!("{e:?}"),
                },
                || Ok(()),
            )
            .unwrap();
            if seqcst {
                notify_after_seqcst(&m.not_empty);
            } else {
                notify(&m.not_empty);
            }
        }
    }

    /// Receives `n` messages, sleeping when empty; checks their order.
    fn consumer(m: &Model, n: u64, seqcst: bool) {
        let ring = m.core();
        for i in 0..n {
            let mut got = None;
            wait_until(
                &m.not_empty,
                Deadline::NEVER,
                Duration::MAX,
                || match ring.claim_recv(1, None) {
                    Ok(c) => {
                        got = Some(ring.read(c.pos).payload[0]);
                        ring.release(c.pos, seqcst);
                        true
                    }
                    Err(ClaimError::Empty) => false,
                    Err(e) => panic!("{e:?}"),
                },
                || Ok(()),
            )
            .unwrap();
            assert_eq!(got, Some(i), "messages arrive in order, none lost");
            if seqcst {
                notify_after_seqcst(&m.not_full);
            } else {
                notify(&m.not_full);
            }
        }
    }

    fn run(seqcst: bool) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let m = Arc::new(Model::new(2));
            let p = {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || producer(&m, 3, seqcst))
            };
            consumer(&m, 3, seqcst);
            p.join().unwrap();
        });
    }

    #[test]
    fn no_lost_wakeup_single_path() {
        run(true);
    }

    #[test]
    fn no_lost_wakeup_batch_path() {
        run(false);
    }
}
