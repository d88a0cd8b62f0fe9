//! The report as text: the main table, the seeds' comparison, the targets
//! and the limits they are read against.

use comfy_table::{presets::ASCII_MARKDOWN, Table};

use super::model::{human, Measure, Report, RowId, Status, SMALL};

impl Report {
    /// The main table, the seeds' table and the targets, as text.
    pub fn render(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "machine: {} | {} cores | {} | TSC {:.3} GHz\n",
            m.cpu, m.cores, m.kernel, m.tsc_ghz
        );
        out += &format!("{}\n", self.rows_table());
        out += &format!("{}\n", self.seeds_table());
        out += &format!("{}\n", self.targets_table());
        out += &self.limits();
        out
    }

    /// Every row, each against the pipe of its kind.
    fn rows_table(&self) -> Table {
        let pipe_lat = self.latency_of(RowId::PipeLatency).map(|l| l.median_ns);
        let pipe_tp = self.stream_of(RowId::PipeStream).map(|t| t.ns_per_msg);
        let mut t = Table::new();
        t.load_style(ASCII_MARKDOWN).set_header(vec![
            "path",
            "size",
            "kind",
            "median",
            "p99",
            "median ticks",
            "ns/msg",
            "msgs/s",
            "pipe / this",
            "floor probe",
        ]);
        let dash = || "-".to_string();
        for r in &self.results {
            let name = match r.id.batch_size() {
                Some(b) => format!("{} x{b}", r.id.name()),
                None => r.id.name().to_string(),
            };
            let figures = match &r.measure {
                Measure::Latency(l) => [
                    ns_text(l.median_ns),
                    ns_text(l.p99_ns),
                    format!("{:.0}", l.median_ticks as f64),
                    dash(),
                    dash(),
                    opt(pipe_lat.map(|p| p / l.median_ns), times),
                ],
                Measure::Throughput(s) => [
                    dash(),
                    dash(),
                    dash(),
                    format!("{:.1}", s.ns_per_msg),
                    format!("{:.2} M", s.msgs_per_sec / 1e6),
                    opt(pipe_tp.map(|p| p / s.ns_per_msg), times),
                ],
            };
            let mut cells = vec![name, human(r.id.size()), r.measure.kind().name().into()];
            cells.extend(figures);
            cells.push(format!("{:.0} ns", r.floor_probe_ns));
            t.add_row(cells);
        }
        t
    }

    /// The seeds' table ("Comparaison des Chemins"), with our numbers.
    fn seeds_table(&self) -> Table {
        let mut s = Table::new();
        s.load_style(ASCII_MARKDOWN).set_header(vec![
            "Chemin",
            "Taille",
            "Copies",
            "Cycles (seeds)",
            "Ticks measured (streaming)",
            "Syscalls",
        ]);
        let tp = |id: Option<RowId>| {
            id.and_then(|id| self.stream_of(id))
                .map_or("-".into(), |t| format!("{:.0}", t.ticks_per_msg))
        };
        let small_zc = self.loan_sizes().min();
        s.add_row(vec![
            "Inline",
            "<=40B",
            "1",
            "80-100",
            &tp(Some(RowId::InlineStream)),
            "0",
        ]);
        s.add_row(vec![
            "Zerocopy (loan)".to_string(),
            small_zc.map_or(">40B".into(), human),
            "0".into(),
            "200-300".into(),
            tp(small_zc.map(RowId::LoanStream)),
            "0".into(),
        ]);
        s.add_row(vec![
            "Batch (32)",
            "40B",
            "1/msg",
            "25-35/msg",
            &tp(Some(RowId::BatchStream)),
            "0",
        ]);
        s.add_row(vec![
            "Linux pipe",
            "40B",
            "2+",
            "~1200",
            &tp(Some(RowId::PipeStream)),
            "2",
        ]);
        s
    }

    fn targets_table(&self) -> Table {
        let mut g = Table::new();
        g.load_style(ASCII_MARKDOWN)
            .set_header(vec!["target", "goal", "measured", "met"]);
        for x in &self.targets {
            g.add_row(vec![
                x.what.clone(),
                x.goal.clone(),
                x.measured.clone(),
                match (x.status, x.met) {
                    (Status::Met, _) => "yes",
                    (Status::Missed, _) => "NO",
                    (Status::NotMeasured, _) => "not measured",
                    (Status::Informative, true) => "info: yes",
                    (Status::Informative, false) => "info: no",
                }
                .into(),
            ]);
        }
        g
    }

    /// What this machine allows, for reading the targets: the floors, the
    /// streams of lines and records, memcpy, the trivial ring and the clock,
    /// measured in this run.
    fn limits(&self) -> String {
        let m = &self.machine;
        let lat = |id| self.latency_of(id).map(|l| l.median_ns);
        let mut out = String::new();
        if let (Some(ring), Some(floor), Some(inline)) = (
            m.ring_floor_ns,
            lat(RowId::Floor),
            lat(RowId::InlineLatency),
        ) {
            out += &format!(
                "limits: ping-pong through two rings of lines {ring:.0} ns one-way = {:.2}x the one-line floor \
                 (two line transfers per hop, not one); inline is {:.2}x that ring floor\n",
                ring / floor,
                inline / ring,
            );
        }
        if let (Some(loan), Some(ring), Some(inline)) =
            (m.loan_floor_ns, m.ring_floor_ns, lat(RowId::InlineLatency))
        {
            let slowest = self
                .loan_sizes()
                .filter_map(|size| lat(RowId::LoanLatency(size)))
                .max_by(f64::total_cmp);
            out += &format!(
                "limits: the same ping-pong handing over a 64-byte payload line each ping (as a \
                 loan hands a block) {loan:.0} ns one-way = {:.2}x the ring floor, {:.2}x inline \
                 latency{}\n",
                loan / ring,
                loan / inline,
                slowest
                    .map(|s| format!("; the slowest zero-copy loan is {:.2}x that", s / loan))
                    .unwrap_or_default(),
            );
        }
        if let (Some((size, one)), Some(two)) = (self.memcpy, m.memcpy_two_buffers_gbps) {
            out += &format!(
                "limits: memcpy of {} into one buffer {:.1} GB/s, into two in turn {two:.1} GB/s \
                 (a copying send fills one block while the receiver holds the other)\n",
                human(size),
                one / 1e9,
            );
        }
        if let (Some((size, _)), Some(shm)) = (self.memcpy, m.shm_buffers_gbps) {
            out += &format!(
                "limits: two processes handing {} buffers through shared memory by a flag, every \
                 line written and read: {shm:.1} GB/s{}\n",
                human(size),
                self.stream_of(RowId::FullLoanStream(size))
                    .map(|t| format!(
                        "; the loan stream using every line (an arena of two blocks: the same memory) is {:.2}x that",
                        size as f64 * t.msgs_per_sec / 1e9 / shm
                    ))
                    .unwrap_or_default(),
            );
        }
        let ns = |id| {
            self.stream_of(id)
                .map(|t| t.ticks_per_msg / self.ticks_per_ns)
        };
        if let (Some(rtrb), Some(queue)) = (ns(RowId::RtrbStream), ns(RowId::ArrayQueueStream)) {
            out += &format!(
                "reference: 40-byte messages between two threads of one process, no process \
                 boundary, no stats, no clock: rtrb (single producer, single consumer) \
                 {rtrb:.1} ns/msg, crossbeam ArrayQueue (many to many) {queue:.1} ns/msg{}\n",
                ns(RowId::InlineStream)
                    .map(|inline| format!(
                        "; inline streaming across processes is {:.2}x rtrb, {:.2}x ArrayQueue",
                        inline / rtrb,
                        inline / queue
                    ))
                    .unwrap_or_default(),
            );
        }
        if let (Some(bare), Some(claimed)) = (m.line_stream_ns, m.line_stream_claimed_ns) {
            out += &format!(
                "limits: streaming one 64-byte line per message between the cores {bare:.1} ns/msg bare, \
                 {claimed:.1} ns/msg with one locked claim per message on each side (as a \
                 many-producer many-consumer ring claims){}\n",
                // TSC against TSC, as the target reads it: the line streams
                // are ticks divided by the run's tick rate.
                self.stream_of(RowId::InlineStream)
                    .map(|t| format!(
                        "; inline streaming is {:.2}x that",
                        t.ticks_per_msg / self.ticks_per_ns / claimed
                    ))
                    .unwrap_or_default(),
            );
        }
        if let Some(packed) = m.packed_stream_ticks {
            out += &format!(
                "limits: 40-byte records packed end to end, 32 per publish, no claim, no clock: \
                 {packed:.1} ticks/msg (the least any batch format pays here){}\n",
                self.stream_of(RowId::BatchStream)
                    .map(|t| format!("; batch-32 is {:.2}x that", t.ticks_per_msg / packed))
                    .unwrap_or_default(),
            );
        }
        if let Some(packed) = m.packed_small_stream_ticks {
            out += &format!(
                "limits: {SMALL}-byte records packed end to end, 32 per publish: {packed:.1} \
                 ticks/msg (what a batch format that packs small messages could reach){}\n",
                self.stream_of(RowId::SmallBatchStream)
                    .map(|t| format!(
                        "; batch-32 of {SMALL}-byte messages (a slot line each) is {:.1} \
                         ticks/msg, {:.2}x that{}",
                        t.ticks_per_msg,
                        t.ticks_per_msg / packed,
                        self.stream_of(RowId::BatchStream)
                            .map(|b| format!(
                                ", {:.2}x the 40-byte batch",
                                t.ticks_per_msg / b.ticks_per_msg
                            ))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default(),
            );
        }
        if let Some(trivial) = m.trivial_ring_ticks {
            out += &format!(
                "limits: a trivial single-thread ring (64-byte slots, plain head and tail, 40 bytes \
                 written and read back) {trivial:.1} ticks per send + receive{}\n",
                self.single_thread_ticks
                    .map(|st| format!(
                        "; one thread's unstamped send_fast + recv_fast is {:.2}x that on a \
                         single-producer single-consumer ring, {:.2}x on a many-to-many one",
                        st.single_unstamped / trivial,
                        st.unstamped / trivial
                    ))
                    .unwrap_or_default(),
            );
        }
        let syscalls: Vec<String> = self
            .results
            .iter()
            .filter_map(|r| {
                let s = match &r.measure {
                    Measure::Throughput(t) => t.syscalls?,
                    Measure::Latency(_) => return None,
                };
                let size = match r.id {
                    RowId::LoanStream(size) | RowId::CopyStream(size) => {
                        format!(" {}", human(size))
                    }
                    _ => String::new(),
                };
                Some(format!(
                    "{}{size} {} + {}",
                    r.id.name(),
                    s.sender,
                    s.receiver
                ))
            })
            .collect();
        if !syscalls.is_empty() {
            out += &format!(
                "syscalls: futex calls on rings while each stream ran, sender + receiver: {} \
                 (the target reads inline and batch, whose rings run full; in a stream bound \
                 by one side the other waits past its spin and sleeps)\n",
                syscalls.join(", "),
            );
        }
        if let Some(c) = m.clock_read_ticks {
            out += &format!(
                "limits: one clock read {c:.0} ticks; a stamped message takes two ({:.0} ns{})\n",
                2.0 * c / self.ticks_per_ns,
                self.single_thread_ticks
                    .map(|st| format!(
                        "; one thread's send_fast + recv_fast on a many-to-many ring is {:.0} \
                         ticks stamped, {:.0} unstamped",
                        st.stamped, st.unstamped
                    ))
                    .unwrap_or_default(),
            );
        }
        out
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

fn times(x: f64) -> String {
    format!("{x:.1}x")
}

/// ns up to 10 us, then us: a syscall path reads better in us.
fn ns_text(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} us", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
