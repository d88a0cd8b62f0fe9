//! What `fring bench --json FILE` writes. Readers depend on these keys:
//! add keys, never rename or remove one.

use std::path::Path;

use serde::Serialize;

use super::machine::Machine;
use super::model::{Measure, Report, Row, SingleThread, Verdict};
use super::paths::Syscalls;

#[derive(Serialize)]
struct ReportJson<'a> {
    machine: &'a Machine,
    results: Vec<RowJson>,
    targets: &'a [Verdict],
    #[serde(skip_serializing_if = "Option::is_none")]
    single_thread_ticks: Option<SingleThread>,
}

/// One row, flat: the figures of the other kind are left out.
#[derive(Serialize)]
struct RowJson {
    name: &'static str,
    kind: &'static str,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median_ticks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ns_per_msg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msgs_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticks_per_msg: Option<f64>,
    /// Futex system calls on rings made by the sender and by the receiver
    /// while the stream ran: only on the rows that stream through a ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    futex_syscalls: Option<Syscalls>,
    /// Cache-line ping-pong one-way ns measured just before this row.
    floor_probe_ns: f64,
}

impl RowJson {
    fn new(r: &Row) -> Self {
        let mut row = RowJson {
            name: r.id.name(),
            kind: r.measure.kind().name(),
            size: r.id.size(),
            batch_size: r.id.batch_size(),
            median_ns: None,
            p99_ns: None,
            median_ticks: None,
            ns_per_msg: None,
            msgs_per_sec: None,
            ticks_per_msg: None,
            futex_syscalls: None,
            floor_probe_ns: r.floor_probe_ns,
        };
        match &r.measure {
            Measure::Latency(l) => {
                row.median_ns = Some(l.median_ns);
                row.p99_ns = Some(l.p99_ns);
                row.median_ticks = Some(l.median_ticks);
            }
            Measure::Throughput(t) => {
                row.ns_per_msg = Some(t.ns_per_msg);
                row.msgs_per_sec = Some(t.msgs_per_sec);
                row.ticks_per_msg = Some(t.ticks_per_msg);
                row.futex_syscalls = t.syscalls;
            }
        }
        row
    }
}

impl Report {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, String> {
        let json = ReportJson {
            machine: &self.machine,
            results: self.results.iter().map(RowJson::new).collect(),
            targets: &self.targets,
            single_thread_ticks: self.single_thread_ticks,
        };
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())
    }

    /// Writes [`Report::to_json`] to `path`.
    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        let text = self.to_json()?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
