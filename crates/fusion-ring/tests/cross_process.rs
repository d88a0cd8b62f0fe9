//! Cross-process tests: real processes on one ring.
//!
//! Children are this test binary itself, re-run with `--exact <child test>`
//! (`common::child`); a `child_*` test returns at once unless it was spawned
//! to play that role. The fork test forks instead and
//! uses the inherited mapping.
//!
//! Every message is checked byte for byte: message `i` has a length in
//! `0..=40` and bytes derived from `i`, its first (up to) 8 bytes are `i`
//! little-endian (so order is checked), and its priority class is derived
//! from `i` too.

#![cfg(not(fusion_ring_loom))]

mod common;
use common::child::{
    child_var, is_child, recv_fd, send_fd, serial, ChildGuard, ForkGuard, PathGuard,
};
use common::mix;

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use fusion_ring::{Config, InlineMessage, PriorityClass, RingError, UltraFastRing, INLINE_MAX};

/// Messages per stream.
const N: u64 = 1_000_000;
/// Longest any single wait (or a whole child run) may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Ring size of every test here.
const CAPACITY: usize = 1024;
/// Same-priority runs of this many messages (so batches can carry one class).
const RUN: u64 = 8;

/// Ring name, or socket path for the memfd test.
const TARGET_VAR: &str = "FUSION_RING_CHILD_TARGET";
const COUNT_VAR: &str = "FUSION_RING_CHILD_COUNT";

// ---------------------------------------------------------------------------
// Messages

fn msg_len(i: u64) -> usize {
    (mix(i) % (INLINE_MAX as u64 + 1)) as usize
}

fn msg_byte(i: u64, j: usize) -> u8 {
    if j < 8 {
        (i >> (8 * j)) as u8
    } else {
        (mix(i ^ 0x5555).rotate_left(7 * j as u32) as u8) ^ (j as u8).wrapping_mul(31)
    }
}

fn msg_priority(i: u64) -> PriorityClass {
    PriorityClass::ALL[((i / RUN) % PriorityClass::COUNT as u64) as usize]
}

/// Writes message `i` into `buf`; returns its length. Does not allocate.
fn fill(i: u64, buf: &mut [u8; INLINE_MAX]) -> usize {
    let len = msg_len(i);
    for (j, b) in buf[..len].iter_mut().enumerate() {
        *b = msg_byte(i, j);
    }
    len
}

/// How a received message differs from message `i`. Plain data: building
/// one does not allocate (the fork child relies on that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
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
    fn encode(self) -> [u64; 3] {
        match self {
            Mismatch::Len { expected, got } => [1, expected as u64, got as u64],
            Mismatch::Byte { at, expected, got } => {
                [2, at as u64, (expected as u64) << 8 | got as u64]
            }
            Mismatch::Priority { expected, got } => [3, expected as u64, got as u64],
        }
    }
}

fn verify(i: u64, got: &[u8], priority: PriorityClass) -> Result<(), Mismatch> {
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
fn check(who: &str, i: u64, got: &[u8], priority: PriorityClass) {
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
struct Spin(u32);

impl Spin {
    #[inline]
    fn reset(&mut self) {
        self.0 = 0;
    }

    /// One wait step; true every 1024 consecutive steps.
    #[inline]
    fn step(&mut self) -> bool {
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
type Stall<'a> = &'a mut dyn FnMut(u64);

fn deadline_check(who: &'static str, start: Instant) -> impl FnMut(u64) {
    move |done| {
        assert!(
            start.elapsed() < DEADLINE,
            "{who}: stalled after {done} messages, {DEADLINE:?} deadline passed"
        )
    }
}

// ---------------------------------------------------------------------------
// Streams

fn send_all_fast(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
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
fn send_all_batched(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
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

fn recv_all_fast(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
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

fn recv_all_batched(who: &str, ring: &UltraFastRing, count: u64, stall: Stall<'_>) {
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
fn assert_stream_stats(ring: &UltraFastRing, count: u64) {
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

// ---------------------------------------------------------------------------
// Children

fn unique(tag: &str) -> String {
    common::child::unique_name(&format!("fr-xp-{tag}"))
}

/// `(target, count)` if this process was spawned to play `role`.
fn child_role(role: &str) -> Option<(String, u64)> {
    if !is_child(role) {
        return None;
    }
    let count = child_var(COUNT_VAR)
        .parse()
        .expect("child: count is not a number");
    Some((child_var(TARGET_VAR), count))
}

/// Spawns `role` with the stream's target and length.
fn spawn(role: &'static str, target: &str, count: u64) -> ChildGuard {
    ChildGuard::spawn(
        role,
        &[
            (TARGET_VAR, target.to_string()),
            (COUNT_VAR, count.to_string()),
        ],
    )
}

/// A stall callback for the parent's stream loops: the child still
/// running (or done) and the deadline not passed.
fn stall(child: &mut ChildGuard, start: Instant) -> impl FnMut(u64) + '_ {
    move |done| {
        child.assert_running();
        assert!(
            start.elapsed() < DEADLINE,
            "parent: stalled after {done} messages, {DEADLINE:?} deadline passed"
        );
    }
}

// ---------------------------------------------------------------------------
// (a) + (d): named ring, create in the parent, open in a child

#[test]
fn named_ring_parent_sends_child_receives() {
    let _serial = serial();
    let name = unique("fwd");
    let ring = UltraFastRing::create(&name, &Config::new(CAPACITY)).expect("create");
    let mut child = spawn("child_named_receiver", &name, N);
    let start = Instant::now();
    send_all_fast("parent", &ring, N, &mut stall(&mut child, start));
    child.wait_success(start, DEADLINE);
    // (d) The child's counters live in the shared segment.
    assert_stream_stats(&ring, N);
}

#[test]
fn child_named_receiver() {
    let Some((name, count)) = child_role("child_named_receiver") else {
        return;
    };
    let ring = UltraFastRing::open(&name).unwrap_or_else(|e| panic!("child: open {name}: {e}"));
    assert_eq!(ring.as_ring().capacity(), CAPACITY);
    let start = Instant::now();
    recv_all_fast("child", &ring, count, &mut deadline_check("child", start));
}

#[test]
fn named_ring_child_sends_parent_receives() {
    let _serial = serial();
    let name = unique("rev");
    let ring = UltraFastRing::create(&name, &Config::new(CAPACITY)).expect("create");
    let mut child = spawn("child_named_sender", &name, N);
    let start = Instant::now();
    recv_all_fast("parent", &ring, N, &mut stall(&mut child, start));
    child.wait_success(start, DEADLINE);
    assert_stream_stats(&ring, N);
}

#[test]
fn child_named_sender() {
    let Some((name, count)) = child_role("child_named_sender") else {
        return;
    };
    let ring = UltraFastRing::open(&name).unwrap_or_else(|e| panic!("child: open {name}: {e}"));
    let start = Instant::now();
    send_all_batched("child", &ring, count, &mut deadline_check("child", start));
}

// ---------------------------------------------------------------------------
// (b): anonymous memfd ring handed over a Unix socket with SCM_RIGHTS

#[test]
fn memfd_ring_over_unix_socket_child_sends() {
    let _serial = serial();
    let ring = UltraFastRing::new(CAPACITY).expect("new");
    let path = PathGuard(std::env::temp_dir().join(format!("{}.sock", unique("memfd"))));
    let listener = UnixListener::bind(&path.0).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let mut child = spawn(
        "child_memfd_sender",
        path.0.to_str().expect("utf-8 path"),
        N,
    );

    let start = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                child.assert_running();
                assert!(start.elapsed() < DEADLINE, "child never connected");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    send_fd(&stream, ring.as_fd());
    drop(stream);

    recv_all_batched("parent", &ring, N, &mut stall(&mut child, start));
    child.wait_success(start, DEADLINE);
    assert_stream_stats(&ring, N);
}

#[test]
fn child_memfd_sender() {
    let Some((path, count)) = child_role("child_memfd_sender") else {
        return;
    };
    let stream =
        UnixStream::connect(&path).unwrap_or_else(|e| panic!("child: connect {path}: {e}"));
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let fd = recv_fd(&stream);
    let ring = UltraFastRing::from_fd(fd).unwrap_or_else(|e| panic!("child: from_fd: {e}"));
    assert_eq!(ring.as_ring().capacity(), CAPACITY);
    assert!(
        ring.as_ring().label().starts_with("fd "),
        "{}",
        ring.as_ring().label()
    );
    let start = Instant::now();
    send_all_fast("child", &ring, count, &mut deadline_check("child", start));
}

// ---------------------------------------------------------------------------
// (c): forked child on the inherited mapping

/// Exit codes of the forked receiver.
const FORK_OK: i32 = 0;
const FORK_MISMATCH: i32 = 1;
const FORK_TIMEOUT: i32 = 2;
const FORK_RING_ERROR: i32 = 3;
const FORK_EXTRA: i32 = 4;
const FORK_PANIC: i32 = 5;

/// The forked child's whole life: no allocation, no printing; a failure is
/// reported as `[index, code, a, b]` u64 words on `report` and an exit code.
fn fork_receiver(ring: &UltraFastRing, count: u64, report: libc::c_int) -> i32 {
    let send_report = |words: [u64; 4]| {
        // SAFETY: writes 32 bytes from a live array to our pipe end.
        unsafe { libc::write(report, words.as_ptr().cast(), std::mem::size_of_val(&words)) };
    };
    let start = Instant::now();
    let mut buf = [0u8; INLINE_MAX];
    let mut spin = Spin(0);
    for i in 0..count {
        loop {
            match ring.recv_fast(&mut buf) {
                Ok((len, priority, _)) => {
                    if let Err(m) = verify(i, &buf[..len], priority) {
                        let [code, a, b] = m.encode();
                        send_report([i, code, a, b]);
                        return FORK_MISMATCH;
                    }
                    break;
                }
                Err(RingError::Empty) => {
                    if spin.step() && start.elapsed() > DEADLINE {
                        send_report([i, 0, 0, 0]);
                        return FORK_TIMEOUT;
                    }
                }
                Err(_) => {
                    send_report([i, 0, 0, 0]);
                    return FORK_RING_ERROR;
                }
            }
        }
        spin.reset();
    }
    if ring.recv_fast(&mut buf) != Err(RingError::Empty) {
        send_report([count, 0, 0, 0]);
        return FORK_EXTRA;
    }
    FORK_OK
}

#[test]
fn forked_child_receives_on_inherited_mapping() {
    let _serial = serial();
    let ring = UltraFastRing::new(CAPACITY).expect("new");
    // Warm up everything the child will touch, so nothing in it is lazy.
    assert_eq!(
        ring.recv_fast(&mut [0u8; INLINE_MAX]).err(),
        Some(RingError::Empty)
    );
    let _ = Instant::now();

    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(
        unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    let [read_end, write_end] = pipe;

    // SAFETY: the child only runs `fork_receiver` (atomics on the inherited
    // shared mapping, a pipe write) and `_exit`s: nothing that needs a lock
    // another thread of the parent might have held at fork time.
    let mut child = unsafe { ForkGuard::fork(|| fork_receiver(&ring, N, write_end), FORK_PANIC) };
    // SAFETY: our copy of the write end; the child has its own.
    unsafe { libc::close(write_end) };
    // SAFETY: the read end is ours alone from here on.
    let mut report = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(read_end) };

    let start = Instant::now();
    send_all_fast("parent", &ring, N, &mut |done| {
        if let Some(status) = child.try_wait() {
            panic!(
                "after {done} messages were sent, {}",
                fork_failure(status, &mut report)
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "parent: stalled after {done} messages, {DEADLINE:?} deadline passed"
        );
    });

    // Watchdog: the child gets DEADLINE to finish, then is killed.
    let status = loop {
        if let Some(status) = child.try_wait() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            drop(child); // kills and reaps
            panic!("forked child did not finish within {DEADLINE:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == FORK_OK,
        "{}",
        fork_failure(status, &mut report)
    );
    // The child wrote its receive counters into the entry it inherited.
    assert_stream_stats(&ring, N);
}

/// Explains a forked receiver's failure from its wait status and report.
fn fork_failure(status: i32, report: &mut std::fs::File) -> String {
    let mut bytes = [0u8; 32];
    let got = report.read(&mut bytes).unwrap_or(0);
    let w: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let (i, code, a, b) = (w[0], w[1], w[2], w[3]);
    if !libc::WIFEXITED(status) {
        return format!("forked child died abnormally (wait status {status:#x})");
    }
    let what = match libc::WEXITSTATUS(status) {
        FORK_OK => "exited successfully before the stream was complete".to_string(),
        _ if got != 32 => format!("gave no report ({got} bytes)"),
        FORK_MISMATCH => match code {
            1 => format!("message {i} has length {b}, expected {a}"),
            2 => format!(
                "message {i} byte {a} is {:#04x}, expected {:#04x}",
                b & 0xff,
                b >> 8
            ),
            _ => format!("message {i} has priority {b}, expected {a}"),
        },
        FORK_TIMEOUT => format!("timed out waiting for message {i}"),
        FORK_RING_ERROR => format!("recv_fast of message {i} returned an error other than Empty"),
        FORK_EXTRA => format!("received a message beyond the {i} sent"),
        FORK_PANIC => "panicked".to_string(),
        other => format!("exited with unexpected code {other}"),
    };
    format!("forked child failed: {what}")
}
