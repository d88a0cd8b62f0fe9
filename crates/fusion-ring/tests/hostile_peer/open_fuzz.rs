//! (a) Opening arbitrary segments: proptest builds files under `/dev/shm`
//! from arbitrary bytes and from real segments with words overwritten
//! (header fields, control block, slots, participants, arena), opens them
//! with the three ring types and `inspect`, and runs a bounded mix of
//! operations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fusion_ring::inspect::{self, RingInfo};
use fusion_ring::{Config, FusionRing, PriorityClass, Ring, RingError, UltraFastRing, INLINE_MAX};
use testkit::child::is_any_child;
use testkit::names::{shm_path, ShmName};
use testkit::rng::{fill, Rng};
use testkit::role;
use testkit::serial::serial;
use testkit::watchdog::Beat;

use crate::harness::{
    base_seed, child_args, episode_seed, fuzz_name, last_line, long_run, parse_line, spawn_child,
    start_watchdog, tail, wait_all,
};
use crate::layout_mirror::{Lay, HEADER_FIELDS, MAGIC, PAGE};
use crate::operations::{outcome_name, skipped, Role, Tally, Worker};
use crate::peer::{apply_to_bytes, Edit, Region, Val};

/// Templates: real segments with messages queued, blocks in use and blocks
/// freed, copied out of /dev/shm.
fn templates() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let configs = [
        Config::new(8).arena_bytes(0).wakeups(false),
        Config::new(16).arena_bytes(64 << 10).max_message(4096),
        Config::new(8)
            .broadcast(3)
            .arena_bytes(32 << 10)
            .max_message(2048),
        Config::new(4)
            .broadcast(2)
            .arena_bytes(0)
            .overflow(fusion_ring::Overflow::Overwrite),
        Config::new(2)
            .arena_bytes(8 << 10)
            .max_message(200)
            .timestamps(false)
            .wakeups(false),
    ];
    for cfg in configs {
        let name = fuzz_name();
        let ring = FusionRing::create(&name, &cfg).expect("template create");
        let cap = ring.as_ring().capacity();
        let mut buf = vec![0u8; ring.max_message()];
        for i in 0..cap as u64 + 2 {
            let len = if i % 2 == 0 || ring.max_message() <= INLINE_MAX {
                (i as usize * 7) % (INLINE_MAX + 1)
            } else {
                100 + (i as usize * 997) % (ring.max_message() - 100)
            };
            let mut m = vec![0u8; len];
            fill(i, &mut m);
            if ring
                .send_with_priority(&m, PriorityClass::ALL[i as usize % 5])
                .is_err()
            {
                // Full: make room (this frees blocks onto the free lists).
                let _ = ring.recv(&mut buf);
                let _ = ring.recv(&mut buf);
            }
        }
        let _ = ring.recv(&mut buf);
        let bytes = std::fs::read(shm_path(&name)).expect("template read");
        assert_eq!(&bytes[..8], MAGIC);
        out.push(bytes);
    }
    out
}

#[derive(Debug, Clone)]
enum Case {
    /// A template with words overwritten.
    Mutated {
        template: usize,
        edits: Vec<Edit>,
        ops_seed: u64,
    },
    /// Random bytes the size of a template (or not), with some of the
    /// template's header fields restored so validation goes further.
    Arbitrary {
        template: usize,
        size: usize,
        fill_seed: u64,
        /// Bit i: restore header field i (see HEADER_FIELDS).
        keep_header: u32,
        ops_seed: u64,
    },
}

mod strategies {
    use super::{Case, Edit, Region, Val};
    use proptest::prelude::*;

    pub fn region() -> impl Strategy<Value = Region> {
        // Weighted towards the words the protocol reads.
        prop_oneof![
            3 => Just(Region::Header),
            2 => Just(Region::Control),
            1 => Just(Region::Sync),
            3 => Just(Region::SlotSeq),
            3 => Just(Region::SlotMeta),
            2 => Just(Region::SlotBody),
            2 => Just(Region::Participant),
            2 => Just(Region::ArenaCtrl),
            3 => Just(Region::BlockHeader),
            1 => Just(Region::Anywhere),
        ]
    }

    pub fn val() -> impl Strategy<Value = Val> {
        prop_oneof![
            Just(Val::Zero),
            Just(Val::One),
            Just(Val::Max),
            any::<u16>().prop_map(Val::Small),
            any::<u64>().prop_map(Val::Any),
            any::<i8>().prop_map(Val::Near),
            any::<u8>().prop_map(Val::Flip),
            any::<bool>().prop_map(Val::Lap),
            (0u16..64).prop_map(Val::Link),
        ]
    }

    pub fn edit() -> impl Strategy<Value = Edit> {
        (region(), any::<u32>(), any::<u8>(), val()).prop_map(|(region, index, field, val)| Edit {
            region,
            index,
            field,
            val,
        })
    }

    pub fn case(templates: usize) -> impl Strategy<Value = Case> {
        let mutated = (
            0..templates,
            proptest::collection::vec(edit(), 1..8),
            any::<u64>(),
        )
            .prop_map(|(template, edits, ops_seed)| Case::Mutated {
                template,
                edits,
                ops_seed,
            });
        let arbitrary = (
            0..templates,
            prop_oneof![8 => Just(0usize), 1 => 1usize..64 * 1024],
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(|(template, size, fill_seed, keep_header, ops_seed)| {
                Case::Arbitrary {
                    template,
                    size,
                    fill_seed,
                    keep_header,
                    ops_seed,
                }
            });
        prop_oneof![3 => mutated, 1 => arbitrary]
    }
}

/// The bytes of a case's file, and what was done to them.
fn build(case: &Case, templates: &[Vec<u8>]) -> (Vec<u8>, String) {
    match case {
        Case::Mutated {
            template, edits, ..
        } => {
            let mut b = templates[*template].clone();
            let mut log = String::new();
            for e in edits {
                // Resolve against the header as it is now: an edited offset
                // moves the later edits, like a peer's would.
                let lay = Lay::from_bytes(&b);
                let (off, w, old, new) = apply_to_bytes(&mut b, &lay, e);
                log.push_str(&format!(
                    "[{:?} @{off} u{}: {old:#x} -> {new:#x}] ",
                    e.region,
                    w * 8
                ));
            }
            (b, log)
        }
        Case::Arbitrary {
            template,
            size,
            fill_seed,
            keep_header,
            ..
        } => {
            let t = &templates[*template];
            // Size 0 = the template's (so the size check can pass); else
            // at least a page (below that, opening waits 500 ms for a
            // creator: covered once by `open_fuzz_small_files`).
            let size = if *size == 0 { t.len() } else { PAGE + size };
            let mut rng = Rng::new(*fill_seed);
            let mut b: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            // Half the time: the whole valid header but for two fields (so
            // most of these open and run on a random body); else a random
            // subset of fields.
            let n = HEADER_FIELDS.len() as u32;
            let keep = |i: u32| {
                if keep_header & (1 << 31) != 0 {
                    i != keep_header % n && i != (keep_header >> 8) % n
                } else {
                    keep_header & (1 << i) != 0
                }
            };
            for (i, &(off, w)) in HEADER_FIELDS.iter().enumerate() {
                if keep(i as u32) {
                    b[off..off + w].copy_from_slice(&t[off..off + w]);
                }
            }
            if b[..8] == [0; 8] {
                b[0] = 1; // a zero magic waits 500 ms for a creator
            }
            (
                b,
                format!("random {size} bytes, header fields kept {keep_header:#x}"),
            )
        }
    }
}

/// Open-fuzz totals, printed by the child as one `OPENFUZZ` line.
#[derive(Default)]
struct OpenTotals {
    cases: u64,
    opened: u64,
    rejected: BTreeMap<&'static str, u64>,
    listed: u64,
    ops: Tally,
}

fn one_case(
    case: &Case,
    templates: &[Vec<u8>],
    totals: &mut OpenTotals,
    context: &Mutex<String>,
    beat: &Arc<Beat>,
) {
    let (bytes, what) = build(case, templates);
    let name = fuzz_name();
    *context.lock().unwrap() = format!("{name}: {case:?} => {what}");
    beat.tick();
    let _file = ShmName::adopt(name.clone());
    std::fs::write(shm_path(&name), &bytes).expect("write case file");
    totals.cases += 1;

    // The three constructors and inspect read the same file: same verdict.
    let ring = Ring::open(&name);
    let ultra = UltraFastRing::open(&name);
    let fusion = FusionRing::open(&name);
    let inspecting = !skipped().iter().any(|s| s == "inspect");
    let verdict = |r: Result<(), &RingError>| r.map_err(|e| e.to_string());
    let expected = verdict(ring.as_ref().map(drop));
    assert_eq!(
        verdict(ultra.as_ref().map(drop)),
        expected,
        "UltraFastRing::open vs Ring::open"
    );
    assert_eq!(
        verdict(fusion.as_ref().map(drop)),
        expected,
        "FusionRing::open vs Ring::open"
    );
    if inspecting {
        let info = RingInfo::read(&name);
        assert_eq!(
            verdict(info.as_ref().map(drop)),
            expected,
            "RingInfo::read vs Ring::open"
        );
        if let Ok(info) = &info {
            assert_eq!(info.capacity, ring.as_ref().unwrap().capacity() as u64);
        }
    }

    match ring {
        Err(e) => *totals.rejected.entry(outcome_name(&e)).or_default() += 1,
        Ok(ring) => {
            totals.opened += 1;
            let ops_seed = match case {
                Case::Mutated { ops_seed, .. } | Case::Arbitrary { ops_seed, .. } => *ops_seed,
            };
            let mut rng = Rng::new(ops_seed);
            // Exercise through each constructor's handle in turn.
            let handles = [
                FusionRing::from(ring),
                FusionRing::from(ultra.expect("checked").as_ring().clone()),
                fusion.expect("checked"),
            ];
            for f in handles {
                let mut w = Worker::new(f, Some(name.clone()), rng.next(), Role::Any, beat.clone());
                for _ in 0..12 {
                    w.step();
                }
                totals.ops.merge(&w.tally);
            }
            if inspecting {
                let _ = RingInfo::read(&name);
            }
        }
    }
    if totals.cases % 32 == 1 {
        let listed = inspect::list().expect("inspect::list");
        let has_magic = bytes[..8] == MAGIC[..];
        assert_eq!(
            listed.contains(&format!("/{name}")),
            has_magic,
            "inspect::list lists a file iff it starts with the magic"
        );
        totals.listed += 1;
    }
}

/// Child: runs proptest rounds of open-fuzz cases until the budget is spent.
#[test]
fn child_open_fuzz() {
    let Some(args) = child_args(role!(child_open_fuzz)) else {
        return;
    };
    use proptest::test_runner::{Config as PtConfig, RngSeed, TestCaseError, TestRunner};
    let templates = templates();
    let context = Arc::new(Mutex::new(String::new()));
    let beat = Arc::new(Beat::default());
    let dog = start_watchdog(vec![("open fuzz".into(), beat.clone())], context.clone());
    let totals = Mutex::new(OpenTotals::default());
    let start = Instant::now();
    let budget = Duration::from_millis(args.millis);
    let mut round = 0;
    while round == 0 || start.elapsed() < budget {
        let seed = episode_seed(args.seed, round);
        println!("open-fuzz round {round}: seed {seed:#x}");
        let mut runner = TestRunner::new(PtConfig {
            cases: 128,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed),
            max_shrink_iters: 2048,
            ..PtConfig::default()
        });
        let result = runner.run(&strategies::case(templates.len()), |case| {
            let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                one_case(&case, &templates, &mut t, &context, &beat)
            }));
            r.map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                TestCaseError::fail(format!("panicked: {msg}"))
            })
        });
        if let Err(e) = result {
            panic!("open fuzz failed (round seed {seed:#x}; FRING_FUZZ_SEED={seed:#x} reruns it as round 0):\n{e}");
        }
        round += 1;
    }
    dog.stop();
    let t = totals.into_inner().unwrap();
    let rejected: String = t
        .rejected
        .iter()
        .map(|(k, v)| format!(" rejected_{k}={v}"))
        .collect();
    println!(
        "OPENFUZZ rounds={round} cases={} opened={} listed={}{rejected} {}",
        t.cases,
        t.opened,
        t.listed,
        t.ops.line()
    );
    assert!(
        t.ops.unexpected.is_empty(),
        "unexpected errors: {:?}",
        t.ops.unexpected
    );
}

/// Runs the open fuzzer in a child under a watchdog.
#[test]
fn open_fuzz_mutated_and_arbitrary_segments() {
    if is_any_child() {
        return;
    }
    let _serial = serial();
    let seed = base_seed();
    let millis = long_run().map_or(0, |d| d.as_millis() as u64);
    let limit = Duration::from_millis(millis) + Duration::from_secs(120);
    let kid = spawn_child(role!(child_open_fuzz), "", seed, millis, 0);
    let results = wait_all(vec![kid], limit);
    let (_, verdict, out) = &results[0];
    if let Some(v) = verdict {
        panic!(
            "open fuzz child (base seed {seed:#x}) ended with {v}; its output:\n{}",
            tail(out, 80)
        );
    }
    let line = last_line(out, "OPENFUZZ").unwrap_or_else(|| panic!("no summary:\n{out}"));
    println!("open fuzz, base seed {seed:#x}: {line}");
    let t = parse_line(line);
    // The fuzzer reached both outcomes: mutated segments that still open
    // (and were exercised) and ones that are rejected.
    assert!(t["opened"] > 0, "no case opened: {line}");
    assert!(t["cases"] > t["opened"], "no case rejected: {line}");
    assert!(
        t["ops"] > 0 && t.get("ok").copied().unwrap_or(0) > 0,
        "{line}"
    );
}

/// Files smaller than the header page: rejected (after the creator grace).
#[test]
fn open_fuzz_small_files() {
    for size in [0usize, 100, PAGE - 1] {
        let name = fuzz_name();
        let _file = ShmName::adopt(name.clone());
        let mut b = vec![0xA5u8; size];
        if size >= 8 {
            b[..8].copy_from_slice(MAGIC);
        }
        std::fs::write(shm_path(&name), &b).unwrap();
        let r = Ring::open(&name);
        assert!(
            matches!(r, Err(RingError::Corrupt(_))),
            "size {size}: {r:?}"
        );
        if size == 100 {
            assert!(matches!(RingInfo::read(&name), Err(RingError::Corrupt(_))));
        }
    }
}
