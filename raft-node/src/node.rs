//! The public face of the consensus layer: what a group is configured with
//! ([`NodeConfig`]), the state machine it applies to ([`StateMachine`]), where its messages
//! go ([`MessageSink`]), what it can be asked ([`Msg`], through a per-group [`NodeHandle`])
//! and how a request fails ([`NodeError`]).
//!
//! One node runs many Raft groups: each group's logic is a sans-IO [`crate::peer::Peer`]
//! and ONE driver thread ([`crate::driver`]) serves all of them, with one `WriteBatch` and
//! one WAL fsync per round for every group. [`start`] runs a node with one group (tests,
//! tools); [`start_groups`] with several.
//!
//! A storage error stops the process (fail-stop): a node that cannot persist must not ack.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft::eraftpb::{ConfChangeV2, ConfState, Message, Snapshot};
use rocksdb::{WriteBatch, DB};
use slog::Logger;
use tokio::sync::oneshot;

pub use crate::entry_cache::CacheBudget;
pub use crate::status::{
    Members, Status, ROLE_CANDIDATE, ROLE_FOLLOWER, ROLE_LEADER, ROLE_PRECANDIDATE,
};

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
    /// The byte bounds the group's log cache is counted in (the driver gives every group
    /// its node's [`DriverConfig::log_cache`]; None: bounds of the group's own).
    pub log_cache: Option<Arc<CacheBudget>>,
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
            log_cache: None,
        }
    }
}

/// Node-wide settings of the driver (shared by every group it serves).
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// This node's raft id.
    pub id: u64,
    /// Raft tick interval.
    pub tick: Duration,
    /// Byte bounds of the groups' log caches, per group and node-wide (see
    /// [`crate::entry_cache`]).
    pub log_cache: Arc<CacheBudget>,
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
    /// True when `cmd` (one encoded command) may have to wait for another group of this
    /// node before it applies ([`StateMachine::must_wait`]); its entry is then marked so
    /// that only marked entries are checked.
    fn may_wait(_cmd: &[u8]) -> bool
    where
        Self: Sized,
    {
        false
    }
    /// True when the marked entry of `commands` must not apply yet: the peer stops applying
    /// before it (nothing of it is staged) and tries again each tick.
    fn must_wait(&self, _commands: &[Vec<u8>]) -> bool {
        false
    }
    /// True when the waiting entry of `commands` can only be passed by a snapshot of the
    /// group (this node's state for it cannot be built from the log): the peer asks its
    /// leader for one (a leader hands its leadership over first).
    fn needs_snapshot(&self, _commands: &[Vec<u8>]) -> bool {
        false
    }
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
    /// Like [`StateMachine::snapshot_export`], but may capture the state only (cheaply,
    /// e.g. a checkpoint of its database) and leave the files a receiver needs to
    /// [`StateMachine::snapshot_materialize`], called when a follower needs the snapshot.
    /// Returns the job and whether it left the files to make. By default: the export.
    fn snapshot_capture(&mut self, dir: PathBuf) -> Result<(SnapshotJob, bool), String> {
        Ok((self.snapshot_export(dir)?, false))
    }
    /// Returns the job (run on another thread) that makes the files of a snapshot in `dir`
    /// that [`StateMachine::snapshot_capture`] captured only. Redone from the start after
    /// a crash.
    fn snapshot_materialize(&mut self, _dir: PathBuf) -> Result<SnapshotJob, String> {
        Err("this state machine leaves no snapshot files to make".into())
    }
    /// Replaces the whole state with the snapshot files in `dir`.
    fn snapshot_restore(&mut self, dir: &Path) -> Result<(), String>;
}
/// Writes a captured snapshot's files.
pub type SnapshotJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// A raft message of one group.
pub type GroupMessage = (u64, Message);

/// Where outgoing raft messages go (the peer transport).
pub trait MessageSink: Clone + Send + 'static {
    /// Sends messages of any groups; messages to one node may travel in one frame.
    fn send(&self, msgs: Vec<GroupMessage>);
    /// A node's address became known (`Some`) or no group of this node has it as a member
    /// any more (`None`).
    fn set_peer(&self, _id: u64, _addr: Option<String>) {}
    /// Sends a removed member of `group` (which may never learn it from the log: the leader
    /// stops replicating to it) `notice`, a raft message carrying the entries up to its
    /// removal and a commit index covering them, so it applies its own removal.
    fn notify_removed(&self, _group: u64, _id: u64, _notice: Message) {}
}

/// The [`NodeError::Refused`] text of a membership change proposed while another one is
/// still under way (the caller may retry once it is done).
pub const CHANGE_IN_PROGRESS: &str = "a membership change is already in progress";

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

/// What starting a node gives: one handle per group, and the driver thread.
pub type Started<O> = (Vec<NodeHandle<O>>, std::thread::JoinHandle<()>);

/// What a group's peer accepts (through its [`NodeHandle`]).
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
    /// Stop the whole node (every group).
    Stop,
}

/// What the driver thread's inbox carries.
pub(crate) enum Input<O> {
    /// A message for one group.
    Group(u64, Msg<O>),
    /// The sync thread made these Readies durable: (group, ready number) each.
    Persisted(Vec<(u64, u64)>),
    /// Open a new group's peer at runtime (an [`AddGroup`] of the driver's state machine
    /// type, boxed: the inbox is typed by the output only).
    AddGroup(Box<dyn std::any::Any + Send>),
    /// Stop a group's peer and delete its raft records ([`NodeHandle::remove_group`]).
    RemoveGroup(u64, oneshot::Sender<Result<(), String>>),
}

/// What opening a group at runtime answers: its handle, or why it could not be opened.
pub type Added<O> = Result<NodeHandle<O>, String>;

/// A request to open a group's peer at runtime ([`NodeHandle::add_group`]).
pub(crate) struct AddGroup<S: StateMachine> {
    pub cfg: NodeConfig,
    pub sm: S,
    pub reply: oneshot::Sender<Added<S::Output>>,
}

/// Ends the process at once after a storage (or other unrecoverable) error has been logged:
/// no destructors run, so nothing races the threads still using RocksDB, and nothing more
/// is written or acknowledged. (The binary logs critical records synchronously.)
pub fn die() -> ! {
    if DIE_PANICS.load(std::sync::atomic::Ordering::Relaxed) {
        panic!("fail-stop: die() called (the reason is logged just before)");
    }
    // SAFETY: _exit only ends the process; it touches no Rust state.
    unsafe { libc::_exit(1) }
}

/// See [`die_panics`].
static DIE_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`die`] panic instead of ending the process, for the whole process: the
/// simulation runs many simulated nodes in one process and reports a fail-stop as the
/// failure of the seed that hit it. Never called by the binary.
pub fn die_panics() {
    DIE_PANICS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Handle used by other threads to talk to one group's peer.
pub struct NodeHandle<O> {
    pub(crate) group: u64,
    pub(crate) tx: Sender<Input<O>>,
    pub status: Arc<Status>,
}

impl<O> Clone for NodeHandle<O> {
    fn clone(&self) -> Self {
        NodeHandle {
            group: self.group,
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }
}

impl<O: Send + 'static> NodeHandle<O> {
    /// The group this handle talks to.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// Sends a message to the group (dropped silently if the node stopped).
    pub fn send(&self, m: Msg<O>) {
        let _ = self.tx.send(Input::Group(self.group, m));
    }

    /// Hands the node a peer's raft message of any `group` (the driver drops those of
    /// groups it does not host; group 0 carries the node keepalives).
    pub fn deliver(&self, group: u64, m: Message) {
        let _ = self.tx.send(Input::Group(group, Msg::Raft(Box::new(m))));
    }

    /// Asks the node's driver to open group `cfg.group_id` now (its storage bootstrapped
    /// with `cfg.voters` when new, as at start) over state machine `sm`; resolves to the
    /// group's handle. Opening a group the node already hosts answers its handle.
    pub fn add_group<S>(&self, cfg: NodeConfig, sm: S) -> oneshot::Receiver<Added<O>>
    where
        S: StateMachine<Output = O>,
    {
        let (reply, rx) = oneshot::channel();
        let req: AddGroup<S> = AddGroup { cfg, sm, reply };
        let _ = self.tx.send(Input::AddGroup(Box::new(req)));
        rx
    }

    /// Asks the node's driver to stop group `group`'s peer and delete its raft records (its
    /// log, state and configuration); resolves once done. Requests still waiting on the
    /// group fail as at a stop. A group not hosted is done at once.
    pub fn remove_group(&self, group: u64) -> oneshot::Receiver<Result<(), String>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Input::RemoveGroup(group, reply));
        rx
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

/// Wall-clock milliseconds since the Unix epoch (the time leaders stamp on commits).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts a node serving one group (its driver thread).
pub fn start<S: StateMachine, K: MessageSink>(
    cfg: NodeConfig,
    db: Arc<DB>,
    sm: S,
    sink: K,
    logger: &Logger,
) -> Result<(NodeHandle<S::Output>, std::thread::JoinHandle<()>), raft::Error> {
    let driver = DriverConfig {
        id: cfg.id,
        tick: cfg.tick,
        log_cache: cfg
            .log_cache
            .clone()
            .unwrap_or_else(CacheBudget::default_bounds),
    };
    let (mut handles, th) = start_groups(driver, vec![(cfg, sm)], db, sink, logger)?;
    let h = handles
        .pop()
        .ok_or(raft::Error::ConfigInvalid("no group".into()))?;
    Ok((h, th))
}

/// Starts a node serving several groups over one database: one driver thread for all of
/// them. Returns one handle per group, in the order given.
pub fn start_groups<S: StateMachine, K: MessageSink>(
    driver: DriverConfig,
    groups: Vec<(NodeConfig, S)>,
    db: Arc<DB>,
    sink: K,
    logger: &Logger,
) -> Result<Started<S::Output>, raft::Error> {
    crate::driver::spawn(driver, groups, db, sink, logger)
}

/// A peer's snapshot directory: one per group under the node's snapshot root.
pub fn group_snap_dir(root: &Path, group: u64) -> PathBuf {
    root.join(format!("group-{group}"))
}
