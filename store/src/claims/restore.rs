//! The claims' part of a snapshot restore (see the parent module): the records of
//! incoming slots another local group holds since are saved and put back, the slots the
//! snapshot takes and drops are claimed, released or marked stale.

use std::sync::atomic::Ordering;

use super::load_history;
use crate::scope::{load_slots, slots_key};
use crate::slots::SlotSet;
use crate::{Store, StoreError, CF_META};

/// Records saved before a restore (see [`Store::save_claimed`]).
pub(crate) struct Saved {
    claimed: SlotSet,
    records: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
}

/// Key ranges `[lo, hi)`.
type KeyRanges = Vec<(Vec<u8>, Vec<u8>)>;

/// The key ranges of `slots` in each slot-keyed column family.
fn slot_ranges(slots: &SlotSet) -> Vec<(&'static str, KeyRanges)> {
    let runs: Vec<(Vec<u8>, Vec<u8>)> = crate::slots::key_ranges(slots)
        .into_iter()
        .map(|(a, b)| (a.to_vec(), b.to_vec()))
        .collect();
    vec![
        (crate::CF_DATA, runs.clone()),
        (crate::types::CF_SUB, runs.clone()),
        (crate::types::CF_ZSCORE, runs),
        (crate::txn::CF_KVER, crate::txn::kver_ranges(slots)),
    ]
}

/// The part of a record's key that starts with its slot (`kver` slot epochs are
/// `[0xfe][slot]`).
fn kver_data_key<'a>(cf: &str, k: &'a [u8]) -> &'a [u8] {
    match k {
        [0xfe, rest @ ..] if cf == crate::txn::CF_KVER => rest,
        _ => k,
    }
}

impl Store {
    /// Before a restore: the group's fence as applied here (its history is loaded, so the
    /// one the snapshot brings can be told apart).
    pub(crate) fn before_restore(&self) -> Result<u64, StoreError> {
        self.claims_written();
        self.history()?;
        Ok(self.fence)
    }
    /// Before restoring a snapshot owning `incoming`: the records of those of its slots
    /// another local group claims (they may be newer than the snapshot's, see
    /// [`Store::put_back`]).
    pub(crate) fn save_claimed(&self, incoming: &SlotSet) -> Result<Saved, StoreError> {
        let mut claimed = SlotSet::empty();
        for (lo, hi) in incoming.ranges() {
            for s in lo..=hi {
                let owner = self.claims.owner(s);
                if owner != 0 && owner != self.group {
                    claimed.insert_range(s, s);
                }
            }
        }
        let mut records = Vec::new();
        if !claimed.is_empty() {
            for (cf, ranges) in slot_ranges(&claimed) {
                let handle = self.db.cf_handle(cf).ok_or(StoreError::MissingCf(cf))?;
                let mut it = self.db.raw_iterator_cf_opt(handle, crate::total_order());
                for (lo, hi) in ranges {
                    it.seek(&lo);
                    while let (Some(k), Some(v)) = (it.key(), it.value()) {
                        if k >= &hi[..] {
                            break;
                        }
                        records.push((cf, k.to_vec(), v.to_vec()));
                        it.next();
                    }
                    it.status()?;
                }
            }
        }
        Ok(Saved { claimed, records })
    }

    /// After the restore (fence and slots loaded): the saved slots whose claimant applied a
    /// later migration than the snapshot stay the claimant's, with its records put back
    /// (the snapshot's are older); returns them.
    pub(crate) fn put_back(&self, saved: Saved) -> Result<SlotSet, StoreError> {
        let mut kept = SlotSet::empty();
        for (lo, hi) in saved.claimed.ranges() {
            for s in lo..=hi {
                if self.claims.held_after(s, self.group, self.fence) {
                    kept.insert_range(s, s);
                }
            }
        }
        if kept.is_empty() {
            return Ok(kept);
        }
        let mut wb = rocksdb::WriteBatch::default();
        for (cf, ranges) in slot_ranges(&kept) {
            let handle = self.db.cf_handle(cf).ok_or(StoreError::MissingCf(cf))?;
            for (lo, hi) in ranges {
                wb.delete_range_cf(handle, lo, hi);
            }
        }
        for (cf, k, v) in saved.records {
            if kept.contains(crate::slots::slot_of(kver_data_key(cf, &k))) {
                let handle = self.db.cf_handle(cf).ok_or(StoreError::MissingCf(cf))?;
                wb.put_cf(handle, k, v);
            }
        }
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        self.claims.forced.store(true, Ordering::Release);
        Ok(kept)
    }

    /// After a snapshot replaced the store (owning `slots` now, `before` until then): takes
    /// the slots, releases those it no longer owns, and removes the taken ones from the
    /// persisted slot set of the groups they were taken from.
    /// Slots the snapshot drops that this group still claimed are stale here from now on;
    /// the ones it owns are fresh (but for `kept`, see [`Store::put_back`]).
    /// So are the slots the snapshot's history says this group changed by a command this
    /// node skipped (fenced above `old_fence`), that it does not own now and that no local
    /// group further along holds: their records here may lack writes this group made
    /// between those commands.
    pub(crate) fn claim_restored(
        &self,
        before: &SlotSet,
        kept: &SlotSet,
        old_fence: u64,
    ) -> Result<(), StoreError> {
        let dropped = before.difference(&self.slots);
        let mut stale = SlotSet::empty();
        for (lo, hi) in dropped.ranges() {
            for s in lo..=hi {
                if self.claims.owner(s) == self.group {
                    stale.insert_range(s, s);
                }
            }
        }
        let history = load_history(&self.db, self.group)?;
        for (&s, &f) in &history {
            if f > old_fence
                && !self.slots.contains(s)
                && !self.claims.held_past(s, self.group, f.saturating_sub(1))
            {
                stale.insert_range(s, s);
            }
        }
        self.claims.note_history(&history, &self.slots);
        self.claims
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.group, history);
        self.claims.release(self.group, &dropped);
        self.claims.mark_stale(&self.db, &stale, true)?;
        let fresh = self.slots.difference(kept);
        self.claims.mark_stale(&self.db, &fresh, false)?;
        let taken = self.claims.take(self.group, &fresh);
        self.claims.set_fence(self.group, self.fence);
        if taken.is_empty() {
            return Ok(());
        }
        self.claims.forced.store(true, Ordering::Release);
        let meta = self
            .db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        for (other, slots) in taken {
            if let Some(set) = load_slots(&self.db, other)? {
                self.db
                    .put_cf(meta, slots_key(other), set.difference(&slots).encode())?;
            }
        }
        Ok(())
    }
}
