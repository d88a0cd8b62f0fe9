//! The bench's data: one row per measurement (named by a [`RowId`],
//! carrying its own [`Measure`]), and the report that holds them with the
//! machine and the verdicts on the targets.
//!
//! Nothing here judges or formats: `judge` reads these types, `render`,
//! `json` and `plot` show them.

use serde::Serialize;

use super::paths::{Samples, Stream, Syscalls};
use super::stats;

use super::machine::Machine;

/// Messages per publish in the `batch` streaming row.
pub const BATCH: usize = 32;

/// Bytes per message in the `batch-small` row (market ticks, sensor
/// samples, ids).
pub const SMALL: usize = 8;

/// Every row the bench produces. The zero-copy rows carry their message
/// size (one row per size asked for); every other path has one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowId {
    /// One cache line bounced between the cores: the physical floor.
    Floor,
    /// Inline 40-byte messages through `UltraFastRing`.
    InlineLatency,
    /// The same through rings with one producer and one consumer.
    SpscInlineLatency,
    /// Zero-copy messages of this size written in place (loan API).
    LoanLatency(usize),
    /// Zero-copy messages of this size sent by copying a buffer.
    CopyLatency(usize),
    /// A receiver asleep in `recv_blocking`, woken by a send.
    Blocking,
    /// Shared memory signalled with eventfds, the receiver asleep in `read`.
    Eventfd,
    /// A pair of Linux pipes.
    PipeLatency,
    /// A Unix domain stream socket.
    UdsLatency,
    /// Inline 40-byte messages streamed through `UltraFastRing`.
    InlineStream,
    /// The same through a ring with one producer and one consumer.
    SpscInlineStream,
    /// One-way latency of unstamped 40-byte messages through rings with
    /// one producer and one consumer: what the two clock reads of a
    /// stamped message cost each hop.
    SpscUnstampedLatency,
    /// The same, unstamped (`Config::timestamps(false)`): what the two
    /// clock reads of a stamped message cost a stream.
    SpscUnstampedStream,
    /// The same, [`BATCH`] per publish and one claim per batch.
    BatchStream,
    /// [`BATCH`] messages of [`SMALL`] bytes per publish, a slot line
    /// each: read against the packed-records limit of such messages, it
    /// shows what a batch format that packs small messages could gain.
    SmallBatchStream,
    /// Zero-copy messages of this size streamed through the loan API.
    LoanStream(usize),
    /// Zero-copy messages of this size streamed with a copying send.
    CopyStream(usize),
    /// 40-byte messages streamed through a pipe.
    PipeStream,
    /// 40-byte messages streamed through a Unix domain socket.
    UdsStream,
    /// Zero-copy messages of this size streamed through the loan API with
    /// every line used: the writer fills the loan, the reader reads every
    /// line (`paths::full_loan_stream`).
    FullLoanStream(usize),
    /// Reference: 40-byte messages between two threads through rtrb's
    /// single-producer single-consumer ring (no process boundary).
    RtrbStream,
    /// Reference: the same through crossbeam's `ArrayQueue`.
    ArrayQueueStream,
    /// Inline 40-byte messages through a broadcast ring (`Publisher` ->
    /// one `Subscriber` in another process), one-way latency.
    BroadcastLatency,
    /// The same streamed, to this many subscribers (1 or 2, threads of one
    /// other process).
    BroadcastStream(usize),
}

/// What a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One-way time of single messages (round trips halved).
    Latency,
    /// A stream of messages one way, timed as a whole.
    Throughput,
}

impl Kind {
    /// As shown in the table and written to JSON (`kind`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Throughput => "throughput",
        }
    }
}

impl RowId {
    /// The path's name, as shown in the table and written to JSON (`name`).
    pub fn name(self) -> &'static str {
        use RowId::*;
        match self {
            Floor => "floor",
            InlineLatency | InlineStream => "inline",
            SpscInlineLatency | SpscInlineStream => "inline-spsc",
            SpscUnstampedStream | SpscUnstampedLatency => "inline-spsc-unstamped",
            LoanLatency(_) | LoanStream(_) => "zerocopy-loan",
            CopyLatency(_) | CopyStream(_) => "zerocopy-copy",
            Blocking => "blocking",
            Eventfd => "eventfd",
            PipeLatency | PipeStream => "pipe",
            UdsLatency | UdsStream => "uds",
            BatchStream => "batch",
            SmallBatchStream => "batch-small",
            FullLoanStream(_) => "zerocopy-full",
            RtrbStream => "rtrb-threads",
            ArrayQueueStream => "arrayqueue-threads",
            BroadcastLatency | BroadcastStream(1) => "broadcast",
            BroadcastStream(_) => "broadcast-2sub",
        }
    }

    /// Whether the row is a latency or a streaming row.
    pub fn kind(self) -> Kind {
        use RowId::*;
        match self {
            Floor | InlineLatency | SpscInlineLatency | SpscUnstampedLatency | LoanLatency(_)
            | CopyLatency(_) | Blocking | Eventfd | PipeLatency | UdsLatency | BroadcastLatency => {
                Kind::Latency
            }
            InlineStream | SpscInlineStream | SpscUnstampedStream | BatchStream
            | SmallBatchStream | LoanStream(_) | CopyStream(_) | PipeStream | UdsStream
            | FullLoanStream(_) | RtrbStream | ArrayQueueStream | BroadcastStream(_) => {
                Kind::Throughput
            }
        }
    }

    /// Bytes per message.
    pub fn size(self) -> usize {
        use RowId::*;
        match self {
            Floor => 64, // the line bounced, though only a word of it is written
            Blocking => 1,
            Eventfd => 8, // the eventfd counter
            SmallBatchStream => SMALL,
            LoanLatency(size) | CopyLatency(size) | LoanStream(size) | CopyStream(size)
            | FullLoanStream(size) => size,
            InlineLatency | SpscInlineLatency | SpscUnstampedLatency | PipeLatency | UdsLatency
            | InlineStream | SpscInlineStream | SpscUnstampedStream | BatchStream | PipeStream
            | UdsStream | RtrbStream | ArrayQueueStream | BroadcastLatency | BroadcastStream(_) => {
                40
            }
        }
    }

    /// Messages per publish, for the rows that publish several at once.
    pub fn batch_size(self) -> Option<usize> {
        matches!(self, RowId::BatchStream | RowId::SmallBatchStream).then_some(BATCH)
    }

    /// Whether the row streams through one of our rings, so that the futex
    /// system calls counted while it ran are this library's.
    pub fn streams_through_a_ring(self) -> bool {
        use RowId::*;
        matches!(
            self,
            InlineStream
                | SpscInlineStream
                | SpscUnstampedStream
                | BatchStream
                | SmallBatchStream
                | LoanStream(_)
                | CopyStream(_)
                | FullLoanStream(_)
                | BroadcastStream(_)
        )
    }

    /// The size of a zero-copy row taken through the loan API.
    pub fn loan_size(self) -> Option<usize> {
        match self {
            RowId::LoanLatency(size) | RowId::LoanStream(size) => Some(size),
            _ => None,
        }
    }
}

/// A latency row's figures, in ns unless named ticks.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Median one-way time.
    pub median_ns: f64,
    /// 99th percentile one-way time.
    pub p99_ns: f64,
    /// Median one-way time in TSC ticks, as read.
    pub median_ticks: u64,
    /// Every sample in ns, ascending: the distribution the plot draws.
    pub sorted_ns: Vec<f64>,
}

impl Latency {
    /// The figures of one-way samples in ticks.
    pub fn from_samples(s: &Samples, ticks_per_ns: f64) -> Self {
        let ns = |t: u64| t as f64 / ticks_per_ns;
        let mut sorted = s.clone();
        sorted.sort_unstable();
        let median_ticks = stats::quantile_sorted(&sorted, 0.5);
        Latency {
            median_ns: ns(median_ticks),
            p99_ns: ns(stats::quantile_sorted(&sorted, 0.99)),
            median_ticks,
            sorted_ns: sorted.iter().map(|&t| ns(t)).collect(),
        }
    }
}

/// A streaming row's figures, per message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Wall-clock ns per message.
    pub ns_per_msg: f64,
    /// Messages per wall-clock second.
    pub msgs_per_sec: f64,
    /// TSC ticks per message.
    pub ticks_per_msg: f64,
    /// Futex system calls on rings each side made while the stream ran;
    /// `None` for the rows that use no ring (see
    /// [`RowId::streams_through_a_ring`]).
    pub syscalls: Option<Syscalls>,
}

impl Throughput {
    /// The figures of a stream's totals: ns and messages/s from wall-clock
    /// time, ticks from the TSC; the syscall counts kept for row `id` only
    /// if it streams through a ring.
    pub fn from_stream(id: RowId, t: Stream) -> Self {
        Throughput {
            ns_per_msg: t.secs * 1e9 / t.messages as f64,
            msgs_per_sec: t.messages as f64 / t.secs,
            ticks_per_msg: t.ticks as f64 / t.messages as f64,
            syscalls: id.streams_through_a_ring().then_some(t.syscalls),
        }
    }
}

/// A row's figures, of the kind its [`RowId`] names.
#[derive(Debug, Clone)]
pub enum Measure {
    /// The figures of a [`Kind::Latency`] row.
    Latency(Latency),
    /// The figures of a [`Kind::Throughput`] row.
    Throughput(Throughput),
}

impl Measure {
    /// The kind these figures are of.
    pub fn kind(&self) -> Kind {
        match self {
            Measure::Latency(_) => Kind::Latency,
            Measure::Throughput(_) => Kind::Throughput,
        }
    }
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which row: the path, its kind and its size.
    pub id: RowId,
    /// Its figures, of the kind `id` names.
    pub measure: Measure,
    /// Cache-line ping-pong one-way ns measured just before this row.
    pub floor_probe_ns: f64,
}

/// A target and whether this run met it, as shown and written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// What is measured, e.g. `inline one-way latency / ring floor`.
    pub what: String,
    /// The bound, e.g. `<= 1.4`.
    pub goal: String,
    /// The value this run measured, with what it was computed from; or
    /// `not measured: ` and why.
    pub measured: String,
    /// Whether the value is within the bound. `false` for a target not
    /// measured: never claimed met.
    pub met: bool,
    /// Met, missed, not measured, or shown for information only.
    pub status: Status,
}

/// How a target came out, as written to JSON (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// One of DESIGN.md section 9's targets, within its bound.
    Met,
    /// One of DESIGN.md section 9's targets, beyond its bound.
    Missed,
    /// One of DESIGN.md section 9's targets that this run could not judge:
    /// a figure it reads was not taken (`measured` says which and why).
    NotMeasured,
    /// Not one of DESIGN.md section 9's targets: shown for information,
    /// `met` says whether its bound held.
    Informative,
}

/// `paths::single_thread` with timestamps on and off, ticks per
/// `send_fast` + `recv_fast`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SingleThread {
    /// With the ring's default timestamps (two clock reads per message).
    pub stamped: f64,
    /// With timestamps off.
    pub unstamped: f64,
    /// With timestamps off, on a ring with one producer and one consumer
    /// (`Config::single_producer` / `single_consumer`; one handle holds
    /// both roles): no locked instruction at all.
    pub single_unstamped: f64,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Report {
    /// Where the run was, and the limits that are not rows.
    pub machine: Machine,
    /// In the order they were taken.
    pub results: Vec<Row>,
    /// Empty until `judge` runs.
    pub targets: Vec<Verdict>,
    /// Ticks of one `send_fast` + `recv_fast` on one thread (median of
    /// runs), with the ring's default timestamps and without.
    pub single_thread_ticks: Option<SingleThread>,
    /// memcpy bandwidth (bytes/s) into one buffer, and the size copied:
    /// the largest zero-copy size.
    pub memcpy: Option<(usize, f64)>,
    /// The TSC rate every tick figure was converted with.
    pub ticks_per_ns: f64,
}

impl Report {
    /// An empty report of a run on `machine`.
    pub fn new(machine: Machine, ticks_per_ns: f64) -> Self {
        Report {
            machine,
            results: Vec::new(),
            targets: Vec::new(),
            single_thread_ticks: None,
            memcpy: None,
            ticks_per_ns,
        }
    }

    /// Adds a latency row from its one-way samples in ticks.
    pub fn latency(&mut self, id: RowId, s: &Samples, probe: f64) {
        let latency = Latency::from_samples(s, self.ticks_per_ns);
        self.push(id, Measure::Latency(latency), probe);
    }

    /// Adds a streaming row from the stream's totals.
    pub fn throughput(&mut self, id: RowId, t: Stream, probe: f64) {
        let t = Throughput::from_stream(id, t);
        self.push(id, Measure::Throughput(t), probe);
    }

    fn push(&mut self, id: RowId, measure: Measure, floor_probe_ns: f64) {
        // A latency row under a streaming name would be found by no lookup.
        assert_eq!(id.kind(), measure.kind(), "row {id:?}");
        self.results.push(Row {
            id,
            measure,
            floor_probe_ns,
        });
    }

    /// The row `id` (the first, if a size was asked for twice).
    pub fn row(&self, id: RowId) -> Option<&Row> {
        self.results.iter().find(|r| r.id == id)
    }

    /// The figures of latency row `id`.
    pub fn latency_of(&self, id: RowId) -> Option<&Latency> {
        match &self.row(id)?.measure {
            Measure::Latency(l) => Some(l),
            Measure::Throughput(_) => None,
        }
    }

    /// The figures of streaming row `id`.
    pub fn stream_of(&self, id: RowId) -> Option<&Throughput> {
        match &self.row(id)?.measure {
            Measure::Throughput(t) => Some(t),
            Measure::Latency(_) => None,
        }
    }

    /// The sizes of the zero-copy rows taken through the loan API, either
    /// kind, in the order taken.
    pub fn loan_sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.results.iter().filter_map(|r| r.id.loan_size())
    }
}

/// A size as the table shows it: whole MiB or KiB, else bytes.
pub fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::new(Machine::plain(2.0), 2.0)
    }

    fn stream(messages: u64, ticks: u64, secs: f64) -> Stream {
        Stream {
            messages,
            ticks,
            secs,
            syscalls: Syscalls {
                sender: 3,
                receiver: 4,
            },
        }
    }

    #[test]
    fn latency_and_stream_rows_of_a_path_are_found_apart() {
        let mut r = report();
        r.latency(RowId::InlineLatency, &vec![400, 200, 300, 100], 1.0);
        r.throughput(RowId::InlineStream, stream(1000, 50_000, 2e-5), 2.0);
        let l = r.latency_of(RowId::InlineLatency).expect("latency row");
        assert_eq!((l.median_ticks, l.median_ns, l.p99_ns), (300, 150.0, 200.0));
        assert_eq!(l.sorted_ns, [50.0, 100.0, 150.0, 200.0]);
        let t = r.stream_of(RowId::InlineStream).expect("stream row");
        assert_eq!((t.ns_per_msg, t.ticks_per_msg), (20.0, 50.0));
        assert_eq!(t.syscalls.map(Syscalls::total), Some(7));
        // A pipe's syscalls are not the futex calls counted: none kept.
        r.throughput(RowId::PipeStream, stream(1000, 50_000, 2e-5), 2.0);
        assert_eq!(
            r.stream_of(RowId::PipeStream).map(|t| t.syscalls),
            Some(None)
        );
        assert!(r.stream_of(RowId::BatchStream).is_none());
        assert_eq!(
            r.row(RowId::InlineStream).map(|r| r.floor_probe_ns),
            Some(2.0)
        );
    }

    #[test]
    fn zero_copy_rows_are_told_apart_by_size() {
        let mut r = report();
        r.latency(RowId::LoanLatency(1024), &vec![10], 0.0);
        r.latency(RowId::LoanLatency(1 << 20), &vec![20], 0.0);
        r.latency(RowId::CopyLatency(1 << 20), &vec![30], 0.0);
        let median = |id| r.latency_of(id).map(|l| l.median_ticks);
        assert_eq!(median(RowId::LoanLatency(1 << 20)), Some(20));
        assert_eq!(median(RowId::LoanLatency(64 << 10)), None);
        assert_eq!(r.loan_sizes().collect::<Vec<_>>(), [1024, 1 << 20]);
        assert_eq!(RowId::LoanStream(4096).size(), 4096);
    }

    #[test]
    #[should_panic(expected = "InlineStream")]
    fn figures_of_the_wrong_kind_are_refused() {
        report().latency(RowId::InlineStream, &vec![1], 0.0);
    }

    #[test]
    fn sizes_are_named_in_whole_units() {
        assert_eq!(human(40), "40 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(1536), "1536 B");
        assert_eq!(human(1 << 20), "1 MiB");
        assert_eq!(human(3 << 19), "1536 KiB");
    }
}
