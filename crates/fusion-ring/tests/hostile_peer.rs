//! Hostile-peer fuzzing: the other side of shared memory is untrusted.
//!
//! Whatever a peer writes into the segment, our side may report
//! `RingError::Corrupt` (or hand out garbage message bytes), but must never
//! panic, crash (SIGSEGV / SIGBUS), read out of bounds, loop or wait forever.
//!
//! - `open_fuzz_*`: proptest builds files under `/dev/shm` from arbitrary
//!   bytes and from real segments with words overwritten (header fields,
//!   control block, slots, participants, arena), opens them with the three
//!   ring types and `inspect`, and runs a bounded mix of operations.
//! - `live_scribbling_*`: a producer and a consumer run on a live ring while
//!   a third party maps the same file and writes random words at random
//!   offsets and times (threads of one child, or three child processes).
//! - `regression_*`: reduced reproducers of what the fuzzers found.
//!
//! Every fuzz run happens in a child process (this binary, re-run with
//! `FRING_FUZZ_ROLE=<child test>`) under a watchdog in the parent, so a
//! hang or a crash is a test failure that names the seed. Inside a child a
//! second watchdog names the operation that stalled and prints the stacks
//! (with gdb, when installed).
//!
//! Environment: `FRING_FUZZ_SEED` (base seed, decimal or 0x-hex; every
//! episode prints its own seed, which reproduces it as the base seed),
//! `FRING_FUZZ_SECS` (run each fuzz test for that long instead of the short
//! in-suite budget), `FRING_FUZZ_SKIP` (comma-separated operation names as
//! `op_name` spells them, e.g. `arena_usage`, to leave out, and
//! `too_small_check` to drop that check, `huge_heads` to keep head values
//! below 2^62: to look past a known bug). See docs/FUZZING.md.

#![cfg(not(fusion_ring_loom))]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fusion_ring::inspect::{self, RingInfo};
use fusion_ring::{
    allocate_zerocopy_buffer, send_batch, send_inline, send_zerocopy, BatchMessage, Config,
    FusionRing, InlineMessage, Payload, PriorityClass, Ring, RingError, RingSync, UltraFastRing,
    INLINE_MAX,
};

// ===========================================================================
// Seeds, budgets, names

/// The in-suite base seed (any value reproduces a run: see the module docs).
const DEFAULT_SEED: u64 = 0x5EED_F022_0000_0001;

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn base_seed() -> u64 {
    std::env::var("FRING_FUZZ_SEED")
        .ok()
        .map(|s| parse_u64(&s).unwrap_or_else(|| panic!("FRING_FUZZ_SEED={s:?} is not a number")))
        .unwrap_or(DEFAULT_SEED)
}

/// `Some(total)` when a human asked for a long run.
fn long_run() -> Option<Duration> {
    std::env::var("FRING_FUZZ_SECS").ok().map(|s| {
        Duration::from_secs_f64(
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("FRING_FUZZ_SECS={s:?} is not a number")),
        )
    })
}

/// Seed of episode `k` of a run with base seed `base` (episode 0 = base).
fn episode_seed(base: u64, k: u64) -> u64 {
    if k == 0 {
        base
    } else {
        common::mix(base ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// `fring-fuzz-<pid>-<n>`: the name of a segment under /dev/shm.
fn unique_name() -> String {
    common::child::unique_name("fring-fuzz")
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Removes `/dev/shm/<name>` on drop.
struct ShmFile(String);

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

// The fuzz tests spawn processes; on 2 cores they run one at a time
// (`serial`).
use common::child::serial;

// ===========================================================================
// A small deterministic RNG (splitmix64)

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// splitmix64 (the same sequence as before it used `common::mix`).
    fn next(&mut self) -> u64 {
        let z = self.0;
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        common::mix(z)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: usize, hi_incl: usize) -> usize {
        lo + self.below((hi_incl - lo + 1) as u64) as usize
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn priority(&mut self) -> PriorityClass {
        PriorityClass::ALL[self.below(5) as usize]
    }
}

// ===========================================================================
// The segment layout, mirrored from src/layout.rs (checked against a real
// segment by `layout_mirror_matches_a_real_segment`)

const PAGE: usize = 4096;
const SLOT: usize = 64;
const MAGIC: &[u8; 8] = b"FRING\0v\x01";
/// Header fields: (offset, width in bytes).
const HEADER_FIELDS: [(usize, usize); 18] = [
    (0, 8),   // magic
    (8, 4),   // layout_version
    (12, 4),  // header_size
    (16, 8),  // layout_hash
    (24, 8),  // total_size
    (32, 8),  // capacity
    (40, 4),  // slot_size
    (44, 4),  // max_participants
    (48, 8),  // control_offset
    (56, 8),  // participants_offset
    (64, 8),  // slots_offset
    (72, 8),  // arena_offset
    (80, 8),  // arena_len
    (88, 8),  // created_unix_ns
    (96, 4),  // creator_pid
    (100, 4), // flags
    (104, 8), // ticks_per_ns_bits
    (112, 8), // max_message
];
/// ControlBlock is 16 lines; the SyncBlock follows it.
const CONTROL_SIZE: usize = 16 * 64;
const CONSUMER_HEAD: usize = 128;
/// A participant entry: identity line, send-claim line, receive-claim line,
/// then 5 lanes of counters (320 B each).
const LANES: usize = 3 * 64;
const PARTICIPANT_SIZE: usize = LANES + 5 * 320;
const MAX_PARTICIPANTS: usize = 64;
/// ArenaControl: bump line, 24 free-list head lines, the sweep lock and 23
/// reserved words; the block area starts on the next page.
const MAX_CLASSES: usize = 24;
const ARENA_FREE: usize = 64;
const ARENA_SWEEPER: usize = 64 + MAX_CLASSES * 64;
const ARENA_CTRL_PAGE: usize = PAGE;
const BLOCK_HEADER: usize = 64;

/// Where the regions of a segment lie, read from its header.
#[derive(Debug, Clone, Copy, Default)]
struct Lay {
    total: usize,
    capacity: usize,
    ctrl: usize,
    sync: usize,
    participants: usize,
    slots: usize,
    arena: usize,
    arena_len: usize,
    blocks: usize,
    blocks_len: usize,
    max_message: usize,
}

fn le64(b: &[u8], off: usize) -> u64 {
    off.checked_add(8)
        .and_then(|end| b.get(off..end))
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

impl Lay {
    /// From header words (unchecked: callers clamp every offset to `total`).
    fn from_words(word: impl Fn(usize) -> u64, total: usize) -> Self {
        let arena_len = word(80) as usize;
        let arena = word(72) as usize;
        let ctrl = word(48) as usize;
        Lay {
            total,
            capacity: (word(32) as usize).clamp(1, 1 << 24),
            ctrl,
            sync: ctrl.wrapping_add(CONTROL_SIZE),
            participants: word(56) as usize,
            slots: word(64) as usize,
            arena,
            arena_len,
            blocks: arena.wrapping_add(ARENA_CTRL_PAGE),
            blocks_len: arena_len.saturating_sub(ARENA_CTRL_PAGE),
            max_message: word(112) as usize,
        }
    }

    fn from_bytes(b: &[u8]) -> Self {
        Self::from_words(|o| le64(b, o), b.len())
    }

    fn has_arena(&self) -> bool {
        self.arena_len > ARENA_CTRL_PAGE
    }
}

// ===========================================================================
// What a hostile peer writes: a target (region + index + field) and a value.
// Shared by the proptest mutations and the live scribbler.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Header,
    Control,
    Sync,
    SlotSeq,
    SlotMeta,
    SlotBody,
    Participant,
    ArenaCtrl,
    BlockHeader,
    Anywhere,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Zero,
    One,
    Max,
    Small(u16),
    Any(u64),
    /// The current value plus a small signed delta.
    Near(i8),
    /// The current value with one bit flipped.
    Flip(u8),
    /// Plus or minus the ring capacity (sequence words of another lap).
    Lap(bool),
    /// `tag << 32 | (index + 1)` with the current tag: a free-list link.
    Link(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edit {
    region: Region,
    index: u32,
    field: u8,
    val: Val,
}

/// Resolves a target to `(offset, width)`, inside `0..lay.total`.
/// `word` reads the current u64 at an offset (for the arena's bump pointer).
fn resolve(lay: &Lay, e: &Edit, word: impl Fn(usize) -> u64) -> (usize, usize) {
    let i = e.index as usize;
    let f = e.field as usize;
    let cap = lay.capacity.max(1);
    let slot = |k: usize| lay.slots.wrapping_add((k % cap) * SLOT);
    let region = match e.region {
        Region::ArenaCtrl | Region::BlockHeader if !lay.has_arena() => Region::Anywhere,
        r => r,
    };
    let (off, width) = match region {
        Region::Header => HEADER_FIELDS[f % HEADER_FIELDS.len()],
        Region::Control => (lay.ctrl.wrapping_add(64 * (f % 4)), 8),
        Region::Sync => (lay.sync.wrapping_add([0, 4, 64, 68][f % 4]), 4),
        Region::SlotSeq => (slot(i), 8),
        Region::SlotMeta => match f % 4 {
            0 => (slot(i).wrapping_add(16), 8),
            1 => (slot(i).wrapping_add(16), 4), // length
            2 => (slot(i).wrapping_add(20), 1), // kind
            _ => (slot(i).wrapping_add(21), 1), // priority
        },
        Region::SlotBody => (slot(i).wrapping_add([8, 24, 32, 40, 48, 56][f % 6]), 8),
        Region::Participant => {
            let entry = lay.participants.wrapping_add((i % 8) * PARTICIPANT_SIZE);
            if f < 40 {
                // identity line: state, role, pid (u32), start time, arena
                // claim; then the send and receive claim records (start, end)
                let (o, w) = [
                    (0, 4),
                    (4, 4),
                    (8, 4),
                    (16, 8),
                    (24, 8),
                    (64, 8),
                    (72, 8),
                    (128, 8),
                    (136, 8),
                ][f % 9];
                (entry.wrapping_add(o), w)
            } else {
                let lane = (i >> 8) % 5;
                (entry.wrapping_add(LANES + lane * 320 + (f % 40) * 8), 8)
            }
        }
        Region::ArenaCtrl => {
            let c = i % MAX_CLASSES;
            match f % 3 {
                0 => (lay.arena, 8),
                1 => (lay.arena.wrapping_add(ARENA_FREE + 64 * c), 8),
                _ => (lay.arena.wrapping_add(ARENA_SWEEPER + 8 * c), 8),
            }
        }
        Region::BlockHeader => {
            let carved = ((word(lay.arena) & !63) as usize).min(lay.blocks_len);
            let blocks = (carved / 64).max(1);
            let b = lay.blocks.wrapping_add((i % blocks) * 64);
            let (o, w) = [(0, 4), (4, 4), (8, 4), (12, 4), (16, 8), (24, 4)][f % 6];
            (b.wrapping_add(o), w)
        }
        Region::Anywhere => (i % lay.total.max(1), 1),
    };
    if off.checked_add(width).is_none_or(|end| end > lay.total) {
        // An offset from a scribbled header: fall back to a byte in range.
        return (i % lay.total.max(1), 1);
    }
    (off, width)
}

fn apply_val(val: Val, cur: u64, width: usize, capacity: usize) -> u64 {
    let mask = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let v = match val {
        Val::Zero => 0,
        Val::One => 1,
        Val::Max => u64::MAX,
        Val::Small(n) => n as u64,
        Val::Any(x) => x,
        Val::Near(d) => cur.wrapping_add(d as i64 as u64),
        Val::Flip(b) => cur ^ (1u64 << (b as u32 % (8 * width as u32))),
        Val::Lap(up) => {
            if up {
                cur.wrapping_add(capacity as u64)
            } else {
                cur.wrapping_sub(capacity as u64)
            }
        }
        Val::Link(n) => (cur & !0xffff_ffff) | (n as u64 + 1),
    };
    v & mask
}

/// With `FRING_FUZZ_SKIP=huge_heads`, values written to the control block
/// stay below 2^62 (heads near u64::MAX overflow position arithmetic: see
/// `regression_*_head_at_u64_max`).
fn tame(region: Region, v: u64) -> u64 {
    if region == Region::Control && skipped().iter().any(|s| s == "huge_heads") {
        v & ((1 << 62) - 1)
    } else {
        v
    }
}

fn read_le(b: &[u8], off: usize, width: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..width].copy_from_slice(&b[off..off + width]);
    u64::from_le_bytes(w)
}

/// Applies an edit to a copy of a segment; returns `(offset, width, old, new)`.
fn apply_to_bytes(b: &mut [u8], lay: &Lay, e: &Edit) -> (usize, usize, u64, u64) {
    let (off, width) = resolve(lay, e, |o| le64(b, o));
    let old = read_le(b, off, width);
    let new = tame(e.region, apply_val(e.val, old, width, lay.capacity));
    b[off..off + width].copy_from_slice(&new.to_le_bytes()[..width]);
    (off, width, old, new)
}

// ===========================================================================
// A MAP_SHARED view of a segment file, written with atomics (the peer's side)

struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain shared memory, only accessed through atomics.
unsafe impl Send for SharedMap {}
// SAFETY: as above.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    fn open(name: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shm_path(name))?;
        let len = file.metadata()?.len() as usize;
        // SAFETY: a fresh shared mapping of the whole file; we never truncate
        // it, and access it only through atomics below.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }?;
        Ok(SharedMap {
            ptr: ptr.cast(),
            len,
        })
    }

    fn load(&self, off: usize, width: usize) -> u64 {
        assert!(off + width <= self.len && off.is_multiple_of(width));
        // SAFETY: in bounds and aligned (asserted); atomics of any value.
        unsafe {
            let p = self.ptr.add(off);
            match width {
                8 => (*p.cast::<AtomicU64>()).load(Ordering::Relaxed),
                4 => (*p.cast::<AtomicU32>()).load(Ordering::Relaxed) as u64,
                _ => (*p.cast::<AtomicU8>()).load(Ordering::Relaxed) as u64,
            }
        }
    }

    fn store(&self, off: usize, width: usize, v: u64) {
        assert!(off + width <= self.len && off.is_multiple_of(width));
        // SAFETY: as in `load`.
        unsafe {
            let p = self.ptr.add(off);
            match width {
                8 => (*p.cast::<AtomicU64>()).store(v, Ordering::Relaxed),
                4 => (*p.cast::<AtomicU32>()).store(v as u32, Ordering::Relaxed),
                _ => (*p.cast::<AtomicU8>()).store(v as u8, Ordering::Relaxed),
            }
        }
    }

    fn lay(&self) -> Lay {
        Lay::from_words(|o| self.load(o, 8), self.len)
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: exactly what mmap returned.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

// ===========================================================================
// Our side: a bounded mix of ring operations, with a tally of outcomes

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Send,
    SendLarge,
    Loan,
    SendBatch,
    BatchFn,
    InlineFn,
    ZeroCopyFn,
    SendTimeout,
    UltraSend,
    UltraBatch,
    Recv,
    RecvSmall,
    RecvMeta,
    RecvZc,
    RecvBatch,
    RecvTimeout,
    RecvZcTimeout,
    UltraRecv,
    UltraRecvBatch,
    WaitNotEmpty,
    WaitNotFull,
    Forward,
    DropHeld,
    Stats,
    UltraStats,
    RingStats,
    ArenaUsage,
    Len,
    Reopen,
    Inspect,
    Recover,
}

/// Every operation, in declaration order (`Op as usize` indexes it).
const ALL_OPS: [Op; 31] = [
    Op::Send,
    Op::SendLarge,
    Op::Loan,
    Op::SendBatch,
    Op::BatchFn,
    Op::InlineFn,
    Op::ZeroCopyFn,
    Op::SendTimeout,
    Op::UltraSend,
    Op::UltraBatch,
    Op::Recv,
    Op::RecvSmall,
    Op::RecvMeta,
    Op::RecvZc,
    Op::RecvBatch,
    Op::RecvTimeout,
    Op::RecvZcTimeout,
    Op::UltraRecv,
    Op::UltraRecvBatch,
    Op::WaitNotEmpty,
    Op::WaitNotFull,
    Op::Forward,
    Op::DropHeld,
    Op::Stats,
    Op::UltraStats,
    Op::RingStats,
    Op::ArenaUsage,
    Op::Len,
    Op::Reopen,
    Op::Inspect,
    Op::Recover,
];

const SEND_OPS: [Op; 11] = [
    Op::Send,
    Op::SendLarge,
    Op::Loan,
    Op::SendBatch,
    Op::BatchFn,
    Op::InlineFn,
    Op::ZeroCopyFn,
    Op::SendTimeout,
    Op::UltraSend,
    Op::UltraBatch,
    Op::WaitNotFull,
];
const RECV_OPS: [Op; 12] = [
    Op::Recv,
    Op::RecvSmall,
    Op::RecvMeta,
    Op::RecvZc,
    Op::RecvBatch,
    Op::RecvTimeout,
    Op::RecvZcTimeout,
    Op::UltraRecv,
    Op::UltraRecvBatch,
    Op::WaitNotEmpty,
    Op::Forward,
    Op::DropHeld,
];
const LOOK_OPS: [Op; 6] = [
    Op::Recover,
    Op::Stats,
    Op::UltraStats,
    Op::RingStats,
    Op::ArenaUsage,
    Op::Len,
];

fn op_name(op: Op) -> String {
    let s = format!("{op:?}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Operations named in `FRING_FUZZ_SKIP`.
fn skipped() -> &'static [String] {
    static SKIP: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("FRING_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
    Any,
}

fn pick_op(rng: &mut Rng, role: Role) -> Op {
    for _ in 0..16 {
        let r = rng.below(100);
        let op = if r < 2 {
            if rng.pct(50) {
                Op::Reopen
            } else {
                Op::Inspect
            }
        } else if r < 10 {
            LOOK_OPS[rng.below(LOOK_OPS.len() as u64) as usize]
        } else {
            let sends = match role {
                Role::Producer => true,
                Role::Consumer => rng.pct(3),
                Role::Any => rng.pct(50),
            };
            if sends {
                SEND_OPS[rng.below(SEND_OPS.len() as u64) as usize]
            } else {
                RECV_OPS[rng.below(RECV_OPS.len() as u64) as usize]
            }
        };
        if !skipped().contains(&op_name(op)) {
            return op;
        }
    }
    Op::Len
}

/// Outcome counts of one worker.
#[derive(Debug, Default, Clone)]
struct Tally {
    ops: u64,
    outcomes: BTreeMap<&'static str, u64>,
    /// Messages received whole (by any receive op).
    received: u64,
    /// Of those of at least 8 bytes: content as the producer wrote it, or not.
    intact: u64,
    garbled: u64,
    /// Errors no data operation should ever return.
    unexpected: Vec<String>,
}

fn outcome_name(e: &RingError) -> &'static str {
    match e {
        RingError::Full => "full",
        RingError::Empty => "empty",
        RingError::TooLarge { .. } => "too_large",
        RingError::BufferTooSmall { .. } => "too_small",
        RingError::Timeout => "timeout",
        RingError::Disconnected => "disconnected",
        RingError::ArenaExhausted { .. } => "exhausted",
        RingError::InvalidConfig { .. } => "no_arena",
        RingError::Corrupt(_) => "corrupt",
        RingError::VersionMismatch { .. } => "version",
        _ => "unexpected",
    }
}

impl Tally {
    fn note<T>(&mut self, op: Op, r: &Result<T, RingError>) {
        self.ops += 1;
        let name = match r {
            Ok(_) => "ok",
            Err(e) => outcome_name(e),
        };
        *self.outcomes.entry(name).or_default() += 1;
        if let (Err(e), "unexpected") = (r, name) {
            if self.unexpected.len() < 8 {
                self.unexpected.push(format!("{}: {e:?}", op_name(op)));
            }
        }
    }

    fn message(&mut self, bytes: &[u8]) {
        self.received += 1;
        if bytes.len() >= 8 {
            let tag = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            let mut expect = vec![0u8; bytes.len()];
            common::fill(tag, &mut expect);
            if expect == bytes {
                self.intact += 1;
            } else {
                self.garbled += 1;
            }
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.ops += o.ops;
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.received += o.received;
        self.intact += o.intact;
        self.garbled += o.garbled;
        self.unexpected.extend(o.unexpected.iter().cloned());
    }

    fn get(&self, k: &str) -> u64 {
        self.outcomes.get(k).copied().unwrap_or(0)
    }

    /// `key=value ...`, parsed back by `parse_line`.
    fn line(&self) -> String {
        let mut s = format!(
            "ops={} received={} intact={} garbled={}",
            self.ops, self.received, self.intact, self.garbled
        );
        for (k, v) in &self.outcomes {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

fn parse_line(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Heartbeat of a worker for the in-process watchdog: the number of
/// operations started and the one under way.
#[derive(Default)]
struct Beat {
    count: AtomicU64,
    op: AtomicUsize,
}

/// One handle on a ring playing a role, with payloads it holds on to.
struct Worker {
    f: FusionRing,
    u: UltraFastRing,
    name: Option<String>,
    rng: Rng,
    role: Role,
    held: Vec<Payload>,
    tally: Tally,
    beat: Arc<Beat>,
    next_tag: u64,
    big: Vec<u8>,
}

impl Worker {
    fn new(f: FusionRing, name: Option<String>, seed: u64, role: Role, beat: Arc<Beat>) -> Self {
        let u = UltraFastRing::from(f.as_ring().clone());
        let big = vec![0u8; f.max_message().max(64)];
        Worker {
            f,
            u,
            name,
            rng: Rng::new(seed),
            role,
            held: Vec::new(),
            tally: Tally::default(),
            beat,
            next_tag: common::mix(seed),
            big,
        }
    }

    fn message(&mut self, len: usize) -> Vec<u8> {
        self.next_tag = common::mix(self.next_tag);
        let mut v = vec![0u8; len];
        common::fill(self.next_tag, &mut v);
        v
    }

    /// A length for a message: mostly valid, sometimes one past the limit.
    fn len(&mut self, inline: bool) -> usize {
        let max = if inline {
            INLINE_MAX
        } else {
            self.f.max_message()
        };
        match self.rng.below(16) {
            0 => max + 1,
            1 => max,
            2..=7 => self.rng.range(0, INLINE_MAX.min(max)),
            _ => self.rng.range(0, max),
        }
    }

    fn timeout(&mut self) -> Duration {
        Duration::from_micros(500 + self.rng.below(2500))
    }

    fn hold(&mut self, p: Payload) {
        if self.held.len() < 4 && self.rng.pct(30) {
            if self.rng.pct(30) {
                // A clone is a second reference to the same block.
                self.held.push(p.clone());
            }
            self.held.push(p);
        }
    }

    fn step(&mut self) {
        let op = pick_op(&mut self.rng, self.role);
        self.beat.op.store(op as usize, Ordering::Relaxed);
        self.beat.count.fetch_add(1, Ordering::Relaxed);
        self.run(op);
    }

    fn run(&mut self, op: Op) {
        let max = self.f.max_message();
        match op {
            Op::Send | Op::SendLarge => {
                let len = self.len(op == Op::Send);
                let data = self.message(len);
                let prio = self.rng.priority();
                let r = self.f.send_with_priority(&data, prio);
                self.tally.note(op, &r);
            }
            Op::Loan | Op::ZeroCopyFn => {
                let len = self.len(false);
                let fill = self.message(len);
                let send = self.rng.pct(70);
                let prio = self.rng.priority();
                let loan = if op == Op::Loan {
                    self.f.loan(len)
                } else {
                    allocate_zerocopy_buffer(&self.f, len)
                };
                let r = match loan {
                    Ok(mut loan) => {
                        assert_eq!(loan.len(), len, "a loan has the length asked for");
                        // Writes every byte: a loan outside the arena faults.
                        loan.copy_from_slice(&fill);
                        if !send {
                            drop(loan);
                            Ok(())
                        } else if op == Op::Loan {
                            self.f.send_loan(loan, prio).map_err(|e| e.error)
                        } else {
                            send_zerocopy(&self.f, loan).map_err(|e| e.error)
                        }
                    }
                    Err(e) => Err(e),
                };
                self.tally.note(op, &r);
            }
            Op::SendBatch | Op::BatchFn | Op::UltraBatch => {
                let k = self.rng.range(1, 8);
                let inline = op != Op::SendBatch || self.rng.pct(50);
                let msgs: Vec<Vec<u8>> = (0..k)
                    .map(|_| {
                        let l = self.len(inline);
                        self.message(l)
                    })
                    .collect();
                let prio = self.rng.priority();
                let r = if op == Op::UltraBatch {
                    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
                    self.u.send_batch(&refs, prio)
                } else {
                    let batch: Vec<BatchMessage<'_>> =
                        msgs.iter().map(|m| BatchMessage::new(m, prio)).collect();
                    if op == Op::SendBatch {
                        self.f.send_batch(&batch)
                    } else {
                        send_batch(&self.f, &batch)
                    }
                };
                if let Ok(n) = r {
                    assert!(n <= k, "{op:?} sent {n} of {k} messages");
                }
                self.tally.note(op, &r);
            }
            Op::InlineFn => {
                let l = self.len(true);
                let data = self.message(l);
                let r = send_inline(&self.u, &data);
                self.tally.note(op, &r);
            }
            Op::SendTimeout => {
                let l = self.len(false);
                let data = self.message(l);
                let t = self.timeout();
                let r = if self.rng.pct(50) {
                    self.f.send_with_timeout(&data, t)
                } else {
                    let prio = self.rng.priority();
                    self.f.send_until(&data, prio, Some(Instant::now() + t))
                };
                self.tally.note(op, &r);
            }
            Op::UltraSend => {
                let l = self.len(true);
                let data = self.message(l);
                let prio = self.rng.priority();
                let r = self.u.send_fast(&data, prio);
                self.tally.note(op, &r);
            }
            Op::Recv | Op::RecvMeta | Op::RecvTimeout => {
                let mut buf = std::mem::take(&mut self.big);
                let r = match op {
                    Op::Recv => self.f.recv(&mut buf),
                    Op::RecvMeta => self.f.recv_with_meta(&mut buf).map(|(n, _, _)| n),
                    _ => {
                        let t = self.timeout();
                        self.f.recv_with_timeout(&mut buf, t)
                    }
                };
                if let Ok(n) = r {
                    assert!(n <= buf.len(), "{op:?}: length {n} > buffer {}", buf.len());
                    self.tally.message(&buf[..n]);
                }
                self.big = buf;
                self.tally.note(op, &r);
            }
            Op::RecvSmall | Op::UltraRecv => {
                let size = match self.rng.below(4) {
                    0 => INLINE_MAX,
                    1 => 64,
                    _ => self.rng.range(0, 48),
                };
                let mut buf = vec![0u8; size];
                let r = if op == Op::RecvSmall {
                    self.f.recv(&mut buf)
                } else {
                    self.u.recv_fast(&mut buf).map(|(n, _, _)| n)
                };
                if let Ok(n) = r {
                    assert!(n <= size, "{op:?}: length {n} > buffer {size}");
                    self.tally.message(&buf[..n]);
                }
                if let Err(RingError::BufferTooSmall { got, .. }) = &r {
                    assert_eq!(*got, size, "{op:?}: BufferTooSmall names the buffer");
                }
                self.check_too_small(op, &r);
                self.tally.note(op, &r);
            }
            Op::RecvZc | Op::RecvZcTimeout => {
                let r = if op == Op::RecvZc {
                    self.f.recv_zerocopy()
                } else {
                    let t = self.timeout();
                    self.f.recv_zerocopy_timeout(Some(t))
                };
                self.tally.note(op, &r);
                if let Ok(p) = r {
                    self.check_payload(&p, max);
                    self.hold(p);
                }
            }
            Op::RecvBatch => {
                let k = self.rng.range(1, 8);
                let mut out = Vec::new();
                let r = self.f.recv_batch(&mut out, k);
                if let Ok(n) = r {
                    assert!(
                        n <= k && out.len() == n,
                        "recv_batch: {n} / {k} / {}",
                        out.len()
                    );
                }
                self.tally.note(op, &r);
                for p in out {
                    self.check_payload(&p, max);
                    self.hold(p);
                }
            }
            Op::UltraRecvBatch => {
                let k = self.rng.range(1, 8);
                let mut out = vec![InlineMessage::default(); k];
                let r = self.u.recv_batch(&mut out);
                self.check_too_small(op, &r);
                if let Ok(n) = r {
                    assert!(n <= k, "ultra recv_batch took {n} into {k}");
                    for m in &out[..n] {
                        assert!(m.len() <= INLINE_MAX && m.as_bytes().len() == m.len());
                        self.tally.message(m.as_bytes());
                    }
                }
                self.tally.note(op, &r);
            }
            Op::WaitNotEmpty | Op::WaitNotFull => {
                let t = self.timeout();
                let sync = RingSync::new(&self.f);
                let r = if op == Op::WaitNotEmpty {
                    sync.wait_not_empty_timeout(t)
                } else {
                    sync.wait_not_full_timeout(t)
                };
                if self.rng.pct(10) {
                    sync.wake_readers();
                    sync.wake_writers();
                }
                self.tally.note(op, &r);
            }
            Op::Forward => {
                if self.held.is_empty() {
                    return;
                }
                let i = self.rng.below(self.held.len() as u64) as usize;
                let prio = self.rng.priority();
                let r = self.f.forward(&self.held[i], prio);
                self.tally.note(op, &r);
            }
            Op::DropHeld => {
                if !self.held.is_empty() {
                    let i = self.rng.below(self.held.len() as u64) as usize;
                    self.held.swap_remove(i);
                }
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Stats => {
                let s = self.f.stats();
                for l in &s.lanes {
                    std::hint::black_box((l.timed(), l.avg_latency(), l.latency_percentile(0.99)));
                }
                std::hint::black_box(&s);
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::UltraStats => {
                let s = self.u.stats();
                std::hint::black_box(&s);
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::RingStats => {
                let r = self.f.as_ring();
                std::hint::black_box((r.stats(), r.lane_stats()));
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::ArenaUsage => {
                std::hint::black_box(self.f.as_ring().arena_usage());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Len => {
                let r = self.f.as_ring();
                let len = r.len();
                assert!(len <= r.capacity(), "len {len} > capacity {}", r.capacity());
                std::hint::black_box(r.is_empty());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Recover => {
                // Reclaims what "dead" peers left: a scribbled pid or start
                // time makes a live peer look dead.
                std::hint::black_box(self.f.as_ring().recover());
                self.tally.note::<()>(op, &Ok(()));
            }
            Op::Reopen => {
                let Some(name) = self.name.clone() else {
                    return;
                };
                let r = FusionRing::open(&name);
                if let Ok(g) = &r {
                    // One operation on the fresh handle.
                    let mut buf = [0u8; 64];
                    let _ = if self.rng.pct(50) {
                        g.send(b"reopened").map(drop)
                    } else {
                        g.recv(&mut buf).map(drop)
                    };
                }
                self.tally.note(op, &r.map(drop));
            }
            Op::Inspect => {
                let Some(name) = self.name.clone() else {
                    return;
                };
                let r = RingInfo::read(&name);
                if let Ok(info) = &r {
                    std::hint::black_box((info.has_live_participants(), info.is_stale()));
                }
                self.tally.note(op, &r.map(drop));
            }
        }
    }

    /// A message the ring may hold is at most its largest message: a
    /// `BufferTooSmall` asking for more names a scribbled length, which
    /// should be `Corrupt` (see `regression_buffer_too_small_...`).
    fn check_too_small<T>(&self, op: Op, r: &Result<T, RingError>) {
        if skipped().iter().any(|s| s == "too_small_check") {
            return;
        }
        if let Err(RingError::BufferTooSmall { needed, .. }) = r {
            let max = self.f.max_message().max(INLINE_MAX);
            assert!(
                *needed <= max,
                "{op:?}: BufferTooSmall asks for {needed} bytes, the ring's largest message is {max}"
            );
        }
    }

    fn check_payload(&mut self, p: &Payload, max: usize) {
        assert!(
            p.len() <= max.max(INLINE_MAX),
            "payload of {} bytes > max message {max}",
            p.len()
        );
        // Read every byte: a payload outside the mapping faults here.
        let sum = p.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        std::hint::black_box(sum);
        self.tally.message(p);
    }
}

// ===========================================================================
// Watchdogs: in the child (names the stalled operation, prints stacks) and
// in the parent (kills a child that overruns, reports signals)

/// `gdb`'s view of every thread of `pid`, if gdb is installed.
fn stacks_of(pid: u32) -> String {
    match Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt 8"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            // Only the backtrace lines are of interest.
            text.lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("(no stacks: gdb: {e})"),
    }
}

/// Exit code of a child whose watchdog found a stalled operation.
const EXIT_STALL: i32 = 86;
/// An operation (all are bounded: at most a few ms of timeout) that has not
/// finished after this long is stuck.
const STALL: Duration = Duration::from_secs(10);

/// Watches heartbeats; on a stall prints who, what, the context and the
/// stacks, then exits with `EXIT_STALL`.
fn start_watchdog(
    beats: Vec<(String, Arc<Beat>)>,
    context: Arc<Mutex<String>>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last: Vec<(u64, Instant)> = beats
            .iter()
            .map(|(_, b)| (b.count.load(Ordering::Relaxed), Instant::now()))
            .collect();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            for (i, (who, b)) in beats.iter().enumerate() {
                let c = b.count.load(Ordering::Relaxed);
                if c != last[i].0 {
                    last[i] = (c, Instant::now());
                } else if last[i].1.elapsed() > STALL && !done.load(Ordering::Relaxed) {
                    let op = ALL_OPS
                        .get(b.op.load(Ordering::Relaxed))
                        .map_or("?".into(), |&op| op_name(op));
                    let ctx = context.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!(
                        "STALL: {who} has been in operation {op} for {STALL:?} ({c} operations started)\ncontext: {ctx}\nstacks:\n{}",
                        stacks_of(std::process::id())
                    );
                    std::process::exit(EXIT_STALL);
                }
            }
        }
    })
}

const ROLE_VAR: &str = "FRING_FUZZ_ROLE";
const NAME_VAR: &str = "FRING_FUZZ_NAME";
const SEED_VAR: &str = "FRING_FUZZ_CHILD_SEED";
const MILLIS_VAR: &str = "FRING_FUZZ_MILLIS";
const STYLE_VAR: &str = "FRING_FUZZ_STYLE";

/// The child's parameters if this process was spawned to play `role`.
struct ChildArgs {
    name: String,
    seed: u64,
    millis: u64,
    style: u64,
}

fn child_args(role: &str) -> Option<ChildArgs> {
    if std::env::var(ROLE_VAR).ok().as_deref() != Some(role) {
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

/// A child that was spawned, with its output going to a file.
struct Spawned {
    role: &'static str,
    child: Child,
    log: PathBuf,
    reaped: Option<String>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn spawn_child(role: &'static str, name: &str, seed: u64, millis: u64, style: u64) -> Spawned {
    let log = std::env::temp_dir().join(format!("{}-{role}.log", unique_name()));
    let out = File::create(&log).expect("child log file");
    let err = out.try_clone().expect("child log file");
    let child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", role, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(NAME_VAR, name)
        .env(SEED_VAR, seed.to_string())
        .env(MILLIS_VAR, millis.to_string())
        .env(STYLE_VAR, style.to_string())
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {role}: {e}"));
    Spawned {
        role,
        child,
        log,
        reaped: None,
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => "success".into(),
        (Some(EXIT_STALL), _) => "a stalled operation (watchdog)".into(),
        (Some(c), _) => format!("exit code {c} (a panic is 101)"),
        (_, Some(s)) => format!("signal {s} (SIGSEGV=11, SIGBUS=7, SIGABRT=6)"),
        _ => format!("{status}"),
    }
}

/// Waits for every child; kills (after printing their stacks) those still
/// running at `limit`. Returns `(role, verdict, output)`; verdict `None` =
/// success.
fn wait_all(mut kids: Vec<Spawned>, limit: Duration) -> Vec<(String, Option<String>, String)> {
    let start = Instant::now();
    loop {
        let mut running = 0;
        for k in kids.iter_mut().filter(|k| k.reaped.is_none()) {
            match k.child.try_wait().expect("try_wait") {
                Some(st) => k.reaped = Some(describe(st)),
                None => running += 1,
            }
        }
        if running == 0 {
            break;
        }
        if start.elapsed() > limit {
            for k in kids.iter_mut().filter(|k| k.reaped.is_none()) {
                let stacks = stacks_of(k.child.id());
                let _ = k.child.kill();
                let _ = k.child.wait();
                k.reaped = Some(format!(
                    "still running after {limit:?}: killed; its stacks:\n{stacks}"
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for k in &kids {
        remove_segments_of(k.child.id());
    }
    kids.iter()
        .map(|k| {
            let verdict = k.reaped.clone().filter(|v| v != "success");
            let out = std::fs::read_to_string(&k.log).unwrap_or_default();
            (k.role.to_string(), verdict, out)
        })
        .collect()
}

/// Removes the segments a (killed or crashed) child left in /dev/shm.
fn remove_segments_of(pid: u32) {
    let prefix = format!("fring-fuzz-{pid}-");
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
fn tail(out: &str, n: usize) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The rest of the last line holding `prefix` (e.g. `TALLY`).
fn last_line<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    // (The test harness prints "test NAME ... " before the child's output.)
    out.lines()
        .rev()
        .find_map(|l| l.find(prefix).map(|i| l[i + prefix.len()..].trim()))
}

// ===========================================================================
// The mirror of the layout is right (else the fuzzers aim at the wrong words)

#[test]
fn layout_mirror_matches_a_real_segment() {
    let name = unique_name();
    let cfg = Config::new(16).arena_bytes(64 << 10).max_message(4096);
    let ring = FusionRing::create(&name, &cfg).expect("create");
    ring.send(b"inline message").expect("send inline");
    ring.send(&[7u8; 1000]).expect("send zero-copy");
    let b = std::fs::read(shm_path(&name)).expect("read segment");
    let lay = Lay::from_bytes(&b);
    assert_eq!(&b[..8], MAGIC);
    assert_eq!(lay.total, b.len());
    assert_eq!(lay.capacity, 16);
    assert_eq!(lay.ctrl, PAGE);
    assert_eq!(lay.slots + 16 * SLOT, lay.total, "slots end the file");
    assert_eq!(lay.arena_len, ARENA_CTRL_PAGE + (64 << 10));
    assert_eq!(lay.max_message, 4096);
    assert!(lay.participants >= lay.sync + 128);
    assert!(lay.arena >= lay.participants + MAX_PARTICIPANTS * PARTICIPANT_SIZE);
    // Two messages claimed and published: head 2, slot 0 holds position 0
    // (sequence 1), slot 1 position 1; nothing received yet.
    assert_eq!(le64(&b, lay.ctrl), 2, "producer_head");
    assert_eq!(le64(&b, lay.ctrl + CONSUMER_HEAD), 0, "consumer_head");
    assert_eq!(le64(&b, lay.slots), 1, "slot 0 sequence");
    assert_eq!(read_le(&b, lay.slots + 16, 4), 14, "slot 0 length");
    assert_eq!(b[lay.slots + 20], 1, "slot 0 kind inline");
    assert_eq!(b[lay.slots + 21], PriorityClass::Normal as u8);
    assert_eq!(&b[lay.slots + 24..lay.slots + 38], b"inline message");
    assert_eq!(b[lay.slots + SLOT + 20], 2, "slot 1 kind zero-copy");
    // The 1000-byte message took a class-4 block (1024 B + header) at 0,
    // and the sender then allocated the next one ahead (a spare: count
    // u32::MAX - 1) right after it; the bump word's low bits name the last
    // block's class + 1.
    assert_eq!(le64(&b, lay.arena), (2 * (64 + 1024)) | (4 + 1), "bump");
    assert_eq!(le64(&b, lay.arena + ARENA_SWEEPER), 0, "sweep lock");
    assert_eq!(
        read_le(&b, lay.blocks + 64 + 1024, 4),
        u32::MAX as u64 - 1,
        "spare"
    );
    assert_eq!(le64(&b, lay.slots + SLOT + 24), 0, "descriptor offset");
    assert_eq!(read_le(&b, lay.blocks, 4), 1, "refcount");
    assert_eq!(read_le(&b, lay.blocks + 8, 4), 1000, "block length");
    assert_eq!(read_le(&b, lay.blocks + 12, 4), 4, "block class");
    assert_eq!(b[lay.blocks + BLOCK_HEADER], 7, "payload");
    // Receiving frees the block onto free list 4 (head = index 0 + 1).
    let mut buf = vec![0u8; 4096];
    ring.recv(&mut buf).expect("recv inline");
    ring.recv(&mut buf).expect("recv block");
    let b = std::fs::read(shm_path(&name)).expect("read segment");
    assert_eq!(le64(&b, lay.ctrl + CONSUMER_HEAD), 2);
    assert_eq!(le64(&b, lay.arena + ARENA_FREE + 4 * 64) & 0xffff_ffff, 1);
    // Our participant entry (1) counted the sends in lane Normal.
    let lane = lay.participants + PARTICIPANT_SIZE + LANES + PriorityClass::Normal.lane() * 320;
    assert_eq!(le64(&b, lane), 2, "sent");
    assert_eq!(le64(&b, lane + 64), 2, "received");
}

#[test]
fn operation_table_is_complete_and_in_order() {
    for (i, &op) in ALL_OPS.iter().enumerate() {
        assert_eq!(op as usize, i, "{op:?}");
    }
    assert_eq!(op_name(Op::UltraRecvBatch), "ultra_recv_batch");
}

// ===========================================================================
// (a) Opening arbitrary segments

/// Templates: real segments with messages queued, blocks in use and blocks
/// freed, copied out of /dev/shm.
fn templates() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let configs = [
        Config::new(8).arena_bytes(0).wakeups(false),
        Config::new(16).arena_bytes(64 << 10).max_message(4096),
        Config::new(2)
            .arena_bytes(8 << 10)
            .max_message(200)
            .timestamps(false)
            .wakeups(false),
    ];
    for cfg in configs {
        let name = unique_name();
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
            common::fill(i, &mut m);
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
    use super::*;
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
    let name = unique_name();
    *context.lock().unwrap() = format!("{name}: {case:?} => {what}");
    beat.count.fetch_add(1, Ordering::Relaxed);
    let _file = ShmFile(name.clone());
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
    let Some(args) = child_args("child_open_fuzz") else {
        return;
    };
    use proptest::test_runner::{Config as PtConfig, RngSeed, TestCaseError, TestRunner};
    let templates = templates();
    let context = Arc::new(Mutex::new(String::new()));
    let beat = Arc::new(Beat::default());
    let done = Arc::new(AtomicBool::new(false));
    let dog = start_watchdog(
        vec![("open fuzz".into(), beat.clone())],
        context.clone(),
        done.clone(),
    );
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
    done.store(true, Ordering::Relaxed);
    dog.join().unwrap();
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
    if std::env::var(ROLE_VAR).is_ok() {
        return;
    }
    let _serial = serial();
    let seed = base_seed();
    let millis = long_run().map_or(0, |d| d.as_millis() as u64);
    let limit = Duration::from_millis(millis) + Duration::from_secs(120);
    let kid = spawn_child("child_open_fuzz", "", seed, millis, 0);
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
        let name = unique_name();
        let _file = ShmFile(name.clone());
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

// ===========================================================================
// (b) Live scribbling

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

    /// Waits until messages flow (consumer head >= 16), then scribbles until
    /// `deadline`. `Err` if nothing flowed within 10 s.
    fn run(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<(), String> {
        let wait_until = Instant::now() + Duration::from_secs(10);
        while self.map.load(self.lay.ctrl + CONSUMER_HEAD, 8) < 16 {
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

/// Ring configurations of the live episodes.
fn live_config(k: u64) -> Config {
    match k % 4 {
        0 => Config::new(64).arena_bytes(256 << 10).max_message(16 << 10),
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

/// Sets `stop` if the thread unwinds, so the others end early.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Child: producer, consumer and scribbler threads on the named ring.
#[test]
fn child_live_threads() {
    let Some(args) = child_args("child_live_threads") else {
        return;
    };
    let deadline = Instant::now() + Duration::from_millis(args.millis);
    let stop = AtomicBool::new(false);
    let beats = [Arc::new(Beat::default()), Arc::new(Beat::default())];
    let done = Arc::new(AtomicBool::new(false));
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
        done.clone(),
    );
    let mut scribbler = Scribbler::new(&args.name, common::mix(args.seed ^ 3), args.style);
    let (p, c, s) = std::thread::scope(|sc| {
        let spawn_worker = |role, k: u64, beat: Arc<Beat>| {
            let (name, stop) = (&args.name, &stop);
            sc.spawn(move || {
                let _guard = StopOnPanic(stop);
                live_worker(name, common::mix(args.seed ^ k), role, deadline, beat, stop)
            })
        };
        let p = spawn_worker(Role::Producer, 1, beats[0].clone());
        let c = spawn_worker(Role::Consumer, 2, beats[1].clone());
        let s = sc.spawn(|| scribbler.run(deadline, &stop));
        (p.join(), c.join(), s.join())
    });
    done.store(true, Ordering::Relaxed);
    dog.join().unwrap();
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
    let done = Arc::new(AtomicBool::new(false));
    let context = Arc::new(Mutex::new(format!(
        "ring {} seed {:#x}",
        args.name, args.seed
    )));
    let dog = start_watchdog(
        vec![(role_name.into(), beat.clone())],
        context,
        done.clone(),
    );
    let t = live_worker(&args.name, args.seed, role, deadline, beat, &stop);
    done.store(true, Ordering::Relaxed);
    dog.join().unwrap();
    println!("TALLY {}", t.line());
    assert!(
        t.unexpected.is_empty(),
        "unexpected errors: {:?}",
        t.unexpected
    );
}

#[test]
fn child_live_producer() {
    child_live_process("child_live_producer", Role::Producer);
}

#[test]
fn child_live_consumer() {
    child_live_process("child_live_consumer", Role::Consumer);
}

#[test]
fn child_live_scribbler() {
    let Some(args) = child_args("child_live_scribbler") else {
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
        let cfg_k = rng.below(4);
        let style = rng.below(5);
        let name = unique_name();
        let ring = FusionRing::create(&name, &live_config(cfg_k)).expect("create the episode ring");
        let kids = if threads {
            vec![spawn_child(
                "child_live_threads",
                &name,
                seed,
                episode_ms,
                style,
            )]
        } else {
            vec![
                spawn_child(
                    "child_live_consumer",
                    &name,
                    common::mix(seed ^ 2),
                    episode_ms,
                    style,
                ),
                spawn_child(
                    "child_live_producer",
                    &name,
                    common::mix(seed ^ 1),
                    episode_ms,
                    style,
                ),
                spawn_child(
                    "child_live_scribbler",
                    &name,
                    common::mix(seed ^ 3),
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
    if std::env::var(ROLE_VAR).is_ok() {
        return;
    }
    live_episodes(true);
}

#[test]
fn live_scribbling_processes() {
    if std::env::var(ROLE_VAR).is_ok() {
        return;
    }
    live_episodes(false);
}

// ===========================================================================
// Regressions: reduced reproducers of what the fuzzers found. Each writes a
// few words into a live segment, as a peer would, then makes one call. The
// comments describe the failure as found (at 04d1ddf); all five were fixed
// by c43d2a3 and 5b7655c.

/// A named ring, with a mapping of its file for playing the peer.
fn victim(cfg: &Config) -> (FusionRing, SharedMap, Lay, String) {
    let name = unique_name();
    let ring = FusionRing::create(&name, cfg).expect("create");
    let map = SharedMap::open(&name).expect("map");
    let lay = map.lay();
    (ring, map, lay, name)
}

fn lane_word(lay: &Lay, entry: usize, lane: usize, word: usize) -> usize {
    lay.participants + entry * PARTICIPANT_SIZE + LANES + lane * 320 + word * 8
}

/// Peer sets `consumer_head` to u64::MAX: `claim_recv` computes `pos + 1`
/// (protocol.rs, `claim_recv`), which overflows: a panic in debug builds.
/// (Release builds wrap and report `Corrupt`.)
#[test]
fn regression_consumer_head_at_u64_max() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap();
    map.store(lay.ctrl + CONSUMER_HEAD, 8, u64::MAX);
    let r = ring.recv(&mut [0u8; 64]);
    assert!(matches!(r, Err(RingError::Corrupt(_))), "{r:?}");
}

/// Peer sets `producer_head` to u64::MAX and the slot it maps to looks free
/// for that position: `claim_send` computes `pos + count` (protocol.rs,
/// `claim_send`, the CAS) and `publish` `pos + 1`: overflow panics in debug
/// builds.
#[test]
fn regression_producer_head_at_u64_max() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    map.store(lay.ctrl, 8, u64::MAX);
    map.store(lay.slots + 7 * SLOT, 8, u64::MAX); // slot (MAX & 7): "free for MAX"
    let r = ring.send(b"x");
    assert!(
        matches!(r, Ok(()) | Err(RingError::Corrupt(_) | RingError::Full)),
        "{r:?}"
    );
}

/// Peer sets a lane counter of the retired entry (0) to u64::MAX: summing it
/// with our entry's counter (`LaneStats::add`, stats.rs, `self.sent +=
/// o.sent`) overflows: `stats()` and `RingInfo::read` panic in debug builds.
#[test]
fn regression_lane_counter_sum_over_participants() {
    let (ring, map, lay, name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap(); // our entry (1): lane Normal sent = 1
    map.store(
        lane_word(&lay, 0, PriorityClass::Normal.lane(), 0),
        8,
        u64::MAX,
    );
    let s = ring.stats();
    let info = RingInfo::read(&name).expect("inspect");
    // Any value is acceptable for a scribbled counter; not a panic.
    std::hint::black_box((s.sent, info.lanes));
}

/// Peer sets lane High's `sent` (of our own entry) to u64::MAX: the lanes
/// are summed with `Iterator::sum` (ultra.rs `UltraFastRing::stats`,
/// fusion.rs `FusionRing::stats`, ring.rs `Ring::stats`), which overflows:
/// a panic in debug builds.
#[test]
fn regression_lane_counter_sum_over_lanes() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap(); // lane Normal: sent = 1, inline_sent = 1
    for word in [0, 2] {
        // sent, inline_sent of lane High
        map.store(
            lane_word(&lay, 1, PriorityClass::High.lane(), word),
            8,
            u64::MAX,
        );
    }
    let ultra = UltraFastRing::from(ring.as_ring().clone());
    std::hint::black_box(ultra.stats());
    std::hint::black_box(ring.as_ring().stats());
    std::hint::black_box(ring.stats());
}

/// Peer sets the arena's sweep lock to u64::MAX (no pid): `recover` must
/// neither crash nor give up reclaiming for good. (This word was once the
/// `carved[10]` counter, which overflowed `Arena::usage` at u64::MAX.)
#[test]
fn regression_arena_sweep_lock_at_u64_max() {
    let cfg = Config::new(8).arena_bytes(256 << 10).max_message(64 << 10);
    let (ring, map, lay, name) = victim(&cfg);
    map.store(lay.arena + ARENA_SWEEPER, 8, u64::MAX);
    std::hint::black_box(ring.as_ring().arena_usage());
    std::hint::black_box(ring.stats());
    std::hint::black_box(ring.as_ring().recover());
    assert_eq!(
        map.load(lay.arena + ARENA_SWEEPER, 8),
        0,
        "lock taken, released"
    );
    std::hint::black_box(RingInfo::read(&name).expect("inspect").arena);
}

/// Peer makes a free-list block point to itself: `Arena::usage` walks the
/// list with `FreeList::len_bounded` (arena/free_list.rs), which must stay
/// bounded (once it was bounded by a per-class counter in the segment, which
/// a peer could set to u64::MAX: `arena_usage()`, `FusionRing::stats()` and
/// `RingInfo::read` (`fring stat`) looped ~2^64 times); `recover` must not
/// hang on it either. Run in a child under a watchdog.
#[test]
fn regression_arena_usage_free_list_cycle_hangs() {
    if std::env::var(ROLE_VAR).is_ok() {
        return;
    }
    let kid = spawn_child("child_arena_usage_free_list_cycle", "", 0, 0, 0);
    let (_, verdict, out) = wait_all(vec![kid], Duration::from_secs(10)).remove(0);
    if let Some(v) = verdict {
        panic!(
            "arena_usage() on a cyclic free list: {v}\n{}",
            tail(&out, 40)
        );
    }
}

#[test]
fn child_arena_usage_free_list_cycle() {
    if child_args("child_arena_usage_free_list_cycle").is_none() {
        return;
    }
    let cfg = Config::new(8).arena_bytes(256 << 10).max_message(64 << 10);
    let (ring, map, lay, _name) = victim(&cfg);
    ring.send(&[1u8; 1000]).unwrap(); // a class-4 block at offset 0
    ring.recv(&mut vec![0u8; 64 << 10]).unwrap(); // freed: free[4] -> block 0
    assert_eq!(
        map.load(lay.arena + ARENA_FREE + 4 * 64, 8) & 0xffff_ffff,
        1
    );
    map.store(lay.blocks + 16, 8, 1); // block 0's next = block 0
    let usage = ring.as_ring().arena_usage();
    println!("arena_usage() returned: {usage:?}");
    let recovered = ring.as_ring().recover();
    println!("recover() returned: {recovered:?}");
}

/// Peer sets the length of a queued inline message to 0xFFFF_FFFF: a
/// receive with a small buffer reports `BufferTooSmall { needed:
/// 4294967295 }`, more than the ring's largest message (`claim_recv`,
/// protocol.rs, returns the slot length unchecked; ring.rs `recv_one` maps
/// it). A caller that grows its buffer to `needed` and retries allocates
/// 4 GiB; the length should be reported as `Corrupt` instead.
#[test]
fn regression_buffer_too_small_names_a_scribbled_length() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"0123456789").unwrap();
    map.store(lay.slots + 16, 4, 0xFFFF_FFFF);
    let mut small = [0u8; 16];
    match ring.recv(&mut small) {
        Err(RingError::BufferTooSmall { needed, .. }) => assert!(
            needed <= ring.max_message(),
            "BufferTooSmall names {needed} bytes, the ring's largest message is {}",
            ring.max_message()
        ),
        r => assert!(matches!(r, Err(RingError::Corrupt(_))), "{r:?}"),
    }
}
