//! `handle::broadcast` and `lockfree::broadcast` through `Publisher` and
//! `Subscriber` in one thread (Miri runs these): the slowest cursor gates
//! the publisher, a subscriber starts at the next message, leaving stops
//! gating, and the publisher's room cache is refreshed only when short.

use crate::atomic::Ordering;
use crate::{Config, Publisher, RingError, Subscriber};

fn cursor(sub: &Subscriber) -> u64 {
    sub.as_ring()
        .entry()
        .id
        .cursor
        .value
        .load(Ordering::Relaxed)
}

#[test]
fn the_slowest_subscriber_gates_and_a_leaving_one_stops_gating() {
    let publisher = Publisher::with_config(&Config::new(4).broadcast(3)).unwrap();
    let fast = Subscriber::from_publisher(&publisher).unwrap();
    let slow = Subscriber::from_publisher(&publisher).unwrap();
    for i in 0..4u8 {
        publisher.send(&[i]).unwrap();
    }
    assert_eq!(publisher.send(b"x"), Err(RingError::Full));
    let mut buf = [0u8; 40];
    for i in 0..4u8 {
        assert_eq!((fast.recv(&mut buf), buf[0]), (Ok(1), i));
    }
    assert_eq!((cursor(&fast), cursor(&slow)), (4, 0));
    assert_eq!(
        publisher.send(b"x"),
        Err(RingError::Full),
        "slow is a ring behind"
    );
    assert_eq!((slow.recv(&mut buf), buf[0]), (Ok(1), 0));
    publisher.send(b"x").expect("slow freed one slot");
    assert_eq!(publisher.send(b"y"), Err(RingError::Full));
    assert_eq!((slow.lag(), fast.lag()), (4, 1));
    assert_eq!(
        publisher.as_ring().len(),
        4,
        "what the slowest has not read"
    );
    drop(slow);
    for m in [b"y", b"z", b"w"] {
        publisher.send(m).expect("only fast gates now");
    }
    // A new subscriber starts at the next message.
    let late = Subscriber::from_publisher(&publisher).unwrap();
    assert_eq!(late.recv(&mut buf), Err(RingError::Empty));
    assert_eq!(publisher.subscribers(), 2);
}

#[test]
fn a_new_publisher_takes_over_from_a_dropped_one() {
    let publisher = Publisher::with_config(&Config::new(8).broadcast(1)).unwrap();
    let sub = Subscriber::from_publisher(&publisher).unwrap();
    publisher.send(b"one").unwrap();
    let ring = publisher.as_ring().clone();
    drop(publisher);
    let next = Publisher::from_ring(ring).expect("the role is free again");
    next.send(b"two").unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(sub.recv(&mut buf), Ok(3));
    assert_eq!(sub.recv(&mut buf), Ok(3));
    assert_eq!(&buf[..3], b"two");
}

/// A publisher that died having published the second slot of a run but
/// not the first, nor its head, leaves a subscriber stuck at the hole. The
/// publisher that takes the role over fills the hole with a tombstone
/// (`adopt_broadcast_publisher`) and goes on after the published message:
/// the subscriber gets that message, then the new one.
#[test]
fn a_publisher_taking_over_fills_the_hole_a_dead_one_left() {
    let keeper = Publisher::with_config(&Config::new(8).broadcast(2)).unwrap();
    let ring = keeper.as_ring().clone();
    let sub = Subscriber::from_publisher(&keeper).unwrap();
    drop(keeper);
    super::plant_dead_producer_with_half_a_run(&ring);

    let mut buf = [0u8; 40];
    assert_eq!(sub.recv(&mut buf), Err(RingError::Empty), "the hole");
    let publisher = Publisher::from_ring(ring).expect("a dead holder holds nothing");
    publisher.send(b"next").unwrap();
    assert_eq!(publisher.stats().head, 3, "past the dead one's run");
    assert_eq!(sub.recv(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"late");
    assert_eq!(sub.recv(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"next");
    assert_eq!(sub.recv(&mut buf), Err(RingError::Empty));
}

/// Overwrite policy: the publisher never waits; a subscriber a ring and
/// more behind is told exactly how many it lost and goes on from the
/// oldest message left, through every receive path.
#[test]
fn an_overwriting_publisher_never_waits_and_a_lagging_subscriber_is_told_how_many() {
    use crate::{InlineMessage, Overflow, UltraFastRing};
    let config = Config::new(4).broadcast(2).overflow(Overflow::Overwrite);
    let publisher = Publisher::with_config(&config).unwrap();
    let sub = Subscriber::from_publisher(&publisher).unwrap();
    for i in 0..10u8 {
        publisher.send(&[i]).expect("never Full");
    }
    assert_eq!(sub.lag(), 10);
    let mut buf = [0u8; 40];
    assert_eq!(sub.recv(&mut buf), Err(RingError::Lagged { missed: 6 }));
    assert_eq!(cursor(&sub), 6, "the oldest message left");
    for i in 6..10u8 {
        assert_eq!((sub.recv(&mut buf), buf[0]), (Ok(1), i));
    }
    assert_eq!(sub.recv(&mut buf), Err(RingError::Empty));
    assert_eq!(sub.missed(), 6);

    // The batch receive of the seeds' type (it subscribes at its first
    // receive, at the next message) reports the lag the same way, before
    // taking anything.
    let seeds = UltraFastRing::from(publisher.as_ring().clone());
    let mut out = vec![InlineMessage::default(); 8];
    assert_eq!(seeds.recv_batch(&mut out), Err(RingError::Empty));
    for i in 10..17u8 {
        publisher.send(&[i]).unwrap();
    }
    assert_eq!(
        seeds.recv_batch(&mut out),
        Err(RingError::Lagged { missed: 3 })
    );
    assert_eq!(seeds.recv_batch(&mut out), Ok(4));
    assert_eq!(
        out[..4].iter().map(|m| m.data[0]).collect::<Vec<_>>(),
        [13, 14, 15, 16]
    );
    // `sub` lost 3 of these too.
    assert_eq!(sub.recv(&mut buf), Err(RingError::Lagged { missed: 3 }));
    assert_eq!((sub.recv(&mut buf), buf[0]), (Ok(1), 13));
    assert_eq!(sub.missed(), 9);
}

/// A slot the publisher marked for rewriting is "not yet" for a subscriber
/// at its new position and a later lap for one a ring behind; a receive
/// whose buffer is too small for a rewritten slot's length reports the lag,
/// not the other lap's length.
#[test]
fn a_marked_slot_is_not_yet_for_the_next_lap_and_lag_for_the_previous() {
    use crate::Overflow;
    let config = Config::new(2).broadcast(2).overflow(Overflow::Overwrite);
    let publisher = Publisher::with_config(&config).unwrap();
    let behind = Subscriber::from_publisher(&publisher).unwrap();
    publisher.send(&[7; 30]).unwrap();
    publisher.send(b"b").unwrap();
    let ahead = Subscriber::from_publisher(&publisher).unwrap();
    assert_eq!(cursor(&ahead), 2);
    // The publisher, about to write position 2, marks slot 0 (position 0's).
    publisher.as_ring().core().mark_rewriting(2);
    let mut buf = [0u8; 40];
    assert_eq!(ahead.recv(&mut buf), Err(RingError::Empty));
    let mut small = [0u8; 4];
    assert_eq!(
        behind.recv(&mut small),
        Err(RingError::Lagged { missed: 1 }),
        "not BufferTooSmall for 30 bytes: the slot is being rewritten"
    );
    assert_eq!((behind.recv(&mut buf), buf[0]), (Ok(1), b'b'));
}

/// History: a subscriber goes back up to `depth` messages, as far as the
/// ring holds them; on a ring that blocks, what the publisher wrote over
/// before the subscriber went back is reported as lag, and the publisher
/// then waits for it like for any subscriber.
#[test]
fn history_gives_the_last_messages_and_reports_those_already_overwritten() {
    let publisher = Publisher::with_config(&Config::new(4).broadcast(2)).unwrap();
    publisher.send(b"0").unwrap();
    publisher.send(b"1").unwrap();
    let mut buf = [0u8; 40];
    // Deeper than what was ever sent: from the first message.
    let early = Subscriber::from_publisher(&publisher)
        .unwrap()
        .with_history(3)
        .unwrap();
    assert_eq!(cursor(&early), 0);
    for m in [b"0", b"1"] {
        assert_eq!((early.recv(&mut buf), &buf[..1]), (Ok(1), &m[..]));
    }
    drop(early);
    assert!(matches!(
        Subscriber::from_publisher(&publisher)
            .unwrap()
            .with_history(5),
        Err(RingError::InvalidConfig {
            field: "history",
            value: 5,
            ..
        })
    ));
    // Its scan at position 4 finds no subscriber: its room reaches
    // position 7, past a ring after position 1.
    for m in [b"2", b"3", b"4"] {
        publisher.send(m).unwrap();
    }
    let late = Subscriber::from_publisher(&publisher)
        .unwrap()
        .with_history(4)
        .unwrap();
    assert_eq!(cursor(&late), 1);
    publisher.send(b"5").unwrap(); // rewrites position 1, from its cache
    assert_eq!(late.recv(&mut buf), Err(RingError::Lagged { missed: 1 }));
    for m in [b"2", b"3", b"4", b"5"] {
        assert_eq!((late.recv(&mut buf), &buf[..1]), (Ok(1), &m[..]));
    }
    assert_eq!(late.missed(), 1);
    // It gates like any subscriber: a ring behind means Full.
    for m in [b"6", b"7", b"8", b"9"] {
        publisher.send(m).unwrap();
    }
    assert_eq!(publisher.send(b"x"), Err(RingError::Full));
}

/// A cursor more than a ring behind the publisher (a subscriber gone back
/// into a history the publisher has since rewritten) holds the publisher a
/// ring back; it is not a scribbled cursor.
#[test]
fn a_cursor_more_than_a_ring_behind_gates_the_publisher() {
    use crate::lockfree::broadcast::gating_cursor;
    assert_eq!(gating_cursor(10, 12, 4), Ok(10));
    assert_eq!(gating_cursor(8, 12, 4), Ok(8));
    assert_eq!(gating_cursor(3, 12, 4), Ok(8), "counted a ring behind");
    assert_eq!(gating_cursor(13, 12, 4), Err(13), "ahead: only a scribbler");
    assert_eq!(
        gating_cursor(u64::MAX, 2, 4),
        Ok(u64::MAX),
        "across the wrap"
    );
}

/// Message `i` of `len` bytes: its index, then bytes that name it.
fn block_message(i: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| {
            if k == 0 {
                i
            } else {
                i.wrapping_mul(31) ^ k as u8
            }
        })
        .collect()
}

fn block_config(capacity: usize) -> Config {
    Config::new(capacity)
        .broadcast(3)
        .arena_bytes(64 << 10)
        .max_message(4096)
}

/// A message over 40 bytes travels in one block that every subscriber
/// reads; the slot keeps it until the publisher rewrites the slot, so the
/// blocks in use stay at a ring's worth however many go through.
#[test]
fn blocks_are_read_by_every_subscriber_and_freed_when_their_slot_is_rewritten() {
    let publisher = Publisher::with_config(&block_config(4)).unwrap();
    let subs = [
        Subscriber::from_publisher(&publisher).unwrap(),
        Subscriber::from_publisher(&publisher).unwrap(),
    ];
    let mut buf = vec![0u8; 4096];
    for i in 0..12u8 {
        let m = block_message(i, 1000 + i as usize);
        publisher.send(&m).unwrap();
        for sub in &subs {
            let n = sub.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &m[..], "message {i}");
        }
        let in_use = publisher.as_ring().arena_usage().blocks_in_use;
        assert!(
            in_use <= u64::from(i) + 1 && in_use <= 4,
            "{in_use} blocks in use after {} messages",
            i + 1
        );
    }
    // A buffer too small leaves the message for a larger one.
    publisher.send(&block_message(99, 2000)).unwrap();
    let mut small = [0u8; 100];
    assert_eq!(
        subs[0].recv(&mut small),
        Err(RingError::BufferTooSmall {
            needed: 2000,
            got: 100
        })
    );
    assert_eq!(subs[0].recv(&mut buf), Ok(2000));
    assert_eq!(&buf[..2000], &block_message(99, 2000)[..]);
    // The seeds' zero-copy receive gets a copy on a broadcast ring.
    let seeds = crate::FusionRing::from(publisher.as_ring().clone());
    publisher.send(&block_message(7, 500)).unwrap();
    publisher.send(&block_message(8, 600)).unwrap();
    let _ = subs[1].recv(&mut buf);
    let seeds_first = seeds.recv_zerocopy();
    assert_eq!(
        seeds_first.as_ref().err(),
        Some(&RingError::Empty),
        "joins at the next one"
    );
    publisher.send(&block_message(9, 700)).unwrap();
    let p = seeds.recv_zerocopy().unwrap();
    assert_eq!(
        (&p[..], p.is_zerocopy()),
        (&block_message(9, 700)[..], false)
    );
}

/// With the arena exhausted, a publisher on a ring that blocks releases
/// the blocks of messages every live subscriber has read (their slots not
/// yet rewritten) and sends; a subscriber that goes back into the history
/// over a released block is told it lagged, never given its bytes.
#[test]
fn an_exhausted_arena_gives_back_the_blocks_every_subscriber_has_read() {
    // Three 4 KiB-class blocks (and headers) fit; the ring has 8 slots.
    let config = Config::new(8)
        .broadcast(2)
        .arena_bytes(3 * (4096 + 64))
        .max_message(4096);
    let publisher = Publisher::with_config(&config).unwrap();
    let sub = Subscriber::from_publisher(&publisher).unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..8u8 {
        let m = block_message(i, 3000);
        publisher
            .send(&m)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(sub.recv(&mut buf), Ok(3000));
        assert_eq!(&buf[..3000], &m[..]);
    }
    // Nobody has read the last one yet: it is not released.
    publisher.send(&block_message(8, 3000)).unwrap();
    let late = Subscriber::from_publisher(&publisher)
        .unwrap()
        .with_history(8)
        .unwrap();
    let mut lagged = 0;
    let mut got = Vec::new();
    loop {
        match late.recv(&mut buf) {
            Ok(n) => got.push((buf[0], n)),
            Err(RingError::Lagged { missed }) => lagged += missed,
            Err(RingError::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.last(), Some(&(8, 3000)), "the unread one is kept");
    assert_eq!(got.len() as u64 + lagged, 8, "{got:?}, {lagged} lagged");
    assert!(lagged > 0, "released blocks are reported, not read");
}

/// Overwrite policy with blocks: what a lagging subscriber takes is whole;
/// what it missed is counted.
#[test]
fn an_overwriting_ring_with_blocks_reports_the_lag_and_keeps_the_rest_whole() {
    use crate::Overflow;
    let config = block_config(4).overflow(Overflow::Overwrite);
    let publisher = Publisher::with_config(&config).unwrap();
    let sub = Subscriber::from_publisher(&publisher).unwrap();
    for i in 0..10u8 {
        publisher.send(&block_message(i, 900)).expect("never Full");
    }
    let mut buf = vec![0u8; 4096];
    assert_eq!(sub.recv(&mut buf), Err(RingError::Lagged { missed: 6 }));
    for i in 6..10u8 {
        assert_eq!(sub.recv(&mut buf), Ok(900));
        assert_eq!(&buf[..900], &block_message(i, 900)[..]);
    }
    assert!(publisher.as_ring().arena_usage().blocks_in_use <= 4);
}

/// A publisher taking the role over records itself as the holder of the
/// blocks the slots name (survivors then leave them alone).
#[test]
fn a_new_publisher_holds_the_blocks_its_slots_name() {
    let publisher = Publisher::with_config(&block_config(4)).unwrap();
    let ring = publisher.as_ring().clone();
    publisher.send(&block_message(1, 800)).unwrap();
    let offset = ring.core().read(0).payload[0];
    let arena = ring.arena().unwrap();
    assert_eq!(arena.owner(offset), crate::shm::process::current_pid());
    // Play the dead publisher: the block names another holder.
    arena.take(offset, 1);
    assert_eq!(arena.owner(offset), 1);
    drop(publisher);
    let next = Publisher::from_ring(ring.clone()).unwrap();
    assert_eq!(arena.owner(offset), crate::shm::process::current_pid());
    drop(next);
}
