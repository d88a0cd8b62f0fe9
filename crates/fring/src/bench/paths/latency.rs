//! One-way latencies: each round trip timed with the TSC and halved.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fusion_ring::{Clock, Config, UltraFastRing};

use super::*;
use crate::bench::fork::{with_peer, SharedPage};

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
    two_ring_ping_pong::<false>(rounds)
}

/// The least a zero-copy hop pays on top of [`ring_floor`]: the same
/// ping-pong, but each ping also hands over a 64-byte payload line in a
/// buffer of its own, as a loan does. The pinger writes the whole line,
/// then its slot with the line's offset; the ponger reads the offset from
/// the slot and then the line (a load that depends on the slot's, as a
/// receiver's read of a block depends on its descriptor), then pongs. The
/// payload line travels one more time per round trip each way: the ponger
/// fetches it, the pinger takes it back to write it. No allocation, no
/// reference count, no checks: what is left of a loan's one-way latency
/// above this is the library's.
pub fn loan_floor(rounds: usize) -> R<Samples> {
    two_ring_ping_pong::<true>(rounds)
}

/// [`ring_floor`], and with `PAYLOAD` [`loan_floor`] (a constant: the
/// ring floor's loop has no test of it).
fn two_ring_ping_pong<const PAYLOAD: bool>(rounds: usize) -> R<Samples> {
    const LINES: u64 = 32; // per direction: ping lines 0..32, pong 32..64
    let page = SharedPage::with_len(64 * (2 * LINES as usize + 1));
    let line = |dir: u64, i: u64| page.word((64 * (dir * LINES + i % LINES)) as usize);
    // The payload's offset rides in the ping line, its second word.
    let offset_word = |i: u64| page.word((64 * (i % LINES)) as usize + 8);
    let payload = 64 * 2 * LINES as usize;
    let total = (rounds + rounds / 10 + 1) as u64;
    with_peer(
        || {
            for i in 1..=total {
                while line(0, i).load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                if PAYLOAD {
                    let at = offset_word(i).load(Ordering::Relaxed) as usize;
                    std::hint::black_box(page.word(at).load(Ordering::Relaxed));
                }
                line(1, i).store(i, Ordering::Release);
            }
        },
        || {
            let mut i = 0u64;
            timed((total as usize) - rounds, rounds, || {
                i += 1;
                if PAYLOAD {
                    for w in 0..8 {
                        page.word(payload + 8 * w).store(i, Ordering::Relaxed);
                    }
                    offset_word(i).store(payload as u64, Ordering::Relaxed);
                }
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
/// with or without the ring's timestamps; many-to-many (two locked claims)
/// or, with `single`, one producer and one consumer (no locked instruction).
pub fn single_thread(pairs: u64, timestamps: bool, single: bool) -> R<f64> {
    let config = Config::new(1024)
        .arena_bytes(0)
        .wakeups(false)
        .timestamps(timestamps)
        .single_producer(single)
        .single_consumer(single);
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

/// The trivial single-thread ring DESIGN.md section 9 reads the single-thread
/// cost against: a power-of-two array of 64-byte slots with plain head and
/// tail counters (no atomics, no claims, no header, no stats, no clock).
struct TrivialRing {
    slots: Box<[[u8; 64]]>,
    head: usize,
    tail: usize,
}

impl TrivialRing {
    const SLOTS: usize = 1024;

    fn new() -> Self {
        TrivialRing {
            slots: vec![[0u8; 64]; Self::SLOTS].into_boxed_slice(),
            head: 0,
            tail: 0,
        }
    }

    /// Copies `msg` into the next slot; `false` if the ring is full.
    #[inline]
    fn send(&mut self, msg: &[u8; 40]) -> bool {
        if self.head - self.tail == Self::SLOTS {
            return false;
        }
        self.slots[self.head & (Self::SLOTS - 1)][..40].copy_from_slice(msg);
        self.head += 1;
        true
    }

    /// Copies the oldest message into `buf`; `false` if the ring is empty.
    #[inline]
    fn recv(&mut self, buf: &mut [u8; 40]) -> bool {
        if self.tail == self.head {
            return false;
        }
        buf.copy_from_slice(&self.slots[self.tail & (Self::SLOTS - 1)][..40]);
        self.tail += 1;
        true
    }
}

/// Ticks of one send + receive of 40 bytes through [`TrivialRing`] on this
/// thread, timed as [`single_thread`] is (median of 7 runs of `pairs`, the
/// same loop). The ring is handed to `black_box` between the send and the
/// receive, so the compiler must keep its counters and the slot in memory
/// and cannot fold the pair into one copy from `msg` to `buf`.
pub fn trivial_ring(pairs: u64) -> f64 {
    let mut ring = TrivialRing::new();
    let msg = [7u8; 40];
    let mut buf = [0u8; 40];
    let mut runs = Vec::with_capacity(7);
    for _ in 0..7 {
        let t0 = Clock::now();
        for _ in 0..pairs {
            let sent = ring.send(std::hint::black_box(&msg));
            std::hint::black_box(&mut ring);
            std::hint::black_box(sent && ring.recv(&mut buf));
            std::hint::black_box(&buf);
        }
        runs.push((Clock::now() - t0) as f64 / pairs as f64);
    }
    runs.sort_by(f64::total_cmp);
    runs[3]
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
pub fn inline_latency(rounds: usize, single: bool, stamps: bool) -> R<Samples> {
    let ping = inline_ring(64, single, stamps)?;
    let pong = inline_ring(64, single, stamps)?;
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

/// How long the `eventfd` row's pinger spins for the answer before it
/// sleeps: as long as the ring's blocking calls spin (`lockfree::event`'s
/// `SPIN_FOR`, 50 us).
const ANSWER_SPIN: Duration = Duration::from_micros(50);

/// Shared memory signalled with eventfds (the classic "shm + eventfd" IPC):
/// the message is written to a shared line, then an eventfd wakes the peer,
/// which sleeps in `read` after a [`WAKE_PAUSE`] before each ping. The
/// pinger waits for the answer as the ring's blocking receive does: it
/// spins on the shared line for up to [`ANSWER_SPIN`] (the ring's waiters
/// spin that long before they sleep), then sleeps in `read`; so both rows
/// time one sleeping peer woken and one answer caught awake.
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
                let answered = 2 * (i as u64 + 1);
                let spin_start = std::time::Instant::now();
                while msg.load(Ordering::Acquire) < answered && spin_start.elapsed() < ANSWER_SPIN {
                    std::hint::spin_loop();
                }
                if msg.load(Ordering::Acquire) < answered {
                    rustix::io::read(&b, &mut v).expect("eventfd read");
                }
                let t1 = Clock::now();
                if i >= warm {
                    out.push((t1 - t0) / 2);
                }
                // Take the answer's count off the eventfd if not done above
                // (the peer writes it right after the line: a short wait).
                if v == [0u8; 8] {
                    rustix::io::read(&b, &mut v).expect("eventfd read");
                }
                v = [0u8; 8];
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

/// Inline 40-byte messages through a broadcast ring: the publisher here,
/// one subscriber in the peer process (it subscribes, then answers each
/// message through an inline ring of one producer and one consumer).
/// Stamped, as the `inline-spsc` rows it is read against.
pub fn broadcast_latency(rounds: usize) -> R<Samples> {
    let config = Config::inline_only(64).broadcast(1);
    let publisher = Publisher::with_config(&config).map_err(|e| e.to_string())?;
    let ring = publisher.as_ring().clone();
    let pong = inline_ring(64, true, true)?;
    let warm = rounds / 10 + 1;
    with_peer(
        || {
            let sub = Subscriber::from_ring(ring).expect("subscribe");
            let mut b = [0u8; 40];
            for _ in 0..warm + rounds {
                let n = loop {
                    match sub.recv(&mut b) {
                        Ok(n) => break n,
                        Err(RingError::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("recv failed: {e}"),
                    }
                };
                spin_send(&pong, &b[..n]);
            }
        },
        || {
            // Until the peer has subscribed, a message would be lost.
            while publisher.subscribers() == 0 {
                std::hint::spin_loop();
            }
            let msg = [0x5Au8; 40];
            let mut b = [0u8; 40];
            timed(warm, rounds, || {
                while let Err(e) = publisher.send(&msg) {
                    assert_eq!(e, RingError::Full, "publish failed");
                    std::hint::spin_loop();
                }
                spin_recv(&pong, &mut b);
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trivial_ring_is_a_bounded_fifo() {
        let mut ring = TrivialRing::new();
        let mut buf = [0u8; 40];
        assert!(!ring.recv(&mut buf), "empty at first");
        for i in 0..TrivialRing::SLOTS {
            assert!(ring.send(&[i as u8; 40]), "room for message {i}");
        }
        assert!(!ring.send(&[0xFF; 40]), "full after SLOTS sends");
        for i in 0..TrivialRing::SLOTS {
            assert!(ring.recv(&mut buf));
            assert_eq!(buf, [i as u8; 40], "message {i} in order");
        }
        assert!(!ring.recv(&mut buf), "empty again");
        // Pairs, as `trivial_ring` times them, past the wrap.
        for i in 0..3 * TrivialRing::SLOTS {
            assert!(ring.send(&[(i % 251) as u8; 40]));
            assert!(ring.recv(&mut buf));
            assert_eq!(buf, [(i % 251) as u8; 40], "pair {i}");
        }
    }
}
