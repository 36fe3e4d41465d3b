//! Transactions in the state machine: the per-key modification versions WATCH reads, and the
//! apply of one whole `RAFTKV.EXEC` (check the watched versions, then run the body in order)
//! inside one Raft entry, so every replica decides and applies it identically.
//!
//! **Versions.** Column family `kver` maps a data key (`[slot u16 BE][user key]`, so a slot is
//! still one range) to the index of the Raft entry that last modified it (u64 BE); key
//! `[0xff]` (no data key starts with it: slots are < 16384) holds the index of the last
//! FLUSHALL, the *flush epoch*. A key's version is `max(record, epoch)`, the epoch when it has
//! no record. Every modification stages the record, including a DEL, so a key created and
//! deleted again after WATCH has a new version; FLUSHALL range-deletes the records (this is
//! what bounds the family) and moves the epoch, which changes every key's version. Deleting a
//! key that was already expired (the sweep, lazy expiry, DEL of an expired key) is not a
//! modification (Redis 7.0: a key expired at WATCH that is then deleted does not abort);
//! a key that was live at WATCH and has expired since aborts by the liveness check instead.
//!
//! **Cost on the write path.** One extra blind put of `key + 10` bytes into the same
//! `WriteBatch` per key written (no read, no extra fsync), and one entry in an in-memory
//! overlay cleared with the batch. Records of deleted keys stay until the next FLUSHALL
//! (`key + 10` bytes each).
//!
//! **Entry index.** Versions are log indexes, the same on every replica (a watch read on one
//! node is checked on all); the state machine passes each entry's index with
//! [`Store::begin_entry_at`]. WATCH reads the versions of the last written batch, so its
//! version is below the index of any later modification.

use std::collections::HashMap;

use resp::{Command, Kind, Reply, WatchedKey};
use rocksdb::WriteBatch;

use crate::{data_key, fail_stop, Reader, Store, Value, CF_DATA};

/// Modification versions (see the module doc).
pub const CF_KVER: &str = "kver";

/// The flush epoch's key in [`CF_KVER`].
const EPOCH_KEY: [u8; 1] = [0xff];

/// The store's version state.
#[derive(Debug, Default)]
pub(crate) struct Versions {
    /// Index of the entry being applied.
    index: u64,
    /// Index of the last FLUSHALL.
    epoch: u64,
    /// Versions staged in the current batch (cleared with it).
    overlay: HashMap<Vec<u8>, u64>,
}

fn decode_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

impl Versions {
    /// Loads the flush epoch (0 when none was recorded).
    pub(crate) fn load(db: &rocksdb::DB) -> Result<Versions, crate::StoreError> {
        let cf = db
            .cf_handle(CF_KVER)
            .ok_or(crate::StoreError::MissingCf(CF_KVER))?;
        let epoch = match db.get_cf(cf, EPOCH_KEY)? {
            None => 0,
            Some(v) => {
                decode_u64(&v).ok_or_else(|| crate::StoreError::Corrupt("flush epoch".into()))?
            }
        };
        Ok(Versions {
            epoch,
            ..Versions::default()
        })
    }

    /// The batch is written: its versions are in the database now.
    pub(crate) fn batch_written(&mut self) {
        self.overlay.clear();
    }
}

impl Store {
    /// Starts applying the entry at `index` (a fresh write budget, as [`Store::begin_entry`]);
    /// the keys it modifies get `index` as their version.
    pub fn begin_entry_at(&mut self, index: u64) {
        self.begin_entry();
        self.versions.index = index;
    }

    /// Records that the entry being applied modified `dkey`.
    pub(crate) fn touch(&mut self, wb: &mut WriteBatch, dkey: &[u8]) {
        let index = self.versions.index;
        wb.put_cf(self.cf(CF_KVER), dkey, index.to_be_bytes());
        self.versions.overlay.insert(dkey.to_vec(), index);
    }

    /// FLUSHALL: every version changes (the epoch moves) and the records go.
    pub(crate) fn flush_versions(&mut self, wb: &mut WriteBatch) {
        let cf = self.cf(CF_KVER);
        wb.delete_range_cf(cf, Vec::<u8>::new(), EPOCH_KEY.to_vec());
        let index = self.versions.index;
        wb.put_cf(cf, EPOCH_KEY, index.to_be_bytes());
        self.versions.epoch = index;
        self.versions.overlay.clear();
    }

    /// Reloads the flush epoch after a snapshot replaced the store.
    pub(crate) fn reload_versions(&mut self) -> Result<(), String> {
        self.versions = Versions::load(&self.db).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `dkey`'s version as of this batch.
    fn version(&self, dkey: &[u8]) -> u64 {
        let epoch = self.versions.epoch;
        if let Some(v) = self.versions.overlay.get(dkey) {
            return (*v).max(epoch);
        }
        if self.flushed {
            return epoch;
        }
        match self.db.get_pinned_cf(self.cf(CF_KVER), dkey) {
            Ok(Some(v)) => decode_u64(&v).map_or_else(
                || fail_stop("decoding a key version", "bad length"),
                |v| v.max(epoch),
            ),
            Ok(None) => epoch,
            Err(e) => fail_stop("reading a key version", e),
        }
    }

    /// True when a watched key changed since WATCH saw it: a new version, or it was live
    /// then and is not now (it expired).
    fn watch_broken(&self, w: &WatchedKey, now: i64) -> bool {
        let dkey = data_key(&w.key);
        if self.version(&dkey) != w.version {
            return true;
        }
        w.live && self.live_len_or_none(&dkey, now).is_none()
    }

    /// Payload length of a live key, `None` when absent or expired.
    fn live_len_or_none(&self, dkey: &[u8], now: i64) -> Option<usize> {
        match self.raw_header(dkey) {
            Some((_, expire, len)) if expire == 0 || expire > now => Some(len),
            _ => None,
        }
    }

    /// Applies `RAFTKV.EXEC`: a nil array when a watched key changed, else every body
    /// command in order (runtime errors are replies in the array and do not stop the rest,
    /// as in Redis).
    pub(crate) fn apply_transaction(
        &mut self,
        wb: &mut WriteBatch,
        watches: &[WatchedKey],
        body: &[Vec<bytes::Bytes>],
        now: i64,
    ) -> Reply {
        if watches.iter().any(|w| self.watch_broken(w, now)) {
            return Reply::NilArray;
        }
        let mut replies = Vec::with_capacity(body.len());
        for argv in body {
            replies.push(match Command::parse(argv) {
                Ok(cmd) if matches!(cmd.kind(), Kind::Read | Kind::Write) => {
                    self.apply(wb, &cmd, now)
                }
                Ok(cmd) => Reply::err(format!(
                    "ERR '{}' cannot run inside a replicated transaction",
                    cmd.name()
                )),
                Err(e) => e,
            });
        }
        Reply::Array(replies)
    }
}

impl Reader {
    /// What WATCH records for `keys` at `now`: each key's version and whether it is live,
    /// all from one RocksDB snapshot (one consistent state).
    pub fn watch_versions(
        &self,
        keys: &[bytes::Bytes],
        now: i64,
    ) -> Result<Vec<WatchedKey>, String> {
        let kver = self.cf(CF_KVER).ok_or("missing kver column family")?;
        let data = self.cf(CF_DATA).ok_or("missing data column family")?;
        let snap = self.db.snapshot();
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_snapshot(&snap);
        let get_u64 = |k: &[u8]| -> Result<Option<u64>, String> {
            match self.db.get_pinned_cf_opt(kver, k, &ro) {
                Ok(None) => Ok(None),
                Ok(Some(v)) => decode_u64(&v).map(Some).ok_or("corrupt key version".into()),
                Err(e) => Err(e.to_string()),
            }
        };
        let epoch = get_u64(&EPOCH_KEY)?.unwrap_or(0);
        keys.iter()
            .map(|key| {
                let dkey = data_key(key);
                let version = get_u64(&dkey)?.map_or(epoch, |v| v.max(epoch));
                let header = self
                    .db
                    .get_pinned_cf_opt(data, &dkey, &ro)
                    .map_err(|e| e.to_string())?;
                let live = match header.as_deref().map(Value::header) {
                    None => false,
                    Some(None) => return Err("corrupt value".into()),
                    Some(Some((_, expire))) => expire == 0 || expire > now,
                };
                Ok(WatchedKey {
                    key: key.clone(),
                    version,
                    live,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "tests_txn.rs"]
mod tests;
