//! `fring bench`: our paths and the alternatives, measured side by side in
//! one run across two processes pinned to two cores.

mod fork;
mod json;
mod judge;
mod machine;
mod model;
mod paths;
mod plot;
mod render;
mod stats;

use std::io::IsTerminal;
use std::path::PathBuf;

use fusion_ring::Clock;

use machine::Machine;
use model::RowId;
use paths::Samples;

pub use model::Report;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Round trips per latency row.
    pub rounds: usize,
    /// Messages per streaming row (40-byte paths).
    pub messages: u64,
    /// Zero-copy message sizes.
    pub sizes: Vec<usize>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

impl Options {
    /// The default run (well under a minute on two cores).
    pub fn full() -> Self {
        Options {
            rounds: 100_000,
            messages: 5_000_000,
            sizes: vec![1024, 64 << 10, 1 << 20],
            json: None,
            plot: None,
        }
    }

    /// A run of a few seconds.
    pub fn quick() -> Self {
        Options {
            rounds: 10_000,
            messages: 500_000,
            ..Self::full()
        }
    }
}

/// Progress on a terminal (a bar, redrawn on each step: no ticker thread,
/// since the bench forks), plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .expect("valid template"),
            );
            b
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        match &self.bar {
            Some(b) => {
                b.set_message(what.to_string());
                b.set_position(self.done as u64 - 1);
            }
            None => eprintln!("[{}/{}] {what}", self.done, self.total),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The spinning latency rows are taken in this many parts, in turn.
const QUARTERS: usize = 4;

/// Runs every measurement and returns the report.
pub fn run(opts: &Options) -> Result<Report, String> {
    fork::cpu_count(); // before anything pins this process
    let ticks_per_ns = Clock::ticks_per_ns();
    let rounds = opts.rounds;
    let slow = (rounds / 10).max(1000); // syscall paths: ~10-50 us each
    let zc_rounds = |size: usize| (rounds / (1 + size / (64 << 10))).max(2000);
    let zc_msgs = |size: usize| (opts.messages / (1 + size as u64 / 512)).clamp(2000, 500_000);
    let steps = 6 + 2 * QUARTERS + 2 * opts.sizes.len();
    let mut p = Progress::new(steps);
    let mut report = Report::new(Machine::detect(ticks_per_ns), ticks_per_ns);
    // A short cache-line ping-pong before each row: where the host placed the
    // two vCPUs shows in it (see DESIGN.md section 9).
    let probe = || -> Result<f64, String> {
        let s = paths::floor(2000)?;
        Ok(stats::median_ns(&s, ticks_per_ns))
    };

    // The spinning latency rows feed ratios (inline / floor, zero-copy /
    // inline) and drift by tens of percent as the host moves the vCPUs:
    // each is taken in quarters, in turn with the others, so a slow spell
    // falls on all of them. Each row's probe is the median of the probes
    // taken just before its quarters.
    struct Row {
        samples: Samples,
        probes: Vec<f64>,
    }
    let new_row = || Row {
        samples: Vec::new(),
        probes: Vec::new(),
    };
    let (mut floor, mut ring, mut inline) = (new_row(), new_row(), new_row());
    let mut loan_floor = new_row();
    let (mut spsc, mut unstamped) = (new_row(), new_row());
    let mut broadcast = new_row();
    let mut zc: Vec<(usize, bool, Row)> = opts
        .sizes
        .iter()
        .flat_map(|&size| [(size, true, new_row()), (size, false, new_row())])
        .collect();
    for q in 1..=QUARTERS {
        p.step(&format!(
            "latency quarter {q}/{QUARTERS}: floors, inline, zero-copy"
        ));
        let take = |row: &mut Row, s: Samples| -> Result<(), String> {
            row.probes.push(probe()?);
            row.samples.extend(s);
            Ok(())
        };
        take(&mut floor, paths::floor(rounds / QUARTERS)?)?;
        take(&mut ring, paths::ring_floor(rounds / QUARTERS)?)?;
        take(&mut loan_floor, paths::loan_floor(rounds / QUARTERS)?)?;
        take(
            &mut inline,
            paths::inline_latency(rounds / QUARTERS, false, true)?,
        )?;
        take(
            &mut spsc,
            paths::inline_latency(rounds / QUARTERS, true, true)?,
        )?;
        take(
            &mut unstamped,
            paths::inline_latency(rounds / QUARTERS, true, false)?,
        )?;
        take(&mut broadcast, paths::broadcast_latency(rounds / QUARTERS)?)?;
        for (size, loan, row) in &mut zc {
            let s = paths::zerocopy_latency(*size, *loan, zc_rounds(*size) / QUARTERS)?;
            take(row, s)?;
        }
    }
    report.latency(RowId::Floor, &floor.samples, stats::median(floor.probes));
    report.machine.ring_floor_ns = Some(stats::median_ns(&ring.samples, ticks_per_ns));
    report.machine.loan_floor_ns = Some(stats::median_ns(&loan_floor.samples, ticks_per_ns));
    report.machine.clock_read_ticks = Some(paths::clock_read_ticks());
    let pairs = (opts.messages / 25).max(1000);
    report.single_thread_ticks = Some(model::SingleThread {
        stamped: paths::single_thread(pairs, true, false)?,
        unstamped: paths::single_thread(pairs, false, false)?,
        single_unstamped: paths::single_thread(pairs, false, true)?,
    });
    report.machine.trivial_ring_ticks = Some(paths::trivial_ring(pairs));
    for (id, row) in [
        (RowId::InlineLatency, inline),
        (RowId::SpscInlineLatency, spsc),
        (RowId::SpscUnstampedLatency, unstamped),
        (RowId::BroadcastLatency, broadcast),
    ] {
        report.latency(id, &row.samples, stats::median(row.probes));
    }
    for (size, loan, row) in zc {
        let id = if loan {
            RowId::LoanLatency(size)
        } else {
            RowId::CopyLatency(size)
        };
        report.latency(id, &row.samples, stats::median(row.probes));
    }

    // The two wake-up rows are compared with each other (a target is their
    // ratio) and swing by tens of percent with what the host does: they
    // are taken in alternating quarters, so a slow spell falls on both.
    p.step("blocking and eventfd: sleeping receiver woken (alternating)");
    let quarter = (rounds / 200).max(125);
    let (mut ours, mut eventfd) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        ours.extend(paths::blocking_latency(quarter)?);
        eventfd.extend(paths::eventfd_latency(quarter)?);
    }
    let wake_probe = probe()?;
    report.latency(RowId::Blocking, &ours, wake_probe);
    report.latency(RowId::Eventfd, &eventfd, wake_probe);

    p.step("pipe latency");
    let s = paths::pipe_latency(slow)?;
    report.latency(RowId::PipeLatency, &s, probe()?);

    p.step("unix socket latency");
    let s = paths::uds_latency(slow)?;
    report.latency(RowId::UdsLatency, &s, probe()?);

    // The 40-byte streams are read against what streaming lines between
    // the cores costs at all here (the bare and claimed line rings, the
    // packed batches): all five in turn, in quarters, for the same reason
    // as the latency rows.
    let part = opts.messages / QUARTERS as u64;
    let empty = paths::Stream::EMPTY;
    let (mut inline, mut batch) = ((empty, Vec::new()), (empty, Vec::new()));
    let (mut spsc, mut unstamped) = ((empty, Vec::new()), (empty, Vec::new()));
    let (mut bare, mut claimed, mut packed) = (empty, empty, empty);
    let (mut small_batch, mut packed_small) = ((empty, Vec::new()), empty);
    let (mut bcast1, mut bcast2) = ((empty, Vec::new()), (empty, Vec::new()));
    let (mut rtrb, mut array_queue) = ((empty, Vec::new()), (empty, Vec::new()));
    for q in 1..=QUARTERS {
        p.step(&format!(
            "streaming quarter {q}/{QUARTERS}: inline, batch, line floors, in-process queues"
        ));
        inline.1.push(probe()?);
        inline.0.add(paths::inline_stream(part, false, true)?);
        spsc.1.push(probe()?);
        spsc.0.add(paths::inline_stream(part, true, true)?);
        unstamped.1.push(probe()?);
        unstamped.0.add(paths::inline_stream(part, true, false)?);
        batch.1.push(probe()?);
        batch.0.add(paths::batch_stream(part, model::BATCH, 40)?);
        small_batch.1.push(probe()?);
        small_batch
            .0
            .add(paths::batch_stream(part, model::BATCH, model::SMALL)?);
        bcast1.1.push(probe()?);
        bcast1.0.add(paths::broadcast_stream(part, 1)?);
        bcast2.1.push(probe()?);
        bcast2.0.add(paths::broadcast_stream(part, 2)?);
        bare.add(paths::line_stream(part, false)?);
        claimed.add(paths::line_stream(part, true)?);
        packed.add(paths::packed_stream(part, 5)?);
        packed_small.add(paths::packed_stream(part, model::SMALL as u64 / 8)?);
        rtrb.1.push(probe()?);
        rtrb.0.add(paths::rtrb_stream(part)?);
        array_queue.1.push(probe()?);
        array_queue.0.add(paths::array_queue_stream(part)?);
    }
    report.throughput(RowId::InlineStream, inline.0, stats::median(inline.1));
    report.throughput(RowId::SpscInlineStream, spsc.0, stats::median(spsc.1));
    report.throughput(
        RowId::SpscUnstampedStream,
        unstamped.0,
        stats::median(unstamped.1),
    );
    report.throughput(RowId::BatchStream, batch.0, stats::median(batch.1));
    report.throughput(
        RowId::SmallBatchStream,
        small_batch.0,
        stats::median(small_batch.1),
    );
    report.throughput(RowId::RtrbStream, rtrb.0, stats::median(rtrb.1));
    report.throughput(RowId::BroadcastStream(1), bcast1.0, stats::median(bcast1.1));
    report.throughput(RowId::BroadcastStream(2), bcast2.0, stats::median(bcast2.1));
    report.throughput(
        RowId::ArrayQueueStream,
        array_queue.0,
        stats::median(array_queue.1),
    );
    let ns_per_msg = |s: paths::Stream| s.ticks_per_msg() / ticks_per_ns;
    report.machine.line_stream_ns = Some(ns_per_msg(bare));
    report.machine.line_stream_claimed_ns = Some(ns_per_msg(claimed));
    report.machine.packed_stream_ticks = Some(packed.ticks_per_msg());
    report.machine.packed_small_stream_ticks = Some(packed_small.ticks_per_msg());

    // The copying stream of the largest size is read against memcpy (a
    // target is their ratio), and memory bandwidth swings with the host:
    // that row is taken in quarters, each followed by a memcpy measurement.
    let largest = opts.sizes.iter().copied().max();
    let (mut memcpy, mut memcpy2) = (Vec::new(), Vec::new());
    for &size in &opts.sizes {
        p.step(&format!("zero-copy {size} B streaming (loan)"));
        let t = paths::zerocopy_stream(size, true, zc_msgs(size))?;
        report.throughput(RowId::LoanStream(size), t, probe()?);
        p.step(&format!("zero-copy {size} B streaming (copying send)"));
        let t = if Some(size) == largest {
            let quarter = (zc_msgs(size) / QUARTERS as u64).max(1);
            let mut total = paths::Stream::EMPTY;
            for _ in 0..QUARTERS {
                total.add(paths::zerocopy_stream(size, false, quarter)?);
                memcpy.push(paths::memcpy_bandwidth(size));
                memcpy2.push(paths::memcpy_rotating(size, 2));
            }
            total
        } else {
            paths::zerocopy_stream(size, false, zc_msgs(size))?
        };
        report.throughput(RowId::CopyStream(size), t, probe()?);
    }

    // The stream that uses every line of its payloads is read against two
    // processes handing buffers of that size through shared memory (a
    // target is their ratio): in quarters, in turn.
    let mut shm_buffers = Vec::new();
    if let Some(size) = largest {
        p.step(&format!(
            "zero-copy {size} B streaming, every line used, and its shared-memory limit"
        ));
        let quarter = (zc_msgs(size) / QUARTERS as u64).max(1);
        let mut total = paths::Stream::EMPTY;
        for _ in 0..QUARTERS {
            total.add(paths::full_loan_stream(size, quarter)?);
            let s = paths::shm_buffers_stream(size, quarter)?;
            shm_buffers.push(size as f64 * s.messages as f64 / s.secs);
        }
        report.throughput(RowId::FullLoanStream(size), total, probe()?);
    }

    p.step("pipe streaming");
    let t = paths::pipe_stream(opts.messages / 10)?;
    report.throughput(RowId::PipeStream, t, probe()?);

    p.step("unix socket streaming");
    let t = paths::uds_stream(opts.messages / 10)?;
    report.throughput(RowId::UdsStream, t, probe()?);

    if let Some(largest) = largest {
        report.memcpy = Some((largest, stats::median(memcpy)));
        report.machine.memcpy_two_buffers_gbps = Some(stats::median(memcpy2) / 1e9);
        report.machine.shm_buffers_gbps = Some(stats::median(shm_buffers) / 1e9);
    }
    p.finish();
    Ok(report)
}
