//! Helpers of the integration tests that need fusion-ring's types (what
//! needs none is in the test kit, `crates/testkit`). Every test target
//! includes this tree and uses a part of it:
//!
//! - [`stream`]: `UltraFastRing` message streams between two processes;
//! - [`fusion`]: `FusionRing` in one process: message patterns, what a
//!   failed call must not change, blocking calls on threads with limits;
//! - [`cross_process`]: a `FusionRing` shared with child processes (by
//!   name or fd) and the parent's watched calls;
//! - [`send_fd`] / [`recv_fd`]: a ring's fd over a Unix socket, with the
//!   library's own `handoff` (the code under test, not a copy of it).

#![allow(dead_code)] // each test target uses its own subset

pub mod cross_process;
pub mod fusion;
pub mod stream;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Hands a ring's fd to the process at the other end of `stream`.
pub fn send_fd(stream: &UnixStream, fd: BorrowedFd<'_>) {
    fusion_ring::handoff::send_fd(stream, fd).expect("sendmsg with SCM_RIGHTS");
}

/// Receives a ring's fd from the other end of `stream`.
pub fn recv_fd(stream: &UnixStream) -> OwnedFd {
    fusion_ring::handoff::recv_fd(stream).expect("recvmsg with SCM_RIGHTS")
}
