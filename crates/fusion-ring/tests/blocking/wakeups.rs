//! Wake-ups across processes: no lost wake-up with receivers asleep on an
//! empty ring (two receiver processes, bursts and pauses) nor with senders
//! asleep on a full one (two sender processes, a slow receiver); and no
//! sleeping at all in a busy stream.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fusion_ring::{Config, PriorityClass, RingError};
use testkit::child::{child_var, is_child, ChildGuard, Watch};
use testkit::rng::{assert_message, fill, Rng};
use testkit::role;
use testkit::serial::serial;

use crate::common::cross_process::{
    assert_arena_empty, child_count, header, open_target, report_value, send_watched, unique,
    voluntary_switches, Share, COUNT_VAR, DEADLINE, ID_VAR, OUT_VAR, SLICE, TARGET_VAR,
};

// ===========================================================================
// No lost wake-ups: sleeping receivers, then sleeping senders

const WAKE_STREAM: u64 = 200_000;
const RECEIVERS: usize = 2;
/// Sent once per receiver after the stream: "stop".
const SENTINEL: u64 = u64::MAX;

fn wake_len(i: u64) -> usize {
    let mut rng = Rng::counter(i ^ 0x3A4E);
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
                role!(child_sleeping_receiver),
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
        deadline: DEADLINE,
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

    let mut rng = Rng::counter(0xB0257);
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
    if !is_child(role!(child_sleeping_receiver)) {
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
            let (n, _, latency) = ring
                .recv_blocking_with_meta(&mut buf)
                .expect("recv_blocking_with_meta");
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
        assert_message(
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
    let mut rng = Rng::counter(p << 40 ^ seq ^ 0x5E7D);
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
                role!(child_blocking_sender),
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
        deadline: DEADLINE,
        children: &mut children,
    };
    share.hand_over(&ring, &mut watch);

    let mut next = [0u64; SENDERS as usize];
    let mut buf = vec![0u8; 1024];
    let mut scratch = vec![0u8; 1024];
    let mut rng = Rng::counter(0x510);
    let mut naps = 0;
    let total = SENDERS * SENDER_STREAM;
    for k in 0..total {
        let (n, priority) = loop {
            match ring.recv_deadline(&mut buf, Instant::now() + SLICE) {
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
        assert_message("parent", tag, sender_len(p, seq), &buf[..n], &mut scratch);
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
    if !is_child(role!(child_blocking_sender)) {
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
// A busy stream needs no sleeping

const BUSY_STREAM: u64 = 1_000_000;

fn busy_len(i: u64) -> usize {
    let mut rng = Rng::counter(i ^ 0xB5);
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
        role!(child_busy_receiver),
        &[
            (TARGET_VAR, share.target()),
            (COUNT_VAR, BUSY_STREAM.to_string()),
        ],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        deadline: DEADLINE,
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
    if !is_child(role!(child_busy_receiver)) {
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
        assert_message("child", i, busy_len(i), &buf[..n], &mut scratch);
    }
    let slept = voluntary_switches() - before;
    assert_eq!(ring.recv(&mut buf), Err(RingError::Empty));
    println!("voluntary switches while receiving: {slept}");
}
