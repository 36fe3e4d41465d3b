//! Slot ownership in the apply path: which commands the group refuses (keys of slots it
//! does not own: `-TRYAGAIN`, the whole command, before anything is staged), the applied
//! `RAFTKV.SLOTS.ADD` / `RAFTKV.SLOTS.REMOVE`, and FLUSHALL over the owned slot ranges.
//!
//! **The slot set** lives in `meta` at `[group u64 BE]['S']` ([`SlotSet::encode`]), written
//! at the group's first open and then only by an applied slot command, in the same
//! `WriteBatch` as the rest of its entry. Everything is decided from the applied state, so
//! every replica refuses and accepts the same commands.
//!
//! **Counters and the expiry index follow ownership.** The key and TTL counters count the
//! keys physically present in owned slots, and the group's expiry index holds exactly the
//! owned keys with a TTL. So a slot command counts the keys present in the slots it adds
//! (or removes), as of the batch (database merged with the batch's staged writes, so the
//! result does not depend on how replicas batch entries), adds (subtracts) them, and puts
//! (deletes) their index entries. Cost: O(keys in the changed slots), once per change.
//! Removing slots deletes no data: the records stay, inert, until a later clean-up; a slot
//! added back finds them again.
//!
//! **What readers see.** A removal is published to readers as soon as it is applied (they
//! stop serving the slots before the batch is even written: early refusals are safe); an
//! addition once its batch is written. A read group checks its keys against the set
//! published before its snapshot and the one after (see `Reader::read_all`), so it serves a
//! slot only where the snapshot and ownership agree. Slots a migration's ADD took are
//! owned but not served (neither published nor written by clients: `-TRYAGAIN`) until the
//! migration's `RAFTKV.SLOTS.SEAL`, once every copied record is in: a node routing by an
//! older layout must not reach records the copy is still writing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use resp::{Command, Reply, SlotsOp};
use rocksdb::{WriteBatch, DB};

use crate::slots::{key_ranges, slot_of, tryagain, visit_ranges, SlotSet};
use crate::types::meta::expire_key;
use crate::{fail_stop, key_slot, meta_key, Store, StoreError, Value, CF_DATA, CF_EXPIRE, CF_META};

/// Tag of the group's slot set in `meta`.
const SLOTS_TAG: u8 = b'S';

/// Tag of the fence of the group's last applied slot command in `meta`.
const FENCE_TAG: u8 = b'F';

/// Tag of the last migration sealed in the group (`RAFTKV.SLOTS.SEAL`) in `meta`.
const SEALED_TAG: u8 = b'Z';

/// Tag of the slots the group took by an ADD and has not sealed yet, in `meta`.
const INCOMING_TAG: u8 = b'I';

/// The slots the group added and has not sealed yet (see [`Store::apply_slots`]).
pub(crate) fn load_incoming(db: &DB, group: u64) -> Result<SlotSet, StoreError> {
    Ok(load_set(db, meta_key(group, INCOMING_TAG), "incoming slots")?.unwrap_or_default())
}

/// The fence of the group's last applied slot command (0: none yet).
pub(crate) fn load_fence(db: &DB, group: u64) -> Result<u64, StoreError> {
    load_u64(db, group, FENCE_TAG)
}

/// The last migration sealed in the group (0: none yet).
pub(crate) fn load_sealed(db: &DB, group: u64) -> Result<u64, StoreError> {
    load_u64(db, group, SEALED_TAG)
}

fn load_u64(db: &DB, group: u64, tag: u8) -> Result<u64, StoreError> {
    let meta = db
        .cf_handle(CF_META)
        .ok_or(StoreError::MissingCf(CF_META))?;
    match db.get_cf(meta, meta_key(group, tag))? {
        None => Ok(0),
        Some(v) => v
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("slot fence".into())),
    }
}

/// The `meta` key of `group`'s slot set.
pub(crate) fn slots_key(group: u64) -> Vec<u8> {
    meta_key(group, SLOTS_TAG)
}

/// The group's persisted slot set, if it has one.
pub(crate) fn load_slots(db: &DB, group: u64) -> Result<Option<SlotSet>, StoreError> {
    load_set(db, slots_key(group), "slot set")
}

/// The slot set persisted in `meta` under `key`, if any (`what` names it in an error).
fn load_set(db: &DB, key: Vec<u8>, what: &str) -> Result<Option<SlotSet>, StoreError> {
    let meta = db
        .cf_handle(CF_META)
        .ok_or(StoreError::MissingCf(CF_META))?;
    match db.get_cf(meta, key)? {
        None => Ok(None),
        Some(v) => SlotSet::decode(&v)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(what.into())),
    }
}

/// The group's persisted slot set, or `initial` (then persisted) for a new group.
pub(crate) fn load_or_init_slots(
    db: &DB,
    group: u64,
    initial: SlotSet,
) -> Result<SlotSet, StoreError> {
    if let Some(s) = load_slots(db, group)? {
        return Ok(s);
    }
    let meta = db
        .cf_handle(CF_META)
        .ok_or(StoreError::MissingCf(CF_META))?;
    db.put_cf(meta, slots_key(group), initial.encode())?;
    Ok(initial)
}

/// The slot of the first key `cmd` touches outside `slots` (for RAFTKV.EXEC: of any
/// watched key or any key of its body). `None`: every key is owned, or there is none.
pub(crate) fn foreign_slot(slots: &SlotSet, cmd: &Command) -> Option<u16> {
    if slots.is_all() {
        return None;
    }
    first_slot(cmd, |s| !slots.contains(s))
}

/// The slot of the first key `cmd` touches (watched keys and body keys of RAFTKV.EXEC
/// included) for which `pick` holds.
fn first_slot(cmd: &Command, pick: impl Fn(u16) -> bool) -> Option<u16> {
    let of = |k: &[u8]| Some(key_slot(k)).filter(|&s| pick(s));
    match cmd {
        Command::Transaction { watches, body } => {
            watches.iter().find_map(|w| of(&w.key)).or_else(|| {
                body.iter()
                    .filter_map(|argv| Command::parse(argv).ok())
                    .find_map(|c| c.keys().into_iter().find_map(|k| of(k)))
            })
        }
        _ => cmd.keys().into_iter().find_map(|k| of(k)),
    }
}

impl Store {
    /// `-TRYAGAIN` when `cmd` touches a slot the group does not own.
    /// And an unknown-outcome error when it touches a slot another group's snapshot took
    /// over on this node (see `claims`): the write applied on the replicas that were not
    /// behind, and its effect is in the records the snapshot brought.
    pub(crate) fn refuse_foreign(&self, cmd: &Command) -> Option<Reply> {
        if let Some(s) = foreign_slot(&self.slots, cmd) {
            return Some(tryagain(s));
        }
        if !self.incoming.is_empty() {
            if let Some(s) = first_slot(cmd, |s| self.incoming.contains(s)) {
                return Some(tryagain(s));
            }
        }
        let s = first_slot(cmd, |s| self.yielded_slot(s))?;
        Some(Reply::err(format!(
            "UNCERTAIN slot {s} moved to another group on this node before this write applied here; it may or may not have taken effect"
        )))
    }

    /// True when a FLUSHALL of this batch emptied `slot`.
    pub(crate) fn flushed_slot(&self, slot: u16) -> bool {
        self.flushed.as_ref().is_some_and(|f| f.contains(slot))
    }

    /// True when a FLUSHALL of this batch emptied the slot of store key `key`.
    pub(crate) fn flushed_key(&self, key: &[u8]) -> bool {
        self.flushed_slot(slot_of(key))
    }

    /// FLUSHALL / FLUSHDB: deletes the owned slot ranges of every slot-keyed family and the
    /// group's expiry index (one range delete each), moves the group's WATCH versions, and
    /// hides the deleted records from the batch's later commands.
    ///
    /// Refused (`-TRYAGAIN`, certainly not applied) while a migration copies slots into the
    /// group (the copy's later records would bring keys older than the flush back, and the
    /// expiry index cannot be emptied of only the served slots), and, for one group's share
    /// of a FLUSHALL over several (`expect`, the slots the entry node's layout gives it),
    /// unless the group serves exactly those: slots the layout gives a group between a
    /// migration's REMOVE at the source and its SEAL at the target are served by no group,
    /// and their keys would escape every share. With each share applied only where it
    /// matches one layout, every slot is flushed by the group serving it, whole.
    pub(crate) fn flush_owned(
        &mut self,
        wb: &mut WriteBatch,
        expect: Option<&[(u16, u16)]>,
    ) -> Reply {
        if !self.incoming.is_empty() {
            return Reply::err(
                "TRYAGAIN slots are being copied into this group: FLUSHALL not applied here, retry",
            );
        }
        if let Some(expect) = expect {
            if SlotSet::from_ranges(expect.iter().copied()).ok().as_ref() != Some(&self.slots) {
                return Reply::err(
                    "TRYAGAIN slots are moving between groups: FLUSHALL not applied here, retry",
                );
            }
        }
        // A running script's savepoint keeps the overlays whole (see `savepoint`).
        self.undo_whole();
        let owned = self.slots.clone();
        for (from, to) in key_ranges(&owned) {
            for cf in [CF_DATA, crate::types::CF_SUB, crate::types::CF_ZSCORE] {
                wb.delete_range_cf(self.cf(cf), from, to);
            }
        }
        let prefix = self.group.to_be_bytes();
        let end = crate::types::meta::prefix_end(&prefix);
        wb.delete_range_cf(self.cf(CF_EXPIRE), &prefix[..], &end[..]);
        self.flush_versions(wb, &owned);
        self.overlay.retain(|k, _| !owned.contains(slot_of(k)));
        for map in &mut self.coll {
            map.retain(|k, _| !owned.contains(slot_of(k)));
        }
        self.flushed = Some(Box::new(match self.flushed.take() {
            Some(f) => f.union(&owned),
            None => owned,
        }));
        self.keys = 0;
        self.expires = 0;
        Reply::ok()
    }

    /// `RAFTKV.SLOTS.ADD` / `REMOVE`: changes the owned set, keeps the counters and the
    /// expiry index in step (see the module doc), persists the set. Replies the number of
    /// slots that changed owner. A command fenced below the last applied fence is a stale
    /// retry of an older migration: it changes nothing and replies 0. Added slots get new
    /// WATCH versions from this log (see `txn`) and are claimed on this node (see
    /// `claims`); removed ones are released.
    pub(crate) fn apply_slots(
        &mut self,
        wb: &mut WriteBatch,
        op: SlotsOp,
        ranges: &[(u16, u16)],
        fence: u64,
        peer: u64,
    ) -> Reply {
        let given = match SlotSet::from_ranges(ranges.iter().copied()) {
            Ok(s) => s,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        if op == SlotsOp::Drop {
            return self.drop_slots(wb, &given, fence, peer);
        }
        if op == SlotsOp::Seal {
            // The cut-over follows: a late or repeated copy of this migration (a coordinator
            // that lost the metadata leadership, or one re-running it from a lagging view)
            // must not overwrite the writes the target takes from then on.
            if fence <= self.sealed {
                return Reply::Int(0);
            }
            self.sealed = fence;
            wb.put_cf(
                self.cf(CF_META),
                meta_key(self.group, SEALED_TAG),
                fence.to_be_bytes(),
            );
            // The copy is complete: the group serves the slots from now on.
            self.set_incoming(wb, self.incoming.difference(&given));
            self.slots_changed = true;
            return Reply::Int(1);
        }
        if fence != 0 {
            if fence < self.fence {
                return Reply::Int(0);
            }
            if fence > self.fence {
                crate::pieces::gc(self, wb, fence);
            }
            self.fence = fence;
            wb.put_cf(
                self.cf(CF_META),
                meta_key(self.group, FENCE_TAG),
                fence.to_be_bytes(),
            );
        }
        let changed = match op {
            SlotsOp::Add => given.difference(&self.slots),
            _ => given.intersection(&self.slots),
        };
        // Added slots are served from the migration's SEAL on, once their records are all
        // here: until then a request some node routes here by a stale view of the layout
        // (a node catching up its metadata replays older layouts) gets `-TRYAGAIN`; a
        // write taken now would be overwritten by the copy, a read could miss records.
        // (An unfenced ADD, no migration's, has no SEAL to wait for.)
        self.set_incoming(
            wb,
            match op {
                SlotsOp::Add if fence != 0 => self.incoming.union(&changed),
                SlotsOp::Add => self.incoming.clone(),
                _ => self.incoming.difference(&given),
            },
        );
        // Slots another local group holds on this node (it is further along, see
        // `claims`): their records are not this group's to count, index or re-version.
        let held = self.held_elsewhere(&changed, fence);
        let mine = changed.difference(&held);
        if op == SlotsOp::Add && self.takes_fresh(peer) {
            // No source replica here: the records come by copy (see `crate::ingest`);
            // whatever this node holds of the slots is an older owner's.
            self.delete_slot_records(wb, &mine);
        } else {
            self.account_slots(wb, &mine, op == SlotsOp::Add);
        }
        if op == SlotsOp::Add {
            self.reset_slot_versions(wb, &mine);
        }
        self.claim_applied(&mine, &changed, op == SlotsOp::Add, fence);
        if let Err(e) = self.record_history(wb, &changed, fence) {
            fail_stop("recording the slot history", e);
        }
        self.slots = match op {
            SlotsOp::Add => self.slots.union(&given),
            _ => self.slots.difference(&given),
        };
        wb.put_cf(self.cf(CF_META), slots_key(self.group), self.slots.encode());
        self.slots_changed = true;
        if op == SlotsOp::Remove {
            let seen = self.published_slots().difference(&changed);
            self.publish(seen);
        }
        Reply::Int(changed.len() as i64)
    }

    /// Adds (`add`) or subtracts the keys physically present in `slots` as of this batch to
    /// the counters, putting (deleting) their expiry index entries.
    fn account_slots(&mut self, wb: &mut WriteBatch, slots: &SlotSet, add: bool) {
        let mut present = 0i64;
        let mut with_ttl: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut note = |dkey: &[u8], raw: &[u8]| match Value::header(raw) {
            Some((_, expire)) => {
                present += 1;
                if expire != 0 {
                    with_ttl.push((dkey.to_vec(), expire));
                }
            }
            None => fail_stop("decoding a value", "short value"),
        };
        let db = self.db.clone();
        let mut it = db.raw_iterator_cf_opt(self.cf(CF_DATA), crate::total_order());
        let ranges = key_ranges(slots);
        let ranges = ranges.iter().map(|(a, b)| (&a[..], &b[..]));
        let walked = visit_ranges(&mut it, ranges, |k, v| {
            if !self.overlay.contains_key(k) && !self.flushed_key(k) {
                note(k, v);
            }
            true
        });
        if let Err(e) = walked {
            fail_stop("counting the keys of slots", e);
        }
        for (k, v) in &self.overlay {
            if let Some(v) = v.as_deref().filter(|_| slots.contains(slot_of(k))) {
                note(k, v);
            }
        }
        let sign = if add { 1 } else { -1 };
        self.keys += sign * present;
        self.expires += sign * with_ttl.len() as i64;
        let exp = self.cf(CF_EXPIRE);
        for (dkey, expire) in with_ttl {
            let ikey = expire_key(self.group, expire, &dkey);
            if add {
                wb.put_cf(exp, ikey, []);
            } else {
                wb.delete_cf(exp, ikey);
            }
        }
    }

    /// Stages a new set of slots added and not sealed yet.
    fn set_incoming(&mut self, wb: &mut WriteBatch, incoming: SlotSet) {
        if incoming != self.incoming {
            wb.put_cf(
                self.cf(CF_META),
                meta_key(self.group, INCOMING_TAG),
                incoming.encode(),
            );
            self.incoming = incoming;
            self.note_copying();
        }
    }

    /// Tells readers at once when the group owns slots it does not serve (the flag is
    /// cleared only by [`Store::publish_slots`], after the set without them is published).
    pub(crate) fn note_copying(&self) {
        if !self.incoming.is_empty() {
            self.shared.copying.store(true, Ordering::SeqCst);
        }
    }

    /// The slot set readers see now.
    fn published_slots(&self) -> Arc<SlotSet> {
        self.shared
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, slots: SlotSet) {
        *self.shared.slots.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(slots);
    }

    /// Once a batch is written (or a snapshot restored): readers get the applied set.
    pub(crate) fn publish_slots(&mut self) {
        if std::mem::take(&mut self.slots_changed) {
            self.publish(self.slots.difference(&self.incoming));
            self.shared
                .copying
                .store(!self.incoming.is_empty(), Ordering::SeqCst);
        }
    }
}
