//! A `FusionRing` shared with child processes, byte-exact round trips of
//! its messages, and the parent's watched calls.
//!
//! Children are the test binary itself, re-run as one of its `child_*`
//! tests (the test kit's `child` module). Parameters travel in
//! `FUSION_XP_*` variables. Every child is killed and reaped if the parent
//! gives up, and the parent never blocks without a deadline: its blocking
//! calls are `send_deadline` / `recv_deadline` with a deadline a short slice
//! ahead (the very futex wait `send_blocking` / `recv_blocking` use, which
//! are those calls with no deadline), and between slices it checks that
//! its children live and that the test's deadline has not passed
//! ([`Watch`]). Children use the unbounded `send_blocking` /
//! `recv_blocking`: if they hang, the parent kills them.
//!
//! Message `i` of a stream has bytes derived from `i` and the byte index
//! (`testkit::rng::fill`); when it is at least 8 bytes long its first 8
//! bytes are `i` little-endian.

use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, Loan, LoanError, PriorityClass, RingError};
use testkit::child::{child_var, Watch};
use testkit::names::{unique_name, PathGuard};
use testkit::rng::mix;

use super::{recv_fd, send_fd};

/// Longest a whole test (or a child) may take before it is failed.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Longest single blocking call of the parent between two checks.
pub const SLICE: Duration = Duration::from_millis(250);

/// `name:<ring name>` or `sock:<unix socket path>` (memfd over SCM_RIGHTS).
pub const TARGET_VAR: &str = "FUSION_XP_TARGET";
pub const COUNT_VAR: &str = "FUSION_XP_COUNT";
pub const ID_VAR: &str = "FUSION_XP_ID";
pub const OUT_VAR: &str = "FUSION_XP_OUT";

// ---------------------------------------------------------------------------
// Message contents

/// The index a message of at least 8 bytes carries.
pub fn header(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

pub fn priority_of(i: u64) -> PriorityClass {
    PriorityClass::ALL[(mix(i ^ 0xABCD) % PriorityClass::COUNT as u64) as usize]
}

// ---------------------------------------------------------------------------
// Processes

pub fn unique(tag: &str) -> String {
    unique_name(&format!("fr-fxp-{tag}"))
}

pub fn child_count() -> u64 {
    child_var(COUNT_VAR).parse().expect("child: count")
}

/// Spin, then yield, then nap; says every 256 steps that it is time to
/// look at the clock and the children.
pub struct Backoff(pub u32);

impl Backoff {
    pub fn step(&mut self) -> bool {
        self.0 = self.0.wrapping_add(1);
        if self.0 < 64 {
            std::hint::spin_loop();
        } else if self.0 < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.0.is_multiple_of(256)
    }
}

// --- rings and fds ------------------------------------------------------------

/// How a child reaches the parent's ring.
pub enum Share {
    Named(String),
    /// A memfd ring; the socket the fd is handed over on.
    Socket {
        listener: UnixListener,
        path: PathGuard,
    },
}

impl Share {
    /// Creates the ring: named under `/dev/shm`, or an anonymous memfd.
    pub fn create(named: bool, config: &Config) -> (FusionRing, Share) {
        if named {
            let name = unique("ring");
            let ring = FusionRing::create(&name, config).expect("create named ring");
            (ring, Share::Named(name))
        } else {
            let ring = FusionRing::with_config(config).expect("create memfd ring");
            let path = PathGuard(std::env::temp_dir().join(format!("{}.sock", unique("sock"))));
            let listener = UnixListener::bind(&path.0).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            (ring, Share::Socket { listener, path })
        }
    }

    pub fn target(&self) -> String {
        match self {
            Share::Named(name) => format!("name:{name}"),
            Share::Socket { path, .. } => format!("sock:{}", path.0.to_str().expect("utf-8")),
        }
    }

    /// Hands the memfd to every one of `children` that connects (named
    /// rings: nothing to do).
    pub fn hand_over(&self, ring: &FusionRing, watch: &mut Watch<'_>) {
        let Share::Socket { listener, .. } = self else {
            return;
        };
        for _ in 0..watch.children.len() {
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        watch.check("waiting for a child to connect");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).expect("blocking");
            send_fd(&stream, ring.as_fd());
        }
    }
}

/// The child's side of [`Share`].
pub fn open_target() -> FusionRing {
    let target = child_var(TARGET_VAR);
    if let Some(name) = target.strip_prefix("name:") {
        FusionRing::open(name).unwrap_or_else(|e| panic!("child: open {name}: {e}"))
    } else if let Some(path) = target.strip_prefix("sock:") {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("child: connect {path}: {e}"));
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let ring =
            FusionRing::from_fd(recv_fd(&stream)).unwrap_or_else(|e| panic!("child: from_fd: {e}"));
        assert!(ring.as_ring().label().starts_with("fd "));
        ring
    } else {
        panic!("child: bad target {target}")
    }
}

// --- the parent's watched blocking calls -------------------------------------

/// `send_blocking` under the watchdog (see the module docs).
pub fn send_watched(
    ring: &FusionRing,
    data: &[u8],
    priority: PriorityClass,
    watch: &mut Watch<'_>,
) {
    loop {
        match ring.send_deadline(data, priority, Instant::now() + SLICE) {
            Ok(()) => return,
            Err(RingError::Timeout) => watch.check("blocked in send"),
            Err(e) => panic!("parent: send of {} bytes: {e}", data.len()),
        }
    }
}

/// A loan of `len` bytes, waiting while the arena is exhausted.
pub fn loan_watched<'r>(ring: &'r FusionRing, len: usize, watch: &mut Watch<'_>) -> Loan<'r> {
    let mut backoff = Backoff(0);
    loop {
        match ring.loan(len) {
            Ok(loan) => {
                assert_eq!(loan.len(), len);
                return loan;
            }
            Err(RingError::ArenaExhausted { len: l }) => {
                assert_eq!(l, len, "ArenaExhausted names the length asked for");
                if backoff.step() {
                    watch.check("waiting for an arena block");
                }
            }
            Err(e) => panic!("parent: loan of {len} bytes: {e}"),
        }
    }
}

/// Sends a filled loan, waiting while the ring is full.
pub fn send_loan_watched<'r>(
    ring: &'r FusionRing,
    mut loan: Loan<'r>,
    priority: PriorityClass,
    watch: &mut Watch<'_>,
) {
    loop {
        match ring.send_loan(loan, priority) {
            Ok(()) => return,
            Err(LoanError {
                error: RingError::Full,
                loan: back,
            }) => {
                loan = back;
                if ring.sync().wait_not_full_timeout(SLICE) == Err(RingError::Timeout) {
                    watch.check("blocked in send_loan");
                }
            }
            Err(e) => panic!("parent: send_loan: {}", e.error),
        }
    }
}

/// Carves one block of the largest class and gives it back, so the arena
/// always has a block for the largest message. (Blocks are never merged:
/// without this, a long run of small blocks could carve the whole arena
/// before the first maximum-size message, which could then never be sent.)
pub fn precarve_largest(ring: &FusionRing) {
    drop(
        ring.loan(ring.max_message())
            .expect("loan of the largest size"),
    );
    assert_eq!(ring.stats().arena.blocks_in_use, 0);
}

pub fn assert_arena_empty(who: &str, ring: &FusionRing) {
    let a = ring.stats().arena;
    assert_eq!(
        (a.blocks_in_use, a.bytes_in_use),
        (0, 0),
        "{who}: arena blocks / bytes still in use: {a:?}"
    );
}

/// Voluntary context switches of the calling thread so far (it slept).
pub fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("voluntary_ctxt_switches line")
        .trim()
        .parse()
        .expect("a number")
}

/// The number after `key` in the child's output (libtest may print its
/// `test name ... ` prefix on the same line).
pub fn report_value(output: &str, key: &str) -> u64 {
    let at = output
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in the child's output:\n{output}"));
    output[at + key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in:\n{output}"))
}
