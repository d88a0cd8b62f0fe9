//! Single-thread costs of each operation: one handle sends and receives on
//! the same ring, so no cache line moves between cores and what is measured
//! is the instruction cost of each path (the two-process numbers are
//! `fring bench`'s).
//!
//! Run: `cargo bench -p fusion-ring --bench ops` (about 30 s), or add
//! `-- --quick` for a rougher, faster run.

#[cfg(not(fusion_ring_loom))]
mod ops {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{BenchmarkGroup, Criterion, Throughput};
    use fusion_ring::{
        Config, FusionRing, InlineMessage, Payload, PriorityClass, UltraFastRing, INLINE_MAX,
    };

    type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

    const CAPACITY: usize = 1024;
    const BATCH: usize = 32;

    /// Short measurements: the whole file runs in well under a minute.
    fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
        let mut g = c.benchmark_group(name);
        g.measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(500))
            .sample_size(30);
        g
    }

    fn ultra(c: &mut Criterion) {
        let mut g = group(c, "ultra_send_recv_40B");
        g.throughput(Throughput::Elements(1));
        let msg = [0x5Au8; INLINE_MAX];
        let mut buf = [0u8; INLINE_MAX];
        for (label, timestamps) in [("timestamps", true), ("no_timestamps", false)] {
            let config = Config::new(CAPACITY)
                .arena_bytes(0)
                .wakeups(false)
                .timestamps(timestamps);
            let ring = UltraFastRing::with_config(&config).expect("ring");
            g.bench_function(label, |b| {
                b.iter(|| {
                    ring.send_fast(black_box(&msg), PriorityClass::Normal)
                        .expect("send");
                    black_box(ring.recv_fast(&mut buf).expect("recv"))
                })
            });
        }
        g.finish();
    }

    fn batch(c: &mut Criterion) {
        let mut g = group(c, "ultra_batch_32x40B");
        g.throughput(Throughput::Elements(BATCH as u64));
        let ring = UltraFastRing::new(CAPACITY).expect("ring");
        let data = [0x33u8; INLINE_MAX];
        let msgs: [&[u8]; BATCH] = [&data; BATCH];
        let mut out = [InlineMessage::default(); BATCH];
        g.bench_function("send_batch+recv_batch", |b| {
            b.iter(|| {
                let sent = ring
                    .send_batch(black_box(&msgs), PriorityClass::Normal)
                    .expect("send");
                let got = ring.recv_batch(&mut out).expect("recv");
                assert_eq!((sent, got), (BATCH, BATCH));
                black_box(&out);
            })
        });
        g.finish();
    }

    fn fusion_inline(c: &mut Criterion) {
        let mut g = group(c, "fusion_send_recv_inline_40B");
        g.throughput(Throughput::Elements(1));
        let ring = FusionRing::new(CAPACITY).expect("ring");
        let msg = [0x11u8; INLINE_MAX];
        let mut buf = [0u8; INLINE_MAX];
        g.bench_function("send+recv", |b| {
            b.iter(|| {
                ring.send(black_box(&msg)).expect("send");
                black_box(ring.recv(&mut buf).expect("recv"))
            })
        });
        g.finish();
    }

    fn zerocopy_loan(c: &mut Criterion) {
        let mut g = group(c, "fusion_loan_send_recv_zerocopy");
        let ring = FusionRing::new(CAPACITY).expect("ring");
        for (label, size) in [
            ("1KiB", 1usize << 10),
            ("64KiB", 64 << 10),
            ("1MiB", 1 << 20),
        ] {
            g.throughput(Throughput::Elements(1));
            g.bench_function(label, |b| {
                b.iter(|| {
                    let mut loan = ring.loan(black_box(size)).expect("loan");
                    // One byte written: the cost of the path, not of filling it.
                    loan[0] = 1;
                    ring.send_loan(loan, PriorityClass::Normal)
                        .map_err(|e| e.error)
                        .expect("send_loan");
                    let p = ring.recv_zerocopy().expect("recv");
                    black_box(p.len())
                })
            });
        }
        g.finish();
    }

    fn zerocopy_copy(c: &mut Criterion) {
        let mut g = group(c, "fusion_copy_send_recv_zerocopy");
        let ring = FusionRing::new(CAPACITY).expect("ring");
        let size = 64 << 10;
        let data = vec![0x77u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("64KiB", |b| {
            b.iter(|| {
                ring.send(black_box(&data)).expect("send");
                let p = ring.recv_zerocopy().expect("recv");
                black_box(p.len())
            })
        });
        g.finish();
    }

    fn payload_clone(c: &mut Criterion) {
        let mut g = group(c, "payload_clone_drop");
        g.throughput(Throughput::Elements(1));
        let ring = FusionRing::new(CAPACITY).expect("ring");
        ring.send(&[1u8; 64 << 10]).expect("send");
        ring.send(&[2u8; INLINE_MAX]).expect("send");
        let shared: Payload = ring.recv_zerocopy().expect("recv");
        let inline: Payload = ring.recv_zerocopy().expect("recv");
        assert!(shared.is_zerocopy() && !inline.is_zerocopy());
        for (label, p) in [("zerocopy_64KiB", &shared), ("inline_40B", &inline)] {
            g.bench_function(label, |b| b.iter(|| drop(black_box(p.clone()))));
        }
        g.finish();
    }

    criterion::criterion_group!(
        benches,
        ultra,
        batch,
        fusion_inline,
        zerocopy_loan,
        zerocopy_copy,
        payload_clone
    );
}

#[cfg(not(fusion_ring_loom))]
criterion::criterion_main!(ops::benches);

#[cfg(fusion_ring_loom)]
fn main() {}
