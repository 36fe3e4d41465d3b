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
//! A storage error stops the process (fail-stop): a node that cannot persist must not ack.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::{Config, RawNode, ReadOnlyOption, StateRole};
use rocksdb::{WriteBatch, WriteOptions, DB};
use slog::{crit, debug, info, o, warn, Logger};
use tokio::sync::oneshot;

use crate::proto::RaftCommit;
use crate::storage::RocksStorage;

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
    /// Serve ReadIndex from the leader's lease (kept by check-quorum) instead of a
    /// heartbeat round per read batch.
    pub lease_reads: bool,
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
}

/// Where outgoing raft messages go (the peer transport).
pub trait MessageSink: Clone + Send + 'static {
    fn send(&self, msgs: Vec<Message>);
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
                std::process::exit(1);
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
    let storage = RocksStorage::open(db.clone(), cfg.group_id, &cfg.voters)?;
    let applied = sm.applied_index();
    let raft_cfg = Config {
        id: cfg.id,
        election_tick: cfg.election_tick,
        heartbeat_tick: cfg.heartbeat_tick,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        read_only_option: if cfg.lease_reads {
            ReadOnlyOption::LeaseBased
        } else {
            ReadOnlyOption::Safe
        },
        ..Default::default()
    };
    raft_cfg.validate()?;
    let raw = RawNode::new(&raft_cfg, storage, &logger)?;
    let status = Arc::new(Status {
        id: cfg.id,
        ..Default::default()
    });
    status.applied.store(applied, Ordering::Release);
    status
        .last_time_ms
        .store(sm.last_time_ms(), Ordering::Release);
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
    info!(logger, "raft node starting"; "applied" => applied, "voters" => ?cfg.voters);
    let mut node = Loop {
        last_stamp: sm.last_time_ms(),
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
        persist_tx: Some(persist_tx),
        sync_thread: Some(sync_thread),
        unpersisted: 0,
    };
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
    last_stamp: i64,
    /// Proposals queued in this iteration.
    proposals: Vec<Proposal<S::Output>>,
    proposal_bytes: usize,
    /// Proposed entries by index.
    pending: BTreeMap<u64, PendingEntry<S::Output>>,
    /// Reads queued in this iteration.
    reads: Vec<Reply<()>>,
    read_batches: HashMap<u64, ReadBatch>,
    next_read_id: u64,
    /// Readies handed to the sync thread.
    persist_tx: Option<Sender<PersistJob>>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
    /// How many of them are not yet reported durable.
    unpersisted: u64,
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
            }
            self.on_ready();
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
                if let Err(e) = self.raw.step(*m) {
                    debug!(self.logger, "step failed"; "err" => %e);
                }
            }
            Msg::Unreachable(id) => self.raw.report_unreachable(id),
            Msg::TransferLeader(id) => self.raw.transfer_leader(id),
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
        self.last_stamp = self.last_stamp.max(wall_ms());
        let mut commit = RaftCommit::new();
        commit.group_id = self.cfg.group_id;
        commit.time_ms = self.last_stamp;
        let mut waiters = Vec::with_capacity(batch.len());
        for (cmds, r) in batch {
            waiters.push((cmds.len(), r));
            commit.commands.extend(cmds);
        }
        let data = match commit.write_to_bytes() {
            Ok(d) => d,
            Err(e) => {
                crit!(self.logger, "encoding RaftCommit failed"; "err" => %e);
                std::process::exit(1);
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
            Err(_) => {
                let hint = self.leader_hint();
                for (_, r) in waiters {
                    let _ = r.send(Err(NodeError::NotLeader(hint)));
                }
            }
        }
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
        self.raw.read_index(id.to_be_bytes().to_vec());
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
            self.raw.read_index(id.to_be_bytes().to_vec());
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
            std::process::exit(1);
        }
    }

    /// Applies committed entries into `wb`; returns the replies to deliver once written.
    fn apply_entries(
        &mut self,
        wb: &mut WriteBatch,
        ents: Vec<Entry>,
        out: &mut Deliveries<S::Output>,
    ) {
        for e in ents {
            let index = e.index;
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    let results = if e.data.is_empty() {
                        Vec::new()
                    } else {
                        match RaftCommit::parse_from_bytes(&e.data) {
                            Ok(c) if c.group_id == self.cfg.group_id => {
                                self.last_stamp = self.last_stamp.max(c.time_ms);
                                self.sm.apply(wb, index, c.time_ms, &c.commands)
                            }
                            Ok(c) => {
                                crit!(self.logger, "entry of another group"; "index" => index, "entry_group" => c.group_id);
                                std::process::exit(1);
                            }
                            Err(err) => {
                                crit!(self.logger, "undecodable committed entry"; "index" => index, "err" => %err);
                                std::process::exit(1);
                            }
                        }
                    };
                    out.push((index, e.term, results));
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cs = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data)
                            .map_err(|e| e.to_string())
                            .and_then(|cc| {
                                self.raw.apply_conf_change(&cc).map_err(|e| e.to_string())
                            })
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data)
                            .map_err(|e| e.to_string())
                            .and_then(|cc| {
                                self.raw.apply_conf_change(&cc).map_err(|e| e.to_string())
                            })
                    };
                    match cs {
                        Ok(cs) => {
                            info!(self.logger, "configuration changed"; "index" => index, "voters" => ?cs.voters, "learners" => ?cs.learners);
                            self.raw.mut_store().stage_conf_state(wb, cs);
                        }
                        Err(err) => {
                            warn!(self.logger, "conf change rejected"; "index" => index, "err" => err)
                        }
                    }
                    out.push((index, e.term, Vec::new()));
                }
            }
            self.applied = index;
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
        }
        if !rd.messages().is_empty() {
            self.sink.send(rd.take_messages());
        }
        if !rd.snapshot().is_empty() {
            // Never produced while the log is not compacted (see RocksStorage::snapshot).
            crit!(
                self.logger,
                "snapshot received but snapshots are not supported yet"
            );
            std::process::exit(1);
        }
        for rs in rd.take_read_states() {
            let Ok(bytes) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(b) = self.read_batches.get_mut(&u64::from_be_bytes(bytes)) {
                b.index = Some(rs.index);
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
            std::process::exit(1);
        }
        self.write(wb);
        self.raw.mut_store().commit_staged();
        self.sm.batch_written();
        self.after_apply(out);
        if rd.must_sync() || self.unpersisted > 0 {
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
                std::process::exit(1);
            }
        } else {
            // Nothing to make durable and nothing outstanding: finish synchronously.
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
        self.status
            .last_time_ms
            .store(self.last_stamp, Ordering::Release);
        self.deliver(out);
        self.resolve_reads();
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
    }
}

type Deliveries<O> = Vec<(u64, u64, Vec<O>)>;
