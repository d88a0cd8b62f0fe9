//! The shared-memory segment: creating, opening and validating it.
//!
//! Three ways to get one: an anonymous `memfd` (sealed against shrinking and
//! growing, inherited across `fork`, handed to other processes as a file
//! descriptor), a named POSIX shared-memory file under `/dev/shm` (created
//! with `O_EXCL`, mode 0600 by default), or an inherited / received fd.
//!
//! Opening validates, before touching anything else: the real file size
//! against the header page, the magic, the layout version and hash, the
//! capacity, every region offset (recomputed from the capacity) and the size
//! the header claims against the real file size.
//!
//! Truncation: a memfd cannot shrink once sealed. A named file can be
//! truncated by any process with write access while mapped, which makes the
//! next access fault with `SIGBUS`; the mappings of files not sealed against
//! shrinking are guarded ([`truncation`]): the fault is caught, the mapping
//! replaced by a poisoned private copy, and the ring reports `Corrupt`.

mod mapping;
#[cfg(not(miri))]
mod truncation;

use core::ptr::NonNull;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, Mode, SealFlags};
use rustix::io::Errno;
use rustix::shm;

use crate::atomic::Ordering;
use crate::error::CorruptError;
use crate::shm::layout::{
    check_capacity, ArenaControl, ControlBlock, Geometry, ParticipantEntry, SegmentHeader, Slot,
    SyncBlock, FLAG_BROADCAST, FLAG_OVERWRITE, KNOWN_FLAGS, LAYOUT_HASH, LAYOUT_VERSION, MAGIC, MAX_PARTICIPANTS,
    MAX_SUBSCRIBERS, PAGE, SLOT_SIZE,
};
use crate::shm::config::Config;
use crate::error::{Result, RingError};
use crate::shm::layout::ParticipantId;
use crate::shm::liveness::{self, EntryLock, ProcessMark};
use mapping::Mapping;

/// How long an opener waits for a creator that has made the file but not yet
/// written its header.
const INIT_WAIT: Duration = Duration::from_millis(500);

/// A mapped, validated ring segment.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Declared before `map`: unregistered before the mapping is unmapped.
    #[cfg(not(miri))]
    truncation: Option<truncation::Guard>,
    map: Mapping,
    fd: OwnedFd,
    geometry: Geometry,
    /// For messages: the name, `memfd` or `fd`.
    label: String,
    /// Name to unlink on drop (creator of a named segment only, and only
    /// by the creating process: a forked child's copy does not unlink).
    unlink: Option<(String, u32)>,
    /// `FLAG_*` bits from the header.
    flags: u32,
    /// On a broadcast ring, how many subscribers it admits (header).
    max_subscribers: u32,
    /// This process's liveness mark on the file (`shm::liveness`), taken
    /// by the first handle ([`Segment::mark_process`]).
    mark: ProcessMark,
}

impl Segment {
    /// A new anonymous segment backed by a sealed memfd.
    pub(crate) fn create_anonymous(config: &Config) -> Result<Self> {
        config.validate()?;
        let geometry = config.geometry();
        let (fd, map) = anonymous_backing(geometry.total_size)?;
        let seg = Segment {
            #[cfg(not(miri))]
            truncation: None, // sealed against shrinking
            map,
            fd,
            geometry,
            label: "memfd".into(),
            unlink: None,
            flags: config.header_flags(),
            max_subscribers: config.max_subscribers().unwrap_or(0) as u32,
            mark: ProcessMark::new(),
        };
        seg.initialize();
        Ok(seg)
    }

    /// A new named segment under /dev/shm (`O_CREAT | O_EXCL`).
    pub(crate) fn create_named(name: &str, config: &Config) -> Result<Self> {
        if cfg!(miri) {
            return Err(unsupported_under_miri("shm_open"));
        }
        config.validate()?;
        let name = shm_name(name)?;
        let geometry = config.geometry();
        let fd = shm::open(
            name.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::from_raw_mode(config.file_mode()),
        )
        .map_err(|e| match e {
            Errno::EXIST => RingError::AlreadyExists { name: name.clone() },
            e => RingError::io("shm_open", e),
        })?;
        let built = (|| {
            // The umask may have removed bits: apply the mode exactly.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(config.file_mode()))
                .map_err(|e| RingError::io("fchmod", e))?;
            ftruncate(&fd, geometry.total_size as u64)
                .map_err(|e| RingError::io("ftruncate", e))?;
            Mapping::map_shared(fd.as_fd(), geometry.total_size)
        })();
        let map = match built {
            Ok(map) => map,
            Err(e) => {
                let _ = shm::unlink(name.as_str());
                return Err(e);
            }
        };
        let seg = Segment {
            #[cfg(not(miri))]
            truncation: guard_unsealed(&fd, &map, Some(&geometry)),
            map,
            fd,
            geometry,
            label: name.clone(),
            unlink: config
                .unlinks_on_drop()
                .then(|| (name, crate::shm::process::current_pid())),
            flags: config.header_flags(),
            max_subscribers: config.max_subscribers().unwrap_or(0) as u32,
            mark: ProcessMark::new(),
        };
        seg.initialize();
        Ok(seg)
    }

    /// Opens an existing named segment.
    pub(crate) fn open_named(name: &str) -> Result<Self> {
        if cfg!(miri) {
            return Err(unsupported_under_miri("shm_open"));
        }
        let name = shm_name(name)?;
        let fd =
            shm::open(name.as_str(), shm::OFlags::RDWR, Mode::empty()).map_err(|e| match e {
                Errno::NOENT => RingError::NotFound { name: name.clone() },
                e => RingError::io("shm_open", e),
            })?;
        Self::validate(fd, name)
    }

    /// Adopts a segment from a file descriptor (received over a socket or
    /// inherited). A memfd without `F_SEAL_SHRINK` gets it added if possible.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self> {
        if cfg!(miri) {
            return Err(unsupported_under_miri("mmap"));
        }
        let label = format!("fd {}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        if let Ok(seals) = fcntl_get_seals(&fd) {
            if !seals.contains(SealFlags::SHRINK) && !seals.contains(SealFlags::SEAL) {
                let _ = fcntl_add_seals(&fd, SealFlags::SHRINK);
            }
        }
        Self::validate(fd, label)
    }

    fn validate(fd: OwnedFd, label: String) -> Result<Self> {
        refuse_network_file_system(&fd, &label)?;
        let corrupt = |what: String| RingError::Corrupt(CorruptError::new(label.clone(), what));
        // A creator that has just made the file may not have sized it yet:
        // give it the same grace as for writing the header.
        let deadline = Instant::now() + INIT_WAIT;
        let file_size = loop {
            let size = fstat(&fd).map_err(|e| RingError::io("fstat", e))?.st_size as u64;
            if size >= PAGE as u64 || Instant::now() >= deadline {
                break size;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if file_size < PAGE as u64 {
            return Err(corrupt(format!(
                "file is {file_size} bytes, smaller than the {PAGE}-byte ring header"
            )));
        }
        // Map the header page only, until the header says how big the ring is.
        let head_map = Mapping::map_shared(fd.as_fd(), PAGE)?;
        #[cfg(not(miri))]
        let head_guard = guard_unsealed(&fd, &head_map, None);
        // SAFETY: the mapping is PAGE bytes, page aligned, and SegmentHeader
        // is PAGE bytes of atomics (any bit pattern valid).
        let header = unsafe { head_map.as_ptr().cast::<SegmentHeader>().as_ref() };
        let (geometry, flags, max_subscribers) = read_header(header, file_size).map_err(|e| match e {
            HeaderError::Version(found) => RingError::VersionMismatch {
                segment: label.clone(),
                found,
                expected: LAYOUT_VERSION,
            },
            HeaderError::Corrupt(what) => corrupt(what),
        })?;
        #[cfg(not(miri))]
        drop(head_guard);
        drop(head_map);
        let map = Mapping::map_shared(fd.as_fd(), geometry.total_size)?;
        Ok(Segment {
            #[cfg(not(miri))]
            truncation: guard_unsealed(&fd, &map, Some(&geometry)),
            map,
            fd,
            geometry,
            label,
            unlink: None,
            flags,
            max_subscribers,
            mark: ProcessMark::new(),
        })
    }

    /// Writes a fresh header and slot array; the magic goes last.
    fn initialize(&self) {
        let g = &self.geometry;
        for i in 0..g.capacity {
            // Relaxed: nobody else can see the segment before the magic's
            // Release store below.
            self.slot_array_entry(i)
                .seq
                .store(crate::shm::layout::initial_seq(i as u64), Ordering::Relaxed);
        }
        let h = self.header();
        h.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.header_size.store(PAGE as u32, Ordering::Relaxed);
        h.layout_hash.store(LAYOUT_HASH, Ordering::Relaxed);
        h.total_size.store(g.total_size as u64, Ordering::Relaxed);
        h.capacity.store(g.capacity as u64, Ordering::Relaxed);
        h.slot_size.store(SLOT_SIZE as u32, Ordering::Relaxed);
        h.max_participants
            .store(MAX_PARTICIPANTS as u32, Ordering::Relaxed);
        h.control_offset
            .store(g.control_offset as u64, Ordering::Relaxed);
        h.participants_offset
            .store(g.participants_offset as u64, Ordering::Relaxed);
        h.slots_offset
            .store(g.slots_offset as u64, Ordering::Relaxed);
        h.arena_offset
            .store(g.arena_offset as u64, Ordering::Relaxed);
        h.arena_len.store(g.arena_len as u64, Ordering::Relaxed);
        h.max_message.store(g.max_message as u64, Ordering::Relaxed);
        // Miri (isolated) has no wall clock: creation time 0 there.
        let now = (!cfg!(miri))
            .then(std::time::SystemTime::now)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        h.created_unix_ns.store(now, Ordering::Relaxed);
        h.flags.store(self.flags, Ordering::Relaxed);
        h.max_subscribers
            .store(self.max_subscribers, Ordering::Relaxed);
        h.creator_pid
            .store(crate::shm::process::current_pid(), Ordering::Relaxed);
        h.ticks_per_ns_bits
            .store(crate::clock::Clock::ticks_per_ns().to_bits(), Ordering::Relaxed);
        // SYNC POINT "segment initialised": pairs with the Acquire load of
        // the magic in `read_header`; every store above is visible to an
        // opener that sees the magic.
        h.magic.store(MAGIC, Ordering::Release);
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Whether another process truncated the file and the mapping was
    /// replaced by a poisoned copy (see [`truncation`]).
    pub(crate) fn truncated(&self) -> bool {
        #[cfg(not(miri))]
        return self.truncation.as_ref().is_some_and(|g| g.truncated());
        #[cfg(miri)]
        false
    }

    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// On a broadcast ring, how many subscribers it admits (0 otherwise).
    pub(crate) fn max_subscribers(&self) -> usize {
        self.max_subscribers as usize
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Marks this process alive on the segment before it can hold a block
    /// (see `shm::liveness`); cheap once done. A forked child gets a mark
    /// of its own on its first call.
    pub(crate) fn mark_process(&self) -> Result<()> {
        if cfg!(miri) {
            return Ok(());
        }
        self.mark
            .mark(self.fd(), crate::shm::process::current_pid())
            .map_err(|e| RingError::Io {
                op: "fcntl(F_OFD_SETLK)",
                source: crate::error::IoError::from_errno(e.raw_os_error().unwrap_or(libc::ENOLCK)),
            })
    }

    /// A description for a new handle's entry mark (see `shm::liveness`).
    pub(crate) fn entry_lock(&self) -> EntryLock {
        if cfg!(miri) {
            return EntryLock::Pids;
        }
        liveness::reopen(self.fd()).map_or(EntryLock::Unavailable, EntryLock::Held)
    }

    /// Whether the handle registered in participant entry `index` (whose
    /// identity is `id`) lives: its entry mark is held, whatever pid
    /// namespace it runs in. Under Miri, which has no files, its pid and
    /// start time are looked up instead.
    pub(crate) fn entry_alive(&self, index: usize, id: &ParticipantId) -> bool {
        if cfg!(miri) {
            let pid = id.pid.load(Ordering::Relaxed);
            let start = id.start_time.load(Ordering::Relaxed);
            return pid != 0 && crate::shm::process::process_alive(pid, start);
        }
        liveness::entry_marked(self.fd(), index)
    }

    /// Whether a process that recorded itself as holder `pid` of an arena
    /// block may still map the segment (its process mark is held). Pid 0
    /// (no holder recorded) is alive: its blocks are never reclaimed.
    pub(crate) fn holder_alive(&self, pid: u32) -> bool {
        if pid == 0 {
            return true;
        }
        if cfg!(miri) {
            return crate::shm::process::process_alive(pid, 0);
        }
        liveness::process_marked(self.fd(), pid)
    }

    fn at<T>(&self, offset: usize) -> NonNull<T> {
        debug_assert!(offset + core::mem::size_of::<T>() <= self.map.len());
        // SAFETY: offsets come from the validated geometry and lie inside
        // the mapping (checked against the file size on open / set on create).
        unsafe { self.map.as_ptr().add(offset).cast() }
    }

    pub(crate) fn header(&self) -> &SegmentHeader {
        // SAFETY: offset 0, PAGE bytes mapped; SegmentHeader is atomics only.
        unsafe { self.at::<SegmentHeader>(0).as_ref() }
    }

    /// Pid of the process that created the segment (as it recorded it).
    pub(crate) fn creator_pid(&self) -> u32 {
        // Relaxed: written once before the segment was published.
        self.header().creator_pid.load(Ordering::Relaxed)
    }

    /// Clock ticks per nanosecond, as the creator measured them.
    pub(crate) fn ticks_per_ns(&self) -> f64 {
        // Relaxed: as `creator_pid`.
        f64::from_bits(self.header().ticks_per_ns_bits.load(Ordering::Relaxed))
    }

    pub(crate) fn control(&self) -> NonNull<ControlBlock> {
        self.at(self.geometry.control_offset)
    }

    pub(crate) fn sync_block(&self) -> &SyncBlock {
        // SAFETY: the sync block lies inside the mapping at a 64-aligned
        // offset of the validated geometry; it is atomics only.
        unsafe { self.at::<SyncBlock>(self.geometry.sync_offset).as_ref() }
    }

    /// The arena's control block and block area, if the ring has an arena.
    pub(crate) fn arena_parts(&self) -> Option<(NonNull<ArenaControl>, NonNull<u8>)> {
        (self.geometry.blocks_len > 0).then(|| {
            (
                self.at(self.geometry.arena_offset),
                self.at(self.geometry.blocks_offset),
            )
        })
    }

    pub(crate) fn slots(&self) -> NonNull<Slot> {
        self.at(self.geometry.slots_offset)
    }

    fn slot_array_entry(&self, i: usize) -> &Slot {
        assert!(i < self.geometry.capacity);
        // SAFETY: i < capacity; the slot array holds `capacity` slots of
        // atomics inside the mapping.
        unsafe { self.slots().add(i).as_ref() }
    }

    pub(crate) fn participants(&self) -> &[ParticipantEntry] {
        // SAFETY: the participant region holds MAX_PARTICIPANTS entries of
        // atomics inside the mapping, suitably aligned (page-aligned start).
        unsafe {
            core::slice::from_raw_parts(
                self.at::<ParticipantEntry>(self.geometry.participants_offset)
                    .as_ptr(),
                MAX_PARTICIPANTS,
            )
        }
    }
}

/// Guards `map` against truncation of its file unless the file is sealed
/// against shrinking; `geometry`: the whole ring is mapped (its slots are
/// poisoned after a truncation), `None`: the header page only.
#[cfg(not(miri))]
fn guard_unsealed(
    fd: &OwnedFd,
    map: &Mapping,
    geometry: Option<&Geometry>,
) -> Option<truncation::Guard> {
    let sealed = fcntl_get_seals(fd).is_ok_and(|s| s.contains(SealFlags::SHRINK));
    if sealed {
        return None;
    }
    truncation::guard(
        map.as_ptr(),
        map.len(),
        geometry.map(|g| (g.slots_offset, g.capacity)),
    )
}

/// The kind of a network or cluster file system, from `statfs`'s `f_type`
/// (`linux/magic.h`); `None` for a local one.
fn network_file_system(f_type: u64) -> Option<&'static str> {
    Some(match f_type {
        0x6969 => "NFS",
        0x517B => "SMB",
        0xFF53_4D42 => "CIFS",
        0xFE53_4D42 => "SMB2",
        0x00C3_6400 => "Ceph",
        0x0102_1997 => "9P",
        0x5346_414F => "AFS",
        0x7375_7245 => "Coda",
        0x6573_5546 => "FUSE",
        0x7461_636F => "OCFS2",
        0x0116_1970 => "GFS2",
        0x0BD0_0BD0 => "Lustre",
        _ => return None,
    })
}

/// Refuses a file on a network or cluster file system: liveness is a lock
/// on the file (`shm::liveness`), which such a file system may keep for a
/// machine that died, or not show to another machine.
fn refuse_network_file_system(fd: &OwnedFd, label: &str) -> Result<()> {
    if cfg!(miri) {
        return Ok(());
    }
    let f_type = rustix::fs::fstatfs(fd)
        .map_err(|e| RingError::io("fstatfs", e))?
        .f_type as u64;
    match network_file_system(f_type) {
        Some(file_system) => Err(RingError::UnsupportedFileSystem {
            segment: label.to_string(),
            file_system,
        }),
        None => Ok(()),
    }
}

/// A sealed memfd of `len` bytes and its shared mapping.
#[cfg(not(miri))]
fn anonymous_backing(len: usize) -> Result<(OwnedFd, Mapping)> {
    use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags};
    let fd = memfd_create(
        "fusion-ring",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| RingError::io("memfd_create", e))?;
    ftruncate(&fd, len as u64).map_err(|e| RingError::io("ftruncate", e))?;
    // No shrinking (SIGBUS for mappers), no growing, no further seals
    // (a peer could otherwise add F_SEAL_FUTURE_WRITE and stop new opens).
    fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
        .map_err(|e| RingError::io("fcntl(F_ADD_SEALS)", e))?;
    let map = Mapping::map_shared(fd.as_fd(), len)?;
    Ok((fd, map))
}

/// Miri cannot run memfd_create or mmap a file: the segment is a zeroed heap
/// allocation and the fd the read end of a pipe (so `as_fd` works, but the
/// fd names no segment; handing it to `from_fd` is not supported).
#[cfg(miri)]
fn anonymous_backing(len: usize) -> Result<(OwnedFd, Mapping)> {
    let (fd, _) = std::io::pipe().map_err(|e| RingError::Io {
        op: "pipe",
        source: crate::error::IoError::from_errno(e.raw_os_error().unwrap_or(0)),
    })?;
    Ok((fd.into(), Mapping::heap(len)?))
}

/// Miri cannot open, seal or map files: the named and fd paths give this
/// error under Miri (`ENOSYS`), only anonymous rings exist there.
fn unsupported_under_miri(op: &'static str) -> RingError {
    RingError::Io {
        op,
        source: crate::error::IoError::from_errno(libc::ENOSYS),
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some((name, pid)) = self.unlink.take() {
            if pid == crate::shm::process::current_pid() {
                let _ = shm::unlink(name.as_str());
            }
        }
    }
}

enum HeaderError {
    Version(u32),
    Corrupt(String),
}

/// Reads and checks a header; returns the geometry it describes.
fn read_header(
    h: &SegmentHeader,
    file_size: u64,
) -> Result<(Geometry, u32, u32), HeaderError> {
    use HeaderError::Corrupt;
    // A creator that has just made the file may not have written the header
    // yet: wait a little for the magic.
    let deadline = Instant::now() + INIT_WAIT;
    let magic = loop {
        // SYNC POINT "segment initialised" (Acquire; pairs with `initialize`).
        let m = h.magic.load(Ordering::Acquire);
        if m != 0 || Instant::now() >= deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if magic == 0 {
        return Err(Corrupt("not initialised: the magic is still zero".into()));
    }
    if magic != MAGIC {
        return Err(Corrupt(format!(
            "not a fusion-ring segment: magic {:02x?}, expected {:02x?}",
            magic.to_le_bytes(),
            MAGIC.to_le_bytes()
        )));
    }
    let r64 = |a: &crate::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let r32 = |a: &crate::atomic::AtomicU32| a.load(Ordering::Relaxed);
    let version = r32(&h.layout_version);
    if version != LAYOUT_VERSION {
        return Err(HeaderError::Version(version));
    }
    let hash = r64(&h.layout_hash);
    if hash != LAYOUT_HASH {
        return Err(Corrupt(format!(
            "layout hash {hash:#018x} does not match this build's {LAYOUT_HASH:#018x}"
        )));
    }
    let fixed = [
        ("header size", r32(&h.header_size) as u64, PAGE as u64),
        ("slot size", r32(&h.slot_size) as u64, SLOT_SIZE as u64),
        (
            "participant count",
            r32(&h.max_participants) as u64,
            MAX_PARTICIPANTS as u64,
        ),
    ];
    for (what, found, expected) in fixed {
        if found != expected {
            return Err(Corrupt(format!("{what} is {found}, expected {expected}")));
        }
    }
    let capacity = r64(&h.capacity);
    let capacity = usize::try_from(capacity)
        .map_err(|_| Corrupt(format!("capacity {capacity} is out of range")))?;
    check_capacity(capacity).map_err(|e| Corrupt(e.to_string()))?;
    let arena_len = r64(&h.arena_len);
    let max_message = r64(&h.max_message);
    let arena_ctrl = core::mem::size_of::<ArenaControl>().next_multiple_of(PAGE) as u64;
    let blocks_len = if arena_len == 0 {
        0
    } else if arena_len <= arena_ctrl || !(arena_len - arena_ctrl).is_multiple_of(64) {
        return Err(Corrupt(format!(
            "arena length {arena_len} is not a valid arena size"
        )));
    } else {
        arena_len - arena_ctrl
    };
    let config = Config::new(capacity)
        .arena_bytes(usize::try_from(blocks_len).unwrap_or(usize::MAX))
        .max_message(usize::try_from(max_message).unwrap_or(usize::MAX));
    config
        .validate()
        .map_err(|e| Corrupt(format!("header describes an impossible ring: {e}")))?;
    let g = config.geometry();
    if g.max_message as u64 != max_message {
        return Err(Corrupt(format!(
            "max message is {max_message}, but a ring without an arena has {}",
            g.max_message
        )));
    }
    let regions = [
        ("control offset", r64(&h.control_offset), g.control_offset),
        (
            "participants offset",
            r64(&h.participants_offset),
            g.participants_offset,
        ),
        ("slots offset", r64(&h.slots_offset), g.slots_offset),
        ("arena offset", r64(&h.arena_offset), g.arena_offset),
        ("arena length", r64(&h.arena_len), g.arena_len),
        ("total size", r64(&h.total_size), g.total_size),
    ];
    for (what, found, expected) in regions {
        if found != expected as u64 {
            return Err(Corrupt(format!(
                "{what} is {found}, but a ring of capacity {capacity} has {expected}"
            )));
        }
    }
    if file_size < g.total_size as u64 {
        return Err(Corrupt(format!(
            "file is truncated: {file_size} bytes, the header needs {}",
            g.total_size
        )));
    }
    if file_size > g.total_size as u64 {
        return Err(Corrupt(format!(
            "file is {file_size} bytes, but a ring of capacity {capacity} is exactly {}",
            g.total_size
        )));
    }
    let flags = r32(&h.flags);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Corrupt(format!("unknown header flags {flags:#x}")));
    }
    let subscribers = r32(&h.max_subscribers);
    let broadcast = flags & FLAG_BROADCAST != 0;
    if broadcast != (1..=MAX_SUBSCRIBERS as u32).contains(&subscribers)
        || (!broadcast && subscribers != 0)
    {
        return Err(Corrupt(format!(
            "subscriber limit {subscribers} on a {} ring (broadcast rings admit 1 to \
             {MAX_SUBSCRIBERS})",
            if broadcast { "broadcast" } else { "work-queue" }
        )));
    }
    if flags & FLAG_OVERWRITE != 0 && !broadcast {
        return Err(Corrupt(format!(
            "header flags {flags:#x} ask a work-queue ring to overwrite (only broadcast rings do)"
        )));
    }
    Ok((g, flags, subscribers))
}

/// Normalises a segment name to the `/name` form `shm_open` wants.
pub(crate) fn shm_name(name: &str) -> Result<String> {
    let bad = |reason| RingError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let body = name.strip_prefix('/').unwrap_or(name);
    if body.is_empty() {
        return Err(bad("empty"));
    }
    if body.len() > 254 {
        return Err(bad("longer than 254 bytes"));
    }
    if body.contains('/') {
        return Err(bad("contains '/' after the leading one"));
    }
    if body.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if body == "." || body == ".." {
        return Err(bad("is '.' or '..'"));
    }
    Ok(format!("/{body}"))
}

/// Removes a named segment (no check of who uses it).
pub(crate) fn unlink_named(name: &str) -> Result<()> {
    if cfg!(miri) {
        return Err(unsupported_under_miri("shm_unlink"));
    }
    let name = shm_name(name)?;
    shm::unlink(name.as_str()).map_err(|e| match e {
        Errno::NOENT => RingError::NotFound { name },
        e => RingError::io("shm_unlink", e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Network and cluster file systems are named; local ones pass, the
    /// memfds and `/dev/shm` files rings live in among them.
    #[test]
    fn network_file_systems_are_refused_and_local_ones_pass() {
        assert_eq!(network_file_system(0x6969), Some("NFS"));
        assert_eq!(network_file_system(0xFF53_4D42), Some("CIFS"));
        assert_eq!(network_file_system(0x0102_1997), Some("9P"));
        assert_eq!(network_file_system(0x0102_1994), None, "tmpfs");
        assert_eq!(network_file_system(0xEF53), None, "ext4");
        if cfg!(not(miri)) {
            let (fd, _map) = anonymous_backing(PAGE).unwrap();
            assert!(refuse_network_file_system(&fd, "memfd").is_ok());
        }
        let err = RingError::UnsupportedFileSystem {
            segment: "fd 7".into(),
            file_system: "NFS",
        };
        assert!(err.to_string().contains("fd 7 is on a network or cluster file system (NFS)"), "{err}");
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(shm_name("q").unwrap(), "/q");
        assert_eq!(shm_name("/q").unwrap(), "/q");
        for bad in ["", "/", "a/b", "/a/b", "..", "a\0b"] {
            assert!(
                matches!(shm_name(bad), Err(RingError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(shm_name(&"x".repeat(255)).is_err());
    }
}
