//! `raft::Storage` on RocksDB: the raft log, hard state and conf state of one Raft group,
//! kept in the `raft` column family of the node's shared database.
//!
//! Writes are never done here directly: the Ready loop stages them into its one
//! `WriteBatch` per Ready (together with the state machine's applies), writes it with one
//! sync, and then calls [`RocksStorage::commit_staged`] so the in-memory view follows.
//! Keys carry the group id so that many groups can share one database.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{WriteBatch, DB};

use crate::entry_cache::{CacheBudget, EntryCache, SizeLimit};

/// Column family holding raft state.
pub const CF_RAFT: &str = "raft";

const TAG_ENTRY: u8 = 1;
const TAG_HARD: u8 = 2;
const TAG_CONF: u8 = 3;
const TAG_TRUNC: u8 = 4;
/// The latest local snapshot (an encoded `eraftpb::Snapshot`; its data is a descriptor).
const TAG_SNAP: u8 = 5;
/// A received snapshot whose files are being restored into the store (its directory name).
const TAG_RESTORING: u8 = 6;
/// The address book: `[TAG_PEER][group][peer id]` → raft address.
const TAG_PEER: u8 = 7;
/// The cluster identity (an encoded `ClusterIdentity`), kept by `node::identity`.
pub(crate) const TAG_IDENTITY: u8 = 0x20;
/// Present while a founder that started with an empty data dir has not yet learned that it
/// never took part in the cluster (`node::identity`).
pub(crate) const TAG_GUARD: u8 = 0x21;
/// Why this node refused to start (it lost its data after taking part in the cluster).
pub(crate) const TAG_REFUSED: u8 = 0x22;
/// The last stamp applied (also of entries with no commands, which the state machine does
/// not see), kept by `clock`.
pub(crate) const TAG_STAMP: u8 = 0x23;

pub(crate) fn meta_key(tag: u8, group: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&group.to_be_bytes());
    k
}

/// Every tag the group's records are kept under.
const TAGS: [u8; 11] = [
    TAG_ENTRY,
    TAG_HARD,
    TAG_CONF,
    TAG_TRUNC,
    TAG_SNAP,
    TAG_RESTORING,
    TAG_PEER,
    TAG_IDENTITY,
    TAG_GUARD,
    TAG_REFUSED,
    TAG_STAMP,
];

/// Deletes every raft record of `group` (its log, hard state, configuration, snapshot
/// record, address book, identity), synced: a group this node no longer hosts.
pub fn destroy(db: &DB, group: u64) -> Result<(), raft::Error> {
    let cf = db
        .cf_handle(CF_RAFT)
        .ok_or_else(|| storage_err("missing raft column family"))?;
    let mut wb = WriteBatch::default();
    for tag in TAGS {
        let from = meta_key(tag, group);
        let to = match group.checked_add(1) {
            Some(next) => meta_key(tag, next),
            None => vec![tag + 1],
        };
        wb.delete_range_cf(cf, from, to);
    }
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(wb, &wo).map_err(storage_err)
}

fn entry_key(group: u64, index: u64) -> Vec<u8> {
    let mut k = meta_key(TAG_ENTRY, group);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn storage_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// Raft log storage of one group.
pub struct RocksStorage {
    db: Arc<DB>,
    group: u64,
    hard: HardState,
    conf: ConfState,
    /// Index and term of the last entry compacted away (0, 0 when none).
    trunc_index: u64,
    trunc_term: u64,
    last_index: u64,
    /// Tail of the log, contiguous, ending at `last_index` (bounded: see `entry_cache`).
    cache: EntryCache,
    /// Entries staged in the current batch but not yet written.
    staged: Vec<Entry>,
    /// The latest local snapshot, if any.
    snap: Option<Snapshot>,
    /// Set when raft asked for a snapshot this storage could not give: the Ready loop
    /// then generates one.
    want_snapshot: Cell<bool>,
    /// Set when raft asked for the latest local snapshot while its files are still to be
    /// made (see [`pending`]): the Ready loop then makes them.
    want_files: Cell<bool>,
    /// Known raft addresses of members.
    peers: HashMap<u64, String>,
    /// Directory of a received snapshot not yet fully restored into the store.
    restoring: Option<String>,
    /// This open created the group's state as a founding member (an empty data dir).
    founded_now: bool,
}

fn peer_key(group: u64, id: u64) -> Vec<u8> {
    let mut k = meta_key(TAG_PEER, group);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// True when `id` is part of the configuration (as voter, outgoing voter or learner).
pub fn conf_contains(cs: &ConfState, id: u64) -> bool {
    cs.voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing)
        .any(|&v| v == id)
}

impl RocksStorage {
    /// Opens the group's raft state. A group never seen before with founding `voters`
    /// starts as if from an empty snapshot at index 1, term 1 holding that configuration
    /// (all founding members start identically; a member added later has no entry 1 and so
    /// is always brought up by a real snapshot, which carries the configuration). With no
    /// voters (a node that joins an existing cluster) it starts empty and waits for the
    /// leader.
    pub fn open(db: Arc<DB>, group: u64, voters: &[u64]) -> Result<Self, raft::Error> {
        Self::open_cached(db, group, voters, CacheBudget::default_bounds())
    }

    /// [`RocksStorage::open`] with the entry cache counted in the node's `budget`.
    pub fn open_cached(
        db: Arc<DB>,
        group: u64,
        voters: &[u64],
        budget: Arc<CacheBudget>,
    ) -> Result<Self, raft::Error> {
        let cf = db
            .cf_handle(CF_RAFT)
            .ok_or_else(|| storage_err("missing raft column family"))?;
        let get = |k: Vec<u8>| db.get_cf(cf, k).map_err(storage_err);
        let hard = match get(meta_key(TAG_HARD, group))? {
            Some(v) => HardState::parse_from_bytes(&v).map_err(storage_err)?,
            None => HardState::default(),
        };
        let fresh = get(meta_key(TAG_CONF, group))?.is_none();
        let conf = match get(meta_key(TAG_CONF, group))? {
            Some(v) => ConfState::parse_from_bytes(&v).map_err(storage_err)?,
            None => ConfState {
                voters: voters.to_vec(),
                ..Default::default()
            },
        };
        let bootstrap = fresh && !voters.is_empty();
        let (trunc_index, trunc_term) = match get(meta_key(TAG_TRUNC, group))? {
            Some(v) if v.len() == 16 => (
                u64::from_be_bytes(v[..8].try_into().map_err(storage_err)?),
                u64::from_be_bytes(v[8..].try_into().map_err(storage_err)?),
            ),
            _ if bootstrap => (1, 1),
            _ => (0, 0),
        };
        let hard = if bootstrap {
            HardState {
                term: 1,
                commit: 1,
                ..Default::default()
            }
        } else {
            hard
        };
        let snap = match get(meta_key(TAG_SNAP, group))? {
            Some(v) => Some(Snapshot::parse_from_bytes(&v).map_err(storage_err)?),
            None => None,
        };
        let restoring =
            get(meta_key(TAG_RESTORING, group))?.map(|v| String::from_utf8_lossy(&v).into_owned());
        let mut peers = HashMap::new();
        {
            let prefix = meta_key(TAG_PEER, group);
            let mut iter = db.raw_iterator_cf(cf);
            iter.seek(&prefix);
            while iter.valid() {
                let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                    break;
                };
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    break;
                }
                let id = u64::from_be_bytes(k[prefix.len()..].try_into().map_err(storage_err)?);
                peers.insert(id, String::from_utf8_lossy(v).into_owned());
                iter.next();
            }
            iter.status().map_err(storage_err)?;
        }
        // Find the last entry by seeking to the end of this group's entry range.
        let mut last_index = trunc_index;
        {
            let mut iter = db.raw_iterator_cf(cf);
            iter.seek_for_prev(entry_key(group, u64::MAX));
            if iter.valid() {
                if let Some(k) = iter.key() {
                    if k.len() == 17 && k[..9] == meta_key(TAG_ENTRY, group)[..] {
                        last_index = u64::from_be_bytes(k[9..].try_into().map_err(storage_err)?);
                    }
                }
            }
            iter.status().map_err(storage_err)?;
        }
        let mut s = RocksStorage {
            db,
            group,
            hard,
            conf,
            trunc_index,
            trunc_term,
            last_index,
            cache: EntryCache::new(budget),
            staged: Vec::new(),
            snap,
            want_snapshot: Cell::new(false),
            want_files: Cell::new(false),
            peers,
            restoring,
            founded_now: bootstrap,
        };
        if fresh {
            // Persist the founding configuration so a restart sees the same one.
            let mut wb = WriteBatch::default();
            s.stage_conf_state(&mut wb, s.conf.clone());
            if bootstrap {
                s.stage_hard_state(&mut wb, s.hard.clone());
                s.stage_trunc(&mut wb, 1, 1);
            }
            s.db.write(wb).map_err(storage_err)?;
        }
        // Warm the cache with the log tail.
        if trunc_index < last_index {
            let db = s.db.clone();
            let cf = db
                .cf_handle(CF_RAFT)
                .ok_or_else(|| storage_err("missing raft column family"))?;
            s.cache.warm(&db, cf, trunc_index + 1, last_index, |i| {
                entry_key(group, i)
            })?;
        }
        Ok(s)
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, raft::Error> {
        self.db
            .cf_handle(CF_RAFT)
            .ok_or_else(|| storage_err("missing raft column family"))
    }

    /// Stages appending `ents` (truncating any conflicting suffix).
    pub fn stage_append(&mut self, wb: &mut WriteBatch, ents: &[Entry]) -> Result<(), raft::Error> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        let cf = self.cf()?;
        for e in ents {
            wb.put_cf(
                cf,
                entry_key(self.group, e.index),
                e.write_to_bytes().map_err(storage_err)?,
            );
        }
        let new_last = first.index + ents.len() as u64 - 1;
        if new_last < self.last_index {
            wb.delete_range_cf(
                cf,
                entry_key(self.group, new_last + 1),
                entry_key(self.group, self.last_index + 1),
            );
        }
        self.staged.extend_from_slice(ents);
        Ok(())
    }

    /// Stages a new hard state.
    pub fn stage_hard_state(&mut self, wb: &mut WriteBatch, hs: HardState) {
        if let (Ok(cf), Ok(v)) = (self.cf(), hs.write_to_bytes()) {
            wb.put_cf(cf, meta_key(TAG_HARD, self.group), v);
        }
        self.hard = hs;
    }

    /// Stages a new commit index (from a `LightReady`).
    pub fn stage_commit(&mut self, wb: &mut WriteBatch, commit: u64) {
        let mut hs = self.hard.clone();
        hs.commit = commit;
        self.stage_hard_state(wb, hs);
    }

    /// Stages a new configuration.
    pub fn stage_conf_state(&mut self, wb: &mut WriteBatch, cs: ConfState) {
        if let (Ok(cf), Ok(v)) = (self.cf(), cs.write_to_bytes()) {
            wb.put_cf(cf, meta_key(TAG_CONF, self.group), v);
        }
        self.conf = cs;
    }

    fn stage_trunc(&mut self, wb: &mut WriteBatch, index: u64, term: u64) {
        if let Ok(cf) = self.cf() {
            let mut v = index.to_be_bytes().to_vec();
            v.extend_from_slice(&term.to_be_bytes());
            wb.put_cf(cf, meta_key(TAG_TRUNC, self.group), v);
        }
        self.trunc_index = index;
        self.trunc_term = term;
    }

    /// Records a snapshot generated locally at `snap`'s index (≤ the applied index) and
    /// compacts the log up to it.
    pub fn stage_local_snapshot(
        &mut self,
        wb: &mut WriteBatch,
        snap: Snapshot,
    ) -> Result<(), raft::Error> {
        let index = snap.get_metadata().index;
        let term = snap.get_metadata().term;
        if index <= self.trunc_index {
            return Ok(());
        }
        let cf = self.cf()?;
        wb.put_cf(
            cf,
            meta_key(TAG_SNAP, self.group),
            snap.write_to_bytes().map_err(storage_err)?,
        );
        wb.delete_range_cf(
            cf,
            entry_key(self.group, 0),
            entry_key(self.group, index + 1),
        );
        self.stage_trunc(wb, index, term);
        self.cache.compact_to(index);
        self.snap = Some(snap);
        Ok(())
    }

    /// Stages replacing the whole log by a received snapshot (the store is restored from
    /// the files in `dir` right after; `dir` is recorded so a crash in between redoes it).
    pub fn stage_received_snapshot(
        &mut self,
        wb: &mut WriteBatch,
        snap: Snapshot,
        dir: &str,
    ) -> Result<(), raft::Error> {
        let meta = snap.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let cf = self.cf()?;
        wb.put_cf(
            cf,
            meta_key(TAG_SNAP, self.group),
            snap.write_to_bytes().map_err(storage_err)?,
        );
        wb.put_cf(cf, meta_key(TAG_RESTORING, self.group), dir.as_bytes());
        wb.delete_range_cf(
            cf,
            entry_key(self.group, 0),
            entry_key(self.group, u64::MAX),
        );
        self.stage_conf_state(wb, meta.get_conf_state().clone());
        let mut hs = self.hard.clone();
        hs.commit = hs.commit.max(index);
        hs.term = hs.term.max(term);
        self.stage_hard_state(wb, hs);
        self.stage_trunc(wb, index, term);
        self.last_index = index;
        self.cache.clear();
        self.staged.clear();
        self.restoring = Some(dir.to_string());
        self.snap = Some(snap);
        Ok(())
    }

    /// The store holds the received snapshot's state now.
    pub fn stage_restored(&mut self, wb: &mut WriteBatch) {
        if let Ok(cf) = self.cf() {
            wb.delete_cf(cf, meta_key(TAG_RESTORING, self.group));
        }
        self.restoring = None;
    }

    /// Directory of a received snapshot whose restore was interrupted.
    pub fn restoring(&self) -> Option<&str> {
        self.restoring.as_deref()
    }

    /// The latest local snapshot.
    pub fn local_snapshot(&self) -> Option<&Snapshot> {
        self.snap.as_ref()
    }

    /// Directory name of the latest local snapshot (see [`crate::snap::done_name`]).
    pub fn local_snapshot_name(&self) -> Option<String> {
        self.snap.as_ref().map(|s| {
            let m = s.get_metadata();
            crate::snap::done_name(m.term, m.index)
        })
    }

    /// True (once) when raft asked for a snapshot this storage could not give.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.want_snapshot.replace(false)
    }

    /// Index of the last entry compacted away.
    pub fn truncated_index(&self) -> u64 {
        self.trunc_index
    }

    /// The current configuration as persisted (staged) by the apply path.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }

    /// True when this open created the group's state as a founding member: the data dir
    /// held nothing for the group (see `node::identity`).
    pub fn founded_now(&self) -> bool {
        self.founded_now
    }

    /// Known member addresses.
    pub fn peers(&self) -> &HashMap<u64, String> {
        &self.peers
    }

    /// Stages a member's address.
    pub fn stage_peer(&mut self, wb: &mut WriteBatch, id: u64, addr: &str) {
        if let Ok(cf) = self.cf() {
            wb.put_cf(cf, peer_key(self.group, id), addr.as_bytes());
        }
        self.peers.insert(id, addr.to_string());
    }

    /// Stages forgetting a member's address.
    pub fn stage_forget_peer(&mut self, wb: &mut WriteBatch, id: u64) {
        if let Ok(cf) = self.cf() {
            wb.delete_cf(cf, peer_key(self.group, id));
        }
        self.peers.remove(&id);
    }

    /// The batch holding staged entries was written: make them visible.
    pub fn commit_staged(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        if staged.is_empty() {
            return;
        }
        self.last_index = staged.last().map_or(self.last_index, |e| e.index);
        self.cache.append(staged);
    }

    /// Entries `low..high` from disk, as far as `limit` admits them.
    fn read_entries(
        &self,
        low: u64,
        high: u64,
        limit: &mut SizeLimit,
    ) -> Result<Vec<Entry>, raft::Error> {
        let cf = self.cf()?;
        let mut out = Vec::new();
        let mut iter = self.db.raw_iterator_cf(cf);
        iter.seek(entry_key(self.group, low));
        let mut want = low;
        while want < high && iter.valid() {
            let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                break;
            };
            if k != entry_key(self.group, want).as_slice() {
                break;
            }
            let e = Entry::parse_from_bytes(v).map_err(storage_err)?;
            if !limit.admits(&e) {
                return Ok(out);
            }
            out.push(e);
            want += 1;
            iter.next();
        }
        iter.status().map_err(storage_err)?;
        if want != high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    /// The entry cache (for its figures).
    pub fn cache(&self) -> &EntryCache {
        &self.cache
    }
}

impl raft::Storage for RocksStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard.clone(),
            conf_state: self.conf.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.trunc_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(storage_err(format!(
                "entries [{low}, {high}) beyond last index {}",
                self.last_index
            )));
        }
        // Only the entries within `max_size` are copied or read.
        let mut limit = SizeLimit::new(max_size.into());
        match self.cache.range(low, high, &mut limit) {
            Some(ents) => Ok(ents),
            None => self.read_entries(low, high, &mut limit),
        }
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.trunc_index {
            return Ok(self.trunc_term);
        }
        if idx < self.trunc_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if let Some(e) = self.cache.get(idx) {
            return Ok(e.term);
        }
        let ents = self.read_entries(idx, idx + 1, &mut SizeLimit::new(None))?;
        ents.first()
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.trunc_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // The latest local snapshot serves when it is recent enough and its configuration
        // includes the receiver (raft-rs followers refuse a snapshot that leaves them out);
        // otherwise the Ready loop is asked to generate a fresh one and raft retries later.
        if let Some(s) = &self.snap {
            let m = s.get_metadata();
            if m.index >= request_index
                && m.index >= self.trunc_index
                && conf_contains(m.get_conf_state(), to)
            {
                if !pending::is_pending(s) {
                    return Ok(s.clone());
                }
                self.want_files.set(true);
                return Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ));
            }
        }
        self.want_snapshot.set(true);
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

pub(crate) mod pending;
#[cfg(test)]
mod tests;
