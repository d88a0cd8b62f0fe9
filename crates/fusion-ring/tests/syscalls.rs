//! Blocking calls make no system call while traffic flows (DESIGN section
//! 9: "0 syscalls while streaming"), checked across two processes with
//! `RingSync::syscalls`, the count of futex waits and wakes this process
//! has made. One test per binary: the count is process-wide.

#![cfg(not(fusion_ring_loom))]

use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, RingError, RingSync};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::names::unique_name;
use testkit::role;

const DEADLINE: Duration = Duration::from_secs(60);
const MESSAGES: u64 = 2000;
const NAME_VAR: &str = "FUSION_RING_SYSCALLS_RING";

#[test]
fn blocking_calls_make_no_syscall_while_messages_are_there() {
    let name = unique_name("fr-syscalls");
    let config = Config::new(4096).arena_bytes(4 << 20).max_message(4096);
    let ring = FusionRing::create(&name, &config).expect("create");

    // The child sends with `send_blocking` (40-byte and 2 KiB messages:
    // inline and zero-copy) into a ring with room for all, nobody asleep
    // on it: no wake-up to make, no sleep.
    let start = Instant::now();
    let mut child = ChildGuard::spawn(role!(child_blocking_sender), &[(NAME_VAR, name.clone())]);
    let output = child.wait_success(start, DEADLINE);
    let child_syscalls: u64 = output
        .lines()
        .find_map(|l| l.split_once("syscalls ").map(|(_, n)| n))
        .unwrap_or_else(|| panic!("no syscall count in the child's output:\n{output}"))
        .trim()
        .parse()
        .expect("a count");
    assert_eq!(child_syscalls, 0, "the sender made system calls");

    // The parent receives them all with `recv_blocking`: each is there.
    let before = RingSync::syscalls();
    let mut buf = vec![0u8; 4096];
    for i in 0..MESSAGES {
        let n = ring.recv_blocking(&mut buf).expect("recv");
        assert_eq!(n, message_len(i));
        assert!(buf[..n].iter().all(|&b| b == i as u8), "message {i}");
    }
    assert_eq!(
        RingSync::syscalls(),
        before,
        "the receiver made system calls"
    );

    // The count does move when a call has to sleep. The sender has exited:
    // a sleep that overran the first peer check (5 ms, on a loaded machine)
    // ends in `Disconnected` rather than `Timeout`; both come after a sleep.
    let r = ring.recv_with_timeout(&mut buf, Duration::from_millis(2));
    assert!(
        matches!(r, Err(RingError::Timeout | RingError::Disconnected)),
        "{r:?}"
    );
    assert!(RingSync::syscalls() > before, "a sleep was not counted");
}

fn message_len(i: u64) -> usize {
    if i.is_multiple_of(2) {
        40
    } else {
        2048
    }
}

#[test]
fn child_blocking_sender() {
    if !is_child(role!(child_blocking_sender)) {
        return;
    }
    let name = child_var(NAME_VAR);
    let ring = FusionRing::open(&name).unwrap_or_else(|e| panic!("child: open {name}: {e}"));
    let before = RingSync::syscalls();
    for i in 0..MESSAGES {
        ring.send_blocking(&vec![i as u8; message_len(i)])
            .unwrap_or_else(|e| panic!("child: send {i}: {e}"));
    }
    println!("syscalls {}", RingSync::syscalls() - before);
}
