//! First measurement of the inline path (not a test): single-thread
//! `send_fast` + `recv_fast` cost in TSC ticks, and cross-process one-way
//! latency (ping-pong / 2) beside a raw cache-line ping-pong and a pipe, all
//! in one run, the two processes pinned to cores 0 and 1.
//!
//! `cargo run --release -p fusion-ring --example first_measurement`

use std::sync::atomic::Ordering;
use std::time::Instant;

use fusion_ring::{Clock, Config, PriorityClass, RingError, UltraFastRing};
use testkit::cpu::{cpu_count, pin};
use testkit::fork::with_peer;
use testkit::shared_page::SharedPage;

const ROUNDS: usize = 7;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Runs `child` in a forked process on the second core while `parent` runs
/// on the first; returns the parent's result.
fn forked<T>(child: impl FnOnce(), parent: impl FnOnce() -> T) -> T {
    // SAFETY: this example is single-threaded when it forks; the child only
    // runs `child` (rings and pipes set up before the fork) and exits.
    unsafe { with_peer(child, parent) }.unwrap_or_else(|e| panic!("{e}"))
}

fn single_thread() -> f64 {
    let ring = UltraFastRing::new(1024).unwrap();
    let msg = [7u8; 40];
    let mut buf = [0u8; 40];
    const N: u64 = 2_000_000;
    let mut per = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Clock::now();
        for _ in 0..N {
            ring.send_fast(std::hint::black_box(&msg), PriorityClass::Normal)
                .unwrap();
            std::hint::black_box(ring.recv_fast(&mut buf).unwrap());
        }
        per.push((Clock::now() - t0) as f64 / N as f64);
    }
    median(&mut per)
}

fn single_thread_batch() -> f64 {
    let ring = UltraFastRing::new(1024).unwrap();
    let msg = [7u8; 40];
    let batch: [&[u8]; 32] = [&msg; 32];
    let mut out = [fusion_ring::InlineMessage::default(); 32];
    const N: u64 = 100_000;
    let mut per = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Clock::now();
        for _ in 0..N {
            ring.send_batch(std::hint::black_box(&batch), PriorityClass::Normal)
                .unwrap();
            std::hint::black_box(ring.recv_batch(&mut out).unwrap());
        }
        per.push((Clock::now() - t0) as f64 / (N * 32) as f64);
    }
    median(&mut per)
}

const PINGS: usize = 200_000;
const CHUNK: usize = 1000;

/// One-way latency in ns per chunk of round trips (median and p99 later).
fn ring_pingpong(timestamps: bool) -> Vec<f64> {
    let config = Config::new(64)
        .arena_bytes(0)
        .wakeups(false)
        .timestamps(timestamps);
    let ping = UltraFastRing::with_config(&config).unwrap();
    let pong = UltraFastRing::with_config(&config).unwrap();
    let mut buf = [0u8; 40];
    forked(
        || {
            let mut b = [0u8; 40];
            for _ in 0..PINGS {
                let n = loop {
                    match ping.recv_fast(&mut b) {
                        Ok((n, _, _)) => break n,
                        Err(RingError::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                };
                while pong.send_fast(&b[..n], PriorityClass::RealTime).is_err() {}
            }
        },
        || {
            let msg = [1u8; 40];
            let mut out = Vec::new();
            for _ in 0..PINGS / CHUNK {
                let t0 = Clock::now();
                for _ in 0..CHUNK {
                    ping.send_fast(&msg, PriorityClass::RealTime).unwrap();
                    while pong.recv_fast(&mut buf).is_err() {
                        std::hint::spin_loop();
                    }
                }
                out.push(Clock::ticks_to_ns((Clock::now() - t0) as f64) / (2 * CHUNK) as f64);
            }
            out
        },
    )
}

fn cacheline_pingpong() -> Vec<f64> {
    // One line of anonymous shared memory, inherited by the child.
    let page = SharedPage::new();
    let line = page.word(0);
    forked(
        || {
            for i in 0..PINGS as u64 {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        },
        || {
            let mut out = Vec::new();
            for c in 0..(PINGS / CHUNK) as u64 {
                let t0 = Clock::now();
                for i in c * CHUNK as u64..(c + 1) * CHUNK as u64 {
                    line.store(2 * i + 1, Ordering::Release);
                    while line.load(Ordering::Acquire) != 2 * i + 2 {
                        std::hint::spin_loop();
                    }
                }
                out.push(Clock::ticks_to_ns((Clock::now() - t0) as f64) / (2 * CHUNK) as f64);
            }
            out
        },
    )
}

fn pipe_pingpong() -> Vec<f64> {
    use std::io::{Read, Write};
    // a_* carries parent -> child, b_* child -> parent.
    let (mut a_r, mut a_w) = std::io::pipe().unwrap();
    let (mut b_r, mut b_w) = std::io::pipe().unwrap();
    const N: usize = 20_000;
    const C: usize = 100;
    forked(
        || {
            let mut b = [0u8; 40];
            for _ in 0..N {
                a_r.read_exact(&mut b).unwrap();
                b_w.write_all(&b).unwrap();
            }
        },
        || {
            let mut b = [0u8; 40];
            let mut out = Vec::new();
            for _ in 0..N / C {
                let t0 = Instant::now();
                for _ in 0..C {
                    a_w.write_all(&b).unwrap();
                    b_r.read_exact(&mut b).unwrap();
                }
                out.push(t0.elapsed().as_nanos() as f64 / (2 * C) as f64);
            }
            out
        },
    )
}

fn main() {
    let rate = Clock::ticks_per_ns();
    println!("clock: {rate:.3} ticks/ns; {} cpus", cpu_count());
    if let Err(e) = pin(0) {
        eprintln!("warning: cannot pin to cpu 0: {e}");
    }
    let st = single_thread();
    let sb = single_thread_batch();
    println!(
        "single thread send_fast+recv_fast (40 B): {st:.1} ticks/message (median of {ROUNDS})"
    );
    println!("single thread send_batch+recv_batch (32 x 40 B): {sb:.1} ticks/message");
    let mut floor = cacheline_pingpong();
    let mut ring = ring_pingpong(true);
    let mut bare = ring_pingpong(false);
    let mut floor2 = cacheline_pingpong();
    let mut pipe = pipe_pingpong();
    let (f, f2, r, p) = (
        median(&mut floor),
        median(&mut floor2),
        median(&mut ring),
        median(&mut pipe),
    );
    println!("one-way latency, two processes, cores 0 and 1 (median / p99 of chunk means):");
    println!(
        "  cache-line ping-pong (floor): {f:8.1} ns / {:8.1} ns  (again after: {f2:.1} ns)",
        p99(&mut floor)
    );
    println!(
        "  UltraFastRing inline 40 B:    {r:8.1} ns / {:8.1} ns  = {:.2}x floor",
        p99(&mut ring),
        r / f.min(f2)
    );
    let b = median(&mut bare);
    println!(
        "  same, Config::timestamps(false): {b:8.1} ns / {:8.1} ns  = {:.2}x floor",
        p99(&mut bare),
        b / f.min(f2)
    );
    println!(
        "  pipe 40 B:                    {p:8.1} ns / {:8.1} ns  = {:.0}x ring",
        p99(&mut pipe),
        p / r
    );
}
