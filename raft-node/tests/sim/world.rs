//! The simulation driver: N nodes in one thread, each hosting several raft groups, over a
//! simulated network and disk, on a virtual clock, all randomness from one seeded RNG.
//! Events (message deliveries, ticks, driver rounds, log sync completions, snapshot file
//! writing, faults, client calls) sit in a queue ordered by (virtual time, sequence
//! number). What arrives for a node goes into its inbox and wakes its driver, whose round
//! ([`SimNode::round`]) runs the real peers; what the round produced is carried out here
//! ([`Sim::after_round`]) and the invariants are checked. A run is a chaos phase (drops,
//! duplicates, delays/reordering, partitions, crashes and power losses, compactions,
//! membership changes, leadership transfers, slot migrations) followed by a healed phase
//! that must make progress in every group and converge.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft_node::peer::SnapshotTask;
use raft_node::Msg;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rocksdb::DB;

use super::check::Checker;
use super::client::Clients;
use super::disk::{data_root, Disk, WalSizes};
use super::log::CritLines;
use super::migrate::Mover;
use super::node::{Mutant, SimNode, SyncJob, TICK_MS};
use super::params::Params;
use super::report::{Failure, Stats};
use super::sm::Out;

/// Most nodes a run may have (founding members plus added ones; ids are not reused).
pub const MAX_NODES: usize = 8;
/// A run taking more steps than this is reported (a message storm or a loop at one instant).
const MAX_STEPS: u64 = 2_000_000;
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
    /// A look at the slot migration under way (`sim/migrate.rs`).
    Migrate,
    /// The measurement mode's write load proposes its next writes ([`super::scale`]).
    Load,
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
    pub db: Option<Arc<DB>>,
    /// Incarnation: bumped by every crash, so that events of a dead process are ignored.
    pub inc: u64,
    pub disk: Disk,
    /// A founding member (opens its groups with the founding voters).
    pub founding: bool,
    /// Removed from every group: stopped for good (ids are never reused).
    pub retired: bool,
    /// The groups it hosts (all but those it was removed from).
    pub groups: BTreeSet<u64>,
    /// A round is scheduled.
    pub round_pending: bool,
    /// Sync jobs waiting for the sync thread, which is busy with an fsync.
    pub sync_queue: Vec<SyncJob>,
    pub syncing: bool,
    /// Snapshot tasks waiting for their thread to run.
    pub tasks: BTreeMap<u64, (u64, SnapshotTask)>,
    /// How far this node's wall clock is off (ms).
    pub skew: i64,
    /// Removed (with the database and snapshots in it) when the run ends.
    pub _dir: tempfile::TempDir,
}

pub struct Sim {
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub p: Params,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    pub slots: Vec<Slot>,
    pub founders: Vec<u64>,
    /// Blocked directed links (from, to).
    pub blocked: BTreeSet<(u64, u64)>,
    pub checker: Checker,
    pub clients: Clients,
    pub trace: VecDeque<String>,
    pub print_trace: bool,
    pub chaos: bool,
    pub proposing: bool,
    /// First command number proposed after healing.
    pub heal_cmd: Option<u64>,
    /// Groups in which a command proposed after healing was applied.
    pub progressed: BTreeSet<u64>,
    /// (node, group): the node's removal from the group was applied somewhere.
    pub removed: BTreeSet<(u64, u64)>,
    /// Per group: the (term, leader) last noted in the trace.
    pub leaders_noted: BTreeMap<u64, (u64, u64)>,
    pub stats: Stats,
    /// An invariant violated while carrying out effects (reported after the step).
    pub violation: Option<String>,
    /// Virtual time 0.
    pub base: Instant,
    pub next_task: u64,
    /// The nodes' critical log records.
    pub crit: CritLines,
    /// Most steps before a run is reported as a storm (the measurement mode raises it).
    pub max_steps: u64,
    /// Voters of each group that not every founder hosts (the measurement mode's
    /// placement; empty: every founder hosts every group).
    pub placement: BTreeMap<u64, Vec<u64>>,
    /// The measurement mode's traffic counters and write load (none in the checking runs).
    pub scale: Option<super::scale::ScaleState>,
    /// The slot model's migrations (off: the slotless runs).
    pub mover: Mover,
    /// The deliberate bug of the run (`SIM_MUTANT`, or set by a test).
    pub mutant: Option<Mutant>,
}

impl Sim {
    /// The run of `seed`; `slots`: with the slot model and migrations (without, a seed
    /// replays as before the model existed).
    /// The run of `seed`; `slots`: with the slot model and migrations (without, a seed
    /// replays as before the model existed); `mutant`: a deliberate bug (else
    /// `SIM_MUTANT`'s).
    pub fn with_mutant(
        seed: u64,
        chaos_ms: u64,
        print_trace: bool,
        slots: bool,
        mutant: Option<Mutant>,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let p = Params::draw(&mut rng, chaos_ms);
        let mut sim = Self::with_params(seed, rng, p, print_trace);
        if mutant.is_some() {
            sim.mutant = mutant;
        }
        if slots {
            sim.mover = Mover::new(&sim.p.groups, &mut sim.rng, sim.mutant);
        }
        sim
    }

    /// A run of `p` whose randomness goes on from `rng`.
    pub fn with_params(seed: u64, rng: ChaCha8Rng, p: Params, print_trace: bool) -> Self {
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
            checker: Checker::new(),
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
            crit: CritLines::default(),
            max_steps: MAX_STEPS,
            placement: BTreeMap::new(),
            scale: None,
            mover: Mover::default(),
            mutant: Mutant::from_env(),
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
        let crit = self.crit.lock().map(|c| c.join("; ")).unwrap_or_default();
        if crit.is_empty() {
            self.fail(format!("panic: {msg}"))
        } else {
            self.fail(format!("panic: {msg}; critical log: {crit}"))
        }
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
    pub fn clock(&self, id: u64) -> (Instant, i64) {
        let skew = self.slots[(id - 1) as usize].skew;
        (
            self.base + Duration::from_millis(self.now),
            WALL_BASE_MS + self.now as i64 + skew,
        )
    }

    /// Hands `msg` to the inbox of node `id`'s driver.
    pub fn post(&mut self, id: u64, group: u64, msg: Msg<Out>) {
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

    /// Pops and handles one event.
    pub fn step(&mut self) -> Result<(), Failure> {
        let Some(Reverse(q)) = self.queue.pop() else {
            return Err(self.fail("event queue ran dry"));
        };
        self.now = q.at;
        self.stats.steps += 1;
        if self.stats.steps > self.max_steps {
            let max = self.max_steps;
            return Err(self.fail(format!("more than {max} steps: a message storm?")));
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
            Ev::Local {
                id,
                inc,
                group,
                msg,
            } => {
                if self.current(id, inc) {
                    self.post(id, group, msg);
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
                    self.snapshot_task(id, key);
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
            Ev::Propose { left, to } => self.client_propose(left, to),
            Ev::Load => self.load(),
            Ev::Migrate => self.migrate_tick(),
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

    /// A snapshot thread runs: writes the files, reports to the driver.
    fn snapshot_task(&mut self, id: u64, key: u64) {
        if let Some((g, task)) = self.slot(id).tasks.remove(&key) {
            let r = task();
            if r.is_ok() {
                self.stats.compactions += 1;
            }
            self.post(id, g, Msg::SnapshotGenerated(r));
        }
    }

    /// A client proposes; a burst goes on at once, one round later, to the same peer.
    fn client_propose(&mut self, left: u64, to: Option<(u64, u64)>) {
        if !self.proposing {
            return;
        }
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
