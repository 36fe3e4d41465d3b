//! One schedule end to end: start a cluster, run the clients and the nemesis for the
//! configured time, heal everything, read every key back, check the history, and keep the
//! evidence (history, fault log, node logs) in a directory when anything is wrong.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checker::{self, Verdict};
use crate::client;
use crate::cluster::{Cluster, NodeOptions, Targets};
use crate::faults::{self, FaultConfig, FaultLog};
use crate::history::{self, Outcome};
use crate::migrate::{self, MigrationLog};
use crate::workload::{self, Client, Recorder};

/// Everything one schedule needs.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub seed: u64,
    pub duration: Duration,
    pub clients: usize,
    /// Register and counter keys; queues and hashes come on top ([`crate::workload::keys`]).
    pub keys: usize,
    pub bin: PathBuf,
    /// Parent of the per-schedule directories.
    pub out_dir: PathBuf,
    pub faults: FaultConfig,
    pub tick_ms: u64,
    /// Client-side bound on one operation.
    pub op_timeout: Duration,
    /// Extra flags for every node.
    pub node_args: Vec<String>,
    /// Keep the schedule directory even when it passed.
    pub keep: bool,
}

impl ScheduleConfig {
    /// Defaults for `bin` and `seed`: 3-second ops, 50 ms ticks, all faults but transfer.
    pub fn new(bin: PathBuf, seed: u64) -> ScheduleConfig {
        ScheduleConfig {
            seed,
            duration: Duration::from_secs(15),
            clients: 5,
            keys: 6,
            bin,
            out_dir: std::env::temp_dir().join("raftkv-chaos"),
            faults: FaultConfig::default(),
            tick_ms: 50,
            op_timeout: Duration::from_secs(3),
            node_args: vec![
                "--leader-wait-ms".into(),
                "1000".into(),
                "--request-timeout-ms".into(),
                "2000".into(),
            ],
            keep: false,
        }
    }
}

/// What happened in one schedule.
#[derive(Debug, Clone, Default)]
pub struct ScheduleReport {
    pub seed: u64,
    pub faults: FaultLog,
    /// What the migration fault asked for and got (all zero when it is off).
    pub migrations: MigrationLog,
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub indeterminate: usize,
    /// Operations the checker searched (indeterminate reads and failed ops excluded).
    pub checked: usize,
    pub violations: usize,
    pub lost_writes: usize,
    pub inconclusive: usize,
    /// Replies of the wrong shape (e.g. an integer to GET).
    pub odd_replies: usize,
    /// `(key, node, last outcome)` final reads that never succeeded: the cluster did not
    /// recover.
    pub unrecovered: Vec<(String, usize, String)>,
    /// Counter-examples and other findings, readable.
    pub findings: Vec<String>,
    /// Where the evidence was kept (only when something failed, or with `keep`).
    pub dir: Option<PathBuf>,
    pub check_ms: u128,
}

impl ScheduleReport {
    pub fn passed(&self) -> bool {
        self.violations == 0
            && self.lost_writes == 0
            && self.odd_replies == 0
            && self.unrecovered.is_empty()
            && self.faults.crashes.is_empty()
            && self.migrations.pending_after == 0
    }

    pub fn verdict(&self) -> &'static str {
        if self.lost_writes > 0 {
            "LOST-WRITE"
        } else if self.violations > 0 {
            "NOT-LINEARIZABLE"
        } else if !self.faults.crashes.is_empty() {
            "NODE-CRASHED"
        } else if !self.unrecovered.is_empty() {
            "UNRECOVERED"
        } else if self.migrations.pending_after > 0 {
            "MIGRATION-STUCK"
        } else if self.odd_replies > 0 {
            "ODD-REPLY"
        } else if self.inconclusive > 0 {
            "ok (some keys inconclusive)"
        } else {
            "ok"
        }
    }

    /// Keeps the nemesis's and the migration fault's logs, with a finding for every node
    /// crash, outside kill, migration left pending and key not read back after healing.
    fn add_fault_findings(&mut self, flog: FaultLog, mlog: MigrationLog) {
        for (ms, node, status) in &flog.crashes {
            self.findings
                .push(format!("node {node} exited by itself at {ms} ms: {status}"));
        }
        for (ms, node) in &flog.external_kills {
            self.findings.push(format!(
                "node {node} was SIGKILLed at {ms} ms by another process (not the harness); restarted"
            ));
        }
        if mlog.pending_after > 0 {
            self.findings.push(format!(
                "{} migration(s) still pending 90 s after healing (see faults.log)",
                mlog.pending_after
            ));
        }
        for (key, node, last) in &self.unrecovered {
            self.findings.push(format!(
                "final read of {key:?} on node {node} never succeeded within 30 s of healing (last: {last})"
            ));
        }
        self.faults = flog;
        self.migrations = mlog;
    }

    /// One summary line.
    pub fn line(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let m = &self.migrations;
        let migrations = if m.requests == 0 {
            String::new()
        } else {
            format!(
                "  migrations {} asked, {} recorded, {} done, {} unknown; fresh groups {} joined, {} moves in, {} left",
                m.requests,
                m.recorded,
                m.completed(),
                m.unknown,
                m.joins,
                m.moves_fresh,
                m.left
            )
        };
        format!(
            "seed {:<6} faults {:>3} [{}]{migrations}  ops {:>6}  ok {:>6}  fail {:>5}  indet {:>5}  checked {:>6}  violations {}  lost {}  check {} ms  => {}",
            self.seed,
            self.faults.injected(),
            faults.join(" "),
            self.ops,
            self.ok,
            self.failed,
            self.indeterminate,
            self.checked,
            self.violations,
            self.lost_writes,
            self.check_ms,
            self.verdict()
        )
    }
}

/// Polls every running node until one says it leads and all agree; returns its 1-based id.
pub async fn wait_leader(ports: &[u16], timeout: Duration) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leader = None;
        let mut agree = true;
        for &p in ports {
            match client::info_raft(p).await {
                Some(info) => {
                    let id = info
                        .get("raft_leader_id")
                        .and_then(|s| s.parse::<u64>().ok());
                    match (leader, id) {
                        (_, None) | (_, Some(0)) => agree = false,
                        (None, Some(id)) => leader = Some(id),
                        (Some(l), Some(id)) if l != id => agree = false,
                        _ => {}
                    }
                }
                None => agree = false,
            }
        }
        if agree && leader.is_some() {
            return leader;
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For every node a final read failed on: its INFO raft and the tail of its log, so a
/// failure on a machine whose evidence directory is gone (CI) still shows what the node
/// was doing.
async fn diagnose_unrecovered(
    cluster: &Arc<Mutex<Cluster>>,
    unrecovered: &[(String, usize, String)],
) -> Vec<String> {
    let mut ids: Vec<usize> = unrecovered.iter().map(|(_, n, _)| *n).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let (port, log) = {
            let c = lock(cluster);
            match c.nodes.iter().find(|n| n.id == id) {
                Some(n) => (n.redis_port, n.log.clone()),
                None => continue,
            }
        };
        let info = match client::connect(port, Duration::from_secs(2)).await {
            Some(mut c) => redis::cmd("INFO")
                .arg("raft")
                .query_async::<String>(&mut c)
                .await
                .unwrap_or_else(|e| format!("INFO raft failed: {e}")),
            None => "no connection".to_string(),
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
        out.push(format!(
            "node {id} INFO raft:\n{info}\nnode {id} log, last {LOG_TAIL} lines:\n{tail}"
        ));
    }
    out
}

/// Lines of a node's log [`diagnose_unrecovered`] shows.
const LOG_TAIL: usize = 60;

fn lock(c: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Redis ports of the nodes expected to follow a leader: not retired, and not on their
/// way out (a removed node may never hear of its removal).
fn live_ports(targets: &Targets, cluster: &Mutex<Cluster>) -> Vec<u16> {
    let c = lock(cluster);
    targets
        .get()
        .into_iter()
        .filter(|&(i, _)| !c.nodes[i].leaving)
        .map(|(_, p)| p)
        .collect()
}

/// After healing, settles the removals the nemesis asked for: a node the leader no longer
/// lists is retired (stopped if it still runs: a removed node that missed its removal may
/// idle forever, which is not a safety problem); one it still lists stays.
async fn settle_membership(
    cluster: &Mutex<Cluster>,
    targets: &Targets,
    start: Instant,
    flog: &mut FaultLog,
) {
    if !lock(cluster).nodes.iter().any(|n| n.leaving && !n.retired) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (voters, learners) = loop {
        if let Some((_, v, l)) = faults::members(&targets.get()).await {
            break (v, l);
        }
        if Instant::now() >= deadline {
            flog.events.push((
                start.elapsed().as_millis() as u64,
                "membership: no leader to settle removals with".into(),
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut c = lock(cluster);
    for i in c.live() {
        if !c.nodes[i].leaving {
            continue;
        }
        let id = i + 1;
        if voters.contains(&id) || learners.contains(&id) {
            c.nodes[i].leaving = false;
            flog.events.push((
                start.elapsed().as_millis() as u64,
                format!("node {id} is still a member: its removal did not happen"),
            ));
        } else {
            let running = c.is_up(i);
            c.retire(i);
            flog.events.push((
                start.elapsed().as_millis() as u64,
                format!(
                    "node {id} was removed{}",
                    if running {
                        "; still running, stopped"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
}

/// Runs one schedule. `Err` only for harness problems (could not start the cluster...).
pub async fn run(cfg: &ScheduleConfig) -> Result<ScheduleReport, String> {
    let dir = cfg.out_dir.join(format!("seed-{}", cfg.seed));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clean {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let opts = NodeOptions {
        bin: cfg.bin.clone(),
        tick_ms: cfg.tick_ms,
        log_level: "info".into(),
        extra: cfg.node_args.clone(),
    };
    let cluster = Cluster::start(3, &dir, opts)
        .await
        .map_err(|e| format!("start cluster: {e}"))?;
    let targets = cluster.targets();
    let cluster = Arc::new(Mutex::new(cluster));
    if wait_leader(&live_ports(&targets, &cluster), Duration::from_secs(30))
        .await
        .is_none()
    {
        return Err("no leader within 30 s of start".into());
    }

    let start = Instant::now();
    let rec = Arc::new(Recorder::new(start));
    let keys = Arc::new(workload::keys(cfg.keys));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for id in 0..cfg.clients {
        let mut c = Client::new(id, targets.clone(), cfg.op_timeout, rec.clone());
        let (keys, stop) = (keys.clone(), stop.clone());
        let seed = cfg.seed.wrapping_mul(1000).wrapping_add(id as u64);
        clients.push(tokio::spawn(async move {
            c.random_ops(seed, &keys, &stop).await
        }));
    }
    let nemesis = tokio::spawn(faults::run(
        cluster.clone(),
        cfg.faults.clone(),
        cfg.seed,
        start,
        stop.clone(),
    ));
    let mover = cfg.faults.migrate.then(|| {
        tokio::spawn(migrate::run(
            cluster.clone(),
            keys.to_vec(),
            cfg.seed,
            cfg.faults.migrate_gap_ms,
            cfg.faults.fresh_groups,
            start,
            stop.clone(),
        ))
    });
    tokio::time::sleep(cfg.duration).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.map_err(|e| format!("client task: {e}"))?;
    }
    let mut flog = nemesis.await.map_err(|e| format!("nemesis task: {e}"))?;
    let mut mlog = match mover {
        Some(t) => t.await.map_err(|e| format!("migration task: {e}"))?,
        None => MigrationLog::default(),
    };

    // Heal everything, then every acknowledged write must be readable.
    faults::check_crashes(&cluster, start, &mut flog);
    lock(&cluster)
        .heal_all()
        .map_err(|e| format!("heal: {e}"))?;
    flog.events
        .push((start.elapsed().as_millis() as u64, "heal all".into()));
    let _ = wait_leader(&live_ports(&targets, &cluster), Duration::from_secs(30)).await;
    settle_membership(&cluster, &targets, start, &mut flog).await;
    let _ = wait_leader(&live_ports(&targets, &cluster), Duration::from_secs(30)).await;
    if cfg.faults.migrate {
        // Every recorded migration rolls forward: once healed, none may stay pending.
        let ports = live_ports(&targets, &cluster);
        migrate::settle(&ports, Duration::from_secs(90), start, &mut mlog).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let unrecovered =
        workload::final_reads(targets.clone(), &keys, rec.clone(), cfg.clients, deadline).await;
    let diagnosis = diagnose_unrecovered(&cluster, &unrecovered).await;
    faults::check_crashes(&cluster, start, &mut flog);

    let ops = rec.take();
    let mut report = ScheduleReport {
        seed: cfg.seed,
        ops: ops.len(),
        unrecovered,
        ..Default::default()
    };
    for o in &ops {
        match &o.outcome {
            Outcome::Unknown(why) => {
                report.indeterminate += 1;
                if why.starts_with("unexpected reply") {
                    report.odd_replies += 1;
                    report.findings.push(format!("odd reply: {}", o.describe()));
                }
            }
            Outcome::Fail(_) => report.failed += 1,
            _ => report.ok += 1,
        }
    }
    let history_path = dir.join("history.jsonl");
    history::save(&history_path, &ops).map_err(|e| format!("save history: {e}"))?;
    let mut events: Vec<&(u64, String)> = flog.events.iter().chain(&mlog.events).collect();
    events.sort_by_key(|(ms, _)| *ms);
    let faults_text: String = events
        .iter()
        .map(|(ms, what)| format!("{ms:>8} ms  {what}\n"))
        .collect();
    std::fs::write(dir.join("faults.log"), faults_text).map_err(|e| format!("save faults: {e}"))?;

    let t = Instant::now();
    let checked = tokio::task::spawn_blocking(move || checker::check(&ops))
        .await
        .map_err(|e| format!("checker: {e}"))?;
    report.check_ms = t.elapsed().as_millis();
    report.checked = checked.ops_checked();
    report.violations = checked.violations().count();
    report.lost_writes = checked.lost_writes();
    report.inconclusive = checked.inconclusive().count();
    for k in &checked.keys {
        match &k.verdict {
            Verdict::Violation {
                counter_example, ..
            } => report.findings.push(counter_example.clone()),
            Verdict::Inconclusive(why) => report
                .findings
                .push(format!("key {:?}: inconclusive: {why}", k.key)),
            Verdict::Linearizable => {}
        }
    }
    report.add_fault_findings(flog, mlog);
    report.findings.extend(diagnosis);

    // Stop the nodes before deciding what to keep.
    let started = lock(&cluster).len();
    drop(cluster);
    if report.passed() && !cfg.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        // Node data dirs are large and not needed to read the evidence.
        for i in 1..=started {
            let _ = std::fs::remove_dir_all(dir.join(format!("node{i}")));
        }
        report.dir = Some(dir);
    }
    Ok(report)
}
