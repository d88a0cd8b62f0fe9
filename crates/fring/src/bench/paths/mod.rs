//! The measured paths: ours and the baselines, each across two processes.
//!
//! Latency is one-way: each round trip is timed with the TSC and halved.
//! Throughput streams messages one way and times the whole stream.

mod latency;
mod reference;
mod streams;

pub use latency::*;
pub use reference::*;
pub use streams::*;

use std::io::{Read, Write};

use fusion_ring::{
    Config, FusionRing, PriorityClass, Publisher, RingError, Subscriber, UltraFastRing,
};
use serde::Serialize;

const PRIO: PriorityClass = PriorityClass::Normal;

/// One-way latencies in TSC ticks (round trip / 2), one per round trip.
pub type Samples = Vec<u64>;

/// A stream's totals.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub messages: u64,
    pub ticks: u64,
    pub secs: f64,
    /// Futex system calls each side's process made on rings while the
    /// stream ran ([`fusion_ring::RingSync::syscalls`]). Zero on the paths
    /// that use no ring (pipe, socket, the line and packed limits): only
    /// the ring rows' counts say anything.
    pub syscalls: Syscalls,
}

/// Futex system calls (waits and wakes on rings) made while a stream ran,
/// by the sending process (the parent) and by the receiving one (the
/// forked child).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Syscalls {
    pub sender: u64,
    pub receiver: u64,
}

impl Syscalls {
    /// Both sides together.
    pub fn total(self) -> u64 {
        self.sender + self.receiver
    }
}

impl Stream {
    /// No messages yet.
    pub const EMPTY: Stream = Stream {
        messages: 0,
        ticks: 0,
        secs: 0.0,
        syscalls: Syscalls {
            sender: 0,
            receiver: 0,
        },
    };

    /// Adds a part of a stream taken in turns.
    pub fn add(&mut self, part: Stream) {
        self.messages += part.messages;
        self.ticks += part.ticks;
        self.secs += part.secs;
        self.syscalls.sender += part.syscalls.sender;
        self.syscalls.receiver += part.syscalls.receiver;
    }

    /// Ticks per message.
    pub fn ticks_per_msg(&self) -> f64 {
        self.ticks as f64 / self.messages.max(1) as f64
    }
}

type R<T> = Result<T, String>;

fn spin_send(ring: &UltraFastRing, data: &[u8]) {
    while let Err(e) = ring.send_fast(data, PRIO) {
        assert_eq!(e, RingError::Full, "send failed");
        std::hint::spin_loop();
    }
}

fn spin_recv(ring: &UltraFastRing, buf: &mut [u8]) -> usize {
    loop {
        match ring.recv_fast(buf) {
            Ok((n, _, _)) => return n,
            Err(RingError::Empty) => std::hint::spin_loop(),
            Err(e) => panic!("recv failed: {e}"),
        }
    }
}

/// An inline ring as `UltraFastRing::new` makes it, with one producer and
/// one consumer at a time if `single` (`Config::single_producer` /
/// `single_consumer`: the protocol of `lockfree::single`), unstamped
/// unless `stamps`.
fn inline_ring(capacity: usize, single: bool, stamps: bool) -> R<UltraFastRing> {
    let config = Config::inline_only(capacity)
        .timestamps(stamps)
        .single_producer(single)
        .single_consumer(single);
    UltraFastRing::with_config(&config).map_err(|e| e.to_string())
}

fn fusion(capacity: usize, size: usize, wakeups: bool) -> R<FusionRing> {
    let arena = (size.next_power_of_two() + 64) * 8;
    let config = Config::new(capacity)
        .arena_bytes(arena.max(1 << 20))
        .max_message(size.max(64))
        .wakeups(wakeups);
    FusionRing::with_config(&config).map_err(|e| e.to_string())
}

/// A read end and a write end used as one stream.
struct Duplex(std::io::PipeReader, std::io::PipeWriter);

impl Read for Duplex {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}

impl Write for Duplex {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.1.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.1.flush()
    }
}
