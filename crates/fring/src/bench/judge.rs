//! The targets `fring bench` checks: DESIGN.md section 9's table, as a
//! table. Each names the figure it reads, the limit measured in the same
//! run that the figure is divided by, and the bound. `judge` walks the
//! table. A target whose figures the run did not take is listed as not
//! measured, with what is missing and why (and the side that was taken
//! beside it), never dropped and never claimed met.
//!
//! Like is read against like: latencies are TSC medians on both sides (in
//! ns at the run's one tick rate), streams TSC ticks per message on both
//! sides, the copying send and memcpy wall-clock bytes/s on both sides.

use super::model::{human, Report, RowId, Status, Verdict};
use super::paths::Syscalls;

use Bound::{AtLeast, AtMost};
use Figure::*;

/// The size DESIGN.md section 9's zero-copy targets name.
const MIB: usize = 1 << 20;

/// A figure a target reads from a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// Ticks of one `send_fast` + `recv_fast` on one thread.
    SingleThreadTicks { stamped: bool, single: bool },
    /// Ticks of one send + receive through the trivial single-thread ring
    /// (`Machine::trivial_ring_ticks`).
    TrivialRingTicks,
    /// Median one-way ns of a latency row.
    MedianNs(RowId),
    /// One-way ns of the ping-pong through two rings of lines
    /// (`Machine::ring_floor_ns`).
    RingFloorNs,
    /// TSC ticks per message of a streaming row.
    TicksPerMsg(RowId),
    /// TSC ticks per message of the stream of one line per message, bare
    /// or with one locked claim per message on each side.
    LineStreamTicks { claimed: bool },
    /// TSC ticks per message of 40-byte records packed 32 per publish.
    PackedStreamTicks,
    /// Median one-way ns of the slowest loan latency row of 1 MiB or less
    /// (DESIGN: "any size up to 1 MiB").
    SlowestLoanMedianNs,
    /// Bytes/s (wall clock) of the 1 MiB copying stream.
    CopyBytesPerSec,
    /// Bytes/s (wall clock) of memcpy of 1 MiB into two buffers in turn.
    MemcpyTwoBuffers,
    /// Bytes/s (wall clock) of the 1 MiB loan stream using every line.
    FullLoanBytesPerSec,
    /// Bytes/s of two processes handing 1 MiB buffers through shared
    /// memory by a flag, every line written and read.
    ShmBuffersBytesPerSec,
    /// Futex syscalls made by both sides during the inline and batch-32
    /// streams: rings running full, every call finding its message or room.
    StreamSyscalls,
}

impl Figure {
    /// What the figure is, as named when it is shown or missing.
    fn name(self) -> String {
        match self {
            SingleThreadTicks { stamped, single } => format!(
                "one thread's send_fast + recv_fast ({}, {})",
                if stamped { "stamped" } else { "unstamped" },
                if single { "single/single" } else { "many/many" }
            ),
            TrivialRingTicks => "trivial single-thread ring".into(),
            MedianNs(id) => format!("{} latency row", id.name()),
            RingFloorNs => "ping-pong through two rings of lines".into(),
            TicksPerMsg(id) => format!("{} streaming row", id.name()),
            LineStreamTicks { claimed: false } => "bare line stream".into(),
            LineStreamTicks { claimed: true } => "claimed-line stream".into(),
            PackedStreamTicks => "packed-records stream".into(),
            SlowestLoanMedianNs => "loan latency row of 1 MiB or less".into(),
            CopyBytesPerSec => "1 MiB copying stream".into(),
            MemcpyTwoBuffers => "memcpy of 1 MiB into two buffers".into(),
            FullLoanBytesPerSec => "1 MiB loan stream using every line".into(),
            ShmBuffersBytesPerSec => "two-process 1 MiB shared-memory buffers".into(),
            StreamSyscalls => "syscall count of the inline and batch-32 streams".into(),
        }
    }

    /// Why the figure is missing from a run.
    fn absent(self) -> String {
        format!("no {} in this run", self.name())
    }

    /// `value` as shown: its digits and its unit.
    fn show(self, value: f64) -> (String, &'static str) {
        match self {
            SingleThreadTicks { .. } | TrivialRingTicks => (format!("{value:.0}"), "ticks"),
            MedianNs(_) | RingFloorNs | SlowestLoanMedianNs => (format!("{value:.0}"), "ns"),
            TicksPerMsg(_) | LineStreamTicks { .. } | PackedStreamTicks => {
                (format!("{value:.1}"), "ticks/msg")
            }
            CopyBytesPerSec | MemcpyTwoBuffers | FullLoanBytesPerSec | ShmBuffersBytesPerSec => {
                (format!("{:.1}", value / 1e9), "GB/s")
            }
            StreamSyscalls => (format!("{value:.0}"), "syscalls"),
        }
    }
}

/// What a target's value must be to be met.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The value must not exceed this.
    AtMost(f64),
    /// The value must reach this.
    AtLeast(f64),
}

impl Bound {
    /// Whether `value` meets the bound (a NaN meets none).
    pub fn met(self, value: f64) -> bool {
        match self {
            Bound::AtMost(b) => value <= b,
            Bound::AtLeast(b) => value >= b,
        }
    }
}

/// What follows the value in the `measured` column, besides the two sides
/// of a ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Note {
    /// Nothing.
    None,
    /// Another figure, with this label after it (left out if not taken).
    Also(Figure, &'static str),
    /// The syscalls of each stream [`StreamSyscalls`] sums, by side.
    SyscallsByStream,
}

/// Whose target it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Role {
    /// A line of DESIGN.md section 9's table: met or missed.
    Design,
    /// Not one of DESIGN.md section 9's: shown for information, never
    /// counted as met or missed.
    Informative,
}

/// One target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// As shown.
    pub what: &'static str,
    /// The figure judged (divided by `over`, if given).
    pub reads: Figure,
    /// The figure `reads` is divided by: the limit it is read against (or,
    /// for the pipe, our own path). `None`: `reads` is bound as it is.
    pub over: Option<Figure>,
    /// What the value must be.
    pub bound: Bound,
    /// After the bound and the value, e.g. `" syscalls"`; empty for a ratio.
    pub unit: &'static str,
    /// Decimals of the value shown.
    pub digits: usize,
    /// What the `measured` column shows after the value.
    pub note: Note,
    /// Whether the target is DESIGN.md's.
    pub role: Role,
}

/// A ratio target of DESIGN.md section 9: `reads / over` within `bound`,
/// shown with two decimals.
impl Target {
    /// The target with `figure` shown after its measurement, labelled.
    const fn also(self, figure: Figure, label: &'static str) -> Target {
        Target {
            note: Note::Also(figure, label),
            ..self
        }
    }
}

const fn ratio(what: &'static str, reads: Figure, over: Figure, bound: Bound) -> Target {
    Target {
        what,
        reads,
        over: Some(over),
        bound,
        unit: "",
        digits: 2,
        note: Note::None,
        role: Role::Design,
    }
}

/// The targets, in DESIGN.md section 9's order, then the informative one.
pub const TARGETS: &[Target] = &[
    // The stamped row is judged (the ring's default); the unstamped one,
    // beside it, shows what the two clock reads of each message cost.
    ratio(
        "SPSC inline streaming / bare line stream",
        TicksPerMsg(RowId::SpscInlineStream),
        LineStreamTicks { claimed: false },
        AtMost(1.3),
    )
    .also(TicksPerMsg(RowId::SpscUnstampedStream), "unstamped"),
    ratio(
        "SPSC inline streaming / rtrb between two threads",
        TicksPerMsg(RowId::SpscInlineStream),
        TicksPerMsg(RowId::RtrbStream),
        AtMost(1.0),
    )
    .also(TicksPerMsg(RowId::SpscUnstampedStream), "unstamped"),
    // Ticks on both sides: the line stream is kept in ns converted from
    // ticks (see `Report::read`), the row's `ns_per_msg` is wall clock.
    ratio(
        "MPMC inline streaming / claimed-line stream",
        TicksPerMsg(RowId::InlineStream),
        LineStreamTicks { claimed: true },
        AtMost(1.5),
    ),
    ratio(
        "SPSC inline one-way latency / ring floor",
        MedianNs(RowId::SpscInlineLatency),
        RingFloorNs,
        AtMost(1.15),
    )
    .also(MedianNs(RowId::SpscUnstampedLatency), "unstamped"),
    ratio(
        "MPMC inline one-way latency / ring floor",
        MedianNs(RowId::InlineLatency),
        RingFloorNs,
        AtMost(1.4),
    ),
    // Issue 15's aim: a broadcast ring with one subscriber within 1.2x the
    // work-queue ring of the same protocol (one producer, one consumer).
    ratio(
        "broadcast one-way latency, 1 subscriber / SPSC inline latency",
        MedianNs(RowId::BroadcastLatency),
        MedianNs(RowId::SpscInlineLatency),
        AtMost(1.2),
    ),
    ratio(
        "broadcast streaming, 1 subscriber / SPSC inline streaming",
        TicksPerMsg(RowId::BroadcastStream(1)),
        TicksPerMsg(RowId::SpscInlineStream),
        AtMost(1.2),
    )
    .also(TicksPerMsg(RowId::BroadcastStream(2)), "2 subscribers"),
    ratio(
        "batch-32 streaming / packed records",
        TicksPerMsg(RowId::BatchStream),
        PackedStreamTicks,
        AtMost(1.5),
    ),
    ratio(
        "one thread send + receive, unstamped, SPSC ring / trivial ring",
        SingleThreadTicks {
            stamped: false,
            single: true,
        },
        TrivialRingTicks,
        AtMost(2.0),
    )
    .also(
        SingleThreadTicks {
            stamped: false,
            single: false,
        },
        "many-to-many",
    ),
    ratio(
        "zero-copy one-way (loan), slowest size <= 1 MiB / inline",
        SlowestLoanMedianNs,
        MedianNs(RowId::InlineLatency),
        AtMost(1.5),
    ),
    ratio(
        "1 MiB zero-copy stream, every line written and read / two-buffer shm limit",
        FullLoanBytesPerSec,
        ShmBuffersBytesPerSec,
        AtLeast(0.9),
    ),
    ratio(
        "copying 1 MiB send, streaming / memcpy into two buffers",
        CopyBytesPerSec,
        MemcpyTwoBuffers,
        AtLeast(0.9),
    ),
    ratio(
        "sleeping receiver woken / eventfd",
        MedianNs(RowId::Blocking),
        MedianNs(RowId::Eventfd),
        AtMost(1.1),
    ),
    Target {
        what: "futex syscalls while streaming (inline, batch-32)",
        reads: StreamSyscalls,
        over: None,
        bound: AtMost(0.0),
        unit: " syscalls",
        digits: 0,
        note: Note::SyscallsByStream,
        role: Role::Design,
    },
    Target {
        what: "pipe latency / inline latency",
        digits: 0,
        role: Role::Informative,
        ..ratio(
            "",
            MedianNs(RowId::PipeLatency),
            MedianNs(RowId::InlineLatency),
            AtLeast(300.0),
        )
    },
];

/// A figure's value, and the size of the zero-copy row it came from.
#[derive(Debug, Clone, Copy)]
struct Reading {
    value: f64,
    size: Option<usize>,
}

impl Reading {
    fn of(value: f64) -> Self {
        Reading { value, size: None }
    }
}

impl Report {
    /// Computes the verdicts of [`TARGETS`] from the rows.
    pub fn judge(&mut self) {
        self.targets = TARGETS.iter().map(|t| t.verdict(self)).collect();
    }

    /// `figure` in this run, if it was taken.
    fn read(&self, figure: Figure) -> Option<Reading> {
        let m = &self.machine;
        let median = |id| self.latency_of(id).map(|l| l.median_ns);
        let syscalls = |id| self.stream_of(id)?.syscalls.map(Syscalls::total);
        Some(match figure {
            SingleThreadTicks { stamped, single } => {
                let st = self.single_thread_ticks?;
                Reading::of(match (stamped, single) {
                    (true, _) => st.stamped,
                    (false, false) => st.unstamped,
                    (false, true) => st.single_unstamped,
                })
            }
            TrivialRingTicks => Reading::of(m.trivial_ring_ticks?),
            MedianNs(id) => Reading::of(median(id)?),
            RingFloorNs => Reading::of(m.ring_floor_ns?),
            TicksPerMsg(id) => Reading::of(self.stream_of(id)?.ticks_per_msg),
            // `run` took the line streams in TSC ticks and kept them in ns,
            // divided by the run's tick rate: multiplied back by that same
            // rate they are ticks per message again, like a row's
            // `ticks_per_msg`.
            LineStreamTicks { claimed } => {
                let ns = if claimed {
                    m.line_stream_claimed_ns?
                } else {
                    m.line_stream_ns?
                };
                Reading::of(ns * self.ticks_per_ns)
            }
            PackedStreamTicks => Reading::of(m.packed_stream_ticks?),
            SlowestLoanMedianNs => {
                let (size, ns) = self
                    .loan_sizes()
                    .filter(|&size| size <= MIB)
                    .filter_map(|size| Some((size, median(RowId::LoanLatency(size))?)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))?;
                Reading {
                    value: ns,
                    size: Some(size),
                }
            }
            CopyBytesPerSec => {
                let t = self.stream_of(RowId::CopyStream(MIB))?;
                Reading::of(MIB as f64 * t.msgs_per_sec)
            }
            // memcpy is measured at the largest zero-copy size only.
            MemcpyTwoBuffers => match self.memcpy {
                Some((MIB, _)) => Reading::of(m.memcpy_two_buffers_gbps? * 1e9),
                _ => return None,
            },
            FullLoanBytesPerSec => {
                let t = self.stream_of(RowId::FullLoanStream(MIB))?;
                Reading::of(MIB as f64 * t.msgs_per_sec)
            }
            // Taken at the largest zero-copy size only, like memcpy.
            ShmBuffersBytesPerSec => match self.memcpy {
                Some((MIB, _)) => Reading::of(m.shm_buffers_gbps? * 1e9),
                _ => return None,
            },
            StreamSyscalls => {
                let n = syscalls(RowId::InlineStream)? + syscalls(RowId::BatchStream)?;
                Reading::of(n as f64)
            }
        })
    }
}

impl Target {
    /// This target's verdict on `report`.
    fn verdict(&self, report: &Report) -> Verdict {
        let (op, bound) = match self.bound {
            AtMost(b) => ("<=", b),
            AtLeast(b) => (">=", b),
        };
        let goal = format!("{op} {bound}{}", self.unit);
        let what = self.what.to_string();
        let reads = report.read(self.reads);
        let over = self.over.map(|f| (f, report.read(f)));
        let (value, sides) = match (reads, over) {
            (Some(r), None) => (r.value, None),
            (Some(r), Some((f, Some(o)))) => (r.value / o.value, Some((r, f, o))),
            _ => {
                return Verdict {
                    what,
                    goal,
                    measured: self.not_measured(reads, over),
                    met: false,
                    status: Status::NotMeasured,
                }
            }
        };
        let digits = self.digits;
        let mut measured = format!("{value:.digits$}{}", self.unit);
        if let Some((r, f, o)) = sides {
            let ((a, a_unit), (b, b_unit)) = (self.reads.show(r.value), f.show(o.value));
            let size = r
                .size
                .map(|s| format!("{}: ", human(s)))
                .unwrap_or_default();
            measured += &if a_unit == b_unit {
                format!(" ({size}{a} / {b} {b_unit})")
            } else {
                format!(" ({size}{a} {a_unit} / {b} {b_unit})")
            };
        }
        match self.note {
            Note::None => {}
            Note::Also(f, label) => {
                if let Some(also) = report.read(f) {
                    let (v, unit) = f.show(also.value);
                    measured += &format!("; {v} {unit} {label}");
                }
            }
            Note::SyscallsByStream => {
                let by = |id: RowId, label: &str| {
                    let s = report.stream_of(id)?.syscalls?;
                    Some(format!("{label} {} + {}", s.sender, s.receiver))
                };
                if let (Some(a), Some(b)) = (
                    by(RowId::InlineStream, "inline"),
                    by(RowId::BatchStream, "batch-32"),
                ) {
                    measured += &format!(" ({a}, {b}; sender + receiver)");
                }
            }
        }
        let met = self.bound.met(value);
        Verdict {
            what,
            goal,
            measured,
            met,
            status: match (self.role, met) {
                (Role::Informative, _) => Status::Informative,
                (Role::Design, true) => Status::Met,
                (Role::Design, false) => Status::Missed,
            },
        }
    }

    /// `not measured: ` what is missing, and the side that was taken (the
    /// limit, most often) beside it.
    fn not_measured(
        &self,
        reads: Option<Reading>,
        over: Option<(Figure, Option<Reading>)>,
    ) -> String {
        let mut missing = Vec::new();
        let mut taken = None;
        for (f, r) in std::iter::once((self.reads, reads)).chain(over) {
            match r {
                Some(r) => taken = Some((f, r)),
                None => missing.push(f.absent()),
            }
        }
        let mut out = format!("not measured: {}", missing.join("; "));
        if let Some((f, r)) = taken {
            let (v, unit) = f.show(r.value);
            out += &format!(" (measured: {} {v} {unit})", f.name());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::Machine;
    use super::super::model::SingleThread;
    use super::super::paths::Stream;
    use super::*;

    /// A report at one tick per ns: a latency row of median `ns` is made
    /// of samples all equal to `ns`.
    fn report() -> Report {
        Report::new(Machine::plain(1.0), 1.0)
    }

    fn lat(r: &mut Report, id: RowId, ns: u64) {
        r.latency(id, &vec![ns; 5], 50.0);
    }

    /// A stream of `messages` in `secs`, `ticks_per_msg` ticks each, with
    /// `syscalls` made by its sender and its receiver.
    fn stream_with(
        r: &mut Report,
        id: RowId,
        (messages, secs, ticks_per_msg): (u64, f64, u64),
        syscalls: Syscalls,
    ) {
        let t = Stream {
            messages,
            ticks: messages * ticks_per_msg,
            secs,
            syscalls,
        };
        r.throughput(id, t, 50.0);
    }

    /// The same with no syscalls.
    fn stream(r: &mut Report, id: RowId, messages: u64, secs: f64, ticks_per_msg: u64) {
        stream_with(r, id, (messages, secs, ticks_per_msg), Syscalls::default());
    }

    fn verdict<'a>(r: &'a Report, what: &str) -> &'a Verdict {
        r.targets
            .iter()
            .find(|v| v.what == what)
            .unwrap_or_else(|| panic!("no target {what:?} in {:?}", r.targets))
    }

    /// `what`'s (goal, measured, status) after judging `r`.
    fn judged(r: &mut Report, what: &str) -> (String, String, Status) {
        r.judge();
        let v = verdict(r, what);
        // `met` agrees with the status of DESIGN's targets.
        if v.status != Status::Informative {
            assert_eq!(v.met, v.status == Status::Met, "{v:?}");
        }
        (v.goal.clone(), v.measured.clone(), v.status)
    }

    const LATENCY: &str = "MPMC inline one-way latency / ring floor";
    const STREAMING: &str = "MPMC inline streaming / claimed-line stream";
    const BATCH: &str = "batch-32 streaming / packed records";
    const ONE_THREAD: &str = "one thread send + receive, unstamped, SPSC ring / trivial ring";
    const LOAN: &str = "zero-copy one-way (loan), slowest size <= 1 MiB / inline";
    const COPY: &str = "copying 1 MiB send, streaming / memcpy into two buffers";
    const SYSCALLS: &str = "futex syscalls while streaming (inline, batch-32)";
    const PIPE: &str = "pipe latency / inline latency";

    #[test]
    fn inline_latency_is_read_against_the_two_ring_ping_pong_not_the_one_line_floor() {
        let mut r = report();
        lat(&mut r, RowId::Floor, 50); // 2.6x the one-line floor: no matter
        lat(&mut r, RowId::InlineLatency, 130);
        r.machine.ring_floor_ns = Some(100.0);
        assert_eq!(
            judged(&mut r, LATENCY),
            ("<= 1.4".into(), "1.30 (130 / 100 ns)".into(), Status::Met)
        );
        r.results.retain(|row| row.id != RowId::InlineLatency);
        lat(&mut r, RowId::InlineLatency, 150);
        assert_eq!(
            judged(&mut r, LATENCY),
            (
                "<= 1.4".into(),
                "1.50 (150 / 100 ns)".into(),
                Status::Missed
            )
        );
    }

    #[test]
    fn inline_streaming_is_read_in_ticks_against_the_claimed_line_stream() {
        // Two ticks per ns. The claimed line stream: 10 ns = 20 ticks/msg.
        let mut r = Report::new(Machine::plain(2.0), 2.0);
        r.machine.line_stream_claimed_ns = Some(10.0);
        r.machine.line_stream_ns = Some(5.0);
        // 28 ticks/msg (1.4x), though the wall clock read 100 ns/msg (10x):
        // the wall clock is not the clock the limit was taken with.
        stream(&mut r, RowId::InlineStream, 1000, 1e-4, 28);
        assert_eq!(
            judged(&mut r, STREAMING),
            (
                "<= 1.5".into(),
                "1.40 (28.0 / 20.0 ticks/msg)".into(),
                Status::Met
            )
        );

        let mut r = Report::new(Machine::plain(2.0), 2.0);
        r.machine.line_stream_claimed_ns = Some(10.0);
        stream(&mut r, RowId::InlineStream, 1000, 1e-6, 31); // 1 ns/msg wall
        let (_, measured, status) = judged(&mut r, STREAMING);
        assert_eq!(
            (measured.as_str(), status),
            ("1.55 (31.0 / 20.0 ticks/msg)", Status::Missed)
        );
    }

    #[test]
    fn batches_are_read_against_the_packed_records() {
        let mut r = report();
        r.machine.packed_stream_ticks = Some(24.0);
        stream(&mut r, RowId::BatchStream, 1000, 1e-4, 36);
        assert_eq!(
            judged(&mut r, BATCH),
            (
                "<= 1.5".into(),
                "1.50 (36.0 / 24.0 ticks/msg)".into(),
                Status::Met
            )
        );
        r.machine.packed_stream_ticks = Some(23.9);
        assert_eq!(judged(&mut r, BATCH).2, Status::Missed);
    }

    #[test]
    fn one_thread_is_read_unstamped_against_the_trivial_ring() {
        let mut r = report();
        r.single_thread_ticks = Some(SingleThread {
            stamped: 190.0,
            unstamped: 150.0,
            single_unstamped: 100.0,
        });
        r.machine.trivial_ring_ticks = Some(50.0);
        assert_eq!(
            judged(&mut r, ONE_THREAD),
            (
                "<= 2".into(),
                "2.00 (100 / 50 ticks); 150 ticks many-to-many".into(),
                Status::Met
            )
        );
        r.machine.trivial_ring_ticks = Some(40.0);
        assert_eq!(judged(&mut r, ONE_THREAD).2, Status::Missed);
        // Without the trivial ring the target is not judged, and says why.
        r.machine.trivial_ring_ticks = None;
        let (_, measured, status) = judged(&mut r, ONE_THREAD);
        assert_eq!(status, Status::NotMeasured);
        assert_eq!(
            measured,
            "not measured: no trivial single-thread ring in this run \
             (measured: one thread's send_fast + recv_fast (unstamped, single/single) 100 ticks)"
        );
    }

    #[test]
    fn zero_copy_latency_is_read_at_the_slowest_loan_size_up_to_one_mib() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::LoanLatency(1024), 160); // 1.6: the slowest
        lat(&mut r, RowId::LoanLatency(1 << 20), 120);
        lat(&mut r, RowId::LoanLatency(4 << 20), 900); // beyond 1 MiB: not read
        assert_eq!(
            judged(&mut r, LOAN),
            (
                "<= 1.5".into(),
                "1.60 (1 KiB: 160 / 100 ns)".into(),
                Status::Missed
            )
        );

        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::LoanLatency(64 << 10), 140);
        lat(&mut r, RowId::LoanLatency(1 << 20), 150);
        let (_, measured, status) = judged(&mut r, LOAN);
        assert_eq!(
            (measured.as_str(), status),
            ("1.50 (1 MiB: 150 / 100 ns)", Status::Met)
        );
    }

    #[test]
    fn the_copying_send_is_read_against_memcpy_into_two_buffers_of_one_mib() {
        let mut r = report();
        // 1000 messages of 1 MiB in 0.1 s: 10.49 GB/s against 11 GB/s into
        // two buffers (the one-buffer figure, 20 GB/s, is not read).
        stream(&mut r, RowId::CopyStream(1 << 20), 1000, 0.1, 1);
        r.memcpy = Some((1 << 20, 20e9));
        r.machine.memcpy_two_buffers_gbps = Some(11.0);
        assert_eq!(
            judged(&mut r, COPY),
            (
                ">= 0.9".into(),
                "0.95 (10.5 / 11.0 GB/s)".into(),
                Status::Met
            )
        );
        r.machine.memcpy_two_buffers_gbps = Some(12.0);
        let (_, measured, status) = judged(&mut r, COPY);
        assert_eq!(
            (measured.as_str(), status),
            ("0.87 (10.5 / 12.0 GB/s)", Status::Missed)
        );

        // memcpy taken at another size: the limit of 1 MiB is not measured.
        let mut r = report();
        stream(&mut r, RowId::CopyStream(1 << 20), 1000, 0.1, 1);
        stream(&mut r, RowId::CopyStream(4 << 20), 1000, 0.4, 1);
        r.memcpy = Some((4 << 20, 20e9));
        r.machine.memcpy_two_buffers_gbps = Some(11.0);
        let (_, measured, status) = judged(&mut r, COPY);
        assert_eq!(status, Status::NotMeasured);
        assert_eq!(
            measured,
            "not measured: no memcpy of 1 MiB into two buffers in this run \
             (measured: 1 MiB copying stream 10.5 GB/s)"
        );
    }

    #[test]
    fn the_every_line_stream_is_read_against_two_processes_handing_buffers() {
        const EVERY_LINE: &str =
            "1 MiB zero-copy stream, every line written and read / two-buffer shm limit";
        let mut r = report();
        // 1000 messages of 1 MiB in 0.1 s: 10.49 GB/s against 11 GB/s.
        stream(&mut r, RowId::FullLoanStream(1 << 20), 1000, 0.1, 1);
        r.memcpy = Some((1 << 20, 20e9));
        r.machine.shm_buffers_gbps = Some(11.0);
        assert_eq!(
            judged(&mut r, EVERY_LINE),
            (
                ">= 0.9".into(),
                "0.95 (10.5 / 11.0 GB/s)".into(),
                Status::Met
            )
        );
        r.machine.shm_buffers_gbps = Some(20.0);
        let (_, measured, status) = judged(&mut r, EVERY_LINE);
        assert_eq!(
            (measured.as_str(), status),
            ("0.52 (10.5 / 20.0 GB/s)", Status::Missed)
        );
        // The limit taken at another size is not read.
        r.memcpy = Some((4 << 20, 20e9));
        let (_, _, status) = judged(&mut r, EVERY_LINE);
        assert_eq!(status, Status::NotMeasured);
    }

    /// The rtrb reference row is shown beside the SPSC target when the
    /// single-producer single-consumer row is not in the run.
    #[test]
    fn the_rtrb_reference_is_shown_while_spsc_is_not_measured() {
        const RTRB: &str = "SPSC inline streaming / rtrb between two threads";
        let mut r = report();
        stream(&mut r, RowId::RtrbStream, 1000, 1e-5, 32);
        let (_, measured, status) = judged(&mut r, RTRB);
        assert_eq!(status, Status::NotMeasured);
        assert!(
            measured.contains("rtrb-threads streaming row 32.0 ticks/msg"),
            "{measured}"
        );
    }

    #[test]
    fn any_syscall_while_streaming_misses_the_target() {
        let none = Syscalls::default();
        let mut r = report();
        stream_with(&mut r, RowId::InlineStream, (1000, 1e-4, 30), none);
        stream_with(&mut r, RowId::BatchStream, (1000, 1e-4, 30), none);
        assert_eq!(
            judged(&mut r, SYSCALLS),
            (
                "<= 0 syscalls".into(),
                "0 syscalls (inline 0 + 0, batch-32 0 + 0; sender + receiver)".into(),
                Status::Met
            )
        );

        let mut r = report();
        stream_with(&mut r, RowId::InlineStream, (1000, 1e-4, 30), none);
        let one = Syscalls {
            sender: 0,
            receiver: 1,
        };
        stream_with(&mut r, RowId::BatchStream, (1000, 1e-4, 30), one);
        let (_, measured, status) = judged(&mut r, SYSCALLS);
        assert_eq!(
            (measured.as_str(), status),
            (
                "1 syscalls (inline 0 + 0, batch-32 0 + 1; sender + receiver)",
                Status::Missed
            )
        );

        // Syscalls on a stream that is not read (a zero-copy stream's
        // receiver sleeps while the sender copies 1 MiB) do not count.
        let mut r = report();
        stream_with(&mut r, RowId::InlineStream, (1000, 1e-4, 30), none);
        stream_with(&mut r, RowId::BatchStream, (1000, 1e-4, 30), none);
        stream_with(&mut r, RowId::CopyStream(1 << 20), (100, 1e-2, 1), one);
        assert_eq!(judged(&mut r, SYSCALLS).2, Status::Met);
    }

    #[test]
    fn the_pipe_is_shown_for_information_only() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::PipeLatency, 40_000);
        r.judge();
        let v = verdict(&r, PIPE);
        assert_eq!(
            (v.goal.as_str(), v.measured.as_str()),
            (">= 300", "400 (40000 / 100 ns)")
        );
        assert_eq!((v.status, v.met), (Status::Informative, true));

        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::PipeLatency, 5_000);
        r.judge();
        let v = verdict(&r, PIPE);
        assert_eq!((v.status, v.met), (Status::Informative, false));
    }

    #[test]
    fn a_target_whose_figures_were_not_taken_is_listed_and_never_met() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 110); // no ring floor, nothing else
        r.judge();
        assert_eq!(r.targets.len(), TARGETS.len());
        let v = verdict(&r, LATENCY);
        assert_eq!(
            (v.measured.as_str(), v.met, v.status),
            (
                "not measured: no ping-pong through two rings of lines in this run \
                 (measured: inline latency row 110 ns)",
                false,
                Status::NotMeasured
            )
        );
        for v in &r.targets {
            assert!(!v.met, "{v:?}");
            assert_eq!(v.status, Status::NotMeasured, "{v:?}");
            assert!(v.measured.starts_with("not measured: "), "{v:?}");
        }
        assert!(!AtLeast(300.0).met(299.9));
        assert!(!AtMost(1.0).met(f64::NAN) && !AtLeast(1.0).met(f64::NAN));
    }

    #[test]
    fn the_targets_this_bench_cannot_measure_say_why_with_the_limit_beside_them() {
        let mut r = report();
        r.machine.line_stream_ns = Some(16.0);
        r.machine.ring_floor_ns = Some(184.0);
        r.judge();
        let shown = |what| {
            let v = verdict(&r, what);
            assert_eq!((v.met, v.status), (false, Status::NotMeasured), "{v:?}");
            (v.goal.as_str(), v.measured.as_str())
        };
        assert_eq!(
            shown("SPSC inline streaming / bare line stream"),
            (
                "<= 1.3",
                "not measured: no inline-spsc streaming row in this run \
                 (measured: bare line stream 16.0 ticks/msg)"
            )
        );
        assert_eq!(
            shown("SPSC inline streaming / rtrb between two threads"),
            (
                "<= 1",
                "not measured: no inline-spsc streaming row in this run; \
                 no rtrb-threads streaming row in this run"
            )
        );
        assert_eq!(
            shown("SPSC inline one-way latency / ring floor"),
            (
                "<= 1.15",
                "not measured: no inline-spsc latency row in this run \
                 (measured: ping-pong through two rings of lines 184 ns)"
            )
        );
        assert_eq!(
            shown("1 MiB zero-copy stream, every line written and read / two-buffer shm limit").0,
            ">= 0.9"
        );
    }

    /// Every target of a full run, as shown.
    #[test]
    fn every_target_of_a_full_run_is_shown_in_design_order() {
        let mut r = report();
        r.single_thread_ticks = Some(SingleThread {
            stamped: 213.0,
            unstamped: 107.0,
            single_unstamped: 60.0,
        });
        r.machine.trivial_ring_ticks = Some(10.0);
        r.machine.ring_floor_ns = Some(184.0);
        r.machine.line_stream_ns = Some(15.8);
        r.machine.line_stream_claimed_ns = Some(22.5);
        r.machine.packed_stream_ticks = Some(24.2);
        r.machine.memcpy_two_buffers_gbps = Some(17.6);
        r.machine.shm_buffers_gbps = Some(30.0);
        r.memcpy = Some((1 << 20, 23.4e9));
        lat(&mut r, RowId::Floor, 83);
        lat(&mut r, RowId::InlineLatency, 293);
        lat(&mut r, RowId::SpscInlineLatency, 200);
        lat(&mut r, RowId::LoanLatency(1024), 415);
        lat(&mut r, RowId::LoanLatency(1 << 20), 393);
        lat(&mut r, RowId::Blocking, 11_600);
        lat(&mut r, RowId::Eventfd, 12_700);
        lat(&mut r, RowId::PipeLatency, 5_489);
        stream(&mut r, RowId::InlineStream, 1_000_000, 0.089, 90);
        stream(&mut r, RowId::SpscInlineStream, 1_000_000, 0.05, 40);
        stream(&mut r, RowId::SpscUnstampedStream, 1_000_000, 0.02, 15);
        stream(&mut r, RowId::BatchStream, 1_000_000, 0.028, 60);
        // 100 MiB in 6.5 ms: 16.1 GB/s.
        stream(&mut r, RowId::CopyStream(1 << 20), 100, 0.0065, 1);
        // 100 MiB in 5 ms: 21.0 GB/s.
        stream(&mut r, RowId::FullLoanStream(1 << 20), 100, 0.005, 1);
        stream(&mut r, RowId::RtrbStream, 1_000_000, 0.013, 32);
        lat(&mut r, RowId::BroadcastLatency, 210);
        stream(&mut r, RowId::BroadcastStream(1), 1_000_000, 0.05, 44);
        stream(&mut r, RowId::BroadcastStream(2), 1_000_000, 0.1, 90);
        r.judge();
        let shown: Vec<(&str, &str, &str, Status)> = r
            .targets
            .iter()
            .map(|v| (&*v.what, &*v.goal, &*v.measured, v.status))
            .collect();
        use Status::*;
        assert_eq!(
            shown,
            [
                (
                    "SPSC inline streaming / bare line stream",
                    "<= 1.3",
                    "2.53 (40.0 / 15.8 ticks/msg); 15.0 ticks/msg unstamped",
                    Missed
                ),
                (
                    "SPSC inline streaming / rtrb between two threads",
                    "<= 1",
                    "1.25 (40.0 / 32.0 ticks/msg); 15.0 ticks/msg unstamped",
                    Missed
                ),
                (STREAMING, "<= 1.5", "4.00 (90.0 / 22.5 ticks/msg)", Missed),
                (
                    "SPSC inline one-way latency / ring floor",
                    "<= 1.15",
                    "1.09 (200 / 184 ns)",
                    Met
                ),
                (LATENCY, "<= 1.4", "1.59 (293 / 184 ns)", Missed),
                (
                    "broadcast one-way latency, 1 subscriber / SPSC inline latency",
                    "<= 1.2",
                    "1.05 (210 / 200 ns)",
                    Met
                ),
                (
                    "broadcast streaming, 1 subscriber / SPSC inline streaming",
                    "<= 1.2",
                    "1.10 (44.0 / 40.0 ticks/msg); 90.0 ticks/msg 2 subscribers",
                    Met
                ),
                (BATCH, "<= 1.5", "2.48 (60.0 / 24.2 ticks/msg)", Missed),
                (
                    ONE_THREAD,
                    "<= 2",
                    "6.00 (60 / 10 ticks); 107 ticks many-to-many",
                    Missed
                ),
                (LOAN, "<= 1.5", "1.42 (1 KiB: 415 / 293 ns)", Met),
                (
                    "1 MiB zero-copy stream, every line written and read / two-buffer shm limit",
                    ">= 0.9",
                    "0.70 (21.0 / 30.0 GB/s)",
                    Missed
                ),
                (COPY, ">= 0.9", "0.92 (16.1 / 17.6 GB/s)", Met),
                (
                    "sleeping receiver woken / eventfd",
                    "<= 1.1",
                    "0.91 (11600 / 12700 ns)",
                    Met
                ),
                (
                    SYSCALLS,
                    "<= 0 syscalls",
                    "0 syscalls (inline 0 + 0, batch-32 0 + 0; sender + receiver)",
                    Met
                ),
                (PIPE, ">= 300", "19 (5489 / 293 ns)", Informative),
            ]
        );
    }
}
