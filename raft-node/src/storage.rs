//! `raft::Storage` on RocksDB: the raft log, hard state and conf state of one Raft group,
//! kept in the `raft` column family of the node's shared database.
//!
//! Writes are never done here directly: the Ready loop stages them into its one
//! `WriteBatch` per Ready (together with the state machine's applies), writes it with one
//! sync, and then calls [`RocksStorage::commit_staged`] so the in-memory view follows.
//! Keys carry the group id so that many groups can share one database.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rocksdb::{WriteBatch, DB};

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

/// Entries kept in memory for fast `entries()`/`term()` on the replication path.
const CACHE_ENTRIES: usize = 8192;
/// At most this many bytes of the log tail are read into the cache when the storage opens:
/// the tail may be far larger (a follower that never snapshots keeps its whole log, up to
/// 1 GB in the restart benchmark), and reading all of it delayed serving by seconds. Later
/// reads past the cache go to disk.
const WARM_BYTES: usize = 16 << 20;

pub(crate) fn meta_key(tag: u8, group: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&group.to_be_bytes());
    k
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
    /// Tail of the log, contiguous, ending at `last_index`.
    cache: VecDeque<Entry>,
    /// Entries staged in the current batch but not yet written.
    staged: Vec<Entry>,
    /// The latest local snapshot, if any.
    snap: Option<Snapshot>,
    /// Set when raft asked for a snapshot this storage could not give: the Ready loop
    /// then generates one.
    want_snapshot: Cell<bool>,
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
            cache: VecDeque::new(),
            staged: Vec::new(),
            snap,
            want_snapshot: Cell::new(false),
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
        let lo = last_index
            .saturating_sub(CACHE_ENTRIES as u64)
            .max(trunc_index + 1);
        if lo <= last_index {
            let ents = s.read_tail(lo, last_index, WARM_BYTES)?;
            s.cache.extend(ents);
        }
        Ok(s)
    }

    /// The longest suffix of entries `lo..=last` whose encoded sizes add up to at most
    /// `budget` bytes, read backwards from `last` (oldest first in the result).
    fn read_tail(&self, lo: u64, last: u64, budget: usize) -> Result<Vec<Entry>, raft::Error> {
        let cf = self.cf()?;
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut iter = self.db.raw_iterator_cf(cf);
        iter.seek_for_prev(entry_key(self.group, last));
        let mut want = last;
        while want >= lo && iter.valid() {
            let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                break;
            };
            bytes += v.len();
            if k != entry_key(self.group, want).as_slice() || bytes > budget {
                break;
            }
            out.push(Entry::parse_from_bytes(v).map_err(storage_err)?);
            want -= 1;
            iter.prev();
        }
        iter.status().map_err(storage_err)?;
        out.reverse();
        Ok(out)
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
        while self.cache.front().is_some_and(|e| e.index <= index) {
            self.cache.pop_front();
        }
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
        let Some(first) = staged.first() else {
            return;
        };
        // Drop any cached suffix the new entries replace.
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            self.cache.pop_back();
        }
        if self
            .cache
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.cache.clear();
        }
        self.last_index = staged.last().map_or(self.last_index, |e| e.index);
        self.cache.extend(staged);
        while self.cache.len() > CACHE_ENTRIES {
            self.cache.pop_front();
        }
    }

    fn read_entries(&self, low: u64, high: u64) -> Result<Vec<Entry>, raft::Error> {
        let cf = self.cf()?;
        let mut out = Vec::with_capacity((high - low) as usize);
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
            out.push(Entry::parse_from_bytes(v).map_err(storage_err)?);
            want += 1;
            iter.next();
        }
        iter.status().map_err(storage_err)?;
        if want != high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    fn cached(&self, idx: u64) -> Option<&Entry> {
        let front = self.cache.front()?.index;
        if idx < front {
            return None;
        }
        self.cache.get((idx - front) as usize)
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
        let mut ents = match self.cache.front() {
            Some(f) if f.index <= low => (low..high)
                .filter_map(|i| self.cached(i).cloned())
                .collect::<Vec<_>>(),
            _ => self.read_entries(low, high)?,
        };
        if ents.len() as u64 != high - low {
            ents = self.read_entries(low, high)?;
        }
        if let Some(max) = max_size.into() {
            let mut size = 0u64;
            let mut keep = 0;
            for e in &ents {
                size += e.compute_size() as u64;
                if keep > 0 && size > max {
                    break;
                }
                keep += 1;
            }
            ents.truncate(keep);
        }
        Ok(ents)
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
        if let Some(e) = self.cached(idx) {
            return Ok(e.term);
        }
        Ok(self.read_entries(idx, idx + 1)?[0].term)
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
                return Ok(s.clone());
            }
        }
        self.want_snapshot.set(true);
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn open_db(dir: &std::path::Path) -> Arc<DB> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        Arc::new(DB::open_cf(&opts, dir, [CF_RAFT]).unwrap())
    }

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn append(s: &mut RocksStorage, ents: &[Entry]) {
        let mut wb = WriteBatch::default();
        s.stage_append(&mut wb, ents).unwrap();
        s.db.write(wb).unwrap();
        s.commit_staged();
    }

    #[test]
    fn empty_log_contract() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(open_db(dir.path()), 1, &[]).unwrap();
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        assert!(matches!(
            s.term(1),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        let st = s.initial_state().unwrap();
        assert!(st.conf_state.voters.is_empty());
        assert_eq!(st.hard_state, HardState::default());
        assert!(matches!(
            s.snapshot(0, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.take_snapshot_wanted());
    }

    #[test]
    fn founding_members_start_from_index_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let s = RocksStorage::open(db.clone(), 1, &[1, 2, 3]).unwrap();
        assert_eq!(s.first_index().unwrap(), 2);
        assert_eq!(s.last_index().unwrap(), 1);
        assert_eq!(s.term(1).unwrap(), 1);
        let st = s.initial_state().unwrap();
        assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(st.hard_state.commit, 1);
        drop(s);
        let s = RocksStorage::open(db, 1, &[1, 2, 3]).unwrap();
        assert_eq!(s.first_index().unwrap(), 2);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 1);
    }

    #[test]
    fn append_truncate_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut s = RocksStorage::open(db.clone(), 7, &[]).unwrap();
        append(&mut s, &[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 2);
        let got = s
            .entries(2, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got, vec![ent(2, 1), ent(3, 2), ent(4, 2)]);
        // max_size keeps at least one entry
        let one = s
            .entries(2, 5, Some(0), GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(one.len(), 1);
        // conflicting append at 3 replaces the suffix
        append(&mut s, &[ent(3, 3)]);
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(3).unwrap(), 3);
        assert!(s
            .entries(1, 5, None, GetEntriesContext::empty(false))
            .is_err());
        let mut wb = WriteBatch::default();
        let hs = HardState {
            term: 3,
            vote: 2,
            commit: 2,
            ..Default::default()
        };
        s.stage_hard_state(&mut wb, hs.clone());
        db.write(wb).unwrap();
        drop(s);
        let s2 = RocksStorage::open(db, 7, &[]).unwrap();
        assert_eq!(s2.last_index().unwrap(), 3);
        assert_eq!(s2.term(3).unwrap(), 3);
        assert_eq!(s2.initial_state().unwrap().hard_state, hs);
        assert_eq!(
            s2.entries(1, 4, None, GetEntriesContext::empty(false))
                .unwrap(),
            vec![ent(1, 1), ent(2, 1), ent(3, 3)]
        );
    }

    #[test]
    fn groups_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut a = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        append(&mut a, &[ent(1, 1), ent(2, 1)]);
        let b = RocksStorage::open(db, 2, &[]).unwrap();
        assert_eq!(b.last_index().unwrap(), 0);
    }

    #[test]
    fn reads_beyond_cache_hit_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        let ents: Vec<Entry> = (1..=(CACHE_ENTRIES as u64 + 100))
            .map(|i| ent(i, 1))
            .collect();
        append(&mut s, &ents);
        assert_eq!(
            s.entries(1, 3, None, GetEntriesContext::empty(false))
                .unwrap(),
            ents[0..2]
        );
        assert_eq!(s.term(50).unwrap(), 1);
    }

    #[test]
    fn reopen_warms_only_a_bounded_tail() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        // 64 entries of 1 MiB: four times the warm-up budget.
        let big = |i: u64| Entry {
            data: vec![i as u8; 1 << 20].into(),
            ..ent(i, 1)
        };
        let ents: Vec<Entry> = (1..=64).map(big).collect();
        append(&mut s, &ents);
        drop(s);
        let s = RocksStorage::open(db, 1, &[]).unwrap();
        let cached: usize = s.cache.iter().map(|e| e.data.len()).sum();
        assert!(cached <= WARM_BYTES, "{cached} bytes cached");
        assert!(!s.cache.is_empty());
        assert_eq!(s.cache.back().map(|e| e.index), Some(64));
        // Every entry is still readable, from the cache or from disk.
        let all = s
            .entries(1, 65, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(all, ents);
        assert_eq!(s.last_index().unwrap(), 64);
    }

    fn snap_at(index: u64, term: u64, voters: &[u64]) -> Snapshot {
        let mut s = Snapshot {
            data: b"descriptor".to_vec().into(),
            ..Default::default()
        };
        s.mut_metadata().index = index;
        s.mut_metadata().term = term;
        s.mut_metadata().mut_conf_state().voters = voters.to_vec();
        s
    }

    #[test]
    fn local_snapshot_compacts_and_serves_members_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        let ents: Vec<Entry> = (1..=20).map(|i| ent(i, 1)).collect();
        append(&mut s, &ents);
        let mut wb = WriteBatch::default();
        s.stage_local_snapshot(&mut wb, snap_at(10, 1, &[1, 2]))
            .unwrap();
        db.write(wb).unwrap();
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.term(10).unwrap(), 1);
        assert!(matches!(
            s.entries(5, 12, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(
            s.entries(11, 13, None, GetEntriesContext::empty(false))
                .unwrap(),
            vec![ent(11, 1), ent(12, 1)]
        );
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 10);
        // Node 3 is not in the snapshot's configuration: a new one must be made.
        assert!(s.snapshot(0, 3).is_err());
        assert!(s.take_snapshot_wanted());
        assert!(s.snapshot(11, 2).is_err());
        drop(s);
        let s = RocksStorage::open(db, 1, &[]).unwrap();
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 20);
        assert_eq!(s.local_snapshot().unwrap().get_metadata().index, 10);
    }

    #[test]
    fn received_snapshot_replaces_the_log_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        append(&mut s, &[ent(1, 1), ent(2, 1)]);
        let mut wb = WriteBatch::default();
        s.stage_received_snapshot(&mut wb, snap_at(50, 3, &[1, 2, 4]), "snap-3-50")
            .unwrap();
        s.stage_peer(&mut wb, 4, "127.0.0.1:4000");
        db.write(wb).unwrap();
        assert_eq!(s.first_index().unwrap(), 51);
        assert_eq!(s.last_index().unwrap(), 50);
        assert_eq!(s.term(50).unwrap(), 3);
        assert_eq!(s.restoring(), Some("snap-3-50"));
        drop(s);
        // A crash before the store was restored: the marker is still there.
        let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
        assert_eq!(s.restoring(), Some("snap-3-50"));
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 4]);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 50);
        assert_eq!(
            s.peers().get(&4).map(String::as_str),
            Some("127.0.0.1:4000")
        );
        let mut wb = WriteBatch::default();
        s.stage_restored(&mut wb);
        db.write(wb).unwrap();
        drop(s);
        let s = RocksStorage::open(db, 1, &[]).unwrap();
        assert_eq!(s.restoring(), None);
        append_check(&s);
    }

    fn append_check(s: &RocksStorage) {
        assert_eq!(s.first_index().unwrap(), 51);
    }
}
