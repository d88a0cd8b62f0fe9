//! Broadcast rings across real processes: every subscriber receives every
//! message once, in order, byte for byte; a killed subscriber stops
//! holding the publisher back; a subscriber joining mid-stream gets a
//! suffix of it; on a ring that overwrites, a slow subscriber's received
//! messages plus its reported lag are exactly what was published; the
//! subscriber limit and the ring's shape are enforced.

#![cfg(not(fusion_ring_loom))]

use std::time::{Duration, Instant};

use fusion_ring::{
    Config, FusionRing, Overflow, PriorityClass, Publisher, RingError, Subscriber, UltraFastRing,
};
use testkit::child::{child_var, is_child, ChildGuard};
use testkit::names::ShmName;
use testkit::rng::{fill, is_message, mix};
use testkit::role;
use testkit::serial::serial;

const RING_VAR: &str = "FRING_BROADCAST_RING";
const COUNT_VAR: &str = "FRING_BROADCAST_COUNT";
const SLOW_VAR: &str = "FRING_BROADCAST_SLOW";
const DEADLINE: Duration = Duration::from_secs(60);

/// Messages in the four-subscriber stream (`FRING_BROADCAST_MESSAGES`
/// raises it, e.g. to the million).
fn stream_len() -> u64 {
    std::env::var("FRING_BROADCAST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Largest message of the streams.
const MAX: usize = 3040;

/// Message `i`: its length (a sequence number, then bytes that name it:
/// 8 ..= 40 bytes inline, one message in eight 41 ..= 3040 bytes in an
/// arena block) and class.
fn len_of(i: u64) -> usize {
    let m = mix(i) >> 8;
    if m.is_multiple_of(8) {
        41 + (m >> 3) as usize % (MAX - 40)
    } else {
        8 + m as usize % 33
    }
}

fn class_of(i: u64) -> PriorityClass {
    PriorityClass::from_u8((mix(i) % 5) as u8).expect("0..5 is a class")
}

fn message(i: u64, buf: &mut [u8; MAX]) -> &[u8] {
    let len = len_of(i);
    buf[..8].copy_from_slice(&i.to_le_bytes());
    fill(i, &mut buf[8..len]);
    &buf[..len]
}

/// Checks that `got` is message `i` with its class.
fn check(who: &str, i: u64, got: &[u8], class: PriorityClass) {
    assert_eq!(got.len(), len_of(i), "{who}: length of message {i}");
    let seq = u64::from_le_bytes(got[..8].try_into().unwrap());
    assert_eq!(seq, i, "{who}: message {seq} where {i} was due");
    assert!(is_message(i, &got[8..]), "{who}: bytes of message {i}");
    assert_eq!(class, class_of(i), "{who}: class of message {i}");
}

/// Waits until `done()`, or fails naming `what`.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn four_subscriber_processes_each_get_every_message_once_in_order() {
    let _serial = serial();
    let name = ShmName::new("bcast-4");
    let publisher = Publisher::create(name.name(), &Config::new(256).broadcast(4)).expect("create");
    let n = stream_len();
    let mut children: Vec<ChildGuard> = (0..4)
        .map(|_| {
            ChildGuard::spawn(
                role!(child_subscriber_checks_the_stream),
                &[(RING_VAR, name.name().into()), (COUNT_VAR, n.to_string())],
            )
        })
        .collect();
    wait_until("four subscribers", || publisher.subscribers() == 4);
    let mut buf = [0u8; MAX];
    for i in 0..n {
        publisher
            .send_deadline(message(i, &mut buf), class_of(i), Instant::now() + DEADLINE)
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    }
    let start = Instant::now();
    for child in &mut children {
        child.wait_success(start, DEADLINE);
    }
    let stats = publisher.stats();
    assert_eq!((stats.sent, stats.received), (n, 4 * n), "{stats:?}");
}

/// Subscribes, then receives the stream of `COUNT_VAR` messages and checks
/// each.
#[test]
fn child_subscriber_checks_the_stream() {
    if !is_child(role!(child_subscriber_checks_the_stream)) {
        return;
    }
    let sub = Subscriber::open(&child_var(RING_VAR)).expect("child: subscribe");
    let n: u64 = child_var(COUNT_VAR).parse().expect("count");
    let mut buf = [0u8; MAX];
    for i in 0..n {
        let (len, class, _) = sub
            .recv_deadline(&mut buf, Instant::now() + DEADLINE)
            .unwrap_or_else(|e| panic!("child: recv {i}: {e}"));
        check("child", i, &buf[..len], class);
    }
    assert_eq!(sub.lag(), 0);
}

/// Overwrite policy, across processes: the publisher streams without ever
/// waiting while a deliberately slow subscriber (a 50 us pause every 64
/// messages) and a greedy one read. Each checks every message it gets
/// (the one due after what it got and what it was told it missed, whole,
/// with its class), and reports its received count and lag: they add up
/// to what was published, and the slow one did lag.
#[test]
fn overwrite_a_slow_subscribers_received_plus_lag_is_what_was_published() {
    let _serial = serial();
    let name = ShmName::new("bcast-over");
    let config = Config::new(64).broadcast(2).overflow(Overflow::Overwrite);
    let publisher = Publisher::create(name.name(), &config).expect("create");
    let n = stream_len();
    let mut children: Vec<ChildGuard> = ["1", "0"]
        .iter()
        .map(|slow| {
            ChildGuard::spawn(
                role!(child_subscriber_counts_lag),
                &[
                    (RING_VAR, name.name().into()),
                    (COUNT_VAR, n.to_string()),
                    (SLOW_VAR, (*slow).into()),
                ],
            )
        })
        .collect();
    wait_until("two subscribers", || publisher.subscribers() == 2);
    let mut buf = [0u8; MAX];
    for i in 0..n {
        publisher
            .send_with_priority(message(i, &mut buf), class_of(i))
            .unwrap_or_else(|e| panic!("send {i}: an overwriting publisher got {e}"));
    }
    let start = Instant::now();
    let reports: Vec<(u64, u64)> = children
        .iter_mut()
        .map(|child| {
            let out = child.wait_success(start, DEADLINE);
            let v: Vec<u64> = out
                .lines()
                .find_map(|l| l.split("received ").nth(1))
                .map(|l| l.split(" missed ").filter_map(|x| x.parse().ok()).collect())
                .unwrap_or_else(|| panic!("no report: {out}"));
            (v[0], v[1])
        })
        .collect();
    eprintln!("slow, greedy: (received, missed) {reports:?} of {n}");
    for (received, missed) in &reports {
        assert_eq!(received + missed, n, "{reports:?}");
    }
    assert!(
        reports[0].1 > 0,
        "the slow subscriber never lagged: {reports:?}"
    );
}

/// Subscribes, then reads until it has accounted for `COUNT_VAR` messages
/// (received or reported missed), checking each against the index due;
/// with `SLOW_VAR` = 1, pauses 50 us every 64 messages. Prints its counts.
#[test]
fn child_subscriber_counts_lag() {
    if !is_child(role!(child_subscriber_counts_lag)) {
        return;
    }
    let sub = Subscriber::open(&child_var(RING_VAR)).expect("child: subscribe");
    let n: u64 = child_var(COUNT_VAR).parse().expect("count");
    let slow = child_var(SLOW_VAR) == "1";
    let mut buf = [0u8; MAX];
    let (mut due, mut received, mut missed) = (0, 0u64, 0);
    while due < n {
        match sub.recv_deadline(&mut buf, Instant::now() + DEADLINE) {
            Ok((len, class, _)) => {
                check("child", due, &buf[..len], class);
                due += 1;
                received += 1;
                if slow && received.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Err(RingError::Lagged { missed: m }) => {
                assert!(m > 0, "child: a lag of 0");
                due += m;
                missed += m;
            }
            Err(e) => panic!("child: recv at {due}: {e}"),
        }
    }
    assert_eq!(due, n, "child: told it missed more than was published");
    assert_eq!(sub.missed(), missed);
    println!("received {received} missed {missed}");
}

#[test]
fn a_killed_subscriber_stops_holding_the_publisher_back() {
    let _serial = serial();
    let name = ShmName::new("bcast-kill");
    let publisher = Publisher::create(name.name(), &Config::new(8).broadcast(2)).expect("create");
    let mut child = ChildGuard::spawn(
        role!(child_subscribes_and_sleeps),
        &[(RING_VAR, name.name().into())],
    );
    wait_until("the child subscribed", || publisher.subscribers() == 1);
    for i in 0..8u8 {
        publisher.send(&[i]).expect("room for a ring's worth");
    }
    assert_eq!(publisher.send(b"more"), Err(RingError::Full));
    assert_eq!(
        publisher.send_timeout(b"more", Duration::from_millis(20)),
        Err(RingError::Timeout),
        "a live subscriber a ring behind holds the publisher back"
    );
    child.kill();
    // The blocked send finds the dead subscriber and goes on.
    publisher
        .send_timeout(b"more", DEADLINE)
        .expect("the killed subscriber no longer holds the publisher back");
    assert_eq!(publisher.subscribers(), 0);
}

/// Subscribes, reads nothing, waits to be killed.
#[test]
fn child_subscribes_and_sleeps() {
    if !is_child(role!(child_subscribes_and_sleeps)) {
        return;
    }
    let _sub = Subscriber::open(&child_var(RING_VAR)).expect("child: subscribe");
    std::thread::sleep(DEADLINE);
    panic!("child: never killed");
}

#[test]
fn a_subscriber_joining_mid_stream_gets_a_suffix_in_order() {
    let _serial = serial();
    let name = ShmName::new("bcast-join");
    let publisher = Publisher::create(name.name(), &Config::new(64).broadcast(2)).expect("create");
    let mut buf = [0u8; MAX];
    let mut send = |i: u64| {
        publisher
            .send_deadline(message(i, &mut buf), class_of(i), Instant::now() + DEADLINE)
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
    };
    for i in 0..1000 {
        send(i);
    }
    let mut child = ChildGuard::spawn(
        role!(child_joins_mid_stream),
        &[(RING_VAR, name.name().into())],
    );
    // The stream goes on while the child starts and joins, then for
    // 20 000 messages more; then the publisher leaves.
    let mut i = 1000;
    let deadline = Instant::now() + DEADLINE;
    while publisher.subscribers() == 0 {
        assert!(Instant::now() < deadline, "the child never subscribed");
        send(i);
        i += 1;
    }
    let end = i + 20_000;
    while i < end {
        send(i);
        i += 1;
    }
    drop(publisher);
    let out = child.wait_success(Instant::now(), DEADLINE);
    let report: Vec<u64> = out
        .lines()
        .find_map(|l| l.split("got ").nth(1))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| panic!("no report: {out}"));
    let [first, last] = report[..] else {
        panic!("bad report: {out}")
    };
    assert!(
        first >= 1000,
        "the child got message {first}, sent before it was spawned"
    );
    assert_eq!(last, end - 1, "the child missed the end of the stream");
}

/// Subscribes while the stream runs, reads until the publisher has left;
/// checks that what it got is contiguous and in order; prints the first
/// and last message it got.
#[test]
fn child_joins_mid_stream() {
    if !is_child(role!(child_joins_mid_stream)) {
        return;
    }
    let sub = Subscriber::open(&child_var(RING_VAR)).expect("child: subscribe");
    let mut buf = [0u8; MAX];
    let (mut first, mut next) = (None, None);
    loop {
        let (len, class, _) = match sub.recv_deadline(&mut buf, Instant::now() + DEADLINE) {
            Ok(r) => r,
            Err(RingError::Disconnected) => break,
            Err(e) => panic!("child: recv: {e}"),
        };
        let i = u64::from_le_bytes(buf[..8].try_into().unwrap());
        first.get_or_insert(i);
        check("child", next.unwrap_or(i), &buf[..len], class);
        next = Some(i + 1);
    }
    let (first, next) = (first.expect("got nothing"), next.expect("got nothing"));
    println!("got {first} {}", next - 1);
}

#[test]
fn the_subscriber_limit_is_enforced_and_names_itself() {
    let publisher = Publisher::with_config(&Config::new(8).broadcast(2)).expect("ring");
    let a = Subscriber::from_publisher(&publisher).expect("first");
    let _b = Subscriber::from_publisher(&publisher).expect("second");
    let err = Subscriber::from_publisher(&publisher).unwrap_err();
    assert_eq!(err, RingError::TooManySubscribers { limit: 2 });
    assert!(err.to_string().contains("admits 2 subscribers"), "{err}");
    drop(a);
    Subscriber::from_publisher(&publisher).expect("a place again");
    let over = Config::new(8).broadcast(fusion_ring::MAX_SUBSCRIBERS + 1);
    assert!(matches!(
        Publisher::with_config(&over),
        Err(RingError::InvalidConfig {
            field: "broadcast",
            ..
        })
    ));
}

#[test]
fn shapes_and_roles_are_enforced() {
    let queue = UltraFastRing::new(8).expect("work queue");
    assert!(matches!(
        Publisher::from_ring(queue.as_ring().clone()),
        Err(RingError::WrongShape {
            found: "work queue",
            ..
        })
    ));
    assert!(matches!(
        Subscriber::from_ring(queue.as_ring().clone()),
        Err(RingError::WrongShape { .. })
    ));
    let publisher = Publisher::with_config(&Config::new(8).broadcast(2)).expect("ring");
    assert!(matches!(
        Publisher::from_ring(publisher.as_ring().clone()),
        Err(RingError::RoleTaken {
            role: "producer",
            ..
        })
    ));
    assert!(matches!(
        Publisher::with_config(&Config::new(8).broadcast(2).single_consumer(true)),
        Err(RingError::InvalidConfig {
            field: "single_consumer",
            ..
        })
    ));
    assert!(matches!(
        Publisher::with_config(&Config::new(8).overflow(fusion_ring::Overflow::Overwrite)),
        Err(RingError::InvalidConfig {
            field: "overflow",
            ..
        })
    ));
}

/// The seeds' ring types work on a broadcast ring: a handle that receives
/// subscribes at its first receive, and each gets every message after.
#[test]
fn work_queue_handles_on_a_broadcast_ring_subscribe_when_they_receive() {
    let publisher = Publisher::with_config(&Config::new(8).broadcast(4)).expect("ring");
    let a = FusionRing::from(publisher.as_ring().clone());
    let b = UltraFastRing::from(publisher.as_ring().clone());
    let mut buf = [0u8; MAX];
    assert_eq!(a.recv(&mut buf), Err(RingError::Empty));
    assert!(matches!(b.recv_fast(&mut buf), Err(RingError::Empty)));
    assert_eq!(publisher.subscribers(), 2);
    publisher.send(b"both").expect("send");
    assert_eq!(a.recv(&mut buf), Ok(4));
    assert_eq!(b.recv_fast(&mut buf).map(|r| r.0), Ok(4));
    assert_eq!(a.recv(&mut buf), Err(RingError::Empty));
}
