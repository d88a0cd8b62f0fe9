//! The fuzzers' harness: seeds and budgets from the environment, segment
//! names, the child processes every fuzz run happens in (with their
//! parameters, logs and verdicts) and the watchdog inside them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::child::{describe, is_child, ChildGuard, Output};
use testkit::names::unique_name;
use testkit::rng::{mix, GOLDEN};
use testkit::watchdog::{stacks_of, Beat, Watchdog};

use crate::operations::{op_name, ALL_OPS};

// ===========================================================================
// Seeds, budgets, names

/// The in-suite base seed (any value reproduces a run: see the module docs).
const DEFAULT_SEED: u64 = 0x5EED_F022_0000_0001;

pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

pub fn base_seed() -> u64 {
    std::env::var("FRING_FUZZ_SEED")
        .ok()
        .map(|s| parse_u64(&s).unwrap_or_else(|| panic!("FRING_FUZZ_SEED={s:?} is not a number")))
        .unwrap_or(DEFAULT_SEED)
}

/// `Some(total)` when a human asked for a long run.
pub fn long_run() -> Option<Duration> {
    std::env::var("FRING_FUZZ_SECS").ok().map(|s| {
        Duration::from_secs_f64(
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("FRING_FUZZ_SECS={s:?} is not a number")),
        )
    })
}

/// Seed of episode `k` of a run with base seed `base` (episode 0 = base).
pub fn episode_seed(base: u64, k: u64) -> u64 {
    if k == 0 {
        base
    } else {
        mix(base ^ k.wrapping_mul(GOLDEN))
    }
}

/// The prefix of every segment the fuzzers make (see [`remove_segments_of`]).
const PREFIX: &str = "fring-fuzz";

/// `fring-fuzz-<pid>-<n>`: the name of a segment under /dev/shm.
pub fn fuzz_name() -> String {
    unique_name(PREFIX)
}

// ===========================================================================
// The watchdog in the child: names the stalled operation, prints stacks

/// An operation (all are bounded: at most a few ms of timeout) that has not
/// finished after this long is stuck.
const STALL: Duration = Duration::from_secs(10);

/// Watches heartbeats; on a stall prints who, what, the context and the
/// stacks, then exits with `EXIT_STALL`.
pub fn start_watchdog(beats: Vec<(String, Arc<Beat>)>, context: Arc<Mutex<String>>) -> Watchdog {
    Watchdog::start(beats, context, STALL, |op| {
        ALL_OPS.get(op).map_or("?".into(), |&op| op_name(op))
    })
}

// ===========================================================================
// Child processes: parameters, spawning, verdicts (the parent's watchdog)

const NAME_VAR: &str = "FRING_FUZZ_NAME";
const SEED_VAR: &str = "FRING_FUZZ_CHILD_SEED";
const MILLIS_VAR: &str = "FRING_FUZZ_MILLIS";
const STYLE_VAR: &str = "FRING_FUZZ_STYLE";

/// The child's parameters if this process was spawned to play `role`.
pub struct ChildArgs {
    pub name: String,
    pub seed: u64,
    pub millis: u64,
    pub style: u64,
}

pub fn child_args(role: &str) -> Option<ChildArgs> {
    if !is_child(role) {
        return None;
    }
    let var = |v: &str| std::env::var(v).unwrap_or_default();
    Some(ChildArgs {
        name: var(NAME_VAR),
        seed: parse_u64(&var(SEED_VAR)).expect("child: seed"),
        millis: parse_u64(&var(MILLIS_VAR)).expect("child: millis"),
        style: parse_u64(&var(STYLE_VAR)).unwrap_or(0),
    })
}

/// The test's own name, without its module path.
fn short(role: &str) -> &str {
    role.rsplit("::").next().unwrap_or(role)
}

/// Spawns `role` (a `role!`) with its parameters, its output going to a
/// log file (removed with the child's guard).
pub fn spawn_child(
    role: &'static str,
    name: &str,
    seed: u64,
    millis: u64,
    style: u64,
) -> ChildGuard {
    let log = std::env::temp_dir().join(format!("{}-{}.log", fuzz_name(), short(role)));
    ChildGuard::spawn_with(
        role,
        &[
            (NAME_VAR, name.to_string()),
            (SEED_VAR, seed.to_string()),
            (MILLIS_VAR, millis.to_string()),
            (STYLE_VAR, style.to_string()),
            ("RUST_BACKTRACE", "1".to_string()),
        ],
        Output::File(log),
    )
}

/// Waits for every child; kills (after printing their stacks) those still
/// running at `limit`. Returns `(role, verdict, output)`; verdict `None` =
/// success.
pub fn wait_all(
    mut kids: Vec<ChildGuard>,
    limit: Duration,
) -> Vec<(String, Option<String>, String)> {
    let start = Instant::now();
    let mut verdicts: Vec<Option<String>> = vec![None; kids.len()];
    loop {
        let mut running = 0;
        for (k, verdict) in kids.iter_mut().zip(&mut verdicts) {
            if verdict.is_some() {
                continue;
            }
            match k.try_wait() {
                Some(st) => *verdict = Some(describe(st)),
                None => running += 1,
            }
        }
        if running == 0 {
            break;
        }
        if start.elapsed() > limit {
            for (k, verdict) in kids.iter_mut().zip(&mut verdicts) {
                if verdict.is_none() {
                    let stacks = stacks_of(k.id());
                    k.kill();
                    *verdict = Some(format!(
                        "still running after {limit:?}: killed; its stacks:\n{stacks}"
                    ));
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for k in &kids {
        remove_segments_of(k.id());
    }
    kids.iter_mut()
        .zip(verdicts)
        .map(|(k, verdict)| {
            let verdict = verdict.filter(|v| v != "success");
            (short(k.role()).to_string(), verdict, k.output())
        })
        .collect()
}

/// Removes the segments a (killed or crashed) child left in /dev/shm.
fn remove_segments_of(pid: u32) {
    let prefix = format!("{PREFIX}-{pid}-");
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The last `n` lines of a child's output.
pub fn tail(out: &str, n: usize) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The rest of the last line holding `prefix` (e.g. `TALLY`).
pub fn last_line<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    // (The test harness prints "test NAME ... " before the child's output.)
    out.lines()
        .rev()
        .find_map(|l| l.find(prefix).map(|i| l[i + prefix.len()..].trim()))
}

/// `key=value ...` (a `Tally` line) back into numbers.
pub fn parse_line(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}
