//! One process's handle on a segment, below the public ring types: the
//! ring the segment holds as every handle sees it ([`shared`]), the
//! handle's participant entry and how it follows a fork
//! ([`registration`], over the table in [`participant`]), its side of the
//! arena ([`allocator`]), its stats lanes ([`stats`]), what it does about
//! dead peers ([`peer`]), single producer / consumer roles ([`roles`]),
//! blocking ([`wait`]) and stale named rings ([`stale`]). Nothing here
//! knows the public ring types.

pub(crate) mod allocator;
pub(crate) mod broadcast;
pub(crate) mod participant;
pub(crate) mod peer;
pub(crate) mod registration;
pub(crate) mod roles;
pub(crate) mod shared;
pub(crate) mod stale;
pub(crate) mod stats;
pub(crate) mod wait;
