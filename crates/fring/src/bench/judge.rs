//! The targets `fring bench` checks, as a table: each names the figure it
//! reads, the limit measured in the same run that the figure is divided
//! by (if any), and the bound. `judge` walks the table; a target whose
//! figures the run did not take is left out, not failed.

use super::model::{human, Report, RowId, Verdict};

use Bound::{AtLeast, AtMost};
use Figure::*;

/// A figure a target reads from a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// Ticks of one `send_fast` + `recv_fast` on one thread.
    SingleThreadTicks { stamped: bool },
    /// Median one-way ns of a latency row.
    MedianNs(RowId),
    /// ns per message of a streaming row.
    NsPerMsg(RowId),
    /// Ticks per message of a streaming row.
    TicksPerMsg(RowId),
    /// Median one-way ns of the loan latency row of the largest loan size
    /// taken: the size where writing in place matters most.
    LargestLoanMedianNs,
    /// Bytes/s of the copying stream of the size memcpy was measured at.
    CopyBytesPerSec,
    /// memcpy bandwidth (bytes/s) into one buffer. Only of 1 MiB or more:
    /// a smaller copy runs in cache and says nothing about streaming.
    Memcpy,
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

/// What follows the value in the `measured` column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Note {
    /// Nothing.
    None,
    /// Another figure, with the value's digits and this label after it.
    Also(Figure, &'static str),
    /// Both sides of the ratio, in GB/s.
    Gbps,
}

/// One target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// As shown; `{size}` stands for the size of the zero-copy row read.
    pub what: &'static str,
    /// The figure judged (divided by `over`, if given).
    pub reads: Figure,
    /// The figure `reads` is divided by: the limit it is read against (or,
    /// for the pipe, our own path). `None`: `reads` is bound as it is.
    pub over: Option<Figure>,
    /// What the value must be.
    pub bound: Bound,
    /// After the bound and the value, e.g. `" ns/msg"`.
    pub unit: &'static str,
    /// Decimals of the value shown.
    pub digits: usize,
    /// What the `measured` column shows after the value.
    pub note: Note,
}

/// The targets, in the order they are shown.
pub const TARGETS: &[Target] = &[
    Target {
        what: "send_fast + recv_fast, one thread",
        reads: SingleThreadTicks { stamped: true },
        over: None,
        bound: AtMost(40.0),
        unit: " ticks",
        digits: 0,
        note: Note::Also(SingleThreadTicks { stamped: false }, "unstamped"),
    },
    Target {
        what: "inline one-way latency / floor",
        reads: MedianNs(RowId::InlineLatency),
        over: Some(MedianNs(RowId::Floor)),
        bound: AtMost(1.2),
        unit: "",
        digits: 2,
        note: Note::None,
    },
    Target {
        what: "pipe latency / inline latency",
        reads: MedianNs(RowId::PipeLatency),
        over: Some(MedianNs(RowId::InlineLatency)),
        bound: AtLeast(300.0),
        unit: "",
        digits: 0,
        note: Note::None,
    },
    Target {
        what: "inline streaming",
        reads: NsPerMsg(RowId::InlineStream),
        over: None,
        bound: AtMost(10.0),
        unit: " ns/msg",
        digits: 1,
        note: Note::None,
    },
    Target {
        what: "batch-32 streaming",
        reads: TicksPerMsg(RowId::BatchStream),
        over: None,
        bound: AtMost(8.0),
        unit: " ticks/msg",
        digits: 1,
        note: Note::None,
    },
    Target {
        what: "zero-copy {size} one-way (loan) / inline",
        reads: LargestLoanMedianNs,
        over: Some(MedianNs(RowId::InlineLatency)),
        bound: AtMost(1.5),
        unit: "",
        digits: 2,
        note: Note::None,
    },
    Target {
        what: "sleeping receiver woken / eventfd",
        reads: MedianNs(RowId::Blocking),
        over: Some(MedianNs(RowId::Eventfd)),
        bound: AtMost(1.1),
        unit: "",
        digits: 2,
        note: Note::None,
    },
    Target {
        what: "copying send of {size} streaming / memcpy",
        reads: CopyBytesPerSec,
        over: Some(Memcpy),
        bound: AtLeast(0.8),
        unit: "",
        digits: 2,
        note: Note::Gbps,
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
        self.targets = TARGETS.iter().filter_map(|t| t.verdict(self)).collect();
    }

    /// `figure` in this run, if it was taken.
    fn read(&self, figure: Figure) -> Option<Reading> {
        let median = |id| self.latency_of(id).map(|l| l.median_ns);
        Some(match figure {
            SingleThreadTicks { stamped } => {
                let st = self.single_thread_ticks?;
                Reading::of(if stamped { st.stamped } else { st.unstamped })
            }
            MedianNs(id) => Reading::of(median(id)?),
            NsPerMsg(id) => Reading::of(self.stream_of(id)?.ns_per_msg),
            TicksPerMsg(id) => Reading::of(self.stream_of(id)?.ticks_per_msg),
            LargestLoanMedianNs => {
                let size = self.loan_sizes().max()?;
                Reading {
                    value: median(RowId::LoanLatency(size))?,
                    size: Some(size),
                }
            }
            CopyBytesPerSec => {
                let (size, _) = self.large_memcpy()?;
                let t = self.stream_of(RowId::CopyStream(size))?;
                Reading {
                    value: size as f64 * t.msgs_per_sec,
                    size: Some(size),
                }
            }
            Memcpy => Reading::of(self.large_memcpy()?.1),
        })
    }

    fn large_memcpy(&self) -> Option<(usize, f64)> {
        self.memcpy.filter(|(size, _)| *size >= 1 << 20)
    }
}

impl Target {
    /// This target's verdict on `report`, if it took the figures read.
    fn verdict(&self, report: &Report) -> Option<Verdict> {
        let reads = report.read(self.reads)?;
        let over = match self.over {
            Some(f) => Some(report.read(f)?),
            None => None,
        };
        let value = over.map_or(reads.value, |o| reads.value / o.value);
        let digits = self.digits;
        let mut measured = format!("{value:.digits$}{}", self.unit);
        match (self.note, over) {
            (Note::None, _) => {}
            (Note::Also(f, label), _) => {
                let also = report.read(f)?.value;
                measured += &format!(" ({also:.digits$} {label})");
            }
            (Note::Gbps, Some(o)) => {
                measured += &format!(" ({:.1} / {:.1} GB/s)", reads.value / 1e9, o.value / 1e9);
            }
            (Note::Gbps, None) => {}
        }
        let size = reads.size.or(over.and_then(|o| o.size));
        let (op, bound) = match self.bound {
            AtMost(b) => ("<=", b),
            AtLeast(b) => (">=", b),
        };
        Some(Verdict {
            what: match size {
                Some(size) => self.what.replace("{size}", &human(size)),
                None => self.what.to_string(),
            },
            goal: format!("{op} {bound}{}", self.unit),
            measured,
            met: self.bound.met(value),
        })
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

    /// A stream of `messages` in `secs`, `ticks_per_msg` ticks each.
    fn stream(r: &mut Report, id: RowId, messages: u64, secs: f64, ticks_per_msg: u64) {
        let t = Stream {
            messages,
            ticks: messages * ticks_per_msg,
            secs,
        };
        r.throughput(id, t, 50.0);
    }

    fn verdict<'a>(r: &'a Report, what: &str) -> Option<&'a Verdict> {
        r.targets.iter().find(|v| v.what == what)
    }

    #[test]
    fn a_ratio_within_its_bound_is_met_and_one_beyond_it_is_not() {
        let mut r = report();
        lat(&mut r, RowId::Floor, 100);
        lat(&mut r, RowId::InlineLatency, 110);
        r.judge();
        let v = verdict(&r, "inline one-way latency / floor").expect("judged");
        assert_eq!((v.goal.as_str(), v.measured.as_str()), ("<= 1.2", "1.10"));
        assert!(v.met);

        let mut r = report();
        lat(&mut r, RowId::Floor, 100);
        lat(&mut r, RowId::InlineLatency, 130);
        r.judge();
        let v = verdict(&r, "inline one-way latency / floor").expect("judged");
        assert_eq!(v.measured, "1.30");
        assert!(!v.met);
    }

    #[test]
    fn a_target_whose_rows_were_not_taken_is_left_out() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 110); // no floor, no pipe
        r.judge();
        assert!(r.targets.is_empty(), "{:?}", r.targets);
    }

    #[test]
    fn at_least_bounds_are_met_from_above() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::PipeLatency, 40_000);
        r.judge();
        let v = verdict(&r, "pipe latency / inline latency").expect("judged");
        assert_eq!((v.goal.as_str(), v.measured.as_str()), (">= 300", "400"));
        assert!(v.met);
        assert!(!AtLeast(300.0).met(299.9));
        assert!(!AtMost(1.0).met(f64::NAN) && !AtLeast(1.0).met(f64::NAN));
    }

    #[test]
    fn zero_copy_latency_is_read_at_the_largest_loan_size() {
        let mut r = report();
        lat(&mut r, RowId::InlineLatency, 100);
        lat(&mut r, RowId::LoanLatency(1 << 20), 200); // 2.0: missed
        lat(&mut r, RowId::LoanLatency(1024), 120); // 1.2: would be met
        r.judge();
        let v = verdict(&r, "zero-copy 1 MiB one-way (loan) / inline").expect("judged");
        assert_eq!(v.measured, "2.00");
        assert!(!v.met);
    }

    #[test]
    fn the_copying_send_is_read_against_memcpy_of_one_mib_or_more() {
        let mut r = report();
        // 1000 messages of 1 MiB in 0.1 s: 10.49 GB/s against 10 GB/s.
        stream(&mut r, RowId::CopyStream(1 << 20), 1000, 0.1, 1);
        r.memcpy = Some((1 << 20, 10e9));
        r.judge();
        let v = verdict(&r, "copying send of 1 MiB streaming / memcpy").expect("judged");
        assert_eq!(v.goal, ">= 0.8");
        assert_eq!(v.measured, "1.05 (10.5 / 10.0 GB/s)");
        assert!(v.met);

        let mut r = report();
        stream(&mut r, RowId::CopyStream(64 << 10), 1000, 0.1, 1);
        r.memcpy = Some((64 << 10, 10e9));
        r.judge();
        assert!(r.targets.is_empty(), "{:?}", r.targets);
    }

    /// Every target of a full run, shown exactly as before the targets
    /// became a table.
    #[test]
    fn every_target_is_shown_as_before() {
        let mut r = report();
        r.single_thread_ticks = Some(SingleThread {
            stamped: 38.4,
            unstamped: 30.0,
        });
        lat(&mut r, RowId::Floor, 80);
        lat(&mut r, RowId::InlineLatency, 96);
        lat(&mut r, RowId::LoanLatency(1 << 20), 150);
        lat(&mut r, RowId::Blocking, 23_000);
        lat(&mut r, RowId::Eventfd, 22_000);
        lat(&mut r, RowId::PipeLatency, 7_680);
        stream(&mut r, RowId::InlineStream, 1_000_000, 0.012, 30);
        stream(&mut r, RowId::BatchStream, 1_000_000, 0.005, 9);
        stream(&mut r, RowId::CopyStream(1 << 20), 100, 0.01, 1);
        r.memcpy = Some((1 << 20, 20e9));
        r.judge();
        let shown: Vec<(&str, &str, &str, bool)> = r
            .targets
            .iter()
            .map(|v| (&*v.what, &*v.goal, &*v.measured, v.met))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "send_fast + recv_fast, one thread",
                    "<= 40 ticks",
                    "38 ticks (30 unstamped)",
                    true
                ),
                ("inline one-way latency / floor", "<= 1.2", "1.20", true),
                ("pipe latency / inline latency", ">= 300", "80", false),
                ("inline streaming", "<= 10 ns/msg", "12.0 ns/msg", false),
                (
                    "batch-32 streaming",
                    "<= 8 ticks/msg",
                    "9.0 ticks/msg",
                    false
                ),
                (
                    "zero-copy 1 MiB one-way (loan) / inline",
                    "<= 1.5",
                    "1.56",
                    false
                ),
                ("sleeping receiver woken / eventfd", "<= 1.1", "1.05", true),
                (
                    "copying send of 1 MiB streaming / memcpy",
                    ">= 0.8",
                    "0.52 (10.5 / 20.0 GB/s)",
                    false
                ),
            ]
        );
    }
}
