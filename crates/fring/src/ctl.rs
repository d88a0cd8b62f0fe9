//! `fring ls`, `fring stat`, `fring rm`: introspection of named rings.

use std::time::Duration;

use comfy_table::{presets::ASCII_MARKDOWN, Table};
use fusion_ring::inspect::{self, RingInfo, ShmFile};
use fusion_ring::{PriorityClass, RingError};

type Res = Result<(), Box<dyn std::error::Error>>;

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `fring ls`: every ring under /dev/shm, and how many other files it
/// passed over.
pub fn ls() -> Res {
    let inspect::Listing {
        rings: names,
        others,
    } = inspect::scan()?;
    let skipped = match others {
        0 => String::new(),
        1 => " (1 other file under /dev/shm skipped: not a fusion-ring segment)".into(),
        n => format!(" ({n} other files under /dev/shm skipped: not fusion-ring segments)"),
    };
    if names.is_empty() {
        println!("no fusion-ring segments under /dev/shm{skipped}");
        return Ok(());
    }
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN).set_header(vec![
        "name",
        "capacity",
        "queued",
        "arena in use",
        "participants (alive/dead)",
    ]);
    // "stale": no running process has a handle; `fring rm` removes it
    // without --force.
    for name in names {
        match RingInfo::read(&name) {
            Ok(i) => {
                let alive = i.participants.iter().filter(|p| p.alive).count();
                t.add_row(vec![
                    i.name.clone(),
                    i.capacity.to_string(),
                    format!(
                        "{} ({:.0}%)",
                        i.queued,
                        100.0 * i.queued as f64 / i.capacity as f64
                    ),
                    if i.arena.capacity_bytes == 0 {
                        "-".into()
                    } else {
                        format!(
                            "{} / {}",
                            bytes(i.arena.bytes_in_use),
                            bytes(i.arena.capacity_bytes)
                        )
                    },
                    format!(
                        "{alive}/{}{}",
                        i.participants.len() - alive,
                        if i.is_stale() { " (stale)" } else { "" }
                    ),
                ]);
            }
            Err(e) => {
                t.add_row(vec![
                    name,
                    format!("unreadable: {e}"),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
    }
    println!("{t}");
    if others > 0 {
        println!("{}", skipped.trim_start());
    }
    Ok(())
}

fn stat_text(i: &RingInfo) -> String {
    let ns = |ticks: f64| {
        if i.ticks_per_ns > 0.0 {
            ticks / i.ticks_per_ns
        } else {
            ticks
        }
    };
    let mut out = format!(
        "ring {}: capacity {}, queued {}, head {}, tail {}, max message {}\narena: {} blocks, {} in use of {}\n",
        i.name,
        i.capacity,
        i.queued,
        i.head,
        i.tail,
        bytes(i.max_message),
        i.arena.blocks_in_use,
        bytes(i.arena.bytes_in_use),
        bytes(i.arena.capacity_bytes)
    );
    let side = |single: bool, holder: Option<u32>, many: &str, one: &str| match (single, holder) {
        (false, _) => many.to_string(),
        (true, Some(pid)) => format!("{one} (held by pid {pid})"),
        (true, None) => format!("{one} (free)"),
    };
    if let Some(limit) = i.max_subscribers {
        let subs: Vec<_> = i
            .participants
            .iter()
            .filter(|p| p.cursor.is_some())
            .collect();
        out += &format!(
            "broadcast ring: {} of {limit} subscribers{}\noverflow: {}\n",
            subs.len(),
            subs.iter()
                .map(|p| {
                    let c = p.cursor.unwrap_or(0);
                    format!(
                        "; pid {} at {c}, {} behind{}",
                        p.pid,
                        i.head.saturating_sub(c),
                        if p.alive { "" } else { " (dead)" }
                    )
                })
                .collect::<String>(),
            if i.overwrite {
                "overwrite (the publisher writes over what a subscriber has not read; it is told how many it missed)"
            } else {
                "block (the publisher waits for the slowest subscriber)"
            }
        );
    }
    if i.max_subscribers.is_some() {
        out += &format!(
            "roles: {}\n",
            side(i.single_producer, i.producer_pid, "", "one publisher")
        );
    } else {
        out += &format!(
            "roles: {}, {}\n",
            side(
                i.single_producer,
                i.producer_pid,
                "many producers",
                "single producer"
            ),
            side(
                i.single_consumer,
                i.consumer_pid,
                "many consumers",
                "single consumer"
            ),
        );
    }
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN).set_header(vec![
        "lane",
        "sent",
        "received",
        "inline",
        "zero-copy",
        "bytes recv",
        "lat p50",
        "lat p99",
        "lat max",
    ]);
    for (p, l) in PriorityClass::ALL.iter().zip(&i.lanes) {
        t.add_row(vec![
            p.name().to_string(),
            l.sent.to_string(),
            l.received.to_string(),
            l.inline_sent.to_string(),
            l.zerocopy_sent.to_string(),
            bytes(l.received_bytes),
            format!("{:.0} ns", ns(l.latency_percentile(0.5) as f64)),
            format!("{:.0} ns", ns(l.latency_percentile(0.99) as f64)),
            format!("{:.0} ns", ns(l.latency_max as f64)),
        ]);
    }
    out += &format!("{t}\nparticipants:");
    for p in &i.participants {
        let role = match (p.sender, p.receiver) {
            (true, true) => "send+recv",
            (true, false) => "send",
            (false, true) => "recv",
            _ => "idle",
        };
        out += &format!(
            " pid {} ({role}, {}{})",
            p.pid,
            if p.alive { "alive" } else { "dead" },
            if p.own_pid_namespace {
                ""
            } else {
                ", another pid namespace"
            }
        );
    }
    out.push('\n');
    out
}

fn stat_json(i: &RingInfo) -> serde_json::Value {
    let lanes: Vec<_> = PriorityClass::ALL
        .iter()
        .zip(&i.lanes)
        .map(|(p, l)| {
            serde_json::json!({
                "lane": p.name(), "sent": l.sent, "received": l.received,
                "inline_sent": l.inline_sent, "zerocopy_sent": l.zerocopy_sent,
                "sent_bytes": l.sent_bytes, "received_bytes": l.received_bytes,
                "latency_p50_ticks": l.latency_percentile(0.5),
                "latency_p99_ticks": l.latency_percentile(0.99),
                "latency_max_ticks": l.latency_max,
                "latency_mean_ticks": l.avg_latency(),
            })
        })
        .collect();
    serde_json::json!({
        "name": i.name, "capacity": i.capacity, "queued": i.queued, "head": i.head,
        "tail": i.tail, "max_message": i.max_message, "ticks_per_ns": i.ticks_per_ns,
        "arena": { "blocks_in_use": i.arena.blocks_in_use, "bytes_in_use": i.arena.bytes_in_use,
                   "capacity_bytes": i.arena.capacity_bytes },
        "lanes": lanes,
        "single_producer": i.single_producer, "single_consumer": i.single_consumer,
        "producer_pid": i.producer_pid, "consumer_pid": i.consumer_pid,
        "participants": i.participants.iter().map(|p| serde_json::json!({
            "pid": p.pid, "sender": p.sender, "receiver": p.receiver, "alive": p.alive,
            "own_pid_namespace": p.own_pid_namespace, "cursor": p.cursor,
            "lag": p.cursor.map(|c| i.head.saturating_sub(c)),
        })).collect::<Vec<_>>(),
        "max_subscribers": i.max_subscribers,
        "overwrite": i.overwrite,
    })
}

/// `fring stat NAME [--watch SECS] [--json]`.
pub fn stat(name: &str, watch: Option<f64>, json: bool) -> Res {
    loop {
        let i = RingInfo::read(name)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&stat_json(&i))?);
        } else {
            if watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", stat_text(&i));
        }
        match watch {
            Some(secs) => std::thread::sleep(Duration::from_secs_f64(secs.max(0.05))),
            None => return Ok(()),
        }
    }
}

/// `fring rm NAME [--force]`: removes a ring no running process uses.
/// Without `--force` it refuses a live ring, and any file that is not a
/// ring this build can check: another program's shared memory, a ring of
/// another layout version, a ring that fails validation.
pub fn rm(name: &str, force: bool) -> Res {
    let path = format!("/dev/shm/{}", name.trim_start_matches('/'));
    let refuse =
        |what: String| -> Res { Err(format!("{what}; use --force to remove it anyway").into()) };
    match inspect::classify(name)? {
        ShmFile::Foreign { len } if !force => {
            return refuse(format!(
                "{path} is not a fusion-ring segment ({len} bytes without the ring header: \
                 another program's shared memory, a ring still being created, or some \
                 other file)"
            ))
        }
        ShmFile::OtherVersion { found, expected } if !force => {
            return refuse(format!(
                "{path} is a fusion-ring segment of layout version {found} (this fring \
                 reads version {expected}), so whether a process still uses it cannot be \
                 checked"
            ))
        }
        ShmFile::Ring => match RingInfo::read(name) {
            Ok(i) if i.has_live_participants() && !force => {
                let pids: Vec<String> = i
                    .participants
                    .iter()
                    .filter(|p| p.alive)
                    .map(|p| p.pid.to_string())
                    .collect();
                return Err(format!(
                    "ring {} is in use by live process(es) {}; use --force to remove it anyway",
                    i.name,
                    pids.join(", ")
                )
                .into());
            }
            Err(RingError::Corrupt(e)) if !force => {
                return refuse(format!(
                    "{path} has the ring header but fails validation ({})",
                    e.what
                ))
            }
            Ok(_) | Err(RingError::Corrupt(_) | RingError::VersionMismatch { .. }) => {}
            Err(e) => return Err(e.into()),
        },
        ShmFile::Foreign { .. } | ShmFile::OtherVersion { .. } => {}
    }
    fusion_ring::remove_named(name)?;
    Ok(())
}
