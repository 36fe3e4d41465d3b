//! The migration fault: while the nemesis kills, pauses, cuts and transfers, a second task
//! moves slot ranges between data groups (`RAFT.SHARDGROUP MOVE <gid> <ranges>`, to a random
//! running node), now and then moves the last range back to the group it came from, or asks
//! for `RAFT.REBALANCE`. The ranges are built around the slots of the checker's keys
//! ([`key_slot`]), so every move carries records the clients are reading and writing.
//!
//! What the cluster said is counted in a [`MigrationLog`]: migrations recorded (the integer
//! replies), requests whose outcome is unknown (an error or no reply: they may have been
//! recorded), and after healing [`settle`] waits until no node lists a pending migration
//! (every recorded migration rolls forward, so then every one has completed) and reads the
//! coordinators' INFO cluster counters.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::client;
use crate::cluster::Cluster;
use crate::fresh::Fresh;

/// Number of hash slots.
const SLOTS: u16 = 16384;

/// What the migration fault asked for and what the cluster did.
#[derive(Debug, Default, Clone)]
pub struct MigrationLog {
    /// MOVE and REBALANCE requests sent.
    pub requests: usize,
    /// Migrations the cluster said it recorded (sum of the integer replies).
    pub recorded: usize,
    /// Requests answered by an error or not at all: recorded or not, unknown.
    pub unknown: usize,
    /// Of the requests: REBALANCEs, and moves of the last range back to its old group.
    pub rebalances: usize,
    pub moves_back: usize,
    /// The fresh groups ([`crate::fresh`]): JOINs sent, groups seen joined, MOVEs into
    /// one recorded, LEAVEs sent, LEAVEs recorded, groups seen gone after their LEAVE.
    pub joins_asked: usize,
    pub joins: usize,
    pub moves_fresh: usize,
    pub leaves_asked: usize,
    pub leaves: usize,
    pub left: usize,
    /// Migrations still listed after healing and the wait of [`settle`] (0: all done).
    pub pending_after: usize,
    /// Sum over the nodes of INFO cluster `raftkv_migrations_done` and
    /// `raftkv_migrated_slots` after settling (a node's counters start again at 0 when it
    /// restarts, so these are lower bounds).
    pub done_info: u64,
    pub slots_info: u64,
    /// `(ms since start, what)`.
    pub events: Vec<(u64, String)>,
}

impl MigrationLog {
    /// Recorded migrations known to be completed: all of them once none is pending.
    pub fn completed(&self) -> usize {
        self.recorded.saturating_sub(self.pending_after)
    }

    fn note(&mut self, start: Instant, what: String) {
        self.events.push((start.elapsed().as_millis() as u64, what));
    }
}

/// CRC16/XMODEM, the hash of Redis Cluster's key slots.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key` (Redis's rule: the `{tag}` if non-empty, else the whole key).
pub fn key_slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let hashed = match b.iter().position(|&c| c == b'{') {
        Some(open) => match b[open + 1..].iter().position(|&c| c == b'}') {
            Some(len) if len > 0 => &b[open + 1..open + 1 + len],
            _ => b,
        },
        None => b,
    };
    crc16(hashed) % SLOTS
}

/// The slot layout of `RAFT.SHARDGROUP QUERY`'s text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    pub epoch: u64,
    /// `(group, its ranges)`.
    pub groups: Vec<(u64, Vec<(u16, u16)>)>,
    /// Pending migration lines.
    pub pending: usize,
}

impl Layout {
    /// Parses QUERY's lines (`epoch N`, `group G ... ranges a-b,c-d`, `migration ...`).
    pub fn parse(text: &str) -> Layout {
        let mut l = Layout::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.first() {
                Some(&"epoch") => l.epoch = w.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
                Some(&"migration") => l.pending += 1,
                Some(&"group") => {
                    let Some(id) = w.get(1).and_then(|s| s.parse().ok()) else {
                        continue;
                    };
                    let ranges = w
                        .iter()
                        .position(|x| *x == "ranges")
                        .and_then(|at| w.get(at + 1))
                        .map(|r| parse_ranges(r))
                        .unwrap_or_default();
                    l.groups.push((id, ranges));
                }
                _ => {}
            }
        }
        l
    }

    /// The group owning `slot`, if the layout says.
    pub fn owner(&self, slot: u16) -> Option<u64> {
        self.groups
            .iter()
            .find(|(_, rs)| rs.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|(g, _)| *g)
    }
}

/// `a-b,c,d-e` (or `-`) as ranges; malformed parts are skipped.
fn parse_ranges(s: &str) -> Vec<(u16, u16)> {
    s.split(',')
        .filter_map(|p| match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|a| (a, a)),
        })
        .collect()
}

fn words(ranges: &[(u16, u16)]) -> Vec<String> {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

/// Sends one admin command with a 5 s bound; the reply or the error, as a redis value.
async fn admin(port: u16, args: &[String]) -> Result<redis::Value, String> {
    let mut c = client::connect(port, Duration::from_secs(5))
        .await
        .ok_or("no connection")?;
    let mut cmd = redis::cmd(&args[0]);
    for a in &args[1..] {
        cmd.arg(a);
    }
    cmd.query_async::<redis::Value>(&mut c)
        .await
        .map_err(|e| e.to_string())
}

/// The layout as node `port` sees it.
pub async fn query(port: u16) -> Option<Layout> {
    let args = ["RAFT.SHARDGROUP".to_string(), "QUERY".to_string()];
    match admin(port, &args).await.ok()? {
        redis::Value::BulkString(b) => Some(Layout::parse(&String::from_utf8_lossy(&b))),
        redis::Value::VerbatimString { text, .. } => Some(Layout::parse(&text)),
        _ => None,
    }
}

fn lock(c: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// `(node id, Redis port)` of the nodes running now (not paused, not retired, not leaving).
fn running_nodes(cluster: &Mutex<Cluster>) -> Vec<(u64, u16)> {
    let c = lock(cluster);
    c.live()
        .into_iter()
        .filter(|&i| c.is_up(i) && !c.is_paused(i) && !c.nodes[i].leaving)
        .map(|i| (i as u64 + 1, c.nodes[i].redis_port))
        .collect()
}

/// The last move, to send back: `(ranges, the group they came from)`.
type LastMove = Option<(Vec<(u16, u16)>, u64)>;

/// Ranges around the slots of `slots` (the keys'): one slot, a run of up to 64 slots
/// around one, or the slots of two to four keys.
fn pick_ranges(rng: &mut ChaCha8Rng, slots: &[u16]) -> Vec<(u16, u16)> {
    let Some(&s) = slots.choose(rng) else {
        let a = rng.gen_range(0..SLOTS);
        return vec![(a, a)];
    };
    match rng.gen_range(0..10) {
        0..=3 => vec![(s, s)],
        4..=7 => {
            let below = rng.gen_range(0..32u16).min(s);
            let above = rng.gen_range(0..32u16).min(SLOTS - 1 - s);
            vec![(s - below, s + above)]
        }
        _ => {
            let n = rng.gen_range(2..=4usize).min(slots.len());
            let set: BTreeSet<u16> = slots.choose_multiple(rng, n).copied().collect();
            set.into_iter().map(|s| (s, s)).collect()
        }
    }
}

/// The fresh group's say in a plan: the group new moves favour (two in three go there),
/// and the group no move may go to (see [`crate::fresh`]).
#[derive(Debug, Default, Clone, Copy)]
struct Bias {
    prefer: Option<u64>,
    avoid: Option<u64>,
}

/// One request: `(argv, what it is, the move to remember)`.
fn plan(
    rng: &mut ChaCha8Rng,
    layout: &Layout,
    slots: &[u16],
    last: &mut LastMove,
    log: &mut MigrationLog,
    bias: Bias,
) -> Option<(Vec<String>, LastMove)> {
    let roll = rng.gen_range(0..100);
    if roll < 12 {
        log.rebalances += 1;
        return Some((vec!["RAFT.REBALANCE".into()], None));
    }
    if last.as_ref().is_some_and(|(_, from)| {
        Some(*from) == bias.avoid || !layout.groups.iter().any(|(g, _)| g == from)
    }) {
        *last = None;
    }
    let (ranges, to) = match last {
        Some(_) if roll < 40 => {
            let (ranges, from) = last.take()?;
            log.moves_back += 1;
            (ranges, from)
        }
        _ => {
            let ranges = pick_ranges(rng, slots);
            let owner = layout.owner(ranges[0].0);
            let others: Vec<u64> = layout
                .groups
                .iter()
                .map(|(g, _)| *g)
                .filter(|g| Some(*g) != owner && Some(*g) != bias.avoid)
                .collect();
            let to = match bias.prefer {
                Some(p) if others.contains(&p) && rng.gen_ratio(2, 3) => p,
                _ => *others.choose(rng)?,
            };
            let back = owner.map(|o| (ranges.clone(), o));
            let mut argv = vec!["RAFT.SHARDGROUP".into(), "MOVE".into(), to.to_string()];
            argv.extend(words(&ranges));
            return Some((argv, back));
        }
    };
    let mut argv = vec!["RAFT.SHARDGROUP".into(), "MOVE".into(), to.to_string()];
    argv.extend(words(&ranges));
    Some((argv, None))
}

/// Runs the migration fault until `stop`: one request every `gap_ms` (min, max), each to
/// a random running node; with `fresh_groups`, some of them create, feed and dissolve a
/// fresh group ([`crate::fresh`]). Gives up (and says so) if the cluster has fewer than
/// two data groups or does not know the commands.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    keys: Vec<String>,
    seed: u64,
    gap_ms: (u64, u64),
    fresh_groups: bool,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> MigrationLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006d_6967_7261_7465);
    let mut log = MigrationLog::default();
    let slots: Vec<u16> = keys
        .iter()
        .map(|k| key_slot(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut last: LastMove = None;
    let mut layout = Layout::default();
    let mut fresh = Fresh::default();
    while !stop.load(Ordering::Relaxed) {
        let gap = Duration::from_millis(rng.gen_range(gap_ms.0..=gap_ms.1));
        let until = Instant::now() + gap;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let nodes = running_nodes(&cluster);
        let Some(&(_, port)) = nodes.choose(&mut rng) else {
            continue;
        };
        if let Some(l) = query(port).await {
            if l.groups.len() < 2 {
                log.note(
                    start,
                    format!("migrate: data groups {:?}: fault off", l.groups),
                );
                break;
            }
            layout = l;
        }
        if layout.groups.is_empty() {
            continue;
        }
        let ids: Vec<u64> = nodes.iter().map(|(id, _)| *id).collect();
        let step = fresh_groups
            .then(|| fresh.step(&mut rng, &layout, &ids, &mut log))
            .flatten();
        let bias = Bias {
            prefer: fresh.prefer(),
            avoid: fresh.avoid(),
        };
        let Some((argv, back)) = step
            .map(|a| (a, None))
            .or_else(|| plan(&mut rng, &layout, &slots, &mut last, &mut log, bias))
        else {
            continue;
        };
        log.requests += 1;
        let reply = admin(port, &argv).await;
        fresh.answered(&argv, &reply, &mut log);
        if !count_reply(&reply, back, &mut last, &mut log) {
            log.note(start, format!("{}: unknown command: fault off", argv[0]));
            break;
        }
        log.note(
            start,
            format!("{} (port {port}): {reply:?}", argv.join(" ")),
        );
    }
    log
}

/// Counts a request's reply in `log` (a recorded move becomes the one to send back);
/// false when the server does not know the command (the fault goes off).
fn count_reply(
    reply: &Result<redis::Value, String>,
    back: LastMove,
    last: &mut LastMove,
    log: &mut MigrationLog,
) -> bool {
    match reply {
        Ok(redis::Value::Int(n)) => {
            log.recorded += usize::try_from(*n).unwrap_or(0);
            if *n > 0 {
                *last = back;
            }
        }
        Ok(redis::Value::Okay | redis::Value::SimpleString(_)) => {}
        Err(e) if e.to_ascii_lowercase().contains("unknown command") => return false,
        _ => log.unknown += 1,
    }
    true
}

/// After healing: waits until every node of `ports` lists no pending migration and all
/// agree on the epoch (at most `wait`), then sums their INFO cluster counters into `log`.
pub async fn settle(ports: &[u16], wait: Duration, start: Instant, log: &mut MigrationLog) {
    let deadline = Instant::now() + wait;
    loop {
        let mut layouts = Vec::new();
        for &p in ports {
            layouts.push(query(p).await);
        }
        let pending = layouts
            .iter()
            .map(|l| l.as_ref().map_or(usize::MAX, |l| l.pending))
            .max()
            .unwrap_or(0);
        let epochs: BTreeSet<u64> = layouts.iter().flatten().map(|l| l.epoch).collect();
        if pending == 0 && epochs.len() <= 1 {
            log.pending_after = 0;
            break;
        }
        if Instant::now() >= deadline {
            log.pending_after = pending.min(log.recorded.max(1));
            log.note(
                start,
                format!("migrations still pending after {wait:?}: {layouts:?}"),
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for &p in ports {
        let Some(info) = client::info_section(p, "cluster").await else {
            continue;
        };
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        log.done_info += num("raftkv_migrations_done");
        log.slots_info += num("raftkv_migrated_slots");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis_cluster() {
        // Values from the Redis Cluster specification and redis-cli.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
    }

    #[test]
    fn the_query_text_gives_owners_and_pending_moves() {
        let l = Layout::parse(
            "epoch 7\ngroup 1 leader 2 voters 1,2,3 learners - slots 5461 ranges 0-5460\n\
             group 2 leader 1 voters 1,2,3 learners - slots 2 ranges 5461,9000-9000\n\
             group 3 leader 3 voters 1,2,3 learners - slots 0 ranges -\n\
             migration 4 from 1 to 2 slots 10-20\n",
        );
        assert_eq!((l.epoch, l.pending, l.groups.len()), (7, 1, 3));
        assert_eq!(l.owner(0), Some(1));
        assert_eq!(l.owner(5461), Some(2));
        assert_eq!(l.owner(9000), Some(2));
        assert_eq!(l.owner(12000), None);
    }

    #[test]
    fn the_workload_keys_spread_over_every_third_of_the_slots() {
        let keys = crate::workload::keys(6);
        let slots: BTreeSet<u16> = keys.iter().map(|k| key_slot(k)).collect();
        assert!(slots.len() >= 6, "{slots:?}");
        for third in 0..3u16 {
            let (lo, hi) = (third * 5461, (third + 1) * 5461);
            assert!(
                slots.iter().any(|s| (lo..hi).contains(s)),
                "no key slot in {lo}..{hi}: {slots:?}"
            );
        }
    }

    #[test]
    fn planned_ranges_cover_a_key_slot_and_move_to_another_group() {
        let layout = Layout::parse(
            "epoch 1\ngroup 1 slots 5461 ranges 0-5460\ngroup 2 slots 5461 ranges 5461-10921\n\
             group 3 slots 5462 ranges 10922-16383\n",
        );
        let slots = [3, 7000, 16000];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut log = MigrationLog::default();
        let mut last = None;
        for _ in 0..200 {
            let bias = Bias::default();
            let Some((argv, back)) = plan(&mut rng, &layout, &slots, &mut last, &mut log, bias)
            else {
                panic!("no plan");
            };
            if argv[0] == "RAFT.REBALANCE" {
                continue;
            }
            let to: u64 = argv[2].parse().expect("group");
            let ranges: Vec<(u16, u16)> = argv[3..].iter().flat_map(|w| parse_ranges(w)).collect();
            assert!(ranges
                .iter()
                .any(|&(a, b)| slots.iter().any(|&s| a <= s && s <= b)));
            if let Some((_, from)) = &back {
                assert_ne!(*from, to);
            }
            if back.is_some() {
                last = back;
            }
        }
        assert!(log.rebalances > 0 && log.moves_back > 0, "{log:?}");
    }
}
