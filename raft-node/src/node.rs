//! The Raft node: one raft-rs `RawNode` driven by a Ready loop on its own thread.
//!
//! Everything that touches the `RawNode` happens on this thread, in plain ordered steps:
//! 1. wait for the inbox (client proposals, read requests, peer messages) or the next tick;
//! 2. drain the inbox: proposals queued in one iteration become ONE log entry (a
//!    `RaftCommit` stamped with the leader's time), reads queued in one iteration share ONE
//!    ReadIndex request;
//! 3. handle the Ready: send leader messages; write ONE `WriteBatch` holding the applies of
//!    committed entries, the hard state and the new entries, and answer the applied
//!    proposals; hand the Ready to the sync thread, whose ONE WAL fsync covers every Ready
//!    queued since its last one and which then sends the messages that needed persistence
//!    (raft-rs async ready: the loop keeps handling acks during the fsync);
//! 4. answer waiting proposals (matched by index and term) and reads (once applied ≥ their
//!    read index).
//!
//! Snapshots: when the log since the last snapshot passes `snapshot_entries` (or raft needs
//! one for a lagging follower, or an operator asks), the loop captures the state machine at
//! its applied index (a RocksDB snapshot: an instant, it never blocks) and a background
//! thread writes it to files; once they are durable the loop records the snapshot and
//! compacts the log below it. A follower that receives a snapshot (its files already
//! fetched and verified by the transport) replaces its log and store with it.
//!
//! Membership changes are raft-rs conf changes (v2); a new member's address travels in the
//! change's context and is kept in the address book, persisted with the raft state. A
//! learner the leader sees caught up is promoted to voter.
//!
//! A storage error stops the process (fail-stop): a node that cannot persist must not ack.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, Snapshot,
};
use raft::{Config, RawNode, ReadOnlyOption, StateRole};
use rocksdb::{WriteBatch, WriteOptions, DB};
use slog::{crit, debug, info, o, warn, Logger};
use tokio::sync::oneshot;

use crate::clock::{load_stamp, StampClock};
use crate::proto::{PeerAddr, RaftCommit, SnapshotDescriptor};
use crate::snap;
use crate::storage::{conf_contains, RocksStorage};
use identity::{Identity, IDENTITY_CTX};

mod identity;

/// Most bytes of uncommitted entries a leader holds before it refuses proposals
/// (raft-rs `max_uncommitted_size`; at least one entry is always accepted).
pub const MAX_UNCOMMITTED_BYTES: u64 = 128 << 20;

/// How the node is configured.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    pub group_id: u64,
    /// Founding voters (used only when the group's storage is new).
    pub voters: Vec<u64>,
    pub tick: Duration,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Upper bound of one log entry's payload; larger proposal batches are split.
    pub max_entry_bytes: usize,
    /// Asked for lease reads (`--read-mode lease`). Ignored: raft-rs 0.7's `LeaseBased`
    /// read-only option checks no lease at all (a paused leader, a check-quorum step-down
    /// that lags the new election, or a leader transfer each give stale reads), so every
    /// read takes the safe ReadIndex path (a heartbeat round to a quorum per read batch).
    pub lease_reads: bool,
    /// This node's raft address (recorded in the address book of its snapshots).
    pub addr: String,
    /// Addresses given on the command line (founding members); they win over recorded ones.
    pub peers: HashMap<u64, String>,
    /// Where snapshot files live.
    pub snap_dir: PathBuf,
    /// Take a snapshot and compact the log after this many applied entries (0 = never).
    pub snapshot_entries: u64,
    /// ... or after this many bytes of applied entries (0 = never).
    pub snapshot_bytes: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            group_id: 1,
            voters: vec![1],
            tick: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            max_entry_bytes: 4 << 20,
            lease_reads: false,
            addr: String::new(),
            peers: HashMap::new(),
            snap_dir: PathBuf::from("snap"),
            snapshot_entries: 0,
            snapshot_bytes: 0,
        }
    }
}

/// The replicated state machine the node applies committed commands to.
pub trait StateMachine: Send + 'static {
    /// Result of one command, handed to whoever proposed it.
    type Output: Send + 'static;
    /// Applies the commands of one committed `RaftCommit` (stamped `time_ms`), staging
    /// writes into `wb`. Returns one output per command, in order.
    fn apply(
        &mut self,
        wb: &mut WriteBatch,
        index: u64,
        time_ms: i64,
        commands: &[Vec<u8>],
    ) -> Vec<Self::Output>;
    /// Stages the applied index (called once per batch, after its applies).
    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64);
    /// The staged batch is written.
    fn batch_written(&mut self);
    /// Index of the last applied entry (as persisted).
    fn applied_index(&self) -> u64;
    /// Last stamped time applied.
    fn last_time_ms(&self) -> i64;
    /// Captures the applied state now (before returning) and returns the job that writes
    /// it as files into `dir` (run on another thread; the state machine goes on applying).
    fn snapshot_export(&mut self, dir: PathBuf) -> Result<SnapshotJob, String>;
    /// Replaces the whole state with the snapshot files in `dir`.
    fn snapshot_restore(&mut self, dir: &Path) -> Result<(), String>;
}

/// Writes a captured snapshot's files.
pub type SnapshotJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// Where outgoing raft messages go (the peer transport).
pub trait MessageSink: Clone + Send + 'static {
    fn send(&self, msgs: Vec<Message>);
    /// A member's address became known (`Some`) or it left the group (`None`).
    fn set_peer(&self, _id: u64, _addr: Option<String>) {}
    /// Sends a removed member (which may never learn it from the log: the leader stops
    /// replicating to it) `notice`, a raft message carrying the entries up to its removal
    /// and a commit index covering them, so it applies its own removal.
    fn notify_removed(&self, _id: u64, _notice: Message) {}
}

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// This node does not lead; the known leader (if any) is given.
    #[error("not leader")]
    NotLeader(Option<u64>),
    /// The proposal was overwritten by another leader's entry: it did not take effect.
    #[error("proposal dropped")]
    Dropped,
    /// The node is shutting down.
    #[error("node stopped")]
    Stopped,
    /// The request cannot be served now (the text says why).
    #[error("{0}")]
    Refused(String),
    /// A proposal's fate is unknown: it may or may not take effect (the text says why).
    /// Never retry it blindly.
    #[error("{0}")]
    Unknown(String),
}

/// A reply channel.
pub type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// What the Ready loop accepts.
pub enum Msg<O> {
    /// Propose encoded commands, applied in order in one entry; one output per command.
    Propose {
        cmds: Vec<Vec<u8>>,
        reply: Reply<Vec<O>>,
    },
    /// Wait until a linearizable read may run on the local state machine.
    Read { reply: Reply<()> },
    /// A message from a peer.
    Raft(Box<Message>),
    /// A peer could not be reached.
    Unreachable(u64),
    /// Move leadership to this node.
    TransferLeader(u64),
    /// Take a snapshot now and compact the log; replies with its index.
    Snapshot { reply: Reply<u64> },
    /// Propose a membership change; replies with the new configuration once applied.
    ConfChange {
        cc: ConfChangeV2,
        reply: Reply<ConfState>,
    },
    /// The outcome of sending a snapshot to a peer.
    SnapshotStatus { to: u64, ok: bool },
    /// A background snapshot generation ended.
    SnapshotGenerated(Result<Snapshot, String>),
    /// The sync thread made the Readies up to `number` durable (`jobs` of them).
    Persisted { number: u64, jobs: u64 },
    /// Stop the loop.
    Stop,
}

/// A Ready whose log writes must become durable before its messages go out.
struct PersistJob {
    number: u64,
    sync: bool,
    msgs: Vec<Message>,
}

/// The log sync thread: one WAL fsync covers every Ready queued since the last one; then
/// the messages that waited for it are sent and the Ready loop is told.
fn sync_loop<O, K: MessageSink>(
    db: Arc<DB>,
    jobs: Receiver<PersistJob>,
    sink: K,
    inbox: Sender<Msg<O>>,
    status: Arc<Status>,
    logger: Logger,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        if batch.iter().any(|j| j.sync) {
            let started = Instant::now();
            if let Err(e) = db.flush_wal(true) {
                crit!(logger, "raft log sync failed, stopping"; "err" => %e);
                die();
            }
            status.syncs.fetch_add(1, Ordering::Relaxed);
            status
                .sync_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        let number = batch.iter().map(|j| j.number).max().unwrap_or(0);
        let n = batch.len() as u64;
        for j in batch {
            if !j.msgs.is_empty() {
                sink.send(j.msgs);
            }
        }
        if inbox.send(Msg::Persisted { number, jobs: n }).is_err() {
            return;
        }
    }
}

/// Ends the process at once after a storage (or other unrecoverable) error has been logged:
/// no destructors run, so nothing races the threads still using RocksDB, and nothing more
/// is written or acknowledged. (The binary logs critical records synchronously.)
pub fn die() -> ! {
    // SAFETY: _exit only ends the process; it touches no Rust state.
    unsafe { libc::_exit(1) }
}

/// Role values in [`Status::role`].
pub const ROLE_FOLLOWER: u8 = 0;
pub const ROLE_CANDIDATE: u8 = 1;
pub const ROLE_LEADER: u8 = 2;
pub const ROLE_PRECANDIDATE: u8 = 3;

/// Live view of the node for routing and INFO (updated by the Ready loop).
#[derive(Debug, Default)]
pub struct Status {
    pub id: u64,
    pub leader: AtomicU64,
    pub term: AtomicU64,
    pub role: AtomicU8,
    pub commit: AtomicU64,
    pub applied: AtomicU64,
    pub last_index: AtomicU64,
    pub proposals: AtomicU64,
    pub entries_proposed: AtomicU64,
    pub reads: AtomicU64,
    pub readies: AtomicU64,
    pub syncs: AtomicU64,
    /// Total time spent in synced log writes (µs).
    pub sync_micros: AtomicU64,
    /// Total time spent handling Readies (µs).
    pub ready_micros: AtomicU64,
    pub last_time_ms: AtomicI64,
    /// Cluster time as published by the Ready loop (see [`Status::cluster_time_ms`]).
    pub time_offset: crate::clock::TimeOffset,
    /// First index still in the log (entries below were compacted into a snapshot).
    pub first_index: AtomicU64,
    /// Index of the latest local snapshot (0 = none).
    pub snapshot_index: AtomicU64,
    /// Snapshots generated by this node.
    pub snapshots_taken: AtomicU64,
    /// Snapshots received and restored.
    pub snapshots_restored: AtomicU64,
    /// A snapshot is being generated.
    pub snapshot_running: AtomicBool,
    /// Duration of the last snapshot generation (ms).
    pub snapshot_last_ms: AtomicU64,
    /// This node applied its own removal from the group.
    pub removed: AtomicBool,
    /// Peer raft messages dropped by [`crate::filter`] before `step`.
    pub msgs_filtered: AtomicU64,
    /// Rate limit of the filter's log lines.
    pub filter_log: crate::ratelimit::RateLimit,
    /// Configuration, addresses and (on the leader) replication progress.
    pub members: Mutex<Members>,
}

/// The group's membership as this node knows it.
#[derive(Debug, Default, Clone)]
pub struct Members {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration while in joint consensus.
    pub voters_outgoing: Vec<u64>,
    pub addrs: BTreeMap<u64, String>,
    /// Matched index of each member (filled on the leader only).
    pub matched: BTreeMap<u64, u64>,
}

impl Status {
    /// Known leader id (0 = none).
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }
    /// True when this node leads.
    pub fn is_leader(&self) -> bool {
        self.role.load(Ordering::Acquire) == ROLE_LEADER
    }
    /// A copy of the membership.
    pub fn members(&self) -> Members {
        self.members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Role as text.
    pub fn role_name(&self) -> &'static str {
        match self.role.load(Ordering::Acquire) {
            ROLE_LEADER => "leader",
            ROLE_CANDIDATE => "candidate",
            ROLE_PRECANDIDATE => "pre-candidate",
            _ => "follower",
        }
    }
}

/// Handle used by other threads to talk to the node.
pub struct NodeHandle<O> {
    tx: Sender<Msg<O>>,
    pub status: Arc<Status>,
}

impl<O> Clone for NodeHandle<O> {
    fn clone(&self) -> Self {
        NodeHandle {
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }
}

impl<O: Send + 'static> NodeHandle<O> {
    /// Sends a message to the loop (dropped silently if it stopped).
    pub fn send(&self, m: Msg<O>) {
        let _ = self.tx.send(m);
    }

    /// Proposes encoded commands (applied in order, in one log entry); resolves after
    /// commit and apply with one output per command.
    pub fn propose(&self, cmds: Vec<Vec<u8>>) -> oneshot::Receiver<Result<Vec<O>, NodeError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Propose { cmds, reply });
        rx
    }

    /// Resolves when a linearizable read may run locally.
    pub fn read_barrier(&self) -> oneshot::Receiver<Result<(), NodeError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Read { reply });
        rx
    }

    /// Takes a snapshot now; resolves to its index.
    pub fn snapshot(&self) -> oneshot::Receiver<Result<u64, NodeError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Snapshot { reply });
        rx
    }

    /// Proposes a membership change; resolves once it is applied.
    pub fn conf_change(&self, cc: ConfChangeV2) -> oneshot::Receiver<Result<ConfState, NodeError>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::ConfChange { cc, reply });
        rx
    }
}

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

/// Wall-clock milliseconds since the Unix epoch (the time leaders stamp on commits).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates the node and starts its Ready loop thread.
pub fn start<S: StateMachine, K: MessageSink>(
    cfg: NodeConfig,
    db: Arc<DB>,
    sm: S,
    sink: K,
    logger: &Logger,
) -> Result<(NodeHandle<S::Output>, std::thread::JoinHandle<()>), raft::Error> {
    let logger = logger.new(o!("group" => cfg.group_id));
    let mut sm = sm;
    let mut storage = RocksStorage::open(db.clone(), cfg.group_id, &cfg.voters)?;
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
        db.write(wb)
            .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
    }
    {
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
        db.write(wb)
            .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
    }
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
    for (&id, addr) in storage.peers() {
        if id != cfg.id {
            sink.set_peer(id, Some(addr.clone()));
        }
    }
    let raft_cfg = Config {
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
        check_quorum: true,
        pre_vote: true,
        // Never LeaseBased: see `NodeConfig::lease_reads`.
        read_only_option: ReadOnlyOption::Safe,
        ..Default::default()
    };
    raft_cfg.validate()?;
    let raw = RawNode::new(&raft_cfg, storage, &logger)?;
    let status = Arc::new(Status {
        id: cfg.id,
        ..Default::default()
    });
    status
        .snapshot_index
        .store(snapshot_index, Ordering::Release);
    status.applied.store(applied, Ordering::Release);
    let clock = StampClock::new(sm.last_time_ms().max(load_stamp(&db, cfg.group_id)));
    clock.publish(&status);
    let (tx, rx) = std::sync::mpsc::channel();
    let (persist_tx, persist_rx) = std::sync::mpsc::channel();
    let sync_thread = {
        let (db, sink, inbox, status, logger) = (
            db.clone(),
            sink.clone(),
            tx.clone(),
            status.clone(),
            logger.clone(),
        );
        std::thread::Builder::new()
            .name("raft-sync".into())
            .spawn(move || sync_loop(db, persist_rx, sink, inbox, status, logger))
            .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?
    };
    let handle = NodeHandle {
        tx,
        status: status.clone(),
    };
    if cfg.lease_reads {
        warn!(logger, "--read-mode lease is served as safe: raft-rs lease reads check no lease, so every read confirms leadership with a quorum (ReadIndex)");
    }
    info!(logger, "raft node starting"; "applied" => applied, "voters" => ?cfg.voters);
    let mut node = Loop {
        clock,
        cfg,
        db,
        raw,
        sm,
        sink,
        status,
        logger,
        applied,
        proposals: Vec::new(),
        proposal_bytes: 0,
        pending: BTreeMap::new(),
        reads: Vec::new(),
        read_batches: HashMap::new(),
        next_read_id: 1,
        read_nonce: {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(wall_ms() as u64);
            h.write_u32(std::process::id());
            h.finish()
        },
        read_attempt: 0,
        persist_tx: Some(persist_tx),
        sync_thread: Some(sync_thread),
        unpersisted: 0,
        inbox: handle.tx.clone(),
        generating: None,
        snap_waiters: Vec::new(),
        bytes_since_snapshot: 0,
        pending_conf: None,
        members_dirty: false,
        identity,
    };
    node.publish_members();
    node.publish();
    let th = std::thread::Builder::new()
        .name("raft-ready".into())
        .spawn(move || node.run(rx))
        .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
    Ok((handle, th))
}

struct Loop<S: StateMachine, K: MessageSink> {
    cfg: NodeConfig,
    db: Arc<DB>,
    raw: RawNode<RocksStorage>,
    sm: S,
    sink: K,
    status: Arc<Status>,
    logger: Logger,
    applied: u64,
    /// Cluster time: the last stamp seen, and the leader's stamping rule.
    clock: StampClock,
    /// Proposals queued in this iteration.
    proposals: Vec<Proposal<S::Output>>,
    proposal_bytes: usize,
    /// Proposed entries by index.
    pending: BTreeMap<u64, PendingEntry<S::Output>>,
    /// Reads queued in this iteration.
    reads: Vec<Reply<()>>,
    read_batches: HashMap<u64, ReadBatch>,
    next_read_id: u64,
    /// Random per process: with the node id, makes every ReadIndex context unique across
    /// nodes and restarts (see [`Loop::read_ctx`]).
    read_nonce: u64,
    /// Counts ReadIndex requests sent, so a retried batch gets a fresh context.
    read_attempt: u64,
    /// Readies handed to the sync thread.
    persist_tx: Option<Sender<PersistJob>>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
    /// How many of them are not yet reported durable.
    unpersisted: u64,
    /// The loop's own inbox (background jobs report here).
    inbox: Sender<Msg<S::Output>>,
    /// Index of the snapshot being generated.
    generating: Option<(u64, Instant)>,
    /// Operators waiting for a snapshot.
    snap_waiters: Vec<Reply<u64>>,
    /// Bytes of entries applied since the last snapshot.
    bytes_since_snapshot: u64,
    /// The proposed membership change (index, term) and who waits for it.
    pending_conf: Option<(u64, u64, Reply<ConfState>)>,
    /// Membership changed since it was last published.
    members_dirty: bool,
    /// The cluster identity and this node's guard (see [`identity`]).
    identity: Identity,
}

impl<S: StateMachine, K: MessageSink> Loop<S, K> {
    fn run(&mut self, rx: Receiver<Msg<S::Output>>) {
        let mut last_tick = Instant::now();
        loop {
            let wait = self.cfg.tick.saturating_sub(last_tick.elapsed());
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return self.stop(),
            };
            if let Some(m) = first {
                if !self.handle(m) {
                    return self.stop();
                }
                // Drain what else is queued, bounded so ticks and readies keep flowing.
                for _ in 0..16384 {
                    match rx.try_recv() {
                        Ok(m) => {
                            if !self.handle(m) {
                                return self.stop();
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            self.flush_proposals();
            self.flush_reads();
            if last_tick.elapsed() >= self.cfg.tick {
                last_tick = Instant::now();
                self.raw.tick();
                self.retry_reads();
                self.publish_members();
                self.maybe_promote();
                self.maybe_record_identity();
            }
            self.on_ready();
            self.maybe_snapshot();
        }
    }

    fn stop(&mut self) {
        // Let the sync thread finish (and release the database) before reporting stopped.
        self.persist_tx = None;
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
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
        info!(self.logger, "raft node stopped");
    }

    /// Handles one inbox message; false means stop.
    fn handle(&mut self, m: Msg<S::Output>) -> bool {
        match m {
            Msg::Propose { cmds, reply } => {
                self.proposal_bytes += cmds.iter().map(Vec::len).sum::<usize>();
                self.proposals.push((cmds, reply));
                if self.proposal_bytes >= self.cfg.max_entry_bytes {
                    self.flush_proposals();
                }
            }
            Msg::Read { reply } => self.reads.push(reply),
            Msg::Raft(m) => {
                // The restricted-start guard first: it answers the heartbeats a wiped
                // founder gets (their commit lies beyond its new log) with rejections that
                // make the leader probe back; the filter would drop them silently.
                if self.guard_drops(&m) {
                    debug!(self.logger, "guarded founder: message dropped"; "from" => m.from, "type" => ?m.get_msg_type());
                } else if let Err(why) = crate::filter::check(&self.raw.raft, &m) {
                    self.status.msgs_filtered.fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = self.status.filter_log.check() {
                        warn!(self.logger, "dropping raft message before step"; "why" => why, "type" => ?m.get_msg_type(), "from" => m.from, "term" => m.term, "suppressed" => n);
                    }
                } else if let Err(e) = self.raw.step(*m) {
                    debug!(self.logger, "step failed"; "err" => %e);
                }
            }
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
            Msg::Persisted { number, jobs } => {
                self.unpersisted -= jobs;
                self.raw.on_persist_ready(number);
            }
            Msg::Stop => return false,
        }
        true
    }

    fn leader_hint(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != 0 && l != self.cfg.id)
    }

    /// Turns the queued proposals into one log entry.
    fn flush_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.proposals);
        self.proposal_bytes = 0;
        if self.raw.raft.state != StateRole::Leader {
            let hint = self.leader_hint();
            for (_, r) in batch {
                let _ = r.send(Err(NodeError::NotLeader(hint)));
            }
            return;
        }
        let stamp = self.clock.stamp(wall_ms(), &self.logger);
        let mut commit = RaftCommit::new();
        commit.group_id = self.cfg.group_id;
        commit.time_ms = stamp;
        let mut waiters = Vec::with_capacity(batch.len());
        for (cmds, r) in batch {
            waiters.push((cmds.len(), r));
            commit.commands.extend(cmds);
        }
        let data = match commit.write_to_bytes() {
            Ok(d) => d,
            Err(e) => {
                crit!(self.logger, "encoding RaftCommit failed"; "err" => %e);
                die();
            }
        };
        let n = commit.commands.len() as u64;
        match self.raw.propose(vec![], data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                self.pending.insert(index, PendingEntry { term, waiters });
                self.status.proposals.fetch_add(n, Ordering::Relaxed);
                self.status.entries_proposed.fetch_add(1, Ordering::Relaxed);
            }
            Err(raft::Error::ProposalDropped) if self.raw.raft.state == StateRole::Leader => {
                // Still leader: the uncommitted log is full (or a leader transfer is under
                // way). Nothing was appended, so the proposers may retry or give up.
                self.warn_dropped(n);
                for (_, r) in waiters {
                    let _ = r.send(Err(NodeError::Dropped));
                }
            }
            Err(_) => {
                let hint = self.leader_hint();
                for (_, r) in waiters {
                    let _ = r.send(Err(NodeError::NotLeader(hint)));
                }
            }
        }
    }

    /// Logs proposals the leader refused, at most once per second.
    fn warn_dropped(&self, commands: u64) {
        static LAST_MS: AtomicI64 = AtomicI64::new(0);
        let now = wall_ms();
        if now - LAST_MS.load(Ordering::Relaxed) >= 1000 {
            LAST_MS.store(now, Ordering::Relaxed);
            warn!(self.logger, "leader refused proposals: uncommitted log full (peers not keeping up) or leader transfer in progress";
                "commands" => commands,
                "uncommitted_limit" => MAX_UNCOMMITTED_BYTES,
                "last_index" => self.raw.raft.raft_log.last_index(),
                "committed" => self.raw.raft.raft_log.committed);
        }
    }

    /// A ReadIndex context never used before by any node: `[node id][process nonce][batch
    /// id][attempt]`. raft-rs keys pending reads by context alone and, on a quorum of
    /// heartbeat acks for one context, releases every read queued before it; so a context
    /// that is reused (a retry, or another node's counter of the same value) could be
    /// released by a stale ack from before a partition, and serve a stale read.
    fn read_ctx(&mut self, batch: u64) -> Vec<u8> {
        self.read_attempt += 1;
        let mut ctx = Vec::with_capacity(32);
        ctx.extend_from_slice(&self.cfg.id.to_be_bytes());
        ctx.extend_from_slice(&self.read_nonce.to_be_bytes());
        ctx.extend_from_slice(&batch.to_be_bytes());
        ctx.extend_from_slice(&self.read_attempt.to_be_bytes());
        ctx
    }

    /// The batch a ReadIndex context of this process names.
    fn read_batch_of(&self, ctx: &[u8]) -> Option<u64> {
        if ctx.len() != 32
            || ctx[..8] != self.cfg.id.to_be_bytes()
            || ctx[8..16] != self.read_nonce.to_be_bytes()
        {
            return None;
        }
        Some(u64::from_be_bytes(ctx[16..24].try_into().ok()?))
    }

    fn flush_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        let waiters = std::mem::take(&mut self.reads);
        self.status
            .reads
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
        self.read_batches.insert(
            id,
            ReadBatch {
                waiters,
                issued: Instant::now(),
                index: None,
            },
        );
        let ctx = self.read_ctx(id);
        self.raw.read_index(ctx);
    }

    /// Re-issues reads that got no read index (raft-rs drops them while there is no leader
    /// or the leader has not yet committed in its term) and forgets abandoned ones.
    fn retry_reads(&mut self) {
        let retry_after = self.cfg.tick * self.cfg.heartbeat_tick as u32 * 2;
        let mut again = Vec::new();
        self.read_batches.retain(|id, b| {
            b.waiters.retain(|w| !w.is_closed());
            if b.waiters.is_empty() {
                return false;
            }
            if b.index.is_none() && b.issued.elapsed() >= retry_after {
                b.issued = Instant::now();
                again.push(*id);
            }
            true
        });
        for id in again {
            let ctx = self.read_ctx(id);
            self.raw.read_index(ctx);
        }
    }

    fn resolve_reads(&mut self) {
        let applied = self.applied;
        self.read_batches.retain(|_, b| match b.index {
            Some(i) if i <= applied => {
                for w in b.waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                false
            }
            _ => true,
        });
    }

    /// Writes a batch without sync (durability comes from the sync thread's WAL sync).
    fn write(&self, wb: WriteBatch) {
        if wb.is_empty() {
            return;
        }
        if let Err(e) = self.db.write_opt(wb, &WriteOptions::default()) {
            crit!(self.logger, "storage write failed, stopping"; "err" => %e);
            die();
        }
    }

    /// Applies committed entries into `wb`; returns the replies to deliver once written.
    fn apply_entries(
        &mut self,
        wb: &mut WriteBatch,
        ents: Vec<Entry>,
        out: &mut Deliveries<S::Output>,
    ) {
        if ents.is_empty() {
            return;
        }
        for e in ents {
            let index = e.index;
            self.bytes_since_snapshot += e.data.len() as u64;
            if self.pending_conf.as_ref().is_some_and(|(i, t, _)| {
                *i == index && (*t != e.term || e.get_entry_type() == EntryType::EntryNormal)
            }) {
                // Our membership change was overwritten, or raft-rs replaced it with an
                // empty entry (another change was pending): it did not take effect.
                if let Some((_, _, w)) = self.pending_conf.take() {
                    let _ = w.send(Err(NodeError::Refused(
                        "the membership change was dropped (another change was in progress or leadership moved); retry".into(),
                    )));
                }
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    let results = if e.data.is_empty() {
                        Vec::new()
                    } else if e.context[..] == *IDENTITY_CTX {
                        self.apply_identity(wb, index, &e.data);
                        Vec::new()
                    } else {
                        match RaftCommit::parse_from_bytes(&e.data) {
                            Ok(c) if c.group_id == self.cfg.group_id => {
                                self.clock.observe(c.time_ms);
                                self.sm.apply(wb, index, c.time_ms, &c.commands)
                            }
                            Ok(c) => {
                                crit!(self.logger, "entry of another group"; "index" => index, "entry_group" => c.group_id);
                                die();
                            }
                            Err(err) => {
                                crit!(self.logger, "undecodable committed entry"; "index" => index, "err" => %err);
                                die();
                            }
                        }
                    };
                    out.push((index, e.term, results));
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data)
                            .map(|cc| {
                                let mut v2 = ConfChangeV2::default();
                                let mut ch = raft::eraftpb::ConfChangeSingle::default();
                                ch.set_change_type(cc.get_change_type());
                                ch.node_id = cc.node_id;
                                v2.mut_changes().push(ch);
                                v2.context = cc.context;
                                v2
                            })
                            .map_err(|e| e.to_string())
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data).map_err(|e| e.to_string())
                    };
                    let matched = self.matched_before_change();
                    let cs = cc.and_then(|cc| {
                        self.raw
                            .apply_conf_change(&cc)
                            .map(|cs| (cc, cs))
                            .map_err(|e| e.to_string())
                    });
                    let pending = self
                        .pending_conf
                        .take_if(|(i, t, _)| *i == index && *t == e.term)
                        .map(|(_, _, w)| w);
                    match cs {
                        Ok((cc, cs)) => {
                            info!(self.logger, "configuration changed"; "index" => index, "voters" => ?cs.voters, "learners" => ?cs.learners, "outgoing" => ?cs.voters_outgoing);
                            self.apply_membership(wb, &cc, &cs, index, &matched);
                            self.raw.mut_store().stage_conf_state(wb, cs.clone());
                            if let Some(w) = pending {
                                // Published before the reply, so whoever waited on the
                                // change sees it in `Status::members` (the addresses of
                                // a new member follow once its record is written).
                                self.publish_members();
                                self.members_dirty = true;
                                let _ = w.send(Ok(cs));
                            }
                        }
                        Err(err) => {
                            warn!(self.logger, "conf change rejected"; "index" => index, "err" => &err);
                            if let Some(w) = pending {
                                let _ = w.send(Err(NodeError::Refused(format!(
                                    "membership change rejected: {err}"
                                ))));
                            }
                        }
                    }
                    out.push((index, e.term, Vec::new()));
                }
            }
            self.applied = index;
        }
        self.clock.stage(&self.db, wb, self.cfg.group_id);
    }

    /// Replication progress of every member, on the leader (before a conf change drops the
    /// progress of members it removes).
    fn matched_before_change(&self) -> HashMap<u64, u64> {
        if self.raw.raft.state != StateRole::Leader {
            return HashMap::new();
        }
        self.raw
            .raft
            .prs()
            .iter()
            .map(|(id, pr)| (*id, pr.matched))
            .collect()
    }

    /// Records addresses of added members and forgets removed ones; notices our own removal.
    fn apply_membership(
        &mut self,
        wb: &mut WriteBatch,
        cc: &ConfChangeV2,
        cs: &ConfState,
        index: u64,
        matched: &HashMap<u64, u64>,
    ) {
        if let Ok(pa) = PeerAddr::parse_from_bytes(&cc.context) {
            if pa.id != 0 && !pa.addr.is_empty() && conf_contains(cs, pa.id) {
                self.raw.mut_store().stage_peer(wb, pa.id, &pa.addr);
                if pa.id != self.cfg.id {
                    self.sink.set_peer(pa.id, Some(pa.addr.clone()));
                }
            }
        }
        // Members of the previous configuration that are in no part of the new one left
        // (with joint consensus that happens when the joint configuration is left, by an
        // entry that names no change).
        let prev = self.raw.store().conf_state().clone();
        let gone: Vec<u64> = prev
            .voters
            .iter()
            .chain(&prev.learners)
            .chain(&prev.voters_outgoing)
            .copied()
            .filter(|&id| !conf_contains(cs, id))
            .collect();
        for id in gone {
            self.raw.mut_store().stage_forget_peer(wb, id);
            if id == self.cfg.id {
                warn!(self.logger, "this node was removed from the group");
                self.status.removed.store(true, Ordering::Release);
            } else {
                let notice = matched
                    .get(&id)
                    .and_then(|&m| crate::removal::notice(&self.raw.raft, id, index, m));
                match notice {
                    Some(n) => self.sink.notify_removed(id, n),
                    None if self.raw.raft.state == StateRole::Leader => {
                        warn!(self.logger, "cannot send a removed member its removal (its log is too far behind): stop it by hand"; "id" => id)
                    }
                    None => {}
                }
                self.sink.set_peer(id, None);
            }
        }
        self.members_dirty = true;
    }

    /// Proposes a membership change (one at a time).
    fn propose_conf_change(&mut self, cc: ConfChangeV2, reply: Reply<ConfState>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(NodeError::NotLeader(self.leader_hint())));
            return;
        }
        if self.pending_conf.is_some() || self.raw.raft.has_pending_conf() {
            let _ = reply.send(Err(NodeError::Refused(
                "a membership change is already in progress".into(),
            )));
            return;
        }
        let before = self.raw.raft.raft_log.last_index();
        let context = cc.context.to_vec();
        match self.raw.propose_conf_change(context, cc) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending_conf = Some((index, self.raw.raft.term, reply));
            }
            Ok(()) => {
                let _ = reply.send(Err(NodeError::Refused(
                    "the membership change was not accepted (a leader transfer may be in progress)"
                        .into(),
                )));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Refused(format!(
                    "membership change refused: {e}"
                ))));
            }
        }
    }

    /// The leader promotes a learner to voter once it has caught up with the log.
    fn maybe_promote(&mut self) {
        if self.raw.raft.state != StateRole::Leader
            || self.pending_conf.is_some()
            || self.raw.raft.has_pending_conf()
        {
            return;
        }
        let last = self.raw.raft.raft_log.last_index();
        let conf = self.raw.raft.prs().conf().to_conf_state();
        for id in conf.learners {
            let caught_up = self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|pr| pr.matched + 16 >= last && pr.matched > 0);
            if caught_up {
                info!(self.logger, "promoting caught-up learner to voter"; "id" => id);
                let mut cc = ConfChangeV2::default();
                let mut ch = raft::eraftpb::ConfChangeSingle::default();
                ch.set_change_type(ConfChangeType::AddNode);
                ch.node_id = id;
                cc.mut_changes().push(ch);
                let (tx, _rx) = oneshot::channel();
                self.propose_conf_change(cc, tx);
                return;
            }
        }
    }

    /// Publishes membership and replication progress for INFO and admin commands.
    fn publish_members(&mut self) {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let mut m = Members {
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            voters_outgoing: conf.voters_outgoing.clone(),
            addrs: self
                .raw
                .store()
                .peers()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            matched: BTreeMap::new(),
        };
        if !self.cfg.addr.is_empty() {
            m.addrs.insert(self.cfg.id, self.cfg.addr.clone());
        }
        if self.raw.raft.state == StateRole::Leader {
            for (id, pr) in self.raw.raft.prs().iter() {
                m.matched.insert(*id, pr.matched);
            }
        }
        self.members_dirty = false;
        *self
            .status
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = m;
    }

    /// Starts a snapshot when the log since the last one is long enough, raft needs one
    /// for a follower, or an operator asked; never two at once.
    fn maybe_snapshot(&mut self) {
        if self.members_dirty {
            self.publish_members();
        }
        if self.generating.is_some() {
            return;
        }
        let wanted = self.raw.store().take_snapshot_wanted();
        let trunc = self.raw.store().truncated_index();
        let long = (self.cfg.snapshot_entries > 0
            && self.applied >= trunc + self.cfg.snapshot_entries)
            || (self.cfg.snapshot_bytes > 0
                && self.bytes_since_snapshot >= self.cfg.snapshot_bytes);
        if !(wanted || long || !self.snap_waiters.is_empty()) {
            return;
        }
        let index = self.applied;
        let have = self
            .raw
            .store()
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        if index <= have {
            // Nothing new since the last snapshot (which has the current configuration:
            // it was taken at the applied index).
            for w in self.snap_waiters.drain(..) {
                let _ = w.send(Ok(have));
            }
            return;
        }
        if index <= 1 {
            return;
        }
        let term = match self.raw.raft.raft_log.term(index) {
            Ok(t) => t,
            Err(e) => {
                warn!(self.logger, "cannot snapshot: no term for applied index"; "index" => index, "err" => %e);
                return;
            }
        };
        let conf = self.raw.store().conf_state().clone();
        let mut peers: Vec<(u64, String)> = self
            .raw
            .store()
            .peers()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if !self.cfg.addr.is_empty() {
            peers.retain(|(id, _)| *id != self.cfg.id);
            peers.push((self.cfg.id, self.cfg.addr.clone()));
        }
        let ident = self.identity.known().cloned();
        let root = self.cfg.snap_dir.clone();
        let tmp = root.join(snap::tmp_name(term, index));
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            crit!(self.logger, "cannot create snapshot directory, stopping"; "err" => %e);
            die();
        }
        let job = match self.sm.snapshot_export(tmp.clone()) {
            Ok(j) => j,
            Err(e) => {
                crit!(self.logger, "snapshot capture failed, stopping"; "err" => e);
                die();
            }
        };
        info!(self.logger, "snapshot started"; "index" => index, "term" => term);
        self.generating = Some((index, Instant::now()));
        self.status.snapshot_running.store(true, Ordering::Release);
        let inbox = self.inbox.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let result = job().and_then(|()| {
                    let mut desc =
                        snap::describe(&tmp, index, term, &peers).map_err(|e| e.to_string())?;
                    if let Some(ident) = ident {
                        desc.set_identity(ident);
                    }
                    let done = root.join(snap::done_name(term, index));
                    let _ = std::fs::remove_dir_all(&done);
                    std::fs::rename(&tmp, &done).map_err(|e| e.to_string())?;
                    snap::sync_dir(&root).map_err(|e| e.to_string())?;
                    let mut s = Snapshot {
                        data: desc.write_to_bytes().map_err(|e| e.to_string())?.into(),
                        ..Default::default()
                    };
                    let m = s.mut_metadata();
                    m.index = index;
                    m.term = term;
                    m.set_conf_state(conf);
                    Ok(s)
                });
                let _ = inbox.send(Msg::SnapshotGenerated(result));
            });
        if let Err(e) = spawned {
            crit!(self.logger, "cannot start snapshot thread, stopping"; "err" => %e);
            die();
        }
    }

    fn on_snapshot_generated(&mut self, r: Result<Snapshot, String>) {
        let started = self.generating.take().map(|(_, t)| t);
        self.status.snapshot_running.store(false, Ordering::Release);
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                // Writing snapshot files failed: a storage error, fail-stop.
                crit!(self.logger, "snapshot generation failed, stopping"; "err" => e);
                die();
            }
        };
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let ms = started.map_or(0, |t| t.elapsed().as_millis() as u64);
        let current = self.raw.store().local_snapshot_name();
        if index <= self.raw.store().truncated_index() {
            // A received snapshot overtook this one.
            let name = snap::done_name(term, index);
            if current.as_deref() != Some(name.as_str()) {
                let _ = std::fs::remove_dir_all(self.cfg.snap_dir.join(name));
            }
        } else {
            let bytes = SnapshotDescriptor::parse_from_bytes(&s.data)
                .map(|d| snap::total_bytes(&d))
                .unwrap_or(0);
            let prev = current;
            let mut wb = WriteBatch::default();
            if let Err(e) = self.raw.mut_store().stage_local_snapshot(&mut wb, s) {
                crit!(self.logger, "recording snapshot failed, stopping"; "err" => %e);
                die();
            }
            self.write(wb);
            self.bytes_since_snapshot = 0;
            self.prune_snapshots(snap::done_name(term, index), prev);
            self.status.snapshot_index.store(index, Ordering::Release);
            self.status.snapshot_last_ms.store(ms, Ordering::Release);
            self.status.snapshots_taken.fetch_add(1, Ordering::Relaxed);
            info!(self.logger, "snapshot taken, log compacted"; "index" => index, "term" => term, "bytes" => bytes, "ms" => ms);
            self.publish();
        }
        let have = self
            .raw
            .store()
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        for w in self.snap_waiters.drain(..) {
            let _ = w.send(Ok(have));
        }
    }

    /// Replaces log and store with a snapshot received from the leader (its files were
    /// fetched and verified by the transport). Durable before it returns.
    fn restore_snapshot(&mut self, s: &Snapshot) {
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let name = snap::done_name(term, index);
        let dir = self.cfg.snap_dir.join(&name);
        let desc = match SnapshotDescriptor::parse_from_bytes(&s.data) {
            Ok(d) if dir.is_dir() => d,
            Ok(_) => {
                crit!(self.logger, "snapshot files missing, stopping"; "dir" => %dir.display());
                die();
            }
            Err(e) => {
                crit!(self.logger, "undecodable snapshot descriptor, stopping"; "err" => %e);
                die();
            }
        };
        if let Err(e) = snap::verify(&dir, &desc) {
            // Nothing is recorded yet: after a restart the node is where it was before the
            // snapshot, and the leader sends it again (the bad file is gone).
            crit!(self.logger, "received snapshot fails its checks right before restore, stopping"; "dir" => %dir.display(), "err" => %e);
            let _ = std::fs::remove_dir_all(&dir);
            die();
        }
        info!(self.logger, "restoring snapshot"; "index" => index, "term" => term, "bytes" => snap::total_bytes(&desc));
        let started = Instant::now();
        let prev = self.raw.store().local_snapshot_name();
        let mut wb = WriteBatch::default();
        if let Err(e) = self
            .raw
            .mut_store()
            .stage_received_snapshot(&mut wb, s.clone(), &name)
        {
            crit!(self.logger, "staging snapshot failed, stopping"; "err" => %e);
            die();
        }
        for p in &desc.peers {
            // Addresses this node already knows (its command line) stay as they are.
            if p.id != 0 && !p.addr.is_empty() && !self.raw.store().peers().contains_key(&p.id) {
                self.raw.mut_store().stage_peer(&mut wb, p.id, &p.addr);
                if p.id != self.cfg.id {
                    self.sink.set_peer(p.id, Some(p.addr.clone()));
                }
            }
        }
        self.write(wb);
        self.sync_wal();
        if let Err(e) = self.sm.snapshot_restore(&dir) {
            crit!(self.logger, "restoring snapshot into the store failed, stopping"; "err" => e);
            die();
        }
        let mut wb = WriteBatch::default();
        self.raw.mut_store().stage_restored(&mut wb);
        if desc.has_identity() {
            self.merge_identity(&mut wb, desc.get_identity().clone());
        }
        self.write(wb);
        self.applied = index;
        self.clock.observe(self.sm.last_time_ms());
        self.bytes_since_snapshot = 0;
        // A proposal at or below the snapshot's index may or may not have been committed:
        // the snapshot does not say, so its proposer must not retry it as if it had been
        // dropped (a retried INCR would apply twice). Proposals above it stay pending:
        // applying the leader's entry at their index settles them (same term: ours).
        let above = self.pending.split_off(&(index + 1));
        for (_, p) in std::mem::replace(&mut self.pending, above) {
            for (_, w) in p.waiters {
                let _ = w.send(Err(NodeError::Unknown(
                    "the node caught up by snapshot before learning whether the write committed"
                        .into(),
                )));
            }
        }
        if let Some((_, _, w)) = self.pending_conf.take() {
            let _ = w.send(Err(NodeError::Refused(
                "the membership change was overtaken by a snapshot; check RAFT.NODES and retry"
                    .into(),
            )));
        }
        self.prune_snapshots(name, prev);
        snap::remove_old_receives(&self.cfg.snap_dir, index);
        self.status.snapshot_index.store(index, Ordering::Release);
        self.status
            .snapshots_restored
            .fetch_add(1, Ordering::Relaxed);
        self.members_dirty = true;
        info!(self.logger, "snapshot restored"; "index" => index, "ms" => started.elapsed().as_millis() as u64);
    }

    /// Removes snapshot directories no longer needed: all but the newest and the one before
    /// it (a transfer of that may be under way), and those being generated or waiting to be
    /// installed. The newest is made durable first (files, directory, parent); if that fails nothing
    /// is pruned.
    fn prune_snapshots(&self, newest: String, previous: Option<String>) {
        let mut keep = vec![newest.clone()];
        keep.extend(previous);
        let trunc = self.raw.store().truncated_index();
        if let Err(e) = snap::prune(&self.cfg.snap_dir, &newest, &keep, trunc, true) {
            warn!(self.logger, "not pruning old snapshots: the newest is not durable"; "snapshot" => &newest, "err" => %e);
        }
    }

    fn sync_wal(&self) {
        if let Err(e) = self.db.flush_wal(true) {
            crit!(self.logger, "raft log sync failed, stopping"; "err" => %e);
            die();
        }
    }

    /// Hands results to the proposers once the batch holding them is written.
    fn deliver(&mut self, out: Deliveries<S::Output>) {
        for (index, term, results) in out {
            // Anything proposed below this index that is still waiting was overwritten.
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() >= index {
                    break;
                }
                for (_, w) in entry.remove().waiters {
                    let _ = w.send(Err(NodeError::Dropped));
                }
            }
            let Some(p) = self.pending.remove(&index) else {
                continue;
            };
            let expected: usize = p.waiters.iter().map(|(n, _)| n).sum();
            if p.term != term || expected != results.len() {
                for (_, w) in p.waiters {
                    let _ = w.send(Err(NodeError::Dropped));
                }
                continue;
            }
            let mut results = results.into_iter();
            for (n, w) in p.waiters {
                let _ = w.send(Ok(results.by_ref().take(n).collect()));
            }
        }
    }

    fn on_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        self.status.readies.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let role = match ss.raft_state {
                StateRole::Leader => ROLE_LEADER,
                StateRole::Candidate => ROLE_CANDIDATE,
                StateRole::PreCandidate => ROLE_PRECANDIDATE,
                StateRole::Follower => ROLE_FOLLOWER,
            };
            self.status.role.store(role, Ordering::Release);
            self.status.leader.store(ss.leader_id, Ordering::Release);
            info!(self.logger, "role changed"; "role" => self.status.role_name(), "leader" => ss.leader_id, "term" => self.raw.raft.term);
            if role == ROLE_LEADER {
                self.on_leadership();
            }
        }
        if !rd.messages().is_empty() {
            self.sink.send(rd.take_messages());
        }
        // A snapshot is handled synchronously and made durable with everything written
        // before it (one WAL sync), so this Ready is then finished synchronously too.
        let sync_now = !rd.snapshot().is_empty();
        if sync_now {
            let s = rd.snapshot().clone();
            self.restore_snapshot(&s);
        }
        for rs in rd.take_read_states() {
            let Some(id) = self.read_batch_of(&rs.request_ctx) else {
                continue;
            };
            if let Some(b) = self.read_batches.get_mut(&id) {
                // Any attempt's index will do: each was taken after the batch's reads
                // arrived. Keep the first.
                b.index.get_or_insert(rs.index);
            }
        }
        // One WriteBatch per Ready, written without sync: the applies of committed entries
        // (already durable: raft-rs hands out only persisted ones), the applied index, the
        // hard state and the new entries. Proposers of the applied entries are answered at
        // once. The fsync the new entries and hard state need runs on the sync thread, which
        // sends the messages that depend on it afterwards; meanwhile this loop goes on
        // handling acks and proposals (raft-rs async ready).
        let mut wb = WriteBatch::default();
        let mut out = Vec::new();
        let committed = rd.take_committed_entries();
        let applied_any = !committed.is_empty();
        self.apply_entries(&mut wb, committed, &mut out);
        if applied_any {
            self.sm.stage_applied(&mut wb, self.applied);
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().stage_hard_state(&mut wb, hs.clone());
        }
        if let Err(e) = self.raw.mut_store().stage_append(&mut wb, rd.entries()) {
            crit!(self.logger, "staging raft log failed"; "err" => %e);
            die();
        }
        self.write(wb);
        self.raw.mut_store().commit_staged();
        self.sm.batch_written();
        self.after_apply(out);
        if !sync_now && (rd.must_sync() || self.unpersisted > 0) {
            let job = PersistJob {
                number: rd.number(),
                sync: rd.must_sync(),
                msgs: rd.take_persisted_messages(),
            };
            self.raw.advance_append_async(rd);
            self.unpersisted += 1;
            let sent = self.persist_tx.as_ref().map(|tx| tx.send(job));
            if !matches!(sent, Some(Ok(()))) {
                crit!(self.logger, "log sync thread is gone, stopping");
                die();
            }
        } else {
            // Nothing to make durable and nothing outstanding (or a snapshot: make all of
            // it durable now): finish synchronously.
            if sync_now {
                self.sync_wal();
            }
            if !rd.persisted_messages().is_empty() {
                self.sink.send(rd.take_persisted_messages());
            }
            let mut light = self.raw.advance_append(rd);
            let mut wb = WriteBatch::default();
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().stage_commit(&mut wb, commit);
            }
            if !light.messages().is_empty() {
                self.sink.send(light.take_messages());
            }
            let committed = light.take_committed_entries();
            let mut out = Vec::new();
            if !committed.is_empty() {
                self.apply_entries(&mut wb, committed, &mut out);
                self.sm.stage_applied(&mut wb, self.applied);
            }
            self.write(wb);
            self.sm.batch_written();
            self.after_apply(out);
        }
        self.raw.advance_apply_to(self.applied);
        self.publish();
        self.status
            .ready_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    fn after_apply(&mut self, out: Deliveries<S::Output>) {
        self.status.applied.store(self.applied, Ordering::Release);
        self.clock.publish(&self.status);
        self.deliver(out);
        self.resolve_reads();
        self.check_guard();
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

type Deliveries<O> = Vec<(u64, u64, Vec<O>)>;
