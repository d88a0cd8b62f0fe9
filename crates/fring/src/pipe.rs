//! `fring send` / `fring recv`: move data between a shell pipeline and a
//! named ring.
//!
//! Framing: `lines` (default: one message per line, the newline included,
//! so the bytes round-trip exactly), `records` (each message is a 4-byte
//! little-endian length then that many bytes, on both ends), or `raw` (stdin
//! in chunks of up to the ring's maximum message). The sender ends the
//! stream with an empty message of priority `Background`; the receiver
//! stops there (or after `--count` messages).

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use fusion_ring::{Config, FusionRing, PriorityClass, RingError};

type Res = Result<(), Box<dyn std::error::Error>>;

/// How messages are cut out of / written to a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    Lines,
    Records,
    Raw,
}

/// Opens the ring, creating it (kept after exit; `fring rm` removes it) if
/// it does not exist yet.
fn open_or_create(name: &str, capacity: usize) -> Result<FusionRing, RingError> {
    loop {
        match FusionRing::open(name) {
            Err(RingError::NotFound { .. }) => {}
            r => return r,
        }
        match FusionRing::create(name, &Config::new(capacity).unlink_on_drop(false)) {
            Err(RingError::AlreadyExists { .. }) => continue,
            r => return r,
        }
    }
}

fn is_eof(len: usize, p: PriorityClass) -> bool {
    len == 0 && p == PriorityClass::Background
}

/// `fring send NAME`: stdin to the ring.
pub fn send(name: &str, framing: Framing, capacity: usize, no_eof: bool) -> Res {
    let ring = open_or_create(name, capacity)?;
    let max = ring.max_message();
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut buf = Vec::new();
    let mut n = 0u64;
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
        ring.send_blocking_with_priority(&buf, PriorityClass::Normal)?;
        n += 1;
    }
    if !no_eof {
        ring.send_blocking_with_priority(&[], PriorityClass::Background)?;
    }
    eprintln!("fring send: {n} messages to {name}");
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
    capacity: usize,
    count: Option<u64>,
    idle: Option<f64>,
) -> Res {
    let ring = open_or_create(name, capacity)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        let payload = match idle {
            Some(s) => match ring.recv_zerocopy_timeout(Duration::from_secs_f64(s)) {
                Err(RingError::Timeout) => break,
                r => r?,
            },
            None => {
                // Flush what we have before sleeping, so a pipeline sees it.
                match ring.recv_zerocopy() {
                    Err(RingError::Empty) => {
                        out.flush()?;
                        ring.recv_zerocopy_blocking()?
                    }
                    r => r?,
                }
            }
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
