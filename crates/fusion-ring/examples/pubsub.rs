//! Publish-subscribe between processes: one publisher and two subscriber
//! processes on a named broadcast ring. Each subscriber receives the whole
//! stream (on a work-queue ring they would split it).
//!
//! `cargo run --release -p fusion-ring --example pubsub`
//!
//! The program starts itself twice more as subscribers (`pubsub subscribe
//! NAME`); each prints what it received and exits at the end-of-stream
//! message. The publisher waits until both have subscribed: a subscriber
//! receives what is published after it joined.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fusion_ring::{Config, Publisher, RingError, Subscriber};

const TICKS: u32 = 10;
const END: &[u8] = b"end";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, cmd, name] = &args[..] {
        if cmd == "subscribe" {
            return subscribe(name);
        }
    }
    let name = format!("pubsub-example-{}", std::process::id());
    // Up to 4 subscribers; the ring is removed when the publisher drops it.
    let publisher = Publisher::create(&name, &Config::new(64).broadcast(4))?;
    let mut subscribers: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["subscribe", &name])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.subscribers() < 2 {
        if Instant::now() > deadline {
            return Err("the subscribers did not join".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..TICKS {
        // Waits if the slowest subscriber is a ring behind.
        publisher.send_blocking(format!("tick {i}").as_bytes())?;
    }
    publisher.send_blocking(END)?;
    for child in &mut subscribers {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a subscriber failed: {status}").into());
        }
    }
    println!("publisher: {TICKS} ticks to 2 subscribers");
    Ok(())
}

/// A subscriber process: every tick, in order, then the end.
fn subscribe(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let sub = Subscriber::open(name)?;
    let me = std::process::id();
    let mut buf = [0u8; 40];
    let mut got = 0;
    loop {
        let n = match sub.recv_timeout(&mut buf, Duration::from_secs(10)) {
            Ok(n) => n,
            Err(RingError::Timeout) => return Err("no message for 10 s".into()),
            Err(e) => return Err(e.into()),
        };
        if &buf[..n] == END {
            break;
        }
        assert_eq!(&buf[..n], format!("tick {got}").as_bytes(), "in order");
        got += 1;
    }
    println!("subscriber {me}: {got} ticks");
    if got == TICKS {
        Ok(())
    } else {
        Err(format!("{got} ticks of {TICKS}").into())
    }
}
