//! Regressions: reduced reproducers of what the fuzzers found. Each writes a
//! few words into a live segment, as a peer would, then makes one call. The
//! comments describe the failure as found (at 04d1ddf); all five were fixed
//! by c43d2a3 and 5b7655c.

use std::time::Duration;

use fusion_ring::inspect::RingInfo;
use fusion_ring::{Config, FusionRing, PriorityClass, RingError, UltraFastRing};
use testkit::child::is_any_child;
use testkit::role;

use crate::harness::{child_args, fuzz_name, spawn_child, tail, wait_all};
use crate::layout_mirror::{
    Lay, ARENA_FREE, ARENA_SWEEPER, CONSUMER_HEAD, LANES, PARTICIPANT_SIZE, SLOT,
};
use crate::peer::SharedMap;

/// A named ring, with a mapping of its file for playing the peer.
fn victim(cfg: &Config) -> (FusionRing, SharedMap, Lay, String) {
    let name = fuzz_name();
    let ring = FusionRing::create(&name, cfg).expect("create");
    let map = SharedMap::open(&name).expect("map");
    let lay = map.lay();
    (ring, map, lay, name)
}

fn lane_word(lay: &Lay, entry: usize, lane: usize, word: usize) -> usize {
    lay.participants + entry * PARTICIPANT_SIZE + LANES + lane * 320 + word * 8
}

/// Peer sets `consumer_head` to u64::MAX: `claim_recv` computes `pos + 1`
/// (protocol.rs, `claim_recv`), which overflows: a panic in debug builds.
/// (Release builds wrap and report `Corrupt`.)
#[test]
fn regression_consumer_head_at_u64_max() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap();
    map.store(lay.ctrl + CONSUMER_HEAD, 8, u64::MAX);
    let r = ring.recv(&mut [0u8; 64]);
    assert!(matches!(r, Err(RingError::Corrupt(_))), "{r:?}");
}

/// Peer sets `producer_head` to u64::MAX and the slot it maps to looks free
/// for that position: `claim_send` computes `pos + count` (protocol.rs,
/// `claim_send`, the CAS) and `publish` `pos + 1`: overflow panics in debug
/// builds.
#[test]
fn regression_producer_head_at_u64_max() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    map.store(lay.ctrl, 8, u64::MAX);
    map.store(lay.slots + 7 * SLOT, 8, u64::MAX); // slot (MAX & 7): "free for MAX"
    let r = ring.send(b"x");
    assert!(
        matches!(r, Ok(()) | Err(RingError::Corrupt(_) | RingError::Full)),
        "{r:?}"
    );
}

/// Peer sets a lane counter of the retired entry (0) to u64::MAX: summing it
/// with our entry's counter (`LaneStats::add`, stats.rs, `self.sent +=
/// o.sent`) overflows: `stats()` and `RingInfo::read` panic in debug builds.
#[test]
fn regression_lane_counter_sum_over_participants() {
    let (ring, map, lay, name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap(); // our entry (1): lane Normal sent = 1
    map.store(
        lane_word(&lay, 0, PriorityClass::Normal.lane(), 0),
        8,
        u64::MAX,
    );
    let s = ring.stats();
    let info = RingInfo::read(&name).expect("inspect");
    // Any value is acceptable for a scribbled counter; not a panic.
    std::hint::black_box((s.sent, info.lanes));
}

/// Peer sets lane High's `sent` (of our own entry) to u64::MAX: the lanes
/// are summed with `Iterator::sum` (ultra.rs `UltraFastRing::stats`,
/// fusion.rs `FusionRing::stats`, ring.rs `Ring::stats`, as the code was
/// then), which overflowed:
/// a panic in debug builds.
#[test]
fn regression_lane_counter_sum_over_lanes() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"x").unwrap(); // lane Normal: sent = 1, inline_sent = 1
    for word in [0, 2] {
        // sent, inline_sent of lane High
        map.store(
            lane_word(&lay, 1, PriorityClass::High.lane(), word),
            8,
            u64::MAX,
        );
    }
    let ultra = UltraFastRing::from(ring.as_ring().clone());
    std::hint::black_box(ultra.stats());
    std::hint::black_box(ring.as_ring().stats());
    std::hint::black_box(ring.stats());
}

/// Peer sets the arena's sweep lock to u64::MAX (no pid): `recover` must
/// neither crash nor give up reclaiming for good. (This word was once the
/// `carved[10]` counter, which overflowed `Arena::usage` at u64::MAX.)
#[test]
fn regression_arena_sweep_lock_at_u64_max() {
    let cfg = Config::new(8).arena_bytes(256 << 10).max_message(64 << 10);
    let (ring, map, lay, name) = victim(&cfg);
    map.store(lay.arena + ARENA_SWEEPER, 8, u64::MAX);
    std::hint::black_box(ring.as_ring().arena_usage());
    std::hint::black_box(ring.stats());
    std::hint::black_box(ring.as_ring().recover());
    assert_eq!(
        map.load(lay.arena + ARENA_SWEEPER, 8),
        0,
        "lock taken, released"
    );
    std::hint::black_box(RingInfo::read(&name).expect("inspect").arena);
}

/// Peer makes a free-list block point to itself: `Arena::usage` walks the
/// list with `FreeList::len_bounded` (arena/free_list.rs), which must stay
/// bounded (once it was bounded by a per-class counter in the segment, which
/// a peer could set to u64::MAX: `arena_usage()`, `FusionRing::stats()` and
/// `RingInfo::read` (`fring stat`) looped ~2^64 times); `recover` must not
/// hang on it either. Run in a child under a watchdog.
#[test]
fn regression_arena_usage_free_list_cycle_hangs() {
    if is_any_child() {
        return;
    }
    let kid = spawn_child(role!(child_arena_usage_free_list_cycle), "", 0, 0, 0);
    let (_, verdict, out) = wait_all(vec![kid], Duration::from_secs(10)).remove(0);
    if let Some(v) = verdict {
        panic!(
            "arena_usage() on a cyclic free list: {v}\n{}",
            tail(&out, 40)
        );
    }
}

#[test]
fn child_arena_usage_free_list_cycle() {
    if child_args(role!(child_arena_usage_free_list_cycle)).is_none() {
        return;
    }
    let cfg = Config::new(8).arena_bytes(256 << 10).max_message(64 << 10);
    let (ring, map, lay, _name) = victim(&cfg);
    ring.send(&[1u8; 1000]).unwrap(); // a class-4 block at offset 0
    ring.recv(&mut vec![0u8; 64 << 10]).unwrap(); // freed: free[4] -> block 0
    assert_eq!(
        map.load(lay.arena + ARENA_FREE + 4 * 64, 8) & 0xffff_ffff,
        1
    );
    map.store(lay.blocks + 16, 8, 1); // block 0's next = block 0
    let usage = ring.as_ring().arena_usage();
    println!("arena_usage() returned: {usage:?}");
    let recovered = ring.as_ring().recover();
    println!("recover() returned: {recovered:?}");
}

/// Peer sets the length of a queued inline message to 0xFFFF_FFFF: a
/// receive with a small buffer reports `BufferTooSmall { needed:
/// 4294967295 }`, more than the ring's largest message (`claim_recv`,
/// protocol.rs, returned the slot length unchecked; ring.rs `recv_one`
/// mapped it, as the code was then). A caller that grows its buffer to `needed` and retries allocates
/// 4 GiB; the length should be reported as `Corrupt` instead.
#[test]
fn regression_buffer_too_small_names_a_scribbled_length() {
    let (ring, map, lay, _name) = victim(&Config::new(8).arena_bytes(0));
    ring.send(b"0123456789").unwrap();
    map.store(lay.slots + 16, 4, 0xFFFF_FFFF);
    let mut small = [0u8; 16];
    match ring.recv(&mut small) {
        Err(RingError::BufferTooSmall { needed, .. }) => assert!(
            needed <= ring.max_message(),
            "BufferTooSmall names {needed} bytes, the ring's largest message is {}",
            ring.max_message()
        ),
        r => assert!(matches!(r, Err(RingError::Corrupt(_))), "{r:?}"),
    }
}
