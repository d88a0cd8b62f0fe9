//! Arena usage back to zero after a long mixed stream across two
//! processes: a million messages, 7 % of them zero-copy (sent by copy or
//! by loan); the receiving child keeps clones for a while, forwards some
//! payloads back into the ring, and receives with every call there is.

use std::time::Instant;

use fusion_ring::{Config, Payload, PriorityClass, RingError};
use testkit::child::{is_child, ChildGuard, Watch};
use testkit::rng::{assert_message, fill, Rng};
use testkit::role;
use testkit::serial::serial;

use crate::common::cross_process::{
    assert_arena_empty, child_count, header, loan_watched, open_target, precarve_largest,
    priority_of, report_value, send_loan_watched, Backoff, Share, COUNT_VAR, DEADLINE, TARGET_VAR,
};

const ARENA_STREAM: u64 = 1_000_000;
const ARENA_MAX: usize = 64 << 10;

/// Length of message `i` of the arena stream: mostly inline, 7 % zero-copy
/// of 41 B .. 64 KiB (log-uniform).
fn arena_len(i: u64) -> usize {
    let mut rng = Rng::counter(i ^ 0xA2E7A);
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
        role!(child_arena_consumer),
        &[
            (TARGET_VAR, share.target()),
            (COUNT_VAR, ARENA_STREAM.to_string()),
        ],
    )];
    let start = Instant::now();
    let mut watch = Watch {
        start,
        deadline: DEADLINE,
        children: &mut children,
    };
    share.hand_over(&ring, &mut watch);

    let mut scratch = vec![0u8; ARENA_MAX];
    let mut rng = Rng::counter(0xB0B);
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
            assert_message(
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
        assert_message("child", i, arena_len(i), bytes, &mut self.scratch);
        assert_eq!(priority, priority_of(i), "priority of {i}");
        self.next += 1;
        true
    }

    /// Checks a payload held for a while (its block must not have been reused).
    fn recheck(&mut self, p: &Payload) {
        assert_message(
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
    if !is_child(role!(child_arena_consumer)) {
        return;
    }
    let ring = open_target();
    let count = child_count();
    let start = Instant::now();
    let mut rng = Rng::counter(0xC0FFEE);
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
