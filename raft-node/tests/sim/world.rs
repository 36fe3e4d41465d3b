//! The simulation driver: N nodes in one thread, each hosting several raft groups, over a
//! simulated network and disk, on a virtual clock, all randomness from one seeded RNG.
//! Events (message deliveries, ticks, driver rounds, log sync completions, snapshot file
//! writing, faults, client calls) sit in a queue ordered by (virtual time, sequence
//! number). What arrives for a node goes into its inbox and wakes its driver, whose round
//! ([`SimNode::round`]) runs the real peers; what the round produced is carried out here
//! ([`Sim::after_round`]) and the invariants are checked. A run is a chaos phase (drops,
//! duplicates, delays/reordering, partitions, crashes and power losses, compactions,
//! membership changes, leadership transfers) followed by a healed phase that must make
//! progress in every group and converge.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft_node::peer::SnapshotTask;
use raft_node::Msg;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rocksdb::DB;

use super::check::Checker;
use super::client::{cmd_number, Clients};
use super::disk::{data_root, Disk, WalSizes};
use super::node::{NodeSpec, RoundOut, SimNode, SyncJob, TICK_MS};
use super::params::Params;
use super::sm::{CrashPoint, Out, SmEvent};

/// Most nodes a run may have (founding members plus added ones; ids are not reused).
pub const MAX_NODES: usize = 8;
/// A run taking more steps than this is reported (a message storm or a loop at one instant).
const MAX_STEPS: u64 = 2_000_000;
/// How long the healed cluster may take to commit a new proposal in every group, then to
/// converge.
const LIVENESS_MS: u64 = 30_000;
/// Trace lines kept for a failure report.
const TRACE_LINES: usize = 80;
/// Wall clock of the nodes at virtual time 0 (plus each node's skew).
const WALL_BASE_MS: i64 = 1_700_000_000_000;

pub enum Ev {
    Tick {
        id: u64,
        inc: u64,
    },
    /// The node's driver runs a round over what its inbox holds.
    Round {
        id: u64,
        inc: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        group: u64,
        msg: Box<Message>,
    },
    /// A message from the node's own threads (transport reports) reaches its inbox.
    Local {
        id: u64,
        inc: u64,
        group: u64,
        msg: Msg<Out>,
    },
    /// The log sync thread's fsync completed: it covered the WAL at `sizes` (none when no
    /// job needed an fsync).
    SyncEnd {
        id: u64,
        inc: u64,
        sizes: Option<WalSizes>,
        jobs: Vec<SyncJob>,
    },
    /// A snapshot thread writes its files.
    SnapshotTask {
        id: u64,
        inc: u64,
        key: u64,
    },
    Fault,
    Restart {
        id: u64,
    },
    /// A client proposal (`left` more follow at once to the same node and group, one
    /// round apart).
    Propose {
        left: u64,
        to: Option<(u64, u64)>,
    },
    Read,
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

pub struct Slot {
    pub id: u64,
    /// Declared before `db` and `dir`: the node closes before its database and directory.
    pub node: Option<SimNode>,
    /// The node's database. A crash drops the node (raft state, state machines, pending
    /// work) but usually keeps the database open: what was written stays, as after a
    /// process crash; sometimes the database is closed and reopened too.
    db: Option<Arc<DB>>,
    /// Incarnation: bumped by every crash, so that events of a dead process are ignored.
    pub inc: u64,
    pub disk: Disk,
    /// A founding member (opens its groups with the founding voters).
    founding: bool,
    /// Removed from every group: stopped for good (ids are never reused).
    pub retired: bool,
    /// The groups it hosts (all but those it was removed from).
    pub groups: BTreeSet<u64>,
    /// A round is scheduled.
    round_pending: bool,
    /// Sync jobs waiting for the sync thread, which is busy with an fsync.
    sync_queue: Vec<SyncJob>,
    syncing: bool,
    /// Snapshot tasks waiting for their thread to run.
    tasks: BTreeMap<u64, (u64, SnapshotTask)>,
    /// How far this node's wall clock is off (ms).
    skew: i64,
    /// Removed (with the database and snapshots in it) when the run ends.
    _dir: tempfile::TempDir,
}

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub rounds: u64,
    pub virtual_ms: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub proposals: u64,
    pub acked: u64,
    pub refused: u64,
    pub unknown: u64,
    pub reads: u64,
    pub reads_ok: u64,
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
        let pairs = [
            (&mut self.steps, o.steps),
            (&mut self.rounds, o.rounds),
            (&mut self.virtual_ms, o.virtual_ms),
            (&mut self.messages, o.messages),
            (&mut self.dropped, o.dropped),
            (&mut self.duplicated, o.duplicated),
            (&mut self.crashes, o.crashes),
            (&mut self.partitions, o.partitions),
            (&mut self.proposals, o.proposals),
            (&mut self.acked, o.acked),
            (&mut self.refused, o.refused),
            (&mut self.unknown, o.unknown),
            (&mut self.reads, o.reads),
            (&mut self.reads_ok, o.reads_ok),
            (&mut self.committed, o.committed),
            (&mut self.leader_terms, o.leader_terms),
            (&mut self.compactions, o.compactions),
            (&mut self.snapshots_sent, o.snapshots_sent),
            (&mut self.snapshots_restored, o.snapshots_restored),
            (&mut self.restore_crashes, o.restore_crashes),
            (&mut self.power_losses, o.power_losses),
            (&mut self.added, o.added),
            (&mut self.removed, o.removed),
            (&mut self.transfers, o.transfers),
        ];
        for (a, b) in pairs {
            *a += b;
        }
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
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub p: Params,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    pub slots: Vec<Slot>,
    founders: Vec<u64>,
    /// Blocked directed links (from, to).
    pub blocked: BTreeSet<(u64, u64)>,
    checker: Checker,
    pub clients: Clients,
    trace: VecDeque<String>,
    print_trace: bool,
    pub chaos: bool,
    proposing: bool,
    /// First command number proposed after healing.
    heal_cmd: Option<u64>,
    /// Groups in which a command proposed after healing was applied.
    progressed: BTreeSet<u64>,
    /// (node, group): the node's removal from the group was applied somewhere.
    pub removed: BTreeSet<(u64, u64)>,
    /// Per group: the (term, leader) last noted in the trace.
    leaders_noted: BTreeMap<u64, (u64, u64)>,
    pub stats: Stats,
    /// An invariant violated while carrying out effects (reported after the step).
    violation: Option<String>,
    /// Virtual time 0.
    base: Instant,
    next_task: u64,
}

impl Sim {
    pub fn new(seed: u64, chaos_ms: u64, print_trace: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = Params::draw(&mut rng, chaos_ms);
        let founders: Vec<u64> = (1..=p.nodes as u64).collect();
        let mut sim = Sim {
            seed,
            rng,
            p,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            founders: founders.clone(),
            blocked: BTreeSet::new(),
            checker: Checker::default(),
            clients: Clients::default(),
            trace: VecDeque::new(),
            print_trace,
            chaos: true,
            proposing: true,
            heal_cmd: None,
            progressed: BTreeSet::new(),
            removed: BTreeSet::new(),
            leaders_noted: BTreeMap::new(),
            stats: Stats::default(),
            violation: None,
            base: Instant::now(),
            next_task: 0,
        };
        for _ in founders {
            sim.new_slot(true);
        }
        sim
    }

    /// Adds a node slot (hosting every group); returns its id.
    pub fn new_slot(&mut self, founding: bool) -> u64 {
        let id = self.slots.len() as u64 + 1;
        let dir = tempfile::Builder::new()
            .prefix("raft-sim-")
            .tempdir_in(data_root())
            .expect("tempdir");
        let skew = match self.p.max_skew {
            0 => 0,
            m => self.rng.gen_range(-m..=m),
        };
        self.slots.push(Slot {
            id,
            node: None,
            db: None,
            inc: 0,
            disk: Disk::new(dir.path()),
            founding,
            retired: false,
            groups: self.p.groups.iter().copied().collect(),
            round_pending: false,
            sync_queue: Vec::new(),
            syncing: false,
            tasks: BTreeMap::new(),
            skew,
            _dir: dir,
        });
        id
    }

    /// The failure report for a panic raised while running (inside raft-rs, usually).
    pub fn panicked(&self, msg: &str) -> Failure {
        self.fail(format!("panic: {msg}"))
    }

    pub fn fail(&self, what: impl Into<String>) -> Failure {
        Failure {
            seed: self.seed,
            step: self.stats.steps,
            now: self.now,
            what: what.into(),
            params: format!("{:?}", self.p),
            trace: self.trace.iter().cloned().collect(),
        }
    }

    pub fn note(&mut self, line: String) {
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

    /// Records a violation found while carrying out effects.
    pub fn violated(&mut self, e: String) {
        self.note(format!("INVARIANT VIOLATED: {e}"));
        self.violation.get_or_insert(e);
    }

    pub fn schedule(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: self.now + delay,
            seq: self.seq,
            ev,
        }));
    }

    pub fn slot(&mut self, id: u64) -> &mut Slot {
        &mut self.slots[(id - 1) as usize]
    }

    pub fn node(&self, id: u64) -> Option<&SimNode> {
        self.slots[(id - 1) as usize].node.as_ref()
    }

    pub fn live(&self) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|s| s.node.is_some())
            .map(|s| s.id)
            .collect()
    }

    /// The leader of `g` among the live nodes (the one of the highest term).
    pub fn leader(&self, g: u64) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .filter(|n| n.leads(g))
            .max_by_key(|n| n.peers[&g].raw().raft.term)
            .map(|n| n.id)
    }

    /// The leader of `g` and every member of its configuration (voters and learners).
    pub fn members(&self, g: u64) -> Result<(u64, Vec<u64>), String> {
        let l = self.leader(g).ok_or(format!("group {g} has no leader"))?;
        let cs = self.node(l).expect("live leader").peers[&g]
            .raw()
            .raft
            .prs()
            .conf()
            .to_conf_state();
        let mut ids: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        ids.sort_unstable();
        Ok((l, ids))
    }

    /// The node's clock now: (monotonic instant, wall ms).
    fn clock(&self, id: u64) -> (Instant, i64) {
        let skew = self.slots[(id - 1) as usize].skew;
        (
            self.base + Duration::from_millis(self.now),
            WALL_BASE_MS + self.now as i64 + skew,
        )
    }

    fn logger(&self, id: u64) -> slog::Logger {
        use slog::Drain;
        let level = if std::env::var_os("SIM_LOG").is_some() {
            slog::Level::Debug
        } else {
            // A fail-stop (`die()`) ends the whole test process: say why first.
            slog::Level::Critical
        };
        let dec = slog_term::PlainSyncDecorator::new(std::io::stderr());
        let drain = slog_term::FullFormat::new(dec).build().fuse();
        let drain = slog::LevelFilter::new(drain, level).fuse();
        slog::Logger::root(drain, slog::o!("seed" => self.seed, "node" => id))
    }

    /// Hands `msg` to the inbox of node `id`'s driver.
    pub fn to_inbox(&mut self, id: u64, group: u64, msg: Msg<Out>) {
        if let Some(n) = self.slot(id).node.as_mut() {
            n.push(group, msg);
            self.wake(id);
        }
    }

    /// Makes sure node `id`'s driver runs a round soon.
    pub fn wake(&mut self, id: u64) {
        let delay = self.rng.gen_range(0..=self.p.round_delay);
        let slot = self.slot(id);
        if slot.node.is_none() || slot.round_pending {
            return;
        }
        slot.round_pending = true;
        let inc = slot.inc;
        self.schedule(delay, Ev::Round { id, inc });
    }

    pub fn start_node(&mut self, id: u64) -> Result<(), Failure> {
        let seed = self.rng.gen::<u64>();
        let slot = &self.slots[(id - 1) as usize];
        let voters = if slot.founding {
            self.founders.clone()
        } else {
            Vec::new()
        };
        let spec = NodeSpec {
            id,
            groups: slot.groups.iter().map(|&g| (g, voters.clone())).collect(),
            founders: self.founders.clone(),
            snapshot_entries: self.p.snapshot_every,
            seed,
        };
        let (logger, clock) = (self.logger(id), self.clock(id));
        let slot = self.slot(id);
        let db = slot.db.get_or_insert_with(|| slot.disk.open_db()).clone();
        let node = SimNode::open(&spec, db, slot.disk.clone(), &logger, clock)
            .map_err(|e| self.fail(e))?;
        let restarts: Vec<(u64, u64, u64)> = node
            .peers
            .iter()
            .map(|(g, p)| {
                let st = p.state_machine().state();
                (*g, st.applied, st.digest)
            })
            .collect();
        let applied: Vec<String> = node
            .peers
            .iter()
            .map(|(g, p)| format!("{g}:{}", p.applied()))
            .collect();
        let slot = self.slot(id);
        slot.node = Some(node);
        slot.inc += 1;
        let inc = slot.inc;
        self.checker.restarted(id);
        for (g, index, digest) in restarts {
            if index > 0 {
                let ev = SmEvent::Restored { index, digest };
                if let Err(e) = self.checker.sm_event(id, g, &ev, None) {
                    return Err(self.fail(e));
                }
            }
        }
        self.note(format!("n{id} starts (applied {})", applied.join(" ")));
        let first_tick = self.rng.gen_range(1..=TICK_MS);
        self.schedule(first_tick, Ev::Tick { id, inc });
        Ok(())
    }

    /// A process crash (what was written survives; sometimes the database is closed and
    /// reopened too) or, with `power_loss`, a machine crash that loses every write since
    /// the node's last completed log sync.
    pub fn crash(&mut self, id: u64, why: &str, power_loss: bool) {
        let reopen = power_loss || self.rng.gen_bool(0.2);
        let slot = self.slot(id);
        let Some(node) = slot.node.take() else {
            return;
        };
        drop(node);
        slot.inc += 1;
        slot.round_pending = false;
        slot.sync_queue.clear();
        slot.syncing = false;
        slot.tasks.clear();
        let mut lost = 0;
        if reopen {
            // The last handle: the database closes now and is reopened on restart.
            slot.db = None;
            if power_loss {
                lost = slot.disk.lose_unsynced();
            }
        }
        self.stats.crashes += 1;
        if power_loss {
            self.stats.power_losses += 1;
        }
        // Its clients' calls end with closed channels (outcome unknown).
        if let Err(e) = self.clients.poll(id, None) {
            self.violated(e);
        }
        let how = match (power_loss, reopen) {
            (true, _) => format!(", power loss: {lost} unsynced WAL bytes lost"),
            (false, true) => ", database closed".to_string(),
            _ => String::new(),
        };
        self.note(format!("n{id} crashes ({why}){how}"));
    }

    /// Runs the whole scenario.
    pub fn run(&mut self) -> Result<Stats, Failure> {
        self.note(format!("seed {} params {:?}", self.seed, self.p));
        for id in self.founders.clone() {
            self.start_node(id)?;
        }
        let f = self.rng.gen_range(0..self.p.fault_every);
        self.schedule(f, Ev::Fault);
        let p = self.rng.gen_range(0..self.p.propose_every);
        self.schedule(p, Ev::Propose { left: 0, to: None });
        let r = self.rng.gen_range(0..self.p.read_every);
        self.schedule(r, Ev::Read);
        while self.now < self.p.chaos_ms {
            self.step()?;
        }
        self.heal()?;
        let deadline = self.now + LIVENESS_MS;
        while self.progressed.len() < self.p.groups.len() {
            if self.now > deadline {
                return Err(self.fail(format!(
                    "no progress: groups {:?} committed nothing proposed after healing within {LIVENESS_MS} ms",
                    self.p.groups.iter().filter(|g| !self.progressed.contains(g)).collect::<Vec<_>>()
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
        let c = self.clients.stats;
        self.stats.virtual_ms = self.now;
        self.stats.leader_terms = self.checker.leader_terms() as u64;
        self.stats.committed = self.checker.max_committed();
        (self.stats.proposals, self.stats.acked, self.stats.refused) =
            (c.proposals, c.acked, c.refused);
        (self.stats.unknown, self.stats.reads, self.stats.reads_ok) =
            (c.unknown, c.reads, c.reads_ok);
        Ok(self.stats.clone())
    }

    /// Ends the chaos: all links up, no more losses, every node running, and the removed
    /// members that never learnt it stopped by "the operator".
    fn heal(&mut self) -> Result<(), Failure> {
        self.chaos = false;
        self.blocked.clear();
        self.p.drop = 0.0;
        self.p.dup = 0.0;
        self.p.long_delay = 0.0;
        self.p.crash_in_restore = 0.0;
        self.heal_cmd = Some(self.clients.next_cmd());
        self.note("heal: network repaired, restarting crashed nodes".into());
        for (id, g) in self.removed.clone() {
            if let Some(n) = self.slot(id).node.as_mut() {
                if n.peers.contains_key(&g) {
                    n.drop_group(g);
                    self.note(format!("n{id} stops its removed peer of group {g}"));
                }
            }
        }
        for id in 1..=self.slots.len() as u64 {
            if self.slot(id).node.is_none() && !self.slot(id).retired {
                self.start_node(id)?;
            }
        }
        Ok(())
    }

    fn converged(&self) -> Result<(), String> {
        for &g in &self.p.groups {
            let (l, members) = self.members(g)?;
            let commit = self.node(l).expect("leader").peers[&g].raw().raft.raft_log.committed;
            for id in members {
                let p = self
                    .node(id)
                    .and_then(|n| n.peers.get(&g))
                    .ok_or(format!("member n{id} of group {g} is down"))?;
                let c = p.raw().raft.raft_log.committed;
                if p.applied() != commit || c != commit {
                    return Err(format!(
                        "group {g}: n{id} applied {} commit {c}, leader n{l} commit {commit}",
                        p.applied()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Identical final states in every group, each command applied at most once, and
    /// every acknowledged command where its proposer was told.
    fn final_check(&self) -> Result<(), Failure> {
        for &g in &self.p.groups {
            let (_, members) = self.members(g).map_err(|e| self.fail(e))?;
            let states: Vec<(u64, _)> = members
                .iter()
                .filter_map(|&id| Some((id, self.node(id)?.peers.get(&g)?.state_machine().state())))
                .collect();
            if states.len() != members.len() {
                return Err(self.fail(format!("a member of group {g} is down at the end")));
            }
            let (first, s0) = states[0];
            for (id, s) in &states[1..] {
                if *s != s0 {
                    return Err(self.fail(format!(
                        "group {g}: final states differ: n{first} (applied {}, {} items, digest {:016x}) vs n{id} (applied {}, {} items, digest {:016x})",
                        s0.applied, s0.items.len(), s0.digest, s.applied, s.items.len(), s.digest
                    )));
                }
            }
            let mut seen = BTreeSet::new();
            for it in &s0.items {
                if !seen.insert(it.clone()) {
                    return Err(self.fail(format!(
                        "group {g}: command {:?} applied twice",
                        String::from_utf8_lossy(it)
                    )));
                }
            }
            for (cmd, &(cg, index, pos)) in &self.clients.acked {
                let at = s0.items.get(pos as usize).and_then(|c| cmd_number(c));
                if cg == g && at != Some(*cmd) {
                    return Err(self.fail(format!(
                        "group {g}: c{cmd} was acknowledged at index {index} position {pos}, the final list has {at:?} there"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Pops and handles one event.
    fn step(&mut self) -> Result<(), Failure> {
        let Some(Reverse(q)) = self.queue.pop() else {
            return Err(self.fail("event queue ran dry"));
        };
        self.now = q.at;
        self.stats.steps += 1;
        if self.stats.steps > MAX_STEPS {
            return Err(self.fail(format!("more than {MAX_STEPS} steps: a message storm?")));
        }
        self.handle(q.ev)?;
        match self.violation.take() {
            Some(e) => Err(self.fail(e)),
            None => Ok(()),
        }
    }

    fn current(&mut self, id: u64, inc: u64) -> bool {
        let s = self.slot(id);
        s.inc == inc && s.node.is_some()
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Failure> {
        match ev {
            Ev::Tick { id, inc } => {
                if self.current(id, inc) {
                    if let Some(n) = self.slot(id).node.as_mut() {
                        n.tick_due();
                    }
                    self.wake(id);
                    self.schedule(TICK_MS, Ev::Tick { id, inc });
                }
            }
            Ev::Round { id, inc } => {
                if self.current(id, inc) {
                    self.slot(id).round_pending = false;
                    self.run_round(id)?;
                }
            }
            Ev::Deliver {
                from,
                to,
                group,
                msg,
            } => self.deliver(from, to, group, *msg),
            Ev::Local { id, inc, group, msg } => {
                if self.current(id, inc) {
                    self.to_inbox(id, group, msg);
                }
            }
            Ev::SyncEnd {
                id,
                inc,
                sizes,
                jobs,
            } => {
                if self.current(id, inc) {
                    self.sync_end(id, sizes, jobs);
                }
            }
            Ev::SnapshotTask { id, inc, key } => {
                if self.current(id, inc) {
                    if let Some((g, task)) = self.slot(id).tasks.remove(&key) {
                        let r = task();
                        if r.is_ok() {
                            self.stats.compactions += 1;
                        }
                        self.to_inbox(id, g, Msg::SnapshotGenerated(r));
                    }
                }
            }
            Ev::Fault => {
                if self.chaos {
                    self.fault()?;
                    let e = self.p.fault_every;
                    let next = self.rng.gen_range(e / 2..=e * 3 / 2);
                    self.schedule(next, Ev::Fault);
                }
            }
            Ev::Restart { id } => {
                if self.chaos && self.slot(id).node.is_none() && !self.slot(id).retired {
                    self.start_node(id)?;
                }
            }
            Ev::Propose { left, to } => {
                if self.proposing {
                    let to = self.propose(to);
                    if left > 0 && to.is_some() {
                        self.schedule(0, Ev::Propose { left: left - 1, to });
                    } else {
                        let next = self.rng.gen_range(1..=self.p.propose_every * 2);
                        let left = self.p.burst - 1;
                        self.schedule(next, Ev::Propose { left, to: None });
                    }
                }
            }
            Ev::Read => {
                if self.proposing {
                    self.read();
                    let next = self.rng.gen_range(1..=self.p.read_every * 2);
                    self.schedule(next, Ev::Read);
                }
            }
        }
        Ok(())
    }

    /// Runs one driver round of node `id` and carries out what it produced.
    fn run_round(&mut self, id: u64) -> Result<(), Failure> {
        self.stats.rounds += 1;
        let (now, wall) = self.clock(id);
        let crash = self.rng.gen_bool(self.p.crash_in_restore);
        let node = self.slot(id).node.as_mut().expect("live node");
        node.hooks
            .crash_in_restore
            .store(crash, std::sync::atomic::Ordering::Relaxed);
        match catch_unwind(AssertUnwindSafe(|| node.round(now, wall))) {
            Ok(out) => {
                node.hooks
                    .crash_in_restore
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                self.after_round(id, out);
                self.check_node(id)
            }
            Err(p) if p.is::<CrashPoint>() => {
                // The restore synced the received snapshot's raft state right before.
                self.slot(id).disk.sync_now();
                self.stats.restore_crashes += 1;
                self.crash(id, "in snapshot restore", false);
                let d = self.rng.gen_range(100..2000);
                self.schedule(d, Ev::Restart { id });
                Ok(())
            }
            Err(p) => resume_unwind(p),
        }
    }

    /// Carries out one round's effects (the driver's `carry_out` and its threads).
    fn after_round(&mut self, id: u64, out: RoundOut) {
        self.send(id, out.send);
        if let Some(job) = out.job {
            self.slot(id).sync_queue.push(job);
            self.start_sync(id);
        }
        for (g, to, notice) in out.notices {
            self.note(format!("n{id} sends n{to} its removal from group {g}"));
            self.send(id, vec![(g, notice)]);
        }
        for (g, r) in out.left {
            self.member_left(g, r);
        }
        for (g, task) in out.snapshots {
            let key = self.next_task;
            self.next_task += 1;
            let inc = self.slot(id).inc;
            self.slot(id).tasks.insert(key, (g, task));
            let d = self.rng.gen_range(0..=self.p.max_snapshot_ms);
            self.schedule(d, Ev::SnapshotTask { id, inc, key });
        }
        if out.again {
            self.wake(id);
        }
    }

    /// Group `g` applied the removal of node `r`.
    fn member_left(&mut self, g: u64, r: u64) {
        if !self.removed.insert((r, g)) {
            return;
        }
        self.stats.removed += 1;
        self.note(format!("n{r} is out of group {g}"));
        let slot = self.slot(r);
        slot.groups.remove(&g);
        if slot.groups.is_empty() && !slot.retired {
            slot.retired = true;
            self.crash(r, "removed from every group", false);
            self.note(format!("n{r} retired"));
        }
    }

    /// Starts an fsync of the sync thread when it is idle and has jobs.
    fn start_sync(&mut self, id: u64) {
        let d = self.rng.gen_range(0..=self.p.max_persist);
        let slot = self.slot(id);
        if slot.syncing || slot.sync_queue.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut slot.sync_queue);
        let sizes = jobs
            .iter()
            .any(|j| j.sync)
            .then(|| slot.disk.wal_sizes());
        slot.syncing = true;
        let inc = slot.inc;
        self.schedule(
            d,
            Ev::SyncEnd {
                id,
                inc,
                sizes,
                jobs,
            },
        );
    }

    /// The fsync completed: the messages that waited go out and the peers hear it.
    fn sync_end(&mut self, id: u64, sizes: Option<WalSizes>, jobs: Vec<SyncJob>) {
        if let Some(s) = sizes {
            self.slot(id).disk.synced(s);
        }
        let mut readies = Vec::new();
        let mut msgs = Vec::new();
        for j in jobs {
            readies.extend(j.readies);
            msgs.extend(j.msgs);
        }
        self.send(id, msgs);
        if let Some(n) = self.slot(id).node.as_mut() {
            n.persisted(readies);
        }
        self.wake(id);
        self.slot(id).syncing = false;
        self.start_sync(id);
    }

    /// After a round of node `id`: its removed peers stop, its state machines' reports and
    /// its clients' answers are checked, and every peer's invariants.
    fn check_node(&mut self, id: u64) -> Result<(), Failure> {
        let mut notes = Vec::new();
        let mut errs = Vec::new();
        let mut applied = Vec::new();
        let node = self.slots[(id - 1) as usize].node.as_ref();
        let Some(node) = node else {
            return Ok(());
        };
        let mut gone = Vec::new();
        for (&g, p) in &node.peers {
            if let Err(e) = self.checker.peer(id, p) {
                errs.push(e);
            }
            let evs = std::mem::take(&mut *node.events[&g].lock().expect("events lock"));
            for ev in evs {
                let term = match &ev {
                    SmEvent::Applied { index, cmds, .. } => {
                        applied.extend(cmds.iter().filter_map(|c| cmd_number(c)).map(|c| (c, g, *index)));
                        p.raw().raft.raft_log.term(*index).ok()
                    }
                    SmEvent::Restored { .. } => {
                        self.stats.snapshots_restored += 1;
                        None
                    }
                };
                if let Err(e) = self.checker.sm_event(id, g, &ev, term) {
                    errs.push(e);
                }
            }
            let r = &p.raw().raft;
            if r.state == raft::StateRole::Leader
                && self.leaders_noted.get(&g) != Some(&(r.term, id))
            {
                self.leaders_noted.insert(g, (r.term, id));
                notes.push(format!("n{id} leads group {g} in term {}", r.term));
            }
            if p.status().removed.load(std::sync::atomic::Ordering::Acquire) {
                gone.push(g);
            }
        }
        match self.clients.poll(id, Some(node)) {
            Ok(n) => notes.extend(n),
            Err(e) => errs.push(e),
        }
        for n in notes {
            self.note(n);
        }
        for (c, g, index) in applied {
            if let Err(e) = self.clients.applied(c, g, index) {
                errs.push(e);
            }
            if self.heal_cmd.is_some_and(|h| c >= h) {
                self.progressed.insert(g);
            }
        }
        for g in gone {
            self.note(format!("n{id} applied its own removal from group {g}: its peer stops"));
            if let Some(n) = self.slot(id).node.as_mut() {
                n.drop_group(g);
            }
            self.member_left(g, id);
        }
        if let Some(e) = errs.into_iter().next().or(self.violation.take()) {
            return Err(self.fail(e));
        }
        Ok(())
    }
}
