//! (b) Live scribbling: a producer and a consumer run on a live ring while
//! a third party maps the same file and writes random words at random
//! offsets and times (threads of one child, or three child processes).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing};
use testkit::child::is_any_child;
use testkit::panics::StopOnPanic;
use testkit::rng::{mix, Rng};
use testkit::role;
use testkit::serial::serial;
use testkit::watchdog::Beat;

use crate::harness::{
    base_seed, child_args, episode_seed, fuzz_name, last_line, long_run, parse_line, spawn_child,
    start_watchdog, tail, wait_all,
};
use crate::layout_mirror::{Lay, ARENA_FREE, CONSUMER_HEAD, FLAG_BROADCAST, HEADER_FLAGS, SLOT};
use crate::operations::{Role, Tally, Worker};
use crate::peer::{apply_val, resolve, tame, Edit, Region, SharedMap, Val};

/// The third party: maps the segment and writes words at random.
struct Scribbler {
    map: SharedMap,
    lay: Lay,
    rng: Rng,
    /// Mean pause between bursts, in µs.
    gap_us: u64,
    burst: u64,
    transient: u64,
    writes: u64,
    log: VecDeque<String>,
    restores: Vec<(Instant, usize, usize, u64)>,
}

impl Scribbler {
    fn new(name: &str, seed: u64, style: u64) -> Self {
        let map = SharedMap::open(name).expect("scribbler: map the segment");
        let lay = map.lay();
        // (mean pause, largest burst, percent of writes undone soon after)
        let (gap_us, burst, transient) = [
            (5000, 1, 80),
            (1000, 1, 50),
            (200, 2, 30),
            (1000, 8, 30),
            (300, 2, 100),
        ][style as usize % 5];
        Scribbler {
            map,
            lay,
            rng: Rng::new(seed),
            gap_us,
            burst,
            transient,
            writes: 0,
            log: VecDeque::new(),
            restores: Vec::new(),
        }
    }

    /// An edit aimed at what is live: slots near the heads, blocks named by
    /// descriptors or free lists.
    fn pick(&mut self) -> Edit {
        let lay = self.lay;
        let r = &mut self.rng;
        let region = match r.below(100) {
            0..=14 => Region::Control,
            15..=19 => Region::Sync,
            20..=34 => Region::SlotSeq,
            35..=47 => Region::SlotMeta,
            48..=54 => Region::SlotBody,
            55..=64 => Region::Participant,
            65..=76 => Region::ArenaCtrl,
            77..=94 => Region::BlockHeader,
            95..=97 => Region::Header,
            _ => Region::Anywhere,
        };
        let mut index = r.next() as u32;
        if matches!(
            region,
            Region::SlotSeq | Region::SlotMeta | Region::SlotBody
        ) && r.pct(70)
        {
            let head = self
                .map
                .load(lay.ctrl + if r.pct(50) { 0 } else { CONSUMER_HEAD }, 8);
            index = head.wrapping_add(r.below(4)).wrapping_sub(1) as u32;
        }
        if region == Region::Participant {
            index = (index & !7) | r.below(3) as u32;
        }
        if region == Region::ArenaCtrl && r.pct(70) {
            index = r.below(8) as u32; // the small classes are the used ones
        }
        if region == Region::BlockHeader && lay.has_arena() && r.pct(60) {
            // A block in use (named by a slot's descriptor) or a free one.
            let off = if r.pct(50) {
                let s = lay.slots + (r.below(lay.capacity as u64) as usize) * SLOT;
                self.map.load(s + 24, 8) as usize
            } else {
                let c = r.below(8) as usize;
                let head = self.map.load(lay.arena + ARENA_FREE + 64 * c, 8) & 0xffff_ffff;
                (head.saturating_sub(1) as usize) * 64
            };
            if off < lay.blocks_len {
                index = (off / 64) as u32;
            }
        }
        let val = match r.below(12) {
            0 => Val::Zero,
            1 => Val::One,
            2 => Val::Max,
            3 => Val::Small(r.below(300) as u16),
            4 => Val::Any(r.next()),
            5 | 6 => Val::Near(r.below(9) as i8 - 4),
            7 => Val::Flip(r.next() as u8),
            8 => Val::Lap(r.pct(50)),
            9 => Val::Link(r.below(32) as u16),
            _ => Val::Near(1),
        };
        Edit {
            region,
            index,
            field: r.next() as u8,
            val,
        }
    }

    fn write_one(&mut self) {
        let e = self.pick();
        let (off, w) = resolve(&self.lay, &e, |o| self.map.load(o, 8));
        let (off, w) = if !off.is_multiple_of(w) {
            (off, 1)
        } else {
            (off, w)
        };
        let old = self.map.load(off, w);
        let new = tame(e.region, apply_val(e.val, old, w, self.lay.capacity));
        self.map.store(off, w, new);
        self.writes += 1;
        let transient = self.rng.pct(self.transient);
        if transient {
            let at = Instant::now() + Duration::from_micros(self.rng.below(300));
            self.restores.push((at, off, w, old));
        }
        if self.log.len() == 48 {
            self.log.pop_front();
        }
        self.log.push_back(format!(
            "{:?}[{}].{} @{off} u{}: {old:#x} -> {new:#x}{}",
            e.region,
            e.index,
            e.field,
            w * 8,
            if transient { " (transient)" } else { "" }
        ));
    }

    /// Waits until messages flow (consumer head >= 16; on a broadcast ring,
    /// whose subscribers move cursors of their own, producer head >= 16),
    /// then scribbles until `deadline`. `Err` if nothing flowed within 10 s.
    fn run(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<(), String> {
        let wait_until = Instant::now() + Duration::from_secs(10);
        let broadcast = self.map.load(HEADER_FLAGS, 4) & FLAG_BROADCAST != 0;
        let head = if broadcast { 0 } else { CONSUMER_HEAD };
        while self.map.load(self.lay.ctrl + head, 8) < 16 {
            if Instant::now() > wait_until {
                return Err("no message flowed within 10 s before scribbling".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let pause = self.rng.below(2 * self.gap_us);
            std::thread::sleep(Duration::from_micros(pause));
            let now = Instant::now();
            let map = &self.map;
            self.restores.retain(|&(at, off, w, old)| {
                if at <= now {
                    map.store(off, w, old);
                }
                at > now
            });
            for _ in 0..self.rng.range(1, self.burst as usize) {
                self.write_one();
            }
        }
        Ok(())
    }

    fn report(&self) -> String {
        format!(
            "SCRIBBLED writes={}\nlast writes:\n  {}",
            self.writes,
            self.log.iter().cloned().collect::<Vec<_>>().join("\n  ")
        )
    }
}

/// Ring configurations of the live episodes (the first with one producer
/// and one consumer at a time, the last a broadcast ring, every other time
/// one that overwrites, the others many-to-many).
fn live_config(k: u64) -> Config {
    match k % 5 {
        4 if k / 5 % 2 == 1 => Config::new(32)
            .broadcast(4)
            .arena_bytes(128 << 10)
            .max_message(8 << 10)
            .overflow(fusion_ring::Overflow::Overwrite),
        4 => Config::new(32)
            .broadcast(4)
            .arena_bytes(128 << 10)
            .max_message(8 << 10),
        0 => Config::new(64)
            .arena_bytes(256 << 10)
            .max_message(16 << 10)
            .single_producer(true)
            .single_consumer(true),
        1 => Config::new(32).arena_bytes(0).wakeups(false),
        2 => Config::new(2)
            .arena_bytes(16 << 10)
            .max_message(2048)
            .timestamps(false),
        _ => Config::new(256)
            .arena_bytes(1 << 20)
            .max_message(64 << 10)
            .wakeups(false),
    }
}

/// A producer or consumer until `deadline`; returns its tally.
fn live_worker(
    name: &str,
    seed: u64,
    role: Role,
    deadline: Instant,
    beat: Arc<Beat>,
    stop: &AtomicBool,
) -> Tally {
    let f = FusionRing::open(name).expect("worker: open before scribbling starts");
    let mut w = Worker::new(f, Some(name.to_string()), seed, role, beat);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        w.step();
        if role == Role::Producer && w.tally.get("full") % 64 == 63 {
            std::thread::yield_now();
        }
    }
    w.tally
}

/// Child: producer, consumer and scribbler threads on the named ring.
#[test]
fn child_live_threads() {
    let Some(args) = child_args(role!(child_live_threads)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(args.millis);
    let stop = AtomicBool::new(false);
    let beats = [Arc::new(Beat::default()), Arc::new(Beat::default())];
    let context = Arc::new(Mutex::new(format!(
        "ring {} seed {:#x}",
        args.name, args.seed
    )));
    let dog = start_watchdog(
        vec![
            ("producer".into(), beats[0].clone()),
            ("consumer".into(), beats[1].clone()),
        ],
        context,
    );
    let mut scribbler = Scribbler::new(&args.name, mix(args.seed ^ 3), args.style);
    let (p, c, s) = std::thread::scope(|sc| {
        let spawn_worker = |role, k: u64, beat: Arc<Beat>| {
            let (name, stop) = (&args.name, &stop);
            sc.spawn(move || {
                let _guard = StopOnPanic(stop);
                live_worker(name, mix(args.seed ^ k), role, deadline, beat, stop)
            })
        };
        let p = spawn_worker(Role::Producer, 1, beats[0].clone());
        let c = spawn_worker(Role::Consumer, 2, beats[1].clone());
        let s = sc.spawn(|| scribbler.run(deadline, &stop));
        (p.join(), c.join(), s.join())
    });
    dog.stop();
    println!("{}", scribbler.report());
    let s = s.expect("scribbler thread");
    let (p, c) = match (p, c) {
        (Ok(p), Ok(c)) => (p, c),
        _ => panic!("a worker panicked (seed {:#x}); see above", args.seed),
    };
    println!("TALLY-producer {}", p.line());
    println!("TALLY-consumer {}", c.line());
    s.expect("scribbler");
    let unexpected: Vec<_> = p.unexpected.iter().chain(&c.unexpected).collect();
    assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");
}

/// Child processes of the process variant.
fn child_live_process(role_name: &str, role: Role) {
    let Some(args) = child_args(role_name) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(args.millis);
    let stop = AtomicBool::new(false);
    let beat = Arc::new(Beat::default());
    let context = Arc::new(Mutex::new(format!(
        "ring {} seed {:#x}",
        args.name, args.seed
    )));
    let dog = start_watchdog(vec![(role_name.into(), beat.clone())], context);
    let t = live_worker(&args.name, args.seed, role, deadline, beat, &stop);
    dog.stop();
    println!("TALLY {}", t.line());
    assert!(
        t.unexpected.is_empty(),
        "unexpected errors: {:?}",
        t.unexpected
    );
}

#[test]
fn child_live_producer() {
    child_live_process(role!(child_live_producer), Role::Producer);
}

#[test]
fn child_live_consumer() {
    child_live_process(role!(child_live_consumer), Role::Consumer);
}

#[test]
fn child_live_scribbler() {
    let Some(args) = child_args(role!(child_live_scribbler)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(args.millis);
    let mut s = Scribbler::new(&args.name, args.seed, args.style);
    let r = s.run(deadline, &AtomicBool::new(false));
    println!("{}", s.report());
    r.expect("scribbler");
}

/// Episodes of live scribbling: in-suite a few short ones, or as many as
/// fit `FRING_FUZZ_SECS`.
fn live_episodes(threads: bool) {
    let _serial = serial();
    let base = base_seed();
    let (episode_ms, budget) = match long_run() {
        Some(total) => (5_000, total),
        None => (1_200, Duration::ZERO),
    };
    let start = Instant::now();
    let mut k = 0;
    let mut totals = Tally::default();
    while k < 3 || start.elapsed() + Duration::from_millis(episode_ms) < budget {
        let seed = episode_seed(base, k);
        let mut rng = Rng::new(seed);
        let cfg_k = rng.below(5);
        let style = rng.below(5);
        let name = fuzz_name();
        let ring = FusionRing::create(&name, &live_config(cfg_k)).expect("create the episode ring");
        let kids = if threads {
            vec![spawn_child(
                role!(child_live_threads),
                &name,
                seed,
                episode_ms,
                style,
            )]
        } else {
            vec![
                spawn_child(
                    role!(child_live_consumer),
                    &name,
                    mix(seed ^ 2),
                    episode_ms,
                    style,
                ),
                spawn_child(
                    role!(child_live_producer),
                    &name,
                    mix(seed ^ 1),
                    episode_ms,
                    style,
                ),
                spawn_child(
                    role!(child_live_scribbler),
                    &name,
                    mix(seed ^ 3),
                    episode_ms,
                    style,
                ),
            ]
        };
        let limit = Duration::from_millis(episode_ms) + Duration::from_secs(60);
        let results = wait_all(kids, limit);
        drop(ring);
        let what = format!(
            "episode {k} (seed {seed:#x}: FRING_FUZZ_SEED={seed:#x} reruns it first; config {cfg_k}, style {style})"
        );
        let mut failures = Vec::new();
        let mut tallies = Vec::new();
        for (role, verdict, out) in &results {
            if let Some(v) = verdict {
                let detail = match out.find("STALL:") {
                    Some(i) => out[i..].lines().take(60).collect::<Vec<_>>().join("\n"),
                    None => tail(out, 120),
                };
                failures.push(format!("--- {role}: {v}\n{detail}"));
            }
            for prefix in ["TALLY-producer", "TALLY-consumer", "TALLY"] {
                if let Some(l) = last_line(out, prefix).filter(|l| !l.starts_with('-')) {
                    tallies.push((role.clone(), prefix, parse_line(l)));
                    println!("{what} {role} {prefix}: {l}");
                }
            }
            if let Some(l) = last_line(out, "SCRIBBLED") {
                println!("{what} scribbler: {l}");
            }
        }
        if !failures.is_empty() {
            // The scribbler's recent writes help to reduce a failure.
            let scribbles: String = results
                .iter()
                .filter_map(|(_, _, out)| out.find("SCRIBBLED").map(|i| tail(&out[i..], 50)))
                .collect();
            panic!(
                "{what} failed:\n{}\n--- scribbler:\n{scribbles}",
                failures.join("\n")
            );
        }
        // Messages flowed before the scribbling started.
        let received: u64 = tallies
            .iter()
            .filter(|(role, prefix, _)| role.contains("consumer") || prefix.contains("consumer"))
            .map(|(_, _, t)| t.get("received").copied().unwrap_or(0))
            .sum();
        if received == 0 {
            let outs: Vec<String> = results
                .iter()
                .map(|(role, _, out)| format!("--- {role}:\n{}", tail(out, 30)))
                .collect();
            panic!("{what}: the consumer received nothing\n{}", outs.join("\n"));
        }
        for (_, _, t) in &tallies {
            totals.ops += t.get("ops").copied().unwrap_or(0);
            totals.received += t.get("received").copied().unwrap_or(0);
            totals.intact += t.get("intact").copied().unwrap_or(0);
            totals.garbled += t.get("garbled").copied().unwrap_or(0);
        }
        k += 1;
    }
    println!(
        "live scribbling ({}), base seed {base:#x}: {k} episodes, {}",
        if threads { "threads" } else { "processes" },
        totals.line()
    );
}

#[test]
fn live_scribbling_threads() {
    if is_any_child() {
        return;
    }
    live_episodes(true);
}

#[test]
fn live_scribbling_processes() {
    if is_any_child() {
        return;
    }
    live_episodes(false);
}
