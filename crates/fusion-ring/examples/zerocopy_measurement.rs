//! Measurement of the FusionRing paths (not a test): single-thread cost of
//! inline, zero-copy (loan API) and batch paths; cross-process one-way
//! latency of inline vs zero-copy at 1 KiB / 64 KiB / 1 MiB; streaming
//! bandwidth of a copying `send` of 1 MiB messages vs memcpy; wake-up
//! latency of a sleeping receiver vs an eventfd. Cores 0 and 1.
//!
//! `cargo run --release -p fusion-ring --example zerocopy_measurement`

use std::time::{Duration, Instant};

use fusion_ring::{Clock, Config, FusionRing, InlineMessage, PriorityClass, RingError};

#[path = "common/mod.rs"]
mod common;
use common::{forked, median, p99, pin};

const PRIO: PriorityClass = PriorityClass::Normal;

fn ticks_per_msg(rounds: usize, n: u64, mut body: impl FnMut()) -> f64 {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let t0 = Clock::now();
        for _ in 0..n {
            body();
        }
        v.push((Clock::now() - t0) as f64 / n as f64);
    }
    median(&mut v)
}

fn single_thread() {
    let ring = FusionRing::new(1024).unwrap();
    let msg = [7u8; 40];
    let mut buf = vec![0u8; 1 << 20];
    let inline = ticks_per_msg(7, 1_000_000, || {
        ring.send(std::hint::black_box(&msg)).unwrap();
        std::hint::black_box(ring.recv(&mut buf).unwrap());
    });
    println!("single thread, FusionRing inline send+recv 40 B:        {inline:7.1} ticks/msg");
    for size in [1024usize, 64 << 10, 1 << 20] {
        let t = ticks_per_msg(7, 100_000, || {
            let mut loan = ring.loan(size).unwrap();
            loan[..64].fill(1); // a header; the payload is written in place
            ring.send_loan(loan, PRIO).map_err(|e| e.error).unwrap();
            let p = ring.recv_zerocopy().unwrap();
            std::hint::black_box(p[0]);
        });
        println!("single thread, loan+send_loan+recv_zerocopy {size:>7} B: {t:7.1} ticks/msg");
    }
    let batch_ring = fusion_ring::UltraFastRing::new(1024).unwrap();
    let batch: [&[u8]; 32] = [&msg; 32];
    let mut out = [InlineMessage::default(); 32];
    let b = ticks_per_msg(7, 50_000, || {
        batch_ring
            .send_batch(std::hint::black_box(&batch), PRIO)
            .unwrap();
        std::hint::black_box(batch_ring.recv_batch(&mut out).unwrap());
    }) / 32.0;
    println!("single thread, batch 32 x 40 B send+recv:               {b:7.1} ticks/msg");
}

const PINGS: usize = 20_000;
const CHUNK: usize = 100;

/// One-way latency (ns) per chunk: ping of `size` bytes through the loan
/// API (or inline for size <= 40), pong of 1 byte inline.
fn pingpong(size: usize) -> Vec<f64> {
    let ping = FusionRing::new(64).unwrap();
    let pong = FusionRing::new(64).unwrap();
    forked(
        || {
            for _ in 0..PINGS {
                let p = loop {
                    match ping.recv_zerocopy() {
                        Ok(p) => break p,
                        Err(RingError::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                };
                let first = p[0];
                drop(p);
                while pong.send(&[first]).is_err() {}
            }
        },
        || {
            let mut out = Vec::new();
            let mut buf = [0u8; 64];
            let small = [1u8; 40];
            for _ in 0..PINGS / CHUNK {
                let t0 = Clock::now();
                for _ in 0..CHUNK {
                    if size <= 40 {
                        ping.send(&small[..size]).unwrap();
                    } else {
                        let mut loan = ping.loan(size).unwrap();
                        loan[..64].fill(1);
                        ping.send_loan(loan, PRIO).map_err(|e| e.error).unwrap();
                    }
                    while pong.recv(&mut buf).is_err() {
                        std::hint::spin_loop();
                    }
                }
                out.push(Clock::ticks_to_ns((Clock::now() - t0) as f64) / (2 * CHUNK) as f64);
            }
            out
        },
    )
}

/// GB/s of a copying `send` of 1 MiB messages to a process that takes them
/// in place (recv_zerocopy) and drops them.
fn copy_stream() -> f64 {
    const N: usize = 2000;
    const SIZE: usize = 1 << 20;
    let ring = FusionRing::with_config(&Config::new(64).arena_bytes(64 << 20)).unwrap();
    forked(
        || {
            for _ in 0..N {
                let p = ring.recv_zerocopy_timeout(None).unwrap();
                std::hint::black_box(p[SIZE - 1]);
            }
        },
        || {
            let data = vec![3u8; SIZE];
            let t0 = Instant::now();
            for _ in 0..N {
                ring.send_blocking(&data).unwrap();
            }
            (N * SIZE) as f64 / t0.elapsed().as_secs_f64() / 1e9
        },
    )
}

fn memcpy_bandwidth() -> f64 {
    const SIZE: usize = 1 << 20;
    let src = vec![1u8; SIZE];
    let mut dst = vec![0u8; SIZE];
    let mut v = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        for _ in 0..500 {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        v.push(500.0 * SIZE as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    median(&mut v)
}

const WAKES: usize = 2000;

/// Round trip / 2 (ns) when both sides sleep in recv_blocking between pings.
fn blocking_wakeup() -> Vec<f64> {
    let ping = FusionRing::new(64).unwrap();
    let pong = FusionRing::new(64).unwrap();
    forked(
        || {
            let mut b = [0u8; 8];
            for _ in 0..WAKES {
                ping.recv_blocking(&mut b).unwrap();
                pong.send_blocking(&b[..1]).unwrap();
            }
        },
        || {
            let mut b = [0u8; 8];
            let mut out = Vec::new();
            for _ in 0..WAKES {
                // Let the child go to sleep first.
                std::thread::sleep(Duration::from_micros(300));
                let t0 = Clock::now();
                ping.send_blocking(&[1]).unwrap();
                pong.recv_blocking(&mut b).unwrap();
                out.push(Clock::ticks_to_ns((Clock::now() - t0) as f64) / 2.0);
            }
            out
        },
    )
}

/// The same pattern with two eventfds.
fn eventfd_wakeup() -> Vec<f64> {
    use rustix::event::{eventfd, EventfdFlags};
    let a = eventfd(0, EventfdFlags::empty()).unwrap();
    let b = eventfd(0, EventfdFlags::empty()).unwrap();
    let one = 1u64.to_ne_bytes();
    forked(
        || {
            let mut v = [0u8; 8];
            for _ in 0..WAKES {
                rustix::io::read(&a, &mut v).unwrap();
                rustix::io::write(&b, &one).unwrap();
            }
        },
        || {
            let mut v = [0u8; 8];
            let mut out = Vec::new();
            for _ in 0..WAKES {
                std::thread::sleep(Duration::from_micros(300));
                let t0 = Clock::now();
                rustix::io::write(&a, &one).unwrap();
                rustix::io::read(&b, &mut v).unwrap();
                out.push(Clock::ticks_to_ns((Clock::now() - t0) as f64) / 2.0);
            }
            out
        },
    )
}

fn main() {
    println!("clock: {:.3} ticks/ns", Clock::ticks_per_ns());
    pin(0);
    single_thread();
    println!("one-way latency, two processes (median / p99 of {CHUNK}-ping chunks):");
    let mut inline = pingpong(40);
    let inl = median(&mut inline);
    println!(
        "  inline 40 B:          {inl:8.1} / {:8.1} ns",
        p99(&mut inline)
    );
    for size in [1024, 64 << 10, 1 << 20] {
        let mut v = pingpong(size);
        let m = median(&mut v);
        println!(
            "  loan {size:>7} B:       {m:8.1} / {:8.1} ns  = {:.2}x inline",
            p99(&mut v),
            m / inl
        );
    }
    let bw = copy_stream();
    let mc = memcpy_bandwidth();
    println!(
        "copying send of 1 MiB, streaming: {bw:.2} GB/s; memcpy 1 MiB: {mc:.2} GB/s; ratio {:.2}",
        bw / mc
    );
    let mut ring = blocking_wakeup();
    let mut efd = eventfd_wakeup();
    let (r, e) = (median(&mut ring), median(&mut efd));
    println!(
        "sleeping receiver woken (RTT/2, both sides blocking): ring {r:.0} ns (p99 {:.0}), eventfd {e:.0} ns (p99 {:.0}); ratio {:.2}",
        p99(&mut ring),
        p99(&mut efd),
        r / e
    );
}
