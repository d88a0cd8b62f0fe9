//! Surviving a peer that truncates a segment's file under our mapping.
//!
//! A named segment is a file any peer allowed to open it can also shrink;
//! reading a page of a mapping past the file's new end raises `SIGBUS`,
//! which would kill the process. Mappings of files not sealed against
//! shrinking are registered here, and a `SIGBUS` handler (installed once,
//! the first time one is registered) recognises a fault inside a registered
//! mapping and replaces the whole mapping with private zeroed memory, with
//! every slot's sequence word set to [`POISONED_SEQ`]: the faulting access
//! is retried and succeeds, and from then on every claim on the ring
//! reports `Corrupt` (the ring says it was truncated). The peers lose the
//! ring, as with any scribbling, and nobody crashes.
//!
//! Faults outside registered mappings go on to the handler that was there
//! before (the standard library's stack-overflow handler, or the default
//! action), so other bugs still crash as they would have.
//!
//! Everything the handler touches is async-signal-safe: atomics in a fixed
//! table, `mmap`, and stores into the memory it just mapped.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// A sequence word no claim accepts: far ahead of any head a zeroed control
/// block holds, without the `RECLAIMING` bit, so producers and consumers
/// alike take it for a scribbled slot and report `Corrupt`.
pub(crate) const POISONED_SEQ: u64 = 1 << 62;

/// Registered mappings at most (a process with more named rings mapped at
/// once leaves the extra ones unguarded: a truncation then kills it, as
/// before this module).
const ENTRIES: usize = 128;

/// One registered mapping. `start == 0` means free; the other fields are
/// written before `start` (Release) and read after it (Acquire).
struct Entry {
    start: AtomicUsize,
    len: AtomicUsize,
    /// Offset and count of the slot array to poison (count 0: none, e.g. a
    /// header-only mapping being validated).
    slots_offset: AtomicUsize,
    slots: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // the array initialiser only
const FREE: Entry = Entry {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    slots_offset: AtomicUsize::new(0),
    slots: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};

static TABLE: [Entry; ENTRIES] = [FREE; ENTRIES];

/// The `SIGBUS` disposition found when ours was installed (written once,
/// before the handler can run).
struct Previous(core::cell::UnsafeCell<core::mem::MaybeUninit<libc::sigaction>>);
// SAFETY: written once inside `INSTALL` before our handler is installed,
// only read afterwards (by the handler).
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()));
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A registered mapping; unregistered on drop, which must come before the
/// mapping is unmapped (so a later mapping at the same address is not
/// mistaken for it).
#[derive(Debug)]
pub(crate) struct Guard {
    index: usize,
}

/// Registers the `len` bytes at `base` (a mapping of an unsealed file);
/// `slots`: where the slot array lies in it, to poison after a truncation.
/// `None` if the handler could not be installed or the table is full.
pub(crate) fn guard(base: NonNull<u8>, len: usize, slots: Option<(usize, usize)>) -> Option<Guard> {
    INSTALL.call_once(install);
    if !INSTALLED.load(Ordering::Acquire) {
        return None;
    }
    let (slots_offset, count) = slots.unwrap_or((0, 0));
    for (index, e) in TABLE.iter().enumerate() {
        // Claim a free entry with a placeholder start, fill it, publish.
        if e.start
            .compare_exchange(0, usize::MAX, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            e.len.store(len, Ordering::Relaxed);
            e.slots_offset.store(slots_offset, Ordering::Relaxed);
            e.slots.store(count, Ordering::Relaxed);
            e.truncated.store(false, Ordering::Relaxed);
            // Release: pairs with the handler's Acquire load of `start`.
            e.start.store(base.as_ptr() as usize, Ordering::Release);
            return Some(Guard { index });
        }
    }
    None
}

impl Guard {
    /// Whether the mapping was replaced after its file was truncated.
    pub(crate) fn truncated(&self) -> bool {
        TABLE[self.index].truncated.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Release: the entry's fields may be reused once `start` is 0.
        TABLE[self.index].start.store(0, Ordering::Release);
    }
}

fn install() {
    // SAFETY: a zeroed sigaction is a valid value to fill in; `sigaction`
    // reads `ours` and writes the previous disposition into PREVIOUS, which
    // nothing reads until our handler is installed (by this very call).
    unsafe {
        let mut ours: libc::sigaction = core::mem::zeroed();
        ours.sa_sigaction = on_sigbus as *const () as usize;
        // SA_ONSTACK: run on the thread's alternate stack if it has one
        // (the standard library sets one up for its own fault handler).
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut ours.sa_mask);
        let previous = (*PREVIOUS.0.get()).as_mut_ptr();
        if libc::sigaction(libc::SIGBUS, &ours, previous) == 0 {
            INSTALLED.store(true, Ordering::Release);
        }
    }
}

/// The handler: fix a fault in a registered mapping, pass any other on.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for e in &TABLE {
        // Acquire: pairs with `guard`'s Release store of `start`.
        let start = e.start.load(Ordering::Acquire);
        let len = e.len.load(Ordering::Relaxed);
        if start == 0 || start == usize::MAX || addr < start || addr - start >= len {
            continue;
        }
        // [start, start + len) is a live mapping of ours: registered until
        // just before it is unmapped. Atomics stay atomics: the peer's
        // truncation is scribbling like any other, which readers survive.
        // SAFETY: private zeroed pages of the same size and protection in
        // place of that mapping keep every pointer into it valid.
        let fixed = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if fixed as usize != start {
            break; // could not repair: let the fault take its course
        }
        let (offset, slots) = (
            e.slots_offset.load(Ordering::Relaxed),
            e.slots.load(Ordering::Relaxed),
        );
        for i in 0..slots {
            let at = offset + i * crate::shm::layout::SLOT_SIZE;
            if at + 8 <= len {
                // SAFETY: inside the fresh mapping, 8-byte aligned (slots
                // are 64-byte aligned at a page-aligned offset), and an
                // AtomicU64 is valid for any bit pattern.
                unsafe {
                    (*((start + at) as *const core::sync::atomic::AtomicU64))
                        .store(POISONED_SEQ, Ordering::Relaxed)
                };
            }
        }
        e.truncated.store(true, Ordering::Release);
        return; // the faulting access is retried on the new pages
    }
    pass_on(sig, info, ctx);
}

/// Hands a fault that is not ours to the disposition found at install.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was written before our handler was installed.
    let previous = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default and return: the access faults again and the
        // default action (terminate, with a core dump) runs. Ignoring a
        // fault is not possible, so SIG_IGN gets the default too.
        // SAFETY: a zeroed sigaction with SIG_DFL is valid.
        unsafe {
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, core::ptr::null_mut());
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature; we pass on exactly what the kernel gave us.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: as above, for a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(handler) };
        f(sig);
    }
}
