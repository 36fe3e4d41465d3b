//! Read and write views for the typed operations: [`DbView`] reads the database (or one of
//! its snapshots), [`Staged`] stages into the apply path's `WriteBatch` and overlays the
//! staged records on the database, so a later command of the same batch sees them.
//!
//! The overlay ([`Overlay`]) holds one entry per record the batch wrote, no more than the
//! `WriteBatch` itself, so it is bounded by the batch; the caller clears it once the batch is
//! written. Range scans merge the database iterator with the overlay's ordered map.
//!
//! Both views count the records they touch ([`Stats`]): the cost tests assert that an
//! operation on a big collection touches a number of records independent of its size.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Bound;

use rocksdb::{ColumnFamily, ReadOptions, Snapshot, WriteBatch, DB};

use super::meta::{data_key, expire_key, header, prefix_end};
use super::{Cf, Error, Read, Result, Versions, Write};
use crate::slots::{slot_of, slot_start, SlotSet};
use crate::{CF_EXPIRE, CF_META};

/// Records touched through a view.
#[derive(Debug, Default)]
pub struct Stats {
    reads: Cell<u64>,
    writes: Cell<u64>,
}

impl Stats {
    /// Records read: point lookups (found or not) and records visited by scans.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    /// Records staged: puts and deletes (a range delete counts once).
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Starts counting again from zero.
    pub fn reset(&self) {
        self.reads.set(0);
        self.writes.set(0);
    }

    fn read(&self) {
        self.reads.set(self.reads.get() + 1);
    }

    fn wrote(&self) {
        self.writes.set(self.writes.get() + 1);
    }
}

fn handle<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Storage(format!("missing column family {name}")))
}

/// Reads the database as it is (or as of a snapshot).
pub struct DbView<'a> {
    db: &'a DB,
    snap: Option<&'a Snapshot<'a>>,
    now: i64,
    stats: Stats,
}

impl<'a> DbView<'a> {
    /// A view of the database's latest state, judging expiry at `now`.
    pub fn new(db: &'a DB, now: i64) -> DbView<'a> {
        DbView {
            db,
            snap: None,
            now,
            stats: Stats::default(),
        }
    }

    /// A view of `snap`, judging expiry at `now`.
    pub fn at_snapshot(db: &'a DB, snap: &'a Snapshot<'a>, now: i64) -> DbView<'a> {
        DbView {
            snap: Some(snap),
            ..DbView::new(db, now)
        }
    }

    /// What this view touched.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn opts(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        if let Some(s) = self.snap {
            ro.set_snapshot(s);
        }
        ro
    }
}

impl Read for DbView<'_> {
    fn now(&self) -> i64 {
        self.now
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.stats.read();
        Ok(self
            .db
            .get_cf_opt(handle(self.db, cf.name())?, key, &self.opts())?)
    }

    fn scan(
        &self,
        cf: Cf,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if lower >= upper {
            return Ok(());
        }
        let mut ro = self.opts();
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(handle(self.db, cf.name())?, ro);
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            self.stats.read();
            if !f(k, v) {
                return Ok(());
            }
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        Ok(it.status()?)
    }
}

/// The staged records of one batch, per family (`None`: deleted), and the batch's effect on
/// the store's key counters.
#[derive(Debug, Default)]
pub struct Overlay {
    maps: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; 3],
    bytes: usize,
    flushed: bool,
    keys_delta: i64,
    expires_delta: i64,
}

impl Overlay {
    /// Forgets everything (once the batch is written).
    pub fn clear(&mut self) {
        *self = Overlay::default();
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.maps.iter().map(|m| m.len()).sum()
    }

    /// Bytes of keys and values held (each staged write once: about what the `WriteBatch`
    /// holds, so a caller that bounds its batch bounds this too).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the batch flushed everything ([`Staged::flush_all`]): the database's
    /// records before it are gone, and the deltas count from an empty store.
    pub fn flushed(&self) -> bool {
        self.flushed
    }

    /// Keys created minus keys deleted by the batch.
    pub fn keys_delta(&self) -> i64 {
        self.keys_delta
    }

    /// Keys with a TTL gained minus lost by the batch.
    pub fn expires_delta(&self) -> i64 {
        self.expires_delta
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.maps[cf.index()].get(key)
    }
}

/// The database plus one batch's staged writes; writes go to the batch and the overlay.
pub struct Staged<'a> {
    base: DbView<'a>,
    wb: &'a mut WriteBatch,
    ov: &'a mut Overlay,
    versions: &'a mut Versions,
    group: u64,
}

impl<'a> Staged<'a> {
    /// Stages into `wb` for `group` at the leader-stamped time `now`.
    pub fn new(
        db: &'a DB,
        wb: &'a mut WriteBatch,
        ov: &'a mut Overlay,
        versions: &'a mut Versions,
        group: u64,
        now: i64,
    ) -> Result<Staged<'a>> {
        for name in [Cf::Data, Cf::Sub, Cf::Score].map(Cf::name) {
            handle(db, name)?;
        }
        handle(db, CF_EXPIRE)?;
        handle(db, CF_META)?;
        Ok(Staged {
            base: DbView::new(db, now),
            wb,
            ov,
            versions,
            group,
        })
    }

    /// What this view touched (the database and the overlay alike).
    pub fn stats(&self) -> &Stats {
        &self.base.stats
    }

    fn cf(&self, name: &'static str) -> &'a ColumnFamily {
        // Checked in `new`; a column family cannot disappear while the database is open.
        match self.base.db.cf_handle(name) {
            Some(h) => h,
            None => unreachable!("column family {name} checked at construction"),
        }
    }

    /// FLUSHALL of the whole keyspace (this view knows no slot ownership): stages the
    /// deletion of every record of the data, sub and score families and of the group's
    /// expiry index (one range delete each, O(1)); later reads of this batch see only what
    /// is staged after it.
    pub fn flush_all(&mut self) {
        const CEILING: [u8; 9] = [0xff; 9];
        for name in [Cf::Data, Cf::Sub, Cf::Score].map(Cf::name) {
            let h = self.cf(name);
            self.wb.delete_range_cf(h, &[][..], &CEILING[..]);
        }
        let group = self.group.to_be_bytes();
        let h = self.cf(CF_EXPIRE);
        self.wb
            .delete_range_cf(h, &group[..], &prefix_end(&group)[..]);
        self.base.stats.wrote();
        *self.ov = Overlay {
            flushed: true,
            ..Overlay::default()
        };
    }

    fn stage(&mut self, cf: Cf, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.base.stats.wrote();
        let h = self.cf(cf.name());
        match &value {
            Some(v) => self.wb.put_cf(h, &key, v),
            None => self.wb.delete_cf(h, &key),
        }
        self.ov.bytes += key.len() + value.as_ref().map_or(0, |v| v.len());
        self.ov.maps[cf.index()].insert(key, value);
    }
}

/// Emits overlay records (`None` = deleted: skipped) to `f`; false once `f` asked to stop.
fn emit(
    stats: &Stats,
    k: &[u8],
    v: &Option<Vec<u8>>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> bool {
    stats.read();
    match v {
        Some(v) => f(k, v),
        None => true,
    }
}

type OvIter<'m> = Box<dyn Iterator<Item = (&'m Vec<u8>, &'m Option<Vec<u8>>)> + 'm>;

impl Read for Staged<'_> {
    fn now(&self) -> i64 {
        self.base.now
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.ov.get(cf, key) {
            Some(v) => {
                self.base.stats.read();
                Ok(v.clone())
            }
            None if self.ov.flushed => {
                self.base.stats.read();
                Ok(None)
            }
            None => self.base.get(cf, key),
        }
    }

    fn scan(
        &self,
        cf: Cf,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let map = &self.ov.maps[cf.index()];
        merged_scan(
            &self.base,
            map,
            self.ov.flushed.then(SlotSet::all_ref),
            cf,
            (lower, upper),
            reverse,
            f,
        )
    }
}

/// Staged records of one family: key → value (`None`: deleted).
pub(crate) type OverlayMap = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The parts of `[lower, upper)` outside the slots of `gone`, in key order (store keys
/// start with their slot, so a run of slots is one key range).
pub(crate) fn live_pieces(
    lower: &[u8],
    upper: &[u8],
    gone: Option<&SlotSet>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Some(gone) = gone.filter(|g| !g.is_empty()) else {
        return vec![(lower.to_vec(), upper.to_vec())];
    };
    if gone.is_all() {
        // Every store key starts with a slot below 16384.
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = lower.to_vec();
    let total = u32::from(crate::slot::SLOTS);
    while cur.as_slice() < upper {
        let s = u32::from(slot_of(&cur));
        if s >= total {
            out.push((cur, upper.to_vec()));
            break;
        }
        if gone.contains(s as u16) {
            cur = slot_start(gone.next_unowned(s)).to_vec().max(cur);
        } else {
            let Some(next) = gone.next_owned(s) else {
                out.push((cur, upper.to_vec()));
                break;
            };
            let end = slot_start(next.into()).to_vec().min(upper.to_vec());
            out.push((cur, end.clone()));
            cur = end;
        }
    }
    out
}

/// A range scan of `base` with the staged records of `map` merged in (the staged record
/// wins on equal keys; `flushed`: slots whose base records are gone).
pub(crate) fn merged_scan(
    base: &DbView<'_>,
    map: &OverlayMap,
    flushed: Option<&SlotSet>,
    cf: Cf,
    (lower, upper): (&[u8], &[u8]),
    reverse: bool,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    {
        if lower >= upper {
            return Ok(());
        }
        let stats = &base.stats;
        let range = map.range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)));
        let ov: OvIter<'_> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut ov = ov.peekable();
        let first = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let stopped = Cell::new(false);
        let mut pieces = live_pieces(lower, upper, flushed);
        if reverse {
            pieces.reverse();
        }
        {
            let mut visit = |k: &[u8], v: &[u8]| {
                while let Some((ok, ovv)) = ov.peek() {
                    if !first(ok, k) {
                        break;
                    }
                    if !emit(stats, ok, ovv, f) {
                        stopped.set(true);
                        return false;
                    }
                    ov.next();
                }
                let go_on = match ov.peek() {
                    Some((ok, ovv)) if ok.as_slice() == k => {
                        let go = emit(stats, ok, ovv, f);
                        ov.next();
                        go
                    }
                    _ => f(k, v),
                };
                stopped.set(!go_on);
                go_on
            };
            for (lo, hi) in &pieces {
                base.scan(cf, lo, hi, reverse, &mut visit)?;
                if stopped.get() {
                    break;
                }
            }
        }
        if !stopped.get() {
            for (ok, ovv) in ov {
                if !emit(stats, ok, ovv, f) {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Write for Staged<'_> {
    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.stage(cf, key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.stage(cf, key.to_vec(), None);
    }

    fn delete_range(&mut self, cf: Cf, lower: &[u8], upper: &[u8]) {
        self.base.stats.wrote();
        let h = self.cf(cf.name());
        self.wb.delete_range_cf(h, lower, upper);
    }

    fn put_data(&mut self, user_key: &[u8], value: Vec<u8>) -> Result<()> {
        let dkey = data_key(user_key);
        let old = self.get(Cf::Data, &dkey)?;
        let new_expire = header(&value).map_or(0, |(_, e)| e);
        let exp = self.cf(CF_EXPIRE);
        match old.as_deref().map(header) {
            None => self.ov.keys_delta += 1,
            Some(None) => return Err(Error::Storage("short data record".into())),
            Some(Some((_, e))) if e != 0 => {
                self.ov.expires_delta -= 1;
                if e != new_expire {
                    self.wb.delete_cf(exp, expire_key(self.group, e, &dkey));
                }
            }
            Some(Some(_)) => {}
        }
        if new_expire != 0 {
            self.ov.expires_delta += 1;
            self.wb
                .put_cf(exp, expire_key(self.group, new_expire, &dkey), []);
        }
        self.stage(Cf::Data, dkey, Some(value));
        Ok(())
    }

    fn del_data(&mut self, user_key: &[u8]) -> Result<()> {
        let dkey = data_key(user_key);
        let Some(old) = self.get(Cf::Data, &dkey)? else {
            return Ok(());
        };
        let (_, e) = header(&old).ok_or_else(|| Error::Storage("short data record".into()))?;
        self.ov.keys_delta -= 1;
        if e != 0 {
            self.ov.expires_delta -= 1;
            let exp = self.cf(CF_EXPIRE);
            self.wb.delete_cf(exp, expire_key(self.group, e, &dkey));
        }
        self.stage(Cf::Data, dkey, None);
        Ok(())
    }

    fn next_version(&mut self) -> u64 {
        let v = self.versions.next(self.base.now);
        let meta = self.cf(CF_META);
        self.wb
            .put_cf(meta, Versions::meta_key(self.group), v.to_be_bytes());
        v
    }
}
