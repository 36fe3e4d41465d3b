//! One simulated raft node: a `RawNode<RocksStorage>` with the list state machine, driven
//! step by step by the simulation. Its Ready handling mirrors `raft_node::node` (one
//! `WriteBatch` per Ready holding the applies, the hard state and the new entries; async
//! persistence with `advance_append_async` + `on_persist_ready`; a received snapshot
//! restored synchronously; local snapshots captured at the applied index, recorded later
//! with `stage_local_snapshot`), but every side effect — messages, persistence completion,
//! snapshot generation — is handed back to the driver as [`Effects`] instead of threads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, Snapshot,
};
use raft::{Config, RawNode, StateRole};
use raft_node::storage::conf_contains;
use raft_node::RocksStorage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rocksdb::{WriteBatch, DB};

use super::sm::ListSm;

/// The raft group every simulated node belongs to.
pub const GROUP: u64 = 1;
pub const ELECTION_TICK: usize = 10;
pub const HEARTBEAT_TICK: usize = 2;

/// One applied entry, reported to the invariant checker.
#[derive(Debug, Clone)]
pub struct Applied {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
    /// State machine digest right after this entry.
    pub digest: u64,
}

/// What a node asks of the outside world after an operation.
#[derive(Default)]
pub struct Effects {
    /// Messages to send now.
    pub send: Vec<Message>,
    /// Readies handed to the log sync: (number, needs an fsync, messages to send after).
    pub persist: Vec<(u64, bool, Vec<Message>)>,
    /// Entries applied, in order.
    pub applied: Vec<Applied>,
    /// A received snapshot was restored: (index, state machine digest).
    pub restored: Option<(u64, u64)>,
    /// A local snapshot was captured; the driver records it later (generation time).
    pub snapshot_started: Option<Snapshot>,
    /// Members whose removal this node applied.
    pub removed: Vec<u64>,
    /// Human-readable notes for the trace.
    pub notes: Vec<String>,
}

/// Sizes of the database's WAL files at the last log sync: what survives a power loss.
pub type SyncedWal = Rc<RefCell<BTreeMap<String, u64>>>;

/// Records the current WAL sizes of the database in `dir` as durable (the simulated
/// `flush_wal(true)`: everything written so far survives a power loss).
pub fn record_sync(dir: &Path, synced: &SyncedWal) {
    let mut m = synced.borrow_mut();
    m.clear();
    for e in std::fs::read_dir(dir).expect("read database directory") {
        let e = e.expect("directory entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            m.insert(name, e.metadata().expect("metadata").len());
        }
    }
}

/// Simulates a power loss on a closed database: every WAL write after the last sync is
/// lost (WAL files are cut back to their synced sizes, newer ones emptied).
pub fn lose_unsynced(dir: &Path, synced: &SyncedWal) -> u64 {
    let m = synced.borrow();
    let mut lost = 0;
    for e in std::fs::read_dir(dir).expect("read database directory") {
        let e = e.expect("directory entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".log") {
            continue;
        }
        let len = e.metadata().expect("metadata").len();
        let keep = m.get(&name).copied().unwrap_or(0).min(len);
        if keep < len {
            lost += len - keep;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(e.path())
                .expect("open WAL");
            f.set_len(keep).expect("truncate WAL");
        }
    }
    lost
}

/// A deliberately broken Ready handling (env `SIM_MUTANT`), to check that the simulation
/// catches such bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// `hard-state`: never persist the hard state (term, vote, commit).
    LoseHardState,
    /// `early-ack`: send the messages that must wait for the log sync before it.
    EarlyAck,
}

impl Mutant {
    fn from_env() -> Option<Self> {
        match std::env::var("SIM_MUTANT").ok()?.as_str() {
            "hard-state" => Some(Mutant::LoseHardState),
            "early-ack" => Some(Mutant::EarlyAck),
            other => panic!("unknown SIM_MUTANT {other:?} (hard-state, early-ack)"),
        }
    }
}

/// The node crashed in the middle of an operation (an injected crash point).
#[derive(Debug)]
pub struct Crashed;

pub struct SimNode {
    pub id: u64,
    pub raw: RawNode<RocksStorage>,
    db: Arc<DB>,
    pub sm: ListSm,
    /// Index of the last applied entry.
    pub applied: u64,
    /// Readies handed to "the sync thread" and not yet reported durable.
    unpersisted: u64,
    /// Index of the local snapshot being generated.
    pub generating: Option<u64>,
    /// Drives raft's randomized election timeout deterministically.
    rng: ChaCha8Rng,
    /// (term, role) last seen: a change means raft re-randomized its election timeout.
    seen: (u64, StateRole),
    /// The database directory and its WAL sizes at the last sync.
    dir: std::path::PathBuf,
    synced: SyncedWal,
    mutant: Option<Mutant>,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

impl SimNode {
    /// Opens (or reopens after a crash) node `id` on `db`, like `raft_node::node::start`.
    pub fn open(
        id: u64,
        db: Arc<DB>,
        dir: &Path,
        synced: SyncedWal,
        voters: &[u64],
        rng: ChaCha8Rng,
        notes: &mut Vec<String>,
    ) -> Result<Self, String> {
        let storage =
            RocksStorage::open(db.clone(), GROUP, voters).map_err(|e| format!("open: {e}"))?;
        let mut sm = ListSm::load(&db);
        let mut storage = storage;
        if storage.restoring().is_some() {
            // A crash interrupted restoring a received snapshot: redo it.
            let snap = storage
                .local_snapshot()
                .ok_or("restore marker without a recorded snapshot")?
                .clone();
            let from = ListSm::decode(&snap.data)?;
            notes.push(format!(
                "n{id} redoes interrupted snapshot restore at {}",
                snap.get_metadata().index
            ));
            sm.restore(&db, from);
            let mut wb = WriteBatch::default();
            storage.stage_restored(&mut wb);
            db.write(wb).map_err(|e| e.to_string())?;
        }
        let trunc = storage.truncated_index();
        let applied = sm.applied.max(trunc);
        if sm.applied < trunc && trunc > 1 {
            return Err(format!(
                "n{id}: state machine applied index {} is behind the compacted log ({trunc})",
                sm.applied
            ));
        }
        let cfg = Config {
            id,
            election_tick: ELECTION_TICK,
            heartbeat_tick: HEARTBEAT_TICK,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        cfg.validate().map_err(|e| e.to_string())?;
        let raw = RawNode::new(&cfg, storage, &logger()).map_err(|e| format!("raw node: {e}"))?;
        let seen = (raw.raft.term, raw.raft.state);
        let mut n = SimNode {
            id,
            raw,
            db,
            sm,
            applied,
            unpersisted: 0,
            generating: None,
            rng,
            seen,
            dir: dir.to_path_buf(),
            synced,
            mutant: Mutant::from_env(),
        };
        n.draw_timeout();
        Ok(n)
    }

    fn draw_timeout(&mut self) {
        let lo = self.raw.raft.election_timeout();
        let t = self.rng.gen_range(lo..2 * lo);
        self.raw.raft.set_randomized_election_timeout(t);
    }

    /// Replaces raft's thread-rng election timeout by one from the seeded RNG whenever raft
    /// may have re-drawn it (it does so on every change of term or role).
    pub fn observe(&mut self) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now != self.seen {
            self.seen = now;
            self.draw_timeout();
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn write(&self, wb: WriteBatch) {
        if !wb.is_empty() {
            self.db.write(wb).expect("simulated node write");
        }
    }

    /// Handles every pending Ready (as `Loop::on_ready` does, repeatedly). With
    /// `crash_in_restore`, a received snapshot's restore stops right after its raft state
    /// is written (before the state machine is replaced): the node must then be dropped.
    pub fn handle_readies(
        &mut self,
        fx: &mut Effects,
        crash_in_restore: bool,
    ) -> Result<(), Crashed> {
        for _ in 0..64 {
            if !self.raw.has_ready() {
                break;
            }
            self.on_ready(fx, crash_in_restore)?;
        }
        self.observe();
        Ok(())
    }

    fn on_ready(&mut self, fx: &mut Effects, crash_in_restore: bool) -> Result<(), Crashed> {
        let mut rd = self.raw.ready();
        if !rd.messages().is_empty() {
            fx.send.extend(rd.take_messages());
        }
        let sync_now = !rd.snapshot().is_empty();
        if sync_now {
            let s = rd.snapshot().clone();
            self.restore_snapshot(&s, fx, crash_in_restore)?;
        }
        let mut wb = WriteBatch::default();
        let committed = rd.take_committed_entries();
        let applied_any = !committed.is_empty();
        self.apply_entries(&mut wb, committed, fx);
        if applied_any {
            self.sm.stage_applied(&mut wb, self.applied);
        }
        if let Some(hs) = rd.hs() {
            if self.mutant != Some(Mutant::LoseHardState) {
                self.raw.mut_store().stage_hard_state(&mut wb, hs.clone());
            }
        }
        self.raw
            .mut_store()
            .stage_append(&mut wb, rd.entries())
            .expect("stage_append");
        self.write(wb);
        self.raw.mut_store().commit_staged();
        if !sync_now && (rd.must_sync() || self.unpersisted > 0) {
            if self.mutant == Some(Mutant::EarlyAck) {
                fx.send.extend(rd.take_persisted_messages());
            }
            fx.persist
                .push((rd.number(), rd.must_sync(), rd.take_persisted_messages()));
            self.raw.advance_append_async(rd);
            self.unpersisted += 1;
        } else {
            if sync_now {
                self.sync_wal();
            }
            if !rd.persisted_messages().is_empty() {
                fx.send.extend(rd.take_persisted_messages());
            }
            let mut light = self.raw.advance_append(rd);
            let mut wb = WriteBatch::default();
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().stage_commit(&mut wb, commit);
            }
            if !light.messages().is_empty() {
                fx.send.extend(light.take_messages());
            }
            let committed = light.take_committed_entries();
            if !committed.is_empty() {
                self.apply_entries(&mut wb, committed, fx);
                self.sm.stage_applied(&mut wb, self.applied);
            }
            self.write(wb);
        }
        self.raw.advance_apply_to(self.applied);
        Ok(())
    }

    /// Proposes a one-step membership change at the leader (`Loop::propose_conf_change`);
    /// returns the entry's index.
    pub fn propose_conf_change(&mut self, t: ConfChangeType, id: u64) -> Result<u64, String> {
        if !self.is_leader() {
            return Err("not leader".into());
        }
        if self.raw.raft.has_pending_conf() {
            return Err("a membership change is already in progress".into());
        }
        let mut cc = ConfChangeV2::default();
        let mut ch = ConfChangeSingle::default();
        ch.set_change_type(t);
        ch.node_id = id;
        cc.mut_changes().push(ch);
        let before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose_conf_change(vec![], cc)
            .map_err(|e| e.to_string())?;
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            return Err("not accepted".into());
        }
        Ok(index)
    }

    /// The leader promotes a learner that caught up (`Loop::maybe_promote`).
    pub fn maybe_promote(&mut self) -> Option<u64> {
        if !self.is_leader() || self.raw.raft.has_pending_conf() {
            return None;
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
                return self
                    .propose_conf_change(ConfChangeType::AddNode, id)
                    .ok()
                    .map(|_| id);
            }
        }
        None
    }

    /// The log sync: everything written so far is durable.
    pub fn sync_wal(&self) {
        record_sync(&self.dir, &self.synced);
    }

    /// The writes of the Ready `number` (and all before it) are durable (the driver called
    /// [`SimNode::sync_wal`] first, as the sync thread does before reporting).
    pub fn on_persisted(&mut self, number: u64) {
        self.unpersisted -= 1;
        self.raw.on_persist_ready(number);
    }

    fn apply_entries(&mut self, wb: &mut WriteBatch, ents: Vec<Entry>, fx: &mut Effects) {
        for e in ents {
            match e.get_entry_type() {
                EntryType::EntryNormal => self.sm.apply(wb, e.index, &e.data),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data).map(|cc| {
                            let mut v2 = ConfChangeV2::default();
                            let mut ch = ConfChangeSingle::default();
                            ch.set_change_type(cc.get_change_type());
                            ch.node_id = cc.node_id;
                            v2.mut_changes().push(ch);
                            v2
                        })
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data)
                    }
                    .expect("undecodable conf change");
                    match self.raw.apply_conf_change(&cc) {
                        Ok(cs) => {
                            for ch in cc.get_changes() {
                                if ch.get_change_type() == ConfChangeType::RemoveNode
                                    && !conf_contains(&cs, ch.node_id)
                                {
                                    fx.removed.push(ch.node_id);
                                }
                            }
                            fx.notes.push(format!(
                                "n{} applies conf change at {}: voters {:?} learners {:?}",
                                self.id, e.index, cs.voters, cs.learners
                            ));
                            self.raw.mut_store().stage_conf_state(wb, cs);
                        }
                        Err(err) => fx.notes.push(format!(
                            "n{} rejects conf change at {}: {err}",
                            self.id, e.index
                        )),
                    }
                }
            }
            self.applied = e.index;
            fx.applied.push(Applied {
                index: e.index,
                term: e.term,
                data: e.data.to_vec(),
                digest: self.sm.digest,
            });
        }
    }

    /// Replaces log and state machine with a received snapshot (`Loop::restore_snapshot`).
    fn restore_snapshot(
        &mut self,
        s: &Snapshot,
        fx: &mut Effects,
        crash_in_restore: bool,
    ) -> Result<(), Crashed> {
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let from = ListSm::decode(&s.data).expect("undecodable snapshot data");
        assert_eq!(
            from.applied, index,
            "snapshot data is not the state at its index"
        );
        let mut wb = WriteBatch::default();
        self.raw
            .mut_store()
            .stage_received_snapshot(&mut wb, s.clone(), &format!("snap-{term}-{index}"))
            .expect("stage_received_snapshot");
        self.write(wb);
        self.sync_wal();
        if crash_in_restore {
            fx.notes.push(format!(
                "n{} crashes while restoring snapshot {index}",
                self.id
            ));
            return Err(Crashed);
        }
        self.sm.restore(&self.db, from);
        let mut wb = WriteBatch::default();
        self.raw.mut_store().stage_restored(&mut wb);
        self.write(wb);
        self.applied = index;
        fx.restored = Some((index, self.sm.digest));
        fx.notes.push(format!(
            "n{} restored snapshot at {index} (term {term})",
            self.id
        ));
        Ok(())
    }

    /// Starts a local snapshot (`Loop::maybe_snapshot`) when the log since the last one
    /// reached `every` entries, raft asked for one, or `force`.
    pub fn maybe_snapshot(&mut self, every: u64, force: bool, fx: &mut Effects) {
        if self.generating.is_some() {
            return;
        }
        let wanted = self.raw.store().take_snapshot_wanted();
        let trunc = self.raw.store().truncated_index();
        let long = every > 0 && self.applied >= trunc + every;
        if !(wanted || long || force) {
            return;
        }
        let index = self.applied;
        let have = self
            .raw
            .store()
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        if index <= have || index <= 1 {
            return;
        }
        let Ok(term) = self.raw.raft.raft_log.term(index) else {
            return;
        };
        assert_eq!(self.sm.applied, index, "state machine behind applied index");
        let mut s = Snapshot {
            data: self.sm.encode().into(),
            ..Default::default()
        };
        let m = s.mut_metadata();
        m.index = index;
        m.term = term;
        m.set_conf_state(self.raw.store().conf_state().clone());
        self.generating = Some(index);
        fx.snapshot_started = Some(s);
    }

    /// A snapshot generation ended (`Loop::on_snapshot_generated`): record it and compact.
    pub fn on_snapshot_generated(&mut self, s: Snapshot, fx: &mut Effects) {
        self.generating = None;
        let index = s.get_metadata().index;
        if index <= self.raw.store().truncated_index() {
            fx.notes.push(format!(
                "n{} discards snapshot {index}: overtaken by a received one",
                self.id
            ));
            return;
        }
        let mut wb = WriteBatch::default();
        self.raw
            .mut_store()
            .stage_local_snapshot(&mut wb, s)
            .expect("stage_local_snapshot");
        self.write(wb);
        fx.notes
            .push(format!("n{} compacted its log up to {index}", self.id));
    }
}
