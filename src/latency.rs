//! LATENCY (LATEST / HISTORY / RESET / HELP): Redis's latency monitor. With
//! `latency-monitor-threshold` > 0 (ms; 0, the default, is off as in Redis) each event
//! keeps its samples at or over the threshold, one per second (the largest), the last 160.
//!
//! Events: `command` (a request's dispatch → reply time, as INFO commandstats measures it),
//! and per Raft stage from the groups' counters, sampled each second as that second's mean:
//! `raft-fsync` (the log's fsync per driver round) and `raft-ready` (one whole driver round:
//! persist, send, apply).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use resp::{LatencyCmd, Reply};

use crate::groups::Groups;

/// `latency-monitor-threshold` in milliseconds (0: off).
pub static THRESHOLD: AtomicU64 = AtomicU64::new(0);

/// Samples kept per event (Redis's LATENCY_TS_LEN).
const KEEP: usize = 160;

#[derive(Default)]
struct Event {
    /// (unix seconds, ms), oldest first.
    samples: std::collections::VecDeque<(i64, u64)>,
    max: u64,
}

fn events() -> &'static Mutex<Vec<(&'static str, Event)>> {
    static EVENTS: OnceLock<Mutex<Vec<(&'static str, Event)>>> = OnceLock::new();
    EVENTS.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(&'static str, Event)>> {
    events().lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `ms` for `event` if the monitor is on and it reaches the threshold.
pub fn record(event: &'static str, ms: u64) {
    let t = THRESHOLD.load(Ordering::Relaxed);
    if t == 0 || ms < t {
        return;
    }
    let now = raft_node::node::wall_ms() / 1000;
    let mut evs = lock();
    let i = match evs.iter().position(|(n, _)| *n == event) {
        Some(i) => i,
        None => {
            evs.push((event, Event::default()));
            evs.len() - 1
        }
    };
    let e = &mut evs[i].1;
    e.max = e.max.max(ms);
    match e.samples.back_mut() {
        Some((time, v)) if *time == now => *v = (*v).max(ms),
        _ => {
            e.samples.push_back((now, ms));
            if e.samples.len() > KEEP {
                e.samples.pop_front();
            }
        }
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Answers LATENCY.
pub fn command(c: LatencyCmd) -> Reply {
    match c {
        LatencyCmd::Latest => Reply::Array(
            lock()
                .iter()
                .filter_map(|(name, e)| {
                    let (time, last) = *e.samples.back()?;
                    Some(Reply::Array(vec![
                        bulk(name),
                        Reply::Int(time),
                        Reply::Int(last as i64),
                        Reply::Int(e.max as i64),
                    ]))
                })
                .collect(),
        ),
        LatencyCmd::History(name) => Reply::Array(
            lock()
                .iter()
                .find(|(n, _)| n.as_bytes() == &name[..])
                .map(|(_, e)| {
                    e.samples
                        .iter()
                        .map(|(t, v)| Reply::Array(vec![Reply::Int(*t), Reply::Int(*v as i64)]))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        LatencyCmd::Reset(names) => {
            let mut evs = lock();
            let before = evs.len();
            if names.is_empty() {
                evs.clear();
            } else {
                evs.retain(|(n, _)| !names.iter().any(|x| x.eq_ignore_ascii_case(n.as_bytes())));
            }
            Reply::Int((before - evs.len()) as i64)
        }
        LatencyCmd::Help => help(),
    }
}

fn help() -> Reply {
    let lines = [
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(lines.iter().map(|l| Reply::Status((*l).into())).collect())
}

/// Each second, the mean fsync and driver-round time of the last second over every
/// group, recorded as `raft-fsync` and `raft-ready`.
pub async fn sample_raft(groups: Arc<Groups>) {
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut now = (0, 0, 0, 0);
        for g in groups.all().iter() {
            let s = &g.node.status;
            now.0 += s.syncs.load(Ordering::Relaxed);
            now.1 += s.sync_micros.load(Ordering::Relaxed);
            now.2 += s.readies.load(Ordering::Relaxed);
            now.3 += s.ready_micros.load(Ordering::Relaxed);
        }
        let mean = |n: u64, us: u64| us.checked_div(n).map(|v| v / 1000);
        if let Some(ms) = mean(now.0.saturating_sub(last.0), now.1.saturating_sub(last.1)) {
            record("raft-fsync", ms);
        }
        if let Some(ms) = mean(now.2.saturating_sub(last.2), now.3.saturating_sub(last.3)) {
            record("raft-ready", ms);
        }
        last = now;
    }
}
