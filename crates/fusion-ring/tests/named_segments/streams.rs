//! `UltraFastRing` streams between real processes attached to one ring:
//! by name (created in the parent, opened in a child) and as an anonymous
//! memfd handed over a Unix socket with `SCM_RIGHTS`.
//!
//! Children are this test binary itself, re-run as one of the `child_*`
//! tests (the test kit's `child` module); a `child_*` test returns at once
//! unless it was spawned to play that role. Every message is checked byte
//! for byte (`common::stream`).

use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use fusion_ring::{Config, UltraFastRing};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::names::{unique_name, PathGuard};
use testkit::role;
use testkit::serial::serial;

use crate::common::stream::{
    assert_stream_stats, deadline_check, recv_all_batched, recv_all_fast, send_all_batched,
    send_all_fast, CAPACITY, DEADLINE, N,
};
use crate::common::{recv_fd, send_fd};

/// Ring name, or socket path for the memfd test.
const TARGET_VAR: &str = "FUSION_RING_CHILD_TARGET";
const COUNT_VAR: &str = "FUSION_RING_CHILD_COUNT";

// ---------------------------------------------------------------------------
// Children

fn unique(tag: &str) -> String {
    unique_name(&format!("fr-xp-{tag}"))
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
// Named ring: created in the parent, opened in a child

#[test]
fn named_ring_parent_sends_child_receives() {
    let _serial = serial();
    let name = unique("fwd");
    let ring = UltraFastRing::create(&name, &Config::new(CAPACITY)).expect("create");
    let mut child = spawn(role!(child_named_receiver), &name, N);
    let start = Instant::now();
    send_all_fast("parent", &ring, N, &mut stall(&mut child, start));
    child.wait_success(start, DEADLINE);
    // The child's counters live in the shared segment.
    assert_stream_stats(&ring, N);
}

#[test]
fn child_named_receiver() {
    let Some((name, count)) = child_role(role!(child_named_receiver)) else {
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
    let mut child = spawn(role!(child_named_sender), &name, N);
    let start = Instant::now();
    recv_all_fast("parent", &ring, N, &mut stall(&mut child, start));
    child.wait_success(start, DEADLINE);
    assert_stream_stats(&ring, N);
}

#[test]
fn child_named_sender() {
    let Some((name, count)) = child_role(role!(child_named_sender)) else {
        return;
    };
    let ring = UltraFastRing::open(&name).unwrap_or_else(|e| panic!("child: open {name}: {e}"));
    let start = Instant::now();
    send_all_batched("child", &ring, count, &mut deadline_check("child", start));
}

// ---------------------------------------------------------------------------
// Anonymous memfd ring handed over a Unix socket with SCM_RIGHTS

#[test]
fn memfd_ring_over_unix_socket_child_sends() {
    let _serial = serial();
    let ring = UltraFastRing::new(CAPACITY).expect("new");
    let path = PathGuard(std::env::temp_dir().join(format!("{}.sock", unique("memfd"))));
    let listener = UnixListener::bind(&path.0).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let mut child = spawn(
        role!(child_memfd_sender),
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
    let Some((path, count)) = child_role(role!(child_memfd_sender)) else {
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
