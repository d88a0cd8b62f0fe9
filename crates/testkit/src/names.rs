//! Names no other test or process uses, and files removed on drop.
//!
//! Tests of one binary run in parallel, and several binaries (or the same
//! one twice) may run at once: every ring, socket or file a test makes
//! carries this process's id and a counter ([`unique_name`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A ring, socket or file name no other test or process uses:
/// `<tag>-<pid>-<n>`, `n` counting the names this process made.
///
/// ```
/// use fusion_ring_testkit::names::unique_name;
/// let (a, b) = (unique_name("fr-doc"), unique_name("fr-doc"));
/// assert_ne!(a, b);
/// assert!(a.starts_with(&format!("fr-doc-{}-", std::process::id())));
/// ```
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a file (a socket, a log) on drop, if it is there.
#[derive(Debug)]
pub struct PathGuard(pub PathBuf);

impl Drop for PathGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The file behind POSIX shared-memory object `name` (no leading slash).
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// A name under `/dev/shm`; whatever file has that name is removed on drop
/// (a segment a test created, or made by hand).
///
/// ```
/// use fusion_ring_testkit::names::ShmName;
/// let path = {
///     let name = ShmName::new("fr-doc");
///     std::fs::write(name.path(), b"x").unwrap();
///     assert!(name.exists());
///     assert_eq!(name.label(), format!("/{}", name.name()));
///     name.path()
/// };
/// assert!(!path.exists());
/// ```
#[derive(Debug)]
pub struct ShmName {
    name: String,
}

impl ShmName {
    /// A fresh name: [`unique_name`] of `tag`.
    pub fn new(tag: &str) -> Self {
        ShmName {
            name: unique_name(tag),
        }
    }

    /// Takes care of `name` (already unique).
    pub fn adopt(name: impl Into<String>) -> Self {
        ShmName { name: name.into() }
    }

    /// The name, as `shm_open` takes it without the slash.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name with its leading slash, the form `shm_open` documents.
    pub fn label(&self) -> String {
        format!("/{}", self.name)
    }

    /// The file under `/dev/shm`.
    pub fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_within_and_across_threads() {
        let mut all: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).map(|_| unique_name("t")).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn guards_remove_their_files() {
        let shm = ShmName::new("fr-testkit");
        std::fs::write(shm.path(), b"segment").unwrap();
        let path = shm.path();
        drop(shm);
        assert!(!path.exists());

        let file = std::env::temp_dir().join(unique_name("fr-testkit-guard"));
        std::fs::write(&file, b"socket").unwrap();
        drop(PathGuard(file.clone()));
        assert!(!file.exists());
        // Nothing there: nothing to do.
        drop(PathGuard(file));
        drop(ShmName::adopt(unique_name("fr-testkit-missing")));
    }
}
