//! The bench's results: one table, the seeds' comparison, the targets,
//! JSON and an SVG plot.

use std::path::Path;

use comfy_table::{presets::ASCII_MARKDOWN, Table};
use serde::Serialize;

use super::paths::{Samples, Stream};

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub tsc_ghz: f64,
    /// One-way ns of `paths::ring_floor`: a ping-pong through two rings of
    /// lines, the least any two-queue design pays here (two line transfers
    /// per hop where the `floor` row pays one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_floor_ns: Option<f64>,
    /// Ticks per clock read (every stamped message takes two).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_read_ticks: Option<f64>,
    /// memcpy GB/s of the largest zero-copy size into two buffers in turn
    /// (the working set of a copying send: see `paths::memcpy_rotating`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcpy_two_buffers_gbps: Option<f64>,
    /// ns per message of `paths::line_stream` without claims: a bare ring of
    /// lines streamed between the cores (one line per message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_stream_ns: Option<f64>,
    /// The same with one locked claim per message on each side, as a
    /// multi-producer multi-consumer ring takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_stream_claimed_ns: Option<f64>,
    /// Ticks per message of `paths::packed_stream`: 40-byte records packed
    /// end to end, 32 per publish (the least a batch format pays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packed_stream_ticks: Option<f64>,
}

impl Machine {
    pub fn detect(ticks_per_ns: f64) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let u = rustix::system::uname();
        Machine {
            cpu,
            cores: super::fork::cpu_count(),
            kernel: format!(
                "{} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy()
            ),
            tsc_ghz: ticks_per_ns,
            ring_floor_ns: None,
            clock_read_ticks: None,
            memcpy_two_buffers_gbps: None,
            line_stream_ns: None,
            line_stream_claimed_ns: None,
            packed_stream_ticks: None,
        }
    }
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub kind: &'static str,
    pub size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ticks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_per_msg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticks_per_msg: Option<f64>,
    /// Cache-line ping-pong one-way ns measured just before this row.
    pub floor_probe_ns: f64,
}

/// A target and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// `paths::single_thread` with timestamps on and off.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SingleThread {
    pub stamped: f64,
    pub unstamped: f64,
}

/// Everything a run produced.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub results: Vec<Row>,
    pub targets: Vec<Target>,
    /// Ticks of one `send_fast` + `recv_fast` on one thread (median of
    /// runs), with the ring's default timestamps and without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_thread_ticks: Option<SingleThread>,
    /// memcpy bandwidth (bytes/s) of the largest zero-copy size.
    #[serde(skip)]
    pub memcpy: Option<(usize, f64)>,
    #[serde(skip)]
    distributions: Vec<(String, Vec<f64>)>,
    #[serde(skip)]
    ticks_per_ns: f64,
}

pub fn median_ns(s: &Samples, ticks_per_ns: f64) -> f64 {
    quantile(s, 0.5) as f64 / ticks_per_ns
}

fn quantile(s: &[u64], q: f64) -> u64 {
    let mut v = s.to_vec();
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Report {
    pub fn new(ticks_per_ns: f64) -> Self {
        Report {
            machine: Machine::detect(ticks_per_ns),
            results: Vec::new(),
            targets: Vec::new(),
            single_thread_ticks: None,
            memcpy: None,
            distributions: Vec::new(),
            ticks_per_ns,
        }
    }

    pub fn latency(
        &mut self,
        name: &'static str,
        size: usize,
        s: &Samples,
        probe: f64,
        batch: Option<usize>,
    ) {
        let ns = |t: u64| t as f64 / self.ticks_per_ns;
        let mut sorted = s.clone();
        sorted.sort_unstable();
        self.distributions.push((
            format!("{name} {}", human(size)),
            sorted.iter().map(|&t| ns(t)).collect(),
        ));
        self.results.push(Row {
            name,
            kind: "latency",
            size,
            batch_size: batch,
            median_ns: Some(ns(quantile(s, 0.5))),
            p99_ns: Some(ns(quantile(s, 0.99))),
            median_ticks: Some(quantile(s, 0.5)),
            ns_per_msg: None,
            msgs_per_sec: None,
            ticks_per_msg: None,
            floor_probe_ns: probe,
        });
    }

    pub fn throughput(
        &mut self,
        name: &'static str,
        size: usize,
        t: Stream,
        probe: f64,
        batch: Option<usize>,
    ) {
        self.results.push(Row {
            name,
            kind: "throughput",
            size,
            batch_size: batch,
            median_ns: None,
            p99_ns: None,
            median_ticks: None,
            ns_per_msg: Some(t.secs * 1e9 / t.messages as f64),
            msgs_per_sec: Some(t.messages as f64 / t.secs),
            ticks_per_msg: Some(t.ticks as f64 / t.messages as f64),
            floor_probe_ns: probe,
        });
    }

    fn find(&self, name: &str, kind: &str, size: Option<usize>) -> Option<&Row> {
        self.results
            .iter()
            .filter(|r| r.name == name && r.kind == kind)
            .find(|r| size.is_none_or(|s| r.size == s))
    }

    /// Computes the targets of DESIGN.md section 9 from the rows.
    pub fn judge(&mut self) {
        let lat = |r: Option<&Row>| r.and_then(|r| r.median_ns);
        let mut t = Vec::new();
        let mut add = |what: &str, goal: &str, measured: String, met: bool| {
            t.push(Target {
                what: what.into(),
                goal: goal.into(),
                measured,
                met,
            })
        };
        if let Some(st) = self.single_thread_ticks {
            add(
                "send_fast + recv_fast, one thread",
                "<= 40 ticks",
                format!("{:.0} ticks ({:.0} unstamped)", st.stamped, st.unstamped),
                st.stamped <= 40.0,
            );
        }
        let floor = lat(self.find("floor", "latency", None));
        let inline = lat(self.find("inline", "latency", None));
        if let (Some(f), Some(i)) = (floor, inline) {
            let r = i / f;
            add(
                "inline one-way latency / floor",
                "<= 1.2",
                format!("{r:.2}"),
                r <= 1.2,
            );
        }
        if let (Some(p), Some(i)) = (lat(self.find("pipe", "latency", None)), inline) {
            let r = p / i;
            add(
                "pipe latency / inline latency",
                ">= 300",
                format!("{r:.0}"),
                r >= 300.0,
            );
        }
        if let Some(r) = self
            .find("inline", "throughput", None)
            .and_then(|r| r.ns_per_msg)
        {
            add(
                "inline streaming",
                "<= 10 ns/msg",
                format!("{r:.1} ns/msg"),
                r <= 10.0,
            );
        }
        if let Some(r) = self
            .find("batch", "throughput", None)
            .and_then(|r| r.ticks_per_msg)
        {
            add(
                "batch-32 streaming",
                "<= 8 ticks/msg",
                format!("{r:.1} ticks/msg"),
                r <= 8.0,
            );
        }
        let largest = self
            .results
            .iter()
            .filter(|r| r.name == "zerocopy-loan")
            .map(|r| r.size)
            .max();
        if let (Some(z), Some(i)) = (
            largest.and_then(|s| lat(self.find("zerocopy-loan", "latency", Some(s)))),
            inline,
        ) {
            let r = z / i;
            add(
                &format!(
                    "zero-copy {} one-way (loan) / inline",
                    human(largest.unwrap_or(0))
                ),
                "<= 1.5",
                format!("{r:.2}"),
                r <= 1.5,
            );
        }
        if let (Some(b), Some(e)) = (
            lat(self.find("blocking", "latency", None)),
            lat(self.find("eventfd", "latency", None)),
        ) {
            let r = b / e;
            add(
                "sleeping receiver woken / eventfd",
                "<= 1.1",
                format!("{r:.2}"),
                r <= 1.1,
            );
        }
        // The target is about large messages (1 MiB): a small memcpy runs
        // in cache and says nothing about streaming bandwidth.
        if let Some((size, bw)) = self.memcpy.filter(|(size, _)| *size >= 1 << 20) {
            if let Some(r) = self.find("zerocopy-copy", "throughput", Some(size)) {
                let ours = size as f64 * r.msgs_per_sec.unwrap_or(0.0);
                let ratio = ours / bw;
                add(
                    &format!("copying send of {} streaming / memcpy", human(size)),
                    ">= 0.8",
                    format!("{ratio:.2} ({:.1} / {:.1} GB/s)", ours / 1e9, bw / 1e9),
                    ratio >= 0.8,
                );
            }
        }
        self.targets = t;
    }

    /// The main table, the seeds' table and the targets, as text.
    pub fn render(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "machine: {} | {} cores | {} | TSC {:.3} GHz\n",
            m.cpu, m.cores, m.kernel, m.tsc_ghz
        );
        let pipe_lat = self.find("pipe", "latency", None).and_then(|r| r.median_ns);
        let pipe_tp = self
            .find("pipe", "throughput", None)
            .and_then(|r| r.ns_per_msg);
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
        for r in &self.results {
            let vs_pipe = match r.kind {
                "latency" => pipe_lat.zip(r.median_ns).map(|(p, x)| p / x),
                _ => pipe_tp.zip(r.ns_per_msg).map(|(p, x)| p / x),
            };
            let name = match r.batch_size {
                Some(b) => format!("{} x{b}", r.name),
                None => r.name.to_string(),
            };
            t.add_row(vec![
                name,
                human(r.size),
                r.kind.to_string(),
                opt(r.median_ns, ns_text),
                opt(r.p99_ns, ns_text),
                opt(r.median_ticks.map(|x| x as f64), |x| format!("{x:.0}")),
                opt(r.ns_per_msg, |x| format!("{x:.1}")),
                opt(r.msgs_per_sec, |x| format!("{:.2} M", x / 1e6)),
                opt(vs_pipe, |x| format!("{x:.1}x")),
                format!("{:.0} ns", r.floor_probe_ns),
            ]);
        }
        out += &format!("{t}\n");

        // The seeds' table ("Comparaison des Chemins"), with our numbers.
        let mut s = Table::new();
        s.load_style(ASCII_MARKDOWN).set_header(vec![
            "Chemin",
            "Taille",
            "Copies",
            "Cycles (seeds)",
            "Ticks measured (streaming)",
            "Syscalls",
        ]);
        let tp = |name: &str, size: Option<usize>| {
            self.find(name, "throughput", size)
                .and_then(|r| r.ticks_per_msg)
                .map_or("-".into(), |x| format!("{x:.0}"))
        };
        let small_zc = self
            .results
            .iter()
            .filter(|r| r.name == "zerocopy-loan")
            .map(|r| r.size)
            .min();
        s.add_row(vec![
            "Inline",
            "<=40B",
            "1",
            "80-100",
            &tp("inline", None),
            "0",
        ]);
        s.add_row(vec![
            "Zerocopy (loan)".to_string(),
            small_zc.map_or(">40B".into(), human),
            "0".into(),
            "200-300".into(),
            tp("zerocopy-loan", small_zc),
            "0".into(),
        ]);
        s.add_row(vec![
            "Batch (32)",
            "40B",
            "1/msg",
            "25-35/msg",
            &tp("batch", None),
            "0",
        ]);
        s.add_row(vec![
            "Linux pipe",
            "40B",
            "2+",
            "~1200",
            &tp("pipe", None),
            "2",
        ]);
        out += &format!("{s}\n");

        let mut g = Table::new();
        g.load_style(ASCII_MARKDOWN)
            .set_header(vec!["target", "goal", "measured", "met"]);
        for x in &self.targets {
            g.add_row(vec![
                x.what.clone(),
                x.goal.clone(),
                x.measured.clone(),
                if x.met { "yes".into() } else { "NO".into() },
            ]);
        }
        out += &format!("{g}\n");
        out += &self.limits();
        out
    }

    /// What this machine allows, for reading the targets: the two floors
    /// and the clock, measured in this run.
    fn limits(&self) -> String {
        let m = &self.machine;
        let lat = |name| self.find(name, "latency", None).and_then(|r| r.median_ns);
        let mut out = String::new();
        if let (Some(ring), Some(floor), Some(inline)) =
            (m.ring_floor_ns, lat("floor"), lat("inline"))
        {
            out += &format!(
                "limits: ping-pong through two rings of lines {ring:.0} ns one-way = {:.2}x the one-line floor \
                 (two line transfers per hop, not one); inline is {:.2}x that ring floor\n",
                ring / floor,
                inline / ring,
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
        let stream = |name| self.find(name, "throughput", None);
        if let (Some(bare), Some(claimed)) = (m.line_stream_ns, m.line_stream_claimed_ns) {
            out += &format!(
                "limits: streaming one 64-byte line per message between the cores {bare:.1} ns/msg bare, \
                 {claimed:.1} ns/msg with one locked claim per message on each side (as a \
                 many-producer many-consumer ring claims){}\n",
                stream("inline")
                    .and_then(|r| r.ns_per_msg)
                    .map(|x| format!("; inline streaming is {:.2}x that", x / claimed))
                    .unwrap_or_default(),
            );
        }
        if let Some(packed) = m.packed_stream_ticks {
            out += &format!(
                "limits: 40-byte records packed end to end, 32 per publish, no claim, no clock: \
                 {packed:.1} ticks/msg (the least any batch format pays here){}\n",
                stream("batch")
                    .and_then(|r| r.ticks_per_msg)
                    .map(|x| format!("; batch-32 is {:.2}x that", x / packed))
                    .unwrap_or_default(),
            );
        }
        if let Some(c) = m.clock_read_ticks {
            out += &format!(
                "limits: one clock read {c:.0} ticks; a stamped message takes two ({:.0} ns{})\n",
                2.0 * c / self.ticks_per_ns,
                self.single_thread_ticks
                    .map(|st| format!(
                        "; one thread's send_fast + recv_fast is {:.0} ticks stamped, {:.0} unstamped",
                        st.stamped, st.unstamped
                    ))
                    .unwrap_or_default(),
            );
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Latency distributions (CDF, log-scale ns) of every latency row.
    pub fn write_plot(&self, path: &Path) -> Result<(), String> {
        use plotters::prelude::*;
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let (lo, hi) = self
            .distributions
            .iter()
            .flat_map(|(_, v)| [v[0], v[v.len() - 1]])
            .fold((f64::MAX, 1.0f64), |(a, b), x| (a.min(x), b.max(x)));
        let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("one-way latency, two processes (CDF)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo.max(1.0) * 0.8..hi * 1.2).log_scale(), 0.0..1.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("ns (log scale)")
            .y_desc("fraction of messages")
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (label, v)) in self.distributions.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let step = (v.len() / 400).max(1);
            let pts = v
                .iter()
                .enumerate()
                .step_by(step)
                .map(|(k, &x)| (x.max(lo.max(1.0)), k as f64 / v.len() as f64));
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

fn ns_text(ns: f64) -> String {
    if ns >= 10_000.0 {
        format!("{:.1} us", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn human(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
