//! The one error type of the crate.

use std::fmt;

/// Everything that can go wrong with a ring.
///
/// Variants carry the value and the limit involved, so a message is enough
/// for an operator to act on.
///
/// ```
/// use fusion_ring::{PriorityClass, RingError, UltraFastRing};
///
/// let ring = UltraFastRing::new(8)?;
/// let err = ring.send_fast(&[0u8; 41], PriorityClass::Normal).unwrap_err();
/// assert_eq!(err, RingError::TooLarge { len: 41, max: 40 });
/// assert_eq!(err.to_string(), "message of 41 bytes exceeds the limit of 40 bytes");
/// # Ok::<(), RingError>(())
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// No free slot: the message was not sent and the ring is unchanged.
    #[error("ring is full: no free slot")]
    Full,
    /// No message to receive.
    #[error("ring is empty: no message to receive")]
    Empty,
    /// The message is larger than the path allows.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// Largest length this path accepts.
        max: usize,
    },
    /// The receive buffer is shorter than the next message, which stays queued.
    #[error(
        "receive buffer too small: the next message needs {needed} bytes, the buffer has {got}"
    )]
    BufferTooSmall {
        /// Length of the waiting message.
        needed: usize,
        /// Length of the buffer that was passed.
        got: usize,
    },
    /// A blocking call ran out of time; nothing was sent or consumed.
    #[error("timed out")]
    Timeout,
    /// The other side of the ring has no live participant.
    #[error("peer disconnected")]
    Disconnected,
    /// The capacity is not a power of two in the supported range.
    #[error("invalid capacity {capacity}: must be a power of two between {min} and {max}")]
    InvalidCapacity {
        /// The rejected capacity.
        capacity: usize,
        /// Smallest accepted capacity.
        min: usize,
        /// Largest accepted capacity.
        max: usize,
    },
    /// A configuration value out of its range.
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        /// Which setting.
        field: &'static str,
        /// The rejected value.
        value: u64,
        /// The rule it breaks, with the limit.
        reason: String,
    },
    /// A segment name that cannot be used.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The zero-copy arena has no block of the size asked for.
    #[error("zero-copy arena exhausted: no free block for {len} bytes")]
    ArenaExhausted {
        /// Requested payload length.
        len: usize,
    },
    /// A named segment already exists (creation uses `O_EXCL`).
    #[error("segment {name} already exists")]
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// No segment of that name.
    #[error("segment {name} does not exist")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// The segment was made by an incompatible version of this library.
    #[error("segment {segment} has layout version {found}, this library reads version {expected}")]
    VersionMismatch {
        /// Which segment.
        segment: String,
        /// Version found in the segment.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
    /// The ring has a single producer (or consumer), and a live handle of
    /// process `holder_pid` holds that role: nothing was sent (received).
    /// The role is free again once that handle is dropped or its process
    /// dies.
    #[error(
        "ring {ring} has a single {role}, and a live handle of process {holder_pid} holds that \
         role; drop that handle (or let its process exit) to take the role over"
    )]
    RoleTaken {
        /// Which ring.
        ring: String,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// The holder's process id, in its own pid namespace.
        holder_pid: u32,
    },
    /// The ring has a single producer (or consumer), which only a handle
    /// with a participant entry of its own can hold, and the table is full
    /// (63 live handles): nothing was sent (received).
    #[error(
        "ring {ring} has a single {role}, which only a handle with a participant entry of its \
         own can hold, and all 63 entries are in use"
    )]
    NoEntryForRole {
        /// Which ring.
        ring: String,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
    },
    /// A broadcast ring already has as many subscribers as it was created
    /// for (`Config::broadcast`): this one did not join.
    #[error(
        "the broadcast ring admits {limit} subscribers and has that many; drop one, or create \
         the ring with a larger Config::broadcast"
    )]
    TooManySubscribers {
        /// The ring's limit.
        limit: usize,
    },
    /// On a broadcast ring that overwrites ([`crate::Overflow::Overwrite`]):
    /// the publisher wrote over `missed` messages this subscriber had not
    /// read. Nothing was received; the next receive goes on from the oldest
    /// message still in the ring (another `Lagged` if that one is
    /// overwritten too before it is read). Its received messages plus the
    /// `missed` of every `Lagged` it got count every message published
    /// since it joined.
    #[error(
        "this subscriber fell a ring behind: the publisher overwrote {missed} messages it had not \
         read; it goes on from the oldest one still in the ring"
    )]
    Lagged {
        /// How many messages it lost.
        missed: u64,
    },
    /// The operation needs a ring of the other shape: a broadcast ring
    /// opened as a work queue (`UltraFastRing`, `FusionRing`, `Ring`'s
    /// receives) or a work queue opened as a broadcast ring (`Publisher`,
    /// `Subscriber`).
    #[error("ring {ring} is a {found}, not a {expected}")]
    WrongShape {
        /// Which ring.
        ring: String,
        /// `"broadcast ring"` or `"work queue"`: what the ring is.
        found: &'static str,
        /// What the operation needs.
        expected: &'static str,
    },
    /// The segment's file is on a network or cluster file system, where the
    /// locks that tell live participants from dead ones may outlive a
    /// machine that died or not be seen by another: rings live in
    /// `/dev/shm` or a memfd.
    #[error(
        "segment {segment} is on a network or cluster file system ({file_system}), where liveness locks cannot be \
         trusted across machines; use a named ring (/dev/shm) or a memfd"
    )]
    UnsupportedFileSystem {
        /// Which segment.
        segment: String,
        /// The file system's kind.
        file_system: &'static str,
    },
    /// The segment failed validation.
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
    /// An operating-system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: IoError,
    },
}

/// Why a segment was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("segment {segment} is corrupt: {what}")]
pub struct CorruptError {
    /// Which segment (name, or `memfd` / `fd N`).
    pub segment: String,
    /// What is wrong with it.
    pub what: String,
}

impl CorruptError {
    pub(crate) fn new(segment: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            segment: segment.into(),
            what: what.into(),
        }
    }
}

/// An OS error, kept as its `errno`: `std::io::Error` is neither `Clone`
/// nor `PartialEq`, and [`RingError`] is both, so callers can compare
/// results (`r == Err(RingError::Full)`) and keep errors around.
///
/// ```
/// use fusion_ring::{remove_named, RingError};
/// let err = remove_named("no/slash/allowed").unwrap_err();
/// assert!(matches!(err, RingError::InvalidName { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError(i32);

impl IoError {
    #[cfg(not(fusion_ring_loom))]
    pub(crate) fn from_errno(errno: i32) -> Self {
        IoError(errno)
    }

    /// The raw `errno`.
    pub fn raw_os_error(&self) -> i32 {
        self.0
    }

    /// Its kind, as `std::io` classifies it.
    pub fn kind(&self) -> std::io::ErrorKind {
        std::io::Error::from_raw_os_error(self.0).kind()
    }
}

impl From<IoError> for std::io::Error {
    fn from(e: IoError) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for IoError {}

impl RingError {
    #[cfg(not(fusion_ring_loom))]
    pub(crate) fn io(op: &'static str, errno: rustix::io::Errno) -> Self {
        RingError::Io {
            op,
            source: IoError::from_errno(errno.raw_os_error()),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = RingError> = std::result::Result<T, E>;
