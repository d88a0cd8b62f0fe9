//! An owned shared mapping of a file descriptor (`mmap(MAP_SHARED)`).

use core::ptr::NonNull;
use std::os::fd::BorrowedFd;

use rustix::mm::{mmap, MapFlags, ProtFlags};

use crate::error::{Result, RingError};

/// `len` bytes of a file mapped read-write and shared; unmapped on drop.
///
/// Only raw pointers are handed out: the bytes are written by other
/// processes, so no `&[u8]` / `&mut [u8]` over them may exist.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access through it goes
// through atomics (see `layout`), so it may be used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `fd` (`len` > 0, file at least that big).
    pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<Self> {
        // SAFETY: a fresh mapping (null hint) aliases no Rust object; the
        // caller checked the file holds `len` bytes.
        let ptr = unsafe {
            mmap(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|e| RingError::io("mmap", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(RingError::Io {
            op: "mmap",
            source: crate::error::IoError::from_errno(0),
        })?;
        Ok(Self { ptr, len })
    }

    /// A zeroed, page-aligned heap allocation of `len` bytes (`len` > 0)
    /// standing in for a shared mapping: Miri cannot `mmap` a file. Shared
    /// between the threads of the process only, which is all Miri runs.
    #[cfg(miri)]
    pub(crate) fn heap(len: usize) -> Result<Self> {
        let layout =
            std::alloc::Layout::from_size_align(len, crate::shm::layout::PAGE).map_err(|_| {
                RingError::Io {
                    op: "alloc",
                    source: crate::error::IoError::from_errno(libc::EINVAL)
                }
            })?;
        // SAFETY: `len` > 0 (every segment has at least a header page).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(RingError::Io {
            op: "alloc",
            source: crate::error::IoError::from_errno(libc::ENOMEM)
        })?;
        Ok(Self { ptr, len })
    }

    /// Base address (page aligned).
    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    #[cfg(not(miri))]
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and nothing that
        // borrows the mapping outlives `self` (owners hold it in an Arc).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }

    #[cfg(miri)]
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, crate::shm::layout::PAGE)
            .expect("checked in `heap`");
        // SAFETY: ptr/len are exactly what `heap` allocated with this layout,
        // and nothing that borrows the mapping outlives `self`.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}
