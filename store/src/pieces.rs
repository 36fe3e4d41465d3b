//! Records too big for one migration chunk (a string grown by APPEND past
//! `--max-write-bytes`, a large hash field): the export sends them in pieces, the target
//! stages the pieces and writes the whole record when the last one arrives.
//!
//! A piece travels in `RAFTKV.SLOTS.INGEST` as a record whose family word is
//! `<cf>:<offset>:<total>` ([`piece_word`]); each piece is alone in its chunk, so every
//! ingest entry stays within the chunk size whatever the record's size. The export resumes
//! inside a record with a piece cursor ([`piece_cursor`]: the family index with its high
//! bit set, the offset, the key).
//!
//! The target stages a piece in its `meta` under the group's prefix, tag `P`, by migration
//! fence, family, key and offset ([`record_prefix`]), so a snapshot of the target carries
//! the pieces and every replica assembles the same record from the same log. The last
//! piece assembles the chain of staged pieces from offset 0 (a repeated or restarted copy
//! rewrites the same offsets with the frozen source's bytes; a chain that does not reach
//! the last piece is refused, and the coordinator copies again), deletes the record's
//! staging and hands the record on to be written like any other. A later migration's slot
//! command deletes the staging of older ones (a copy given up half way: [`gc`]). Pieces
//! staged earlier in the same apply batch are read from [`Staged`], so the outcome does
//! not depend on how entries were batched.

use std::collections::BTreeMap;

use bytes::Bytes;
use resp::Reply;
use rocksdb::WriteBatch;

use crate::ingest::COPIED;
use crate::types::meta::prefix_end;
use crate::{fail_stop, meta_key, total_order, Store, CF_META};

/// Tag of staged pieces in `meta`.
const PIECE_TAG: u8 = b'P';

/// The cursor flag: the export resumes inside the record, at an offset.
const PIECE_FLAG: u8 = 0x80;

/// Largest record the pieces may assemble (twice Redis's largest string, for its header).
const MAX_RECORD: u64 = 2 * crate::budget::MAX_STRING as u64;

/// The family word of a piece of `cf`'s record: bytes `off..` of `total`.
pub(crate) fn piece_word(cf: &str, off: u64, total: u64) -> Bytes {
    Bytes::from(format!("{cf}:{off}:{total}"))
}

/// A family word decoded: the family, and for a piece its offset and the record's size.
pub(crate) fn parse_word(w: &[u8]) -> Option<(&'static str, Option<(u64, u64)>)> {
    let text = std::str::from_utf8(w).ok()?;
    let mut parts = text.split(':');
    let name = parts.next()?;
    let cf = COPIED.iter().copied().find(|c| *c == name)?;
    let Some(off) = parts.next() else {
        return Some((cf, None));
    };
    let off = off.parse().ok()?;
    let total = parts.next()?.parse().ok()?;
    if parts.next().is_some() || off > total || total > MAX_RECORD {
        return None;
    }
    Some((cf, Some((off, total))))
}

/// The export cursor inside `cf`'s record `key`, at byte `off` of its value.
pub(crate) fn piece_cursor(cf: usize, key: &[u8], off: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(key.len() + 9);
    c.push(cf as u8 | PIECE_FLAG);
    c.extend_from_slice(&off.to_be_bytes());
    c.extend_from_slice(key);
    c
}

/// An export cursor decoded: the family index, the key to start at (inclusive; none: the
/// family's start) and the offset in that record's value.
pub(crate) fn parse_cursor(at: &[u8]) -> Result<(usize, Option<&[u8]>, u64), String> {
    let Some((&cf, rest)) = at.split_first() else {
        return Ok((0, None, 0));
    };
    if cf & PIECE_FLAG == 0 {
        return Ok((usize::from(cf), Some(rest), 0));
    }
    let (off, key) = rest.split_at_checked(8).ok_or("malformed export cursor")?;
    let off = u64::from_be_bytes(off.try_into().map_err(|_| "malformed export cursor")?);
    Ok((usize::from(cf & !PIECE_FLAG), Some(key), off))
}

/// The staging prefix of one record: group, tag, fence, family index, key length, key.
fn record_prefix(group: u64, fence: u64, cf: &str, key: &[u8]) -> Vec<u8> {
    let cf = COPIED.iter().position(|c| *c == cf).unwrap_or(0) as u8;
    let mut p = meta_key(group, PIECE_TAG);
    p.extend_from_slice(&fence.to_be_bytes());
    p.push(cf);
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p
}

/// Deletes the staged pieces of migrations older than `fence` (copies given up).
pub(crate) fn gc(store: &Store, wb: &mut WriteBatch, fence: u64) {
    let lo = meta_key(store.group, PIECE_TAG);
    let mut hi = lo.clone();
    hi.extend_from_slice(&fence.to_be_bytes());
    wb.delete_range_cf(store.cf(CF_META), lo, hi);
}

/// Pieces staged or deleted by the batch being applied (not yet in the database).
#[derive(Default)]
pub(crate) struct Staged {
    put: BTreeMap<Vec<u8>, Vec<u8>>,
    gone: Vec<Vec<u8>>,
}

fn missing() -> Reply {
    Reply::err("ERR ingest piece missing (the copy starts the record again)")
}

impl Store {
    /// Stages piece `off..` of `total` bytes of `cf`'s record `key` (migration `fence`);
    /// the whole record once this is its last piece.
    pub(crate) fn stage_piece(
        &mut self,
        wb: &mut WriteBatch,
        fence: u64,
        (cf, key): (&str, &[u8]),
        piece: &[u8],
        (off, total): (u64, u64),
    ) -> Result<Option<Vec<u8>>, Reply> {
        let end = off
            .checked_add(piece.len() as u64)
            .filter(|&e| e <= total)
            .ok_or_else(|| Reply::err("ERR malformed ingested record"))?;
        let prefix = record_prefix(self.group, fence, cf, key);
        if end < total {
            let mut k = prefix;
            k.extend_from_slice(&off.to_be_bytes());
            wb.put_cf(self.cf(CF_META), &k, piece);
            self.staged.put.insert(k, piece.to_vec());
            return Ok(None);
        }
        let mut have = self.staged_pieces(&prefix);
        let mut full = Vec::with_capacity(total as usize);
        while (full.len() as u64) < off {
            match have.remove(&(full.len() as u64)) {
                Some(p) if !p.is_empty() => full.extend_from_slice(&p),
                _ => return Err(missing()),
            }
        }
        if full.len() as u64 != off {
            return Err(missing());
        }
        full.extend_from_slice(piece);
        let end_key = prefix_end(&prefix);
        wb.delete_range_cf(self.cf(CF_META), &prefix, &end_key);
        self.staged.put.retain(|k, _| !k.starts_with(&prefix));
        self.staged.gone.push(prefix);
        Ok(Some(full))
    }

    /// The staged pieces of the record at `prefix` by offset: the database's (unless this
    /// batch deleted them), then this batch's.
    fn staged_pieces(&self, prefix: &[u8]) -> BTreeMap<u64, Vec<u8>> {
        let offset = |k: &[u8]| {
            k.strip_prefix(prefix)
                .and_then(|o| <[u8; 8]>::try_from(o).ok())
                .map(u64::from_be_bytes)
        };
        let mut out = BTreeMap::new();
        if !self.staged.gone.iter().any(|g| g == prefix) {
            let mut it = self.db.raw_iterator_cf_opt(self.cf(CF_META), total_order());
            it.seek(prefix);
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !k.starts_with(prefix) {
                    break;
                }
                if let Some(o) = offset(k) {
                    out.insert(o, v.to_vec());
                }
                it.next();
            }
            if let Err(e) = it.status() {
                fail_stop("reading staged migration pieces", e);
            }
        }
        for (k, v) in self.staged.put.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if let Some(o) = offset(k) {
                out.insert(o, v.clone());
            }
        }
        out
    }

    /// The batch is written: its staged pieces are in the database now.
    pub(crate) fn pieces_written(&mut self) {
        self.staged = Staged::default();
    }
}
