use fusion_ring::{Config, InlineMessage, PriorityClass, UltraFastRing};
fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    let size: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(8);
    let ring = UltraFastRing::with_config(&Config::new(4096)).unwrap();
    let msg = vec![1u8; size];
    let msgs: Vec<&[u8]> = vec![&msg[..]; 32];
    let mut out = vec![InlineMessage::default(); 32];
    for _ in 0..n {
        for _ in 0..4 {
            assert_eq!(
                ring.send_batch(std::hint::black_box(&msgs), PriorityClass::Normal)
                    .unwrap(),
                32
            );
        }
        for _ in 0..4 {
            assert_eq!(ring.recv_batch(&mut out).unwrap(), 32);
        }
    }
}
