//! Multi-threaded MPMC stress tests over the public API.
//!
//! Several producer and consumer threads share one [`UltraFastRing`], each
//! through its own handle (`ring.clone()`: handles are `Send`, not `Sync`).
//! Every message names its producer and its per-producer sequence number and
//! carries a filler derived from both, with a length that varies between 5
//! and 40 bytes. Consumers check every byte, the priority class and, per
//! producer, that the sequence numbers they see strictly increase; at the end
//! every (producer, seq) must have been received exactly once and the ring's
//! statistics must agree.
//!
//! Full/Empty retries call `std::thread::yield_now()` (there may be fewer
//! cores than spinning threads), and a deadline turns a hang into a failure.
//!
//! Run in release mode: `cargo test -p fusion-ring --release --test stress mpmc`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fusion_ring::{InlineMessage, PriorityClass, RingError, UltraFastRing, INLINE_MAX};
use testkit::panics::StopOnPanic;

/// A test fails rather than hangs after this long.
const DEADLINE: Duration = Duration::from_secs(120);
/// Ring size for both tests.
const CAPACITY: usize = 1024;
/// Largest batch of the batch test.
const MAX_BATCH: usize = 32;
/// Bytes before the filler: producer id (1) + sequence number (4).
const HEADER: usize = 5;

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// Length of message `seq` of producer `p`: 5..=40, varying with both.
fn message_len(p: usize, seq: u32) -> usize {
    HEADER + (seq as usize * 7 + p * 11 + (seq as usize >> 10)) % (INLINE_MAX - HEADER + 1)
}

/// Filler byte `i` of message `seq` of producer `p`.
fn filler(p: usize, seq: u32, i: usize) -> u8 {
    let x = seq
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add((p as u32 + 1) * 0x0100_0193)
        .rotate_left(i as u32 * 3)
        ^ (i as u32 * 0x45);
    (x ^ (x >> 16) ^ (x >> 24)) as u8
}

/// Writes message `seq` of producer `p` into `buf`; returns its length.
fn encode(p: usize, seq: u32, buf: &mut [u8; INLINE_MAX]) -> usize {
    let len = message_len(p, seq);
    buf[0] = p as u8;
    buf[1..HEADER].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().take(len).skip(HEADER) {
        *b = filler(p, seq, i);
    }
    len
}

/// Checks a received message byte for byte; returns `(producer, seq)`.
fn decode(data: &[u8], priority: PriorityClass, priorities: &[PriorityClass]) -> (usize, u32) {
    assert!(
        data.len() >= HEADER,
        "message of {} bytes: {data:?}",
        data.len()
    );
    let p = data[0] as usize;
    assert!(p < priorities.len(), "unknown producer {p}: {data:?}");
    let seq = u32::from_le_bytes(data[1..HEADER].try_into().unwrap());
    assert_eq!(
        data.len(),
        message_len(p, seq),
        "length of message {seq} of producer {p}: {data:?}"
    );
    for (i, &b) in data.iter().enumerate().skip(HEADER) {
        assert_eq!(
            b,
            filler(p, seq, i),
            "byte {i} of message {seq} of producer {p}: {data:?}"
        );
    }
    assert_eq!(
        priority, priorities[p],
        "priority of message {seq} of producer {p}"
    );
    (p, seq)
}

// ---------------------------------------------------------------------------
// Shared state: stop flag, deadline, progress
// ---------------------------------------------------------------------------

struct Shared {
    start: Instant,
    /// Set when a thread panics or the deadline passes: everybody returns.
    stop: AtomicBool,
    /// Messages received by all consumers.
    received: AtomicU64,
    /// Messages sent by all producers.
    sent: AtomicU64,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        })
    }

    /// Called on every Full/Empty: yields, and tells the caller to give up
    /// when another thread failed or the deadline passed.
    fn wait(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.start.elapsed() > DEADLINE {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        std::thread::yield_now();
        true
    }
}

/// What a consumer saw: receive counts per producer and sequence number.
struct Seen {
    counts: Vec<Vec<u8>>,
    last: Vec<Option<u32>>,
    messages: u64,
}

impl Seen {
    fn new(producers: usize, per_producer: u32) -> Self {
        Seen {
            counts: vec![vec![0; per_producer as usize]; producers],
            last: vec![None; producers],
            messages: 0,
        }
    }

    fn record(&mut self, p: usize, seq: u32) {
        let counts = &mut self.counts[p];
        assert!(
            (seq as usize) < counts.len(),
            "sequence number {seq} of producer {p} was never sent"
        );
        if let Some(last) = self.last[p] {
            assert!(
                seq > last,
                "producer {p}: message {seq} received after message {last} by one consumer"
            );
        }
        self.last[p] = Some(seq);
        counts[seq as usize] = counts[seq as usize].saturating_add(1);
        self.messages += 1;
    }
}

/// Joins every thread; re-raises the first panic, fails on the deadline.
fn join_all<T>(shared: &Shared, handles: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
    let mut out = Vec::new();
    let mut panic = None;
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(e) => {
                panic.get_or_insert(e);
            }
        }
    }
    if let Some(e) = panic {
        std::panic::resume_unwind(e);
    }
    assert!(
        !shared.stop.load(Ordering::Relaxed),
        "{what}: deadline of {DEADLINE:?} passed with {} sent, {} received",
        shared.sent.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed)
    );
    out
}

/// Every (producer, seq) received exactly once, over all consumers.
fn check_exactly_once(seen: &[Seen], producers: usize, per_producer: u32) {
    for p in 0..producers {
        for seq in 0..per_producer as usize {
            let n: u32 = seen.iter().map(|s| u32::from(s.counts[p][seq])).sum();
            assert_eq!(n, 1, "message {seq} of producer {p} was received {n} times");
        }
    }
}

/// The ring's statistics agree with what was sent: per lane (one lane per
/// producer) count and bytes, sent and received.
fn check_stats(ring: &UltraFastRing, priorities: &[PriorityClass], per_producer: u32) {
    let total = priorities.len() as u64 * u64::from(per_producer);
    let stats = ring.stats();
    assert_eq!((stats.sent, stats.received), (total, total), "{stats:?}");
    for lane in 0..PriorityClass::COUNT {
        let l = &stats.lanes[lane];
        match priorities.iter().position(|c| c.lane() == lane) {
            Some(p) => {
                let bytes: u64 = (0..per_producer)
                    .map(|seq| message_len(p, seq) as u64)
                    .sum();
                let n = u64::from(per_producer);
                assert_eq!((l.sent, l.received), (n, n), "lane {lane}: {l:?}");
                assert_eq!(
                    (l.sent_bytes, l.received_bytes),
                    (bytes, bytes),
                    "lane {lane}: {l:?}"
                );
                assert_eq!((l.inline_sent, l.zerocopy_sent), (n, 0), "lane {lane}");
            }
            None => assert_eq!((l.sent, l.received), (0, 0), "unused lane {lane}: {l:?}"),
        }
    }
    let rs = ring.as_ring().stats();
    assert_eq!((rs.head, rs.tail), (total, total), "{rs:?}");
    assert!(ring.as_ring().is_empty());
}

// ---------------------------------------------------------------------------
// One message at a time: send_fast / recv_fast
// ---------------------------------------------------------------------------

#[test]
fn four_producers_four_consumers_two_million_messages() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    const PER_PRODUCER: u32 = 500_000;
    const TOTAL: u64 = PRODUCERS as u64 * PER_PRODUCER as u64;
    let priorities = [
        PriorityClass::RealTime,
        PriorityClass::High,
        PriorityClass::Normal,
        PriorityClass::Low,
    ];
    let ring = UltraFastRing::new(CAPACITY).expect("ring");
    let shared = Shared::new();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let ring = ring.clone();
            let shared = Arc::clone(&shared);
            let priority = priorities[p];
            std::thread::spawn(move || {
                let _guard = StopOnPanic(&shared.stop);
                let mut buf = [0u8; INLINE_MAX];
                for seq in 0..PER_PRODUCER {
                    let len = encode(p, seq, &mut buf);
                    loop {
                        match ring.send_fast(&buf[..len], priority) {
                            Ok(()) => break,
                            Err(RingError::Full) if shared.wait() => {}
                            Err(RingError::Full) => return,
                            Err(e) => panic!("producer {p}, message {seq}: {e}"),
                        }
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let ring = ring.clone();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let _guard = StopOnPanic(&shared.stop);
                let mut seen = Seen::new(PRODUCERS, PER_PRODUCER);
                let mut buf = [0u8; INLINE_MAX];
                while shared.received.load(Ordering::Relaxed) < TOTAL {
                    match ring.recv_fast(&mut buf) {
                        Ok((len, priority, _latency)) => {
                            let (p, seq) = decode(&buf[..len], priority, &priorities);
                            seen.record(p, seq);
                            shared.received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RingError::Empty) if shared.wait() => {}
                        Err(RingError::Empty) => break,
                        Err(e) => panic!("consumer {c}: {e}"),
                    }
                }
                seen
            })
        })
        .collect();

    join_all(&shared, producers, "producers");
    let seen = join_all(&shared, consumers, "consumers");
    let elapsed = shared.start.elapsed();
    let per_consumer: Vec<u64> = seen.iter().map(|s| s.messages).collect();
    println!(
        "{TOTAL} messages, {PRODUCERS} producers x {CONSUMERS} consumers, capacity {CAPACITY}: \
         {elapsed:.2?} ({:.1} M msg/s); per consumer {per_consumer:?}",
        TOTAL as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert_eq!(per_consumer.iter().sum::<u64>(), TOTAL);
    check_exactly_once(&seen, PRODUCERS, PER_PRODUCER);
    check_stats(&ring, &priorities, PER_PRODUCER);
}

// ---------------------------------------------------------------------------
// Batches: send_batch / recv_batch
// ---------------------------------------------------------------------------

#[test]
fn two_producers_two_consumers_batches() {
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 2;
    const PER_PRODUCER: u32 = 500_000;
    const TOTAL: u64 = PRODUCERS as u64 * PER_PRODUCER as u64;
    let priorities = [PriorityClass::High, PriorityClass::Background];
    let ring = UltraFastRing::new(CAPACITY).expect("ring");
    let shared = Shared::new();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let ring = ring.clone();
            let shared = Arc::clone(&shared);
            let priority = priorities[p];
            std::thread::spawn(move || {
                let _guard = StopOnPanic(&shared.stop);
                let mut bufs = [[0u8; INLINE_MAX]; MAX_BATCH];
                let mut lens = [0usize; MAX_BATCH];
                let mut next: u32 = 0;
                let mut round = 0usize;
                while next < PER_PRODUCER {
                    // Batch sizes cycle through 1..=32 (and are cut short by
                    // the end of the stream or a ring that fills up).
                    let want = (1 + round % MAX_BATCH).min((PER_PRODUCER - next) as usize);
                    round += 1;
                    for (k, (buf, len)) in bufs.iter_mut().zip(&mut lens).take(want).enumerate() {
                        *len = encode(p, next + k as u32, buf);
                    }
                    let mut done = 0;
                    while done < want {
                        let batch: Vec<&[u8]> = (done..want).map(|k| &bufs[k][..lens[k]]).collect();
                        match ring.send_batch(&batch, priority) {
                            Ok(n) => {
                                assert!((1..=batch.len()).contains(&n), "send_batch sent {n}");
                                done += n;
                                shared.sent.fetch_add(n as u64, Ordering::Relaxed);
                            }
                            Err(RingError::Full) if shared.wait() => {}
                            Err(RingError::Full) => return,
                            Err(e) => panic!("producer {p}, message {}: {e}", next as usize + done),
                        }
                    }
                    next += want as u32;
                }
            })
        })
        .collect();

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let ring = ring.clone();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let _guard = StopOnPanic(&shared.stop);
                let mut seen = Seen::new(PRODUCERS, PER_PRODUCER);
                let mut out = [InlineMessage::default(); MAX_BATCH];
                let mut batches = 0u64;
                while shared.received.load(Ordering::Relaxed) < TOTAL {
                    // Ask for 1..=32 at a time.
                    let max = 1 + (batches as usize * 7) % MAX_BATCH;
                    match ring.recv_batch(&mut out[..max]) {
                        Ok(n) => {
                            assert!((1..=max).contains(&n), "recv_batch returned {n}");
                            for m in &out[..n] {
                                let (p, seq) = decode(m.as_bytes(), m.priority(), &priorities);
                                seen.record(p, seq);
                            }
                            shared.received.fetch_add(n as u64, Ordering::Relaxed);
                            batches += 1;
                        }
                        Err(RingError::Empty) if shared.wait() => {}
                        Err(RingError::Empty) => break,
                        Err(e) => panic!("consumer {c}: {e}"),
                    }
                }
                (seen, batches)
            })
        })
        .collect();

    join_all(&shared, producers, "producers");
    let results = join_all(&shared, consumers, "consumers");
    let elapsed = shared.start.elapsed();
    let batches: u64 = results.iter().map(|(_, b)| b).sum();
    let seen: Vec<Seen> = results.into_iter().map(|(s, _)| s).collect();
    let per_consumer: Vec<u64> = seen.iter().map(|s| s.messages).collect();
    println!(
        "{TOTAL} messages in batches of <= {MAX_BATCH}, {PRODUCERS} producers x {CONSUMERS} \
         consumers, capacity {CAPACITY}: {elapsed:.2?} ({:.1} M msg/s); per consumer \
         {per_consumer:?}, {:.1} messages per received batch",
        TOTAL as f64 / elapsed.as_secs_f64() / 1e6,
        TOTAL as f64 / batches as f64
    );
    assert_eq!(per_consumer.iter().sum::<u64>(), TOTAL);
    check_exactly_once(&seen, PRODUCERS, PER_PRODUCER);
    check_stats(&ring, &priorities, PER_PRODUCER);
}
