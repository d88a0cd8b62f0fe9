//! Handing a ring's file descriptor to another process over a Unix socket
//! (`SCM_RIGHTS`), for anonymous (memfd) rings that have no name.
//!
//! ```
//! use std::os::unix::net::UnixStream;
//! use fusion_ring::{handoff, FusionRing};
//!
//! let (a, b) = UnixStream::pair()?;
//! let ring = FusionRing::new(64)?;
//! handoff::send_fd(&a, ring.as_fd())?;          // in one process
//! let peer = FusionRing::from_fd(handoff::recv_fd(&b)?)?; // in the other
//! ring.send(b"over the socket")?;
//! let mut buf = [0u8; 64];
//! assert_eq!(peer.recv(&mut buf)?, 15);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Result, RingError};

/// The one data byte that carries the descriptor.
const TAG: u8 = b'R';

/// Sends `fd` over `socket` (one byte of data plus the descriptor).
pub fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(RingError::io(
            "sendmsg(SCM_RIGHTS)",
            rustix::io::Errno::NOBUFS,
        ));
    }
    sendmsg(
        socket,
        &[std::io::IoSlice::new(&[TAG])],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| RingError::io("sendmsg(SCM_RIGHTS)", e))?;
    Ok(())
}

/// Receives a descriptor sent with [`send_fd`] (close-on-exec set).
pub fn recv_fd(socket: &UnixStream) -> Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let msg = recvmsg(
        socket,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| RingError::io("recvmsg(SCM_RIGHTS)", e))?;
    let mut received = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            received = fds.next();
        }
    }
    match received {
        Some(fd) if msg.bytes == 1 && byte[0] == TAG => Ok(fd),
        _ => Err(RingError::io(
            "recvmsg(SCM_RIGHTS): no descriptor received",
            rustix::io::Errno::BADMSG,
        )),
    }
}
