//! Batches travel whole: a batch send publishes its run last slot first
//! and a batch receive releases its run last slot first, so neither side
//! ever finds part of a run (a consumer catching a batch mid-publish, a
//! producer claiming the slots of a run as they are freed one by one).

use fusion_ring::{Config, InlineMessage, PriorityClass, RingError, UltraFastRing};
use testkit::serial::serial;

const RUN: usize = 32;

/// The consumer is the slower side: the ring runs full, and the producer
/// waits for runs to be released.
#[test]
fn whole_runs_when_the_consumer_is_slower() {
    move_runs(50_000, 0);
}

/// The producer is the slower side (it works a little between runs): the
/// consumer waits for runs to be published.
#[test]
fn whole_runs_when_the_producer_is_slower() {
    move_runs(10_000, 100);
}

/// One producer sends `runs` runs of `RUN` messages, spinning `pause` times
/// between runs; one consumer takes up to `RUN` at a time. Every claim on
/// either side must be a whole run.
fn move_runs(runs: u64, pause: u32) {
    // The two tests each keep two threads spinning: one at a time.
    let _serial = serial();
    // Capacity a multiple of the run: the runs stay aligned on the ring.
    let config = Config::new(1024).arena_bytes(0).wakeups(false);
    let ring = UltraFastRing::with_config(&config).expect("ring");
    let consumer = ring.clone();
    let received = std::thread::spawn(move || {
        let mut out = [InlineMessage::default(); RUN];
        let (mut next, mut partial) = (0u64, Vec::new());
        while next < runs * RUN as u64 {
            match consumer.recv_batch(&mut out) {
                Ok(n) => {
                    if n != RUN && partial.len() < 10 {
                        partial.push((next, n));
                    }
                    for m in &out[..n] {
                        let got = u64::from_le_bytes(m.as_bytes()[..8].try_into().unwrap());
                        assert_eq!(got, next, "messages out of order");
                        next += 1;
                    }
                }
                Err(RingError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("recv_batch: {e}"),
            }
        }
        partial
    });
    let mut sent_partial = Vec::new();
    let mut next = 0u64;
    let mut bufs = [[0u8; 8]; RUN];
    while next < runs * RUN as u64 {
        for _ in 0..pause {
            std::hint::spin_loop();
        }
        for (k, b) in bufs.iter_mut().enumerate() {
            *b = (next + k as u64).to_le_bytes();
        }
        let run: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        match ring.send_batch(&run, PriorityClass::Normal) {
            Ok(n) => {
                if n != RUN && sent_partial.len() < 10 {
                    sent_partial.push((next, n));
                }
                next += n as u64;
            }
            Err(RingError::Full) => std::hint::spin_loop(),
            Err(e) => panic!("send_batch: {e}"),
        }
    }
    let received_partial = received.join().expect("consumer");
    assert!(
        sent_partial.is_empty(),
        "the producer claimed part of a run (position, count): {sent_partial:?}"
    );
    assert!(
        received_partial.is_empty(),
        "the consumer found part of a run (position, count): {received_partial:?}"
    );
}
