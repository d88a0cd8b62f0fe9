//! Per-lane statistics, kept in the segment so other processes can read them.
//!
//! Each ring handle owns one [`ParticipantEntry`] and is its only writer, so
//! it updates counters with a plain load + store (no atomic read-modify-write,
//! no cache line shared with the other side). Readers sum all entries. When a
//! handle is dropped its counters are folded into entry 0 with `fetch_add`;
//! a handle that finds no free entry shares entry 0 and uses `fetch_add`.

use crate::atomic::{AtomicU64, Ordering};
use crate::shm::layout::{LaneCounters, ParticipantEntry, LATENCY_BUCKETS, MAX_PARTICIPANTS};
use crate::priority::PriorityClass;

/// Counters of one priority lane.
///
/// ```
/// use fusion_ring::{PriorityClass, UltraFastRing};
/// let ring = UltraFastRing::new(8)?;
/// ring.send_fast(b"hi", PriorityClass::High)?;
/// let mut buf = [0u8; 40];
/// ring.recv_fast(&mut buf)?;
/// let lane = ring.stats().lanes[PriorityClass::High.lane()];
/// assert_eq!((lane.sent, lane.received, lane.received_bytes), (1, 1, 2));
/// assert!(lane.latency_percentile(0.5) >= lane.latency_min);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Messages sent on this lane.
    pub sent: u64,
    /// Payload bytes sent.
    pub sent_bytes: u64,
    /// Of `sent`, how many travelled inline.
    pub inline_sent: u64,
    /// Of `sent`, how many travelled zero-copy.
    pub zerocopy_sent: u64,
    /// Messages received on this lane.
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Sum of send-to-receive latencies, in clock ticks.
    pub latency_sum: u64,
    /// Smallest latency seen (0 if none).
    pub latency_min: u64,
    /// Largest latency seen.
    pub latency_max: u64,
    /// Log2 histogram: bucket `i` counts latencies in `[2^(i-1), 2^i)` ticks
    /// (bucket 0: latency 0; the last bucket: everything above).
    pub latency_hist: [u64; LATENCY_BUCKETS],
}

impl LaneStats {
    /// Number of received messages that carried a timestamp.
    pub fn timed(&self) -> u64 {
        self.latency_hist
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    /// Mean latency in ticks of the timestamped messages (0 if none).
    pub fn avg_latency(&self) -> f64 {
        match self.timed() {
            0 => 0.0,
            n => self.latency_sum as f64 / n as f64,
        }
    }

    /// Upper bound (in ticks) of the histogram bucket holding quantile `q`
    /// (0.0..=1.0); 0 if nothing was received.
    pub fn latency_percentile(&self, q: f64) -> u64 {
        let total = self.timed();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.latency_hist.iter().enumerate() {
            seen = n.saturating_add(seen);
            if seen >= rank {
                return if i + 1 == LATENCY_BUCKETS {
                    self.latency_max
                } else {
                    (1u64 << i).min(self.latency_max.max(1))
                };
            }
        }
        self.latency_max
    }

    /// Adds another lane's counters. Saturating: they come from shared
    /// memory, where a scribbling peer may have put any value.
    fn add(&mut self, o: &LaneStats) {
        self.sent = self.sent.saturating_add(o.sent);
        self.sent_bytes = self.sent_bytes.saturating_add(o.sent_bytes);
        self.inline_sent = self.inline_sent.saturating_add(o.inline_sent);
        self.zerocopy_sent = self.zerocopy_sent.saturating_add(o.zerocopy_sent);
        self.received = self.received.saturating_add(o.received);
        self.received_bytes = self.received_bytes.saturating_add(o.received_bytes);
        self.latency_sum = self.latency_sum.saturating_add(o.latency_sum);
        if o.received > 0 {
            self.latency_min = if self.latency_min == 0 {
                o.latency_min
            } else {
                self.latency_min.min(o.latency_min)
            };
        }
        self.latency_max = self.latency_max.max(o.latency_max);
        for (a, b) in self.latency_hist.iter_mut().zip(&o.latency_hist) {
            *a = a.saturating_add(*b);
        }
    }
}

/// Histogram bucket of a latency.
#[inline(always)]
pub(crate) fn bucket(latency: u64) -> usize {
    ((u64::BITS - latency.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

/// Adds `v` to a counter this handle owns (see module docs).
#[inline(always)]
fn bump(counter: &AtomicU64, v: u64, shared: bool) {
    if shared {
        counter.fetch_add(v, Ordering::Relaxed);
    } else {
        // Relaxed load + store: this handle is the counter's only writer;
        // readers only need eventually-visible, untorn values.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(v),
            Ordering::Relaxed,
        );
    }
}

/// One lane's send counters gathered over one call, written to the entry
/// once (or when the lane changes): a batch then costs one read-modify-write
/// per counter instead of one per message.
#[derive(Default)]
pub(crate) struct SendTally {
    lane: usize,
    count: u64,
    bytes: u64,
    zerocopy: u64,
}

/// One lane's receive counters gathered over one call, as [`SendTally`].
/// The latency histogram is not gathered: its bucket differs per message.
pub(crate) struct RecvTally {
    lane: usize,
    count: u64,
    bytes: u64,
    latency_sum: u64,
    latency_min: u64,
    latency_max: u64,
}

impl Default for RecvTally {
    fn default() -> Self {
        Self {
            lane: 0,
            count: 0,
            bytes: 0,
            latency_sum: 0,
            latency_min: u64::MAX,
            latency_max: 0,
        }
    }
}

/// Writes one participant entry's counters.
pub(crate) struct StatsWriter<'a> {
    pub(crate) entry: &'a ParticipantEntry,
    pub(crate) shared: bool,
}

impl StatsWriter<'_> {
    /// Adds one sent message to `t`, first writing out what `t` holds if it
    /// is for another lane.
    #[inline(always)]
    pub(crate) fn tally_send(&self, t: &mut SendTally, lane: usize, bytes: u64, zerocopy: bool) {
        if t.lane != lane && t.count != 0 {
            self.flush_send(t);
        }
        t.lane = lane;
        t.count += 1;
        t.bytes = t.bytes.wrapping_add(bytes);
        t.zerocopy += zerocopy as u64;
    }

    /// Writes `t` to the entry and empties it.
    #[inline(always)]
    pub(crate) fn flush_send(&self, t: &mut SendTally) {
        if t.count != 0 {
            let l = &self.entry.lanes[t.lane];
            bump(&l.sent, t.count, self.shared);
            bump(&l.sent_bytes, t.bytes, self.shared);
            if t.zerocopy != 0 {
                bump(&l.zerocopy_sent, t.zerocopy, self.shared);
            }
            if t.zerocopy != t.count {
                bump(&l.inline_sent, t.count - t.zerocopy, self.shared);
            }
        }
        *t = SendTally::default();
    }

    /// Adds one received message to `t` (its latency bucket goes straight
    /// to the entry), first writing out `t` if it is for another lane.
    #[inline(always)]
    pub(crate) fn tally_recv(
        &self,
        t: &mut RecvTally,
        lane: usize,
        bytes: u64,
        latency: Option<u64>,
    ) {
        if t.lane != lane && t.count != 0 {
            self.flush_recv(t);
        }
        t.lane = lane;
        t.count += 1;
        t.bytes = t.bytes.wrapping_add(bytes);
        if let Some(latency) = latency {
            bump(
                &self.entry.lanes[lane].latency_hist[bucket(latency)],
                1,
                self.shared,
            );
            t.latency_sum = t.latency_sum.wrapping_add(latency);
            t.latency_min = t.latency_min.min(latency);
            t.latency_max = t.latency_max.max(latency);
        }
    }

    /// Writes `t` to the entry and empties it.
    #[inline(always)]
    pub(crate) fn flush_recv(&self, t: &mut RecvTally) {
        if t.count != 0 {
            let l = &self.entry.lanes[t.lane];
            bump(&l.received, t.count, self.shared);
            bump(&l.received_bytes, t.bytes, self.shared);
            if t.latency_min != u64::MAX {
                bump(&l.latency_sum, t.latency_sum, self.shared);
                self.note_extremes(l, t.latency_min, t.latency_max);
            }
        }
        *t = RecvTally::default();
    }

    /// Widens the lane's latency min/max to include `[min, max]`.
    #[inline(always)]
    fn note_extremes(&self, l: &LaneCounters, min: u64, max: u64) {
        // Relaxed: min/max are statistics; races between sharers may lose
        // an extreme value but never tear one.
        if max > l.latency_max.load(Ordering::Relaxed) {
            l.latency_max.store(max, Ordering::Relaxed);
        }
        let min1 = l.latency_min_plus1.load(Ordering::Relaxed);
        if min1 == 0 || min.saturating_add(1) < min1 {
            l.latency_min_plus1
                .store(min.saturating_add(1), Ordering::Relaxed);
        }
    }

    #[inline(always)]
    pub(crate) fn record_recv(&self, lane: usize, bytes: u64, latency: Option<u64>) {
        let l = &self.entry.lanes[lane];
        bump(&l.received, 1, self.shared);
        bump(&l.received_bytes, bytes, self.shared);
        let Some(latency) = latency else { return };
        bump(&l.latency_sum, latency, self.shared);
        bump(&l.latency_hist[bucket(latency)], 1, self.shared);
        self.note_extremes(l, latency, latency);
    }
}

/// Snapshot of one lane's counters.
pub(crate) fn read_lane(l: &LaneCounters) -> LaneStats {
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut hist = [0u64; LATENCY_BUCKETS];
    for (h, a) in hist.iter_mut().zip(&l.latency_hist) {
        *h = r(a);
    }
    LaneStats {
        sent: r(&l.sent),
        sent_bytes: r(&l.sent_bytes),
        inline_sent: r(&l.inline_sent),
        zerocopy_sent: r(&l.zerocopy_sent),
        received: r(&l.received),
        received_bytes: r(&l.received_bytes),
        latency_sum: r(&l.latency_sum),
        latency_min: r(&l.latency_min_plus1).saturating_sub(1),
        latency_max: r(&l.latency_max),
        latency_hist: hist,
    }
}

/// All lanes summed into one (counters saturate; extremes are the
/// extremes of the lanes that saw any).
pub(crate) fn sum(lanes: &[LaneStats]) -> LaneStats {
    let mut all = LaneStats::default();
    for l in lanes {
        all.add(l);
    }
    all
}

/// Sums the lanes of every entry in use (and the retired entry 0).
pub(crate) fn aggregate(entries: &[ParticipantEntry]) -> [LaneStats; 5] {
    let mut out = [LaneStats::default(); PriorityClass::COUNT];
    for (i, e) in entries.iter().enumerate().take(MAX_PARTICIPANTS) {
        // Acquire: pairs with the Release that frees an entry after folding
        // it, so a freed entry is skipped rather than counted twice.
        if i != 0 && e.id.state.load(Ordering::Acquire) == 0 {
            continue;
        }
        for (o, l) in out.iter_mut().zip(&e.lanes) {
            o.add(&read_lane(l));
        }
    }
    out
}

/// Moves `from`'s counters into `into` (atomically added) and zeroes `from`.
pub(crate) fn fold_into(from: &ParticipantEntry, into: &ParticipantEntry) {
    for (f, t) in from.lanes.iter().zip(&into.lanes) {
        let s = read_lane(f);
        let add = |a: &AtomicU64, v: u64| {
            if v != 0 {
                a.fetch_add(v, Ordering::Relaxed);
            }
        };
        add(&t.sent, s.sent);
        add(&t.sent_bytes, s.sent_bytes);
        add(&t.inline_sent, s.inline_sent);
        add(&t.zerocopy_sent, s.zerocopy_sent);
        add(&t.received, s.received);
        add(&t.received_bytes, s.received_bytes);
        add(&t.latency_sum, s.latency_sum);
        for (a, v) in t.latency_hist.iter().zip(s.latency_hist) {
            add(a, v);
        }
        t.latency_max.fetch_max(s.latency_max, Ordering::Relaxed);
        if s.received > 0 {
            let mine = s.latency_min + 1;
            let _ = t
                .latency_min_plus1
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                    (cur == 0 || mine < cur).then_some(mine)
                });
        }
        let zero = |a: &AtomicU64| a.store(0, Ordering::Relaxed);
        for a in [
            &f.sent,
            &f.sent_bytes,
            &f.inline_sent,
            &f.zerocopy_sent,
            &f.received,
            &f.received_bytes,
            &f.latency_sum,
            &f.latency_min_plus1,
            &f.latency_max,
        ] {
            zero(a);
        }
        f.latency_hist.iter().for_each(zero);
    }
}

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(2), 2);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn percentile_walks_the_histogram() {
        let mut s = LaneStats {
            received: 4,
            latency_max: 100,
            ..Default::default()
        };
        s.latency_hist[bucket(3)] = 3; // three in [2, 4)
        s.latency_hist[bucket(100)] = 1; // one in [64, 128)
        assert_eq!(s.latency_percentile(0.5), 4);
        assert_eq!(s.latency_percentile(0.75), 4);
        assert_eq!(s.latency_percentile(1.0), 100);
        assert_eq!(LaneStats::default().latency_percentile(0.5), 0);
    }
}
