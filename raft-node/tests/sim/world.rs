//! The simulation driver: N nodes in one thread, a simulated network and a virtual clock,
//! all randomness from one seeded RNG. Events (message deliveries, ticks, persistence
//! completions, snapshot generation, faults, client proposals) sit in a queue ordered by
//! (virtual time, sequence number); one step pops one event, lets every node handle its
//! Readies, dispatches what they produced and checks the invariants. A run is a chaos phase
//! (drops, duplicates, delays/reordering, partitions, crashes, compactions) followed by a
//! healed phase that must make progress and converge.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::{ConfChangeType, Message, MessageType, Snapshot};
use raft::SnapshotStatus;
use raft_node::CF_RAFT;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rocksdb::DB;

use super::check::Checker;
use super::node::{lose_unsynced, record_sync, Effects, SimNode, SyncedWal};

/// Most nodes a run may have (founding members plus added ones; ids are not reused).
const MAX_NODES: usize = 8;
/// A run taking more steps than this is reported (a message storm or a loop at one instant).
const MAX_STEPS: u64 = 1_000_000;
/// Virtual milliseconds per raft tick.
pub const TICK_MS: u64 = 100;
/// How long the healed cluster may take to commit a new proposal, then to converge.
const LIVENESS_MS: u64 = 30_000;
/// Trace lines kept for a failure report.
const TRACE_LINES: usize = 60;

/// The fault mix and workload of one run (drawn from the seed).
#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub dup: f64,
    /// Usual delivery delay is uniform in 0..=max_delay ms.
    pub max_delay: u64,
    /// Probability of a long delay (up to 2 s: heavy reordering).
    pub long_delay: f64,
    /// Delay of a log sync (persisted messages wait for it).
    pub max_persist: u64,
    /// Length of the chaos phase.
    pub chaos_ms: u64,
    /// Mean time between faults.
    pub fault_every: u64,
    /// Mean time between client proposals.
    pub propose_every: u64,
    /// Compact the log after this many applied entries.
    pub snapshot_every: u64,
    /// Time to generate a snapshot.
    pub max_snapshot_ms: u64,
    /// Probability that a node crashes in the middle of restoring a received snapshot.
    pub crash_in_restore: f64,
    /// Probability that a crash is a power loss (unsynced writes lost).
    pub power_loss: f64,
    /// Membership changes (add a learner, promote it, remove a member).
    pub membership: bool,
    /// Commands a leader takes per client proposal event (one entry each).
    pub burst: u64,
}

impl Params {
    fn draw(rng: &mut ChaCha8Rng, chaos_ms: u64) -> Self {
        let mut p = Params {
            nodes: if rng.gen_bool(0.5) { 3 } else { 5 },
            drop: *[0.0, 0.02, 0.1, 0.25].choose(rng).unwrap(),
            dup: *[0.0, 0.02, 0.1].choose(rng).unwrap(),
            max_delay: *[1, 20, 80, 250].choose(rng).unwrap(),
            long_delay: *[0.0, 0.01, 0.05].choose(rng).unwrap(),
            max_persist: *[0, 5, 50, 200].choose(rng).unwrap(),
            chaos_ms,
            fault_every: rng.gen_range(300..3000),
            propose_every: rng.gen_range(20..300),
            snapshot_every: *[0, 5, 20, 60].choose(rng).unwrap(),
            max_snapshot_ms: *[0, 50, 400].choose(rng).unwrap(),
            crash_in_restore: *[0.0, 0.2].choose(rng).unwrap(),
            power_loss: *[0.0, 0.5, 0.9].choose(rng).unwrap(),
            membership: rng.gen_bool(0.5),
            burst: 1,
        };
        if rng.gen_bool(0.04) {
            // Long logs: past the storage's entry cache (8192), so that lagging followers
            // are fed from entries read back from RocksDB.
            p.burst = 150;
            p.snapshot_every = 0;
        }
        p
    }
}

enum Ev {
    Tick {
        id: u64,
        inc: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        msg: Box<Message>,
    },
    Persisted {
        id: u64,
        inc: u64,
        number: u64,
        sync: bool,
        msgs: Vec<Message>,
    },
    SnapshotGenerated {
        id: u64,
        inc: u64,
        snap: Box<Snapshot>,
    },
    SnapshotStatus {
        id: u64,
        inc: u64,
        to: u64,
        ok: bool,
    },
    Fault,
    Restart {
        id: u64,
    },
    Propose,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Slot {
    id: u64,
    /// Declared before `db` and `dir`: the database closes before its directory is removed.
    node: Option<SimNode>,
    /// The node's database. A crash drops the node (raft state, state machine, pending
    /// work) but usually keeps the database open: what was written stays, as after a
    /// process crash; sometimes the database is closed and reopened too.
    db: Option<Arc<DB>>,
    /// Incarnation: bumped by every crash, so that events of a dead process are ignored.
    inc: u64,
    /// When the last queued log sync completes (syncs complete in order).
    persist_at: u64,
    /// A founding member (opens its storage with the founding voters).
    founding: bool,
    /// Removed from the group: stopped for good (ids are never reused).
    retired: bool,
    /// WAL sizes at the last log sync (what a power loss keeps).
    synced: SyncedWal,
    dir: tempfile::TempDir,
}

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub virtual_ms: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub proposals: u64,
    pub committed: u64,
    pub leader_terms: u64,
    pub compactions: u64,
    pub snapshots_sent: u64,
    pub snapshots_restored: u64,
    pub restore_crashes: u64,
    pub power_losses: u64,
    pub added: u64,
    pub removed: u64,
    pub transfers: u64,
    /// Digest of the run's whole event trace (same seed, same digest).
    pub trace_digest: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.virtual_ms += o.virtual_ms;
        self.messages += o.messages;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.proposals += o.proposals;
        self.committed += o.committed;
        self.leader_terms += o.leader_terms;
        self.compactions += o.compactions;
        self.snapshots_sent += o.snapshots_sent;
        self.snapshots_restored += o.snapshots_restored;
        self.restore_crashes += o.restore_crashes;
        self.power_losses += o.power_losses;
        self.added += o.added;
        self.removed += o.removed;
        self.transfers += o.transfers;
        // Of a batch: an order-independent fingerprint of all its runs.
        self.trace_digest ^= o.trace_digest;
    }
}

/// A violated invariant (or a panic) with what led to it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub now: u64,
    pub what: String,
    pub params: String,
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SIMULATION FAILURE seed {} at step {} (t={} ms): {}",
            self.seed, self.step, self.now, self.what
        )?;
        writeln!(f, "  params: {}", self.params)?;
        writeln!(f, "  last events:")?;
        for l in &self.trace {
            writeln!(f, "    {l}")?;
        }
        write!(
            f,
            "  reproduce: SIM_SEED={} SIM_TRACE=1 cargo test -p raft-node --test sim -- --nocapture",
            self.seed
        )
    }
}

pub struct Sim {
    seed: u64,
    rng: ChaCha8Rng,
    p: Params,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    slots: Vec<Slot>,
    voters: Vec<u64>,
    /// Blocked directed links (from, to).
    blocked: BTreeSet<(u64, u64)>,
    checker: Checker,
    trace: VecDeque<String>,
    print_trace: bool,
    chaos: bool,
    proposing: bool,
    next_cmd: u64,
    /// First command number proposed after healing.
    heal_cmd: Option<u64>,
    /// A command proposed after healing has been applied somewhere.
    progressed: bool,
    stats: Stats,
    /// An invariant violated while dispatching effects (reported at the next check).
    violation: Option<String>,
}

fn new_slot(id: u64, founding: bool) -> Slot {
    Slot {
        id,
        dir: tempfile::Builder::new()
            .prefix("raft-sim-")
            .tempdir_in(data_root())
            .expect("tempdir"),
        node: None,
        db: None,
        inc: 0,
        persist_at: 0,
        founding,
        retired: false,
        synced: SyncedWal::default(),
    }
}

/// Where the nodes' databases live: `SIM_DIR`, else tmpfs when there is one.
fn data_root() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("SIM_DIR") {
        return d.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn open_db(path: &Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(1);
    opts.set_write_buffer_size(1 << 20);
    opts.set_log_level(rocksdb::LogLevel::Error);
    opts.set_keep_log_file_num(1);
    opts.set_stats_dump_period_sec(0);
    // Preallocation is the main cost of opening a database: keep files small.
    opts.set_manifest_preallocation_size(64 << 10);
    // Column families get their own options (a large default write buffer would make the
    // WAL preallocate tens of MB on every open).
    let cfs = [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, CF_RAFT]
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, opts.clone()));
    Arc::new(DB::open_cf_descriptors(&opts, path, cfs).expect("open simulated node database"))
}

fn msg_summary(m: &Message) -> String {
    let t = format!("{:?}", m.get_msg_type());
    let t = t.trim_start_matches("Msg");
    match m.get_msg_type() {
        MessageType::MsgAppend => format!(
            "{t} term {} prev {}/{} ents {} commit {}",
            m.term,
            m.index,
            m.log_term,
            m.entries.len(),
            m.commit
        ),
        MessageType::MsgAppendResponse => format!(
            "{t} term {} index {} reject {} hint {}",
            m.term, m.index, m.reject, m.reject_hint
        ),
        MessageType::MsgSnapshot => format!(
            "{t} term {} snap {}/{}",
            m.term,
            m.get_snapshot().get_metadata().index,
            m.get_snapshot().get_metadata().term
        ),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
            format!("{t} term {} last {}/{}", m.term, m.index, m.log_term)
        }
        MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse => {
            format!("{t} term {} reject {}", m.term, m.reject)
        }
        _ => format!("{t} term {} commit {}", m.term, m.commit),
    }
}

impl Sim {
    pub fn new(seed: u64, chaos_ms: u64, print_trace: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = Params::draw(&mut rng, chaos_ms);
        let voters: Vec<u64> = (1..=p.nodes as u64).collect();
        let slots = voters.iter().map(|&id| new_slot(id, true)).collect();
        Sim {
            seed,
            rng,
            p,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots,
            voters,
            blocked: BTreeSet::new(),
            checker: Checker::default(),
            trace: VecDeque::new(),
            print_trace,
            chaos: true,
            proposing: true,
            next_cmd: 0,
            heal_cmd: None,
            progressed: false,
            stats: Stats::default(),
            violation: None,
        }
    }

    /// The failure report for a panic raised while running (inside raft-rs, usually).
    pub fn panicked(&self, msg: &str) -> Failure {
        self.fail(format!("panic: {msg}"))
    }

    fn fail(&self, what: impl Into<String>) -> Failure {
        Failure {
            seed: self.seed,
            step: self.stats.steps,
            now: self.now,
            what: what.into(),
            params: format!("{:?}", self.p),
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn note(&mut self, line: String) {
        let line = format!("t={} {line}", self.now);
        self.stats.trace_digest = line
            .bytes()
            .fold(self.stats.trace_digest ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        if self.print_trace {
            eprintln!("[seed {}] {line}", self.seed);
        }
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn schedule(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: self.now + delay,
            seq: self.seq,
            ev,
        }));
    }

    fn slot(&mut self, id: u64) -> &mut Slot {
        &mut self.slots[(id - 1) as usize]
    }

    fn ids(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.id).collect()
    }

    /// The leader's configuration: every member (voters and learners).
    fn members(&self) -> Result<(&SimNode, Vec<u64>), String> {
        let leader = self
            .slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .find(|n| n.is_leader())
            .ok_or("no leader")?;
        let cs = leader.raw.raft.prs().conf().to_conf_state();
        let mut ids: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        ids.sort_unstable();
        Ok((leader, ids))
    }

    fn live(&self) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|s| s.node.is_some())
            .map(|s| s.id)
            .collect()
    }

    fn start_node(&mut self, id: u64) -> Result<(), Failure> {
        let node_seed = self.rng.gen::<u64>();
        let voters = if self.slot(id).founding {
            self.voters.clone()
        } else {
            Vec::new()
        };
        let mut notes = Vec::new();
        let slot = self.slot(id);
        let db = match &slot.db {
            Some(db) => db.clone(),
            None => {
                let db = open_db(slot.dir.path());
                slot.db = Some(db.clone());
                db
            }
        };
        let (dir, synced) = (slot.dir.path().to_path_buf(), slot.synced.clone());
        let node = SimNode::open(
            id,
            db,
            &dir,
            synced,
            &voters,
            ChaCha8Rng::seed_from_u64(node_seed),
            &mut notes,
        );
        for n in notes {
            self.note(n);
        }
        let node = node.map_err(|e| self.fail(e))?;
        let (applied, digest, sm_applied) = (node.applied, node.sm.digest, node.sm.applied);
        let slot = self.slot(id);
        slot.node = Some(node);
        slot.inc += 1;
        slot.persist_at = 0;
        let inc = slot.inc;
        self.checker.restarted(id);
        if sm_applied > 0 {
            self.checker
                .digest(id, sm_applied, digest)
                .map_err(|e| self.fail(e))?;
        }
        self.note(format!("n{id} starts (applied {applied})"));
        let first_tick = self.rng.gen_range(1..=TICK_MS);
        self.schedule(first_tick, Ev::Tick { id, inc });
        Ok(())
    }

    /// A process crash (what was written survives; sometimes the database is closed and
    /// reopened too) or, with `power_loss`, a machine crash that loses every write since
    /// the node's last log sync.
    fn crash(&mut self, id: u64, why: &str, power_loss: bool) {
        let reopen = power_loss || self.rng.gen_bool(0.2);
        let slot = self.slot(id);
        if slot.node.take().is_some() {
            slot.inc += 1;
            let mut lost = 0;
            if reopen {
                // The last handle: the database closes now and is reopened on restart.
                slot.db = None;
                if power_loss {
                    lost = lose_unsynced(slot.dir.path(), &slot.synced);
                }
            }
            self.stats.crashes += 1;
            if power_loss {
                self.stats.power_losses += 1;
            }
            let how = match (power_loss, reopen) {
                (true, _) => format!(", power loss: {lost} unsynced WAL bytes lost"),
                (false, true) => ", database closed".to_string(),
                _ => String::new(),
            };
            self.note(format!("n{id} crashes ({why}){how}"));
        }
    }

    /// Runs the whole scenario.
    pub fn run(&mut self) -> Result<Stats, Failure> {
        self.note(format!("seed {} params {:?}", self.seed, self.p));
        for id in self.voters.clone() {
            self.start_node(id)?;
        }
        self.settle()?;
        let f = self.rng.gen_range(0..self.p.fault_every);
        self.schedule(f, Ev::Fault);
        let p = self.rng.gen_range(0..self.p.propose_every);
        self.schedule(p, Ev::Propose);
        while self.now < self.p.chaos_ms {
            self.step()?;
        }
        self.heal()?;
        let deadline = self.now + LIVENESS_MS;
        while !self.progressed {
            if self.now > deadline {
                return Err(self.fail(format!(
                    "no progress: nothing proposed after healing committed within {LIVENESS_MS} ms"
                )));
            }
            self.step()?;
        }
        self.proposing = false;
        let deadline = self.now + LIVENESS_MS;
        loop {
            match self.converged() {
                Ok(()) => break,
                Err(why) if self.now > deadline => {
                    return Err(self.fail(format!(
                        "no convergence within {LIVENESS_MS} ms after healing: {why}"
                    )))
                }
                Err(_) => self.step()?,
            }
        }
        self.final_check()?;
        self.stats.virtual_ms = self.now;
        self.stats.leader_terms = self.checker.leader_terms() as u64;
        self.stats.committed = self.checker.max_committed();
        Ok(self.stats.clone())
    }

    /// Ends the chaos: all links up, no more losses, every node running.
    fn heal(&mut self) -> Result<(), Failure> {
        self.chaos = false;
        self.blocked.clear();
        self.p.drop = 0.0;
        self.p.dup = 0.0;
        self.p.long_delay = 0.0;
        self.p.crash_in_restore = 0.0;
        self.heal_cmd = Some(self.next_cmd);
        self.note("heal: network repaired, restarting crashed nodes".into());
        for id in self.ids() {
            if self.slot(id).node.is_none() && !self.slot(id).retired {
                self.start_node(id)?;
            }
        }
        self.settle()
    }

    fn converged(&self) -> Result<(), String> {
        let (leader, members) = self.members()?;
        let commit = leader.raw.raft.raft_log.committed;
        for id in members {
            let n = self.slots[(id - 1) as usize]
                .node
                .as_ref()
                .ok_or(format!("member n{id} is down"))?;
            if n.applied != commit || n.raw.raft.raft_log.committed != commit {
                return Err(format!(
                    "n{} applied {} commit {}, leader n{} commit {commit}",
                    n.id, n.applied, n.raw.raft.raft_log.committed, leader.id
                ));
            }
        }
        Ok(())
    }

    fn final_check(&self) -> Result<(), Failure> {
        let (_, members) = self.members().map_err(|e| self.fail(e))?;
        let nodes: Vec<&SimNode> = members
            .iter()
            .filter_map(|&id| self.slots[(id - 1) as usize].node.as_ref())
            .collect();
        if nodes.len() != members.len() {
            return Err(self.fail("a member is down at the end"));
        }
        let first = nodes[0];
        for n in &nodes[1..] {
            if n.sm != first.sm {
                return Err(self.fail(format!(
                    "final states differ: n{} (applied {}, {} items, digest {:016x}) vs n{} (applied {}, {} items, digest {:016x})",
                    first.id, first.sm.applied, first.sm.items.len(), first.sm.digest,
                    n.id, n.sm.applied, n.sm.items.len(), n.sm.digest
                )));
            }
        }
        // Every applied command was proposed exactly once.
        let mut seen = BTreeSet::new();
        for it in &first.sm.items {
            if !seen.insert(it.clone()) {
                return Err(self.fail(format!(
                    "command {:?} applied twice",
                    String::from_utf8_lossy(it)
                )));
            }
        }
        Ok(())
    }

    /// Pops and handles one event, then lets the nodes catch up and checks invariants.
    fn step(&mut self) -> Result<(), Failure> {
        let Some(Reverse(q)) = self.queue.pop() else {
            return Err(self.fail("event queue ran dry"));
        };
        self.now = q.at;
        self.stats.steps += 1;
        if self.stats.steps > MAX_STEPS {
            return Err(self.fail(format!("more than {MAX_STEPS} steps: a message storm?")));
        }
        match q.ev {
            Ev::Tick { id, inc } => {
                if self.slot(id).inc == inc {
                    if let Some(n) = self.slot(id).node.as_mut() {
                        n.raw.tick();
                        n.observe();
                        if let Some(learner) = n.maybe_promote() {
                            self.note(format!("n{id} proposes promoting learner n{learner}"));
                        }
                    }
                    self.schedule(TICK_MS, Ev::Tick { id, inc });
                }
            }
            Ev::Deliver { from, to, msg } => self.deliver(from, to, *msg),
            Ev::Persisted {
                id,
                inc,
                number,
                sync,
                msgs,
            } => {
                if self.slot(id).inc == inc {
                    if sync {
                        let slot = self.slot(id);
                        record_sync(slot.dir.path(), &slot.synced);
                    }
                    self.send(id, msgs);
                    if let Some(n) = self.slot(id).node.as_mut() {
                        n.on_persisted(number);
                    }
                }
            }
            Ev::SnapshotGenerated { id, inc, snap } => {
                if self.slot(id).inc == inc {
                    let mut fx = Effects::default();
                    if let Some(n) = self.slot(id).node.as_mut() {
                        n.on_snapshot_generated(*snap, &mut fx);
                        self.stats.compactions += 1;
                    }
                    self.dispatch(id, fx);
                }
            }
            Ev::SnapshotStatus { id, inc, to, ok } => {
                if self.slot(id).inc == inc {
                    if let Some(n) = self.slot(id).node.as_mut() {
                        let st = if ok {
                            SnapshotStatus::Finish
                        } else {
                            SnapshotStatus::Failure
                        };
                        n.raw.report_snapshot(to, st);
                    }
                }
            }
            Ev::Fault => {
                if self.chaos {
                    self.fault()?;
                    let next = self
                        .rng
                        .gen_range(self.p.fault_every / 2..=self.p.fault_every * 3 / 2);
                    self.schedule(next, Ev::Fault);
                }
            }
            Ev::Restart { id } => {
                if self.chaos && self.slot(id).node.is_none() && !self.slot(id).retired {
                    self.start_node(id)?;
                }
            }
            Ev::Propose => {
                if self.proposing {
                    self.propose();
                    let next = self.rng.gen_range(1..=self.p.propose_every * 2);
                    self.schedule(next, Ev::Propose);
                }
            }
        }
        self.settle()
    }

    fn propose(&mut self) {
        let live = self.live();
        let Some(&id) = live.choose(&mut self.rng) else {
            return;
        };
        let (cmd, burst) = (self.next_cmd, self.p.burst);
        let n = self.slot(id).node.as_mut().unwrap();
        if !n.is_leader() {
            return;
        }
        let mut accepted = 0;
        for c in cmd..cmd + burst {
            let data = format!("c{c}").into_bytes();
            if n.raw.propose(vec![], data).is_err() {
                break;
            }
            accepted += 1;
        }
        if accepted > 0 {
            let index = n.raw.raft.raft_log.last_index();
            self.next_cmd += accepted;
            self.stats.proposals += accepted;
            if accepted == 1 {
                self.note(format!("n{id} proposes c{cmd} at {index}"));
            } else {
                let last = cmd + accepted - 1;
                let first_index = index + 1 - accepted;
                self.note(format!(
                    "n{id} proposes c{cmd}..=c{last} at {first_index}..={index}"
                ));
            }
        }
    }

    fn deliver(&mut self, from: u64, to: u64, msg: Message) {
        let is_snap = msg.get_msg_type() == MessageType::MsgSnapshot;
        let blocked = self.blocked.contains(&(from, to));
        let alive = self.slot(to).node.is_some();
        if blocked || !alive {
            self.stats.dropped += 1;
            if is_snap {
                self.snapshot_status(from, to, false);
            }
            return;
        }
        self.note(format!("n{from}->n{to} {}", msg_summary(&msg)));
        if is_snap {
            self.stats.snapshots_sent += 1;
        }
        let n = self.slot(to).node.as_mut().unwrap();
        let _ = n.raw.step(msg);
        n.observe();
        if is_snap {
            // The transport reports a delivered snapshot as finished.
            self.snapshot_status(from, to, true);
        }
    }

    fn snapshot_status(&mut self, leader: u64, to: u64, ok: bool) {
        let inc = self.slot(leader).inc;
        let d = self.rng.gen_range(0..=self.p.max_delay);
        self.schedule(
            d,
            Ev::SnapshotStatus {
                id: leader,
                inc,
                to,
                ok,
            },
        );
    }

    /// Puts messages on the network: each may be lost, delayed, duplicated.
    fn send(&mut self, from: u64, mut msgs: Vec<Message>) {
        // raft-rs may emit broadcasts in hash order; fix one order per destination.
        msgs.sort_by_key(|m| m.to);
        for m in msgs {
            self.stats.messages += 1;
            let to = m.to;
            if to == from || to == 0 || to > self.slots.len() as u64 {
                continue;
            }
            let copies = if self.rng.gen_bool(self.p.dup) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if self.rng.gen_bool(self.p.drop) {
                    self.stats.dropped += 1;
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        self.snapshot_status(from, to, false);
                    }
                    continue;
                }
                let delay = if self.rng.gen_bool(self.p.long_delay) {
                    self.rng.gen_range(0..=2000)
                } else {
                    self.rng.gen_range(0..=self.p.max_delay)
                };
                self.schedule(
                    delay,
                    Ev::Deliver {
                        from,
                        to,
                        msg: Box::new(m.clone()),
                    },
                );
            }
        }
    }

    /// Hands every live node's pending work to it and dispatches the results.
    fn settle(&mut self) -> Result<(), Failure> {
        for id in self.ids() {
            let crash_in_restore = self.rng.gen_bool(self.p.crash_in_restore);
            let every = self.p.snapshot_every;
            if let Some(n) = self.slot(id).node.as_mut() {
                let mut fx = Effects::default();
                let crashed = n.handle_readies(&mut fx, crash_in_restore).is_err();
                if !crashed {
                    n.maybe_snapshot(every, false, &mut fx);
                }
                self.dispatch(id, fx);
                if crashed {
                    self.stats.restore_crashes += 1;
                    self.crash(id, "in snapshot restore", false);
                    let d = self.rng.gen_range(100..2000);
                    self.schedule(d, Ev::Restart { id });
                }
            }
            self.check(id)?;
        }
        Ok(())
    }

    fn check(&mut self, id: u64) -> Result<(), Failure> {
        if let Some(e) = self.violation.take() {
            return Err(self.fail(e));
        }
        let slot = &self.slots[(id - 1) as usize];
        if let Some(n) = slot.node.as_ref() {
            if let Err(e) = self.checker.node(n) {
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    /// Acts on what a node produced.
    fn dispatch(&mut self, id: u64, fx: Effects) {
        for n in fx.notes {
            self.note(n);
        }
        let mut err = None;
        for a in &fx.applied {
            if let Err(e) = self.checker.entry(id, a.index, a.term, &a.data) {
                err.get_or_insert(e);
            }
            if let Err(e) = self.checker.digest(id, a.index, a.digest) {
                err.get_or_insert(e);
            }
            if let (Some(h), Some(n)) = (
                self.heal_cmd,
                std::str::from_utf8(&a.data)
                    .ok()
                    .and_then(|s| s.strip_prefix('c'))
                    .and_then(|s| s.parse::<u64>().ok()),
            ) {
                if n >= h {
                    self.progressed = true;
                }
            }
        }
        for r in fx.removed {
            if !self.slot(r).retired {
                self.crash(r, "removed from the group", false);
                self.slot(r).retired = true;
                self.stats.removed += 1;
                self.note(format!("n{r} retired"));
            }
        }
        if let Some((index, digest)) = fx.restored {
            self.stats.snapshots_restored += 1;
            if let Err(e) = self.checker.digest(id, index, digest) {
                err.get_or_insert(e);
            }
        }
        if let Some(e) = err {
            // Reported by the next check of this node.
            self.pending_error(e);
        }
        self.send(id, fx.send);
        let inc = self.slot(id).inc;
        for (number, sync, msgs) in fx.persist {
            let earliest = self.now + self.rng.gen_range(0..=self.p.max_persist);
            let slot = self.slot(id);
            let at = slot.persist_at.max(earliest);
            slot.persist_at = at;
            let delay = at - self.now;
            self.schedule(
                delay,
                Ev::Persisted {
                    id,
                    inc,
                    number,
                    sync,
                    msgs,
                },
            );
        }
        if let Some(s) = fx.snapshot_started {
            let d = self.rng.gen_range(0..=self.p.max_snapshot_ms);
            self.schedule(
                d,
                Ev::SnapshotGenerated {
                    id,
                    inc,
                    snap: Box::new(s),
                },
            );
        }
    }

    fn pending_error(&mut self, e: String) {
        self.note(format!("INVARIANT VIOLATED: {e}"));
        self.violation.get_or_insert(e);
    }

    /// Adds a new node as a learner or removes a member, at the leader.
    fn change_membership(&mut self) -> Result<(), Failure> {
        let Ok((leader, members)) = self.members() else {
            return Ok(());
        };
        let lid = leader.id;
        let voters = leader.raw.raft.prs().conf().to_conf_state().voters;
        let add = self.rng.gen_bool(0.5);
        if add && self.slots.len() < MAX_NODES {
            let id = self.slots.len() as u64 + 1;
            self.slots.push(new_slot(id, false));
            self.start_node(id)?;
            let n = self.slot(lid).node.as_mut().unwrap();
            match n.propose_conf_change(ConfChangeType::AddLearnerNode, id) {
                Ok(index) => {
                    self.stats.added += 1;
                    self.note(format!("n{lid} proposes adding learner n{id} at {index}"));
                }
                Err(e) => self.note(format!("n{lid} cannot add n{id}: {e}")),
            }
        } else if !add && voters.len() > 3 {
            let victim = *members.choose(&mut self.rng).unwrap();
            let n = self.slot(lid).node.as_mut().unwrap();
            match n.propose_conf_change(ConfChangeType::RemoveNode, victim) {
                Ok(index) => self.note(format!("n{lid} proposes removing n{victim} at {index}")),
                Err(e) => self.note(format!("n{lid} cannot remove n{victim}: {e}")),
            }
        }
        Ok(())
    }

    /// One random fault.
    fn fault(&mut self) -> Result<(), Failure> {
        let ids = self.live();
        if ids.is_empty() {
            return Ok(());
        }
        let k = self.rng.gen_range(0..100);
        match k {
            0..=14 => {
                // Isolate one node (often the leader).
                let leader = self
                    .slots
                    .iter()
                    .find(|s| s.node.as_ref().is_some_and(|n| n.is_leader()))
                    .map(|s| s.id);
                let victim = match leader {
                    Some(l) if self.rng.gen_bool(0.6) => l,
                    _ => *ids.choose(&mut self.rng).unwrap(),
                };
                for &o in &ids {
                    if o != victim {
                        self.blocked.insert((victim, o));
                        self.blocked.insert((o, victim));
                    }
                }
                self.stats.partitions += 1;
                self.note(format!("partition: n{victim} isolated"));
            }
            15..=29 if ids.len() >= 2 => {
                // Split into two random sides.
                let mut shuffled = ids.clone();
                shuffled.shuffle(&mut self.rng);
                let cut = self.rng.gen_range(1..shuffled.len());
                let (a, b) = shuffled.split_at(cut);
                for &x in a {
                    for &y in b {
                        self.blocked.insert((x, y));
                        self.blocked.insert((y, x));
                    }
                }
                self.stats.partitions += 1;
                self.note(format!("partition: {a:?} | {b:?}"));
            }
            30..=41 => {
                // Some one-way links.
                let n = self.rng.gen_range(1..=3);
                let mut links = Vec::new();
                for _ in 0..n {
                    let x = *ids.choose(&mut self.rng).unwrap();
                    let y = *ids.choose(&mut self.rng).unwrap();
                    if x != y {
                        self.blocked.insert((x, y));
                        links.push((x, y));
                    }
                }
                self.stats.partitions += 1;
                self.note(format!("partition: one-way links cut {links:?}"));
            }
            42..=61 => {
                if !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.note("partition healed".into());
                }
            }
            62..=69 if self.p.membership => self.change_membership()?,
            80..=84 => {
                // An operator moves leadership to a random voter.
                if let Ok((leader, _)) = self.members() {
                    let lid = leader.id;
                    let voters = leader.raw.raft.prs().conf().to_conf_state().voters;
                    let to = *voters.choose(&mut self.rng).unwrap();
                    if to != lid {
                        self.slot(lid)
                            .node
                            .as_mut()
                            .unwrap()
                            .raw
                            .transfer_leader(to);
                        self.stats.transfers += 1;
                        self.note(format!("n{lid} transfers leadership to n{to}"));
                    }
                }
            }
            62..=79 => {
                let live = self.live();
                if let Some(&id) = live.choose(&mut self.rng) {
                    let power_loss = self.rng.gen_bool(self.p.power_loss);
                    self.crash(id, "fault", power_loss);
                    let d = self.rng.gen_range(100..5000);
                    self.schedule(d, Ev::Restart { id });
                }
            }
            _ => {
                // Force a compaction at a random node.
                let live = self.live();
                if let Some(&id) = live.choose(&mut self.rng) {
                    let mut fx = Effects::default();
                    self.slot(id)
                        .node
                        .as_mut()
                        .unwrap()
                        .maybe_snapshot(0, true, &mut fx);
                    if fx.snapshot_started.is_some() {
                        self.note(format!("n{id} starts a forced snapshot"));
                    }
                    self.dispatch(id, fx);
                }
            }
        }
        Ok(())
    }
}
