//! One Raft group's logic on this node, sans IO: its `RawNode`, the proposals and reads
//! waiting on it, membership, snapshot decisions and the cluster identity guard.
//!
//! A `Peer` owns no thread, channel or clock. The driver ([`crate::driver`]) hands it
//! events ([`Peer::handle`]), the time ([`Peer::set_now`]) and ticks ([`Peer::tick`]), asks it
//! to batch what it queued ([`Peer::flush`]) and to stage its Ready into the round's one
//! `WriteBatch` ([`Peer::collect_ready`], then [`Peer::finish_ready`] once written); what
//! the peer wants done outside — messages to send, Readies to make durable, addresses
//! learnt, snapshot files to write — accumulates in its [`Effects`], which the driver takes
//! after each step. The simulation (`tests/sim`) drives the same code on simulated time.
//!
//! Storage writes outside the round's batch happen only on rare paths that must be durable
//! at once (restoring a received snapshot, recording a generated one). A restore first
//! writes the round's batch as staged so far, so every apply staged before it lands before
//! it, never on top of what it ingested.

mod apply;
mod backlog;
mod hibernate;
mod identity;
mod membership;
mod propose;
mod reads;
mod ready;
mod snapshot;
mod snapshot_files;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::{Entry, Message, Snapshot};
use raft::{Config, RawNode, ReadOnlyOption};
use rocksdb::{WriteBatch, WriteOptions, DB};
use slog::{crit, debug, info, o, warn, Logger};

use crate::clock::{load_stamp, StampClock};
use crate::node::{die, Msg, NodeConfig, NodeError, Reply, StateMachine, MAX_UNCOMMITTED_BYTES};
use crate::snap;
use crate::status::Status;
use crate::storage::RocksStorage;
use identity::Identity;

pub use backlog::{BACKLOG_MAX_BYTES, BACKLOG_MAX_ENTRIES};
pub use ready::{InFlight, LightApplied};

/// A Ready whose log writes must become durable before its messages go out.
pub struct PersistJob {
    /// The Ready's number (for `on_persist_ready`).
    pub number: u64,
    /// The Ready wrote entries or a hard state that need a WAL fsync.
    pub sync: bool,
    /// Messages to send once durable.
    pub msgs: Vec<Message>,
}

/// Writes a captured snapshot's files and describes the result (run off the driver).
pub type SnapshotTask = Box<dyn FnOnce() -> Result<Snapshot, String> + Send>;

/// What a peer asks the outside world to do (taken by the driver after each step).
#[derive(Default)]
pub struct Effects {
    /// Raft messages to send now.
    pub send: Vec<Message>,
    /// Readies waiting for the WAL fsync (then their messages go out).
    pub persist: Vec<PersistJob>,
    /// Member addresses learnt (`Some`) or members that left this group (`None`).
    pub peers: Vec<(u64, Option<String>)>,
    /// Removal notices for members this group removed.
    pub removed: Vec<(u64, Message)>,
    /// A snapshot to write in the background; its result comes back as
    /// [`Msg::SnapshotGenerated`].
    pub snapshot: Option<SnapshotTask>,
}

impl Effects {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.send.is_empty()
            && self.persist.is_empty()
            && self.peers.is_empty()
            && self.removed.is_empty()
            && self.snapshot.is_none()
    }
}

/// Most commands the leader puts into one log entry (one proposal's commands always share
/// an entry, however many): entries are the unit of the apply budget (see
/// [`Peer::set_apply_budget`]), so this bounds how long one entry of slow commands holds
/// the driver thread.
pub const MAX_ENTRY_COMMANDS: usize = 64;

/// Commands queued for the next entry, with their proposer's reply channel.
type Proposal<O> = (Vec<Vec<u8>>, Reply<Vec<O>>);

/// Proposals waiting for their entry to apply.
struct PendingEntry<O> {
    term: u64,
    /// Each proposer with how many of the entry's commands are its own.
    waiters: Vec<(usize, Reply<Vec<O>>)>,
}

/// Reads that share one ReadIndex request.
struct ReadBatch {
    waiters: Vec<Reply<()>>,
    issued: Instant,
    index: Option<u64>,
}

/// Replies of applied entries: (index, term, outputs).
type Deliveries<O> = Vec<(u64, u64, Vec<O>)>;

/// One group's peer.
pub struct Peer<S: StateMachine> {
    cfg: NodeConfig,
    db: Arc<DB>,
    raw: RawNode<RocksStorage>,
    sm: S,
    status: Arc<Status>,
    logger: Logger,
    applied: u64,
    /// The driver's time for this step.
    now: Instant,
    now_ms: i64,
    /// Cluster time: the last stamp seen, and the leader's stamping rule.
    clock: StampClock,
    /// The term whose leader (this node) has seen the stamps of its log's unapplied tail.
    stamps_seen_term: u64,
    /// Proposals queued since the last flush.
    proposals: Vec<Proposal<S::Output>>,
    proposal_bytes: usize,
    /// Commands in `proposals`.
    proposal_cmds: usize,
    /// Committed entries handed out by raft-rs and not applied yet (over the apply budget,
    /// or behind an entry that waits), in memory: a bounded window from the next entry to
    /// apply; the rest up to `handed` is read from the log again (see [`backlog`]).
    backlog: VecDeque<Entry>,
    /// Bytes of the entries in `backlog`.
    backlog_bytes: usize,
    /// The last committed index raft-rs handed out.
    handed: u64,
    /// Most time one round spends applying (at least one entry is applied per round).
    apply_budget: Option<Duration>,
    /// When this round's applies must stop (set by its first apply).
    apply_deadline: Option<Instant>,
    /// The backlog's first entry must wait for another group (see `apply.rs`): retried on
    /// ticks, not at once.
    apply_blocked: bool,
    /// Index of the last entry logged as waiting.
    waited_at: u64,
    /// The waiting entry needs a snapshot: ask for one at the next tick.
    snapshot_wanted: bool,
    /// Proposed entries by index.
    pending: BTreeMap<u64, PendingEntry<S::Output>>,
    /// Reads queued since the last flush.
    reads: Vec<Reply<()>>,
    /// Ordered, so retries go out in the same order on every run (the simulation replays
    /// a seed exactly).
    read_batches: BTreeMap<u64, ReadBatch>,
    next_read_id: u64,
    /// Random per process: with the node id and group, makes every ReadIndex context
    /// unique across nodes, groups and restarts (see [`Peer::read_ctx`]).
    read_nonce: u64,
    /// Counts ReadIndex requests sent, so a retried batch gets a fresh context.
    read_attempt: u64,
    /// Readies handed over for persistence and not yet reported durable.
    unpersisted: u64,
    /// Index of the snapshot being generated.
    generating: Option<(u64, Instant)>,
    /// The job generating is making the files of the pending local snapshot (not a new
    /// snapshot).
    making_files: bool,
    /// Operators waiting for a snapshot.
    snap_waiters: Vec<Reply<u64>>,
    /// Bytes of entries applied since the last snapshot.
    bytes_since_snapshot: u64,
    /// The proposed membership change (index, term) and who waits for it.
    pending_conf: Option<(u64, u64, Reply<raft::eraftpb::ConfState>)>,
    /// Membership changed since it was last published.
    members_dirty: bool,
    /// The cluster identity and this node's guard (see [`identity`]).
    identity: Identity,
    /// What the driver must carry out.
    fx: Effects,
    /// The group is quiet and this peer stopped ticking (see [`hibernate`]).
    hibernating: bool,
    /// Consecutive ticks the leader found its group quiet.
    quiet_ticks: usize,
}

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(Box::new(e)))
}

impl<S: StateMachine> Peer<S> {
    /// Opens the group's peer on `db` (redoing an interrupted snapshot restore first).
    /// Known member addresses are in the first [`Effects`].
    pub fn open(
        cfg: NodeConfig,
        db: Arc<DB>,
        mut sm: S,
        nonce: u64,
        logger: &Logger,
    ) -> Result<Self, raft::Error> {
        let logger = logger.new(o!("group" => cfg.group_id));
        let budget = cfg
            .log_cache
            .clone()
            .unwrap_or_else(crate::entry_cache::CacheBudget::default_bounds);
        let mut storage = RocksStorage::open_cached(db.clone(), cfg.group_id, &cfg.voters, budget)?;
        let identity = Identity::load(&db, cfg.group_id, storage.founded_now())
            .map_err(raft::Error::ConfigInvalid)?;
        std::fs::create_dir_all(&cfg.snap_dir).map_err(raft::Error::Io)?;
        if let Some(dir) = storage.restoring().map(str::to_string) {
            // A crash interrupted restoring a received snapshot: redo it from its files.
            info!(logger, "redoing interrupted snapshot restore"; "dir" => &dir);
            sm.snapshot_restore(&cfg.snap_dir.join(&dir))
                .map_err(|e| raft::Error::Store(raft::StorageError::Other(e.into())))?;
            let mut wb = WriteBatch::default();
            storage.stage_restored(&mut wb);
            db.write(wb).map_err(store_err)?;
        }
        let mut wb = WriteBatch::default();
        let mut peers: Vec<_> = cfg.peers.iter().collect();
        if !cfg.addr.is_empty() {
            peers.push((&cfg.id, &cfg.addr));
        }
        for (&id, addr) in peers {
            if storage.peers().get(&id) != Some(addr) {
                storage.stage_peer(&mut wb, id, addr);
            }
        }
        db.write(wb).map_err(store_err)?;
        let trunc = storage.truncated_index();
        let applied = sm.applied_index().max(trunc);
        if applied == trunc && sm.applied_index() < trunc && trunc > 1 {
            return Err(raft::Error::Store(raft::StorageError::Other(
                format!(
                    "state machine applied index {} is behind the compacted log ({trunc})",
                    sm.applied_index()
                )
                .into(),
            )));
        }
        let keep: Vec<String> = storage.local_snapshot_name().into_iter().collect();
        snap::remove_stale(&cfg.snap_dir, &keep, u64::MAX, false);
        snap::remove_old_receives(&cfg.snap_dir, trunc);
        let snapshot_index = storage
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        let mut fx = Effects::default();
        for (&id, addr) in storage.peers() {
            if id != cfg.id {
                fx.peers.push((id, Some(addr.clone())));
            }
        }
        let raw = RawNode::new(&raft_config(&cfg, applied), storage, &logger)?;
        let status = Arc::new(Status {
            id: cfg.id,
            group: cfg.group_id,
            ..Default::default()
        });
        status
            .snapshot_index
            .store(snapshot_index, Ordering::Release);
        status.applied.store(applied, Ordering::Release);
        let clock = StampClock::new(sm.last_time_ms().max(load_stamp(&db, cfg.group_id)));
        clock.publish(&status);
        if cfg.lease_reads {
            warn!(logger, "--read-mode lease is served as safe: raft-rs lease reads check no lease, so every read confirms leadership with a quorum (ReadIndex)");
        }
        info!(logger, "raft peer starting"; "applied" => applied, "voters" => ?cfg.voters);
        let cfg_tick = cfg.tick;
        let mut peer = Peer {
            cfg,
            db,
            raw,
            sm,
            status,
            logger,
            applied,
            now: Instant::now(),
            now_ms: crate::node::wall_ms(),
            clock,
            stamps_seen_term: 0,
            proposals: Vec::new(),
            proposal_bytes: 0,
            proposal_cmds: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            handed: applied,
            apply_budget: Some(default_apply_budget(cfg_tick)),
            apply_deadline: None,
            apply_blocked: false,
            waited_at: 0,
            snapshot_wanted: false,
            pending: BTreeMap::new(),
            reads: Vec::new(),
            read_batches: BTreeMap::new(),
            next_read_id: 1,
            read_nonce: nonce,
            read_attempt: 0,
            unpersisted: 0,
            generating: None,
            making_files: false,
            snap_waiters: Vec::new(),
            bytes_since_snapshot: 0,
            pending_conf: None,
            members_dirty: false,
            identity,
            fx,
            hibernating: false,
            quiet_ticks: 0,
        };
        peer.publish_members();
        peer.publish();
        Ok(peer)
    }

    /// The group's id.
    pub fn group(&self) -> u64 {
        self.cfg.group_id
    }

    /// The live status this peer publishes.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// The raft-rs node (read-only: for tests and the simulation's checks).
    pub fn raw(&self) -> &RawNode<RocksStorage> {
        &self.raw
    }

    /// The state machine (read-only).
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// Last applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Replaces raft-rs's randomized election timeout (in ticks, for the current term and
    /// role). raft-rs draws it from `thread_rng` whenever the term or role changes; the
    /// simulation draws it from its seed instead, so that a seed replays exactly.
    pub fn set_election_timeout(&mut self, ticks: usize) {
        self.raw.raft.set_randomized_election_timeout(ticks);
    }

    /// Sets the time of the step about to run (monotonic and wall clock, ms). A new step
    /// starts a new apply budget.
    pub fn set_now(&mut self, now: Instant, wall_ms: i64) {
        self.now = now;
        self.now_ms = wall_ms;
        self.apply_deadline = None;
    }

    /// Bounds the time one round spends applying committed entries (`None`: no bound).
    /// Entries over the budget wait in a backlog for the next rounds ([`Peer::has_backlog`]),
    /// so a round of slow commands cannot delay ticks and message handling past the
    /// election timeout. The default is a quarter of the tick. The budget is wall-clock
    /// time: the simulation turns it off to replay a seed exactly.
    pub fn set_apply_budget(&mut self, budget: Option<Duration>) {
        self.apply_budget = budget;
    }

    /// Committed entries wait to be applied (handed out by raft-rs, or still held by it:
    /// it hands out a bounded amount per Ready, see [`backlog`]): the driver must serve
    /// this peer again soon (without waiting for an event). Not while the next entry waits
    /// for another group (retried on ticks).
    pub fn has_backlog(&self) -> bool {
        !self.apply_blocked && (self.backlog_pending() || self.raft_holds_committed())
    }

    /// The backlog's first entry waits for another group (or a snapshot): the driver
    /// retries it every tick, hibernating or not.
    pub fn apply_waiting(&self) -> bool {
        self.apply_blocked
    }

    /// Takes what the driver must carry out.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.fx)
    }

    /// Takes only the messages that may be sent now.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.fx.send)
    }

    /// Handles one event.
    pub fn handle(&mut self, m: Msg<S::Output>) {
        match &m {
            // Woken in `step`, once the message passed the guard and the filter.
            Msg::Raft(_) => {}
            Msg::SnapshotStatus { .. } | Msg::SnapshotGenerated(_) | Msg::Unreachable(_) => {}
            _ => self.wake(),
        }
        match m {
            Msg::Propose { cmds, reply } => {
                self.proposal_bytes += cmds.iter().map(Vec::len).sum::<usize>();
                self.proposal_cmds += cmds.len();
                self.proposals.push((cmds, reply));
                if self.proposal_bytes >= self.cfg.max_entry_bytes
                    || self.proposal_cmds >= MAX_ENTRY_COMMANDS
                {
                    self.flush_proposals();
                }
            }
            Msg::Read { reply } => self.reads.push(reply),
            Msg::Raft(m) => self.step(*m),
            Msg::Unreachable(id) => self.raw.report_unreachable(id),
            Msg::TransferLeader(id) => self.raw.transfer_leader(id),
            Msg::Snapshot { reply } => {
                if self.generating.is_some() {
                    let _ = reply.send(Err(NodeError::Refused(
                        "a snapshot is already in progress".into(),
                    )));
                } else {
                    self.snap_waiters.push(reply);
                }
            }
            Msg::ConfChange { cc, reply } => self.propose_conf_change(cc, reply),
            Msg::SnapshotStatus { to, ok } => {
                let status = if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Msg::SnapshotGenerated(r) => self.on_snapshot_generated(r),
            Msg::Stop => {}
        }
    }

    /// Steps a peer's raft message, after the identity guard and the message filter.
    fn step(&mut self, m: Message) {
        // The restricted-start guard first: it answers the heartbeats a wiped founder gets
        // (their commit lies beyond its new log) with rejections that make the leader probe
        // back; the filter would drop them silently.
        if self.guard_drops(&m) {
            debug!(self.logger, "guarded founder: message dropped"; "from" => m.from, "type" => ?m.get_msg_type());
        } else if let Err(why) = crate::filter::check(&self.raw.raft, &m) {
            self.status.msgs_filtered.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = self.status.filter_log.check() {
                warn!(self.logger, "dropping raft message before step"; "why" => why, "type" => ?m.get_msg_type(), "from" => m.from, "term" => m.term, "suppressed" => n);
            }
        } else {
            self.wake_for(&m);
            let hibernate = self.is_hibernate_call(&m);
            if let Err(e) = self.raw.step(m) {
                debug!(self.logger, "step failed"; "err" => %e);
            } else if hibernate {
                self.set_hibernating(true);
            }
        }
    }

    /// The Readies of `number` and before are durable.
    pub fn on_persisted(&mut self, number: u64) {
        self.unpersisted = self.unpersisted.saturating_sub(1);
        self.raw.on_persist_ready(number);
    }

    /// Batches what was queued since the last flush: the proposals into one log entry,
    /// the reads into one ReadIndex request.
    pub fn flush(&mut self) {
        self.flush_proposals();
        self.flush_reads();
    }

    /// One raft tick, with the periodic work that rides on it; nothing while hibernating.
    pub fn tick(&mut self) {
        if std::mem::take(&mut self.snapshot_wanted) {
            self.ask_for_snapshot();
        }
        if self.hibernating {
            return;
        }
        self.raw.tick();
        self.retry_reads();
        self.publish_members();
        self.maybe_promote();
        self.maybe_record_identity();
        self.maybe_hibernate();
    }

    /// Fails everything still waiting: the node stops.
    pub fn stop(&mut self) {
        for (_, r) in self.proposals.drain(..) {
            let _ = r.send(Err(NodeError::Stopped));
        }
        for (_, p) in std::mem::take(&mut self.pending) {
            for (_, w) in p.waiters {
                let _ = w.send(Err(NodeError::Stopped));
            }
        }
        if let Some((_, _, w)) = self.pending_conf.take() {
            let _ = w.send(Err(NodeError::Stopped));
        }
        for w in self.snap_waiters.drain(..) {
            let _ = w.send(Err(NodeError::Stopped));
        }
        info!(self.logger, "raft peer stopped");
    }

    fn leader_hint(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != 0 && l != self.cfg.id)
    }

    /// Writes a batch outside the round (rare paths), without sync.
    fn write(&self, wb: WriteBatch) {
        if wb.is_empty() {
            return;
        }
        if let Err(e) = self.db.write_opt(wb, &WriteOptions::default()) {
            crit!(self.logger, "storage write failed, stopping"; "err" => %e);
            die();
        }
    }

    fn sync_wal(&self) {
        if let Err(e) = self.db.flush_wal(true) {
            crit!(self.logger, "raft log sync failed, stopping"; "err" => %e);
            die();
        }
    }

    fn publish(&self) {
        let r = &self.raw.raft;
        self.status.term.store(r.term, Ordering::Release);
        self.status.leader.store(r.leader_id, Ordering::Release);
        self.status
            .commit
            .store(r.raft_log.committed, Ordering::Release);
        self.status
            .last_index
            .store(r.raft_log.last_index(), Ordering::Release);
        self.status
            .first_index
            .store(self.raw.store().truncated_index() + 1, Ordering::Release);
    }
}

/// A quarter of the tick, at least 1 ms: rounds stay short against the heartbeat and
/// election timeouts (several ticks) even with every group of the node applying.
fn default_apply_budget(tick: Duration) -> Duration {
    (tick / 4).max(Duration::from_millis(1))
}

/// raft-rs configuration of a group's peer.
fn raft_config(cfg: &NodeConfig, applied: u64) -> Config {
    Config {
        id: cfg.id,
        election_tick: cfg.election_tick,
        heartbeat_tick: cfg.heartbeat_tick,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        // A leader that cannot replicate stops accepting proposals once this many bytes of
        // entries are uncommitted (raft-rs drops them: certainly not applied) instead of
        // growing its log and memory without bound. Room for a few of the largest entries.
        max_uncommitted_size: MAX_UNCOMMITTED_BYTES,
        // No Ready loads a long committed tail at once (see `backlog`).
        max_committed_size_per_ready: backlog::READY_MAX_COMMITTED_BYTES,
        check_quorum: true,
        pre_vote: true,
        // Never LeaseBased: see `NodeConfig::lease_reads`.
        read_only_option: ReadOnlyOption::Safe,
        ..Default::default()
    }
}
