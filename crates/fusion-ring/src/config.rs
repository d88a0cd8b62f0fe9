//! How a ring is created.

use crate::layout::check_capacity;
use crate::Result;

/// Default number of slots (the seeds' `with_default_capacity`).
pub const DEFAULT_CAPACITY: usize = 256;

/// Options for creating a ring: capacity, and for named segments the file
/// mode and whether dropping the creator removes the name.
///
/// ```
/// use fusion_ring::Config;
/// let cfg = Config::new(1024).mode(0o640).unlink_on_drop(false);
/// assert_eq!(cfg.capacity(), 1024);
/// assert_eq!(Config::default().capacity(), 256);
/// assert!(Config::new(1000).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    capacity: usize,
    mode: u32,
    unlink_on_drop: bool,
    timestamps: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Config {
    /// A config for `capacity` slots (a power of two, checked on use), mode
    /// `0o600`, name removed when the creator drops the ring.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            mode: 0o600,
            unlink_on_drop: true,
            timestamps: true,
        }
    }

    /// File mode of a named segment (default `0o600`: owner only). Applied
    /// exactly, whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether dropping the creating handle removes the segment's name
    /// (default `true`). Handles already open keep working either way.
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// Whether producers stamp each message with the send time (default
    /// `true`). Reading the TSC is the single largest cost of the inline
    /// path (about 35-60 ticks a read on a KVM guest, two reads a message);
    /// a ring created with `false` reports latency 0 and skips both reads.
    /// Fixed at creation for every handle of the ring.
    ///
    /// ```
    /// use fusion_ring::{Config, PriorityClass, UltraFastRing};
    /// let ring = UltraFastRing::with_config(&Config::new(64).timestamps(false))?;
    /// ring.send_fast(b"x", PriorityClass::Normal)?;
    /// let (_, _, latency) = ring.recv_fast(&mut [0u8; 40])?;
    /// assert_eq!(latency, 0);
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// Whether messages are timestamped.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    pub(crate) fn header_flags(&self) -> u32 {
        if self.timestamps {
            0
        } else {
            crate::layout::FLAG_NO_TIMESTAMPS
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// File mode for named segments.
    pub fn file_mode(&self) -> u32 {
        self.mode
    }

    /// Whether the creator unlinks the name on drop.
    pub fn unlinks_on_drop(&self) -> bool {
        self.unlink_on_drop
    }

    /// Checks the capacity (`InvalidCapacity` names the value and the range).
    pub fn validate(&self) -> Result<()> {
        check_capacity(self.capacity)
    }
}
