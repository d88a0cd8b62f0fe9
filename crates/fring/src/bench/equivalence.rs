//! TEMPORARY: the old report.rs and the new modules fed the same rows.
use super::model::{self, RowId};
use super::old_report;
use super::paths::{Samples, Stream};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn samples(&mut self, n: usize, base: u64) -> Samples {
        (0..n)
            .map(|_| base + self.next() % (base * 3 + 1))
            .collect()
    }
    fn stream(&mut self) -> Stream {
        Stream {
            messages: 1000 + self.next() % 100000,
            ticks: 1 + self.next() % 10_000_000,
            secs: (1 + self.next() % 100000) as f64 * 1e-6,
        }
    }
    fn f(&mut self) -> f64 {
        (1 + self.next() % 100000) as f64 / 1000.0
    }
}

fn both(seed: u64, sizes: &[usize], limits: bool, memcpy_size: Option<usize>, skip: u64) {
    let tpn = 2.445;
    let mut g = Lcg(seed);
    let mut o = old_report::Report::new(tpn);
    let mut n = model::Report::new(super::machine::Machine::detect(tpn), tpn);
    let mut k = 0u64;
    let mut lat = |g: &mut Lcg, o: &mut old_report::Report, n: &mut model::Report, id: RowId| {
        k += 1;
        if skip != 0 && k.is_multiple_of(skip) {
            return;
        }
        let (len, base) = (50 + (g.next() % 200) as usize, 10 + g.next() % 1000);
        let s = g.samples(len, base);
        let p = g.f();
        if id.kind() == model::Kind::Latency {
            o.latency(id.name(), id.size(), &s, p, id.batch_size());
            n.latency(id, &s, p);
        } else {
            let t = g.stream();
            o.throughput(id.name(), id.size(), t, p, id.batch_size());
            n.throughput(id, t, p);
        }
    };
    lat(&mut g, &mut o, &mut n, RowId::Floor);
    if limits {
        let (a, b, c, d, e, f) = (g.f(), g.f(), g.f(), g.f(), g.f(), g.f());
        for m in [&mut o.machine.ring_floor_ns, &mut n.machine.ring_floor_ns] {
            *m = Some(a);
        }
        o.machine.clock_read_ticks = Some(b);
        n.machine.clock_read_ticks = Some(b);
        o.machine.memcpy_two_buffers_gbps = Some(c);
        n.machine.memcpy_two_buffers_gbps = Some(c);
        o.machine.line_stream_ns = Some(d);
        n.machine.line_stream_ns = Some(d);
        o.machine.line_stream_claimed_ns = Some(e);
        n.machine.line_stream_claimed_ns = Some(e);
        o.machine.packed_stream_ticks = Some(f);
        n.machine.packed_stream_ticks = Some(f);
        let (s, u) = (g.f() / 10.0 + 30.0, g.f());
        o.single_thread_ticks = Some(old_report::SingleThread {
            stamped: s,
            unstamped: u,
        });
        n.single_thread_ticks = Some(model::SingleThread {
            stamped: s,
            unstamped: u,
        });
    }
    lat(&mut g, &mut o, &mut n, RowId::InlineLatency);
    for &s in sizes {
        lat(&mut g, &mut o, &mut n, RowId::LoanLatency(s));
        lat(&mut g, &mut o, &mut n, RowId::CopyLatency(s));
    }
    for id in [
        RowId::Blocking,
        RowId::Eventfd,
        RowId::PipeLatency,
        RowId::UdsLatency,
        RowId::InlineStream,
        RowId::BatchStream,
    ] {
        lat(&mut g, &mut o, &mut n, id);
    }
    for &s in sizes {
        lat(&mut g, &mut o, &mut n, RowId::LoanStream(s));
        lat(&mut g, &mut o, &mut n, RowId::CopyStream(s));
    }
    lat(&mut g, &mut o, &mut n, RowId::PipeStream);
    lat(&mut g, &mut o, &mut n, RowId::UdsStream);
    if let Some(ms) = memcpy_size {
        let bw = g.f() * 1e8;
        o.memcpy = Some((ms, bw));
        n.memcpy = Some((ms, bw));
    }
    o.judge();
    n.judge();
    assert_eq!(o.render(), n.render(), "seed {seed}");
    let dir = std::env::temp_dir();
    let (oj, nj) = (
        dir.join(format!("eq-old-{seed}.json")),
        dir.join(format!("eq-new-{seed}.json")),
    );
    o.write_json(&oj).unwrap();
    n.write_json(&nj).unwrap();
    assert_eq!(
        std::fs::read(&oj).unwrap(),
        std::fs::read(&nj).unwrap(),
        "json seed {seed}"
    );
    let (op, np) = (
        dir.join(format!("eq-old-{seed}.svg")),
        dir.join(format!("eq-new-{seed}.svg")),
    );
    o.write_plot(&op).unwrap();
    n.write_plot(&np).unwrap();
    assert_eq!(
        std::fs::read(&op).unwrap(),
        std::fs::read(&np).unwrap(),
        "svg seed {seed}"
    );
    for p in [oj, nj, op, np] {
        let _ = std::fs::remove_file(p);
    }
    eprintln!("seed {seed}: {} targets, equal", n.targets.len());
}

#[test]
fn old_and_new_agree() {
    for seed in 0..40u64 {
        let sizes: &[usize] = match seed % 5 {
            0 => &[1024, 64 << 10, 1 << 20],
            1 => &[1024],
            2 => &[],
            3 => &[2 << 20, 1 << 20, 1 << 20],
            _ => &[100, 5000],
        };
        let memcpy = match seed % 4 {
            0 => sizes.iter().copied().max(),
            1 => None,
            2 => Some(1 << 20),
            _ => Some(512),
        };
        both(seed, sizes, seed % 3 != 0, memcpy, seed % 7);
    }
}
