//! `FusionRing` across real processes: byte-exact round trips of every size
//! class, arena accounting after a long mixed stream (clones, forwards),
//! no lost wake-ups with sleeping receivers and sleeping senders, and no
//! sleeping at all in a busy stream.
//!
//! Children are this test binary itself, re-run with `--exact <child test>`
//! (`common::child`); a `child_*` test returns at once unless it was
//! spawned to play that role. Parameters travel in `FUSION_XP_*`
//! variables. Every child is killed and reaped if the parent gives up, and
//! the parent never blocks without a deadline: its blocking calls are
//! `send_until` / `recv_until` with a deadline a short slice ahead (the very
//! futex wait `send_blocking` / `recv_blocking` use, which are those calls
//! with no deadline), and between slices it checks that its children live
//! and that the test's deadline has not passed. Children use the unbounded
//! `send_blocking` / `recv_blocking`: if they hang, the parent kills them.
//!
//! Message `i` of a stream has bytes derived from `i` and the byte index;
//! when it is at least 8 bytes long its first 8 bytes are `i` little-endian.

#![cfg(not(fusion_ring_loom))]

mod common;
use common::child::{child_var, is_child, recv_fd, send_fd, serial, ChildGuard, PathGuard};
use common::{fill, mix, Rng};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, Loan, LoanError, Payload, PriorityClass, RingError};

/// Longest a whole test (or a child) may take before it is failed.
const DEADLINE: Duration = Duration::from_secs(60);
/// Longest single blocking call of the parent between two checks.
const SLICE: Duration = Duration::from_millis(250);

/// `name:<ring name>` or `sock:<unix socket path>` (memfd over SCM_RIGHTS).
const TARGET_VAR: &str = "FUSION_XP_TARGET";
const COUNT_VAR: &str = "FUSION_XP_COUNT";
const ID_VAR: &str = "FUSION_XP_ID";
const OUT_VAR: &str = "FUSION_XP_OUT";

// ---------------------------------------------------------------------------
// Message contents

/// Panics with the first difference if `got` is not message `tag` of
/// `len` bytes. `scratch` must hold at least `len` bytes.
fn check_bytes(who: &str, tag: u64, len: usize, got: &[u8], scratch: &mut [u8]) {
    assert_eq!(
        got.len(),
        len,
        "{who}: message {tag} has length {}, expected {len}",
        got.len()
    );
    let want = &mut scratch[..len];
    fill(tag, want);
    if got != &want[..] {
        let at = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        let at = at.expect("slices differ");
        panic!(
            "{who}: message {tag} ({len} bytes) differs at byte {at}: got {:#04x}, expected {:#04x} \
             (got[{at}..] = {:02x?}, expected {:02x?})",
            got[at],
            want[at],
            &got[at..(at + 16).min(len)],
            &want[at..(at + 16).min(len)],
        );
    }
}

/// The index a message of at least 8 bytes carries.
fn header(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn priority_of(i: u64) -> PriorityClass {
    PriorityClass::ALL[(mix(i ^ 0xABCD) % PriorityClass::COUNT as u64) as usize]
}

// ---------------------------------------------------------------------------
// Processes

fn unique(tag: &str) -> String {
    common::child::unique_name(&format!("fr-fxp-{tag}"))
}

fn child_count() -> u64 {
    child_var(COUNT_VAR).parse().expect("child: count")
}

/// The parent's watchdog: children alive (or successfully done) and the
/// deadline not passed.
struct Watch<'a> {
    start: Instant,
    children: &'a mut [ChildGuard],
}

impl Watch<'_> {
    fn check(&mut self, what: &str) {
        for c in self.children.iter_mut() {
            c.assert_running();
        }
        assert!(
            self.start.elapsed() < DEADLINE,
            "parent: {what}: the {DEADLINE:?} deadline passed (watchdog; children are killed)"
        );
    }
}

/// Spin, then yield, then nap; says every 256 steps that it is time to
/// look at the clock and the children.
struct Backoff(u32);

impl Backoff {
    fn step(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        if self.0 < 64 {
            std::hint::spin_loop();
        } else if self.0 < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.0.is_multiple_of(256)
    }
}

// --- rings and fds ------------------------------------------------------------

/// How a child reaches the parent's ring.
enum Share {
    Named(String),
    /// A memfd ring; the socket the fd is handed over on.
    Socket {
        listener: UnixListener,
        path: PathGuard,
    },
}

impl Share {
    /// Creates the ring: named under `/dev/shm`, or an anonymous memfd.
    fn create(named: bool, config: &Config) -> (FusionRing, Share) {
        if named {
            let name = unique("ring");
            let ring = FusionRing::create(&name, config).expect("create named ring");
            (ring, Share::Named(name))
        } else {
            let ring = FusionRing::with_config(config).expect("create memfd ring");
            let path = PathGuard(std::env::temp_dir().join(format!("{}.sock", unique("sock"))));
            let listener = UnixListener::bind(&path.0).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            (ring, Share::Socket { listener, path })
        }
    }

    fn target(&self) -> String {
        match self {
            Share::Named(name) => format!("name:{name}"),
            Share::Socket { path, .. } => format!("sock:{}", path.0.to_str().expect("utf-8")),
        }
    }

    /// Hands the memfd to every one of `children` that connects (named
    /// rings: nothing to do).
    fn hand_over(&self, ring: &FusionRing, watch: &mut Watch<'_>) {
        let Share::Socket { listener, .. } = self else {
            return;
        };
        for _ in 0..watch.children.len() {
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        watch.check("waiting for a child to connect");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).expect("blocking");
            send_fd(&stream, ring.as_fd());
        }
    }
}

/// The child's side of [`Share`].
fn open_target() -> FusionRing {
    let target = child_var(TARGET_VAR);
    if let Some(name) = target.strip_prefix("name:") {
        FusionRing::open(name).unwrap_or_else(|e| panic!("child: open {name}: {e}"))
    } else if let Some(path) = target.strip_prefix("sock:") {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("child: connect {path}: {e}"));
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let ring =
            FusionRing::from_fd(recv_fd(&stream)).unwrap_or_else(|e| panic!("child: from_fd: {e}"));
        assert!(ring.as_ring().label().starts_with("fd "));
        ring
    } else {
        panic!("child: bad target {target}")
    }
}

// --- the parent's watched blocking calls -------------------------------------

/// `send_blocking` under the watchdog (see the module docs).
fn send_watched(ring: &FusionRing, data: &[u8], priority: PriorityClass, watch: &mut Watch<'_>) {
    loop {
        match ring.send_until(data, priority, Some(Instant::now() + SLICE)) {
            Ok(()) => return,
            Err(RingError::Timeout) => watch.check("blocked in send"),
            Err(e) => panic!("parent: send of {} bytes: {e}", data.len()),
        }
    }
}

/// A loan of `len` bytes, waiting while the arena is exhausted.
fn loan_watched<'r>(ring: &'r FusionRing, len: usize, watch: &mut Watch<'_>) -> Loan<'r> {
    let mut backoff = Backoff(0);
    loop {
        match ring.loan(len) {
            Ok(loan) => {
                assert_eq!(loan.len(), len);
                return loan;
            }
            Err(RingError::ArenaExhausted { len: l }) => {
                assert_eq!(l, len, "ArenaExhausted names the length asked for");
                if backoff.step() {
                    watch.check("waiting for an arena block");
                }
            }
            Err(e) => panic!("parent: loan of {len} bytes: {e}"),
        }
    }
}

/// Sends a filled loan, waiting while the ring is full.
fn send_loan_watched<'r>(
    ring: &'r FusionRing,
    mut loan: Loan<'r>,
    priority: PriorityClass,
    watch: &mut Watch<'_>,
) {
    loop {
        match ring.send_loan(loan, priority) {
            Ok(()) => return,
            Err(LoanError {
                error: RingError::Full,
                loan: back,
            }) => {
                loan = back;
                if ring.sync().wait_not_full_timeout(SLICE) == Err(RingError::Timeout) {
                    watch.check("blocked in send_loan");
                }
            }
            Err(e) => panic!("parent: send_loan: {}", e.error),
        }
    }
}

/// Carves one block of the largest class and gives it back, so the arena
/// always has a block for the largest message. (Blocks are never merged:
/// without this, a long run of small blocks could carve the whole arena
/// before the first maximum-size message, which could then never be sent.)
fn precarve_largest(ring: &FusionRing) {
    drop(
        ring.loan(ring.max_message())
            .expect("loan of the largest size"),
    );
    assert_eq!(ring.stats().arena.blocks_in_use, 0);
}

fn assert_arena_empty(who: &str, ring: &FusionRing) {
    let a = ring.stats().arena;
    assert_eq!(
        (a.blocks_in_use, a.bytes_in_use),
        (0, 0),
        "{who}: arena blocks / bytes still in use: {a:?}"
    );
}

/// Voluntary context switches of the calling thread so far (it slept).
fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("voluntary_ctxt_switches line")
        .trim()
        .parse()
        .expect("a number")
}

/// The number after `key` in the child's output (libtest may print its
/// `test name ... ` prefix on the same line).
fn report_value(output: &str, key: &str) -> u64 {
    let at = output
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in the child's output:\n{output}"));
    output[at + key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in:\n{output}"))
}

// ===========================================================================
// (a) Byte-exact round trips of every size, 0 ..= the maximum message

/// Sizes of one round: 0..=256, every class boundary (64 << c) - 1, 64 << c,
/// (64 << c) + 1 up to the maximum, and pseudo-random sizes.
fn round_trip_sizes(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..=256).collect();
    let mut c = 0;
    while 64usize << c <= max {
        let b = 64usize << c;
        sizes.extend([b - 1, b, b + 1].into_iter().filter(|&s| s <= max));
        c += 1;
    }
    assert!(sizes.contains(&max), "the maximum is a class boundary");
    let mut rng = Rng(0x05EE_DA11);
    for k in 0..320 {
        sizes.push(if k % 5 == 0 {
            rng.range(0, max)
        } else {
            rng.log_range(1, max)
        });
    }
    sizes
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SendMode {
    /// `send` (copies the bytes into a block, or inline).
    Copy,
    /// `loan` + fill in place + `send_loan` (zero-copy at every size).
    Loan,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RecvMode {
    /// `recv_blocking` / `recv_until` into a buffer.
    Copy,
    /// `recv_zerocopy_timeout(None)`.
    ZeroCopy,
}

/// The whole stream: every size in every (send, receive) combination.
fn round_trip_plan(max: usize) -> Vec<(SendMode, RecvMode, usize)> {
    let sizes = round_trip_sizes(max);
    let mut plan = Vec::new();
    for (s, r) in [
        (SendMode::Copy, RecvMode::Copy),
        (SendMode::Loan, RecvMode::Copy),
        (SendMode::Copy, RecvMode::ZeroCopy),
        (SendMode::Loan, RecvMode::ZeroCopy),
    ] {
        plan.extend(sizes.iter().map(|&len| (s, r, len)));
    }
    plan
}

/// Ring for the round trips: a small ring (senders wait for slots) and an
/// arena that holds only 3 maximum-size blocks (they wait for blocks too).
fn round_trip_config() -> Config {
    Config::new(16).arena_bytes(4 << 20)
}

fn round_trip(named: bool) {
    let _serial = serial();
    let (ring, share) = Share::create(named, &round_trip_config());
    let max = ring.max_message();
    assert_eq!(max, 1 << 20);
    precarve_largest(&ring);
    let plan = round_trip_plan(max);

    let mut children = [ChildGuard::spawn(
        "child_round_trip_receiver",
        &[(TARGET_VAR, share.target())],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        children: &mut children,
    };
    share.hand_over(&ring, &mut watch);

    let mut scratch = vec![0u8; max];
    for (i, &(send_mode, _, len)) in plan.iter().enumerate() {
        let (i, priority) = (i as u64, priority_of(i as u64));
        match send_mode {
            SendMode::Copy => {
                fill(i, &mut scratch[..len]);
                send_watched(&ring, &scratch[..len], priority, &mut watch);
            }
            SendMode::Loan => {
                let mut loan = loan_watched(&ring, len, &mut watch);
                fill(i, &mut loan);
                send_loan_watched(&ring, loan, priority, &mut watch);
            }
        }
    }
    let output = children[0].wait_success(start, DEADLINE);
    println!(
        "round trip ({}): child says: {}",
        share.target(),
        output.trim()
    );

    let count = plan.len() as u64;
    let zerocopy = plan
        .iter()
        .filter(|(s, _, len)| *s == SendMode::Loan || *len > fusion_ring::INLINE_MAX)
        .count() as u64;
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (count, count));
    assert_eq!(
        (s.zerocopy_count, s.inline_count),
        (zerocopy, count - zerocopy)
    );
    assert_eq!((s.head, s.tail), (count, count));
    assert_eq!(ring.recv(&mut scratch), Err(RingError::Empty));
    assert_arena_empty("parent", &ring);
}

#[test]
fn round_trip_every_size_named_ring() {
    round_trip(true);
}

#[test]
fn round_trip_every_size_memfd_over_unix_socket() {
    round_trip(false);
}

#[test]
fn child_round_trip_receiver() {
    if !is_child("child_round_trip_receiver") {
        return;
    }
    let ring = open_target();
    let max = ring.max_message();
    let plan = round_trip_plan(max);
    let mut buf = vec![0u8; max];
    let mut scratch = vec![0u8; max];
    let mut held: Option<Payload> = None;
    for (i, &(send_mode, recv_mode, len)) in plan.iter().enumerate() {
        let (i, priority) = (i as u64, priority_of(i as u64));
        let zerocopy = send_mode == SendMode::Loan || len > fusion_ring::INLINE_MAX;
        let who = format!("child ({send_mode:?} -> {recv_mode:?}, {len} bytes)");
        match recv_mode {
            RecvMode::Copy if i % 2 == 0 => {
                // A buffer of the maximum size: no length check needed.
                let n = ring.recv_blocking(&mut buf).expect("recv_blocking");
                check_bytes(&who, i, len, &buf[..n], &mut scratch);
            }
            RecvMode::Copy => {
                // A buffer of exactly the message's size.
                let (n, p, _) = ring
                    .recv_until(&mut buf[..len], None)
                    .expect("recv_until with an exact buffer");
                check_bytes(&who, i, len, &buf[..n], &mut scratch);
                assert_eq!(p, priority, "{who}: priority of message {i}");
            }
            RecvMode::ZeroCopy => {
                let payload = match ring.recv_zerocopy() {
                    Ok(p) => p,
                    Err(RingError::Empty) => {
                        // Never sleep holding a block the sender may wait for.
                        if let Some(old) = held.take() {
                            check_bytes(&who, header(&old), old.len(), &old, &mut scratch);
                        }
                        ring.recv_zerocopy_timeout(None)
                            .expect("recv_zerocopy_timeout")
                    }
                    Err(e) => panic!("{who}: recv_zerocopy: {e}"),
                };
                check_bytes(&who, i, len, &payload, &mut scratch);
                assert_eq!(payload.priority(), priority, "{who}: priority of {i}");
                assert_eq!(payload.is_zerocopy(), zerocopy, "{who}: path of {i}");
                // Keep every other payload until after the next receive, so
                // a block is read while the sender reuses others.
                if let Some(old) = held.take() {
                    let old_i = header(&old);
                    check_bytes(&who, old_i, old.len(), &old, &mut scratch);
                }
                if len >= 8 && i % 2 == 1 {
                    held = Some(payload);
                }
            }
        }
    }
    if let Some(old) = held.take() {
        check_bytes(
            "child (last held)",
            header(&old),
            old.len(),
            &old,
            &mut scratch,
        );
    }
    assert_eq!(
        ring.recv(&mut buf),
        Err(RingError::Empty),
        "an extra message"
    );
    assert_arena_empty("child", &ring);
    println!("received {} messages", plan.len());
}

// ===========================================================================
// (b) Arena usage back to zero after a long mixed stream

const ARENA_STREAM: u64 = 1_000_000;
const ARENA_MAX: usize = 64 << 10;

/// Length of message `i` of the arena stream: mostly inline, 7 % zero-copy
/// of 41 B .. 64 KiB (log-uniform).
fn arena_len(i: u64) -> usize {
    let mut rng = Rng(i ^ 0xA2E7A);
    if rng.below(100) < 7 {
        rng.log_range(fusion_ring::INLINE_MAX + 1, ARENA_MAX)
    } else {
        rng.range(0, fusion_ring::INLINE_MAX)
    }
}

#[test]
fn arena_usage_returns_to_zero_after_a_million_mixed_messages() {
    let _serial = serial();
    let config = Config::new(256)
        .arena_bytes(16 << 20)
        .max_message(ARENA_MAX);
    let (ring, share) = Share::create(false, &config);
    precarve_largest(&ring);
    let mut children = [ChildGuard::spawn(
        "child_arena_consumer",
        &[
            (TARGET_VAR, share.target()),
            (COUNT_VAR, ARENA_STREAM.to_string()),
        ],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        children: &mut children,
    };
    share.hand_over(&ring, &mut watch);

    let mut scratch = vec![0u8; ARENA_MAX];
    let mut rng = Rng(0xB0B);
    let mut backoff = Backoff(0);
    for i in 0..ARENA_STREAM {
        let len = arena_len(i);
        let priority = priority_of(i);
        if len > fusion_ring::INLINE_MAX && rng.below(2) == 0 {
            let mut loan = loan_watched(&ring, len, &mut watch);
            fill(i, &mut loan);
            send_loan_watched(&ring, loan, priority, &mut watch);
            continue;
        }
        fill(i, &mut scratch[..len]);
        loop {
            match ring.send_with_priority(&scratch[..len], priority) {
                Ok(()) => break,
                Err(RingError::Full | RingError::ArenaExhausted { .. }) => {
                    if backoff.step() {
                        watch.check("streaming");
                    }
                }
                Err(e) => panic!("parent: send of message {i}: {e}"),
            }
        }
        backoff.0 = 0;
    }
    let output = children[0].wait_success(start, DEADLINE);
    println!("arena stream: child says: {}", output.trim());
    let forwarded = report_value(&output, "forwarded:");
    assert!(forwarded > 0, "the child forwarded nothing");

    let s = ring.stats();
    let total = ARENA_STREAM + forwarded;
    assert_eq!((s.sent, s.received), (total, total));
    assert_eq!((s.head, s.tail), (total, total));
    assert_eq!(ring.recv(&mut scratch), Err(RingError::Empty));
    assert_arena_empty("parent", &ring);
}

/// The arena consumer's view of the stream: originals arrive in order,
/// forwarded copies come back in the order they were forwarded (one consumer).
struct ArenaTracker {
    /// Next original message expected.
    next: u64,
    /// Indexes of forwarded copies still to come back.
    coming_back: std::collections::VecDeque<u64>,
    scratch: Vec<u8>,
}

impl ArenaTracker {
    /// Checks one received message; returns whether it is an original.
    fn accept(&mut self, bytes: &[u8], priority: PriorityClass) -> bool {
        // Only messages of 8 bytes or more are forwarded, and those carry
        // their index: one from the past is a copy coming back.
        if bytes.len() >= 8 && header(bytes) < self.next {
            let i = header(bytes);
            assert_eq!(
                self.coming_back.pop_front(),
                Some(i),
                "child: message {i} came back, but not in the order forwarded"
            );
            check_bytes(
                "child (forwarded copy)",
                i,
                arena_len(i),
                bytes,
                &mut self.scratch,
            );
            assert_eq!(priority, priority_of(i), "forwarded priority");
            return false;
        }
        let i = self.next;
        check_bytes("child", i, arena_len(i), bytes, &mut self.scratch);
        assert_eq!(priority, priority_of(i), "priority of {i}");
        self.next += 1;
        true
    }

    /// Checks a payload held for a while (its block must not have been reused).
    fn recheck(&mut self, p: &Payload) {
        check_bytes(
            "child (held clone)",
            header(p),
            p.len(),
            p,
            &mut self.scratch,
        );
    }
}

#[test]
fn child_arena_consumer() {
    if !is_child("child_arena_consumer") {
        return;
    }
    let ring = open_target();
    let count = child_count();
    let start = Instant::now();
    let mut rng = Rng(0xC0FFEE);
    let mut buf = vec![0u8; ARENA_MAX];
    let mut t = ArenaTracker {
        next: 0,
        coming_back: Default::default(),
        scratch: vec![0u8; ARENA_MAX],
    };
    // Clones held for a while, and payloads waiting to be forwarded.
    let mut held: std::collections::VecDeque<Payload> = Default::default();
    let mut to_forward: std::collections::VecDeque<Payload> = Default::default();
    let (mut forwarded, mut cloned, mut backoff) = (0u64, 0u64, Backoff(0));
    let mut batch = Vec::new();

    while t.next < count || !t.coming_back.is_empty() || !to_forward.is_empty() {
        let got = match rng.below(8) {
            0..=2 => ring.recv_with_meta(&mut buf).map(|(n, p, _)| {
                t.accept(&buf[..n], p);
            }),
            3 => {
                batch.clear();
                ring.recv_batch(&mut batch, 8).map(|n| {
                    assert_eq!(n, batch.len());
                    for p in &batch {
                        t.accept(p, p.priority());
                    }
                })
            }
            _ => ring.recv_zerocopy().map(|p| {
                let original = t.accept(&p, p.priority());
                let roll = rng.below(16);
                if original && p.len() >= 8 && roll < 2 && to_forward.len() < 32 {
                    to_forward.push_back(p);
                } else if roll < 5 && p.len() >= 8 {
                    // Keep a clone, drop the original now.
                    held.push_back(p.clone());
                    cloned += 1;
                    drop(p);
                    if held.len() > 64 {
                        let old = held.pop_front().expect("held");
                        t.recheck(&old);
                    }
                }
            }),
        };
        match got {
            Ok(()) => backoff.0 = 0,
            Err(RingError::Empty) => {
                // Quiet ring: let go of everything held (the sender may be
                // waiting for a block).
                while let Some(old) = held.pop_front() {
                    t.recheck(&old);
                }
                if backoff.step() {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "child: stalled at message {}",
                        t.next
                    );
                }
            }
            Err(e) => panic!("child: receive after message {}: {e}", t.next),
        }
        // Forward what waits, as long as the ring takes it.
        while let Some(p) = to_forward.front() {
            match ring.forward(p, p.priority()) {
                Ok(()) => {
                    t.coming_back.push_back(header(p));
                    forwarded += 1;
                    to_forward.pop_front();
                }
                Err(RingError::Full) => break,
                Err(e) => panic!("child: forward: {e}"),
            }
        }
    }
    while let Some(old) = held.pop_front() {
        t.recheck(&old);
    }
    drop(batch);
    assert_eq!(
        ring.recv(&mut buf),
        Err(RingError::Empty),
        "an extra message"
    );
    assert_arena_empty("child", &ring);
    println!("cloned: {cloned}");
    println!("forwarded: {forwarded}");
}

// ===========================================================================
// (c) No lost wake-ups: sleeping receivers, then sleeping senders

const WAKE_STREAM: u64 = 200_000;
const RECEIVERS: usize = 2;
/// Sent once per receiver after the stream: "stop".
const SENTINEL: u64 = u64::MAX;

fn wake_len(i: u64) -> usize {
    let mut rng = Rng(i ^ 0x3A4E);
    if rng.below(100) < 15 {
        rng.range(fusion_ring::INLINE_MAX + 1, 2048)
    } else {
        rng.range(8, fusion_ring::INLINE_MAX)
    }
}

/// Removes the receivers' report (and ready) files on drop.
struct FileGuard(Vec<PathBuf>);

impl Drop for FileGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(ready_path(p));
        }
    }
}

fn ready_path(out: &std::path::Path) -> PathBuf {
    out.with_extension("ready")
}

#[test]
fn no_lost_wakeups_with_two_sleeping_receiver_processes() {
    let _serial = serial();
    let (ring, share) = Share::create(true, &Config::new(128));
    let files = FileGuard(
        (0..RECEIVERS)
            .map(|r| std::env::temp_dir().join(format!("{}.idx", unique(&format!("rx{r}")))))
            .collect(),
    );
    let mut children: Vec<ChildGuard> = files
        .0
        .iter()
        .enumerate()
        .map(|(r, path)| {
            ChildGuard::spawn(
                "child_sleeping_receiver",
                &[
                    (TARGET_VAR, share.target()),
                    (ID_VAR, r.to_string()),
                    (OUT_VAR, path.to_str().expect("utf-8").to_string()),
                ],
            )
        })
        .collect();
    let start = Instant::now();
    let mut watch = Watch {
        start,
        children: &mut children,
    };

    // Wait until both receivers have opened the ring (each touches a
    // `.ready` file), so every message below finds them attached, and most
    // bursts find them asleep.
    for path in &files.0 {
        let ready = ready_path(path);
        while !ready.exists() {
            watch.check("waiting for the receivers to attach");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(5));

    let mut rng = Rng(0xB0257);
    let mut scratch = vec![0u8; 4096];
    let (mut i, mut bursts) = (0u64, 0u64);
    while i < WAKE_STREAM {
        // A burst: often a single message (the receivers are asleep when it
        // comes), else up to twice the ring (the sender sleeps too).
        let burst = if rng.below(4) == 0 {
            1 + rng.below(3)
        } else {
            1 + rng.below(256)
        };
        for _ in 0..burst.min(WAKE_STREAM - i) {
            let len = wake_len(i);
            fill(i, &mut scratch[..len]);
            send_watched(&ring, &scratch[..len], PriorityClass::Normal, &mut watch);
            i += 1;
        }
        bursts += 1;
        // A pause of 0 .. 2 ms: long enough for the receivers to spin out
        // and go to sleep on the futex.
        let pause = rng.below(2000);
        if pause >= 100 {
            std::thread::sleep(Duration::from_micros(pause));
        }
        if bursts % 64 == 0 {
            watch.check("streaming bursts");
        }
    }
    for _ in 0..RECEIVERS {
        send_watched(
            &ring,
            &SENTINEL.to_le_bytes(),
            PriorityClass::Normal,
            &mut watch,
        );
    }
    let mut seen = vec![false; WAKE_STREAM as usize];
    for (r, child) in children.iter_mut().enumerate() {
        let output = child.wait_success(start, DEADLINE);
        println!("receiver {r}: {}", output.trim());
        let bytes = std::fs::read(&files.0[r]).expect("receiver's index file");
        assert_eq!(bytes.len() % 8, 0);
        for c in bytes.chunks_exact(8) {
            let i = u64::from_le_bytes(c.try_into().expect("8"));
            assert!(i < WAKE_STREAM, "receiver {r} reports index {i}");
            assert!(!seen[i as usize], "message {i} received twice");
            seen[i as usize] = true;
        }
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i)
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "messages never received: {missing:?}..."
    );
    println!("{bursts} bursts in {:?}", start.elapsed());
    let s = ring.stats();
    let total = WAKE_STREAM + RECEIVERS as u64;
    assert_eq!((s.sent, s.received), (total, total));
    assert_arena_empty("parent", &ring);
}

#[test]
fn child_sleeping_receiver() {
    if !is_child("child_sleeping_receiver") {
        return;
    }
    let ring = open_target();
    let id = child_var(ID_VAR);
    let out = PathBuf::from(child_var(OUT_VAR));
    let mut buf = vec![0u8; 4096];
    let mut scratch = vec![0u8; 4096];
    let mut got: Vec<u64> = Vec::new();
    let (mut slow, mut max_latency) = (0u64, 0u64);
    // (Calibrates the clock: about 20 ms, before saying "ready".)
    let slow_ticks = (fusion_ring::Clock::ticks_per_ns() * 10e6) as u64;
    std::fs::write(ready_path(&out), b"").expect("ready file");
    let before = voluntary_switches();
    loop {
        let n = if got.len().is_multiple_of(2) {
            ring.recv_blocking(&mut buf).expect("recv_blocking")
        } else {
            let (n, _, latency) = ring.recv_until(&mut buf, None).expect("recv_until");
            max_latency = max_latency.max(latency);
            slow += u64::from(latency > slow_ticks);
            n
        };
        assert!(n >= 8, "receiver {id}: a {n}-byte message");
        let i = header(&buf[..n]);
        if i == SENTINEL {
            assert_eq!(n, 8);
            break;
        }
        assert!(i < WAKE_STREAM, "receiver {id}: index {i}");
        check_bytes(
            &format!("receiver {id}"),
            i,
            wake_len(i),
            &buf[..n],
            &mut scratch,
        );
        // One producer: each receiver sees its share in send order.
        if let Some(&last) = got.last() {
            assert!(i > last, "receiver {id}: {i} after {last}");
        }
        got.push(i);
    }
    let slept = voluntary_switches() - before;
    let bytes: Vec<u8> = got.iter().flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&out, bytes).expect("write the index file");
    // Diagnostics only (no timed assertion): a lost wake-up would show as a
    // message waiting for a whole 20 ms sleep slice.
    println!(
        "received {} messages, slept {slept} times, {slow} of the timed ones waited over 10 ms \
         (max {:?})",
        got.len(),
        fusion_ring::Clock::ticks_to_duration(max_latency)
    );
}

const SENDERS: u64 = 2;
const SENDER_STREAM: u64 = 40_000;

fn sender_len(p: u64, seq: u64) -> usize {
    let mut rng = Rng(p << 40 ^ seq ^ 0x5E7D);
    if rng.below(100) < 20 {
        rng.range(fusion_ring::INLINE_MAX + 1, 1024)
    } else {
        rng.range(8, fusion_ring::INLINE_MAX)
    }
}

fn sender_tag(p: u64, seq: u64) -> u64 {
    p << 40 | seq
}

#[test]
fn no_lost_wakeups_with_sleeping_sender_processes() {
    let _serial = serial();
    let (ring, share) = Share::create(false, &Config::new(8));
    let mut children: Vec<ChildGuard> = (0..SENDERS)
        .map(|p| {
            ChildGuard::spawn(
                "child_blocking_sender",
                &[
                    (TARGET_VAR, share.target()),
                    (ID_VAR, p.to_string()),
                    (COUNT_VAR, SENDER_STREAM.to_string()),
                ],
            )
        })
        .collect();
    let start = Instant::now();
    let mut watch = Watch {
        start,
        children: &mut children,
    };
    share.hand_over(&ring, &mut watch);

    let mut next = [0u64; SENDERS as usize];
    let mut buf = vec![0u8; 1024];
    let mut scratch = vec![0u8; 1024];
    let mut rng = Rng(0x510);
    let mut naps = 0;
    let total = SENDERS * SENDER_STREAM;
    for k in 0..total {
        let (n, priority) = loop {
            match ring.recv_until(&mut buf, Some(Instant::now() + SLICE)) {
                Ok((n, p, _)) => break (n, p),
                Err(RingError::Timeout) => watch.check(&format!("waiting for message {k}")),
                Err(e) => panic!("parent: receive {k}: {e}"),
            }
        };
        assert_eq!(priority, PriorityClass::Normal);
        let tag = header(&buf[..n]);
        let (p, seq) = (tag >> 40, tag & ((1 << 40) - 1));
        assert!(p < SENDERS, "sender {p}?");
        assert_eq!(seq, next[p as usize], "sender {p}: order");
        check_bytes("parent", tag, sender_len(p, seq), &buf[..n], &mut scratch);
        next[p as usize] += 1;
        // The slow consumer: now and then a nap, while the senders fill the
        // 8 slots and go to sleep.
        if rng.below(64) == 0 {
            naps += 1;
            std::thread::sleep(Duration::from_micros(rng.range(200, 2000) as u64));
        }
    }
    let mut slept = 0;
    for (p, child) in children.iter_mut().enumerate() {
        let output = child.wait_success(start, DEADLINE);
        println!("sender {p}: {}", output.trim());
        slept += report_value(&output, "voluntary switches while sending:");
    }
    println!("{naps} naps in {:?}", start.elapsed());
    // The senders had to sleep on a full ring (a futex wait is a voluntary
    // context switch), or this test did not test what it says.
    assert!(slept > 0, "the senders never slept");
    assert_eq!(next, [SENDER_STREAM; SENDERS as usize]);
    assert_eq!(ring.recv(&mut buf), Err(RingError::Empty));
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (total, total));
    assert_arena_empty("parent", &ring);
}

#[test]
fn child_blocking_sender() {
    if !is_child("child_blocking_sender") {
        return;
    }
    let ring = open_target();
    let p: u64 = child_var(ID_VAR).parse().expect("id");
    let count = child_count();
    let mut scratch = vec![0u8; 1024];
    let before = voluntary_switches();
    for seq in 0..count {
        let len = sender_len(p, seq);
        fill(sender_tag(p, seq), &mut scratch[..len]);
        ring.send_blocking(&scratch[..len]).expect("send_blocking");
    }
    println!(
        "voluntary switches while sending: {}",
        voluntary_switches() - before
    );
}

// ===========================================================================
// (d) A busy stream needs no sleeping

const BUSY_STREAM: u64 = 1_000_000;

fn busy_len(i: u64) -> usize {
    let mut rng = Rng(i ^ 0xB5);
    if rng.below(10) == 0 {
        rng.range(fusion_ring::INLINE_MAX + 1, 512)
    } else {
        rng.range(0, fusion_ring::INLINE_MAX)
    }
}

/// The receiver never blocks (a busy loop over the non-blocking `recv`),
/// the sender never blocks (`send` + spin): neither may sleep. Wake-ups cost
/// a syscall only when someone waits, which nobody does here; the kernel's
/// count of voluntary context switches (each futex sleep is one) shows it.
#[test]
fn busy_stream_without_sleeping() {
    let _serial = serial();
    let (ring, share) = Share::create(true, &Config::new(1024));
    let mut children = [ChildGuard::spawn(
        "child_busy_receiver",
        &[
            (TARGET_VAR, share.target()),
            (COUNT_VAR, BUSY_STREAM.to_string()),
        ],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        children: &mut children,
    };
    let mut scratch = [0u8; 512];
    let before = voluntary_switches();
    let mut spins = 0u32;
    for i in 0..BUSY_STREAM {
        let len = busy_len(i);
        fill(i, &mut scratch[..len]);
        loop {
            match ring.send(&scratch[..len]) {
                Ok(()) => break,
                Err(RingError::Full | RingError::ArenaExhausted { .. }) => {
                    spins = spins.wrapping_add(1);
                    if spins < 256 {
                        std::hint::spin_loop();
                    } else {
                        // sched_yield is an involuntary switch, if any.
                        std::thread::yield_now();
                    }
                    if spins.is_multiple_of(4096) {
                        watch.check("streaming");
                    }
                }
                Err(e) => panic!("parent: send {i}: {e}"),
            }
        }
        spins = 0;
    }
    let parent_slept = voluntary_switches() - before;
    let output = children[0].wait_success(start, DEADLINE);
    let child_slept = report_value(&output, "voluntary switches while receiving:");
    println!("busy stream: parent slept {parent_slept} times, child {child_slept} times");
    assert!(
        child_slept < 1000,
        "the busy receiver slept {child_slept} times"
    );
    assert!(
        parent_slept < 1000,
        "the busy sender slept {parent_slept} times"
    );
    let s = ring.stats();
    assert_eq!((s.sent, s.received), (BUSY_STREAM, BUSY_STREAM));
    assert_arena_empty("parent", &ring);
}

#[test]
fn child_busy_receiver() {
    if !is_child("child_busy_receiver") {
        return;
    }
    let ring = open_target();
    let count = child_count();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    let mut scratch = [0u8; 512];
    let before = voluntary_switches();
    for i in 0..count {
        let mut spins = 0u32;
        let n = loop {
            match ring.recv(&mut buf) {
                Ok(n) => break n,
                Err(RingError::Empty) => {
                    std::hint::spin_loop();
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(1 << 16) {
                        assert!(start.elapsed() < DEADLINE, "child: stalled at {i}");
                    }
                }
                Err(e) => panic!("child: recv {i}: {e}"),
            }
        };
        check_bytes("child", i, busy_len(i), &buf[..n], &mut scratch);
    }
    let slept = voluntary_switches() - before;
    assert_eq!(ring.recv(&mut buf), Err(RingError::Empty));
    println!("voluntary switches while receiving: {slept}");
}
