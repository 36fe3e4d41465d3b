//! The nemesis: seeded random faults against a running cluster (kill -9 and restart,
//! SIGSTOP/SIGCONT, isolating a node, one-way link cuts, optionally leader transfer and
//! snapshots), each
//! held for a random time and then healed, with a log of what was done when.

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
    ] {
        if on {
            kinds.push(k);
        }
    }
    let n = lock(&cluster).len();
    while !stop.load(Ordering::Relaxed) {
        if !sleep_unless(&stop, rng.gen_range(cfg.gap_ms.0..=cfg.gap_ms.1)).await {
            break;
        }
        check_crashes(&cluster, start, &mut log);
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
            let a = inject(&cluster, kind, n, &mut rng, start, &mut log, &mut kinds).await;
            active.push(a);
        }
        sleep_unless(&stop, rng.gen_range(cfg.hold_ms.0..=cfg.hold_ms.1)).await;
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

/// Sleeps `ms` in small steps; false if `stop` was set.
async fn sleep_unless(stop: &AtomicBool, ms: u64) -> bool {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20).min(until - Instant::now())).await;
    }
    !stop.load(Ordering::Relaxed)
}

/// Records nodes that died on their own and starts them again.
pub fn check_crashes(cluster: &Mutex<Cluster>, start: Instant, log: &mut FaultLog) {
    let mut c = lock(cluster);
    for i in 0..c.len() {
        if let Some(status) = c.exited(i) {
            let ms = start.elapsed().as_millis() as u64;
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
    n: usize,
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
    let active = match kind {
        Kind::Kill => {
            let i = rng.gen_range(0..n);
            let mut c = lock(cluster);
            if !c.is_up(i) {
                return Active::None;
            }
            c.kill(i);
            log.note(start, format!("kill -9 node {}", i + 1));
            Active::Killed(i)
        }
        Kind::Pause => {
            let i = rng.gen_range(0..n);
            let mut c = lock(cluster);
            if !c.is_up(i) || c.is_paused(i) {
                return Active::None;
            }
            c.pause(i);
            log.note(start, format!("SIGSTOP node {}", i + 1));
            Active::Paused(i)
        }
        Kind::Partition => {
            let i = rng.gen_range(0..n);
            let mut cut = Vec::new();
            for j in (0..n).filter(|&j| j != i) {
                cut.push((i, j));
                cut.push((j, i));
            }
            lock(cluster).links.cut(&cut, how);
            log.note(start, format!("isolate node {} ({how:?})", i + 1));
            Active::Cut(cut)
        }
        Kind::LinkCut => {
            let links: Vec<(usize, usize)> = (0..n)
                .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
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
        Kind::Transfer | Kind::Snapshot => {
            let target = rng.gen_range(1..=n);
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
