//! In-process reference queues: 40-byte messages streamed between two
//! threads pinned to the two cores, through the best-known queues of their
//! kind. They cross no process boundary and keep no statistics or
//! timestamps, so beside the ring rows they show what crossing processes
//! and what the ring's extras cost.
//!
//! Both join their consumer thread before they return: `fring bench` forks
//! only while it has a single thread (see `bench::fork`).

use std::time::Instant;

use fusion_ring::Clock;
use fusion_ring_testkit::cpu::{cores, pin};

use super::{Stream, Syscalls, R};

/// Times `producer` on the first core while a thread runs `consumer` on
/// the second; the clock starts once the thread is there.
fn threads(messages: u64, consumer: impl FnOnce() + Send, producer: impl FnOnce()) -> R<Stream> {
    let (near, far) = cores();
    let ready = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let ready = &ready;
        let peer = s.spawn(move || {
            let _ = pin(far);
            ready.store(true, std::sync::atomic::Ordering::Release);
            consumer();
        });
        let _ = pin(near);
        while !ready.load(std::sync::atomic::Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let (t0, i0) = (Clock::now(), Instant::now());
        producer();
        let stream = Stream {
            messages,
            ticks: Clock::now() - t0,
            secs: i0.elapsed().as_secs_f64(),
            syscalls: Syscalls::default(),
        };
        peer.join()
            .map_err(|_| "reference consumer thread panicked".to_string())?;
        Ok(stream)
    })
}

/// 40-byte messages through a queue given by its `push` (which gives a
/// message back when full) and `pop`, spinning while full or empty.
fn queue_stream(
    messages: u64,
    mut push: impl FnMut([u8; 40]) -> Result<(), [u8; 40]>,
    mut pop: impl FnMut() -> Option<[u8; 40]> + Send,
) -> R<Stream> {
    threads(
        messages,
        move || {
            let mut sum = 0u64;
            for _ in 0..messages {
                let m = loop {
                    match pop() {
                        Some(m) => break m,
                        None => std::hint::spin_loop(),
                    }
                };
                sum += u64::from(m[0]);
            }
            std::hint::black_box(sum);
        },
        move || {
            for i in 0..messages {
                let mut m = [1u8; 40];
                m[0] = i as u8;
                while let Err(back) = push(m) {
                    m = back;
                    std::hint::spin_loop();
                }
            }
        },
    )
}

/// rtrb's single-producer single-consumer ring (4096 slots of 40 bytes),
/// one push and one pop per message.
pub fn rtrb_stream(messages: u64) -> R<Stream> {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; 40]>::new(4096);
    queue_stream(
        messages,
        move |m| tx.push(m).map_err(|rtrb::PushError::Full(back)| back),
        move || rx.pop().ok(),
    )
}

/// crossbeam's bounded many-producer many-consumer `ArrayQueue` (4096
/// slots of 40 bytes), one push and one pop per message.
pub fn array_queue_stream(messages: u64) -> R<Stream> {
    let queue = crossbeam_queue::ArrayQueue::<[u8; 40]>::new(4096);
    let q = &queue;
    queue_stream(messages, |m| q.push(m), || q.pop())
}
