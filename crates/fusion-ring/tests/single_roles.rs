//! Single producer / consumer rings across real processes: a live holder
//! in another process keeps its role (others get `RoleTaken` naming it),
//! a killed one loses it to the next claimer, and a forked child's use of
//! an inherited handle is another handle's.

#![cfg(not(fusion_ring_loom))]

use std::time::{Duration, Instant};

use fusion_ring::inspect::RingInfo;
use fusion_ring::{Config, FusionRing, PriorityClass, RingError};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::fork::ForkGuard;
use testkit::names::ShmName;
use testkit::rng::{fill, is_message, mix};
use testkit::role;
use testkit::serial::serial;

const RING_VAR: &str = "FRING_ROLES_RING";
const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `done` holds of the ring's snapshot.
fn wait_for(name: &ShmName, what: &str, done: impl Fn(&RingInfo) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = RingInfo::read(name.name()).expect("ring info");
        if done(&info) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {info:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_live_producer_in_another_process_keeps_the_role_and_a_killed_one_loses_it() {
    let _serial = serial();
    let name = ShmName::new("roles-sp");
    let config = Config::new(8).single_producer(true).single_consumer(true);
    let ring = FusionRing::create(name.name(), &config).expect("create");
    let mut child = ChildGuard::spawn(
        role!(child_sends_and_waits),
        &[(RING_VAR, name.name().into())],
    );
    let pid = child.id();
    wait_for(&name, "the child holds the producer role", |i| {
        i.producer_pid == Some(pid)
    });
    let info = RingInfo::read(name.name()).unwrap();
    assert!(info.single_producer && info.single_consumer && info.consumer_pid.is_none());
    match ring.send(b"mine?") {
        Err(RingError::RoleTaken {
            role: "producer",
            holder_pid,
            ..
        }) => assert_eq!(holder_pid, pid),
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    assert_eq!(
        RingInfo::read(name.name()).unwrap().queued,
        1,
        "the child's only"
    );
    // The consumer role is free: this process takes it.
    let mut buf = [0u8; 64];
    assert_eq!(ring.recv(&mut buf).unwrap(), 5);
    assert_eq!(
        RingInfo::read(name.name()).unwrap().consumer_pid,
        Some(std::process::id())
    );

    child.kill();
    ring.send(b"mine now")
        .expect("a killed holder's role is taken over");
    let info = RingInfo::read(name.name()).unwrap();
    assert_eq!(info.producer_pid, Some(std::process::id()));
}

/// Opens the ring, sends one message (taking the producer role) and waits
/// to be killed.
#[test]
fn child_sends_and_waits() {
    if !is_child(role!(child_sends_and_waits)) {
        return;
    }
    let ring = FusionRing::open(&child_var(RING_VAR)).expect("child: open");
    ring.send(b"child").expect("child: send");
    std::thread::sleep(DEADLINE);
    panic!("child: never killed");
}

/// A handle a forked child uses is the child's own (its own entry), so it
/// does not inherit its parent's role: its send is refused, naming the
/// parent, while the parent's handle holds the role.
#[test]
fn a_forked_child_does_not_inherit_the_role() {
    let _serial = serial();
    let ring = FusionRing::with_config(&Config::new(8).single_producer(true)).expect("ring");
    ring.send(b"parent's").expect("send");
    let parent = std::process::id();
    // SAFETY: the child sends on the inherited mapping (atomics, an fcntl
    // and an open when it registers) and returns its verdict.
    let mut child = unsafe {
        ForkGuard::fork(
            || match ring.send(b"child's") {
                Err(RingError::RoleTaken { holder_pid, .. }) if holder_pid == parent => 0,
                Err(_) => 1,
                Ok(()) => 2,
            },
            3,
        )
    };
    assert_eq!(
        child.exit_code(Instant::now(), DEADLINE),
        0,
        "refused, naming the parent"
    );
    assert_eq!(ring.as_ring().len(), 1, "nothing from the child");
    ring.send(b"still the parent's")
        .expect("the parent keeps it");
}

/// Message `i`'s length: mostly inline, one in 8 through the arena.
fn len_of(i: u64) -> usize {
    let r = mix(i);
    if r.is_multiple_of(8) {
        41 + (r >> 8) as usize % 3000
    } else {
        1 + (r >> 8) as usize % 40
    }
}

const MESSAGES: u64 = 20_000;

/// A producer process and this consumer, each a split handle on a named
/// single-producer single-consumer ring: every message arrives, in order,
/// byte for byte; a second producer is refused when it is made, naming the
/// first.
#[test]
fn split_handles_stream_across_processes() {
    let _serial = serial();
    let name = ShmName::new("roles-split");
    let config = Config::new(64)
        .single_producer(true)
        .single_consumer(true)
        .arena_bytes(1 << 20)
        .max_message(4096);
    let rx = FusionRing::create(name.name(), &config)
        .expect("create")
        .into_consumer()
        .expect("the consumer role is free");
    let mut child = ChildGuard::spawn(role!(child_producer), &[(RING_VAR, name.name().into())]);
    let pid = child.id();
    wait_for(&name, "the child holds the producer role", |i| {
        i.producer_pid == Some(pid)
    });
    match FusionRing::open(name.name()).expect("open").into_producer() {
        Err(RingError::RoleTaken { holder_pid, .. }) => assert_eq!(holder_pid, pid),
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    for i in 0..MESSAGES {
        let p = match rx.recv_zerocopy_timeout(DEADLINE) {
            Ok(p) => p,
            Err(e) => child.fail(format!("no message {i}: {e}")),
        };
        assert!(p.len() == len_of(i) && is_message(i, &p), "message {i}");
    }
    child.wait_success(Instant::now(), DEADLINE);
    assert_eq!(rx.as_ring().arena_usage().blocks_in_use, 0);
}

/// Takes the producer side of the ring and sends [`MESSAGES`] (copies and
/// loans), waiting for room.
#[test]
fn child_producer() {
    if !is_child(role!(child_producer)) {
        return;
    }
    let tx = FusionRing::open(&child_var(RING_VAR))
        .expect("child: open")
        .into_producer()
        .expect("child: the producer role is free");
    let mut buf = vec![0u8; 4096];
    for i in 0..MESSAGES {
        let len = len_of(i);
        if len > 40 && i % 2 == 0 {
            let mut loan = loop {
                match tx.loan(len) {
                    Ok(l) => break l,
                    Err(RingError::ArenaExhausted { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("child: loan {i}: {e}"),
                }
            };
            fill(i, &mut loan);
            let mut pending = loan;
            loop {
                match tx.send_loan(pending, PriorityClass::Normal) {
                    Ok(()) => break,
                    Err(e) if e.error == RingError::Full => {
                        pending = e.loan;
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("child: send_loan {i}: {}", e.error),
                }
            }
        } else {
            fill(i, &mut buf[..len]);
            tx.send_with_timeout(&buf[..len], DEADLINE)
                .unwrap_or_else(|e| panic!("child: send {i}: {e}"));
        }
    }
}

/// In one process: `split` gives the two sides of a new ring, which stream
/// between two threads.
#[test]
fn split_sides_stream_between_threads() {
    let config = Config::new(64).arena_bytes(1 << 20).max_message(4096);
    let (tx, rx) = FusionRing::split(&config).expect("split");
    // Both sides are single: a second consumer is refused when made.
    let fd = rx.as_fd().try_clone_to_owned().expect("dup");
    let again = FusionRing::from_fd(fd).expect("from_fd");
    assert!(matches!(
        again.into_consumer(),
        Err(RingError::RoleTaken {
            role: "consumer",
            ..
        })
    ));
    let producer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        for i in 0..MESSAGES {
            let len = len_of(i);
            fill(i, &mut buf[..len]);
            tx.send_with_timeout(&buf[..len], DEADLINE).expect("send");
        }
    });
    let mut buf = vec![0u8; 4096];
    for i in 0..MESSAGES {
        let n = rx.recv_with_timeout(&mut buf, DEADLINE).expect("recv");
        assert!(n == len_of(i) && is_message(i, &buf[..n]), "message {i}");
    }
    producer.join().expect("producer thread");
}
