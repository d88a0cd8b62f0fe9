//! Streams of `UltraFastRing` messages between two processes, checked byte
//! for byte: message `i` has a length in `0..=40` and bytes derived from
//! `i`, its first (up to) 8 bytes are `i` little-endian (so order is
//! checked), and its priority class is derived from `i` too. Building,
//! checking and sending them does not allocate (a forked child relies on
//! that).

use std::time::{Duration, Instant};

use fusion_ring::{InlineMessage, PriorityClass, RingError, UltraFastRing, INLINE_MAX};
use testkit::rng::mix;

/// Messages per stream.
pub const N: u64 = 1_000_000;
/// Longest any single wait (or a whole child run) may take.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Ring size of every stream test.
pub const CAPACITY: usize = 1024;
/// Same-priority runs of this many messages (so batches can carry one class).
pub const RUN: u64 = 8;

// ---------------------------------------------------------------------------
// Messages

pub fn msg_len(i: u64) -> usize {
    (mix(i) % (INLINE_MAX as u64 + 1)) as usize
}

pub fn msg_byte(i: u64, j: usize) -> u8 {
    if j < 8 {
        (i >> (8 * j)) as u8
    } else {
        (mix(i ^ 0x5555).rotate_left(7 * j as u32) as u8) ^ (j as u8).wrapping_mul(31)
    }
}

pub fn msg_priority(i: u64) -> PriorityClass {
    PriorityClass::ALL[((i / RUN) % PriorityClass::COUNT as u64) as usize]
}

/// Writes message `i` into `buf`; returns its length. Does not allocate.
pub fn fill(i: u64, buf: &mut [u8; INLINE_MAX]) -> usize {
    let len = msg_len(i);
    for (j, b) in buf[..len].iter_mut().enumerate() {
        *b = msg_byte(i, j);
    }
    len
}

/// How a received message differs from message `i`. Plain data: building
/// one does not allocate (the fork child relies on that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Len {
        expected: usize,
        got: usize,
    },
    Byte {
        at: usize,
        expected: u8,
        got: u8,
    },
    Priority {
        expected: PriorityClass,
        got: PriorityClass,
    },
}

impl Mismatch {
    /// `(code, a, b)` for the fork child's report pipe.
    pub fn encode(self) -> [u64; 3] {
        match self {
            Mismatch::Len { expected, got } => [1, expected as u64, got as u64],
            Mismatch::Byte { at, expected, got } => {
                [2, at as u64, (expected as u64) << 8 | got as u64]
            }
            Mismatch::Priority { expected, got } => [3, expected as u64, got as u64],
        }
    }
}

pub fn verify(i: u64, got: &[u8], priority: PriorityClass) -> Result<(), Mismatch> {
    let expected = msg_len(i);
    if got.len() != expected {
        return Err(Mismatch::Len {
            expected,
            got: got.len(),
        });
    }
    for (j, &b) in got.iter().enumerate() {
        let e = msg_byte(i, j);
        if b != e {
            return Err(Mismatch::Byte {
                at: j,
                expected: e,
                got: b,
            });
        }
    }
    if priority != msg_priority(i) {
        return Err(Mismatch::Priority {
            expected: msg_priority(i),
            got: priority,
        });
    }
    Ok(())
}

/// Panics with a readable report if the message is not message `i`.
pub fn check(who: &str, i: u64, got: &[u8], priority: PriorityClass) {
    if let Err(m) = verify(i, got, priority) {
        let mut buf = [0u8; INLINE_MAX];
        let len = fill(i, &mut buf);
        panic!(
            "{who}: message {i} is wrong: {m:?}\n  expected ({:?}) {:02x?}\n  got      ({priority:?}) {got:02x?}",
            msg_priority(i),
            &buf[..len],
        );
    }
}

// ---------------------------------------------------------------------------
// Waiting

/// Spin, then yield (2 cores: the peer needs the CPU), and say when it is
/// time to look at the clock and the peer.
pub struct Spin(pub u32);

impl Spin {
    #[inline]
    pub fn reset(&mut self) {
        self.0 = 0;
    }

    /// One wait step; true every 1024 consecutive steps.
    #[inline]
    pub fn step(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        if self.0 < 256 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        self.0.is_multiple_of(1024)
    }
}

/// Called while stalled, with the number of messages done so far; panics to
/// give up (deadline passed, peer gone).
pub type Stall<'a> = &'a mut dyn FnMut(u64);

pub fn deadline_check(who: &'static str, start: Instant) -> impl FnMut(u64) {
    move |done| {
        assert!(
            start.elapsed() < DEADLINE,
            "{who}: stalled after {done} messages, {DEADLINE:?} deadline passed"
        )
    }
}

// ---------------------------------------------------------------------------
// Streams

pub fn send_all_fast(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
    let mut buf = [0u8; INLINE_MAX];
    let mut spin = Spin(0);
    for i in 0..count {
        let len = fill(i, &mut buf);
        loop {
            match ring.send_fast(&buf[..len], msg_priority(i)) {
                Ok(()) => break,
                Err(RingError::Full) => {
                    if spin.step() {
                        stall(i);
                    }
                }
                Err(e) => panic!("{who}: send_fast of message {i}: {e}"),
            }
        }
        spin.reset();
    }
}

/// Sends with `send_batch`, one batch per same-priority run, taking the
/// prefix the ring accepts.
pub fn send_all_batched(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
    let mut bufs = [[0u8; INLINE_MAX]; RUN as usize];
    let mut spin = Spin(0);
    let mut i = 0;
    while i < count {
        let end = ((i / RUN + 1) * RUN).min(count);
        let mut lens = [0usize; RUN as usize];
        for k in i..end {
            let slot = (k - i) as usize;
            lens[slot] = fill(k, &mut bufs[slot]);
        }
        let n = (end - i) as usize;
        let msgs: [&[u8]; RUN as usize] = std::array::from_fn(|s| &bufs[s][..lens[s]]);
        match ring.send_batch(&msgs[..n], msg_priority(i)) {
            Ok(sent) => {
                assert!(
                    (1..=n).contains(&sent),
                    "{who}: send_batch of {n} sent {sent}"
                );
                i += sent as u64;
                spin.reset();
            }
            Err(RingError::Full) => {
                if spin.step() {
                    stall(i);
                }
            }
            Err(e) => panic!("{who}: send_batch at message {i}: {e}"),
        }
    }
}

pub fn recv_all_fast(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
    let mut buf = [0u8; 64];
    let mut spin = Spin(0);
    for i in 0..count {
        loop {
            match ring.recv_fast(&mut buf) {
                Ok((len, priority, _latency)) => {
                    check(who, i, &buf[..len], priority);
                    break;
                }
                Err(RingError::Empty) => {
                    if spin.step() {
                        stall(i);
                    }
                }
                Err(e) => panic!("{who}: recv_fast of message {i}: {e}"),
            }
        }
        spin.reset();
    }
    assert_eq!(
        ring.recv_fast(&mut buf).err(),
        Some(RingError::Empty),
        "{who}: a message beyond the {count} sent"
    );
}

pub fn recv_all_batched(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
    let mut out = [InlineMessage::default(); 32];
    let mut spin = Spin(0);
    let mut i = 0;
    while i < count {
        match ring.recv_batch(&mut out) {
            Ok(n) => {
                assert!(
                    (1..=out.len()).contains(&n),
                    "{who}: recv_batch returned {n}"
                );
                assert!(
                    i + n as u64 <= count,
                    "{who}: {} messages, only {count} were sent",
                    i + n as u64
                );
                for m in &out[..n] {
                    check(who, i, m.as_bytes(), m.priority());
                    i += 1;
                }
                spin.reset();
            }
            Err(RingError::Empty) => {
                if spin.step() {
                    stall(i);
                }
            }
            Err(e) => panic!("{who}: recv_batch at message {i}: {e}"),
        }
    }
    assert_eq!(
        ring.recv_batch(&mut out).err(),
        Some(RingError::Empty),
        "{who}: a message beyond the {count} sent"
    );
}

/// Checks the shared statistics after a finished stream of `count` messages
/// (both sides done, so every counter is final).
pub fn assert_stream_stats(ring: &UltraFastRing, count: u64) {
    let s = ring.stats();
    assert_eq!(
        (s.sent, s.received),
        (count, count),
        "sent / received in the shared segment"
    );
    let mut per_lane = [0u64; PriorityClass::COUNT];
    let mut bytes = 0u64;
    for i in 0..count {
        per_lane[msg_priority(i).lane()] += 1;
        bytes += msg_len(i) as u64;
    }
    for (lane, l) in s.lanes.iter().enumerate() {
        assert_eq!(
            (l.sent, l.received),
            (per_lane[lane], per_lane[lane]),
            "lane {lane}"
        );
        assert_eq!(l.inline_sent, per_lane[lane], "lane {lane} inline_sent");
    }
    let sent_bytes: u64 = s.lanes.iter().map(|l| l.sent_bytes).sum();
    let received_bytes: u64 = s.lanes.iter().map(|l| l.received_bytes).sum();
    assert_eq!(
        (sent_bytes, received_bytes),
        (bytes, bytes),
        "payload bytes"
    );
    let rs = ring.as_ring().stats();
    assert_eq!((rs.head, rs.tail, rs.inline_count), (count, count, count));
    assert!(ring.as_ring().is_empty());
}
