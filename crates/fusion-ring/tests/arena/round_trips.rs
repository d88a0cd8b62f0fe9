//! Byte-exact round trips of every size, 0 ..= the maximum message, across
//! two processes: every class boundary and pseudo-random sizes, sent by
//! copy and by loan, received by copy (with a buffer of the maximum size,
//! or of exactly the message's) and in place, on a small ring whose arena
//! holds only 3 maximum-size blocks (senders wait for slots and blocks); on
//! a named ring and on a memfd handed over a Unix socket.

use std::time::Instant;

use fusion_ring::{Config, Payload, RingError};
use testkit::child::{is_child, ChildGuard, Watch};
use testkit::rng::{assert_message, fill, Rng};
use testkit::role;
use testkit::serial::serial;

use crate::common::cross_process::{
    assert_arena_empty, header, loan_watched, open_target, precarve_largest, priority_of,
    send_loan_watched, send_watched, Share, DEADLINE, TARGET_VAR,
};

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
    let mut rng = Rng::counter(0x05EE_DA11);
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
    /// `recv_blocking` / `recv_blocking_with_meta` into a buffer.
    Copy,
    /// `recv_zerocopy_blocking`.
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
        role!(child_round_trip_receiver),
        &[(TARGET_VAR, share.target())],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        deadline: DEADLINE,
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
    if !is_child(role!(child_round_trip_receiver)) {
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
                assert_message(&who, i, len, &buf[..n], &mut scratch);
            }
            RecvMode::Copy => {
                // A buffer of exactly the message's size.
                let (n, p, _) = ring
                    .recv_blocking_with_meta(&mut buf[..len])
                    .expect("recv_blocking_with_meta with an exact buffer");
                assert_message(&who, i, len, &buf[..n], &mut scratch);
                assert_eq!(p, priority, "{who}: priority of message {i}");
            }
            RecvMode::ZeroCopy => {
                let payload = match ring.recv_zerocopy() {
                    Ok(p) => p,
                    Err(RingError::Empty) => {
                        // Never sleep holding a block the sender may wait for.
                        if let Some(old) = held.take() {
                            assert_message(&who, header(&old), old.len(), &old, &mut scratch);
                        }
                        ring.recv_zerocopy_blocking()
                            .expect("recv_zerocopy_timeout")
                    }
                    Err(e) => panic!("{who}: recv_zerocopy: {e}"),
                };
                assert_message(&who, i, len, &payload, &mut scratch);
                assert_eq!(payload.priority(), priority, "{who}: priority of {i}");
                assert_eq!(payload.is_zerocopy(), zerocopy, "{who}: path of {i}");
                // Keep every other payload until after the next receive, so
                // a block is read while the sender reuses others.
                if let Some(old) = held.take() {
                    let old_i = header(&old);
                    assert_message(&who, old_i, old.len(), &old, &mut scratch);
                }
                if len >= 8 && i % 2 == 1 {
                    held = Some(payload);
                }
            }
        }
    }
    if let Some(old) = held.take() {
        assert_message(
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
