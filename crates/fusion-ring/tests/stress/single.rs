//! One producer thread and one consumer thread on a single-producer
//! single-consumer ring (`FusionRing::split`, the protocol of
//! `lockfree::single`): inline and zero-copy messages of every size, sent
//! one at a time, in batches and as loans, received by copy, in place and
//! in batches, blocking on a ring of 8 slots so both sides keep waiting for
//! each other. Every message arrives once, in order, byte for byte.

use std::thread;
use std::time::Duration;

use fusion_ring::{BatchMessage, Config, FusionRing, Payload, PriorityClass};

const MESSAGES: u64 = 200_000;
const MAX: usize = 4096;
/// A wait this long means a lost wake-up or a stuck ring.
const STUCK: Duration = Duration::from_secs(20);

fn len_of(id: u64) -> usize {
    match id % 7 {
        0 => 1 + (id as usize % 40),   // inline
        1 => 41 + (id as usize % 200), // just past inline
        2 => MAX - (id as usize % 64), // near the largest
        _ => 8 + (id as usize % 33),   // inline
    }
}

fn fill(id: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&id.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (id as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
}

fn check(expected: u64, got: &[u8]) {
    assert_eq!(
        got.len(),
        len_of(expected).max(8),
        "length of message {expected}"
    );
    let mut want = vec![0u8; got.len()];
    fill(expected, &mut want);
    assert!(got == want, "content of message {expected}");
}

#[test]
fn one_producer_one_consumer_mixed_sizes_small_ring() {
    let config = Config::new(8).max_message(MAX).arena_bytes(1 << 20);
    let (producer, consumer) = FusionRing::split(&config).expect("ring");
    let sender = thread::spawn(move || {
        let mut buf = vec![0u8; MAX];
        let mut id = 0;
        while id < MESSAGES {
            match id % 5 {
                // A batch of up to 4 (a prefix may go; the rest is resent).
                0 => {
                    let bufs: Vec<Vec<u8>> = (id..(id + 4).min(MESSAGES))
                        .map(|k| {
                            let mut b = vec![0u8; len_of(k).max(8)];
                            fill(k, &mut b);
                            b
                        })
                        .collect();
                    let batch: Vec<BatchMessage<'_>> = bufs
                        .iter()
                        .map(|b| BatchMessage::new(b, PriorityClass::Normal))
                        .collect();
                    match producer.send_batch(&batch) {
                        Ok(n) => id += n as u64,
                        Err(
                            fusion_ring::RingError::Full
                            | fusion_ring::RingError::ArenaExhausted { .. },
                        ) => thread::yield_now(),
                        Err(e) => panic!("send_batch at {id}: {e}"),
                    }
                }
                // A loan filled in place.
                1 => {
                    let len = len_of(id).max(8);
                    let mut loan = loop {
                        match producer.loan(len) {
                            Ok(l) => break l,
                            Err(fusion_ring::RingError::ArenaExhausted { .. }) => {
                                thread::yield_now()
                            }
                            Err(e) => panic!("loan at {id}: {e}"),
                        }
                    };
                    fill(id, &mut loan);
                    let mut loan = Some(loan);
                    while let Some(l) = loan.take() {
                        match producer.send_loan(l, PriorityClass::High) {
                            Ok(()) => {}
                            Err(e) if e.error == fusion_ring::RingError::Full => {
                                loan = Some(e.loan);
                                thread::yield_now();
                            }
                            Err(e) => panic!("send_loan at {id}: {}", e.error),
                        }
                    }
                    id += 1;
                }
                _ => {
                    let len = len_of(id).max(8);
                    fill(id, &mut buf[..len]);
                    producer
                        .send_with_timeout(&buf[..len], STUCK)
                        .unwrap_or_else(|e| panic!("send at {id}: {e}"));
                    id += 1;
                }
            }
        }
    });
    let mut buf = vec![0u8; MAX];
    let mut payloads: Vec<Payload> = Vec::new();
    let mut next = 0;
    while next < MESSAGES {
        match next % 3 {
            0 => {
                let n = consumer
                    .recv_with_timeout(&mut buf, STUCK)
                    .unwrap_or_else(|e| panic!("recv at {next}: {e}"));
                check(next, &buf[..n]);
                next += 1;
            }
            1 => {
                let p = consumer
                    .recv_zerocopy_timeout(STUCK)
                    .unwrap_or_else(|e| panic!("recv_zerocopy at {next}: {e}"));
                check(next, &p);
                next += 1;
            }
            _ => match consumer.recv_batch(&mut payloads, 4) {
                Ok(n) => {
                    for p in payloads.drain(..) {
                        check(next, &p);
                        next += 1;
                    }
                    assert!(n > 0);
                }
                Err(fusion_ring::RingError::Empty) => thread::yield_now(),
                Err(e) => panic!("recv_batch at {next}: {e}"),
            },
        }
    }
    sender.join().expect("producer");
    let s = consumer.stats();
    assert_eq!((s.sent, s.received), (MESSAGES, MESSAGES));
    assert_eq!(s.arena.blocks_in_use, 0, "every block freed");
}
