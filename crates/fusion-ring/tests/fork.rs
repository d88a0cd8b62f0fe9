//! Handles carried across `fork(2)`: a child that uses its inherited copy of
//! a handle is a participant of its own (own entry, own claims, own
//! counters), so its death is seen, and its counters and its parent's are
//! never written by two processes.
//!
//! The children here are forked (not re-spawned): they use the inherited
//! handle and leave with `_exit`, without running destructors, as a crash
//! would. The last test streams a million messages to a forked receiver on
//! the inherited mapping, checked byte for byte (`common::stream`).

#![cfg(not(fusion_ring_loom))]

mod common;

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, PriorityClass, RingError, UltraFastRing, INLINE_MAX};
use testkit::fork::ForkGuard;
use testkit::serial::serial;
use testkit::shared_page::SharedPage;

use common::stream::{assert_stream_stats, send_all_fast, verify, Spin, CAPACITY, N};

/// Longest a child or a wait may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// A forked child's exit code when its closure panicked.
const PANICKED: i32 = 101;

#[test]
fn a_dead_forked_receiver_disconnects_its_parent() {
    let _serial = serial();
    let ring = FusionRing::with_config(&Config::new(8)).expect("ring");
    ring.send(b"first").expect("send");
    // SAFETY: the child receives on the inherited mapping (atomics, a read
    // of /proc/self/stat when it registers) and `_exit`s.
    let mut child = unsafe {
        ForkGuard::fork(
            || {
                let mut buf = [0u8; 64];
                match ring.recv_with_timeout(&mut buf, DEADLINE) {
                    Ok(5) if &buf[..5] == b"first" => 0,
                    Ok(_) => 1,
                    Err(_) => 2,
                }
            },
            PANICKED,
        )
    };
    assert_eq!(child.exit_code(Instant::now(), DEADLINE), 0, "child failed");

    // The only receiver is dead (and reaped). Fill the ring: a blocked send
    // must learn that nobody will ever make room.
    let mut sent = 0;
    while ring.send(b"fill").is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 8, "the child took the first message");
    match ring.send_with_timeout(b"one more", DEADLINE) {
        Err(RingError::Disconnected) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[test]
fn a_forked_child_is_a_participant_of_its_own() {
    let _serial = serial();
    let ring = FusionRing::with_config(&Config::new(8)).expect("ring");
    // SAFETY: as above; the child only sends.
    let mut child = unsafe {
        ForkGuard::fork(
            || {
                for m in [&b"a"[..], b"bb", b"ccc"] {
                    if ring.send(m).is_err() {
                        return 1;
                    }
                }
                0
            },
            PANICKED,
        )
    };
    assert_eq!(child.exit_code(Instant::now(), DEADLINE), 0, "child failed");
    let mut buf = [0u8; 16];
    for expected in [&b"a"[..], b"bb", b"ccc"] {
        let n = ring.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], expected);
    }
    // The child registered an entry of its own and died holding it. (Had it
    // written into the parent's entry there would be nothing to reap.)
    assert_eq!(ring.as_ring().recover().participants, 1);
    let stats = ring.stats();
    assert_eq!((stats.sent, stats.received), (3, 3), "{stats:?}");
    // The parent's handle is unaffected.
    ring.send(b"still here").expect("send");
    let n = ring.recv(&mut buf).expect("recv");
    assert_eq!(&buf[..n], b"still here");
}

#[test]
fn a_parent_and_its_forked_child_sending_at_once_lose_no_count() {
    let _serial = serial();
    const EACH: u32 = 100_000;
    let ring = UltraFastRing::new(1 << 18).expect("ring");
    // A start line in the ring's own shared memory would do, but a separate
    // shared page keeps the ring's contents exactly the messages.
    let page = SharedPage::new();
    let (ready, go) = (page.word(0), page.word(8));
    // SAFETY: the child spins on shared atomics and sends on the inherited
    // handle, then `_exit`s.
    let mut child = unsafe {
        ForkGuard::fork(
            || {
                ready.store(1, Ordering::Release);
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                for _ in 0..EACH {
                    if ring.send_fast(b"child", PriorityClass::Normal).is_err() {
                        return 1;
                    }
                }
                0
            },
            PANICKED,
        )
    };
    let start = Instant::now();
    while ready.load(Ordering::Acquire) == 0 {
        assert!(start.elapsed() < DEADLINE, "child never started");
        std::hint::spin_loop();
    }
    go.store(1, Ordering::Release);
    for _ in 0..EACH {
        ring.send_fast(b"parent", PriorityClass::Normal)
            .expect("send");
    }
    assert_eq!(child.exit_code(start, DEADLINE), 0, "child failed");

    // Both processes bumped "sent" on the same lane at the same time; with
    // one entry between them (a plain load + store each) counts were lost.
    let stats = ring.stats();
    assert_eq!(stats.sent, 2 * u64::from(EACH), "{stats:?}");
    let mut buf = [0u8; 40];
    let mut from = [0u32; 2];
    while let Ok((n, _, _)) = ring.recv_fast(&mut buf) {
        from[usize::from(&buf[..n] == b"parent")] += 1;
    }
    assert_eq!(from, [EACH, EACH], "[child, parent] messages received");
}

/// Size of the zero-copy messages here.
const LEN: usize = 1024;

/// A ring with an arena for a few `LEN`-byte blocks.
fn zero_copy_ring() -> FusionRing {
    let config = Config::new(8).arena_bytes(64 << 10).max_message(LEN);
    FusionRing::with_config(&config).expect("ring")
}

/// Sends `fill` as a `len`-byte zero-copy message and receives it.
fn round_trip(ring: &FusionRing, len: usize, fill: u8) -> fusion_ring::Payload {
    let mut loan = ring.loan(len).expect("loan");
    loan.fill(fill);
    ring.send_loan(loan, PriorityClass::Normal)
        .map_err(|e| e.error)
        .expect("send_loan");
    ring.recv_zerocopy().expect("recv_zerocopy")
}

#[test]
fn a_payload_and_a_loan_copied_into_a_forked_child_are_not_released_by_it() {
    let _serial = serial();
    let ring = zero_copy_ring();
    let payload = round_trip(&ring, LEN, 1);
    let loan = ring.loan(LEN).expect("loan");
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 2);
    let page = SharedPage::new();
    let go = page.word(0);
    // The child gets copies of both and drops them, but only once the
    // parent has dropped its own (when `fork` drops the closure on its
    // side) and been lent the two blocks again.
    // SAFETY: the child spins on a shared atomic and drops a payload and a
    // loan (atomics on the inherited mapping), then `_exit`s.
    let mut child = unsafe {
        ForkGuard::fork(
            move || {
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                drop(payload);
                drop(loan);
                0
            },
            PANICKED,
        )
    };
    let mut mine: Vec<_> = (0..2).map(|_| ring.loan(LEN).expect("loan")).collect();
    for (i, l) in mine.iter_mut().enumerate() {
        l.fill(10 + i as u8);
    }
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 2);
    go.store(1, Ordering::Release);
    assert_eq!(child.exit_code(Instant::now(), DEADLINE), 0, "child failed");
    // The child's copies named blocks the parent had freed and now holds
    // again: had the child released them, they would be free under the
    // parent's loans and lent out a second time.
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 2);
    let others: Vec<_> = (0..2u8).map(|i| round_trip(&ring, LEN, 20 + i)).collect();
    for (i, l) in mine.iter().enumerate() {
        assert!(
            l.iter().all(|&b| b == 10 + i as u8),
            "loan {i} was overwritten: its block was lent twice"
        );
    }
    for (i, p) in others.iter().enumerate() {
        assert!(p.iter().all(|&b| b == 20 + i as u8));
    }
}

#[test]
fn a_loan_a_forked_child_inherited_is_sent_by_copy() {
    let _serial = serial();
    let ring = zero_copy_ring();
    let mut loan = ring.loan(LEN).expect("loan");
    loan.fill(7);
    // SAFETY: the child sends on the inherited mapping and `_exit`s. The
    // bitwise copy of the loan is what fork made of it: the child's own
    // `loan` is never used or dropped there.
    let mut child = unsafe {
        ForkGuard::fork(
            || {
                let inherited = std::ptr::read(&loan);
                match ring.send_loan(inherited, PriorityClass::High) {
                    Ok(()) => 0,
                    Err(_) => 1,
                }
            },
            PANICKED,
        )
    };
    assert_eq!(child.exit_code(Instant::now(), DEADLINE), 0, "child failed");
    let got = ring.recv_zerocopy().expect("the child's message");
    assert_eq!(got.len(), LEN);
    assert!(got.iter().all(|&b| b == 7));
    // The parent's loan is still its own and in use, beside the message's
    // block (a copy: the child did not give away the parent's block).
    loan.fill(8);
    assert!(
        got.iter().all(|&b| b == 7),
        "the message shares the loan's block"
    );
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 2);
    drop((got, loan));
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

// ---------------------------------------------------------------------------
// A stream to a forked child on the inherited mapping

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

/// A parent that dies before its forked child is seen dead while the child
/// lives, though the child inherited the descriptions holding the parent's
/// liveness marks (`shm::liveness`): on its first use of the handle the
/// child took marks of its own and closed its copies of the parent's. The
/// block the parent held when it died is reclaimed; the child's is not.
#[test]
fn a_parent_that_dies_before_its_forked_child_is_seen_dead() {
    use std::io::Write;
    let _serial = serial();
    let name = testkit::names::ShmName::new("fork-orphan");
    let config = Config::new(8).arena_bytes(64 * 1024).max_message(4096);
    let ring = FusionRing::create(name.name(), &config).expect("ring");
    for _ in 0..2 {
        ring.send(&[7u8; 3000]).expect("send");
    }
    let (mut ready, mut ready_w) = std::io::pipe().expect("pipe");
    // SAFETY: the child (and its own child) receive on the inherited
    // mapping, write to a pipe and sleep, and leave with `_exit`.
    let mut parent = unsafe {
        ForkGuard::fork(
            || {
                let Ok(_held) = ring.recv_zerocopy() else {
                    return 1;
                };
                match libc::fork() {
                    0 => {
                        // The grandchild: its own entry and block, then it
                        // waits to be killed (30 s at most).
                        let held = ring.recv_zerocopy();
                        let pid = std::process::id();
                        let _ = ready_w.write_all(&pid.to_le_bytes());
                        if held.is_ok() {
                            std::thread::sleep(Duration::from_secs(30));
                        }
                        libc::_exit(0)
                    }
                    -1 => 2,
                    // Dies holding its block (returning would drop it).
                    _ => libc::_exit(0),
                }
            },
            PANICKED,
        )
    };
    drop(ready_w);
    assert_eq!(
        parent.exit_code(Instant::now(), DEADLINE),
        0,
        "the forked parent"
    );
    let mut pid = [0u8; 4];
    ready.read_exact(&mut pid).expect("the grandchild's pid");
    let (dead, alive) = (parent.pid() as u32, u32::from_le_bytes(pid));

    let deadline = Instant::now() + DEADLINE;
    let state = |pid: u32| {
        let info = fusion_ring::inspect::RingInfo::read(name.name()).expect("info");
        info.participants
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.alive)
    };
    while state(dead) != Some(false) || state(alive) != Some(true) {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            fusion_ring::inspect::RingInfo::read(name.name())
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let rec = ring.as_ring().recover();
    assert_eq!(
        (rec.participants, rec.blocks),
        (1, 1),
        "the dead parent's: {rec:?}"
    );
    assert_eq!(
        ring.as_ring().arena_usage().blocks_in_use,
        1,
        "the grandchild's"
    );

    // SAFETY: plain kill(2) of the grandchild's pid (reparented: not ours
    // to wait for, its exit is seen through its marks).
    unsafe { libc::kill(alive as libc::pid_t, libc::SIGKILL) };
    while state(alive) == Some(true) {
        assert!(Instant::now() < deadline, "the grandchild never died");
        std::thread::sleep(Duration::from_millis(2));
    }
    let rec = ring.as_ring().recover();
    assert_eq!(
        (rec.participants, rec.blocks),
        (1, 1),
        "the grandchild's: {rec:?}"
    );
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}
