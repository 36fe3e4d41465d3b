//! One simulated node: the REAL `raft_node::peer::Peer`s of its groups (each with the list
//! state machine and its own `RocksStorage` keys in the node's one RocksDB), driven in
//! rounds exactly as `raft_node::driver` drives them — dispatch the inbox, `set_now`,
//! `flush`, `tick` when due, `collect_ready` of every active peer into ONE `WriteBatch`,
//! send the send-now messages, write, `finish_ready` into a second batch, write it,
//! `finish_light`, `maybe_snapshot`, `take_effects` — except that the round's outputs
//! (messages, the round's log sync job, snapshot tasks, removal notices) are handed back
//! to the simulation as a [`RoundOut`] instead of going to threads and sockets.
//!
//! The only thing the simulation adds is determinism: raft-rs draws its randomized
//! election timeout from `thread_rng`, so after every round each peer whose term, role or
//! leader changed gets one drawn from the node's seeded RNG ([`Peer::set_election_timeout`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft::StateRole;
use raft_node::peer::{Peer, SnapshotTask};
use raft_node::{group_snap_dir, Msg, NodeConfig, NodeError};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rocksdb::{WriteBatch, WriteOptions, DB};

use super::disk::Disk;
use super::slots::{initial_owned, Claims};
use super::sm::{Hooks, ListSm, Out, SmEvents};

/// Virtual milliseconds per raft tick.
pub const TICK_MS: u64 = 100;
pub const ELECTION_TICK: usize = 10;
pub const HEARTBEAT_TICK: usize = 2;

/// A group message of this node: (group, message).
pub type GroupMsg = (u64, Message);

/// The raft address of node `id` (recorded in address books and conf change contexts).
pub fn addr(id: u64) -> String {
    format!("10.0.0.{id}:7000")
}

/// A deliberately broken driver (env `SIM_MUTANT`), to check that the simulation catches
/// such bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// `early-ack`: the messages that must wait for the log sync are sent at once.
    EarlyAck,
    /// `early-persist`: the peers are told their Readies are durable in the round that
    /// produced them, before the log sync.
    EarlyPersist,
    /// `skip-light-write`: the round's second batch (the light Readies' applies and commit
    /// index) is never written.
    SkipLightWrite,
    /// `no-fsync`: the log sync thread reports Readies durable without syncing the WAL.
    NoFsync,
    /// `slot-keep-serving`: a group that applies a REMOVE keeps serving the slot
    /// (`sim/sm.rs`).
    SlotKeepServing,
    /// `slot-early-add`: a migration proposes the target's ADD together with the source's
    /// REMOVE, without waiting for the REMOVE to commit (`sim/migrate.rs`), and an ADD does
    /// not wait for the node's source replica either (`sim/sm.rs`).
    SlotEarlyAdd,
}

impl Mutant {
    pub fn from_env() -> Option<Self> {
        match std::env::var("SIM_MUTANT").ok()?.as_str() {
            "early-ack" => Some(Mutant::EarlyAck),
            "early-persist" => Some(Mutant::EarlyPersist),
            "skip-light-write" => Some(Mutant::SkipLightWrite),
            "no-fsync" => Some(Mutant::NoFsync),
            "slot-keep-serving" => Some(Mutant::SlotKeepServing),
            "slot-early-add" => Some(Mutant::SlotEarlyAdd),
            other => panic!(
                "unknown SIM_MUTANT {other:?} (early-ack, early-persist, skip-light-write, no-fsync, slot-keep-serving, slot-early-add)"
            ),
        }
    }
}

/// One round's Readies waiting for the WAL fsync (the driver's `SyncJob`).
pub struct SyncJob {
    /// (group, Ready number) of each.
    pub readies: Vec<(u64, u64)>,
    /// Some Ready wrote entries or a hard state.
    pub sync: bool,
    /// Messages to send once durable.
    pub msgs: Vec<GroupMsg>,
}

/// What one round asks of the outside world.
#[derive(Default)]
pub struct RoundOut {
    /// Messages to send now.
    pub send: Vec<GroupMsg>,
    /// The round's log sync job.
    pub job: Option<SyncJob>,
    /// Removal notices: (group, removed member, notice).
    pub notices: Vec<(u64, u64, Message)>,
    /// Members that left a group: (group, member).
    pub left: Vec<(u64, u64)>,
    /// Snapshot files to write in the background: (group, task).
    pub snapshots: Vec<(u64, SnapshotTask)>,
    /// Something is left for another round at once (a mutant's early reports).
    pub again: bool,
}

/// How a node is opened.
pub struct NodeSpec {
    pub id: u64,
    /// The groups it hosts, each with its founding voters (empty when it joined later).
    pub groups: Vec<(u64, Vec<u64>)>,
    /// The founding members (their addresses are "given on the command line").
    pub founders: Vec<u64>,
    /// `NodeConfig::snapshot_entries`.
    pub snapshot_entries: u64,
    /// Seeds the read contexts and the election timeouts.
    pub seed: u64,
    /// Every group of the run, in the order the initial slots are dealt to them.
    pub all_groups: Vec<u64>,
    /// Writes carry slots (`sim/slots.rs`); false: the slotless runs.
    pub slot_model: bool,
    /// The deliberate bug of the run, if any.
    pub mutant: Option<Mutant>,
}

pub struct SimNode {
    pub id: u64,
    pub peers: BTreeMap<u64, Peer<ListSm>>,
    /// Each group's state machine side channel.
    pub events: BTreeMap<u64, SmEvents>,
    pub hooks: Arc<Hooks>,
    /// The node's registry of slot claims (shared by its state machines).
    claims: Claims,
    db: Arc<DB>,
    disk: Disk,
    inbox: Vec<(u64, Msg<Out>)>,
    persisted: Vec<(u64, u64)>,
    tick_due: bool,
    /// Peers that saw an event since the last round.
    active: BTreeSet<u64>,
    rng: ChaCha8Rng,
    /// Per group: (term, role, leader) when its election timeout was last drawn.
    seen: BTreeMap<u64, (u64, StateRole, u64)>,
    mutant: Option<Mutant>,
    /// The peers the last round served (sorted).
    pub touched: Vec<u64>,
    /// After a round, look only at the peers it served (the measurement mode's
    /// shortcut: the others did not change).
    pub only_touched: bool,
}

impl SimNode {
    /// Opens the node's peers on `db` (as `raft_node::driver::spawn` does), at `now`.
    pub fn open(
        spec: &NodeSpec,
        db: Arc<DB>,
        disk: Disk,
        logger: &slog::Logger,
        now: (Instant, i64),
    ) -> Result<Self, String> {
        let mutant = spec.mutant;
        let hooks = Arc::new(Hooks {
            keep_serving: mutant == Some(Mutant::SlotKeepServing),
            add_never_waits: mutant == Some(Mutant::SlotEarlyAdd),
            ..Default::default()
        });
        let claims = Claims::default();
        let mut peers = BTreeMap::new();
        let mut events = BTreeMap::new();
        for (g, voters) in &spec.groups {
            // The founding voters' addresses are "given on the command line" (the founders,
            // or the few the measurement mode placed the group on); a node that joined
            // later knows the founders'.
            let known = if voters.is_empty() {
                &spec.founders
            } else {
                voters
            };
            let peer_addrs: HashMap<u64, String> = known.iter().map(|&f| (f, addr(f))).collect();
            let cfg = NodeConfig {
                id: spec.id,
                group_id: *g,
                voters: voters.clone(),
                tick: Duration::from_millis(TICK_MS),
                election_tick: ELECTION_TICK,
                heartbeat_tick: HEARTBEAT_TICK,
                addr: addr(spec.id),
                peers: peer_addrs,
                snap_dir: group_snap_dir(&disk.snap_root(), *g),
                snapshot_entries: spec.snapshot_entries,
                ..Default::default()
            };
            let ev = SmEvents::default();
            let initial = initial_owned(&spec.all_groups, *g, spec.slot_model);
            let sm = ListSm::load(
                db.clone(),
                *g,
                ev.clone(),
                hooks.clone(),
                claims.clone(),
                initial,
            );
            // As the driver: the process nonce mixed with the group.
            let nonce = spec.seed ^ g.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut p = Peer::open(cfg, db.clone(), sm, nonce, logger)
                .map_err(|e| format!("n{} group {g}: open: {e}", spec.id))?;
            // Wall-clock apply budgets would make a seed's replay depend on the host.
            p.set_apply_budget(None);
            // The addresses known at start (the driver hands them to the transport).
            drop(p.take_effects());
            p.set_now(now.0, now.1);
            peers.insert(*g, p);
            events.insert(*g, ev);
        }
        let mut n = SimNode {
            id: spec.id,
            peers,
            events,
            hooks,
            claims,
            db,
            disk,
            inbox: Vec::new(),
            persisted: Vec::new(),
            tick_due: false,
            active: BTreeSet::new(),
            rng: rand::SeedableRng::seed_from_u64(spec.seed),
            seen: BTreeMap::new(),
            mutant,
            touched: Vec::new(),
            only_touched: false,
        };
        n.observe();
        Ok(n)
    }

    /// A message for one group arrived in the driver's inbox.
    pub fn push(&mut self, group: u64, m: Msg<Out>) {
        self.inbox.push((group, m));
    }

    /// The sync thread reports these Readies durable.
    pub fn persisted(&mut self, readies: Vec<(u64, u64)>) {
        self.persisted.extend(readies);
    }

    /// The tick is due.
    pub fn tick_due(&mut self) {
        self.tick_due = true;
    }

    /// One driver round at `now` (monotonic, wall ms). A [`super::sm::CrashPoint`] panic
    /// may come out of it (a crash inside a snapshot restore): the node is then dead.
    pub fn round(&mut self, now: Instant, wall: i64) -> RoundOut {
        let mut out = RoundOut::default();
        // 1. receive
        for (g, m) in std::mem::take(&mut self.inbox) {
            self.dispatch(g, m);
        }
        for (g, n) in std::mem::take(&mut self.persisted) {
            if let Some(p) = self.peers.get_mut(&g) {
                p.on_persisted(n);
                self.active.insert(g);
            }
        }
        // 3. tick (before batching, so a peer that ticks also flushes).
        let tick = std::mem::take(&mut self.tick_due);
        if tick {
            self.active.extend(self.peers.keys().copied());
        }
        let active: Vec<u64> = std::mem::take(&mut self.active).into_iter().collect();
        for g in &active {
            if let Some(p) = self.peers.get_mut(g) {
                p.set_now(now, wall);
                // 2. batch
                p.flush();
                if tick {
                    p.tick();
                }
            }
        }
        self.ready_round(&active, &mut out);
        // 7. snapshots
        for g in &active {
            if let Some(p) = self.peers.get_mut(g) {
                p.maybe_snapshot();
            }
        }
        self.carry_out(&active, &mut out);
        self.touched = active;
        self.observe();
        out
    }

    /// Steps 4-6 of the round: collect, write, finish, write, finish light.
    fn ready_round(&mut self, active: &[u64], out: &mut RoundOut) {
        // 4. collect
        let mut wb = WriteBatch::default();
        let mut inflight = Vec::new();
        for g in active {
            if let Some(p) = self.peers.get_mut(g) {
                let restored = p.status().snapshots_restored.load(Ordering::Relaxed);
                if let Some(f) = p.collect_ready(&mut wb) {
                    let now = p.status().snapshots_restored.load(Ordering::Relaxed);
                    inflight.push((*g, f, now != restored));
                }
            }
        }
        if inflight.is_empty() {
            return;
        }
        for g in active {
            if let Some(p) = self.peers.get_mut(g) {
                out.send
                    .extend(p.take_messages().into_iter().map(|m| (*g, m)));
            }
        }
        // 5. write
        self.write(wb);
        // 6. finish
        let mut wb2 = WriteBatch::default();
        let mut light = Vec::new();
        for (g, f, restored) in inflight {
            if let Some(p) = self.peers.get_mut(&g) {
                let l = p.finish_ready(f, &mut wb2);
                if restored {
                    // A Ready that restored a snapshot ends with a WAL sync of everything
                    // written so far (`finish_ready`'s `sync_wal`).
                    self.disk.sync_now();
                }
                if let Some(l) = l {
                    light.push((g, l));
                }
            }
        }
        if self.mutant != Some(Mutant::SkipLightWrite) {
            self.write(wb2);
        }
        for (g, l) in light {
            if let Some(p) = self.peers.get_mut(&g) {
                p.finish_light(l);
            }
        }
    }

    /// Takes what the round's peers asked for (the driver's `carry_out`).
    fn carry_out(&mut self, active: &[u64], out: &mut RoundOut) {
        let mut job = SyncJob {
            readies: Vec::new(),
            sync: false,
            msgs: Vec::new(),
        };
        for g in active {
            let Some(p) = self.peers.get_mut(g) else {
                continue;
            };
            let fx = p.take_effects();
            out.send.extend(fx.send.into_iter().map(|m| (*g, m)));
            for j in fx.persist {
                job.readies.push((*g, j.number));
                job.sync |= j.sync;
                job.msgs.extend(j.msgs.into_iter().map(|m| (*g, m)));
            }
            for (id, a) in fx.peers {
                if a.is_none() {
                    out.left.push((*g, id));
                }
            }
            for (id, notice) in fx.removed {
                out.notices.push((*g, id, notice));
            }
            if let Some(task) = fx.snapshot {
                out.snapshots.push((*g, task));
            }
        }
        if job.readies.is_empty() {
            return;
        }
        match self.mutant {
            Some(Mutant::EarlyAck) => out.send.append(&mut job.msgs),
            Some(Mutant::EarlyPersist) => {
                self.persisted.append(&mut job.readies);
                out.again = true;
            }
            Some(Mutant::NoFsync) => job.sync = false,
            _ => {}
        }
        out.job = Some(job);
    }

    /// Hands one inbox message to its peer (the driver's `dispatch`).
    fn dispatch(&mut self, g: u64, m: Msg<Out>) {
        if let Some(p) = self.peers.get_mut(&g) {
            p.handle(m);
            self.active.insert(g);
            return;
        }
        // A group this node does not host.
        let why = || NodeError::Refused(format!("group {g} is not hosted here"));
        match m {
            Msg::Propose { reply, .. } => drop(reply.send(Err(why()))),
            Msg::Read { reply } => drop(reply.send(Err(why()))),
            Msg::Snapshot { reply } => drop(reply.send(Err(why()))),
            Msg::ConfChange { reply, .. } => drop(reply.send(Err(why()))),
            _ => {}
        }
    }

    /// Stops hosting group `g` (it applied its own removal, or an operator stopped it).
    pub fn drop_group(&mut self, g: u64) {
        if let Some(mut p) = self.peers.remove(&g) {
            p.stop();
        }
        self.claims.forget(g);
        self.events.remove(&g);
        self.seen.remove(&g);
        self.active.remove(&g);
    }

    fn write(&self, wb: WriteBatch) {
        if !wb.is_empty() {
            self.db
                .write_opt(wb, &WriteOptions::default())
                .expect("simulated node write");
        }
    }

    /// Draws a new election timeout for every peer whose term, role or leader changed
    /// (raft-rs re-draws it from `thread_rng` on each of those).
    fn observe(&mut self) {
        let (only, touched) = (self.only_touched, &self.touched);
        for (g, p) in self.peers.iter_mut() {
            if only && touched.binary_search(g).is_err() {
                continue;
            }
            let r = &p.raw().raft;
            let now = (r.term, r.state, r.leader_id);
            if self.seen.get(g) != Some(&now) {
                self.seen.insert(*g, now);
                let lo = r.election_timeout();
                let t = self.rng.gen_range(lo..2 * lo);
                p.set_election_timeout(t);
            }
        }
    }

    /// True when the peer of group `g` leads.
    pub fn leads(&self, g: u64) -> bool {
        self.peers
            .get(&g)
            .is_some_and(|p| p.raw().raft.state == StateRole::Leader)
    }
}
