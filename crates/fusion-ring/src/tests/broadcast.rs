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
