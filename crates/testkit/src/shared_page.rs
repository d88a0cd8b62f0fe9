//! Shared memory for flags and counters between processes, apart from the
//! ring under test (so the ring's contents stay exactly the messages): an
//! anonymous mapping inherited by forked children, or a file that spawned
//! children map by path.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

/// A zeroed `MAP_SHARED` mapping, read and written as `AtomicU64` words.
#[derive(Debug)]
pub struct SharedPage {
    ptr: *mut u8,
    len: usize,
    /// The file to remove on drop (the creator of a file-backed page).
    owned_file: Option<PathBuf>,
}

impl SharedPage {
    /// One anonymous page, inherited by children forked after this.
    pub fn new() -> Self {
        Self::with_len(4096)
    }

    /// `len` anonymous bytes (zeroed).
    pub fn with_len(len: usize) -> Self {
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .expect("mmap of shared memory");
        SharedPage {
            ptr: ptr.cast(),
            len,
            owned_file: None,
        }
    }

    /// A page in a new file at `path` (which must not exist), for children
    /// that [`open_file`](SharedPage::open_file) it; the file is removed
    /// when this page is dropped.
    ///
    /// ```
    /// use fusion_ring_testkit::{names::unique_name, shared_page::SharedPage};
    /// use std::sync::atomic::Ordering;
    /// let path = std::env::temp_dir().join(unique_name("fr-doc-page"));
    /// let page = SharedPage::create_file(&path);
    /// let other = SharedPage::open_file(&path); // as a child would
    /// page.word(8).store(3, Ordering::Release);
    /// assert_eq!(other.word(8).load(Ordering::Acquire), 3);
    /// drop((other, page));
    /// assert!(!path.exists());
    /// ```
    pub fn create_file(path: &Path) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap_or_else(|e| panic!("create page {}: {e}", path.display()));
        file.set_len(4096).expect("size page");
        let mut page = Self::map(&file);
        page.owned_file = Some(path.to_path_buf());
        page
    }

    /// The page another process made with
    /// [`create_file`](SharedPage::create_file).
    pub fn open_file(path: &Path) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open page {}: {e}", path.display()));
        Self::map(&file)
    }

    fn map(file: &File) -> Self {
        let len = file.metadata().expect("page size").len() as usize;
        // SAFETY: a fresh shared mapping of a file whose size its creator
        // set and nobody changes.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                file,
                0,
            )
        }
        .expect("mmap of the page file");
        SharedPage {
            ptr: ptr.cast(),
            len,
            owned_file: None,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes from byte `offset`, as a raw pointer for bulk copies
    /// (`write_bytes`, a slice built for a read). Whoever dereferences it
    /// must make sure no other process or thread writes those bytes
    /// meanwhile (e.g. a flag handed over with Release / Acquire).
    pub fn bytes(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(
            offset + len <= self.len,
            "{offset} + {len} past {}",
            self.len
        );
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.ptr.add(offset) }
    }

    /// The atomic at byte `offset` (a multiple of 8).
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: in bounds and aligned; the mapping is zero-initialised
        // shared memory, a valid AtomicU64 for any bit pattern, alive as
        // long as self.
        unsafe { &*(self.ptr.add(offset) as *const AtomicU64) }
    }
}

impl Default for SharedPage {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; no reference
        // handed out by `word` outlives self.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
        if let Some(path) = &self.owned_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fork::ForkGuard;
    use crate::serial::serial;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    #[test]
    fn a_forked_child_writes_what_the_parent_reads() {
        let _serial = serial();
        let page = SharedPage::with_len(3 * 4096);
        let last = page.word(3 * 4096 - 8);
        assert_eq!(last.load(Ordering::Relaxed), 0, "zeroed");
        // SAFETY: the child stores to the shared mapping and returns.
        let mut child = unsafe {
            ForkGuard::fork(
                || {
                    last.store(0xABCD, Ordering::Release);
                    0
                },
                1,
            )
        };
        assert_eq!(child.exit_code(Instant::now(), Duration::from_secs(30)), 0);
        assert_eq!(last.load(Ordering::Acquire), 0xABCD);
    }

    #[test]
    #[should_panic]
    fn words_are_aligned() {
        SharedPage::new().word(4);
    }

    #[test]
    #[should_panic]
    fn words_are_in_bounds() {
        SharedPage::new().word(4096);
    }

    /// Bytes written through `bytes` are the words' bytes; a range past
    /// the end is refused.
    #[test]
    fn bytes_are_the_pages_and_in_bounds() {
        let page = SharedPage::new();
        // SAFETY: in bounds (checked by `bytes`), and nobody else uses the page.
        unsafe { page.bytes(8, 8).write_bytes(0x11, 8) };
        assert_eq!(page.word(8).load(Ordering::Relaxed), 0x1111_1111_1111_1111);
        assert_eq!(page.word(0).load(Ordering::Relaxed), 0);
        let past = std::panic::catch_unwind(|| page.bytes(4090, 8));
        assert!(past.is_err(), "4090 + 8 is past a 4096-byte page");
    }
}
