//! Read-only views of named rings for tools (`fring ls`, `fring stat`):
//! opening a ring this way registers no participant and changes nothing.

use std::sync::Arc;

use crate::error::{Result, RingError};
use crate::handle::participant::{self, ROLE_RECEIVER, ROLE_SENDER, ROLE_SUBSCRIBER};
use crate::handle::roles;
use crate::handle::shared::SharedRing;
use crate::handle::stats::{aggregate, LaneStats};
use crate::lockfree::arena::{Arena, ArenaUsage};
use crate::shm::layout::{LAYOUT_VERSION, MAGIC};
use crate::shm::segment::{shm_name, Segment};
use crate::shm::process::pid_namespace;

/// A participant registered in a ring's segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Process id, in the participant's own pid namespace (a process in a
    /// container is often pid 1 there): for people, not a test of life.
    pub pid: u32,
    /// Whether it has sent / received so far.
    pub sender: bool,
    /// Whether it has received so far.
    pub receiver: bool,
    /// Whether the handle lives: its liveness mark (a lock on the segment's
    /// file that the kernel drops when its process dies) is held.
    pub alive: bool,
    /// On a broadcast ring, for a subscriber: the next position it reads
    /// (`head - cursor` is its lag); `None` for anyone else.
    pub cursor: Option<u64>,
    /// Whether it registered from the reader's pid namespace (or either
    /// namespace is unknown). If not, [`Participant::pid`] is a pid of
    /// another namespace (a container's), not of a process here.
    pub own_pid_namespace: bool,
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
    /// Whether one handle at a time may send ([`crate::Config::single_producer`]).
    pub single_producer: bool,
    /// Whether one handle at a time may receive.
    pub single_consumer: bool,
    /// The process whose live handle holds the producer role (single
    /// producer rings only).
    pub producer_pid: Option<u32>,
    /// The process whose live handle holds the consumer role.
    pub consumer_pid: Option<u32>,
    /// On a broadcast ring ([`crate::Config::broadcast`]), how many
    /// subscribers it admits; `None` for a work queue.
    pub max_subscribers: Option<usize>,
    /// On a broadcast ring, whether its publisher writes over messages
    /// subscribers have not read instead of waiting
    /// ([`crate::Overflow::Overwrite`]).
    pub overwrite: bool,
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
        // A broadcast ring's consumer head is unused: what is queued is
        // what its slowest subscriber has not read.
        let tail = if ring.broadcast() {
            crate::handle::broadcast::slowest(segment.participants(), head, g.capacity as u64)
                .ok()
                .flatten()
                .unwrap_or(head)
        } else {
            tail
        };
        let here = pid_namespace();
        let participants = participant::registered(segment)
            .map(|r| Participant {
                pid: r.pid,
                sender: r.role & ROLE_SENDER != 0,
                receiver: r.role & (ROLE_RECEIVER | ROLE_SUBSCRIBER) != 0,
                cursor: (r.role & ROLE_SUBSCRIBER != 0).then_some(r.cursor),
                alive: r.alive,
                own_pid_namespace: r.pid_ns == here || r.pid_ns == 0 || here == 0,
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
            single_producer: roles::is_single(segment, ROLE_SENDER),
            single_consumer: roles::is_single(segment, ROLE_RECEIVER),
            producer_pid: roles::holder_pid(segment, ring.core(), ROLE_SENDER),
            consumer_pid: roles::holder_pid(segment, ring.core(), ROLE_RECEIVER),
            max_subscribers: (segment.max_subscribers() != 0).then_some(segment.max_subscribers()),
            overwrite: ring.overwrite(),
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

/// What a file under `/dev/shm` is, told from its first bytes (read, not
/// mapped; nothing is changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmFile {
    /// A fusion-ring segment of the layout version this build reads (it may
    /// still fail the checks of [`crate::Ring::open`]).
    Ring,
    /// A fusion-ring segment of another layout version.
    OtherVersion {
        /// Its layout version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// Not a fusion-ring segment: another program's shared memory, a ring
    /// still being created (its magic is written last), or any other file.
    Foreign {
        /// Its length in bytes.
        len: u64,
    },
}

/// Says what the file `/dev/shm/NAME` is. `NotFound` if there is none.
///
/// ```
/// use fusion_ring::inspect::{classify, ShmFile};
/// use fusion_ring::{Config, Ring};
/// let name = format!("doc-classify-{}", std::process::id());
/// let ring = Ring::create(&name, &Config::new(8))?;
/// assert_eq!(classify(&name)?, ShmFile::Ring);
/// let other = format!("doc-classify-text-{}", std::process::id());
/// std::fs::write(format!("/dev/shm/{other}"), b"not a ring").unwrap();
/// assert_eq!(classify(&other)?, ShmFile::Foreign { len: 10 });
/// std::fs::remove_file(format!("/dev/shm/{other}")).unwrap();
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub fn classify(name: &str) -> Result<ShmFile> {
    let name = shm_name(name)?;
    let path = format!("/dev/shm{name}");
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => RingError::NotFound { name: name.clone() },
        _ => RingError::Io {
            op: "read a file under /dev/shm",
            source: crate::error::IoError::from_errno(e.raw_os_error().unwrap_or(0)),
        },
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 12];
    if std::io::Read::read_exact(&mut file, &mut head).is_err() {
        return Ok(ShmFile::Foreign { len });
    }
    let magic = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Ok(ShmFile::Foreign { len });
    }
    match u32::from_le_bytes(head[8..].try_into().expect("4 bytes")) {
        LAYOUT_VERSION => Ok(ShmFile::Ring),
        found => Ok(ShmFile::OtherVersion {
            found,
            expected: LAYOUT_VERSION,
        }),
    }
}

/// The files under `/dev/shm`, sorted into fusion-ring segments and others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Names (`/name`) of the files that start with the ring magic (any
    /// layout version), sorted.
    pub rings: Vec<String>,
    /// How many other files there are (skipped).
    pub others: usize,
}

/// Reads `/dev/shm` (see [`Listing`]).
pub fn scan() -> Result<Listing> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| RingError::Io {
        op: "read_dir(/dev/shm)",
        source: crate::error::IoError::from_errno(e.raw_os_error().unwrap_or(0)),
    })?;
    let mut out = Listing::default();
    for entry in dir.flatten() {
        let path = entry.path();
        let mut magic = [0u8; 8];
        let ok = std::fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok();
        match path.file_name().and_then(|n| n.to_str()) {
            Some(n) if ok && u64::from_le_bytes(magic) == MAGIC => out.rings.push(format!("/{n}")),
            _ => out.others += 1,
        }
    }
    out.rings.sort();
    Ok(out)
}

/// Names (`/name`) of the fusion-ring segments under `/dev/shm`: files that
/// start with the ring magic. Others are skipped (see [`scan`]).
pub fn list() -> Result<Vec<String>> {
    scan().map(|l| l.rings)
}
