//! Which locally hosted group physically writes each hash slot on this node ([`Claims`]).
//!
//! Every group of a node keeps its records in the one RocksDB, under the same
//! `[slot][key]` keys, so when a slot moves from group H to group G (H applies
//! `RAFTKV.SLOTS.REMOVE`, then G `RAFTKV.SLOTS.ADD`: the migration proposes them in that
//! order) the records already on the node become G's. That is only right if, on this node,
//! H has applied all its writes to the slot before G applies its first: a node whose H
//! replica lags (down, partitioned, slow) must not let G take the slot over while H still
//! owns it, or H's late writes would overwrite G's newer ones. So:
//!
//! - a group claims its slots here when it opens, when it applies an ADD, and when it
//!   restores a snapshot; it releases them when the batch holding its applied REMOVE is
//!   written (the node's groups share each driver round's batch: a target applying in the
//!   same round would read the database without the source's writes staged before it);
//! - G's ADD waits (its apply stops before the entry, see [`Claims::must_wait`], retried
//!   every tick) while another local group still claims one of its slots. H released it by
//!   a REMOVE committed before the ADD was proposed, so the wait ends once H's replica
//!   applies it (wait-for edges follow commit order: no cycle). It also waits while the
//!   slot is *in transit* here: claimed by no group, its last removal on this node older
//!   than G's migration (an earlier migration's target has not applied its ADD here yet,
//!   so the records lack that group's writes; [`Claims::must_wait`]). The removals are
//!   rebuilt at start from the groups' slot histories; an ADD of a slot a later migration
//!   already removed here takes nothing;
//! - a snapshot brings G's whole state, so its restore takes its slots at once (but those
//!   another local group holds since a later migration than the snapshot's: their records
//!   are put back, see `restore`), and
//!   rewrites the persisted slot set of any group it took them from (so a restart finds no
//!   slot claimed twice). That group's writes still applying to those slots are skipped on
//!   this node ([`Store::yielded_slot`]: their outcome here is unknown, the records are
//!   G's now).
//!
//! - a snapshot can also take a slot *away* from a lagging source: its state is past the
//!   REMOVE, so the node's records of the slot were never brought up to the source's last
//!   writes. Such a slot is *stale* here (persisted, so a restart keeps it): a target's ADD
//!   of it must not adopt these records, so it waits and its peer asks the leader for a
//!   snapshot ([`Store::stale_in`]); a restored snapshot owning the slot clears it.
//!
//! The registry is node-local and in memory (stale marks also in `meta`, under group 0);
//! it changes only in the apply thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::slot::SLOTS;
use crate::slots::SlotSet;
use crate::{Store, StoreError, CF_META};

mod restore;

/// Tag of a group's slot history in `meta`.
const HISTORY_TAG: u8 = b'H';

/// A group's persisted slot history: `[slot u16 BE][fence u64 BE]` per slot, in order.
fn load_history(db: &rocksdb::DB, group: u64) -> Result<History, StoreError> {
    let meta = db
        .cf_handle(CF_META)
        .ok_or(StoreError::MissingCf(CF_META))?;
    let mut h = History::new();
    if let Some(v) = db.get_cf(meta, crate::meta_key(group, HISTORY_TAG))? {
        if v.len() % 10 != 0 {
            return Err(StoreError::Corrupt("slot history".into()));
        }
        for rec in v.chunks_exact(10) {
            let slot = u16::from_be_bytes([rec[0], rec[1]]);
            let mut f = [0u8; 8];
            f.copy_from_slice(&rec[2..]);
            h.insert(slot, u64::from_be_bytes(f));
        }
    }
    Ok(h)
}

/// Tag of the stale marks in `meta` (under group 0, which no store is).
const STALE_TAG: u8 = b'T';

/// The `meta` key of slot `s`'s stale mark.
fn stale_key(s: u16) -> Vec<u8> {
    let mut k = crate::meta_key(0, STALE_TAG);
    k.extend_from_slice(&s.to_be_bytes());
    k
}

/// The group claiming each slot on this node (0: none).
pub struct Claims {
    owner: Box<[AtomicU64]>,
    /// A snapshot took slots from another group since the node started: stores then check
    /// each written key's claim (see [`Store::yielded_slot`]).
    forced: AtomicBool,
    /// Slots whose records on this node are stale (see the module doc).
    stale: Box<[AtomicBool]>,
    /// The fence of each group's last applied slot command (or restored snapshot).
    fences: Mutex<HashMap<u64, u64>>,
    /// Each group's slot history (see [`Store::record_history`]), as loaded or applied.
    histories: Mutex<HashMap<u64, History>>,
    /// Per slot, the fence of the last removal of it applied on this node (by a REMOVE, or
    /// by a restored snapshot whose history says it moved): the highest fence any local
    /// group's history gives it among the groups not owning it.
    removed: Box<[AtomicU64]>,
    /// REMOVEs applied into a batch not written yet, per group (`(released, changed,
    /// fence)`): they take effect here once it is (see [`Store::claims_written`]).
    releasing: Mutex<HashMap<u64, Vec<Release>>>,
    /// Slots of those REMOVEs.
    unwritten: Box<[AtomicBool]>,
}

/// A REMOVE waiting for its batch: the slots it releases, those it changed, its fence.
type Release = (SlotSet, SlotSet, u64);

/// Per slot, the fence of the last slot command of a group that changed it.
pub(crate) type History = std::collections::BTreeMap<u16, u64>;

impl Default for Claims {
    fn default() -> Self {
        Claims {
            owner: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            forced: AtomicBool::new(false),
            stale: (0..SLOTS).map(|_| AtomicBool::new(false)).collect(),
            fences: Mutex::new(HashMap::new()),
            histories: Mutex::new(HashMap::new()),
            removed: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            releasing: Mutex::new(HashMap::new()),
            unwritten: (0..SLOTS).map(|_| AtomicBool::new(false)).collect(),
        }
    }
}

impl Claims {
    /// A registry for one node's groups.
    pub fn new() -> Arc<Claims> {
        Arc::new(Claims::default())
    }

    /// The group claiming `slot` (0: none).
    pub fn owner(&self, slot: u16) -> u64 {
        self.owner[usize::from(slot)].load(Ordering::Acquire)
    }

    /// As if a snapshot had taken slots by force on this node (tests).
    #[cfg(test)]
    pub(crate) fn force_for_test(&self) {
        self.forced.store(true, Ordering::Release);
    }

    /// Group `group` is no longer hosted on this node (it was removed).
    /// Its claims go too (after its fence: a target's ADD from it then takes the slots
    /// fresh, see [`Store::takes_fresh`], rather than wait for a claim nobody releases).
    pub fn forget(&self, group: u64) {
        self.fences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
        self.histories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&group);
        for owner in self.owner.iter() {
            let _ = owner.compare_exchange(group, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// True when a replica of `group` runs on this node (its store joined the registry).
    pub(crate) fn hosts(&self, group: u64) -> bool {
        self.fences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&group)
    }

    /// Records `group`'s last applied fence.
    pub(crate) fn set_fence(&self, group: u64, fence: u64) {
        self.fences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group, fence);
    }

    /// True when slot `s` is claimed by a group that applied a later migration than
    /// `fence` (it got the slot back since: a command of migration `fence` there is history
    /// this node's records are already past).
    fn held_past(&self, s: u16, group: u64, fence: u64) -> bool {
        fence != 0 && self.held_after(s, group, fence)
    }

    /// True when slot `s` is claimed by another group than `group` whose last applied
    /// fence is above `fence`, 0 included (a state that saw no migration at all is older
    /// than one that saw migration 1).
    fn held_after(&self, s: u16, group: u64, fence: u64) -> bool {
        let owner = self.owner(s);
        if owner == 0 || owner == group {
            return false;
        }
        let fences = self.fences.lock().unwrap_or_else(|p| p.into_inner());
        fences.get(&owner).is_some_and(|&f| f > fence)
    }

    /// True when slot `s` is claimed by no local group and its last removal here is older
    /// than migration `fence`: an earlier migration's target has not taken it on this node
    /// yet (its ADD is still to apply), so the records lack that group's writes.
    fn in_transit(&self, s: u16, fence: u64) -> bool {
        fence != 0
            && self.owner(s) == 0
            && self.removed[usize::from(s)].load(Ordering::Acquire) < fence
    }

    /// True when slot `s` is claimed by no local group and was removed here by a later
    /// migration than `fence`: a command of migration `fence` is history on this node.
    fn moved_on(&self, s: u16, fence: u64) -> bool {
        fence != 0
            && self.owner(s) == 0
            && self.removed[usize::from(s)].load(Ordering::Acquire) > fence
    }

    /// Records that `slots` were removed on this node by migration `fence`.
    fn note_removed(&self, slots: &SlotSet, fence: u64) {
        if fence == 0 {
            return;
        }
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                self.removed[usize::from(s)].fetch_max(fence, Ordering::AcqRel);
            }
        }
    }

    /// Notes the removals `history` records for the slots of it outside `owned`.
    fn note_history(&self, history: &History, owned: &SlotSet) {
        for (&s, &f) in history {
            if s < SLOTS && !owned.contains(s) {
                self.removed[usize::from(s)].fetch_max(f, Ordering::AcqRel);
            }
        }
    }

    /// True when another group than `group` claims one of `ranges`' slots (and is not past
    /// migration `fence`), or one of them is still on its way to an earlier migration's
    /// target here (see `Claims::in_transit`), or was removed by a REMOVE whose batch is
    /// not written yet: `group` must not take them over yet.
    pub fn must_wait(&self, group: u64, ranges: &[(u16, u16)], fence: u64) -> bool {
        ranges.iter().any(|&(lo, hi)| {
            (lo..=hi.min(SLOTS - 1)).any(|s| {
                let owner = self.owner(s);
                (owner != 0 && owner != group && !self.held_past(s, group, fence))
                    || self.in_transit(s, fence)
                    || self.unwritten[usize::from(s)].load(Ordering::Acquire)
            })
        })
    }

    /// True when one of `ranges`' slots is stale on this node.
    pub fn any_stale(&self, ranges: &[(u16, u16)]) -> bool {
        ranges.iter().any(|&(lo, hi)| {
            (lo..=hi.min(SLOTS - 1)).any(|s| self.stale[usize::from(s)].load(Ordering::Acquire))
        })
    }

    /// Marks `slots` stale (`on`) or fresh, here and in `db`.
    fn mark_stale(&self, db: &rocksdb::DB, slots: &SlotSet, on: bool) -> Result<(), StoreError> {
        let meta = db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                let was = self.stale[usize::from(s)].swap(on, Ordering::AcqRel);
                if was != on {
                    let key = stale_key(s);
                    if on {
                        db.put_cf(meta, key, [])?;
                    } else {
                        db.delete_cf(meta, key)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads the persisted stale marks.
    fn load_stale(&self, db: &rocksdb::DB) -> Result<(), StoreError> {
        let meta = db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        let prefix = crate::meta_key(0, STALE_TAG);
        let mut it = db.raw_iterator_cf(meta);
        it.seek(&prefix);
        while let Some(k) = it.key() {
            match k.strip_prefix(&prefix[..]) {
                Some(&[a, b]) => {
                    let s = u16::from_be_bytes([a, b]);
                    if s < SLOTS {
                        self.stale[usize::from(s)].store(true, Ordering::Release);
                    }
                }
                Some(_) => {}
                None => break,
            }
            it.next();
        }
        Ok(it.status()?)
    }

    /// A private registry's first claims (a store opening alone).
    pub(crate) fn owned_by(&self, group: u64, slots: &SlotSet) {
        self.take(group, slots);
    }

    /// `group` claims `slots`; returns the other groups it took some of them from.
    fn take(&self, group: u64, slots: &SlotSet) -> Vec<(u64, SlotSet)> {
        let mut taken: Vec<(u64, SlotSet)> = Vec::new();
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                let prev = self.owner[usize::from(s)].swap(group, Ordering::AcqRel);
                if prev != 0 && prev != group {
                    match taken.iter_mut().find(|(g, _)| *g == prev) {
                        Some((_, set)) => set.insert_range(s, s),
                        None => {
                            let mut set = SlotSet::empty();
                            set.insert_range(s, s);
                            taken.push((prev, set));
                        }
                    }
                }
            }
        }
        taken
    }

    /// `group` gives up its claim on `slots` (slots claimed by others stay theirs).
    fn release(&self, group: u64, slots: &SlotSet) {
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                let _ = self.owner[usize::from(s)].compare_exchange(
                    group,
                    0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }
}

impl Store {
    /// Makes the store use the node's registry (shared by every data group of the node) and
    /// claims its slots there.
    pub fn set_claims(&mut self, claims: Arc<Claims>) -> Result<(), StoreError> {
        claims.take(self.group, &self.slots);
        claims.set_fence(self.group, self.fence);
        claims.load_stale(&self.db)?;
        self.claims = claims;
        let history = self.history()?;
        self.claims.note_history(&history, &self.slots);
        Ok(())
    }

    /// True when `ranges` include a slot whose records on this node are stale (the ADD of
    /// them must wait for a snapshot of this group, see the module doc).
    pub fn stale_in(&self, ranges: &[(u16, u16)], fence: u64, from: u64) -> bool {
        let stale_cmd = fence != 0 && fence < self.fence;
        !(stale_cmd || self.takes_fresh(from)) && self.claims.any_stale(ranges)
    }

    /// True when an ADD from group `from` takes its slots fresh on this node: no replica
    /// of `from` runs here, so the records come by copy (see `crate::ingest`).
    pub(crate) fn takes_fresh(&self, from: u64) -> bool {
        from != 0 && !self.claims.hosts(from)
    }

    /// True when `ranges` include a slot another local group still claims (the apply of a
    /// `RAFTKV.SLOTS.ADD` of them fenced `fence` must wait). A stale command (fenced below
    /// the last applied fence) changes nothing, so never waits.
    pub fn must_wait_for(&self, ranges: &[(u16, u16)], fence: u64, from: u64) -> bool {
        if (fence != 0 && fence < self.fence) || self.takes_fresh(from) {
            return false;
        }
        self.claims.must_wait(self.group, ranges, fence) || self.claims.any_stale(ranges)
    }

    /// True when `slot`, owned by this group, was taken by another group's snapshot on this
    /// node: this group's write to it must not apply here.
    pub(crate) fn yielded_slot(&self, slot: u16) -> bool {
        self.claims.forced.load(Ordering::Acquire) && self.claims.owner(slot) != self.group
    }

    /// The slots of `slots` another local group holds on this node: one further along than
    /// migration `fence` (for an ADD, also a slot a later migration already removed here),
    /// or one that took them by force (for a REMOVE); this group's writes there are skipped
    /// on this node (see [`Store::yielded_slot`]).
    pub(crate) fn held_elsewhere(&self, slots: &SlotSet, fence: u64) -> SlotSet {
        let mut held = SlotSet::empty();
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                let owner = self.claims.owner(s);
                let other = owner != 0 && owner != self.group;
                let past = self.claims.held_past(s, self.group, fence)
                    || (!self.slots.contains(s) && self.claims.moved_on(s, fence));
                if (other && self.slots.contains(s)) || past {
                    held.insert_range(s, s);
                }
            }
        }
        if !held.is_empty() {
            self.claims.forced.store(true, Ordering::Release);
        }
        self.claims.set_fence(self.group, self.fence);
        held
    }

    /// This group's slot history, loaded on first use.
    fn history(&self) -> Result<History, StoreError> {
        let mut all = self
            .claims
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(h) = all.get(&self.group) {
            return Ok(h.clone());
        }
        let h = load_history(&self.db, self.group)?;
        all.insert(self.group, h.clone());
        Ok(h)
    }

    /// Records that the slot command fenced `fence` changed `slots` (staged in `wb` with
    /// the command). A snapshot carries the history, so a replica that skips commands by
    /// restoring one learns which slots they moved (see [`Store::claim_restored`]).
    pub(crate) fn record_history(
        &self,
        wb: &mut rocksdb::WriteBatch,
        slots: &SlotSet,
        fence: u64,
    ) -> Result<(), StoreError> {
        if fence == 0 || slots.is_empty() {
            return Ok(());
        }
        let mut h = self.history()?;
        for (lo, hi) in slots.ranges() {
            for s in lo..=hi {
                h.insert(s, fence);
            }
        }
        let mut v = Vec::with_capacity(h.len() * 10);
        for (slot, f) in &h {
            v.extend_from_slice(&slot.to_be_bytes());
            v.extend_from_slice(&f.to_be_bytes());
        }
        let meta = self
            .db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        wb.put_cf(meta, crate::meta_key(self.group, HISTORY_TAG), v);
        self.claims
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.group, h);
        Ok(())
    }

    /// An applied ADD (`add`) or REMOVE of `slots` fenced `fence` (`changed`: every slot
    /// whose ownership it changed, `slots` those of them it takes or releases here).
    /// A REMOVE is released once its batch is written ([`Store::claims_written`]): the
    /// node's groups share the driver round's one batch, and a target's ADD (or its writes)
    /// in the same round would read the slot's records without the source's writes staged
    /// before the REMOVE (their counters and values would be wrong).
    pub(crate) fn claim_applied(&self, slots: &SlotSet, changed: &SlotSet, add: bool, fence: u64) {
        if add {
            // A REMOVE of this group earlier in the same batch (a lagging node applying a
            // move away and the move back, e.g. through a group it does not host) must
            // not release, once written, the slots this ADD takes back.
            if let Some(pending) = self
                .claims
                .releasing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&self.group)
            {
                for (released, _, _) in pending.iter_mut() {
                    *released = released.difference(slots);
                }
            }
            self.claims.take(self.group, slots);
            return;
        }
        for (lo, hi) in changed.ranges() {
            for s in lo..=hi {
                self.claims.unwritten[usize::from(s)].store(true, Ordering::Release);
            }
        }
        self.claims
            .releasing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.group)
            .or_default()
            .push((slots.clone(), changed.clone(), fence));
    }

    /// The group's batch is written: its REMOVEs applied into it take effect here.
    pub(crate) fn claims_written(&self) {
        let done = self
            .claims
            .releasing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.group);
        for (slots, changed, fence) in done.into_iter().flatten() {
            self.claims.release(self.group, &slots);
            self.claims.note_removed(&changed, fence);
            for (lo, hi) in changed.ranges() {
                for s in lo..=hi {
                    self.claims.unwritten[usize::from(s)].store(false, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_slot_makes_another_group_wait_until_released() {
        let c = Claims::new();
        let mut a = SlotSet::empty();
        a.insert_range(10, 20);
        assert!(c.take(1, &a).is_empty());
        assert!(c.must_wait(2, &[(15, 15)], 0));
        assert!(!c.must_wait(1, &[(15, 15)], 0));
        assert!(!c.must_wait(2, &[(21, 30)], 0));
        // Group 1 applied migration 9 since: an ADD of migration 5 is history here.
        c.set_fence(1, 9);
        assert!(c.must_wait(2, &[(15, 15)], 9));
        assert!(!c.must_wait(2, &[(15, 15)], 5));
        c.release(2, &a);
        assert_eq!(c.owner(12), 1, "a release by a non-owner changes nothing");
        c.release(1, &a);
        assert!(!c.must_wait(2, &[(10, 20)], 0));
        assert_eq!(c.owner(12), 0);
    }

    #[test]
    fn a_forgotten_group_claims_nothing() {
        let c = Claims::new();
        let mut a = SlotSet::empty();
        a.insert_range(10, 20);
        c.take(1, &a);
        c.set_fence(1, 4);
        let mut b = SlotSet::empty();
        b.insert_range(30, 30);
        c.take(2, &b);
        c.forget(1);
        assert!(!c.hosts(1));
        assert_eq!((c.owner(10), c.owner(20), c.owner(30)), (0, 0, 2));
    }

    #[test]
    fn a_forced_take_reports_whom_it_took_from() {
        let c = Claims::new();
        let mut a = SlotSet::empty();
        a.insert_range(0, 5);
        c.take(1, &a);
        let mut b = SlotSet::empty();
        b.insert_range(4, 9);
        let taken = c.take(2, &b);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, 1);
        assert_eq!(taken[0].1.ranges().collect::<Vec<_>>(), vec![(4, 5)]);
        assert_eq!(c.owner(3), 1);
        assert_eq!(c.owner(5), 2);
    }
}
