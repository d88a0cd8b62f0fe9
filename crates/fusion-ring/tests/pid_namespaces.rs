//! Peers in other pid namespaces, as containers that share `/dev/shm`
//! are: each child here runs under `unshare --user --map-root-user --pid
//! --fork --mount-proc` (the test kit's `PID_NAMESPACE`), where it is pid 1
//! with a `/proc` of its own, so its pid means nothing (or another
//! process: init) to the parent. Liveness must come from the segment's
//! marks (`shm::liveness`), not from pids:
//!
//! - a producer in a namespace streams 100 000 messages (inline, copied
//!   and loaned, checked byte for byte) to the parent, and the parent as
//!   many to a consumer in a namespace; each side keeps asking for
//!   recovery as it streams: nothing of a live peer is reclaimed, every
//!   participant is seen alive, the ring is not stale;
//! - a producer and a consumer that are both pid 1 (two namespaces) stream
//!   100 000 messages to each other, watched the same way by the parent;
//! - a consumer in a namespace killed with SIGKILL is seen dead outside:
//!   its held block is freed, its entry reaped, a sender gets
//!   `Disconnected`; a producer outside killed with a loan in hand is seen
//!   dead from a namespace the same way;
//! - two holders that are both pid 1 are told apart: the killed one's entry
//!   is reaped, the live one's payload stays intact (the dead one's block
//!   is kept while a pid 1 maps the segment: blocks name pids).
//!
//! Needs unprivileged user namespaces (`unshare --user`); where the kernel
//! forbids them the tests fail saying so, unless `FRING_NO_USERNS=1`
//! says to skip them.

#![cfg(not(fusion_ring_loom))]

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use fusion_ring::inspect::RingInfo;
use fusion_ring::{Config, FusionRing, PriorityClass, Recovery, RingError};
use testkit::child::{
    child_var, is_child, pid_namespaces_available, ChildGuard, Output, PID_NAMESPACE,
};
use testkit::names::ShmName;
use testkit::rng::{fill, is_message, mix};
use testkit::role;
use testkit::serial::serial;

const RING_VAR: &str = "FRING_PIDNS_RING";
const GO_VAR: &str = "FRING_PIDNS_GO";
const COUNT_VAR: &str = "FRING_PIDNS_COUNT";
const HOLD_VAR: &str = "FRING_PIDNS_HOLD";
/// Messages streamed from the namespace.
const N: u64 = 100_000;
/// Longest any wait may take.
const STUCK: Duration = Duration::from_secs(20);

fn config() -> Config {
    Config::new(64).arena_bytes(1 << 20).max_message(4096)
}

/// Message `i`'s length and whether it travels as a loan: mostly inline,
/// one in 16 copied into or loaned from the arena.
fn plan(i: u64) -> (usize, bool) {
    let r = mix(i);
    if r.is_multiple_of(16) {
        (41 + (r >> 8) as usize % 4000, r & (1 << 40) != 0)
    } else {
        (1 + (r >> 8) as usize % 40, false)
    }
}

/// A new ring holding `n` queued messages of 3000 bytes (each in a block).
fn ring_with_blocks(tag: &str, n: u64) -> (ShmName, FusionRing) {
    let name = ShmName::new(tag);
    let ring = FusionRing::create(name.name(), &config()).expect("create");
    let mut m = vec![0u8; 3000];
    for i in 0..n {
        fill(i, &mut m);
        ring.send(&m).expect("send");
    }
    (name, ring)
}

/// A child playing `role` in pid and user namespaces of its own on ring
/// `ring`, and the lines it prints.
fn spawn_in_namespace(
    role: &'static str,
    ring: &ShmName,
    vars: &[(&str, String)],
) -> (ChildGuard, Receiver<String>) {
    let mut all = vec![(RING_VAR, ring.name().to_string())];
    all.extend(vars.iter().cloned());
    let mut child = ChildGuard::spawn_under(PID_NAMESPACE, role, &all, Output::Piped);
    let (tx, rx) = mpsc::channel();
    let out = child.stdout();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for the child's line holding `prefix` (the test harness may have
/// begun the line); the rest of it.
fn expect_line(child: &mut ChildGuard, lines: &Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + STUCK;
    loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once(prefix) {
                    return rest.trim().to_string();
                }
            }
            Err(_) if Instant::now() > deadline => child.fail(format!("never printed {prefix:?}")),
            Err(_) => child.assert_running(),
        }
    }
}

/// The pids of the ring's participants, with whether each is alive.
fn participants(ring: &ShmName) -> Vec<(u32, bool)> {
    let info = RingInfo::read(ring.name()).expect("read ring info");
    info.participants.iter().map(|p| (p.pid, p.alive)).collect()
}

/// Waits until `done` holds of the ring's participants.
fn wait_for_participants(ring: &ShmName, what: &str, done: impl Fn(&[(u32, bool)]) -> bool) {
    let deadline = Instant::now() + STUCK;
    loop {
        let seen = participants(ring);
        if done(&seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: participants {seen:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends message `i` of the plan (inline, copied or loaned), waiting for
/// room; `buf` holds the largest.
fn send_message(ring: &FusionRing, i: u64, buf: &mut [u8]) {
    let (len, loaned) = plan(i);
    let deadline = Instant::now() + STUCK;
    loop {
        let sent = if loaned {
            match ring.loan(len) {
                Ok(mut loan) => {
                    fill(i, &mut loan);
                    ring.send_loan(loan, PriorityClass::Normal)
                        .map_err(|e| e.error)
                }
                Err(e) => Err(e),
            }
        } else {
            fill(i, &mut buf[..len]);
            ring.send(&buf[..len])
        };
        match sent {
            Ok(()) => return,
            Err(RingError::Full | RingError::ArenaExhausted { .. }) => {
                assert!(Instant::now() < deadline, "stuck at message {i}");
                let _ = ring.sync().wait_not_full_timeout(Duration::from_millis(10));
            }
            Err(e) => panic!("message {i}: {e}"),
        }
    }
}

/// Receives message `i` of the plan and checks it byte for byte.
fn receive_message(ring: &FusionRing, i: u64) -> Result<(), String> {
    let payload = ring
        .recv_zerocopy_timeout(STUCK)
        .map_err(|e| format!("no message {i}: {e}"))?;
    let (len, _) = plan(i);
    if payload.len() != len || !is_message(i, &payload) {
        return Err(format!(
            "message {i}: {} bytes, expected {len}, content {}",
            payload.len(),
            if is_message(i, &payload) {
                "right"
            } else {
                "wrong"
            }
        ));
    }
    Ok(())
}

/// What each side checks as it streams (every 4096 messages): nothing of
/// a live peer is reclaimed, every participant is seen alive, the ring is
/// not stale.
fn check_peers_alive(ring: &FusionRing, name: &str, i: u64) {
    if !i.is_multiple_of(4096) {
        return;
    }
    // Blocks in transit may be left for a later look (`blocks_deferred`:
    // live traffic moved a free list under the sweep); none is taken.
    let rec = ring.as_ring().recover();
    assert_eq!(
        Recovery {
            blocks_deferred: 0,
            ..rec
        },
        Recovery::default(),
        "at message {i}"
    );
    let info = RingInfo::read(name).expect("ring info");
    assert!(
        info.participants.iter().all(|p| p.alive) && !info.is_stale(),
        "at message {i}: {info:?}"
    );
}

/// The messages a child streams (`COUNT_VAR`, default [`N`]).
fn count() -> u64 {
    std::env::var(COUNT_VAR).map_or(N, |v| v.parse().expect("count"))
}

#[test]
fn a_producer_in_another_pid_namespace_streams_and_stays_alive() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let name = ShmName::new("pidns-stream");
    let ring = FusionRing::create(name.name(), &config()).expect("create");
    let (mut child, lines) = spawn_in_namespace(role!(child_producer), &name, &[]);
    assert_eq!(
        expect_line(&mut child, &lines, "PID"),
        "1",
        "pid 1 in its namespace"
    );
    let me = std::process::id();
    for i in 0..N {
        if let Err(e) = receive_message(&ring, i) {
            child.fail(e);
        }
        check_peers_alive(&ring, name.name(), i);
        if i == 0 {
            // Tools say whose pid is whose.
            let info = RingInfo::read(name.name()).unwrap();
            let seen: Vec<_> = info
                .participants
                .iter()
                .map(|p| (p.pid, p.own_pid_namespace))
                .collect();
            assert!(
                seen.contains(&(1, false)) && seen.contains(&(me, true)),
                "{info:?}"
            );
        }
    }
    child.wait_success(Instant::now(), STUCK);
    // It unregistered on its way out: only this handle is left.
    assert_eq!(participants(&name), [(me, true)]);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

#[test]
fn a_consumer_in_another_pid_namespace_streams_and_stays_alive() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let name = ShmName::new("pidns-consumer");
    let ring = FusionRing::create(name.name(), &config()).expect("create");
    let (mut child, lines) = spawn_in_namespace(role!(child_consumer), &name, &[]);
    assert_eq!(expect_line(&mut child, &lines, "PID"), "1");
    let mut buf = vec![0u8; 4096];
    for i in 0..N {
        send_message(&ring, i, &mut buf);
        check_peers_alive(&ring, name.name(), i);
    }
    assert_eq!(expect_line(&mut child, &lines, "RECEIVED"), N.to_string());
    child.wait_success(Instant::now(), STUCK);
    assert_eq!(participants(&name), [(std::process::id(), true)]);
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

/// A producer and a consumer that are both pid 1, in two namespaces, stream
/// to each other while this process watches: both alive, nothing reclaimed.
#[test]
fn a_producer_and_a_consumer_with_one_pid_in_two_namespaces_stream() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let name = ShmName::new("pidns-pair");
    let ring = FusionRing::create(name.name(), &config()).expect("create");
    let (mut consumer, c_lines) = spawn_in_namespace(role!(child_consumer), &name, &[]);
    assert_eq!(expect_line(&mut consumer, &c_lines, "PID"), "1");
    let (mut producer, p_lines) = spawn_in_namespace(role!(child_producer), &name, &[]);
    assert_eq!(expect_line(&mut producer, &p_lines, "PID"), "1");
    let deadline = Instant::now() + STUCK;
    let mut watched = 0;
    while consumer.try_wait().is_none() {
        let seen = participants(&name);
        if seen.len() == 3 {
            check_peers_alive(&ring, name.name(), 0);
            assert!(seen.iter().all(|&(_, alive)| alive), "{seen:?}");
            assert_eq!(seen.iter().filter(|(pid, _)| *pid == 1).count(), 2);
            watched += 1;
        }
        assert!(Instant::now() < deadline, "the stream took too long");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        expect_line(&mut consumer, &c_lines, "RECEIVED"),
        N.to_string()
    );
    consumer.wait_success(Instant::now(), STUCK);
    producer.wait_success(Instant::now(), STUCK);
    assert!(watched > 0, "never saw both at work");
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

/// Sends `COUNT_VAR` messages (default [`N`]); with `HOLD_VAR`, then holds
/// a loan until killed.
#[test]
fn child_producer() {
    if !is_child(role!(child_producer)) {
        return;
    }
    let name = child_var(RING_VAR);
    let ring = FusionRing::open(&name).expect("child: open");
    println!("PID {}", std::process::id());
    let mut buf = vec![0u8; 4096];
    for i in 0..count() {
        send_message(&ring, i, &mut buf);
        check_peers_alive(&ring, &name, i);
    }
    if std::env::var_os(HOLD_VAR).is_some() {
        let _loan = ring.loan(3000).expect("child: loan");
        println!("HOLDING");
        std::thread::sleep(STUCK * 3);
        panic!("child: never killed");
    }
}

/// Receives `COUNT_VAR` messages (default [`N`]); with `HOLD_VAR`, then
/// waits for the next one, which must be `Disconnected` (the producer was
/// killed), and recovers what it left.
#[test]
fn child_consumer() {
    if !is_child(role!(child_consumer)) {
        return;
    }
    let name = child_var(RING_VAR);
    let ring = FusionRing::open(&name).expect("child: open");
    println!("PID {}", std::process::id());
    let n = count();
    for i in 0..n {
        receive_message(&ring, i).unwrap_or_else(|e| panic!("child: {e}"));
        check_peers_alive(&ring, &name, i);
    }
    println!("RECEIVED {n}");
    if std::env::var_os(HOLD_VAR).is_some() {
        match ring.recv_zerocopy_timeout(STUCK) {
            Err(RingError::Disconnected) => {}
            other => panic!("child: expected Disconnected, got {other:?}"),
        }
        let rec = ring.as_ring().recover();
        println!("RECOVERED {} {}", rec.blocks, rec.participants);
    }
}

/// The other way round: a producer outside, killed with a loan in hand, is
/// seen dead by a consumer in a namespace (whose `/proc` does not have it):
/// `Disconnected`, its block and entry reclaimed from there.
#[test]
fn a_killed_producer_outside_is_seen_dead_from_a_namespace() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let name = ShmName::new("pidns-outside");
    let ring = FusionRing::create(name.name(), &config()).expect("create");
    let vars = [(COUNT_VAR, "1000".to_string()), (HOLD_VAR, "1".to_string())];
    let (mut consumer, c_lines) = spawn_in_namespace(role!(child_consumer), &name, &vars);
    let mut all = vec![(RING_VAR, name.name().to_string())];
    all.extend(vars.iter().cloned());
    let mut producer = ChildGuard::spawn(role!(child_producer), &all);
    assert_eq!(expect_line(&mut consumer, &c_lines, "RECEIVED"), "1000");
    wait_for_participants(&name, "the producer holding its loan", |_| {
        ring.as_ring().arena_usage().blocks_in_use == 1
    });
    producer.kill();
    let recovered = expect_line(&mut consumer, &c_lines, "RECOVERED");
    consumer.wait_success(Instant::now(), STUCK);
    assert_eq!(
        recovered, "1 1",
        "the loan's block and the producer's entry"
    );
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}

#[test]
fn a_killed_consumer_in_another_pid_namespace_is_seen_dead() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let (name, ring) = ring_with_blocks("pidns-killed", 3);
    let (mut child, lines) = spawn_in_namespace(role!(child_holder), &name, &[]);
    assert_eq!(expect_line(&mut child, &lines, "HOLDING"), "1");
    // Alive: nothing reclaimed, one block held there and two queued.
    assert_eq!(ring.as_ring().recover(), Recovery::default());
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 3);
    assert!(participants(&name).contains(&(1, true)));

    child.kill();
    wait_for_participants(&name, "the killed consumer is seen dead", |p| {
        p.contains(&(1, false))
    });
    let rec = ring.as_ring().recover();
    assert_eq!((rec.blocks, rec.participants), (1, 1), "{rec:?}");
    assert_eq!(
        ring.as_ring().arena_usage().blocks_in_use,
        2,
        "the queued two"
    );
    // A sender facing a full ring and no live receiver is told so.
    while ring.send(b"fill").is_ok() {}
    assert!(matches!(
        ring.send_with_timeout(b"one more", STUCK),
        Err(RingError::Disconnected)
    ));
}

/// Receives one message, holds its block, and waits until `GO_VAR`'s file
/// exists (if given: then checks the message is intact) or it is killed.
#[test]
fn child_holder() {
    if !is_child(role!(child_holder)) {
        return;
    }
    let ring = FusionRing::open(&child_var(RING_VAR)).expect("child: open");
    let payload = ring.recv_zerocopy_timeout(STUCK).expect("child: recv");
    assert!(payload.is_zerocopy());
    let tag = u64::from_le_bytes(payload[..8].try_into().unwrap());
    assert!(
        is_message(tag, &payload),
        "child: message {tag} arrived intact"
    );
    println!("HOLDING {}", std::process::id());
    let go = std::env::var(GO_VAR).ok();
    let deadline = Instant::now() + STUCK * 3;
    while Instant::now() < deadline {
        if go
            .as_ref()
            .is_some_and(|g| std::path::Path::new(g).exists())
        {
            assert!(
                is_message(tag, &payload),
                "child: message {tag} still intact"
            );
            println!("INTACT {tag}");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("child: never told to go");
}

#[test]
fn two_peers_with_one_pid_in_two_namespaces_are_told_apart() {
    if !pid_namespaces_available() {
        return;
    }
    let _serial = serial();
    let (name, ring) = ring_with_blocks("pidns-twins", 2);
    let go = std::env::temp_dir().join(format!("{}-go", name.name()));
    let vars = [(GO_VAR, go.to_str().unwrap().to_string())];
    let (mut a, a_lines) = spawn_in_namespace(role!(child_holder), &name, &vars);
    assert_eq!(expect_line(&mut a, &a_lines, "HOLDING"), "1");
    let (mut b, b_lines) = spawn_in_namespace(role!(child_holder), &name, &vars);
    assert_eq!(expect_line(&mut b, &b_lines, "HOLDING"), "1");
    let twins = |p: &[(u32, bool)]| p.iter().filter(|(pid, _)| *pid == 1).count();
    let seen = participants(&name);
    assert_eq!(twins(&seen), 2, "{seen:?}");
    assert!(seen.iter().all(|&(_, alive)| alive), "{seen:?}");

    a.kill();
    wait_for_participants(&name, "one twin dead, the other alive", |p| {
        p.contains(&(1, false)) && p.contains(&(1, true))
    });
    let rec = ring.as_ring().recover();
    // The dead twin's entry goes. Its block stays held: blocks name their
    // holder by pid, and pid 1 still maps the segment (the live twin) - a
    // leak until it exits, never the live twin's block freed.
    assert_eq!((rec.participants, rec.blocks), (1, 0), "{rec:?}");
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 2);

    std::fs::write(&go, b"go").expect("go file");
    let intact = expect_line(&mut b, &b_lines, "INTACT");
    b.wait_success(Instant::now(), STUCK);
    let _ = std::fs::remove_file(&go);
    assert!(intact == "0" || intact == "1", "{intact}");
    // The live twin dropped its block on exit; with no pid 1 left, the
    // dead twin's block is freed too.
    let rec = ring.as_ring().recover();
    assert_eq!(rec.blocks, 1, "{rec:?}");
    assert_eq!(ring.as_ring().arena_usage().blocks_in_use, 0);
}
