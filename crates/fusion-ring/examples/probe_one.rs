use fusion_ring::{Config, PriorityClass, UltraFastRing};
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    let config = Config::new(1024)
        .arena_bytes(0)
        .wakeups(false)
        .timestamps(false)
        .single_producer(true)
        .single_consumer(true);
    let ring = UltraFastRing::with_config(&config).unwrap();
    let msg = [7u8; 40];
    let mut buf = [0u8; 40];
    for _ in 0..n {
        ring.send_fast(std::hint::black_box(&msg), PriorityClass::Normal)
            .unwrap();
        std::hint::black_box(ring.recv_fast(&mut buf).unwrap());
    }
}
