//! Opens a segment file made from the fuzzer's bytes with every ring type
//! and `inspect`, and runs a few bounded operations on it if it opens.
//!
//! First byte even: the rest is the whole file (padded to the 4096-byte
//! header page: opening a shorter file waits 500 ms for its creator, which
//! would only slow the fuzzer down; a zero magic is made non-zero for the
//! same reason). First byte odd: the rest is a list of patches
//! `[offset u32 le][len u8][len bytes]` applied to a real segment (a small
//! ring with an arena and messages queued), so that the fuzzer works on
//! segments that pass the header checks.

#![no_main]

use std::time::Duration;

use fusion_ring::inspect::RingInfo;
use fusion_ring::{Config, FusionRing, InlineMessage, PriorityClass, Ring, UltraFastRing};
use libfuzzer_sys::fuzz_target;

/// A real segment: capacity 4, an 8 KiB arena, inline and zero-copy
/// messages queued, one block freed.
fn template() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let name = format!("fring-fuzz-{}-template", std::process::id());
        let cfg = Config::new(4).arena_bytes(8 << 10).max_message(1000);
        let ring = FusionRing::create(&name, &cfg).expect("template");
        ring.send(&[1u8; 500]).unwrap();
        ring.recv(&mut [0u8; 1000]).unwrap();
        ring.send(b"inline").unwrap();
        ring.send(&[2u8; 200]).unwrap();
        ring.send_with_priority(&[3u8; 900], PriorityClass::Low)
            .unwrap();
        std::fs::read(format!("/dev/shm/{name}")).expect("template bytes")
    })
}

fn build(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return vec![1; 4096];
    };
    if mode % 2 == 0 {
        let mut bytes = rest.to_vec();
        if bytes.len() < 4096 {
            bytes.resize(4096, 0);
        }
        if bytes[..8] == [0; 8] {
            bytes[0] = 1;
        }
        return bytes;
    }
    let mut bytes = template().to_vec();
    let mut rest = rest;
    while rest.len() >= 5 {
        let off = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize % bytes.len();
        let len = (rest[4] as usize)
            .min(rest.len() - 5)
            .min(bytes.len() - off);
        bytes[off..off + len].copy_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    // One name per process, rewritten by every input: a crash leaves at
    // most this one file behind.
    let name = format!("fring-fuzz-{}-0", std::process::id());
    let path = format!("/dev/shm/{name}");
    let bytes = build(data);
    std::fs::write(&path, &bytes).expect("write");
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(path);

    let _ = RingInfo::read(&name);
    let _ = UltraFastRing::open(&name).map(|u| {
        let _ = u.send_fast(b"hello", PriorityClass::High);
        let mut out = [InlineMessage::default(); 4];
        let _ = u.recv_batch(&mut out);
        let _ = u.recv_fast(&mut [0u8; 40]);
        let _ = u.stats();
    });
    if let Ok(f) = FusionRing::open(&name) {
        let _ = f.send(&[7u8; 300]);
        let _ = f.recv(&mut vec![0u8; f.max_message().min(1 << 20)]);
        let _ = f
            .recv_zerocopy()
            .map(|p| p.iter().map(|&b| b as u64).sum::<u64>());
        let _ = f.recv(&mut [0u8; 8]);
        let _ = f.recv_with_timeout(&mut [0u8; 64], Duration::from_micros(100));
        let _ = f.loan(100).map(|mut l| l.fill(1));
        let _ = f.stats();
        let _ = f.as_ring().arena_usage();
    }
    let _ = Ring::open(&name).map(|r| r.stats());
});
