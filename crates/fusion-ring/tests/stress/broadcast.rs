//! One publisher thread and three subscriber threads on a broadcast ring
//! of 8 slots (`lockfree::broadcast`): the publisher sends one at a time
//! and in batches, blocking while the slowest subscriber is a ring behind;
//! the subscribers receive blocking, one of them joining late. Every
//! subscriber gets every message from its first on, once, in order, byte
//! for byte. On a ring that overwrites, what a subscriber takes is whole
//! and in order, and with what it was told it missed accounts for every
//! message.

use std::sync::Arc;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use fusion_ring::{Config, PriorityClass, Publisher, Subscriber};

const MESSAGES: u64 = 100_000;
/// A wait this long means a lost wake-up or a stuck ring.
const STUCK: Duration = Duration::from_secs(20);

fn message(id: u64, buf: &mut [u8; 40]) -> &[u8] {
    let len = 8 + (id as usize % 33);
    buf[..8].copy_from_slice(&id.to_le_bytes());
    for (i, b) in buf[8..len].iter_mut().enumerate() {
        *b = (id as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    &buf[..len]
}

/// Receives from `sub` until message `MESSAGES - 1`; checks each against
/// the one due; returns the first id it got.
fn subscribe(sub: Subscriber) -> u64 {
    let mut buf = [0u8; 40];
    let mut want = [0u8; 40];
    let mut next: Option<u64> = None;
    let mut first = None;
    loop {
        let n = sub
            .recv_deadline(&mut buf, Instant::now() + STUCK)
            .unwrap_or_else(|e| panic!("subscriber stuck after {next:?}: {e}"))
            .0;
        let id = u64::from_le_bytes(buf[..8].try_into().unwrap());
        first.get_or_insert(id);
        let due = *next.get_or_insert(id);
        assert_eq!(id, due, "message {id} where {due} was due");
        assert_eq!(&buf[..n], message(id, &mut want), "content of message {id}");
        next = Some(id + 1);
        if id + 1 == MESSAGES {
            return first.expect("got one");
        }
    }
}

#[test]
fn one_publisher_three_subscribers_small_ring() {
    let publisher = Publisher::with_config(&Config::new(8).broadcast(3)).expect("ring");
    let early: Vec<Subscriber> = (0..2)
        .map(|_| Subscriber::from_publisher(&publisher).expect("subscribe"))
        .collect();
    // The late subscriber joins once the stream is under way.
    let late = Arc::new(Barrier::new(2));
    let late_sub = {
        let ring = publisher.as_ring().clone();
        let late = Arc::clone(&late);
        thread::spawn(move || {
            late.wait();
            subscribe(Subscriber::from_ring(ring).expect("late subscribe"))
        })
    };
    let readers: Vec<_> = early
        .into_iter()
        .map(|sub| thread::spawn(move || subscribe(sub)))
        .collect();
    let mut buf = [0u8; 40];
    let (mut id, mut late_joined) = (0, false);
    while id < MESSAGES {
        if !late_joined && id >= MESSAGES / 4 {
            late.wait();
            late_joined = true;
        }
        if id % 3 == 0 && id + 4 <= MESSAGES {
            let owned: Vec<Vec<u8>> = (id..id + 4)
                .map(|k| message(k, &mut buf).to_vec())
                .collect();
            let batch: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            match publisher.send_batch(&batch, PriorityClass::Normal) {
                Ok(sent) => id += sent as u64,
                Err(fusion_ring::RingError::Full) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        } else {
            publisher
                .send_deadline(
                    message(id, &mut buf),
                    PriorityClass::Normal,
                    Instant::now() + STUCK,
                )
                .unwrap_or_else(|e| panic!("publisher stuck at {id}: {e}"));
            id += 1;
        }
    }
    for r in readers {
        assert_eq!(
            r.join().expect("early subscriber"),
            0,
            "from the first message"
        );
    }
    let first = late_sub.join().expect("late subscriber");
    assert!(
        first >= MESSAGES / 4,
        "the late subscriber started at {first}"
    );
}

/// Receives from `sub` until it has accounted for every message (received
/// or reported missed), checking each message it takes against the one
/// due; returns (received, missed).
fn subscribe_lagging(sub: Subscriber, pause_every: u64) -> (u64, u64) {
    let mut buf = [0u8; 40];
    let mut want = [0u8; 40];
    let (mut due, mut received, mut missed) = (0, 0, 0);
    let deadline = Instant::now() + STUCK;
    while due < MESSAGES {
        match sub.recv(&mut buf) {
            Ok(n) => {
                let id = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert_eq!(id, due, "message {id} where {due} was due");
                assert_eq!(&buf[..n], message(id, &mut want), "content of message {id}");
                due += 1;
                received += 1;
                if received % pause_every == 0 {
                    thread::yield_now();
                }
            }
            Err(fusion_ring::RingError::Lagged { missed: m }) => {
                due += m;
                missed += m;
            }
            Err(fusion_ring::RingError::Empty) => {
                assert!(Instant::now() < deadline, "subscriber stuck at {due}");
                std::hint::spin_loop();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(due, MESSAGES, "told it missed more than was published");
    (received, missed)
}

/// Overwrite policy: the publisher thread never waits, sending one at a
/// time and in batches into 8 slots, while two subscriber threads (one
/// yielding often) read with the re-check. Whatever they take is whole and
/// the one due; received plus missed is every message.
#[test]
fn overwriting_publisher_two_subscribers_small_ring() {
    let config = Config::new(8)
        .broadcast(2)
        .overflow(fusion_ring::Overflow::Overwrite);
    let publisher = Publisher::with_config(&config).expect("ring");
    let readers: Vec<_> = [1u64, 4]
        .into_iter()
        .map(|pause_every| {
            let sub = Subscriber::from_publisher(&publisher).expect("subscribe");
            thread::spawn(move || subscribe_lagging(sub, pause_every))
        })
        .collect();
    let mut buf = [0u8; 40];
    let mut id = 0;
    while id < MESSAGES {
        if id % 3 == 0 && id + 4 <= MESSAGES {
            let owned: Vec<Vec<u8>> = (id..id + 4)
                .map(|k| message(k, &mut buf).to_vec())
                .collect();
            let batch: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let sent = publisher
                .send_batch(&batch, PriorityClass::Normal)
                .expect("an overwriting publisher never waits");
            assert_eq!(sent, 4);
            id += 4;
        } else {
            publisher
                .send(message(id, &mut buf))
                .expect("an overwriting publisher never waits");
            id += 1;
        }
    }
    for r in readers {
        let (received, missed) = r.join().expect("subscriber");
        assert_eq!(received + missed, MESSAGES);
    }
}
