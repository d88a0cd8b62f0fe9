//! How a ring is created.

use crate::shm::layout::check_capacity;
use crate::error::{Result, RingError};

/// Default number of slots (the seeds' `with_default_capacity`).
pub const DEFAULT_CAPACITY: usize = 256;
/// Default size of the zero-copy arena's block area: 32 MiB. (Memory is
/// only committed as blocks are first used.)
pub const DEFAULT_ARENA_BYTES: usize = 32 << 20;
/// Default largest message: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;
/// Largest arena block area: 64 GiB (block indexes are 32-bit, 64-B units).
pub const MAX_ARENA_BYTES: usize = 64 << 30;

/// Options for creating a ring: capacity, zero-copy arena size and largest
/// message, timestamps and wake-ups, and for named segments the file mode
/// and whether dropping the creator removes the name.
///
/// Defaults: 256 slots, a 32 MiB arena, 1 MiB messages, timestamps and
/// wake-ups on, mode 0600, name removed with the creator.
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
    replace_stale: bool,
    timestamps: bool,
    arena_bytes: usize,
    max_message: usize,
    wakeups: bool,
    single_producer: bool,
    single_consumer: bool,
    /// Broadcast ring: how many subscribers it admits (0: a work queue).
    broadcast: usize,
    /// Broadcast ring: what the publisher does when the slowest subscriber
    /// is a ring behind.
    overflow: Overflow,
}

/// What the publisher of a broadcast ring does when its slowest subscriber
/// is a ring behind ([`Config::overflow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The publisher waits for the slowest live subscriber: a send returns
    /// `Full` (a blocking send waits), and every subscriber gets every
    /// message.
    #[default]
    Block,
    /// The publisher never waits: it writes over the oldest message, and a
    /// subscriber that fell a ring behind is told how many messages it
    /// missed ([`RingError::Lagged`]), then goes on from the oldest one
    /// still in the ring (as tokio's `broadcast` channel).
    Overwrite,
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
            replace_stale: false,
            timestamps: true,
            arena_bytes: DEFAULT_ARENA_BYTES,
            max_message: DEFAULT_MAX_MESSAGE,
            wakeups: true,
            single_producer: false,
            single_consumer: false,
            broadcast: 0,
            overflow: Overflow::Block,
        }
    }

    /// The config of [`crate::UltraFastRing::new`]: `capacity` slots of
    /// inline messages only, no zero-copy arena and no wake-ups (the hot
    /// path pays for neither; blocked callers poll). Pass it to
    /// [`crate::UltraFastRing::create`] to get the same ring under a name.
    ///
    /// ```
    /// use fusion_ring::{Config, UltraFastRing};
    /// let anonymous = UltraFastRing::new(64)?;
    /// let configured = UltraFastRing::with_config(&Config::inline_only(64))?;
    /// assert_eq!(anonymous.as_ring().max_message(), 40);
    /// assert_eq!(configured.as_ring().max_message(), 40);
    /// assert!(!Config::inline_only(64).has_wakeups());
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn inline_only(capacity: usize) -> Self {
        Self::new(capacity).arena_bytes(0).wakeups(false)
    }

    /// File mode of a named segment (default `0o600`: owner only). Applied
    /// exactly, whatever the umask.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether `create` may replace a stale ring of the same name: one that
    /// no running process has a handle on (its creator and participants
    /// exited or died, see [`crate::inspect::RingInfo::is_stale`]). Default
    /// `false`: `create` reports `AlreadyExists`. A ring in use, or a file
    /// that is not a readable ring of this version, is never replaced.
    ///
    /// ```
    /// use fusion_ring::{Config, Ring, RingError};
    /// let name = format!("doc-stale-{}", std::process::id());
    /// // A ring left behind: its creator kept the name and went away.
    /// drop(Ring::create(&name, &Config::new(8).unlink_on_drop(false))?);
    /// assert!(matches!(Ring::create(&name, &Config::new(8)), Err(RingError::AlreadyExists { .. })));
    /// let ring = Ring::create(&name, &Config::new(8).replace_stale(true))?;
    /// # drop(ring);
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }

    /// Whether `create` replaces a stale ring of the same name.
    pub fn replaces_stale(&self) -> bool {
        self.replace_stale
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

    /// Whether one handle at a time may send (default `false`: any number,
    /// in any processes). Fixed at creation and recorded in the segment, so
    /// every process applies it: the first handle that sends holds the
    /// producer role until it is dropped or its process dies, and another
    /// handle's send meanwhile fails with [`RingError::RoleTaken`], naming
    /// the holder's process (nothing is sent). A clone, or a handle a
    /// forked child uses, is another handle. A ring single on both sides
    /// also runs a faster protocol (no CAS; the consumer writes no slot
    /// line, and hands consumed slots back with one store per receive).
    ///
    /// ```
    /// use fusion_ring::{Config, RingError, UltraFastRing, PriorityClass};
    /// let ring = UltraFastRing::with_config(&Config::inline_only(64).single_producer(true))?;
    /// ring.send_fast(b"mine", PriorityClass::Normal)?;
    /// let other = ring.clone();
    /// assert!(matches!(
    ///     other.send_fast(b"also mine?", PriorityClass::Normal),
    ///     Err(RingError::RoleTaken { role: "producer", .. })
    /// ));
    /// drop(ring); // gives the role back
    /// other.send_fast(b"now mine", PriorityClass::Normal)?;
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn single_producer(mut self, single: bool) -> Self {
        self.single_producer = single;
        self
    }

    /// Whether one handle at a time may receive (default `false`); as
    /// [`Config::single_producer`], for the consumer role.
    pub fn single_consumer(mut self, single: bool) -> Self {
        self.single_consumer = single;
        self
    }

    /// Makes a broadcast ring (publish-subscribe) admitting up to
    /// `max_subscribers` subscribers (1 ..= [`MAX_SUBSCRIBERS`]): one
    /// [`crate::Publisher`] sends, and every [`crate::Subscriber`] receives
    /// every message sent after it joined, in order. A slot is reused once
    /// every live subscriber has read it: the publisher waits for the
    /// slowest (`Full`, or a blocking send waits). Fixed at creation and
    /// recorded in the segment.
    ///
    /// Messages over 40 bytes travel in one arena block, published once
    /// and read by every subscriber: a subscriber copies it out (`recv`,
    /// or a receive that gives a [`crate::Payload`], which then holds the
    /// copy); zero-copy payloads shared by the subscribers are not built
    /// yet. A slot keeps its block until the publisher rewrites it, or,
    /// when the arena runs out, until every live subscriber has read it.
    ///
    /// ```
    /// use fusion_ring::{Config, Publisher, Subscriber};
    /// let publisher = Publisher::with_config(&Config::new(64).broadcast(4))?;
    /// let a = Subscriber::from_publisher(&publisher)?;
    /// let b = Subscriber::from_publisher(&publisher)?;
    /// publisher.send(b"tick")?;
    /// let mut buf = [0u8; 40];
    /// assert_eq!(a.recv(&mut buf)?, 4);
    /// assert_eq!(b.recv(&mut buf)?, 4); // b gets it too
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    ///
    /// [`MAX_SUBSCRIBERS`]: crate::MAX_SUBSCRIBERS
    pub fn broadcast(mut self, max_subscribers: usize) -> Self {
        self.broadcast = max_subscribers;
        self.single_producer = true;
        self
    }

    /// What the publisher of a broadcast ring does when its slowest
    /// subscriber is a ring behind: wait ([`Overflow::Block`], the default)
    /// or write over the oldest message ([`Overflow::Overwrite`]). Only for
    /// broadcast rings; fixed at creation and recorded in the segment.
    ///
    /// ```
    /// use fusion_ring::{Config, Overflow, Publisher, RingError, Subscriber};
    /// let config = Config::new(4).broadcast(2).overflow(Overflow::Overwrite);
    /// let publisher = Publisher::with_config(&config)?;
    /// let sub = Subscriber::from_publisher(&publisher)?;
    /// for tick in 0..10u8 {
    ///     publisher.send(&[tick])?; // never Full
    /// }
    /// let mut buf = [0u8; 40];
    /// // Ticks 0-5 were overwritten; the subscriber goes on from tick 6.
    /// assert_eq!(sub.recv(&mut buf), Err(RingError::Lagged { missed: 6 }));
    /// assert_eq!((sub.recv(&mut buf)?, buf[0]), (1, 6));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The overflow policy ([`Config::overflow`]).
    pub fn overflow_policy(&self) -> Overflow {
        self.overflow
    }

    /// On a broadcast ring, how many subscribers it admits (`None`: a work
    /// queue).
    pub fn max_subscribers(&self) -> Option<usize> {
        (self.broadcast != 0).then_some(self.broadcast)
    }

    /// Whether one handle at a time may send.
    pub fn is_single_producer(&self) -> bool {
        self.single_producer
    }

    /// Whether one handle at a time may receive.
    pub fn is_single_consumer(&self) -> bool {
        self.single_consumer
    }

    pub(crate) fn header_flags(&self) -> u32 {
        let mut flags = 0;
        if self.single_producer {
            flags |= crate::shm::layout::FLAG_SINGLE_PRODUCER;
        }
        if self.single_consumer {
            flags |= crate::shm::layout::FLAG_SINGLE_CONSUMER;
        }
        if !self.timestamps {
            flags |= crate::shm::layout::FLAG_NO_TIMESTAMPS;
        }
        if self.wakeups {
            flags |= crate::shm::layout::FLAG_WAKEUPS;
        }
        if self.broadcast != 0 {
            flags |= crate::shm::layout::FLAG_BROADCAST;
        }
        if self.overflow == Overflow::Overwrite {
            flags |= crate::shm::layout::FLAG_OVERWRITE;
        }
        flags
    }

    pub(crate) fn geometry(&self) -> crate::shm::layout::Geometry {
        crate::shm::layout::Geometry::new(self.capacity, self.arena_bytes, self.max_message_size())
    }

    /// Size of the zero-copy arena's block area in bytes (rounded up to 64;
    /// 0: no arena, inline messages only). Pages are committed on first use.
    pub fn arena_bytes(mut self, bytes: usize) -> Self {
        self.arena_bytes = bytes.next_multiple_of(64);
        self
    }

    /// Largest message the ring accepts (zero-copy above 40 bytes). It must
    /// fit the arena: one block of its size class, header included.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Whether senders and receivers wake blocked peers (default `true`).
    /// It costs a `SeqCst` fence per send and per receive; a ring made
    /// without it can still be waited on, by polling (see [`crate::RingSync`]).
    pub fn wakeups(mut self, on: bool) -> Self {
        self.wakeups = on;
        self
    }

    /// Bytes of arena block area.
    pub fn arena_size(&self) -> usize {
        self.arena_bytes
    }

    /// Largest message.
    pub fn max_message_size(&self) -> usize {
        if self.arena_bytes == 0 {
            crate::shm::layout::INLINE_MAX
        } else {
            self.max_message
        }
    }

    /// Whether wake-ups are on.
    pub fn has_wakeups(&self) -> bool {
        self.wakeups
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

    /// Checks every setting (`InvalidCapacity` / `InvalidConfig` name the
    /// value and the limit).
    ///
    /// ```
    /// use fusion_ring::{Config, RingError};
    /// let err = Config::new(64).arena_bytes(1 << 20).max_message(4 << 20).validate();
    /// assert!(matches!(err, Err(RingError::InvalidConfig { field: "max_message", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_capacity(self.capacity)?;
        let bad = |field, value: usize, reason: String| {
            Err(RingError::InvalidConfig {
                field,
                value: value as u64,
                reason,
            })
        };
        if self.broadcast > crate::shm::layout::MAX_SUBSCRIBERS {
            return bad(
                "broadcast",
                self.broadcast,
                format!(
                    "a ring admits at most {} subscribers",
                    crate::shm::layout::MAX_SUBSCRIBERS
                ),
            );
        }
        if self.broadcast == 0 && self.overflow == Overflow::Overwrite {
            return bad(
                "overflow",
                1,
                "only a broadcast ring (Config::broadcast) overwrites; a work queue's producer \
                 waits for its consumers"
                    .into(),
            );
        }
        if self.broadcast != 0 && self.single_consumer {
            return bad(
                "single_consumer",
                1,
                "a broadcast ring has subscribers, not consumers".into(),
            );
        }
        if self.arena_bytes == 0 {
            return Ok(());
        }
        if self.arena_bytes > MAX_ARENA_BYTES {
            return bad(
                "arena_bytes",
                self.arena_bytes,
                format!("the limit is {MAX_ARENA_BYTES}"),
            );
        }
        let largest = crate::shm::layout::class_payload(crate::shm::layout::MAX_CLASSES - 1);
        if self.max_message <= crate::shm::layout::INLINE_MAX || self.max_message > largest {
            return bad(
                "max_message",
                self.max_message,
                format!(
                    "must be between {} and {largest} with an arena",
                    crate::shm::layout::INLINE_MAX + 1
                ),
            );
        }
        let block = crate::shm::layout::block_size(crate::shm::layout::class_for(self.max_message));
        if block > self.arena_bytes {
            return bad(
                "max_message",
                self.max_message,
                format!(
                    "its {block}-byte block does not fit the {}-byte arena",
                    self.arena_bytes
                ),
            );
        }
        Ok(())
    }
}
