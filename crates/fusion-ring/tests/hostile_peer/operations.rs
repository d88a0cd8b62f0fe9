//! Our side: a bounded mix of ring operations (every one non-blocking or
//! with a timeout of a few ms), with a tally of outcomes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fusion_ring::inspect::RingInfo;
use fusion_ring::{
    allocate_zerocopy_buffer, send_batch, send_inline, send_zerocopy, BatchMessage, FusionRing,
    InlineMessage, Payload, PriorityClass, RingError, RingSync, UltraFastRing, INLINE_MAX,
};
use testkit::rng::{fill, is_message, mix, Rng};
use testkit::watchdog::Beat;

/// A priority class at random.
fn priority(rng: &mut Rng) -> PriorityClass {
    PriorityClass::ALL[rng.below(5) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Send,
    SendLarge,
    Loan,
    SendBatch,
    BatchFn,
    InlineFn,
    ZeroCopyFn,
    SendTimeout,
    UltraSend,
    UltraBatch,
    Recv,
    RecvSmall,
    RecvMeta,
    RecvZc,
    RecvBatch,
    RecvTimeout,
    RecvZcTimeout,
    UltraRecv,
    UltraRecvBatch,
    WaitNotEmpty,
    WaitNotFull,
    Forward,
    DropHeld,
    Stats,
    UltraStats,
    RingStats,
    ArenaUsage,
    Len,
    Reopen,
    Inspect,
    Recover,
}

/// Every operation, in declaration order (`Op as usize` indexes it).
pub const ALL_OPS: [Op; 31] = [
    Op::Send,
    Op::SendLarge,
    Op::Loan,
    Op::SendBatch,
    Op::BatchFn,
    Op::InlineFn,
    Op::ZeroCopyFn,
    Op::SendTimeout,
    Op::UltraSend,
    Op::UltraBatch,
    Op::Recv,
    Op::RecvSmall,
    Op::RecvMeta,
    Op::RecvZc,
    Op::RecvBatch,
    Op::RecvTimeout,
    Op::RecvZcTimeout,
    Op::UltraRecv,
    Op::UltraRecvBatch,
    Op::WaitNotEmpty,
    Op::WaitNotFull,
    Op::Forward,
    Op::DropHeld,
    Op::Stats,
    Op::UltraStats,
    Op::RingStats,
    Op::ArenaUsage,
    Op::Len,
    Op::Reopen,
    Op::Inspect,
    Op::Recover,
];

pub const SEND_OPS: [Op; 11] = [
    Op::Send,
    Op::SendLarge,
    Op::Loan,
    Op::SendBatch,
    Op::BatchFn,
    Op::InlineFn,
    Op::ZeroCopyFn,
    Op::SendTimeout,
    Op::UltraSend,
    Op::UltraBatch,
    Op::WaitNotFull,
];
pub const RECV_OPS: [Op; 12] = [
    Op::Recv,
    Op::RecvSmall,
    Op::RecvMeta,
    Op::RecvZc,
    Op::RecvBatch,
    Op::RecvTimeout,
    Op::RecvZcTimeout,
    Op::UltraRecv,
    Op::UltraRecvBatch,
    Op::WaitNotEmpty,
    Op::Forward,
    Op::DropHeld,
];
pub const LOOK_OPS: [Op; 6] = [
    Op::Recover,
    Op::Stats,
    Op::UltraStats,
    Op::RingStats,
    Op::ArenaUsage,
    Op::Len,
];

pub fn op_name(op: Op) -> String {
    let s = format!("{op:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Operations named in `FRING_FUZZ_SKIP`.
pub fn skipped() -> &'static [String] {
    static SKIP: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("FRING_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Producer,
    Consumer,
    Any,
}

pub fn pick_op(rng: &mut Rng, role: Role) -> Op {
    for _ in 0..16 {
        let r = rng.below(100);
        let op = if r < 2 {
            if rng.pct(50) {
                Op::Reopen
            } else {
                Op::Inspect
            }
        } else if r < 10 {
            LOOK_OPS[rng.below(LOOK_OPS.len() as u64) as usize]
        } else {
            let sends = match role {
                Role::Producer => true,
                Role::Consumer => rng.pct(3),
                Role::Any => rng.pct(50),
            };
            if sends {
                SEND_OPS[rng.below(SEND_OPS.len() as u64) as usize]
            } else {
                RECV_OPS[rng.below(RECV_OPS.len() as u64) as usize]
            }
        };
        if !skipped().contains(&op_name(op)) {
            return op;
        }
    }
    Op::Len
}

/// Outcome counts of one worker.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ops: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Messages received whole (by any receive op).
    pub received: u64,
    /// Of those of at least 8 bytes: content as the producer wrote it, or not.
    pub intact: u64,
    pub garbled: u64,
    /// Errors no data operation should ever return.
    pub unexpected: Vec<String>,
}

pub fn outcome_name(e: &RingError) -> &'static str {
    match e {
        RingError::Full => "full",
        RingError::Empty => "empty",
        RingError::TooLarge { .. } => "too_large",
        RingError::BufferTooSmall { .. } => "too_small",
        RingError::Timeout => "timeout",
        RingError::Disconnected => "disconnected",
        RingError::ArenaExhausted { .. } => "exhausted",
        RingError::InvalidConfig { .. } => "no_arena",
        RingError::Corrupt(_) => "corrupt",
        RingError::VersionMismatch { .. } => "version",
        // A single-producer / single-consumer ring whose holder word was
        // scribbled to name a live handle's entry: refused, not lost.
        RingError::RoleTaken { .. } | RingError::NoEntryForRole { .. } => "role",
        // A broadcast ring whose role bits were scribbled to count more
        // subscribers than it admits: refused, not lost.
        RingError::TooManySubscribers { .. } => "role",
        // A subscriber of a ring that overwrites, passed by the publisher
        // (or one whose slot was scribbled to look a lap ahead).
        RingError::Lagged { .. } => "lagged",
        _ => "unexpected",
    }
}

impl Tally {
    pub fn note<T>(&mut self, op: Op, r: &Result<T, RingError>) {
        self.ops += 1;
        let name = match r {
            Ok(_) => "ok",
            Err(e) => outcome_name(e),
        };
        *self.outcomes.entry(name).or_default() += 1;
        if let (Err(e), "unexpected") = (r, name) {
            if self.unexpected.len() < 8 {
                self.unexpected.push(format!("{}: {e:?}", op_name(op)));
            }
        }
    }

    pub fn message(&mut self, bytes: &[u8]) {
        self.received += 1;
        if bytes.len() >= 8 {
            let tag = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            if is_message(tag, bytes) {
                self.intact += 1;
            } else {
                self.garbled += 1;
            }
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.ops += o.ops;
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.received += o.received;
        self.intact += o.intact;
        self.garbled += o.garbled;
        self.unexpected.extend(o.unexpected.iter().cloned());
    }

    pub fn get(&self, k: &str) -> u64 {
        self.outcomes.get(k).copied().unwrap_or(0)
    }

    /// `key=value ...`, parsed back by `parse_line`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "ops={} received={} intact={} garbled={}",
            self.ops, self.received, self.intact, self.garbled
        );
        for (k, v) in &self.outcomes {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

/// One handle on a ring playing a role, with payloads it holds on to.
pub struct Worker {
    f: FusionRing,
    u: UltraFastRing,
    name: Option<String>,
    rng: Rng,
    role: Role,
    held: Vec<Payload>,
    pub tally: Tally,
    beat: Arc<Beat>,
    next_tag: u64,
    big: Vec<u8>,
}

impl Worker {
    pub fn new(
        f: FusionRing,
        name: Option<String>,
        seed: u64,
        role: Role,
        beat: Arc<Beat>,
    ) -> Self {
        let u = UltraFastRing::from(f.as_ring().clone());
        let big = vec![0u8; f.max_message().max(64)];
        Worker {
            f,
            u,
            name,
            rng: Rng::new(seed),
            role,
            held: Vec::new(),
            tally: Tally::default(),
            beat,
            next_tag: mix(seed),
            big,
        }
    }

    fn message(&mut self, len: usize) -> Vec<u8> {
        self.next_tag = mix(self.next_tag);
        let mut v = vec![0u8; len];
        fill(self.next_tag, &mut v);
        v
    }

    /// A length for a message: mostly valid, sometimes one past the limit.
    fn len(&mut self, inline: bool) -> usize {
        let max = if inline {
            INLINE_MAX
        } else {
            self.f.max_message()
        };
        match self.rng.below(16) {
            0 => max + 1,
            1 => max,
            2..=7 => self.rng.range(0, INLINE_MAX.min(max)),
            _ => self.rng.range(0, max),
        }
    }

    fn timeout(&mut self) -> Duration {
        Duration::from_micros(500 + self.rng.below(2500))
    }

    fn hold(&mut self, p: Payload) {
        if self.held.len() < 4 && self.rng.pct(30) {
            if self.rng.pct(30) {
                // A clone is a second reference to the same block.
                self.held.push(p.clone());
            }
            self.held.push(p);
        }
    }

    pub fn step(&mut self) {
        let op = pick_op(&mut self.rng, self.role);
        self.beat.begin(op as usize);
        self.run(op);
    }

    fn run(&mut self, op: Op) {
        let max = self.f.max_message();
        match op {
            Op::Send | Op::SendLarge => {
                let len = self.len(op == Op::Send);
                let data = self.message(len);
                let prio = priority(&mut self.rng);
                let r = self.f.send_with_priority(&data, prio);
                self.tally.note(op, &r);
            }
            Op::Loan | Op::ZeroCopyFn => {
                let len = self.len(false);
                let fill = self.message(len);
                let send = self.rng.pct(70);
                let prio = priority(&mut self.rng);
                let loan = if op == Op::Loan {
                    self.f.loan(len)
                } else {
                    allocate_zerocopy_buffer(&self.f, len)
                };
                let r = match loan {
                    Ok(mut loan) => {
                        assert_eq!(loan.len(), len, "a loan has the length asked for");
                        // Writes every byte: a loan outside the arena faults.
                        loan.copy_from_slice(&fill);
                        if !send {
                            drop(loan);
                            Ok(())
                        } else if op == Op::Loan {
                            self.f.send_loan(loan, prio).map_err(|e| e.error)
                        } else {
                            send_zerocopy(&self.f, loan).map_err(|e| e.error)
                        }
                    }
                    Err(e) => Err(e),
                };
                self.tally.note(op, &r);
            }
            Op::SendBatch | Op::BatchFn | Op::UltraBatch => {
                let k = self.rng.range(1, 8);
                let inline = op != Op::SendBatch || self.rng.pct(50);
                let msgs: Vec<Vec<u8>> = (0..k)
                    .map(|_| {
                        let l = self.len(inline);
                        self.message(l)
                    })
                    .collect();
                let prio = priority(&mut self.rng);
                let r = if op == Op::UltraBatch {
                    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
                    self.u.send_batch(&refs, prio)
                } else {
                    let batch: Vec<BatchMessage<'_>> =
                        msgs.iter().map(|m| BatchMessage::new(m, prio)).collect();
                    if op == Op::SendBatch {
                        self.f.send_batch(&batch)
                    } else {
                        send_batch(&self.f, &batch)
                    }
                };
                if let Ok(n) = r {
                    assert!(n <= k, "{op:?} sent {n} of {k} messages");
                }
                self.tally.note(op, &r);
            }
            Op::InlineFn => {
                let l = self.len(true);
                let data = self.message(l);
                let r = send_inline(&self.u, &data);
                self.tally.note(op, &r);
            }
            Op::SendTimeout => {
                let l = self.len(false);
                let data = self.message(l);
                let t = self.timeout();
                let r = if self.rng.pct(50) {
                    self.f.send_with_timeout(&data, t)
                } else {
                    let prio = priority(&mut self.rng);
                    self.f.send_deadline(&data, prio, Instant::now() + t)
                };
                self.tally.note(op, &r);
            }
            Op::UltraSend => {
                let l = self.len(true);
                let data = self.message(l);
                let prio = priority(&mut self.rng);
                let r = self.u.send_fast(&data, prio);
                self.tally.note(op, &r);
            }
            Op::Recv | Op::RecvMeta | Op::RecvTimeout => {
                let mut buf = std::mem::take(&mut self.big);
                let r = match op {
                    Op::Recv => self.f.recv(&mut buf),
                    Op::RecvMeta => self.f.recv_with_meta(&mut buf).map(|(n, _, _)| n),
                    _ => {
                        let t = self.timeout();
                        self.f.recv_with_timeout(&mut buf, t)
                    }
                };
                if let Ok(n) = r {
                    assert!(n <= buf.len(), "{op:?}: length {n} > buffer {}", buf.len());
                    self.tally.message(&buf[..n]);
                }
                self.big = buf;
                self.tally.note(op, &r);
            }
            Op::RecvSmall | Op::UltraRecv => {
                let size = match self.rng.below(4) {
                    0 => INLINE_MAX,
                    1 => 64,
                    _ => self.rng.range(0, 48),
                };
                let mut buf = vec![0u8; size];
                let r = if op == Op::RecvSmall {
                    self.f.recv(&mut buf)
                } else {
                    self.u.recv_fast(&mut buf).map(|(n, _, _)| n)
                };
                if let Ok(n) = r {
                    assert!(n <= size, "{op:?}: length {n} > buffer {size}");
                    self.tally.message(&buf[..n]);
                }
                if let Err(RingError::BufferTooSmall { got, .. }) = &r {
                    assert_eq!(*got, size, "{op:?}: BufferTooSmall names the buffer");
                }
                self.check_too_small(op, &r);
                self.tally.note(op, &r);
            }
            Op::RecvZc | Op::RecvZcTimeout => {
                let r = if op == Op::RecvZc {
                    self.f.recv_zerocopy()
                } else {
                    let t = self.timeout();
                    self.f.recv_zerocopy_timeout(t)
                };
                self.tally.note(op, &r);
                if let Ok(p) = r {
                    self.check_payload(&p, max);
                    self.hold(p);
                }
            }
            Op::RecvBatch => {
                let k = self.rng.range(1, 8);
                let mut out = Vec::new();
                let r = self.f.recv_batch(&mut out, k);
                if let Ok(n) = r {
                    assert!(
                        n <= k && out.len() == n,
                        "recv_batch: {n} / {k} / {}",
                        out.len()
                    );
                }
                self.tally.note(op, &r);
                for p in out {
                    self.check_payload(&p, max);
                    self.hold(p);
                }
            }
            Op::UltraRecvBatch => {
                let k = self.rng.range(1, 8);
                let mut out = vec![InlineMessage::default(); k];
                let r = self.u.recv_batch(&mut out);
                self.check_too_small(op, &r);
                if let Ok(n) = r {
                    assert!(n <= k, "ultra recv_batch took {n} into {k}");
                    for m in &out[..n] {
                        assert!(m.len() <= INLINE_MAX && m.as_bytes().len() == m.len());
                        self.tally.message(m.as_bytes());
                    }
                }
                self.tally.note(op, &r);
            }
            Op::WaitNotEmpty | Op::WaitNotFull => {
                let t = self.timeout();
                let sync = RingSync::new(&self.f);
                let r = if op == Op::WaitNotEmpty {
                    sync.wait_not_empty_timeout(t)
                } else {
                    sync.wait_not_full_timeout(t)
                };
                if self.rng.pct(10) {
                    sync.wake_readers();
                    sync.wake_writers();
                }
                self.tally.note(op, &r);
            }
            Op::Forward => {
                if self.held.is_empty() {
                    return;
                }
                let i = self.rng.below(self.held.len() as u64) as usize;
                let prio = priority(&mut self.rng);
                let r = self.f.forward(&self.held[i], prio);
                self.tally.note(op, &r);
            }
            Op::DropHeld => {
                if !self.held.is_empty() {
                    let i = self.rng.below(self.held.len() as u64) as usize;
                    self.held.swap_remove(i);
                }
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Stats => {
                let s = self.f.stats();
                for l in &s.lanes {
                    std::hint::black_box((l.timed(), l.avg_latency(), l.latency_percentile(0.99)));
                }
                std::hint::black_box(&s);
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::UltraStats => {
                let s = self.u.stats();
                std::hint::black_box(&s);
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::RingStats => {
                let r = self.f.as_ring();
                std::hint::black_box((r.stats(), r.lane_stats()));
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::ArenaUsage => {
                std::hint::black_box(self.f.as_ring().arena_usage());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Len => {
                let r = self.f.as_ring();
                let len = r.len();
                assert!(len <= r.capacity(), "len {len} > capacity {}", r.capacity());
                std::hint::black_box(r.is_empty());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Recover => {
                // Reclaims what "dead" peers left: a scribbled pid or start
                // time makes a live peer look dead.
                std::hint::black_box(self.f.as_ring().recover());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Reopen => {
                let Some(name) = self.name.clone() else {
                    return;
                };
                let r = FusionRing::open(&name);
                if let Ok(g) = &r {
                    // One operation on the fresh handle.
                    let mut buf = [0u8; 64];
                    let _ = if self.rng.pct(50) {
                        g.send(b"reopened").map(drop)
                    } else {
                        g.recv(&mut buf).map(drop)
                    };
                }
                self.tally.note(op, &r.map(drop));
            }
            Op::Inspect => {
                let Some(name) = self.name.clone() else {
                    return;
                };
                let r = RingInfo::read(&name);
                if let Ok(info) = &r {
                    std::hint::black_box((info.has_live_participants(), info.is_stale()));
                }
                self.tally.note(op, &r.map(drop));
            }
        }
    }

    /// A message the ring may hold is at most its largest message: a
    /// `BufferTooSmall` asking for more names a scribbled length, which
    /// should be `Corrupt` (see `regression_buffer_too_small_...`).
    fn check_too_small<T>(&self, op: Op, r: &Result<T, RingError>) {
        if skipped().iter().any(|s| s == "too_small_check") {
            return;
        }
        if let Err(RingError::BufferTooSmall { needed, .. }) = r {
            let max = self.f.max_message().max(INLINE_MAX);
            assert!(
                *needed <= max,
                "{op:?}: BufferTooSmall asks for {needed} bytes, the ring's largest message is {max}"
            );
        }
    }

    fn check_payload(&mut self, p: &Payload, max: usize) {
        assert!(
            p.len() <= max.max(INLINE_MAX),
            "payload of {} bytes > max message {max}",
            p.len()
        );
        // Read every byte: a payload outside the mapping faults here.
        let sum = p.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        std::hint::black_box(sum);
        self.tally.message(p);
    }
}

#[test]
fn operation_table_is_complete_and_in_order() {
    for (i, &op) in ALL_OPS.iter().enumerate() {
        assert_eq!(op as usize, i, "{op:?}");
    }
    assert_eq!(op_name(Op::UltraRecvBatch), "ultra_recv_batch");
}
