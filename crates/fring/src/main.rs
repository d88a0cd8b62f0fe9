//! `fring`: the fusion-ring command-line tool.

mod bench;
mod ctl;
mod pipe;
mod stop;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use fusion_ring::{Clock, Config, PriorityClass, RingError, UltraFastRing};

#[derive(Parser)]
#[command(
    name = "fring",
    version,
    about = "fusion-ring: shared-memory IPC rings for Linux"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measures our paths and the alternatives (pipe, Unix socket,
    /// eventfd + shared memory, raw cache-line ping-pong) side by side,
    /// across two processes pinned to two cores, and prints one table.
    Bench {
        /// A short run (about 10-20 s).
        #[arg(long)]
        quick: bool,
        /// Write machine-readable results here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write latency distributions of every path as an SVG chart.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Round trips per latency row.
        #[arg(long, value_parser = clap::value_parser!(u64).range(100..))]
        rounds: Option<u64>,
        /// Messages per streaming row.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1000..))]
        messages: Option<u64>,
        /// Zero-copy message sizes in bytes, comma separated (41 .. 16 MiB).
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(41..=(16 << 20)))]
        sizes: Option<Vec<u64>>,
    },
    /// Lists the rings under /dev/shm: capacity, fill level, arena use,
    /// participants alive and dead.
    Ls,
    /// Live counters and per-lane latency percentiles of a named ring.
    Stat {
        /// Ring name (with or without the leading '/').
        name: String,
        /// Refresh every SECS seconds until interrupted.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1", value_parser = parse_secs)]
        watch: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes a named ring; refuses while a participant is alive, and any
    /// file that is not a ring this fring can check.
    Rm {
        name: String,
        /// Remove even if processes still use it (their handles keep working).
        #[arg(long)]
        force: bool,
    },
    /// Sends stdin to a named ring (created if missing), e.g. `producer | fring send q`.
    Send {
        name: String,
        #[arg(long, value_enum, default_value = "lines")]
        framing: pipe::Framing,
        /// Capacity if the ring has to be created.
        #[arg(long, default_value_t = 1024)]
        capacity: usize,
        /// Do not send the end-of-stream marker at the end of input.
        #[arg(long)]
        no_eof: bool,
        /// If the ring has to be created, make it a broadcast ring
        /// admitting N subscribers: every `fring recv` then gets the whole
        /// stream (messages of up to 40 bytes).
        #[arg(long, value_name = "N")]
        broadcast: Option<usize>,
        /// With `--broadcast`: the publisher never waits, it writes over
        /// what a slow subscriber has not read (that `recv` reports how
        /// many it missed on stderr).
        #[arg(long, requires = "broadcast")]
        overwrite: bool,
    },
    /// Writes a named ring's messages to stdout (created if missing), e.g.
    /// `fring recv q | consumer`; stops at the sender's end-of-stream marker.
    Recv {
        name: String,
        #[arg(long, value_enum, default_value = "lines")]
        framing: pipe::Framing,
        #[arg(long, default_value_t = 1024)]
        capacity: usize,
        /// Stop after N messages.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after SECS seconds without a message.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        idle_timeout: Option<f64>,
        /// As for `send`: create a broadcast ring for N subscribers.
        #[arg(long, value_name = "N")]
        broadcast: Option<usize>,
        /// As for `send`.
        #[arg(long, requires = "broadcast")]
        overwrite: bool,
    },
    /// Streams messages to a second process through a named ring and
    /// reports what it saw (a working cross-process demonstration).
    Demo {
        /// Number of messages to stream.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Ring capacity in slots (power of two).
        #[arg(long, default_value_t = 1024)]
        capacity: usize,
    },
    /// The consuming side of `demo` (started by `fring demo`).
    #[command(hide = true)]
    DemoConsumer { name: String, messages: u64 },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench {
            quick,
            json,
            plot,
            rounds,
            messages,
            sizes,
        } => {
            let mut o = if quick {
                bench::Options::quick()
            } else {
                bench::Options::full()
            };
            if let Some(r) = rounds {
                o.rounds = r as usize;
            }
            if let Some(m) = messages {
                o.messages = m;
            }
            if let Some(s) = sizes {
                o.sizes = s.into_iter().map(|x| x as usize).collect();
            }
            o.json = json;
            o.plot = plot;
            run_bench(&o)
        }
        Cmd::Demo { messages, capacity } => demo(messages, capacity),
        Cmd::Ls => ctl::ls(),
        Cmd::Stat { name, watch, json } => ctl::stat(&name, watch, json),
        Cmd::Rm { name, force } => ctl::rm(&name, force),
        Cmd::Send {
            name,
            framing,
            capacity,
            no_eof,
            broadcast,
            overwrite,
        } => stop::install().map_err(Into::into).and_then(|()| {
            let shape = pipe::Shape {
                capacity,
                broadcast,
                overwrite,
            };
            pipe::send(&name, framing, shape, no_eof)
        }),
        Cmd::Recv {
            name,
            framing,
            capacity,
            count,
            idle_timeout,
            broadcast,
            overwrite,
        } => stop::install().map_err(Into::into).and_then(|()| {
            let shape = pipe::Shape {
                capacity,
                broadcast,
                overwrite,
            };
            pipe::recv(&name, framing, shape, count, idle_timeout)
        }),
        Cmd::DemoConsumer { name, messages } => demo_consumer(&name, messages),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fring: {e}");
            match stop::as_stopped(&*e) {
                Some(stopped) => ExitCode::from(stopped.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// A duration in seconds: finite, positive, at most a day.
fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s} seconds is out of range: give a number in (0, 86400]"
        ))
    }
}

fn run_bench(o: &bench::Options) -> Result<(), Box<dyn std::error::Error>> {
    let mut report = bench::run(o)?;
    report.judge();
    print!("{}", report.render());
    if let Some(path) = &o.json {
        report.write_json(path)?;
        println!("results written to {}", path.display());
    }
    if let Some(path) = &o.plot {
        report.write_plot(path)?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

/// The bytes of message `i`: its index, then a pattern, length `i % 41`.
fn demo_message(i: u64, buf: &mut [u8; 40]) -> usize {
    let len = (i % 41) as usize;
    for (j, b) in buf.iter_mut().enumerate().take(len) {
        *b = (i.wrapping_mul(31).wrapping_add(j as u64 * 7) & 0xff) as u8;
    }
    len
}

fn demo(messages: u64, capacity: usize) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("fring-demo-{}", std::process::id());
    let ring = UltraFastRing::create(&name, &Config::new(capacity))?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["demo-consumer", &name, &messages.to_string()])
        .spawn()?;
    println!(
        "streaming {messages} messages of 0..=40 bytes to process {} through /dev/shm/{name}",
        child.id()
    );
    let start = Instant::now();
    let mut buf = [0u8; 40];
    for i in 0..messages {
        let len = demo_message(i, &mut buf);
        loop {
            match ring.send_fast(&buf[..len], PriorityClass::Normal) {
                Ok(()) => break,
                Err(RingError::Full) => std::hint::spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let status = child.wait()?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(format!("consumer failed: {status}").into());
    }
    let s = ring.stats();
    println!(
        "producer: sent {} in {:.1} ms ({:.1} ns/message); consumer verified every byte",
        s.sent,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / messages.max(1) as f64
    );
    println!(
        "ring stats: sent {} received {} mean latency {:.0} ticks ({:.0} ns)",
        s.sent,
        s.received,
        s.avg_latency,
        Clock::ticks_to_ns(s.avg_latency)
    );
    Ok(())
}

fn demo_consumer(name: &str, messages: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ring = UltraFastRing::open(name)?;
    let mut buf = [0u8; 40];
    let mut want = [0u8; 40];
    for i in 0..messages {
        let (len, _, _) = loop {
            match ring.recv_fast(&mut buf) {
                Ok(r) => break r,
                Err(RingError::Empty) => std::hint::spin_loop(),
                Err(e) => return Err(e.into()),
            }
        };
        let want_len = demo_message(i, &mut want);
        if buf[..len] != want[..want_len] {
            return Err(format!(
                "message {i}: got {:?}, expected {:?}",
                &buf[..len],
                &want[..want_len]
            )
            .into());
        }
    }
    Ok(())
}
