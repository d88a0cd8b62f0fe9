//! Stopping `fring send` / `fring recv` cleanly on SIGINT or SIGTERM: the
//! default action would kill the process with its handle registered in the
//! ring, leaving a dead participant for the others to find and reclaim.
//! Instead a handler notes the signal, the blocking calls (stdin, stdout,
//! waits on the ring) return within [`SLICE`], and the command ends through
//! its normal path: the ring handle is dropped (unregistered), and the
//! process exits with the shell's code for the signal (128 + its number).
//!
//! The handler is installed without `SA_RESTART`, so a read of stdin or a
//! write to stdout blocked when the signal lands returns `EINTR`;
//! [`Interruptible`] turns that into a [`Stopped`] error, which std's
//! `read_until` / `write_all` do not retry. The ring's own waits run in
//! slices of [`SLICE`] between which the loops look at [`requested`].

use std::io::{Read, Write};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Longest a ring wait lasts before the loops look for a signal again.
pub const SLICE: Duration = Duration::from_millis(200);

/// The signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(signal: libc::c_int) {
    // Relaxed: only this word is shared with the handler; an atomic store
    // is async-signal-safe.
    SIGNAL.store(signal, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM stop the command instead of killing it.
pub fn install() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is plain data (all-zero is valid: no flags,
        // empty mask); `note` has the `sa_handler` signature and only does
        // an atomic store; the struct outlives the call.
        let done = unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, core::ptr::null_mut())
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal that asked the command to stop, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The error a command stopped by a signal returns.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {}", signal_name(*signal))]
pub struct Stopped {
    /// The signal's number.
    pub signal: i32,
}

impl Stopped {
    /// The error, if a signal asked to stop.
    pub fn check() -> Result<(), Stopped> {
        requested().map_or(Ok(()), |signal| Err(Stopped { signal }))
    }

    /// The exit code a shell gives a process killed by the signal.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal).clamp(0, 255) as u8
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

/// A reader or writer whose calls interrupted by a stop signal fail with
/// [`Stopped`] (other interruptions are retried as usual).
pub struct Interruptible<T>(pub T);

fn stopped_or(e: std::io::Error) -> std::io::Error {
    match (e.kind(), requested()) {
        (std::io::ErrorKind::Interrupted, Some(signal)) => {
            std::io::Error::other(Stopped { signal })
        }
        _ => e,
    }
}

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Stopped::check().map_err(std::io::Error::other)?;
        self.0.read(buf).map_err(stopped_or)
    }
}

impl<W: Write> Write for Interruptible<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Stopped::check().map_err(std::io::Error::other)?;
        self.0.write(buf).map_err(stopped_or)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(stopped_or)
    }
}

/// The [`Stopped`] inside `e`, if that is why it failed.
pub fn as_stopped<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e Stopped> {
    if let Some(s) = e.downcast_ref::<Stopped>() {
        return Some(s);
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<Stopped>())
}
