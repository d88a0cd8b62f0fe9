//! `fring send` / `fring recv`: move data between a shell pipeline and a
//! named ring.
//!
//! Framing: `lines` (default: one message per line, the newline included,
//! so the bytes round-trip exactly), `records` (each message is a 4-byte
//! little-endian length then that many bytes, on both ends), or `raw` (stdin
//! in chunks of up to the ring's maximum message). The sender ends the
//! stream with an empty message of priority `Background`; the receiver
//! stops there (or after `--count` messages).
//!
//! SIGINT and SIGTERM stop either side through its normal exit path
//! (`stop`): the handle unregisters, the sender still ends the stream
//! (if the marker fits within a second), and the exit code is the shell's
//! for the signal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use fusion_ring::{Config, FusionRing, Overflow, Payload, PriorityClass, RingError};

use crate::stop::{as_stopped, Interruptible, Stopped, SLICE};

type Res = Result<(), Box<dyn std::error::Error>>;

/// A descriptor of its own on stdin or stdout, read or written without
/// std's buffering (which retries interrupted calls, see `stop`).
fn own(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Interruptible<File>> {
    Ok(Interruptible(File::from(fd.try_clone_to_owned()?)))
}

/// How messages are cut out of / written to a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    Lines,
    Records,
    Raw,
}

/// The ring `send` / `recv` create if it does not exist yet (an existing
/// ring is used as it is).
pub struct Shape {
    /// Slots.
    pub capacity: usize,
    /// A broadcast ring admitting that many subscribers: the sender
    /// publishes and each receiver gets the whole stream.
    pub broadcast: Option<usize>,
    /// A broadcast ring whose publisher overwrites instead of waiting.
    pub overwrite: bool,
}

/// Opens the ring, creating it with `shape` (kept after exit; `fring rm`
/// removes it) if it does not exist yet.
fn open_or_create(name: &str, shape: Shape) -> Result<FusionRing, RingError> {
    let mut config = Config::new(shape.capacity).unlink_on_drop(false);
    if let Some(n) = shape.broadcast {
        config = config.broadcast(n);
    }
    if shape.overwrite {
        config = config.overflow(Overflow::Overwrite);
    }
    loop {
        match FusionRing::open(name) {
            Err(RingError::NotFound { .. }) => {}
            r => return r,
        }
        match FusionRing::create(name, &config) {
            Err(RingError::AlreadyExists { .. }) => continue,
            r => return r,
        }
    }
}

fn is_eof(len: usize, p: PriorityClass) -> bool {
    len == 0 && p == PriorityClass::Background
}

/// Sends `data`, waiting for room in slices so that a stop signal is seen.
fn send_blocking(ring: &FusionRing, data: &[u8], priority: PriorityClass) -> Res {
    loop {
        match ring.send_deadline(data, priority, Instant::now() + SLICE) {
            Err(RingError::Timeout) => Stopped::check()?,
            r => return Ok(r?),
        }
    }
}

/// `fring send NAME`: stdin to the ring.
pub fn send(name: &str, framing: Framing, shape: Shape, no_eof: bool) -> Res {
    let ring = open_or_create(name, shape)?;
    let mut n = 0u64;
    let sent = send_stream(&ring, name, framing, &mut n);
    if let Err(e) = &sent {
        let Some(stop) = as_stopped(&**e) else {
            return sent;
        };
        // Stopped: end the stream as a closed pipe would, if it fits soon.
        if !no_eof {
            let eof = Instant::now() + Duration::from_secs(1);
            let _ = ring.send_deadline(&[], PriorityClass::Background, eof);
        }
        eprintln!("fring send: {n} messages to {name}, then {stop}");
        return sent;
    }
    if !no_eof {
        send_blocking(&ring, &[], PriorityClass::Background)?;
    }
    eprintln!("fring send: {n} messages to {name}");
    Ok(())
}

/// Sends stdin's messages, counting them in `n`.
fn send_stream(ring: &FusionRing, name: &str, framing: Framing, n: &mut u64) -> Res {
    let max = ring.max_message();
    let mut input = BufReader::with_capacity(1 << 16, own(std::io::stdin().as_fd())?);
    let mut buf = Vec::new();
    let n = &mut *n;
    loop {
        buf.clear();
        let got = match framing {
            Framing::Lines => input.read_until(b'\n', &mut buf)? > 0,
            Framing::Raw => {
                buf.resize(max, 0);
                let k = read_full(&mut input, &mut buf)?;
                buf.truncate(k);
                k > 0
            }
            Framing::Records => {
                let mut len = [0u8; 4];
                match read_full(&mut input, &mut len)? {
                    0 => false,
                    4 => {
                    let len = u32::from_le_bytes(len) as usize;
                    if len > max {
                        return Err(format!(
                            "record {n} is {len} bytes; ring {name} takes at most {max}"
                        )
                        .into());
                    }
                    buf.resize(len, 0);
                    let got = read_full(&mut input, &mut buf)?;
                    if got < len {
                        return Err(format!(
                            "record {n} is truncated: its header says {len} bytes, the input ends after {got}"
                        )
                        .into());
                    }
                    true
                    }
                    k => {
                        return Err(format!(
                            "record {n} has a truncated length header: {k} of 4 bytes before the input ends"
                        )
                        .into())
                    }
                }
            }
        };
        if !got {
            break;
        }
        if buf.len() > max {
            return Err(format!(
                "line {n} is {} bytes; ring {name} takes at most {max}",
                buf.len()
            )
            .into());
        }
        send_blocking(ring, &buf, PriorityClass::Normal)?;
        *n += 1;
    }
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut k = 0;
    while k < buf.len() {
        match r.read(&mut buf[k..])? {
            0 => break,
            m => k += m,
        }
    }
    Ok(k)
}

/// `fring recv NAME`: the ring to stdout.
pub fn recv(
    name: &str,
    framing: Framing,
    shape: Shape,
    count: Option<u64>,
    idle: Option<f64>,
) -> Res {
    let ring = open_or_create(name, shape)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, own(std::io::stdout().as_fd())?);
    let idle = idle.map(Duration::from_secs_f64);
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        let payload = match ring.recv_zerocopy() {
            Err(RingError::Empty) => {
                // Flush what we have before sleeping, so a pipeline sees it.
                out.flush()?;
                match next_message(&ring, idle)? {
                    Some(p) => p,
                    None => break,
                }
            }
            Err(RingError::Lagged { missed }) => {
                lagged(missed);
                continue;
            }
            r => r?,
        };
        if is_eof(payload.len(), payload.priority()) {
            break;
        }
        if framing == Framing::Records {
            out.write_all(&(payload.len() as u32).to_le_bytes())?;
        }
        out.write_all(&payload)?;
        n += 1;
    }
    out.flush()?;
    Ok(())
}

/// Waits for the next message in slices so that a stop signal is seen;
/// `None` after `idle` without one.
fn next_message(
    ring: &FusionRing,
    idle: Option<Duration>,
) -> Result<Option<Payload>, Box<dyn std::error::Error>> {
    let give_up = idle.map(|d| Instant::now() + d);
    loop {
        let slice_end = Instant::now() + SLICE;
        let until = give_up.map_or(slice_end, |g| g.min(slice_end));
        match ring.recv_zerocopy_deadline(until) {
            Err(RingError::Timeout) => {
                Stopped::check()?;
                if give_up.is_some_and(|g| Instant::now() >= g) {
                    return Ok(None);
                }
            }
            Err(RingError::Lagged { missed }) => lagged(missed),
            r => return Ok(Some(r?)),
        }
    }
}

/// Tells the user that a publisher that overwrites left this receiver
/// behind; the stream goes on.
fn lagged(missed: u64) {
    eprintln!(
        "fring recv: missed {missed} messages (the publisher overwrote them before they were read)"
    );
}
