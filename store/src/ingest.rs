//! Copying a migration's records to nodes that host no replica of its source group.
//!
//! Slot records are `[slot][key]` in the slot-keyed column families ([`COPIED`]), so a node
//! hosting both the source and the target of a migration already has them and its target's
//! `RAFTKV.SLOTS.ADD` adopts them (`scope`, `claims`). A node hosting the target only has
//! none (or stale ones from an older owner), so:
//!
//! - the target's ADD names the source (`FROM <g>`); a replica on a node not hosting `g`
//!   takes the slots *fresh*: it deletes whatever records of them the node holds, waits
//!   for no local source replica (there is none), and counts no keys;
//! - the coordinator then reads the slots' records from a source replica (frozen since its
//!   REMOVE) in bounded chunks ([`Reader::export_slots`]) and proposes each to the target
//!   as `RAFTKV.SLOTS.INGEST FENCE <id> (<cf> <key> <value>)...`; every target replica
//!   applies it ([`Store::apply_ingest`]) as an upsert of the source's bytes into slots it
//!   owns (counters, expiry index and WATCH versions kept as by any write): where the
//!   records were adopted it rewrites identical values, so the outcome is the same on
//!   every replica, and a repeated chunk (a coordinator retry) changes nothing;
//! - before the cut-over, `RAFTKV.SLOTS.DROP FENCE <id> TO <g>` has the source's replicas
//!   on nodes not hosting the target `g` delete the slots' records (the source serves them
//!   no more since its REMOVE): garbage collection ([`Store::drop_slots`]).
//!
//! Between the ADD and the cut-over no request is routed to the target for these slots,
//! so nobody sees them half copied; a snapshot of the target taken meanwhile holds what was
//! copied so far, and the log the rest.

use bytes::Bytes;
use resp::Reply;
use rocksdb::WriteBatch;

use crate::slots::{slot_of, slot_start, visit_ranges, SlotSet};
use crate::{pieces, txn, types, Reader, Store, Value, CF_DATA};

/// The column families whose records a migration copies (the expiry index, the counters
/// and the WATCH versions are rebuilt by the target).
pub const COPIED: [&str; 3] = [CF_DATA, types::CF_SUB, types::CF_ZSCORE];

/// One exported chunk: the records, and where the next chunk starts (`None`: done).
pub type Chunk = (Vec<(Bytes, Bytes, Bytes)>, Option<Vec<u8>>);

/// The resume point at `cf`'s record `key` (inclusive): `[cf index][key]`.
fn cursor(cf: usize, key: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(key.len() + 1);
    c.push(cf as u8);
    c.extend_from_slice(key);
    c
}

/// Entries of a hashed memtable (`crate::columns`) above which an export flushes it before
/// it reads. Every chunk's total-order iterator first sorts the memtable's entries (and
/// scans its hash buckets): with a full memtable (tens of thousands of records, e.g. the
/// source's own records written shortly before) that sort took 65% of the source node's
/// CPU in a 64 MB copy, each chunk sorting the whole memtable again; with 8,000 entries
/// left it still took 87% of it in a 1 GB copy (about 18 ms of CPU per 256 KiB chunk).
/// After one flush the records are read from table files, and the memtable holds only
/// writes since, so a chunk sorts at most this many. The price: one flush (a small table
/// file) per this many foreign writes while a copy runs, at most one per chunk. KEYS, SCAN
/// and RANDOMKEY do the same (see `Reader::read_all`).
pub const EXPORT_FLUSH_ENTRIES: u64 = 2048;

/// The key ranges of `slots`' runs, from `from` (inclusive) when given: runs before it are
/// done, the run holding it starts there.
fn key_runs_from(slots: &SlotSet, from: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    slots
        .ranges()
        .map(|(lo, hi)| {
            let (a, b) = (slot_start(lo.into()), slot_start(u32::from(hi) + 1));
            (a.to_vec(), b.to_vec())
        })
        .filter(|(_, b)| from.is_none_or(|f| f < &b[..]))
        .map(|(a, b)| match from {
            Some(f) if f > &a[..] => (f.to_vec(), b),
            _ => (a, b),
        })
        .collect()
}

impl Reader {
    /// Records of `ranges`' slots in [`COPIED`] order, from `at` (a cursor this returned;
    /// empty: the start), until about `max_bytes`, on one RocksDB snapshot. A record bigger
    /// than `max_bytes` goes alone, in pieces of about `piece_bytes` (see `crate::pieces`).
    pub fn export_slots(
        &self,
        ranges: &[(u16, u16)],
        at: &[u8],
        (max_bytes, piece_bytes): (usize, usize),
    ) -> Result<Chunk, String> {
        let slots = SlotSet::from_ranges(ranges.iter().copied())?;
        let (start_cf, start_key, start_off) = pieces::parse_cursor(at)?;
        for name in COPIED.iter().skip(start_cf) {
            crate::columns::flush_if_big(&self.db, name, EXPORT_FLUSH_ENTRIES)?;
        }
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (i, name) in COPIED.iter().enumerate().skip(start_cf) {
            let cf = self.db.cf_handle(name).ok_or("missing column family")?;
            // Read once: the copy's blocks would only push the served ones out of the cache.
            let mut ro = crate::total_order();
            ro.fill_cache(false);
            let mut it = snap.raw_iterator_cf_opt(cf, ro);
            // Resume at the cursor's record (inclusive): runs before it are done.
            let from = (i == start_cf).then_some(start_key).flatten();
            let runs = key_runs_from(&slots, from);
            let mut next = None;
            let runs = runs.iter().map(|(a, b)| (&a[..], &b[..]));
            let walked = visit_ranges(&mut it, runs, |k, v| {
                // Only the cursor's own record resumes inside its value.
                let off = match from {
                    Some(f) if k == f => (start_off as usize).min(v.len()),
                    _ => 0,
                };
                let size = k.len() + (v.len() - off) + 16;
                if off == 0 && size <= max_bytes {
                    if bytes >= max_bytes {
                        next = Some(cursor(i, k));
                        return false;
                    }
                    bytes += size;
                    out.push((
                        Bytes::from_static(name.as_bytes()),
                        Bytes::copy_from_slice(k),
                        Bytes::copy_from_slice(v),
                    ));
                    return true;
                }
                // Bigger than a chunk: in pieces, each alone in its chunk.
                if !out.is_empty() {
                    next = Some(cursor(i, k));
                    return false;
                }
                let len = piece_bytes
                    .saturating_sub(k.len() + 16)
                    .max(1)
                    .min(v.len() - off);
                let (total, end) = (v.len() as u64, (off + len) as u64);
                out.push((
                    pieces::piece_word(name, off as u64, total),
                    Bytes::copy_from_slice(k),
                    Bytes::copy_from_slice(&v[off..off + len]),
                ));
                next = Some(if end < total {
                    pieces::piece_cursor(i, k, end)
                } else {
                    let mut after = k.to_vec();
                    after.push(0);
                    cursor(i, &after)
                });
                false
            });
            walked.map_err(|e| e.to_string())?;
            if next.is_some() {
                return Ok((out, next));
            }
        }
        Ok((out, None))
    }
}

/// Deletes the records of group `group` that are its own whatever it owns (its `meta`,
/// expiry index, scripts and WATCH epoch; slot records belong to whoever owns the slots),
/// synced: a group removed from this node, whose peer has stopped.
pub fn destroy_group(db: &rocksdb::DB, group: u64) -> Result<(), String> {
    let mut wb = WriteBatch::default();
    for name in crate::column_families() {
        let cf = db
            .cf_handle(name)
            .ok_or_else(|| format!("missing column family {name}"))?;
        for (lo, hi) in crate::snapshot::group_ranges(name, group, &SlotSet::empty()) {
            wb.delete_range_cf(cf, lo, hi);
        }
    }
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(wb, &wo).map_err(|e| e.to_string())
}

impl Store {
    /// `RAFTKV.SLOTS.INGEST FENCE <fence> records...` (see the module doc): the number of
    /// records written. A chunk of an older migration than the last applied is stale.
    pub(crate) fn apply_ingest(
        &mut self,
        wb: &mut WriteBatch,
        fence: u64,
        records: &[(Bytes, Bytes, Bytes)],
    ) -> Reply {
        if fence != 0 && (fence < self.fence || fence <= self.sealed) {
            return Reply::Int(0);
        }
        let malformed = || Reply::err("ERR malformed ingested record");
        let mut cfs = Vec::with_capacity(records.len());
        for (cf, _, v) in records {
            match pieces::parse_word(cf) {
                Some((c, None)) if c != CF_DATA || Value::header(v).is_some() => {
                    cfs.push((c, None))
                }
                Some((c, Some(piece))) => cfs.push((c, Some(piece))),
                _ => return malformed(),
            }
        }
        let mut n = 0;
        for ((_, key, value), (cf, piece)) in records.iter().zip(cfs) {
            let slot = slot_of(key);
            if !self.slots.contains(slot) || self.claims.owner(slot) != self.group {
                continue;
            }
            let whole = match piece {
                None => value.to_vec(),
                Some(at) => match self.stage_piece(wb, fence, (cf, key), value, at) {
                    Ok(None) => continue,
                    Ok(Some(whole)) => whole,
                    Err(e) => return e,
                },
            };
            // Through the batch's overlays, so the batch's later commands see the copy
            // (the ADD hid the database's records of these slots from them).
            if cf == CF_DATA {
                if Value::header(&whole).is_none() {
                    return malformed();
                }
                self.put_encoded(wb, key.to_vec(), whole);
            } else {
                wb.put_cf(self.cf(cf), key, &whole);
                let at = usize::from(cf == types::CF_ZSCORE);
                self.coll_set(at, key.to_vec(), Some(whole));
            }
            n += 1;
        }
        Reply::Int(n)
    }

    /// Deletes the records of `slots` in the copied families and their WATCH records (a
    /// fresh ADD's clean slate, or a DROP's collection), and hides them from the batch's
    /// later commands as a FLUSHALL does (else a command in the same batch as a fresh ADD
    /// read the older owner's records, still in the database until the batch is written).
    pub(crate) fn delete_slot_records(&mut self, wb: &mut WriteBatch, slots: &SlotSet) {
        self.flushed = Some(Box::new(match self.flushed.take() {
            Some(f) => f.union(slots),
            None => slots.clone(),
        }));
        for name in COPIED {
            for (lo, hi) in slots.ranges() {
                let (a, b) = (slot_start(lo.into()), slot_start(u32::from(hi) + 1));
                wb.delete_range_cf(self.cf(name), a, b);
            }
        }
        for (a, b) in txn::kver_ranges(slots) {
            wb.delete_range_cf(self.cf(txn::CF_KVER), a, b);
        }
    }

    /// `RAFTKV.SLOTS.DROP FENCE <fence> TO <to> ranges`: where group `to` is not hosted on
    /// this node, deletes the records of the slots that neither this group nor any other
    /// local group serves; the number of slots collected.
    pub(crate) fn drop_slots(
        &mut self,
        wb: &mut WriteBatch,
        given: &SlotSet,
        fence: u64,
        to: u64,
    ) -> Reply {
        if (fence != 0 && fence < self.fence) || to == 0 || self.claims.hosts(to) {
            return Reply::Int(0);
        }
        let mut gone = SlotSet::empty();
        for (lo, hi) in given.ranges() {
            for s in lo..=hi {
                if !self.slots.contains(s) && self.claims.owner(s) == 0 {
                    gone.insert_range(s, s);
                }
            }
        }
        if gone.is_empty() {
            return Reply::Int(0);
        }
        self.delete_slot_records(wb, &gone);
        Reply::Int(gone.len() as i64)
    }
}
