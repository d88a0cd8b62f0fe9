//! Peers killed with SIGKILL at random points, in real processes.
//!
//! - `killed_producers`: a child process streams numbered messages (inline,
//!   copied into blocks, and loans) into a named `FusionRing`; the parent
//!   receives and kills the child at a random moment, hundreds of times.
//!   After each kill the parent must get every message the child had
//!   published (the child counts them in a shared page after each send),
//!   none twice, then `Disconnected` rather than a hang, and the arena must
//!   be back to the blocks still queued (none).
//! - `killed_consumers`: the mirror image. A child receives (copies, and
//!   zero-copy payloads it holds on to) and counts what it got; the parent
//!   sends, kills it at random, finds `Disconnected` when it sends into the
//!   full ring with no receiver left, then receives the rest itself: every
//!   message the child did not get, exactly once, in order; the slot a dead
//!   consumer held is released (the parent streams more than a ring's worth
//!   through afterwards), and the blocks it held are freed.
//!
//! Both vary what is killed where: every 50 kills the ring is made anew
//! (so the arena is carved from scratch again, where a kill once broke the
//! walks over it), with a roomy or a tight arena (senders then wait for
//! blocks, steal spares, reclaim), and every other pair of rings with one
//! producer and one consumer at a time (each child takes its role over
//! from the one killed before it); each child runs in one of three modes
//! (producers: copies and loans mixed, loans only (every loan leaves a spare
//! behind), copies only; consumers: copies and held payloads mixed, held
//! payloads only, copies only); a quarter of the kills land within 100 µs
//! of the child's first message, the rest within 4 ms; and after a quarter
//! of them the parent does not recover at once but only after a later
//! kill. Whenever it recovers, the arena must hold no block at all (nothing
//! is queued, nothing held here): no allowance for leaks, and nothing left
//! for later (`Recovery::blocks_deferred`).
//!
//! Children are this test binary, re-run as one of its `child_*` tests (the
//! test kit's `child` module). `FRING_DEATH_ITERATIONS` sets the number
//! of kills (default 300 per test; the soak: 10000), `FRING_DEATH_SEED`
//! the seed of the plans.

#![cfg(not(fusion_ring_loom))]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, Payload, PriorityClass, RingError};
use testkit::child::{child_var as var, is_child, ChildGuard, Output};
use testkit::names::unique_name;
use testkit::rng::{fill, is_message, mix};
use testkit::role;
use testkit::shared_page::SharedPage;

const RING_VAR: &str = "FRING_DEATH_RING";
const PAGE_VAR: &str = "FRING_DEATH_PAGE";
const BASE_VAR: &str = "FRING_DEATH_BASE";
const MODE_VAR: &str = "FRING_DEATH_MODE";

/// Longest any single wait of the parent may take before the test fails.
const STUCK: Duration = Duration::from_secs(10);
const CAPACITY: usize = 16;
const MAX_MESSAGE: usize = 4096;

/// The seed of the kill plans (`FRING_DEATH_SEED`, to vary a long run).
fn seed() -> u64 {
    std::env::var("FRING_DEATH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn iterations() -> u64 {
    std::env::var("FRING_DEATH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn config() -> Config {
    Config::new(CAPACITY)
        .arena_bytes(256 * 1024)
        .max_message(MAX_MESSAGE)
}

/// Kills per ring: each epoch makes the ring anew, alternating a roomy
/// arena with a tight one (seven 4 KiB blocks), and every other pair of
/// epochs a ring with one producer and one consumer at a time
/// (`Config::single_producer` / `single_consumer`), where each new child
/// takes its role over from the one killed before it.
const EPOCH: u64 = 50;

fn epoch_config(epoch: u64) -> Config {
    let arena = if epoch.is_multiple_of(2) {
        config()
    } else {
        config().arena_bytes(32 * 1024)
    };
    let single = (epoch / 2) % 2 == 1;
    arena.single_producer(single).single_consumer(single)
}

/// How a child sends or receives (the `FRING_DEATH_MODE` variable): 0
/// mixed, 1 zero-copy only (loans / held payloads), 2 copies only.
fn mode() -> u64 {
    std::env::var(MODE_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What the parent varies from one kill to the next.
struct Plan {
    /// The child's mode (see [`mode`]).
    mode: u64,
    /// How long the child runs before it is killed.
    run_for: Duration,
    /// Whether the parent recovers right after this kill (else after a
    /// later one).
    recover_now: bool,
}

impl Plan {
    fn next(rng: &mut u64) -> Plan {
        *rng = mix(*rng);
        let r = *rng;
        let micros = if r.is_multiple_of(4) { 100 } else { 4000 };
        Plan {
            mode: (r >> 8) % 3,
            run_for: Duration::from_micros((r >> 16) % micros),
            recover_now: !(r >> 40).is_multiple_of(4),
        }
    }
}

/// Length of message `id`: inline, or copied into a block, or a loan.
fn len_of(id: u64) -> usize {
    match mix(id) % 4 {
        0 | 1 => 8 + (mix(id ^ 1) % 33) as usize,
        2 => 41 + (mix(id ^ 2) % 2000) as usize,
        _ => 1024 + (mix(id ^ 3) % 3072) as usize,
    }
}

fn check(id: u64, got: &[u8]) {
    assert_eq!(got.len(), len_of(id), "length of message {id}");
    assert!(is_message(id, got), "content of message {id}");
}

fn id_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8-byte header"))
}

// ---------------------------------------------------------------------------
// A page of counters shared with the child (a file mapped by both: the
// parent's `SharedPage::create_file`, the child's `open_file`).

/// Word 0: messages sent (producer child) or the next id the consumer
/// child expects (consumer child). Word 1: 1 once the child is running.
const PROGRESS: usize = 0;
const STARTED: usize = 8;
/// Word 2: 1 once the child has panicked (its panic hook sets it first:
/// a child killed while it prints a panic must not pass for a killed one).
const FAILED: usize = 16;

/// The child's page, for the rest of its life, with a panic hook that
/// flags the failure in it before the usual report.
fn child_page() -> &'static SharedPage {
    let page: &'static SharedPage =
        Box::leak(Box::new(SharedPage::open_file(Path::new(&var(PAGE_VAR)))));
    let failed = page.word(FAILED);
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        failed.store(1, Ordering::Release);
        report(info);
    }));
    page
}

/// Fails the test if the child (just killed) had panicked.
fn assert_child_did_not_fail(page: &SharedPage, iteration: u64) {
    assert_eq!(
        page.word(FAILED).load(Ordering::Acquire),
        0,
        "iteration {iteration}: the child panicked before it was killed (its output is above)"
    );
}

// ---------------------------------------------------------------------------
// Children

/// Sends ids `base..` until killed, counting each one sent in the page.
#[test]
fn child_producer() {
    if !is_child(role!(child_producer)) {
        return;
    }
    let ring = FusionRing::open(&var(RING_VAR)).expect("child: open ring");
    let page = child_page();
    let base: u64 = var(BASE_VAR).parse().expect("base");
    let mode = mode();
    let mut buf = vec![0u8; MAX_MESSAGE];
    for id in base.. {
        let len = len_of(id);
        fill(id, &mut buf[..len]);
        let loan = match mode {
            0 => len >= 1024,
            1 => len > 40,
            _ => false,
        };
        if loan {
            let mut loan = loop {
                match ring.loan(len) {
                    Ok(loan) => break loan,
                    Err(RingError::ArenaExhausted { .. }) => std::thread::yield_now(),
                    Err(e) => panic!("child: loan: {e}"),
                }
            };
            loan.copy_from_slice(&buf[..len]);
            let mut pending = loan;
            loop {
                match ring.send_loan(pending, PriorityClass::Normal) {
                    Ok(()) => break,
                    Err(e) if e.error == RingError::Full => {
                        pending = e.loan;
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("child: send_loan: {}", e.error),
                }
            }
        } else {
            ring.send_blocking(&buf[..len]).expect("child: send");
        }
        // Release: the parent reading this count has seen the sends.
        page.word(PROGRESS).store(id - base + 1, Ordering::Release);
        // Started once it has sent (so the ring has seen a sender).
        page.word(STARTED).store(1, Ordering::Release);
    }
}

/// Receives until killed, holding the last few zero-copy payloads, and
/// records the next id it expects in the page.
#[test]
fn child_consumer() {
    if !is_child(role!(child_consumer)) {
        return;
    }
    let ring = FusionRing::open(&var(RING_VAR)).expect("child: open ring");
    let page = child_page();
    let mut next: u64 = var(BASE_VAR).parse().expect("base");
    let mode = mode();
    let mut held: VecDeque<Payload> = VecDeque::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    page.word(STARTED).store(1, Ordering::Release);
    loop {
        let copy = match mode {
            0 => next.is_multiple_of(2),
            1 => false,
            _ => true,
        };
        let id = if copy {
            let n = ring.recv_blocking(&mut buf).expect("child: recv");
            check(id_of(&buf[..n]), &buf[..n]);
            id_of(&buf[..n])
        } else {
            let p = ring.recv_zerocopy_blocking().expect("child: recv_zerocopy");
            check(id_of(&p), &p);
            let id = id_of(&p);
            held.push_back(p);
            if held.len() > 3 {
                held.pop_front();
            }
            id
        };
        assert_eq!(id, next, "child: messages in order");
        next += 1;
        page.word(PROGRESS).store(next, Ordering::Release);
    }
}

/// Creates a named ring that outlives it (as a crashed creator's would),
/// says so in the page, and waits to be killed.
#[test]
fn child_creator() {
    if !is_child(role!(child_creator)) {
        return;
    }
    let _ring = FusionRing::create(&var(RING_VAR), &config()).expect("child: create");
    let page = child_page();
    page.word(STARTED).store(1, Ordering::Release);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts `role` (a `role!`) on ring `ring` with the shared page at `page`,
/// sending or receiving from id `base` on, in `mode`.
fn spawn(role: &'static str, ring: &str, page: &Path, base: u64, mode: u64) -> ChildGuard {
    let page = page.to_str().expect("utf-8 path").to_string();
    let vars = [
        (RING_VAR, ring.to_string()),
        (PAGE_VAR, page),
        (BASE_VAR, base.to_string()),
        (MODE_VAR, mode.to_string()),
    ];
    ChildGuard::spawn_with(role, &vars, Output::Quiet)
}

fn wait_started(page: &SharedPage, child: &mut ChildGuard) {
    let start = Instant::now();
    while page.word(STARTED).load(Ordering::Acquire) == 0 {
        child.assert_alive();
        assert!(start.elapsed() < STUCK, "child never started");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Recovers after one or more kills, with nothing queued and nothing held
/// here: every block must be back (none leaked) and none left for later.
/// Returns the blocks that recovery freed.
fn recover_all(ring: &FusionRing, iteration: u64) -> u64 {
    let recovered = ring.as_ring().recover();
    let usage = ring.as_ring().arena_usage();
    assert_eq!(
        (usage.blocks_in_use, recovered.blocks_deferred),
        (0, 0),
        "iteration {iteration}: blocks in use and left for later, after recovery ({recovered:?})"
    );
    recovered.blocks
}

fn names(tag: &str) -> (String, std::path::PathBuf) {
    let name = unique_name(&format!("fr-death-{tag}"));
    let page = Path::new("/dev/shm").join(format!("{name}-page"));
    (name, page)
}

/// The ring of kill `iteration`: a new one at the start of every epoch
/// (the old one dropped first: its name goes with it).
fn ring_for<'a>(ring: &'a mut Option<FusionRing>, name: &str, iteration: u64) -> &'a FusionRing {
    if iteration.is_multiple_of(EPOCH) {
        *ring = None;
        let epoch = iteration / EPOCH;
        *ring = Some(FusionRing::create(name, &epoch_config(epoch)).expect("create ring"));
    }
    ring.as_ref().expect("a ring")
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn killed_producers() {
    let (name, page_path) = names("prod");
    let mut current = None;
    let mut rng = 0x5EED_u64 ^ seed();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (mut total, mut skipped, mut reclaimed) = (0u64, 0u64, 0u64);
    for iteration in 0..iterations() {
        if iteration.is_multiple_of(EPOCH) && iteration > 0 {
            // The epoch's last kill may not have been recovered yet.
            reclaimed += recover_all(current.as_ref().expect("ring"), iteration);
        }
        let ring = ring_for(&mut current, &name, iteration);
        let plan = Plan::next(&mut rng);
        let page = SharedPage::create_file(&page_path);
        let base = iteration << 32;
        let head_before = ring.as_ring().stats().head;
        let mut child = spawn(role!(child_producer), &name, &page_path, base, plan.mode);
        wait_started(&page, &mut child);
        // Receive for a random while as the child sends, then kill it
        // wherever it is: sending, blocked on a full ring or arena, or in a
        // loan.
        let run_for = plan.run_for;
        let started = Instant::now();
        let mut next = base;
        while started.elapsed() < run_for {
            match ring.recv_with_timeout(&mut buf, Duration::from_micros(200)) {
                Ok(n) => {
                    assert_eq!(id_of(&buf[..n]), next, "iteration {iteration}: order");
                    check(next, &buf[..n]);
                    next += 1;
                }
                Err(RingError::Timeout) => {}
                Err(e) => panic!("iteration {iteration}: recv while running: {e}"),
            }
        }
        // A child that failed on its own (a panic is not a kill) fails
        // the test, with its output.
        child.kill_running();
        assert_child_did_not_fail(&page, iteration);
        let sent = page.word(PROGRESS).load(Ordering::Acquire);
        // Drain: everything it sent arrives, in order, then Disconnected
        // (its claimed-but-unpublished slot, if any, is skipped on the way).
        let drain_start = Instant::now();
        loop {
            match ring.recv_with_timeout(&mut buf, STUCK) {
                Ok(n) => {
                    assert_eq!(id_of(&buf[..n]), next, "iteration {iteration}: order");
                    check(next, &buf[..n]);
                    next += 1;
                }
                Err(RingError::Disconnected) => break,
                Err(e) => panic!(
                    "iteration {iteration}: after the kill: {e} ({} of {sent} received)",
                    next - base
                ),
            }
            assert!(
                drain_start.elapsed() < STUCK,
                "iteration {iteration}: drain"
            );
        }
        let got = next - base;
        // A message published after the last count update may arrive too.
        assert!(
            got == sent || got == sent + 1,
            "iteration {iteration}: the child sent {sent}, we received {got}"
        );
        // Positions claimed but never published by the child: skipped.
        skipped += ring.as_ring().stats().head - head_before - got;
        // The ring is empty; the blocks the child held (a loan, a spare, a
        // block copied into but unsent, one it was taking) are freed.
        assert_eq!(ring.as_ring().len(), 0);
        if plan.recover_now {
            reclaimed += recover_all(ring, iteration);
        }
        total += got;
    }
    reclaimed += recover_all(current.as_ref().expect("ring"), iterations());
    eprintln!(
        "killed_producers: {} kills, {total} messages checked, {skipped} unpublished slots skipped, {reclaimed} blocks reclaimed, 0 leaked",
        iterations()
    );
    assert!(total > 0, "the children sent nothing at all");
}

#[test]
fn killed_consumers() {
    let (name, page_path) = names("cons");
    let mut current = None;
    let mut rng = 0xC0FFEE_u64 ^ seed();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut next_send = 0u64;
    let (mut child_got, mut parent_got, mut reclaimed) = (0u64, 0u64, 0u64);
    for iteration in 0..iterations() {
        if iteration.is_multiple_of(EPOCH) && iteration > 0 {
            reclaimed += recover_all(current.as_ref().expect("ring"), iteration);
        }
        let ring = ring_for(&mut current, &name, iteration);
        if iteration.is_multiple_of(EPOCH) {
            // The ring has had a receiver from the start (a child killed
            // before its first receive still leaves the senders a side to
            // miss).
            assert_eq!(ring.clone().recv(&mut buf), Err(RingError::Empty));
        }
        let plan = Plan::next(&mut rng);
        let page = SharedPage::create_file(&page_path);
        let base = next_send;
        page.word(PROGRESS).store(base, Ordering::Relaxed);
        let mut child = spawn(role!(child_consumer), &name, &page_path, base, plan.mode);
        wait_started(&page, &mut child);
        let run_for = plan.run_for;
        let started = Instant::now();
        while started.elapsed() < run_for {
            let len = len_of(next_send);
            fill(next_send, &mut buf[..len]);
            match ring.send_with_timeout(&buf[..len], Duration::from_micros(200)) {
                Ok(()) => next_send += 1,
                Err(RingError::Timeout) => {}
                Err(e) => panic!("iteration {iteration}: send while running: {e}"),
            }
        }
        // A child that failed on its own (a panic is not a kill) fails
        // the test, with its output.
        child.kill_running();
        assert_child_did_not_fail(&page, iteration);
        let expected = page.word(PROGRESS).load(Ordering::Acquire);
        child_got += expected - base;
        // With nobody left to receive, a sender waiting on a full ring is
        // told so instead of hanging.
        loop {
            let len = len_of(next_send);
            fill(next_send, &mut buf[..len]);
            match ring.send_with_timeout(&buf[..len], STUCK) {
                Ok(()) => next_send += 1,
                Err(RingError::Disconnected) => break,
                Err(e) => panic!("iteration {iteration}: send after the kill: {e}"),
            }
        }
        // A new consumer (this process) gets the rest: from the child's
        // next expected id, or the one after if the child had claimed it
        // when it died, through the last one sent, each once and in order.
        let consumer = ring.clone();
        let mut next = None;
        let drain_start = Instant::now();
        while next != Some(next_send) {
            assert!(
                drain_start.elapsed() < STUCK,
                "iteration {iteration}: drain"
            );
            match consumer.recv_with_timeout(&mut buf, Duration::from_millis(50)) {
                Ok(n) => {
                    let id = id_of(&buf[..n]);
                    check(id, &buf[..n]);
                    match next {
                        None => assert!(
                            id == expected || id == expected + 1,
                            "iteration {iteration}: first id {id}, the child expected {expected}"
                        ),
                        Some(want) => assert_eq!(id, want, "iteration {iteration}: order"),
                    }
                    next = Some(id + 1);
                    parent_got += 1;
                }
                Err(RingError::Timeout) if next.is_none() && next_send <= expected + 1 => {
                    // The child got (or took) everything.
                    next = Some(next_send);
                }
                Err(e) => panic!(
                    "iteration {iteration}: draining: {e} (sent up to {next_send}, child expected {expected}, next {next:?})"
                ),
            }
        }
        // The ring moves on: more than a ring's worth goes through.
        for k in 0..(2 * CAPACITY as u64) {
            let id = next_send + k;
            let len = len_of(id).min(64);
            let mut msg = vec![0u8; len];
            fill(id, &mut msg);
            ring.send_with_timeout(&msg, STUCK)
                .unwrap_or_else(|e| panic!("iteration {iteration}: send {k} after drain: {e}"));
            let n = consumer
                .recv_with_timeout(&mut buf, STUCK)
                .unwrap_or_else(|e| panic!("iteration {iteration}: recv {k} after drain: {e}"));
            assert_eq!(&buf[..n], &msg[..]);
        }
        next_send += 2 * CAPACITY as u64;
        drop(consumer);
        if plan.recover_now {
            reclaimed += recover_all(ring, iteration);
        }
    }
    reclaimed += recover_all(current.as_ref().expect("ring"), iterations());
    eprintln!(
        "killed_consumers: {} kills, the children received {child_got}, the parent {parent_got}, {reclaimed} blocks reclaimed, 0 leaked",
        iterations()
    );
    assert!(child_got > 0, "the children received nothing at all");
}

#[test]
fn a_ring_whose_creator_was_killed_is_stale_and_can_be_replaced() {
    use fusion_ring::inspect::RingInfo;
    let (name, page_path) = names("stale");
    let page = SharedPage::create_file(&page_path);
    let mut creator = spawn(role!(child_creator), &name, &page_path, 0, 0);
    wait_started(&page, &mut creator);

    // In use: not stale, and never replaced.
    let info = RingInfo::read(&name).expect("read");
    assert!(
        !info.is_stale(),
        "its creator is alive: {:?}",
        info.participants
    );
    assert!(matches!(
        FusionRing::create(&name, &config().replace_stale(true)),
        Err(RingError::AlreadyExists { .. })
    ));
    // Opening it, sending: fine, and this process is now a participant.
    let user = FusionRing::open(&name).expect("open");
    user.send(b"left behind").expect("send");
    creator.kill();
    assert!(
        !RingInfo::read(&name).expect("read").is_stale(),
        "we still use it"
    );
    drop(user);

    // Killed, so it could not remove its name: the file stays, stale.
    let info = RingInfo::read(&name).expect("the file is still there");
    assert!(info.is_stale(), "{:?}", info.participants);
    assert_eq!(info.queued, 1);
    assert!(
        matches!(
            FusionRing::create(&name, &config()),
            Err(RingError::AlreadyExists { .. })
        ),
        "not replaced unless asked"
    );
    let fresh = FusionRing::create(&name, &config().replace_stale(true)).expect("replaced");
    assert_eq!(
        fresh.recv(&mut [0u8; 64]),
        Err(RingError::Empty),
        "a new ring"
    );
    assert!(!RingInfo::read(&name).expect("read").is_stale());
}
