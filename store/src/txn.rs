//! Transactions in the state machine: the per-key modification versions WATCH reads, and the
//! apply of one whole `RAFTKV.EXEC` (check the watched versions, then run the body in order)
//! inside one Raft entry, so every replica decides and applies it identically.
//!
//! **Versions.** A key's version is the index of the Raft entry that last wrote it. A key
//! that exists carries it in its own data record, as the record's *stamp* (bytes 9..17, see
//! `value`; group-tagged as below), which the store's one write path sets: a write costs
//! nothing extra for WATCH. Column family `kver` holds the rest, all u64 BE log indexes:
//! - `[slot u16 BE][user key]` (a data key, so a slot is still one range) → the stamp of a
//!   key deleted because it had expired (see below), until it is written again;
//! - `[0xfe][slot u16 BE]` → the index of the last deletion of any key of that slot (the
//!   *slot epoch*; no data key starts with 0xfe or 0xff: slots are < 16384);
//! - `[0xff][group u64 BE]` → the index of the group's last FLUSHALL (the group's *flush
//!   epoch*: indexes of different groups' logs are not comparable, so each has its own).
//!
//! A key's version is its record's stamp when the serving group wrote it, else its `kver`
//! record, else its slot epoch; any of them is raised to the flush epoch of the group
//! serving it. Deleting a live key (DEL, RENAME's source, an expiry time in the past)
//! removes its `kver` record and moves the slot epoch, so a key deleted, or created and
//! deleted again, after WATCH has a new version; FLUSHALL range-deletes the records and slot
//! epochs of the group's slots and moves its epoch. Deleting a key that had already expired
//! (the sweep, lazy expiry, DEL of an expired key) changes no version: its stamp moves to
//! its `kver` record (Redis 7.0: a key expired at WATCH and deleted since does not abort),
//! and a key live at WATCH that has expired since aborts by the liveness check instead.
//! This also keeps `kver` identical on every replica even where the sweep's choice of keys
//! is not (it scans the database, not the batch's staged writes). Aborts never go missing;
//! the spurious ones (safe): a deletion of another key of the same slot aborts a watcher of
//! an *absent* key; FLUSHALL aborts all.
//!
//! **Costs.** A write: none beyond its record (the stamp is 8 bytes of it). A collection
//! write that left the metadata record alone (HSET of an existing field, LSET) rewrites it
//! with the new stamp. A deletion: one blind delete and one blind put of 11 bytes (an
//! expired key's: one put of `key + 10` bytes). Storage: 8 bytes per key, at most 16384
//! slot epochs, and the records of keys that expired and were never written again (until a
//! FLUSHALL).
//!
//! **Group tag.** What WATCH hands out and EXEC compares is the version tagged with the
//! serving group ([`tagged`]: group in the top 16 bits): indexes of two groups' logs are not
//! comparable, so a key watched in one group and checked in another after its slot moved
//! always aborts (safe), never matches by coincidence. Stamps carry the tag too: a record
//! whose stamp another group's log wrote (its slot moved here since) counts as unstamped. A
//! group taking slots over ([`Store::reset_slot_versions`]) also drops their `kver` records
//! and moves their slot epochs to the taking entry's index, so every version there that is
//! not a stamp of this group's own log comes from the taking entry or later.
//!
//! **Entry index.** Versions are log indexes, the same on every replica (a watch read on one
//! node is checked on all); the state machine passes each entry's index with
//! [`Store::begin_entry_at`]. WATCH reads the versions of the last written batch, so its
//! version is below the index of any later modification.

use std::collections::HashMap;

use resp::{Command, Kind, Reply, WatchedKey};
use rocksdb::WriteBatch;

use crate::slots::{slot_of, slot_start, SlotSet};
use crate::value::{set_stamp, stamp_of};
use crate::{data_key, fail_stop, Reader, Store, Value, CF_DATA};

/// Modification versions (see the module doc).
pub const CF_KVER: &str = "kver";

/// The group's flush epoch's key in [`CF_KVER`].
pub(crate) fn epoch_key(group: u64) -> [u8; 9] {
    let mut k = [0xff; 9];
    k[1..].copy_from_slice(&group.to_be_bytes());
    k
}

/// A version as WATCH reports it: `index` tagged with the group whose log it comes from.
pub(crate) fn tagged(group: u64, index: u64) -> u64 {
    ((group & 0xffff) << 48) | (index & ((1 << 48) - 1))
}

/// The index of a stamp (see [`tagged`]) that `group`'s log wrote, `None` for another's.
pub(crate) fn untagged(group: u64, stamp: u64) -> Option<u64> {
    (stamp >> 48 == group & 0xffff).then_some(stamp & ((1 << 48) - 1))
}

/// The slot epoch's key of a data key's slot.
fn slot_key(dkey: &[u8]) -> [u8; 3] {
    match dkey {
        [a, b, ..] => [0xfe, *a, *b],
        _ => [0xfe, 0, 0],
    }
}

/// The slot a `kver` key belongs to (a data key's, or a slot epoch's).
fn record_slot(k: &[u8]) -> u16 {
    match k {
        [0xfe, rest @ ..] => slot_of(rest),
        _ => slot_of(k),
    }
}

/// The key ranges of `kver` holding the records and slot epochs of `slots`, in key order.
pub(crate) fn kver_ranges(slots: &SlotSet) -> Vec<(Vec<u8>, Vec<u8>)> {
    let runs: Vec<_> = slots
        .ranges()
        .map(|(lo, hi)| (slot_start(lo.into()), slot_start(u32::from(hi) + 1)))
        .collect();
    let records = runs.iter().map(|(a, b)| (a.to_vec(), b.to_vec()));
    let epochs = runs
        .iter()
        .map(|(a, b)| ([&[0xfe][..], a].concat(), [&[0xfe][..], b].concat()));
    records.chain(epochs).collect()
}

/// The store's version state.
#[derive(Debug, Default)]
pub(crate) struct Versions {
    /// Index of the entry being applied.
    index: u64,
    /// Index of the last FLUSHALL.
    epoch: u64,
    /// Records staged in the current batch, `None` when deleted (cleared with it).
    overlay: HashMap<Vec<u8>, Option<u64>>,
}

fn decode_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

impl Versions {
    /// Loads the group's flush epoch (0 when none was recorded).
    pub(crate) fn load(db: &rocksdb::DB, group: u64) -> Result<Versions, crate::StoreError> {
        let cf = db
            .cf_handle(CF_KVER)
            .ok_or(crate::StoreError::MissingCf(CF_KVER))?;
        let epoch = match db.get_cf(cf, epoch_key(group))? {
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

    /// The flush epoch (saved and restored around a script, see `savepoint`).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn set_epoch(&mut self, e: u64) {
        self.epoch = e;
    }

    /// The staged records, for a savepoint to take or put back whole.
    pub(crate) fn overlay_mut(&mut self) -> &mut HashMap<Vec<u8>, Option<u64>> {
        &mut self.overlay
    }
}

impl Store {
    /// Starts applying the entry at `index` (a fresh write budget, as [`Store::begin_entry`]);
    /// the keys it modifies get `index` as their version.
    pub fn begin_entry_at(&mut self, index: u64) {
        self.begin_entry();
        self.watch_versions.index = index;
    }

    /// The stamp the entry being applied gives the records it writes.
    pub(crate) fn stamp_now(&self) -> u64 {
        tagged(self.group, self.watch_versions.index)
    }

    /// Records that the entry being applied changed `dkey` without writing its data record
    /// (a collection's element records): the record is written again with the entry's
    /// stamp. Nothing when the key has no record or the entry stamped it already.
    pub(crate) fn touch(&mut self, wb: &mut WriteBatch, dkey: &[u8]) {
        let stamp = self.stamp_now();
        let Some(mut enc) = self.with_raw(dkey, |b| {
            b.filter(|b| stamp_of(b) != Some(stamp)).map(<[u8]>::to_vec)
        }) else {
            return;
        };
        set_stamp(&mut enc, stamp);
        wb.put_cf(self.cf(CF_DATA), dkey, &enc);
        self.overlay_set(dkey.to_vec(), Some(enc));
    }

    /// True when `dkey`'s record already has the current entry's stamp (collection writes:
    /// their metadata write stamped it). A hook for `apply_coll`.
    pub(crate) fn touched_now(&self, dkey: &[u8]) -> bool {
        let stamp = self.stamp_now();
        self.with_raw(dkey, |b| b.and_then(stamp_of) == Some(stamp))
    }

    /// `dkey`, whose record holds an expired value, is being deleted: its version stays,
    /// as its `kver` record (nothing when another group's log stamped it).
    pub(crate) fn keep_version(&mut self, wb: &mut WriteBatch, dkey: &[u8]) {
        let own = self.with_raw(dkey, |b| b.and_then(stamp_of));
        if let Some(index) = own.and_then(|s| untagged(self.group, s)) {
            wb.put_cf(self.cf(CF_KVER), dkey, index.to_be_bytes());
            self.kver_set(dkey.to_vec(), Some(index));
        }
    }

    /// Records that the entry being applied deleted `dkey`: its record goes, its slot's
    /// epoch moves.
    pub(crate) fn untouch(&mut self, wb: &mut WriteBatch, dkey: &[u8]) {
        let index = self.watch_versions.index;
        let slot = slot_key(dkey);
        let cf = self.cf(CF_KVER);
        wb.delete_cf(cf, dkey);
        wb.put_cf(cf, slot, index.to_be_bytes());
        self.kver_set(dkey.to_vec(), None);
        self.kver_set(slot.to_vec(), Some(index));
    }

    /// The group takes `slots` over from another group: their records (written by the other
    /// group's log, or by this one's before they left it) go and their slot epochs move to
    /// the current entry's index, so every key there gets a version of this log above any
    /// it had here before.
    pub(crate) fn reset_slot_versions(&mut self, wb: &mut WriteBatch, slots: &SlotSet) {
        self.undo_whole();
        for (from, to) in kver_ranges(slots) {
            wb.delete_range_cf(self.cf(CF_KVER), from, to);
        }
        self.watch_versions
            .overlay
            .retain(|k, _| !slots.contains(record_slot(k)));
        let index = self.watch_versions.index;
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                let key = [0xfe, (s >> 8) as u8, s as u8];
                wb.put_cf(self.cf(CF_KVER), key, index.to_be_bytes());
                self.watch_versions
                    .overlay
                    .insert(key.to_vec(), Some(index));
            }
        }
    }

    /// FLUSHALL of the group's `slots`: every version of the group changes (its epoch
    /// moves) and the records and slot epochs of those slots go.
    pub(crate) fn flush_versions(&mut self, wb: &mut WriteBatch, slots: &SlotSet) {
        self.undo_whole();
        let cf = self.cf(CF_KVER);
        for (from, to) in kver_ranges(slots) {
            wb.delete_range_cf(cf, from, to);
        }
        let index = self.watch_versions.index;
        wb.put_cf(cf, epoch_key(self.group), index.to_be_bytes());
        self.watch_versions.epoch = index;
        self.watch_versions
            .overlay
            .retain(|k, _| !slots.contains(record_slot(k)));
    }

    /// Reloads the flush epoch after a snapshot replaced the store.
    pub(crate) fn reload_versions(&mut self) -> Result<(), String> {
        self.watch_versions = Versions::load(&self.db, self.group).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A `kver` record as of this batch.
    fn record(&self, k: &[u8]) -> Option<u64> {
        if let Some(v) = self.watch_versions.overlay.get(k) {
            return *v;
        }
        if self.flushed_slot(record_slot(k)) {
            return None;
        }
        match self.db.get_pinned_cf(self.cf(CF_KVER), k) {
            Ok(Some(v)) => Some(
                decode_u64(&v).unwrap_or_else(|| fail_stop("decoding a key version", "bad length")),
            ),
            Ok(None) => None,
            Err(e) => fail_stop("reading a key version", e),
        }
    }

    /// `dkey`'s version as of this batch.
    fn version(&self, dkey: &[u8]) -> u64 {
        let stamp = self.with_raw(dkey, |b| b.and_then(stamp_of));
        let v = match stamp.and_then(|s| untagged(self.group, s)) {
            Some(v) => v,
            None => match self.record(dkey) {
                Some(v) => v,
                None => self.record(&slot_key(dkey)).unwrap_or(0),
            },
        };
        v.max(self.watch_versions.epoch)
    }

    /// True when a watched key changed since WATCH saw it: a new version, or it was live
    /// then and is not now (it expired).
    fn watch_broken(&self, w: &WatchedKey, now: i64) -> bool {
        let dkey = data_key(&w.key);
        if tagged(self.group, self.version(&dkey)) != w.version {
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
    /// all from one RocksDB snapshot (one consistent state). A key of a slot the group does
    /// not serve is an error (`TRYAGAIN slot <n> is not served by this group`).
    pub fn watch_versions(
        &self,
        keys: &[bytes::Bytes],
        now: i64,
    ) -> Result<Vec<WatchedKey>, String> {
        let kver = self.cf(CF_KVER).ok_or("missing kver column family")?;
        let data = self.cf(CF_DATA).ok_or("missing data column family")?;
        let slots = self.slots();
        if let Some(s) = keys
            .iter()
            .map(|k| crate::key_slot(k))
            .find(|&s| !slots.contains(s))
        {
            return Err(format!("TRYAGAIN slot {s} is not served by this group"));
        }
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
        let epoch = get_u64(&epoch_key(self.group))?.unwrap_or(0);
        keys.iter()
            .map(|key| {
                let dkey = data_key(key);
                let record = self
                    .db
                    .get_pinned_cf_opt(data, &dkey, &ro)
                    .map_err(|e| e.to_string())?;
                let live = match record.as_deref().map(Value::header) {
                    None => false,
                    Some(None) => return Err("corrupt value".into()),
                    Some(Some((_, expire))) => expire == 0 || expire > now,
                };
                let stamp = record.as_deref().and_then(stamp_of);
                let version = match stamp.and_then(|s| untagged(self.group, s)) {
                    Some(v) => v,
                    None => match get_u64(&dkey)? {
                        Some(v) => v,
                        None => get_u64(&slot_key(&dkey))?.unwrap_or(0),
                    },
                }
                .max(epoch);
                Ok(WatchedKey {
                    key: key.clone(),
                    version: tagged(self.group, version),
                    live,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "tests_txn.rs"]
mod tests;
