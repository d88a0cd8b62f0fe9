//! The measured paths: ours and the baselines, each across two processes.
//!
//! Latency is one-way: each round trip is timed with the TSC and halved.
//! Throughput streams messages one way and times the whole stream.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fusion_ring::{
    Clock, Config, FusionRing, InlineMessage, PriorityClass, RingError, UltraFastRing,
};

use super::fork::{with_peer, SharedPage};

const PRIO: PriorityClass = PriorityClass::Normal;

/// One-way latencies in TSC ticks (round trip / 2), one per round trip.
pub type Samples = Vec<u64>;

/// A stream's totals.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub messages: u64,
    pub ticks: u64,
    pub secs: f64,
}

impl Stream {
    /// No messages yet.
    pub const EMPTY: Stream = Stream {
        messages: 0,
        ticks: 0,
        secs: 0.0,
    };

    /// Adds a part of a stream taken in turns.
    pub fn add(&mut self, part: Stream) {
        self.messages += part.messages;
        self.ticks += part.ticks;
        self.secs += part.secs;
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

/// Times `rounds` round trips after `warmup` untimed ones.
fn timed(warmup: usize, rounds: usize, mut rtt: impl FnMut()) -> Samples {
    for _ in 0..warmup {
        rtt();
    }
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Clock::now();
        rtt();
        out.push((Clock::now() - t0) / 2);
    }
    out
}

/// The physical floor: one cache line bounced between the two cores.
pub fn floor(rounds: usize) -> R<Samples> {
    let page = SharedPage::new();
    let line = page.word(0);
    let total = (rounds + rounds / 10 + 1) as u64;
    with_peer(
        || {
            for i in 0..total {
                while line.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                line.store(2 * i + 2, Ordering::Release);
            }
        },
        || {
            let mut i = 0u64;
            timed((total as usize) - rounds, rounds, || {
                line.store(2 * i + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
                i += 1;
            })
        },
    )
}

/// The least any ping-pong through two queues pays: each side writes the
/// next line of its own ring of lines while the other side polls that line.
/// Unlike `floor` (one line, read then written by each side in turn, so
/// one transfer per hop hands over ownership too), the writer must first
/// take its line back from the poller: two transfers per hop.
pub fn ring_floor(rounds: usize) -> R<Samples> {
    const LINES: u64 = 32; // per direction: ping lines 0..32, pong 32..64
    let page = SharedPage::new();
    let line = |dir: u64, i: u64| page.word((64 * (dir * LINES + i % LINES)) as usize);
    let total = (rounds + rounds / 10 + 1) as u64;
    with_peer(
        || {
            for i in 1..=total {
                while line(0, i).load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                line(1, i).store(i, Ordering::Release);
            }
        },
        || {
            let mut i = 0u64;
            timed((total as usize) - rounds, rounds, || {
                i += 1;
                line(0, i).store(i, Ordering::Release);
                while line(1, i).load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            })
        },
    )
}

/// Ticks of one `send_fast` + `recv_fast` of 40 bytes on this thread
/// (median of 7 runs of `pairs`): the single-thread cost of the hot path,
/// MPMC-safe (two locked claims), with or without the ring's timestamps.
pub fn single_thread(pairs: u64, timestamps: bool) -> R<f64> {
    let config = Config::new(1024)
        .arena_bytes(0)
        .wakeups(false)
        .timestamps(timestamps);
    let ring = UltraFastRing::with_config(&config).map_err(|e| e.to_string())?;
    let msg = [7u8; 40];
    let mut buf = [0u8; 40];
    let mut runs = Vec::with_capacity(7);
    for _ in 0..7 {
        let t0 = Clock::now();
        for _ in 0..pairs {
            ring.send_fast(std::hint::black_box(&msg), PRIO)
                .map_err(|e| e.to_string())?;
            std::hint::black_box(ring.recv_fast(&mut buf).map_err(|e| e.to_string())?);
        }
        runs.push((Clock::now() - t0) as f64 / pairs as f64);
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[3])
}

/// What one read of the clock costs, in ticks (median of 5 runs of 100 000
/// reads): every stamped message pays it twice, once on each side.
pub fn clock_read_ticks() -> f64 {
    const READS: u64 = 100_000;
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Clock::now();
            for _ in 0..READS {
                std::hint::black_box(Clock::now());
            }
            (Clock::now() - t0) as f64 / READS as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

/// Inline 40-byte messages through `UltraFastRing` (the hot path).
pub fn inline_latency(rounds: usize) -> R<Samples> {
    let ping = UltraFastRing::new(64).map_err(|e| e.to_string())?;
    let pong = UltraFastRing::new(64).map_err(|e| e.to_string())?;
    let warm = rounds / 10 + 1;
    with_peer(
        || {
            let mut b = [0u8; 40];
            for _ in 0..warm + rounds {
                let n = spin_recv(&ping, &mut b);
                spin_send(&pong, &b[..n]);
            }
        },
        || {
            let msg = [0x5Au8; 40];
            let mut b = [0u8; 40];
            timed(warm, rounds, || {
                spin_send(&ping, &msg);
                spin_recv(&pong, &mut b);
            })
        },
    )
}

fn fusion(capacity: usize, size: usize, wakeups: bool) -> R<FusionRing> {
    let arena = (size.next_power_of_two() + 64) * 8;
    let config = Config::new(capacity)
        .arena_bytes(arena.max(1 << 20))
        .max_message(size.max(64))
        .wakeups(wakeups);
    FusionRing::with_config(&config).map_err(|e| e.to_string())
}

/// `size`-byte messages zero-copy: through the loan API (written in place:
/// the sender writes a 64-byte header, the receiver reads it in place), or
/// with a copying `send` of a prepared buffer.
pub fn zerocopy_latency(size: usize, loan: bool, rounds: usize) -> R<Samples> {
    let ping = fusion(16, size, false)?;
    let pong = UltraFastRing::new(64).map_err(|e| e.to_string())?;
    let warm = rounds / 10 + 1;
    with_peer(
        || {
            for _ in 0..warm + rounds {
                let p = loop {
                    match ping.recv_zerocopy() {
                        Ok(p) => break p,
                        Err(RingError::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                };
                let tag = p[0];
                drop(p);
                spin_send(&pong, &[tag]);
            }
        },
        || {
            let data = vec![7u8; size];
            let mut b = [0u8; 40];
            timed(warm, rounds, || {
                if loan {
                    let mut l = ping.loan(size).expect("arena block");
                    l[..64].fill(7);
                    ping.send_loan(l, PRIO).map_err(|e| e.error).expect("send");
                } else {
                    ping.send(&data).expect("send");
                }
                spin_recv(&pong, &mut b);
            })
        },
    )
}

/// A receiver asleep in `recv_blocking` is woken by a send. Both sides
/// block; the parent pauses before each ping so the child is asleep.
pub fn blocking_latency(rounds: usize) -> R<Samples> {
    let ping = FusionRing::new(64).map_err(|e| e.to_string())?;
    let pong = FusionRing::new(64).map_err(|e| e.to_string())?;
    with_peer(
        || {
            let mut b = [0u8; 8];
            for _ in 0..rounds + 1 {
                ping.recv_blocking(&mut b).expect("recv");
                pong.send_blocking(&b[..1]).expect("send");
            }
        },
        || {
            let mut b = [0u8; 8];
            let mut out = Vec::with_capacity(rounds);
            for i in 0..rounds + 1 {
                // Untimed pause: the child goes to sleep in the meantime.
                std::thread::sleep(WAKE_PAUSE);
                let t0 = Clock::now();
                ping.send_blocking(&[1]).expect("send");
                pong.recv_blocking(&mut b).expect("recv");
                if i > 0 {
                    out.push((Clock::now() - t0) / 2);
                }
            }
            out
        },
    )
}

/// The untimed pause before each ping of the wake-up rows (`blocking`,
/// `eventfd`): long enough for the receiver to be asleep, so both rows time
/// waking a sleeper from the same state (an idle vCPU wakes slower than a
/// busy one: comparing a sleeper with a peer still spinning is unfair).
pub const WAKE_PAUSE: Duration = Duration::from_micros(200);

/// Shared memory signalled with eventfds (the classic "shm + eventfd" IPC):
/// the message is written to a shared line, then an eventfd wakes the peer,
/// which sleeps in `read` after a [`WAKE_PAUSE`] before each ping.
pub fn eventfd_latency(rounds: usize) -> R<Samples> {
    use rustix::event::{eventfd, EventfdFlags};
    let a = eventfd(0, EventfdFlags::empty()).map_err(|e| e.to_string())?;
    let b = eventfd(0, EventfdFlags::empty()).map_err(|e| e.to_string())?;
    let page = SharedPage::new();
    let msg = page.word(64);
    let one = 1u64.to_ne_bytes();
    let warm = rounds / 10 + 1;
    with_peer(
        || {
            let mut v = [0u8; 8];
            for _ in 0..warm + rounds {
                rustix::io::read(&a, &mut v).expect("eventfd read");
                msg.fetch_add(1, Ordering::AcqRel);
                rustix::io::write(&b, &one).expect("eventfd write");
            }
        },
        || {
            let mut v = [0u8; 8];
            let mut out = Vec::with_capacity(rounds);
            for i in 0..warm + rounds {
                std::thread::sleep(WAKE_PAUSE);
                let t0 = Clock::now();
                msg.fetch_add(1, Ordering::AcqRel);
                rustix::io::write(&a, &one).expect("eventfd write");
                rustix::io::read(&b, &mut v).expect("eventfd read");
                if i >= warm {
                    out.push((Clock::now() - t0) / 2);
                }
            }
            out
        },
    )
}

fn byte_pair_latency<S: Read + Write>(mut near: S, mut far: S, rounds: usize) -> R<Samples> {
    let warm = rounds / 10 + 1;
    with_peer(
        move || {
            let mut b = [0u8; 40];
            for _ in 0..warm + rounds {
                far.read_exact(&mut b).expect("read");
                far.write_all(&b).expect("write");
            }
        },
        move || {
            let mut b = [0u8; 40];
            timed(warm, rounds, || {
                near.write_all(&b).expect("write");
                near.read_exact(&mut b).expect("read");
            })
        },
    )
}

/// A 40-byte message through a pair of Linux pipes.
pub fn pipe_latency(rounds: usize) -> R<Samples> {
    let (ar, aw) = std::io::pipe().map_err(|e| e.to_string())?;
    let (br, bw) = std::io::pipe().map_err(|e| e.to_string())?;
    byte_pair_latency(Duplex(br, aw), Duplex(ar, bw), rounds)
}

/// A 40-byte message through a Unix domain stream socket.
pub fn uds_latency(rounds: usize) -> R<Samples> {
    let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
    byte_pair_latency(a, b, rounds)
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

/// Times `producer` while a forked peer runs `consumer`. The clock starts
/// once the peer is running on its core: a short stream would otherwise
/// also time the fork and the peer's move to its core (a quarter of a
/// `--quick` run's 40-byte stream is a millisecond or two).
fn stream(messages: u64, consumer: impl FnOnce(), producer: impl FnOnce()) -> R<Stream> {
    let page = SharedPage::new();
    let ready = page.word(0);
    let consumer = || {
        ready.store(1, Ordering::Release);
        consumer()
    };
    with_peer(consumer, || {
        while ready.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        let (t0, i0) = (Clock::now(), Instant::now());
        producer();
        Stream {
            messages,
            ticks: Clock::now() - t0,
            secs: i0.elapsed().as_secs_f64(),
        }
    })
}

/// 40-byte messages streamed through `UltraFastRing`.
pub fn inline_stream(messages: u64) -> R<Stream> {
    let ring = UltraFastRing::new(4096).map_err(|e| e.to_string())?;
    stream(
        messages,
        || {
            let mut b = [0u8; 40];
            for _ in 0..messages {
                spin_recv(&ring, &mut b);
            }
        },
        || {
            let msg = [1u8; 40];
            for _ in 0..messages {
                spin_send(&ring, &msg);
            }
        },
    )
}

/// Batches of `batch` 40-byte messages: one claim per batch on each side.
pub fn batch_stream(messages: u64, batch: usize) -> R<Stream> {
    let ring = UltraFastRing::new(4096).map_err(|e| e.to_string())?;
    stream(
        messages,
        || {
            let mut out = vec![InlineMessage::default(); batch];
            let mut got = 0;
            while got < messages {
                match ring.recv_batch(&mut out) {
                    Ok(n) => got += n as u64,
                    Err(RingError::Empty) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        },
        || {
            let msg = [1u8; 40];
            let msgs: Vec<&[u8]> = vec![&msg[..]; batch];
            let mut sent = 0u64;
            while sent < messages {
                let want = (messages - sent).min(batch as u64) as usize;
                match ring.send_batch(&msgs[..want], PRIO) {
                    Ok(n) => sent += n as u64,
                    Err(RingError::Full) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        },
    )
}

/// The least a queue that gives each message its own 64-byte line pays to
/// stream 40-byte messages between the two cores: a bare single-producer
/// ring of 1024 lines, each with a sequence word (Vyukov's protocol without
/// the claims: the consumer frees a line by writing its sequence word).
/// With `claimed`, each side also takes one locked compare-and-swap per
/// message on a line of its own, as a multi-producer multi-consumer ring
/// claims positions. No clock reads, no stats, no checks.
pub fn line_stream(messages: u64, claimed: bool) -> R<Stream> {
    const LINES: u64 = 1024;
    let mem = SharedPage::with_len(64 * (LINES as usize + 2));
    let line = |pos: u64| 64 * (pos % LINES) as usize;
    let seq = |pos: u64| mem.word(line(pos));
    let (producer_head, consumer_head) = (
        mem.word(64 * LINES as usize),
        mem.word(64 * (LINES as usize + 1)),
    );
    for pos in 0..LINES {
        seq(pos).store(pos, Ordering::Relaxed);
    }
    let claim = |head: &std::sync::atomic::AtomicU64, pos: u64| {
        if claimed {
            let _ = head.compare_exchange(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    };
    stream(
        messages,
        || {
            let mut sum = 0u64;
            for pos in 0..messages {
                while seq(pos).load(Ordering::Acquire) != pos + 1 {
                    std::hint::spin_loop();
                }
                claim(consumer_head, pos);
                for k in 1..=5 {
                    sum = sum.wrapping_add(mem.word(line(pos) + 8 * k).load(Ordering::Relaxed));
                }
                seq(pos).store(pos + LINES, Ordering::Release);
            }
            std::hint::black_box(sum);
        },
        || {
            for pos in 0..messages {
                while seq(pos).load(Ordering::Acquire) != pos {
                    std::hint::spin_loop();
                }
                claim(producer_head, pos);
                for k in 1..=5 {
                    mem.word(line(pos) + 8 * k).store(pos, Ordering::Relaxed);
                }
                seq(pos).store(pos + 1, Ordering::Release);
            }
        },
    )
}

/// The least any batch format pays to stream 40-byte messages here: records
/// packed end to end (no per-message header, no claims, no clock), 32
/// published with one store of an index, the consumer handing space back
/// once per batch. `messages` is rounded down to whole batches.
pub fn packed_stream(messages: u64) -> R<Stream> {
    const WORDS: u64 = 8192; // 64 KiB of records
    const BATCH_WORDS: u64 = 32 * 5;
    let total = messages / 32 * BATCH_WORDS;
    let mem = SharedPage::with_len(8 * WORDS as usize + 128);
    let word = |w: u64| mem.word(8 * (w % WORDS) as usize);
    let (published, consumed) = (
        mem.word(8 * WORDS as usize),
        mem.word(8 * WORDS as usize + 64),
    );
    stream(
        messages / 32 * 32,
        || {
            let (mut w, mut sum) = (0u64, 0u64);
            while w < total {
                let end = loop {
                    let end = published.load(Ordering::Acquire);
                    if end > w {
                        break end;
                    }
                    std::hint::spin_loop();
                };
                while w < end {
                    sum = sum.wrapping_add(word(w).load(Ordering::Relaxed));
                    w += 1;
                }
                consumed.store(w, Ordering::Release);
            }
            std::hint::black_box(sum);
        },
        || {
            let (mut w, mut limit) = (0u64, WORDS);
            while w < total {
                while w + BATCH_WORDS > limit {
                    limit = consumed.load(Ordering::Acquire) + WORDS;
                    std::hint::spin_loop();
                }
                for k in w..w + BATCH_WORDS {
                    word(k).store(k, Ordering::Relaxed);
                }
                w += BATCH_WORDS;
                published.store(w, Ordering::Release);
            }
        },
    )
}

/// `size`-byte messages streamed zero-copy (loan API, or copying `send`);
/// the receiver takes them in place and reads the first and last byte.
pub fn zerocopy_stream(size: usize, loan: bool, messages: u64) -> R<Stream> {
    let ring = fusion(8, size, true)?;
    stream(
        messages,
        || {
            for _ in 0..messages {
                let p = ring.recv_zerocopy_blocking().expect("recv");
                std::hint::black_box((p[0], p[p.len() - 1]));
            }
        },
        || {
            let data = vec![7u8; size];
            for _ in 0..messages {
                if loan {
                    let l = loop {
                        match ring.loan(size) {
                            Ok(l) => break l,
                            Err(RingError::ArenaExhausted { .. }) => std::hint::spin_loop(),
                            Err(e) => panic!("{e}"),
                        }
                    };
                    let mut l = l;
                    l[..64].fill(7);
                    let mut pending = l;
                    loop {
                        match ring.send_loan(pending, PRIO) {
                            Ok(()) => break,
                            Err(e) if e.error == RingError::Full => pending = e.loan,
                            Err(e) => panic!("{}", e.error),
                        }
                    }
                } else {
                    ring.send_blocking(&data).expect("send");
                }
            }
        },
    )
}

fn byte_stream<S: Read + Write>(mut near: S, mut far: S, messages: u64) -> R<Stream> {
    stream(
        messages,
        move || {
            let mut b = [0u8; 40];
            for _ in 0..messages {
                far.read_exact(&mut b).expect("read");
            }
        },
        move || {
            let b = [1u8; 40];
            for _ in 0..messages {
                near.write_all(&b).expect("write");
            }
        },
    )
}

/// 40-byte messages streamed through a pipe (one write and read each).
pub fn pipe_stream(messages: u64) -> R<Stream> {
    let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
    let (r2, w2) = std::io::pipe().map_err(|e| e.to_string())?;
    byte_stream(Duplex(r2, w), Duplex(r, w2), messages)
}

/// 40-byte messages streamed through a Unix domain socket.
pub fn uds_stream(messages: u64) -> R<Stream> {
    let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
    byte_stream(a, b, messages)
}

/// Single-thread memcpy bandwidth of `size`-byte buffers, bytes/s.
pub fn memcpy_bandwidth(size: usize) -> f64 {
    memcpy_rotating(size, 1)
}

/// memcpy bandwidth (bytes/s) of `size`-byte copies from one buffer into
/// `targets` buffers in turn. A copying send fills one block while the
/// receiver still holds the previous one, so its working set is that of
/// `targets = 2`, not 1.
pub fn memcpy_rotating(size: usize, targets: usize) -> f64 {
    let src = vec![1u8; size];
    let mut dsts: Vec<Vec<u8>> = (0..targets.max(1)).map(|_| vec![0u8; size]).collect();
    let reps = (256 << 20) / size.max(1);
    let t0 = Instant::now();
    for i in 0..reps {
        let n = dsts.len();
        let dst = &mut dsts[i % n];
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut *dst);
    }
    (reps * size) as f64 / t0.elapsed().as_secs_f64()
}
