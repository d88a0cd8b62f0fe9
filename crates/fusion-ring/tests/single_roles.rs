//! Single producer / consumer rings across real processes: a live holder
//! in another process keeps its role (others get `RoleTaken` naming it),
//! a killed one loses it to the next claimer, and a forked child's use of
//! an inherited handle is another handle's.

#![cfg(not(fusion_ring_loom))]

use std::time::{Duration, Instant};

use fusion_ring::inspect::RingInfo;
use fusion_ring::{Config, FusionRing, RingError};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::fork::ForkGuard;
use testkit::names::ShmName;
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
