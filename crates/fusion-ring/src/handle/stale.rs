//! Replacing a stale named ring ([`crate::Config::replace_stale`]).

use std::os::unix::fs::MetadataExt;

use crate::error::{Result, RingError};
use crate::handle::participant;
use crate::shm::segment::{shm_name, unlink_named, Segment};

/// Removes the named ring if no running process has a handle on it.
/// Returns whether it did. The file is removed only if it is still the one
/// examined (another process replacing it at the same time keeps its new
/// ring; one of the two creates then gets `AlreadyExists`).
pub(crate) fn remove_if_stale(name: &str) -> Result<bool> {
    let path = format!("/dev/shm{}", shm_name(name)?);
    let inode = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(examined) = inode(&path) else {
        return Ok(false);
    };
    match Segment::open_named(name).map(|s| participant::any_live(&s)) {
        Ok(false) if inode(&path) == Some(examined) => match unlink_named(name) {
            Ok(()) | Err(RingError::NotFound { .. }) => Ok(true),
            Err(e) => Err(e),
        },
        Ok(_) | Err(RingError::Corrupt(_) | RingError::VersionMismatch { .. }) => Ok(false),
        Err(RingError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}
