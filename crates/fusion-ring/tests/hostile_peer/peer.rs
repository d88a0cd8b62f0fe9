//! What a hostile peer writes: a target (region + index + field) and a
//! value, shared by the proptest mutations and the live scribbler; and the
//! peer's side of a segment, a `MAP_SHARED` view written with atomics.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use testkit::names::shm_path;

use crate::layout_mirror::{
    le64, read_le, Lay, ARENA_FREE, ARENA_SWEEPER, CURSOR, HEADER_FIELDS, LANES, MAX_CLASSES,
    PARTICIPANT_SIZE, SLOT,
};
use crate::operations::skipped;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
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
pub enum Val {
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
pub struct Edit {
    pub region: Region,
    pub index: u32,
    pub field: u8,
    pub val: Val,
}

/// Resolves a target to `(offset, width)`, inside `0..lay.total`.
/// `word` reads the current u64 at an offset (for the arena's bump pointer).
pub fn resolve(lay: &Lay, e: &Edit, word: impl Fn(usize) -> u64) -> (usize, usize) {
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
                    (CURSOR, 8),
                ][f % 10];
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

pub fn apply_val(val: Val, cur: u64, width: usize, capacity: usize) -> u64 {
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
pub fn tame(region: Region, v: u64) -> u64 {
    if region == Region::Control && skipped().iter().any(|s| s == "huge_heads") {
        v & ((1 << 62) - 1)
    } else {
        v
    }
}
/// Applies an edit to a copy of a segment; returns `(offset, width, old, new)`.
pub fn apply_to_bytes(b: &mut [u8], lay: &Lay, e: &Edit) -> (usize, usize, u64, u64) {
    let (off, width) = resolve(lay, e, |o| le64(b, o));
    let old = read_le(b, off, width);
    let new = tame(e.region, apply_val(e.val, old, width, lay.capacity));
    b[off..off + width].copy_from_slice(&new.to_le_bytes()[..width]);
    (off, width, old, new)
}

// ===========================================================================
// A MAP_SHARED view of a segment file, written with atomics (the peer's side)

pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain shared memory, only accessed through atomics.
unsafe impl Send for SharedMap {}
// SAFETY: as above.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    pub fn open(name: &str) -> std::io::Result<Self> {
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

    pub fn load(&self, off: usize, width: usize) -> u64 {
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

    pub fn store(&self, off: usize, width: usize, v: u64) {
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

    pub fn lay(&self) -> Lay {
        Lay::from_words(|o| self.load(o, 8), self.len)
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: exactly what mmap returned.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}
