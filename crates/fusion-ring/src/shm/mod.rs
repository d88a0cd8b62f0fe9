//! What lies in shared memory and how it is mapped: the segment layout,
//! the mapping of a segment (anonymous, named, adopted from a descriptor),
//! its hand-over between processes, and a ring's configuration. Nothing
//! here knows about messages, handles or peers.

pub(crate) mod layout;

hosted! {
    pub(crate) mod config;
    pub mod handoff;
    pub(crate) mod liveness;
    pub(crate) mod process;
    pub(crate) mod segment;
}
