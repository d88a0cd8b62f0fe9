//! The machine a run was on, and the limits measured on it that are not
//! rows of their own: the two-ring floor, the line and packed streams,
//! memcpy into two buffers, the trivial single-thread ring, the clock.

use serde::Serialize;

/// The machine the run was on, and the limits measured on it that are
/// not rows of their own.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The model name `/proc/cpuinfo` gives.
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// System name and release, e.g. `Linux 6.8.0`.
    pub kernel: String,
    /// TSC ticks per ns.
    pub tsc_ghz: f64,
    /// One-way ns of `paths::ring_floor`: a ping-pong through two rings of
    /// lines, the least any two-queue design pays here (two line transfers
    /// per hop where the `floor` row pays one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_floor_ns: Option<f64>,
    /// One-way ns of `paths::loan_floor`: the ring floor with a 64-byte
    /// payload line handed over each ping, as a loan hands a block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loan_floor_ns: Option<f64>,
    /// Ticks per clock read (every stamped message takes two).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_read_ticks: Option<f64>,
    /// memcpy GB/s of the largest zero-copy size into two buffers in turn
    /// (the working set of a copying send: see `paths::memcpy_rotating`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memcpy_two_buffers_gbps: Option<f64>,
    /// GB/s of two processes handing buffers of the largest zero-copy
    /// size through shared memory by a flag, every line written and read
    /// (`paths::shm_buffers_stream`): the limit of a zero-copy stream that
    /// uses every line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_buffers_gbps: Option<f64>,
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
    /// The same with 8-byte records: the limit for
    /// `RowId::SmallBatchStream`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packed_small_stream_ticks: Option<f64>,
    /// Ticks per send + receive of 40 bytes through `paths::trivial_ring`:
    /// a single-thread ring of 64-byte slots with plain head and tail
    /// counters, timed as `single_thread_ticks` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trivial_ring_ticks: Option<f64>,
}

impl Machine {
    /// This machine, with no limits measured yet.
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
            loan_floor_ns: None,
            clock_read_ticks: None,
            memcpy_two_buffers_gbps: None,
            shm_buffers_gbps: None,
            line_stream_ns: None,
            line_stream_claimed_ns: None,
            packed_stream_ticks: None,
            packed_small_stream_ticks: None,
            trivial_ring_ticks: None,
        }
    }
}

#[cfg(test)]
impl Machine {
    /// A machine with no limits measured, for hand-built reports.
    pub fn plain(tsc_ghz: f64) -> Self {
        Machine {
            cpu: "test".into(),
            cores: 2,
            kernel: "Linux test".into(),
            tsc_ghz,
            ring_floor_ns: None,
            loan_floor_ns: None,
            clock_read_ticks: None,
            memcpy_two_buffers_gbps: None,
            shm_buffers_gbps: None,
            line_stream_ns: None,
            line_stream_claimed_ns: None,
            packed_stream_ticks: None,
            packed_small_stream_ticks: None,
            trivial_ring_ticks: None,
        }
    }
}
