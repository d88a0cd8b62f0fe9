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
