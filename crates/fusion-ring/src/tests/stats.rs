//! Per-lane counters (`handle::stats`) of mixed batches, through the ring types.

use crate::handle::stats::LaneStats;
use crate::priority::PriorityClass;

fn lane(stats: &[LaneStats; 5], p: PriorityClass) -> LaneStats {
    stats[p.lane()]
}

/// A batch's counters are gathered per call and written per lane: a
/// batch that switches lanes must still credit each message to its own.
#[test]
fn a_mixed_lane_inline_batch_is_counted_per_lane() {
    use crate::batch::BatchMessage;
    use crate::ultra::UltraFastRing;
    let ring = UltraFastRing::new(16).unwrap();
    let batch = [
        BatchMessage::new(b"abc", PriorityClass::High),
        BatchMessage::new(b"de", PriorityClass::High),
        BatchMessage::new(b"f", PriorityClass::Low),
        BatchMessage::new(b"ghij", PriorityClass::High),
    ];
    assert_eq!(crate::inline::send_batch(&ring, &batch).unwrap(), 4);
    let mut out = [crate::ring::InlineMessage::default(); 8];
    assert_eq!(ring.recv_batch(&mut out).unwrap(), 4);
    let stats = ring.as_ring().lane_stats();
    let high = lane(&stats, PriorityClass::High);
    assert_eq!((high.sent, high.sent_bytes, high.inline_sent), (3, 9, 3));
    assert_eq!(
        (high.received, high.received_bytes, high.timed()),
        (3, 9, 3)
    );
    assert!(high.latency_min <= high.latency_max);
    assert!(high.latency_sum >= high.latency_max);
    let low = lane(&stats, PriorityClass::Low);
    assert_eq!(
        (low.sent, low.sent_bytes, low.received, low.timed()),
        (1, 1, 1, 1)
    );
    assert_eq!(low.latency_sum, low.latency_max);
    for p in [
        PriorityClass::RealTime,
        PriorityClass::Normal,
        PriorityClass::Background,
    ] {
        assert_eq!(lane(&stats, p), LaneStats::default(), "{p:?}");
    }
}

/// The same through the general path, with a zero-copy message between
/// inline ones of the same lane.
#[test]
fn a_mixed_kind_batch_is_counted_per_lane_and_kind() {
    use crate::batch::BatchMessage;
    use crate::fusion::FusionRing;
    use crate::shm::config::Config;
    let ring =
        FusionRing::with_config(&Config::new(16).arena_bytes(1 << 16).max_message(4096)).unwrap();
    let big = [9u8; 100];
    let batch = [
        BatchMessage::new(&big, PriorityClass::High),
        BatchMessage::new(b"xyz", PriorityClass::Low),
        BatchMessage::new(b"uv", PriorityClass::High),
    ];
    assert_eq!(ring.send_batch(&batch).unwrap(), 3);
    let mut out = Vec::new();
    assert_eq!(ring.recv_batch(&mut out, 8).unwrap(), 3);
    drop(out);
    let stats = ring.as_ref().lane_stats();
    let high = lane(&stats, PriorityClass::High);
    assert_eq!(
        (
            high.sent,
            high.sent_bytes,
            high.inline_sent,
            high.zerocopy_sent
        ),
        (2, 102, 1, 1)
    );
    assert_eq!((high.received, high.received_bytes), (2, 102));
    let low = lane(&stats, PriorityClass::Low);
    assert_eq!(
        (
            low.sent,
            low.inline_sent,
            low.zerocopy_sent,
            low.received_bytes
        ),
        (1, 1, 0, 3)
    );
}
