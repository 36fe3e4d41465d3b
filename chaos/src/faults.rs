//! The nemesis: seeded random faults against a running cluster (kill -9 and restart,
//! SIGSTOP/SIGCONT, isolating a node, one-way link cuts, optionally leader transfer,
//! snapshots and membership changes), each held for a random time and then healed, with a
//! log of what was done when. Slot migrations run beside it ([`crate::migrate`]).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::client;
use crate::cluster::Cluster;
use crate::proxy::LinkState;

/// Which faults to inject.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    pub kill: bool,
    pub pause: bool,
    pub partition: bool,
    pub link_cut: bool,
    /// `RAFT.TRANSFER-LEADER`; skipped when the server does not know the command.
    pub transfer_leader: bool,
    /// `RAFT.SNAPSHOT` on a random node (log compaction under faults); skipped when the
    /// server does not know the command.
    pub snapshot: bool,
    /// Membership changes: a fresh node joins (`--join`, learner, snapshot, voter) and a
    /// random voter, the leader included, is removed (`RAFT.NODE REMOVE`), one step per
    /// fault, while the other faults go on.
    pub membership: bool,
    /// Slot migrations between data groups (`RAFT.SHARDGROUP MOVE`, `RAFT.REBALANCE`) by a
    /// task of their own, beside the other faults (see [`crate::migrate`]).
    pub migrate: bool,
    /// With `migrate`: fresh groups joined on some nodes, fed moves and made to leave
    /// (see [`crate::fresh`]).
    pub fresh_groups: bool,
    /// Quiet time between two migration requests (min, max).
    pub migrate_gap_ms: (u64, u64),
    /// Most nodes a schedule may ever start (the founders included).
    pub max_nodes: usize,
    /// Quiet time between faults (min, max).
    pub gap_ms: (u64, u64),
    /// How long a fault is held (min, max).
    pub hold_ms: (u64, u64),
    /// Chance (percent) that a second fault is added on top of the first.
    pub compound_pct: u32,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            kill: true,
            pause: true,
            partition: true,
            link_cut: true,
            transfer_leader: false,
            snapshot: false,
            membership: false,
            migrate: false,
            fresh_groups: true,
            migrate_gap_ms: (400, 2000),
            max_nodes: 8,
            gap_ms: (300, 1500),
            hold_ms: (500, 3000),
            compound_pct: 25,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kill,
    Pause,
    Partition,
    LinkCut,
    Transfer,
    Snapshot,
    Member,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::LinkCut => "link-cut",
            Kind::Transfer => "transfer",
            Kind::Snapshot => "snapshot",
            Kind::Member => "membership",
        }
    }
}

/// A fault in force, with what healing it takes.
enum Active {
    Killed(usize),
    Paused(usize),
    Cut(Vec<(usize, usize)>),
    None,
}

/// Progress of the membership fault: one change at a time.
#[derive(Debug, Clone, Copy)]
enum Membership {
    Idle,
    /// Node (index) joining; once it votes, a random older voter is removed if
    /// `then_remove`.
    Joining {
        node: usize,
        then_remove: bool,
    },
}

/// What the nemesis did.
#[derive(Debug, Default, Clone)]
pub struct FaultLog {
    /// `(ms since start, description)`.
    pub events: Vec<(u64, String)>,
    pub counts: BTreeMap<&'static str, usize>,
    /// Nodes that exited without being killed by the harness: `(ms, node id, status)`.
    pub crashes: Vec<(u64, usize, String)>,
    /// Nodes SIGKILLed by someone else (another process on the machine, the OOM killer):
    /// not a server failure, but worth knowing. `(ms, node id)`.
    pub external_kills: Vec<(u64, usize)>,
}

impl FaultLog {
    pub fn injected(&self) -> usize {
        self.counts.values().sum()
    }

    fn note(&mut self, start: Instant, what: String) {
        self.events.push((start.elapsed().as_millis() as u64, what));
    }
}

/// Runs faults until `stop`; leaves the last fault healed.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    cfg: FaultConfig,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> FaultLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006e_656d_6573_6973);
    let mut log = FaultLog::default();
    let mut kinds = Vec::new();
    for (on, k) in [
        (cfg.kill, Kind::Kill),
        (cfg.pause, Kind::Pause),
        (cfg.partition, Kind::Partition),
        (cfg.link_cut, Kind::LinkCut),
        (cfg.transfer_leader, Kind::Transfer),
        (cfg.snapshot, Kind::Snapshot),
        (cfg.membership, Kind::Member),
    ] {
        if on {
            kinds.push(k);
        }
    }
    let mut member = Membership::Idle;
    while !stop.load(Ordering::Relaxed) {
        let gap = rng.gen_range(cfg.gap_ms.0..=cfg.gap_ms.1);
        if !watch(&cluster, &stop, gap, start, &mut log).await {
            break;
        }
        if kinds.is_empty() {
            continue;
        }
        let count = if rng.gen_range(0..100) < cfg.compound_pct {
            2
        } else {
            1
        };
        let mut active = Vec::new();
        for _ in 0..count {
            let kind = *kinds.choose(&mut rng).expect("non-empty");
            let a = if kind == Kind::Member {
                if membership_step(&cluster, &cfg, &mut member, &mut rng, start, &mut log).await {
                    *log.counts.entry(kind.name()).or_default() += 1;
                }
                Active::None
            } else {
                inject(&cluster, kind, &mut rng, start, &mut log, &mut kinds).await
            };
            active.push(a);
        }
        let hold = rng.gen_range(cfg.hold_ms.0..=cfg.hold_ms.1);
        watch(&cluster, &stop, hold, start, &mut log).await;
        for a in active.into_iter().rev() {
            heal(&cluster, a, start, &mut log);
        }
    }
    check_crashes(&cluster, start, &mut log);
    log
}

fn lock(c: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits `ms`, looking for exited nodes every 200 ms; false if `stop` was set.
async fn watch(
    cluster: &Mutex<Cluster>,
    stop: &AtomicBool,
    ms: u64,
    start: Instant,
    log: &mut FaultLog,
) -> bool {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut next_check = Instant::now();
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if Instant::now() >= next_check {
            check_crashes(cluster, start, log);
            next_check = Instant::now() + Duration::from_millis(200);
        }
        tokio::time::sleep(Duration::from_millis(20).min(until - Instant::now())).await;
    }
    check_crashes(cluster, start, log);
    !stop.load(Ordering::Relaxed)
}

/// Records nodes that died on their own and starts them again; a node whose removal the
/// harness asked for may exit cleanly (it learnt it was removed) and is retired.
pub fn check_crashes(cluster: &Mutex<Cluster>, start: Instant, log: &mut FaultLog) {
    let mut c = lock(cluster);
    for i in 0..c.len() {
        if let Some(status) = c.exited(i) {
            let ms = start.elapsed().as_millis() as u64;
            if c.nodes[i].leaving && status.success() {
                log.note(start, format!("node {} left the cluster (exit 0)", i + 1));
                c.retire(i);
                continue;
            }
            if status.signal() == Some(libc::SIGKILL) {
                log.external_kills.push((ms, i + 1));
                log.note(start, format!("node {} SIGKILLED by someone else", i + 1));
            } else {
                log.crashes.push((ms, i + 1, status.to_string()));
                log.note(start, format!("node {} EXITED BY ITSELF ({status})", i + 1));
            }
            if let Err(e) = c.restart(i) {
                log.note(start, format!("restart of node {} failed: {e}", i + 1));
            }
        }
    }
}

async fn inject(
    cluster: &Mutex<Cluster>,
    kind: Kind,
    rng: &mut ChaCha8Rng,
    start: Instant,
    log: &mut FaultLog,
    kinds: &mut Vec<Kind>,
) -> Active {
    let how = if rng.gen_bool(0.5) {
        LinkState::Reset
    } else {
        LinkState::Blackhole
    };
    let live = lock(cluster).live();
    let Some(&i) = live.choose(rng) else {
        return Active::None;
    };
    let active = match kind {
        Kind::Kill => {
            let mut c = lock(cluster);
            if !c.is_up(i) {
                return Active::None;
            }
            c.kill(i);
            log.note(start, format!("kill -9 node {}", i + 1));
            Active::Killed(i)
        }
        Kind::Pause => {
            let mut c = lock(cluster);
            if !c.is_up(i) || c.is_paused(i) {
                return Active::None;
            }
            c.pause(i);
            log.note(start, format!("SIGSTOP node {}", i + 1));
            Active::Paused(i)
        }
        Kind::Partition => {
            let mut cut = Vec::new();
            for &j in live.iter().filter(|&&j| j != i) {
                cut.push((i, j));
                cut.push((j, i));
            }
            lock(cluster).links.cut(&cut, how);
            log.note(start, format!("isolate node {} ({how:?})", i + 1));
            Active::Cut(cut)
        }
        Kind::LinkCut => {
            let links: Vec<(usize, usize)> = live
                .iter()
                .flat_map(|&a| live.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
                .collect();
            let k = rng.gen_range(1..=2);
            let cut: Vec<(usize, usize)> = links.choose_multiple(rng, k).copied().collect();
            lock(cluster).links.cut(&cut, how);
            let names: Vec<String> = cut
                .iter()
                .map(|(a, b)| format!("{}->{}", a + 1, b + 1))
                .collect();
            log.note(start, format!("cut {} ({how:?})", names.join(" ")));
            Active::Cut(cut)
        }
        Kind::Transfer | Kind::Snapshot | Kind::Member => {
            let target = i + 1;
            let ports = lock(cluster).ports();
            let (command, what, result) = if kind == Kind::Transfer {
                let r = transfer_leader(&ports, target).await;
                (
                    "RAFT.TRANSFER-LEADER",
                    format!("transfer leadership to {target}"),
                    r,
                )
            } else {
                let r = take_snapshot(&ports, target).await;
                ("RAFT.SNAPSHOT", format!("snapshot on node {target}"), r)
            };
            match result {
                Err(e) if e.to_ascii_lowercase().contains("unknown command") => {
                    log.note(start, format!("{command} unknown: fault disabled"));
                    kinds.retain(|k| *k != kind);
                    return Active::None;
                }
                Ok(msg) | Err(msg) => log.note(start, format!("{what}: {msg}")),
            }
            Active::None
        }
    };
    *log.counts.entry(kind.name()).or_default() += 1;
    active
}

/// One step of the membership fault; false if nothing was changed. Asks the leader for
/// the members, then: a pending joiner that votes now ends the step (removing an older
/// voter if that was the plan), or, still a learner, may replace an older voter at once
/// (`RAFT.NODE REPLACE`, joint consensus); with no change pending, a cluster of 2 voters gets a new
/// node, one of 4+ loses a voter, and one of 3 does either (a new node first, or a
/// removal first).
async fn membership_step(
    cluster: &Mutex<Cluster>,
    cfg: &FaultConfig,
    phase: &mut Membership,
    rng: &mut ChaCha8Rng,
    start: Instant,
    log: &mut FaultLog,
) -> bool {
    let ports = lock(cluster).targets().get();
    let Some((_, voters, learners)) = members(&ports).await else {
        log.note(start, "membership: no leader to ask".into());
        return false;
    };
    let mut replace_by = None;
    let add = match *phase {
        Membership::Joining { node, then_remove } => {
            if then_remove && learners.contains(&(node + 1)) && rng.gen_bool(0.5) {
                // Swap an older voter for the learner in one joint-consensus change,
                // racing the learner's own promotion.
                replace_by = Some(node + 1);
                *phase = Membership::Idle;
            } else if !voters.contains(&(node + 1)) {
                log.note(
                    start,
                    format!("membership: node {} still joining", node + 1),
                );
                return false;
            } else {
                *phase = Membership::Idle;
                if !then_remove && voters.len() <= 3 {
                    log.note(start, format!("membership: node {} is a voter", node + 1));
                    return false;
                }
            }
            false
        }
        Membership::Idle => voters.len() <= 2 || (voters.len() == 3 && rng.gen_bool(0.5)),
    };
    if add {
        let mut c = lock(cluster);
        if c.len() >= cfg.max_nodes {
            log.note(start, "membership: node limit reached".into());
            return false;
        }
        return match c.add_node() {
            Ok(k) => {
                log.note(start, format!("add node {} (joins as a learner)", k + 1));
                *phase = Membership::Joining {
                    node: k,
                    then_remove: voters.len() >= 3,
                };
                true
            }
            Err(e) => {
                log.note(start, format!("add node failed: {e}"));
                false
            }
        };
    }
    let newest = lock(cluster).len();
    let older: Vec<usize> = voters.iter().copied().filter(|&v| v != newest).collect();
    let Some(&victim) = older.choose(rng) else {
        return false;
    };
    lock(cluster).nodes[victim - 1].leaving = true;
    let Some(&(_, via)) = ports.choose(rng) else {
        return false;
    };
    let victim_id = victim.to_string();
    match replace_by {
        Some(new) => {
            let new_id = new.to_string();
            let reply = admin(via, &["RAFT.NODE", "REPLACE", &victim_id, &new_id]).await;
            log.note(
                start,
                format!("replace node {victim} by {new} (asked port {via}): {reply:?}"),
            );
            if reply.is_err() {
                // Maybe not done (often the promotion went first, or it timed out and
                // may still happen: the victim stays free to leave); go on as planned.
                *phase = Membership::Joining {
                    node: new - 1,
                    then_remove: true,
                };
            }
        }
        None => {
            let reply = admin(via, &["RAFT.NODE", "REMOVE", &victim_id]).await;
            log.note(
                start,
                format!("remove node {victim} (asked port {via}): {reply:?}"),
            );
        }
    }
    true
}

/// The members as the leader sees them: `(leader port, voters, learners)` (1-based ids).
pub async fn members(ports: &[(usize, u16)]) -> Option<(u16, Vec<usize>, Vec<usize>)> {
    for &(_, port) in ports {
        let Some(info) = client::info_raft(port).await else {
            continue;
        };
        if info.get("raft_role").map(String::as_str) != Some("leader") {
            continue;
        }
        let mut c = client::connect(port, Duration::from_secs(2)).await?;
        let lines: Vec<String> = redis::cmd("RAFT.NODES").query_async(&mut c).await.ok()?;
        let (mut voters, mut learners) = (Vec::new(), Vec::new());
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            let Some(id) = f.first().and_then(|s| s.parse::<usize>().ok()) else {
                continue;
            };
            match f.get(2) {
                Some(&"learner") => learners.push(id),
                _ => voters.push(id),
            }
        }
        return Some((port, voters, learners));
    }
    None
}

/// Sends one admin command; the reply or the error, as text.
async fn admin(port: u16, args: &[&str]) -> Result<String, String> {
    let mut c = client::connect(port, Duration::from_secs(5))
        .await
        .ok_or("no connection")?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async::<redis::Value>(&mut c)
        .await
        .map(|v| format!("{v:?}"))
        .map_err(|e| e.to_string())
}

/// Sends `RAFT.SNAPSHOT` to node `target` (1-based).
async fn take_snapshot(ports: &[u16], target: usize) -> Result<String, String> {
    let port = *ports.get(target - 1).ok_or("no such node")?;
    let mut c = client::connect(port, Duration::from_secs(2))
        .await
        .ok_or("no connection")?;
    redis::cmd("RAFT.SNAPSHOT")
        .query_async::<redis::Value>(&mut c)
        .await
        .map(|v| format!("{v:?}"))
        .map_err(|e| e.to_string())
}

/// Sends `RAFT.TRANSFER-LEADER target` to the node that says it leads.
async fn transfer_leader(ports: &[u16], target: usize) -> Result<String, String> {
    for &port in ports {
        let Some(info) = client::info_raft(port).await else {
            continue;
        };
        if info.get("raft_role").map(String::as_str) != Some("leader") {
            continue;
        }
        let mut c = client::connect(port, Duration::from_secs(2))
            .await
            .ok_or("no connection to the leader")?;
        return redis::cmd("RAFT.TRANSFER-LEADER")
            .arg(target)
            .query_async::<redis::Value>(&mut c)
            .await
            .map(|v| format!("{v:?}"))
            .map_err(|e| e.to_string());
    }
    Err("no leader found".into())
}

fn heal(cluster: &Mutex<Cluster>, a: Active, start: Instant, log: &mut FaultLog) {
    let mut c = lock(cluster);
    match a {
        Active::Killed(i) => match c.restart(i) {
            Ok(()) => log.note(start, format!("restart node {}", i + 1)),
            Err(e) => log.note(start, format!("restart node {} failed: {e}", i + 1)),
        },
        Active::Paused(i) => {
            c.resume(i);
            log.note(start, format!("SIGCONT node {}", i + 1));
        }
        Active::Cut(links) => {
            c.links.heal(&links);
            log.note(start, "heal links".into());
        }
        Active::None => {}
    }
}
