//! Savepoints in the apply path: what lets a script that is aborted (instruction budget,
//! memory limit) leave nothing behind, although its commands already staged their writes
//! into the entry's `WriteBatch` and the store's overlays.
//!
//! [`Store::savepoint`] notes the batch's length and record count and the store's counters;
//! while it is open, the first change of each overlay entry (data, sub / score records,
//! key versions) records the entry's previous state, and a FLUSHALL takes the overlays
//! whole. [`Store::rollback`] truncates the batch back (rebuilt from its bytes: RocksDB's
//! C API has no savepoints here) and puts every overlay entry and counter back;
//! [`Store::release`] just drops the record. Cost while open: one key copy per key first
//! changed; a rollback copies the batch once.

use std::collections::HashMap;

use rocksdb::WriteBatch;

use crate::budget::Budget;
use crate::types::view::OverlayMap;
use crate::{types, Store};

/// Previous overlay state: `None` = the key was not in the overlay.
type Prev<V> = HashMap<Vec<u8>, Option<Option<V>>>;

/// An open savepoint.
#[derive(Default)]
pub(crate) struct Undo {
    wb_len: usize,
    wb_count: usize,
    keys: i64,
    expires: i64,
    flushed: Option<Box<crate::SlotSet>>,
    budget: Budget,
    versions: types::Versions,
    seed_pos: u64,
    pushed: usize,
    events: usize,
    epoch: u64,
    overlay: Prev<Vec<u8>>,
    coll: [Prev<Vec<u8>>; 2],
    kver: Prev<u64>,
    /// The overlays as a FLUSHALL in the savepoint found them.
    whole: Option<Whole>,
}

type Whole = (
    HashMap<Vec<u8>, Option<Vec<u8>>>,
    [OverlayMap; 2],
    HashMap<Vec<u8>, Option<u64>>,
);

impl Store {
    /// Opens a savepoint (one at a time: scripts do not nest).
    pub(crate) fn savepoint(&mut self, wb: &WriteBatch) {
        self.undo = Some(Box::new(Undo {
            wb_len: wb.data().len(),
            wb_count: wb.len(),
            keys: self.keys,
            expires: self.expires,
            flushed: self.flushed.clone(),
            budget: self.budget.clone(),
            versions: self.versions.clone(),
            seed_pos: self.seed_pos,
            pushed: self.pushed.len(),
            events: self.events.len(),
            epoch: self.watch_versions.epoch(),
            ..Undo::default()
        }));
    }

    /// Closes the savepoint, keeping everything.
    pub(crate) fn release(&mut self) {
        self.undo = None;
    }

    /// Closes the savepoint, undoing everything since it was opened.
    pub(crate) fn rollback(&mut self, wb: &mut WriteBatch) {
        let Some(u) = self.undo.take() else {
            return;
        };
        let mut data = wb.data()[..u.wb_len].to_vec();
        if let Some(count) = data.get_mut(8..12) {
            count.copy_from_slice(&(u.wb_count as u32).to_le_bytes());
        }
        *wb = WriteBatch::from_data(&data);
        if let Some((ov, coll, kver)) = u.whole {
            self.overlay = ov;
            self.coll = coll;
            *self.watch_versions.overlay_mut() = kver;
        }
        restore(&mut self.overlay, u.overlay);
        for (map, prev) in self.coll.iter_mut().zip(u.coll) {
            for (k, old) in prev {
                match old {
                    Some(v) => map.insert(k, v),
                    None => map.remove(&k),
                };
            }
        }
        restore(self.watch_versions.overlay_mut(), u.kver);
        self.keys = u.keys;
        self.expires = u.expires;
        self.flushed = u.flushed;
        self.budget = u.budget;
        self.versions = u.versions;
        self.seed_pos = u.seed_pos;
        self.pushed.truncate(u.pushed);
        self.events.truncate(u.events);
        self.watch_versions.set_epoch(u.epoch);
    }

    /// Stages a data overlay entry (recording its previous state in a savepoint).
    pub(crate) fn overlay_set(&mut self, k: Vec<u8>, v: Option<Vec<u8>>) {
        match self.undo.as_deref_mut() {
            Some(u) if u.whole.is_none() && !u.overlay.contains_key(&k) => {
                let old = self.overlay.insert(k.clone(), v);
                u.overlay.insert(k, old);
            }
            _ => {
                self.overlay.insert(k, v);
            }
        }
    }

    /// Stages a sub (0) or score (1) record.
    pub(crate) fn coll_set(&mut self, slot: usize, k: Vec<u8>, v: Option<Vec<u8>>) {
        match self.undo.as_deref_mut() {
            Some(u) if u.whole.is_none() && !u.coll[slot].contains_key(&k) => {
                let old = self.coll[slot].insert(k.clone(), v);
                u.coll[slot].insert(k, old);
            }
            _ => {
                self.coll[slot].insert(k, v);
            }
        }
    }

    /// Stages a key version record.
    pub(crate) fn kver_set(&mut self, k: Vec<u8>, v: Option<u64>) {
        let map = self.watch_versions.overlay_mut();
        match self.undo.as_deref_mut() {
            Some(u) if u.whole.is_none() && !u.kver.contains_key(&k) => {
                let old = map.insert(k.clone(), v);
                u.kver.insert(k, old);
            }
            _ => {
                map.insert(k, v);
            }
        }
    }

    /// A FLUSHALL is about to clear the overlays: a savepoint keeps them whole.
    pub(crate) fn undo_whole(&mut self) {
        if let Some(u) = self.undo.as_deref_mut() {
            if u.whole.is_none() {
                u.whole = Some((
                    std::mem::take(&mut self.overlay),
                    std::mem::take(&mut self.coll),
                    std::mem::take(self.watch_versions.overlay_mut()),
                ));
            }
        }
    }
}

fn restore<V>(map: &mut HashMap<Vec<u8>, Option<V>>, prev: Prev<V>) {
    for (k, old) in prev {
        match old {
            Some(v) => map.insert(k, v),
            None => map.remove(&k),
        };
    }
}
