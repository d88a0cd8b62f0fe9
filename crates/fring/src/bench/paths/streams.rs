//! Throughput: messages streamed one way, the whole stream timed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Instant;

use fusion_ring::{Clock, InlineMessage, RingSync, UltraFastRing};

use super::*;
use crate::bench::fork::{with_peer, SharedPage};

/// Times `producer` while a forked peer runs `consumer`. The clock starts
/// once the peer is running on its core: a short stream would otherwise
/// also time the fork and the peer's move to its core (a quarter of a
/// `--quick` run's 40-byte stream is a millisecond or two).
///
/// Each side also counts the futex system calls its process makes on rings
/// while it runs its part (`RingSync::syscalls`, a per-process count: the
/// child's is read in the child and handed back through the shared page).
fn stream(messages: u64, consumer: impl FnOnce(), producer: impl FnOnce()) -> R<Stream> {
    let page = SharedPage::new();
    let ready = page.word(0);
    let receiver_syscalls = page.word(64);
    let consumer = || {
        let before = RingSync::syscalls();
        ready.store(1, Ordering::Release);
        consumer();
        // Read by the parent once this process has exited (waitpid orders it).
        receiver_syscalls.store(RingSync::syscalls() - before, Ordering::Relaxed);
    };
    let mut totals = with_peer(consumer, || {
        while ready.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        let before = RingSync::syscalls();
        let (t0, i0) = (Clock::now(), Instant::now());
        producer();
        let (ticks, secs) = (Clock::now() - t0, i0.elapsed().as_secs_f64());
        Stream {
            messages,
            ticks,
            secs,
            syscalls: Syscalls {
                sender: RingSync::syscalls() - before,
                receiver: 0,
            },
        }
    })?;
    totals.syscalls.receiver = receiver_syscalls.load(Ordering::Relaxed);
    Ok(totals)
}

/// 40-byte messages streamed through `UltraFastRing` (with one producer
/// and one consumer if `single`; unstamped unless `stamps`).
pub fn inline_stream(messages: u64, single: bool, stamps: bool) -> R<Stream> {
    let ring = inline_ring(4096, single, stamps)?;
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
pub fn batch_stream(messages: u64, batch: usize, size: usize) -> R<Stream> {
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
            let msg = vec![1u8; size];
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

/// The least any batch format pays to stream messages of `words` 8-byte
/// words (5: 40 bytes) here: records packed end to end (no per-message
/// header, no claims, no clock), 32 published with one store of an index,
/// the consumer handing space back once per batch. `messages` is rounded
/// down to whole batches.
pub fn packed_stream(messages: u64, words: u64) -> R<Stream> {
    const WORDS: u64 = 8192; // 64 KiB of records
    let batch_words: u64 = 32 * words;
    let total = messages / 32 * batch_words;
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
                while w + batch_words > limit {
                    limit = consumed.load(Ordering::Acquire) + WORDS;
                    std::hint::spin_loop();
                }
                for k in w..w + batch_words {
                    word(k).store(k, Ordering::Relaxed);
                }
                w += batch_words;
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
                    send_loan_spinning(&ring, size, |l| l[..64].fill(7));
                } else {
                    ring.send_blocking(&data).expect("send");
                }
            }
        },
    )
}

/// `size`-byte messages streamed zero-copy through the loan API with every
/// line used: the writer fills the whole loan, the reader reads one byte of
/// every 64-byte line of the payload in place. Read against
/// [`shm_buffers_stream`], the least two processes pay to do the same, and
/// given the memory that limit has: an arena of two blocks, so the loans
/// take turns in two buffers as the limit's writer does. With eight blocks
/// in flight (8 MiB of buffers) the stream ran at 0.59-0.64x the limit; with
/// three 0.89-0.90x; with two 0.98x (2 `fring bench --quick` runs each,
/// AMD EPYC guest): what is measured then is the buffers' cache footprint,
/// not the ring.
pub fn full_loan_stream(size: usize, messages: u64) -> R<Stream> {
    let config = Config::new(8)
        .arena_bytes(2 * (size.next_power_of_two() + 64))
        .max_message(size.max(64));
    let ring = FusionRing::with_config(&config).map_err(|e| e.to_string())?;
    stream(
        messages,
        || {
            let mut sum = 0u64;
            for _ in 0..messages {
                let p = ring.recv_zerocopy_blocking().expect("recv");
                sum += read_every_line(&p);
            }
            std::hint::black_box(sum);
        },
        || {
            for i in 0..messages {
                send_loan_spinning(&ring, size, |l| l.fill(i as u8));
            }
        },
    )
}

/// Loans `size` bytes (spinning while the arena is exhausted), lets
/// `write` fill them, and sends the loan (spinning while the ring is full).
fn send_loan_spinning(ring: &FusionRing, size: usize, write: impl FnOnce(&mut [u8])) {
    let mut loan = loop {
        match ring.loan(size) {
            Ok(l) => break l,
            Err(RingError::ArenaExhausted { .. }) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    };
    write(&mut loan);
    let mut pending = loan;
    loop {
        match ring.send_loan(pending, PRIO) {
            Ok(()) => return,
            Err(e) if e.error == RingError::Full => pending = e.loan,
            Err(e) => panic!("{}", e.error),
        }
    }
}

/// One byte of every 64-byte line of `bytes`, summed: a read that brings
/// every line of a payload into the reader's cache.
fn read_every_line(bytes: &[u8]) -> u64 {
    bytes.iter().step_by(64).map(|&b| u64::from(b)).sum()
}

/// The least two processes pay to hand `size`-byte buffers through shared
/// memory, every line written and read: two buffers in turn, each with a
/// flag on a line of its own; the writer waits for a buffer's flag to say
/// free, fills the buffer (`memset`) and flips the flag; the reader waits
/// for it to say full, reads one byte of every line and flips it back. No
/// ring, no arena, no clock reads.
pub fn shm_buffers_stream(size: usize, messages: u64) -> R<Stream> {
    let size = size.next_multiple_of(64);
    let mem = SharedPage::with_len(2 * (size + 64));
    let flag = |k: u64| mem.word((k as usize % 2) * (size + 64));
    let buffer = |k: u64| mem.bytes((k as usize % 2) * (size + 64) + 64, size);
    stream(
        messages,
        || {
            let mut sum = 0u64;
            for k in 0..messages {
                // Acquire: pairs with the writer's Release, so its fill
                // happens before this read.
                while flag(k).load(Ordering::Acquire) != 1 {
                    std::hint::spin_loop();
                }
                // SAFETY: the flag says full: the writer is done with this
                // buffer and waits for the flag before touching it again.
                let bytes = unsafe { std::slice::from_raw_parts(buffer(k), size) };
                sum += read_every_line(bytes);
                // Release: the read happens before the writer refills it.
                flag(k).store(0, Ordering::Release);
            }
            std::hint::black_box(sum);
        },
        || {
            for k in 0..messages {
                // Acquire: pairs with the reader's Release (see above).
                while flag(k).load(Ordering::Acquire) != 0 {
                    std::hint::spin_loop();
                }
                // SAFETY: the flag says free: the reader is done with this
                // buffer and waits for the flag before reading it again.
                unsafe { buffer(k).write_bytes(k as u8, size) };
                flag(k).store(1, Ordering::Release);
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

/// 40-byte messages published on a broadcast ring of 4096 slots to
/// `subscribers` (1 or 2) subscribers, threads of the peer process, each
/// reading every message. Stamped, as the `inline-spsc` streaming row. The
/// publisher first waits until they have subscribed (inside the timed
/// part: microseconds of a stream of milliseconds).
pub fn broadcast_stream(messages: u64, subscribers: usize) -> R<Stream> {
    let config = Config::inline_only(4096).broadcast(subscribers);
    let publisher = Publisher::with_config(&config).map_err(|e| e.to_string())?;
    let ring = publisher.as_ring().clone();
    let read_all = move |sub: Subscriber| {
        let mut b = [0u8; 40];
        let mut got = 0;
        while got < messages {
            match sub.recv(&mut b) {
                Ok(_) => got += 1,
                // Two subscribers and the publisher on two cores: a waiting
                // subscriber gives its core away rather than spin through
                // the time slice of the one the publisher waits for.
                Err(RingError::Empty) if subscribers > 1 => std::thread::yield_now(),
                Err(RingError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("recv failed: {e}"),
            }
        }
    };
    stream(
        messages,
        || {
            let subs: Vec<Subscriber> = (0..subscribers)
                .map(|_| Subscriber::from_ring(ring.clone()).expect("subscribe"))
                .collect();
            std::thread::scope(|s| {
                let mut subs = subs.into_iter();
                let first = subs.next().expect("one subscriber");
                for other in subs {
                    s.spawn(move || read_all(other));
                }
                read_all(first);
            });
        },
        || {
            while publisher.subscribers() < subscribers {
                std::hint::spin_loop();
            }
            let msg = [1u8; 40];
            for _ in 0..messages {
                while let Err(e) = publisher.send(&msg) {
                    assert_eq!(e, RingError::Full, "publish failed");
                    std::hint::spin_loop();
                }
            }
        },
    )
}
