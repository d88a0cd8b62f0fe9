//! Read-only views of named rings for tools (`fring ls`, `fring stat`):
//! opening a ring this way registers no participant and changes nothing.

use std::sync::Arc;

use crate::error::{Result, RingError};
use crate::handle::participant::{self, ROLE_RECEIVER, ROLE_SENDER};
use crate::handle::shared::SharedRing;
use crate::handle::stats::{aggregate, LaneStats};
use crate::lockfree::arena::{Arena, ArenaUsage};
use crate::shm::segment::Segment;

/// A participant registered in a ring's segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Process id.
    pub pid: u32,
    /// Whether it has sent / received so far.
    pub sender: bool,
    /// Whether it has received so far.
    pub receiver: bool,
    /// Whether that process is still running (same pid and start time).
    pub alive: bool,
}

/// A snapshot of a named ring, read from its segment.
///
/// ```
/// use fusion_ring::{inspect::RingInfo, Config, FusionRing};
/// let name = format!("doc-inspect-{}", std::process::id());
/// let ring = FusionRing::create(&name, &Config::new(16))?;
/// ring.send(b"one")?;
/// let info = RingInfo::read(&name)?;
/// assert_eq!((info.capacity, info.queued), (16, 1));
/// assert!(info.participants.iter().any(|p| p.alive && p.sender));
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RingInfo {
    /// `/name`.
    pub name: String,
    /// Slots.
    pub capacity: u64,
    /// Messages claimed by producers and not yet by consumers.
    pub queued: u64,
    /// Producer head position.
    pub head: u64,
    /// Consumer head position.
    pub tail: u64,
    /// Largest message.
    pub max_message: u64,
    /// Arena use (zero without an arena).
    pub arena: ArenaUsage,
    /// Per-lane counters.
    pub lanes: [LaneStats; 5],
    /// Registered participants.
    pub participants: Vec<Participant>,
    /// Handles registered beyond the participant table (not identifiable).
    pub unlisted_handles: u32,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// Clock ticks per nanosecond measured by the creator.
    pub ticks_per_ns: f64,
}

impl RingInfo {
    /// Reads the ring named `name` (validating it like `open` does).
    pub fn read(name: &str) -> Result<Self> {
        let ring = SharedRing::new(Arc::new(Segment::open_named(name)?));
        let segment = ring.segment();
        let g = *segment.geometry();
        let (head, tail) = ring.core().positions();
        let participants = participant::registered(segment.participants())
            .map(|(pid, role, alive)| Participant {
                pid,
                sender: role & ROLE_SENDER != 0,
                receiver: role & ROLE_RECEIVER != 0,
                alive,
            })
            .collect();
        Ok(RingInfo {
            name: segment.label().to_string(),
            capacity: g.capacity as u64,
            queued: head.saturating_sub(tail).min(g.capacity as u64),
            head,
            tail,
            max_message: g.max_message as u64,
            arena: ring.arena().map(Arena::usage).unwrap_or_default(),
            lanes: aggregate(segment.participants()),
            participants,
            unlisted_handles: participant::unidentified(segment.participants()),
            creator_pid: segment.creator_pid(),
            ticks_per_ns: segment.ticks_per_ns(),
        })
    }

    /// Whether any registered participant is still running (handles that
    /// found the participant table full count as running: they cannot be
    /// told apart).
    pub fn has_live_participants(&self) -> bool {
        self.unlisted_handles > 0 || self.participants.iter().any(|p| p.alive)
    }

    /// Whether no running process has a handle on the ring: its creator
    /// and every participant have exited (or died). A stale named ring can
    /// be removed (`fring rm`) or replaced ([`crate::Config::replace_stale`]).
    pub fn is_stale(&self) -> bool {
        !self.has_live_participants()
    }
}

/// Names (`/name`) of the fusion-ring segments under `/dev/shm`: files that
/// start with the ring magic. Others are skipped.
pub fn list() -> Result<Vec<String>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| RingError::Io {
        op: "read_dir(/dev/shm)",
        source: crate::error::IoError::from_errno(e.raw_os_error().unwrap_or(0)),
    })?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        let mut magic = [0u8; 8];
        let ok = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok();
        if ok && u64::from_le_bytes(magic) == crate::shm::layout::MAGIC {
            if let Some(n) = path.file_name().and_then(|n| n.to_str()) {
                out.push(format!("/{n}"));
            }
        }
    }
    out.sort();
    Ok(out)
}
