use fusion_ring::{Config, FusionRing, PriorityClass};
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    let size: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1 << 20);
    let config = Config::new(16)
        .arena_bytes(((size.next_power_of_two() + 64) * 8).max(1 << 20))
        .max_message(size.max(64))
        .wakeups(false);
    let ring = FusionRing::with_config(&config).unwrap();
    for _ in 0..n {
        let mut l = ring.loan(size).expect("block");
        l[..64].fill(7);
        ring.send_loan(l, PriorityClass::Normal)
            .map_err(|e| e.error)
            .unwrap();
        let p = ring.recv_zerocopy().unwrap();
        std::hint::black_box(p[0]);
        drop(p);
    }
}
