//! MPMC stress of `FusionRing` with mixed sizes: 3 producer threads and 3
//! consumer threads (each with its own handle), 300,000 messages, 60 % of
//! them inline (<= 40 B), 35 % zero-copy of 41 B .. 8 KiB, 5 % of 8 KiB ..
//! 256 KiB. Producers alternate `send_deadline` (copy), `loan` + `send_loan`
//! and `send_batch`; consumers alternate `recv_with_timeout`, `recv_deadline`,
//! `recv_zerocopy_timeout` and `recv_batch`.
//!
//! Checked: every byte of every message; no loss, no duplicate; each
//! consumer sees each producer's messages in send order; the priority
//! travels; the arena is empty at the end.
//!
//! Every wait has a deadline and every thread watches a shared stop flag
//! (raised by any thread that panics, or when the global deadline passes),
//! so a bug fails the test instead of hanging it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fusion_ring::{BatchMessage, Config, FusionRing, LoanError, Payload, PriorityClass, RingError};
use testkit::panics::{panic_text, StopOnPanic};
use testkit::rng::{fill, mix, Rng};

const PRODUCERS: u64 = 3;
const CONSUMERS: usize = 3;
const TOTAL: u64 = 300_000;
const PER_PRODUCER: u64 = TOTAL / PRODUCERS;
const MAX: usize = 256 << 10;
const DEADLINE: Duration = Duration::from_secs(60);
/// Longest single wait between two looks at the stop flag.
const SLICE: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------
// Messages

/// Message `seq` of producer `p` is tagged `p << 24 | seq`; its first 4
/// bytes are the tag (little-endian), so every message is >= 4 bytes.
fn tag(p: u64, seq: u64) -> u64 {
    debug_assert!(seq < 1 << 24);
    p << 24 | seq
}

fn untag(bytes: &[u8]) -> (u64, u64) {
    assert!(bytes.len() >= 4, "a {}-byte message", bytes.len());
    let t = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as u64;
    (t >> 24, t & ((1 << 24) - 1))
}

fn msg_len(tag: u64) -> usize {
    let mut rng = Rng::counter(tag ^ 0x57E55);
    match rng.below(100) {
        0..=59 => rng.range(4, fusion_ring::INLINE_MAX),
        60..=94 => rng.log_range(fusion_ring::INLINE_MAX + 1, 8 << 10),
        _ => rng.log_range((8 << 10) + 1, MAX),
    }
}

fn priority_of(tag: u64) -> PriorityClass {
    PriorityClass::ALL[(mix(tag) % PriorityClass::COUNT as u64) as usize]
}

// ---------------------------------------------------------------------------
// Shared state

struct Shared {
    /// Raised by a panicking thread or at the deadline: everyone stops.
    stop: AtomicBool,
    /// Messages received by all consumers together.
    received: AtomicU64,
    start: Instant,
}

impl Shared {
    /// Panics if the test is being abandoned.
    fn check(&self, who: &str, what: &str) {
        if self.start.elapsed() > DEADLINE {
            self.stop.store(true, Ordering::Relaxed);
            panic!("{who}: {what}: the {DEADLINE:?} deadline passed");
        }
        if self.stop.load(Ordering::Relaxed) {
            panic!("{who}: stopping ({what}): another thread failed");
        }
    }
}

// ---------------------------------------------------------------------------
// Producers

fn produce(ring: FusionRing, p: u64, shared: Arc<Shared>) {
    let _guard = StopOnPanic(&shared.stop);
    let who = format!("producer {p}");
    let mut rng = Rng::counter(0x9000 + p);
    let mut scratch = vec![0u8; MAX];
    let mut seq = 0;
    while seq < PER_PRODUCER {
        let t = tag(p, seq);
        let (len, priority) = (msg_len(t), priority_of(t));
        match rng.below(8) {
            // Copy: send_blocking with a deadline slice.
            0..=3 => {
                fill(t, &mut scratch[..len]);
                loop {
                    match ring.send_deadline(&scratch[..len], priority, Instant::now() + SLICE) {
                        Ok(()) => break,
                        Err(RingError::Timeout) => shared.check(&who, "send_deadline"),
                        Err(e) => panic!("{who}: send of {seq}: {e}"),
                    }
                }
                seq += 1;
            }
            // Zero-copy: fill a loan in place.
            4..=5 => {
                let mut loan = loop {
                    match ring.loan(len) {
                        Ok(loan) => break loan,
                        Err(RingError::ArenaExhausted { .. }) => {
                            thread::sleep(Duration::from_micros(50));
                            shared.check(&who, "loan");
                        }
                        Err(e) => panic!("{who}: loan of {len}: {e}"),
                    }
                };
                fill(t, &mut loan);
                loop {
                    match ring.send_loan(loan, priority) {
                        Ok(()) => break,
                        Err(LoanError {
                            error: RingError::Full,
                            loan: back,
                        }) => {
                            loan = back;
                            let _ = ring.sync().wait_not_full_timeout(SLICE);
                            shared.check(&who, "send_loan");
                        }
                        Err(e) => panic!("{who}: send_loan of {seq}: {}", e.error),
                    }
                }
                seq += 1;
            }
            // A batch of the next few messages; a prefix may go.
            _ => {
                let n = rng.range(1, 8).min((PER_PRODUCER - seq) as usize);
                let bodies: Vec<Vec<u8>> = (seq..seq + n as u64)
                    .map(|s| {
                        let t = tag(p, s);
                        let mut b = vec![0u8; msg_len(t)];
                        fill(t, &mut b);
                        b
                    })
                    .collect();
                let batch: Vec<BatchMessage<'_>> = (seq..)
                    .zip(&bodies)
                    .map(|(s, b)| BatchMessage::new(b, priority_of(tag(p, s))))
                    .collect();
                let mut done = 0;
                while done < n {
                    match ring.send_batch(&batch[done..]) {
                        Ok(k) => {
                            assert!((1..=n - done).contains(&k), "{who}: batch sent {k}");
                            done += k;
                        }
                        Err(RingError::Full | RingError::ArenaExhausted { .. }) => {
                            let _ = ring.sync().wait_not_full_timeout(Duration::from_millis(1));
                            shared.check(&who, "send_batch");
                        }
                        Err(e) => panic!("{who}: send_batch at {seq}: {e}"),
                    }
                }
                seq += n as u64;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Consumers

/// What one consumer got: (producer, seq) in its receive order.
type Got = Vec<(u64, u64)>;

struct Checker {
    who: String,
    scratch: Vec<u8>,
    /// Last seq seen from each producer (+1; 0: none yet).
    last: [u64; PRODUCERS as usize],
    got: Got,
}

impl Checker {
    fn accept(&mut self, bytes: &[u8], priority: Option<PriorityClass>) {
        let (p, seq) = untag(bytes);
        let who = &self.who;
        assert!(p < PRODUCERS && seq < PER_PRODUCER, "{who}: tag {p}/{seq}");
        let t = tag(p, seq);
        let len = msg_len(t);
        assert_eq!(bytes.len(), len, "{who}: length of {p}/{seq}");
        let want = &mut self.scratch[..len];
        fill(t, want);
        if bytes != &want[..] {
            let at = bytes.iter().zip(want.iter()).position(|(a, b)| a != b);
            panic!("{who}: message {p}/{seq} ({len} bytes) differs at byte {at:?}");
        }
        if let Some(priority) = priority {
            assert_eq!(priority, priority_of(t), "{who}: priority of {p}/{seq}");
        }
        assert!(
            seq + 1 > self.last[p as usize],
            "{who}: producer {p}'s message {seq} after {}",
            self.last[p as usize] - 1
        );
        self.last[p as usize] = seq + 1;
        self.got.push((p, seq));
    }
}

fn consume(ring: FusionRing, c: usize, shared: Arc<Shared>) -> Got {
    let _guard = StopOnPanic(&shared.stop);
    let mut check = Checker {
        who: format!("consumer {c}"),
        scratch: vec![0u8; MAX],
        last: [0; PRODUCERS as usize],
        got: Vec::new(),
    };
    let mut buf = vec![0u8; MAX];
    let mut batch: Vec<Payload> = Vec::new();
    let mut round = c;
    while shared.received.load(Ordering::Relaxed) < TOTAL {
        round += 1;
        let r = match round % 4 {
            // recv_with_timeout gives no priority.
            0 => ring.recv_with_timeout(&mut buf, SLICE).map(|n| {
                check.accept(&buf[..n], None);
                1
            }),
            // recv_deadline: the same wait, with the priority.
            1 => ring
                .recv_deadline(&mut buf, Instant::now() + SLICE)
                .map(|(n, priority, _)| {
                    check.accept(&buf[..n], Some(priority));
                    1
                }),
            2 => ring.recv_zerocopy_timeout(SLICE).map(|m| {
                check.accept(&m, Some(m.priority()));
                1
            }),
            _ => {
                batch.clear();
                match ring.recv_batch(&mut batch, 16) {
                    Ok(n) => {
                        assert_eq!(n, batch.len());
                        for m in &batch {
                            check.accept(m, Some(m.priority()));
                        }
                        Ok(n as u64)
                    }
                    Err(RingError::Empty) => ring.sync().wait_not_empty_timeout(SLICE).map(|()| 0),
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(n) => {
                shared.received.fetch_add(n, Ordering::Relaxed);
            }
            // Disconnected: every producer finished and the ring is empty;
            // the loop ends once the others have counted their messages
            // (a lost one would show as the deadline passing).
            Err(RingError::Timeout | RingError::Disconnected) => {}
            Err(e) => panic!("{}: receive: {e}", check.who),
        }
        if round.is_multiple_of(1024) || shared.stop.load(Ordering::Relaxed) {
            shared.check(&check.who, "receiving");
        }
    }
    drop(batch);
    check.got
}

// ---------------------------------------------------------------------------

#[test]
fn mpmc_mixed_sizes_three_by_three() {
    stress(&Config::new(256).max_message(MAX));
}

/// The same on a ring of 8 slots and a 2 MiB arena: producers and
/// consumers keep finding it full, empty or out of blocks, and sleep.
#[test]
fn mpmc_mixed_sizes_three_by_three_small_ring_and_arena() {
    stress(&Config::new(8).max_message(MAX).arena_bytes(2 << 20));
}

fn stress(config: &Config) {
    let ring = FusionRing::with_config(config).expect("ring");
    // One block of the largest class up front (blocks are never merged, so
    // the arena always has one for a maximum-size message).
    drop(ring.loan(MAX).expect("largest loan"));
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        received: AtomicU64::new(0),
        start: Instant::now(),
    });
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (r, s) = (ring.clone(), Arc::clone(&shared));
            thread::Builder::new()
                .name(format!("producer-{p}"))
                .spawn(move || produce(r, p, s))
                .expect("spawn")
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (r, s) = (ring.clone(), Arc::clone(&shared));
            thread::Builder::new()
                .name(format!("consumer-{c}"))
                .spawn(move || consume(r, c, s))
                .expect("spawn")
        })
        .collect();

    // Join everyone; report the first failure (the others stop because of it).
    let mut failures = Vec::new();
    for (k, h) in producers.into_iter().enumerate() {
        if let Err(e) = h.join() {
            failures.push(format!("producer {k}: {}", panic_text(&*e)));
        }
    }
    let mut all: Vec<Got> = Vec::new();
    for (k, h) in consumers.into_iter().enumerate() {
        match h.join() {
            Ok(got) => all.push(got),
            Err(e) => failures.push(format!("consumer {k}: {}", panic_text(&*e))),
        }
    }
    assert!(
        failures.is_empty(),
        "threads failed:\n{}",
        failures.join("\n")
    );
    let elapsed = shared.start.elapsed();

    // Exactly the sent set: every (producer, seq) once.
    let mut seen = vec![0u8; TOTAL as usize];
    for (c, got) in all.iter().enumerate() {
        println!("consumer {c}: {} messages", got.len());
        for &(p, seq) in got {
            let i = (p * PER_PRODUCER + seq) as usize;
            seen[i] += 1;
            assert_eq!(seen[i], 1, "message {p}/{seq} received twice");
        }
    }
    let lost: Vec<(u64, u64)> = seen
        .iter()
        .enumerate()
        .filter(|(_, &n)| n == 0)
        .map(|(i, _)| (i as u64 / PER_PRODUCER, i as u64 % PER_PRODUCER))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "lost messages (first 10): {lost:?}");

    let s = ring.stats();
    println!(
        "{TOTAL} messages in {elapsed:?}: {} inline, {} zero-copy",
        s.inline_count, s.zerocopy_count
    );
    assert_eq!((s.sent, s.received), (TOTAL, TOTAL));
    assert_eq!((s.head, s.tail), (TOTAL, TOTAL));
    assert_eq!(s.inline_count + s.zerocopy_count, TOTAL);
    assert_eq!(ring.recv(&mut vec![0u8; MAX]), Err(RingError::Empty));
    assert_eq!(
        (s.arena.blocks_in_use, s.arena.bytes_in_use),
        (0, 0),
        "arena at the end: {:?}",
        s.arena
    );
}
