//! The lock-free algorithms, over memory they are given: the slot protocol
//! of the ring, the arena of zero-copy blocks, and the event counts that
//! blocked callers sleep on. Nothing here knows about processes, handles or
//! files; what the arena must ask about other processes it asks through a
//! trait (`arena::Peers`). This layer is what loom model-checks.

pub(crate) mod arena;
pub(crate) mod broadcast;
pub(crate) mod event;
pub(crate) mod protocol;
pub(crate) mod single;
