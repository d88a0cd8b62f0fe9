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
