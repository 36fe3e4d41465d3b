//! Lists: one `sub` record per element, sub key = its sequence (u64 BE); the metadata keeps
//! `head` (first sequence) and `tail` (one past the last), so the element at index `i` is
//! at `head + i`. Pushes, pops, LINDEX, LSET are O(1) records; LRANGE and LTRIM touch the
//! elements they return or remove; LINSERT and LREM shift elements (O(n), as in Redis).

use super::meta::{self, join, Meta};
use super::{Cf, Error, Read, Result, Write};
use crate::TYPE_LIST;

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP).
    Left,
    /// The tail (RPUSH, RPOP).
    Right,
}

fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_LIST)
}

fn elem_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    join(prefix, &[&seq.to_be_bytes()])
}

fn corrupt() -> Error {
    Error::Storage("list element missing".into())
}

/// Redis's index normalisation for LRANGE / LTRIM: the inclusive index range of `len`
/// elements that `start..=stop` selects, or `None` when empty.
pub fn norm_range(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len = len as i64;
    let start = if start < 0 {
        start.saturating_add(len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        stop.saturating_add(len)
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as u64, stop as u64))
}

/// LPUSH / RPUSH (and LPUSHX / RPUSHX with `only_existing`): pushes the values one by one at
/// `end`; returns the new length (0 when `only_existing` and there is no list).
pub fn push<W, V>(w: &mut W, key: &[u8], end: End, values: &[V], only_existing: bool) -> Result<u64>
where
    W: Write + ?Sized,
    V: AsRef<[u8]>,
{
    if only_existing && load(w, key)?.is_none() {
        return Ok(0);
    }
    let (mut m, existed) = meta::load_or_new(w, key, TYPE_LIST)?;
    let prefix = m.prefix(key);
    for v in values {
        let seq = match end {
            End::Left => {
                m.head = m.head.checked_sub(1).ok_or(Error::Overflow)?;
                m.head
            }
            End::Right => {
                let s = m.tail;
                m.tail = m.tail.checked_add(1).ok_or(Error::Overflow)?;
                s
            }
        };
        w.put(Cf::Sub, &elem_key(&prefix, seq), v.as_ref());
        m.size += 1;
    }
    meta::save(w, key, &m, existed)?;
    Ok(m.size)
}

/// LPOP / RPOP: removes up to `count` elements from `end`, returned in pop order; `None`
/// when there is no list.
pub fn pop<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    end: End,
    count: u64,
) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(mut m) = load(w, key)? else {
        return Ok(None);
    };
    let n = count.min(m.size);
    let prefix = m.prefix(key);
    let (lo, hi) = match end {
        End::Left => (m.head, m.head + n),
        End::Right => (m.tail - n, m.tail),
    };
    let out = read_seqs(w, &prefix, lo, hi, end == End::Right)?;
    for seq in lo..hi {
        w.delete(Cf::Sub, &elem_key(&prefix, seq));
    }
    match end {
        End::Left => m.head = hi,
        End::Right => m.tail = lo,
    }
    m.size -= n;
    meta::save(w, key, &m, true)?;
    Ok(Some(out))
}

/// Up to this many elements are read with point lookups, not a scan: a lookup skips the
/// SST files whose bloom filter rules the key out, an iterator opens and seeks them all.
const POINT_READS_UPTO: u64 = 4;

/// The elements at sequences `lo..hi` (descending when `reverse`), in one scan (or a few
/// point lookups).
fn read_seqs<R: Read + ?Sized>(
    r: &R,
    prefix: &[u8],
    lo: u64,
    hi: u64,
    reverse: bool,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity((hi - lo).min(1024) as usize);
    if lo < hi && hi - lo <= POINT_READS_UPTO {
        for i in 0..hi - lo {
            let seq = if reverse { hi - 1 - i } else { lo + i };
            out.push(
                r.get(Cf::Sub, &elem_key(prefix, seq))?
                    .ok_or_else(corrupt)?,
            );
        }
    } else if lo < hi {
        let (from, to) = (elem_key(prefix, lo), elem_key(prefix, hi));
        r.scan(Cf::Sub, &from, &to, reverse, &mut |_, v| {
            out.push(v.to_vec());
            true
        })?;
    }
    if out.len() as u64 != hi - lo {
        return Err(corrupt());
    }
    Ok(out)
}

/// LLEN.
pub fn llen<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<u64> {
    Ok(load(r, key)?.map_or(0, |m| m.size))
}

/// The sequence of index `index` (negative: from the end), if in range.
fn seq_of(m: &Meta, index: i64) -> Option<u64> {
    let i = if index < 0 {
        index.checked_add(m.size as i64)?
    } else {
        index
    };
    (0..m.size as i64).contains(&i).then(|| m.head + i as u64)
}

/// LINDEX.
pub fn lindex<R: Read + ?Sized>(r: &R, key: &[u8], index: i64) -> Result<Option<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(None);
    };
    match seq_of(&m, index) {
        None => Ok(None),
        Some(seq) => r.get(Cf::Sub, &elem_key(&m.prefix(key), seq)),
    }
}

/// LRANGE: the elements from `start` to `stop` inclusive (negative: from the end).
pub fn lrange<R: Read + ?Sized>(r: &R, key: &[u8], start: i64, stop: i64) -> Result<Vec<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    match norm_range(start, stop, m.size) {
        None => Ok(Vec::new()),
        Some((a, b)) => read_seqs(r, &m.prefix(key), m.head + a, m.head + b + 1, false),
    }
}

/// LRANGE for a reply: the elements [`lrange`] returns, as slices of one buffer (one
/// allocation for the whole range instead of one per element, which is most of a long
/// LRANGE's cost once read).
pub fn lrange_shared<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    start: i64,
    stop: i64,
) -> Result<Vec<bytes::Bytes>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let Some((a, b)) = norm_range(start, stop, m.size) else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (m.head + a, m.head + b + 1);
    let prefix = m.prefix(key);
    if hi - lo <= POINT_READS_UPTO {
        let items = read_seqs(r, &prefix, lo, hi, false)?;
        return Ok(items.into_iter().map(bytes::Bytes::from).collect());
    }
    let mut buf = bytes::BytesMut::new();
    let mut ends = Vec::with_capacity((hi - lo).min(1 << 16) as usize);
    let (from, to) = (elem_key(&prefix, lo), elem_key(&prefix, hi));
    r.scan(Cf::Sub, &from, &to, false, &mut |_, v| {
        buf.extend_from_slice(v);
        ends.push(buf.len());
        true
    })?;
    if ends.len() as u64 != hi - lo {
        return Err(corrupt());
    }
    let buf = buf.freeze();
    let mut at = 0;
    Ok(ends
        .into_iter()
        .map(|end| {
            let item = buf.slice(at..end);
            at = end;
            item
        })
        .collect())
}

/// LSET.
pub fn lset<W: Write + ?Sized>(w: &mut W, key: &[u8], index: i64, value: &[u8]) -> Result<()> {
    let m = load(w, key)?.ok_or(Error::NoSuchKey)?;
    let seq = seq_of(&m, index).ok_or(Error::IndexOutOfRange)?;
    w.put(Cf::Sub, &elem_key(&m.prefix(key), seq), value);
    Ok(())
}

/// Spans longer than this are deleted with one range delete.
const RANGE_DELETE_FROM: u64 = 32;

/// Deletes the elements at `lo..hi`: one range delete for a long span (those sequences are
/// outside `head..tail` from now on, so no read looks at them again, and a push that reuses
/// one writes it anew after the delete), else one delete each.
fn delete_seqs<W: Write + ?Sized>(w: &mut W, prefix: &[u8], lo: u64, hi: u64) {
    if hi.saturating_sub(lo) > RANGE_DELETE_FROM {
        w.delete_range(Cf::Sub, &elem_key(prefix, lo), &elem_key(prefix, hi));
    } else {
        for seq in lo..hi {
            w.delete(Cf::Sub, &elem_key(prefix, seq));
        }
    }
}

/// LTRIM: keeps `start..=stop`, deleting the rest: O(1) records (a range delete on each
/// side), whatever it removes.
pub fn ltrim<W: Write + ?Sized>(w: &mut W, key: &[u8], start: i64, stop: i64) -> Result<()> {
    let Some(mut m) = load(w, key)? else {
        return Ok(());
    };
    let (keep_lo, keep_hi) = match norm_range(start, stop, m.size) {
        Some((a, b)) => (m.head + a, m.head + b + 1),
        None => (m.head, m.head),
    };
    let prefix = m.prefix(key);
    delete_seqs(w, &prefix, m.head, keep_lo);
    delete_seqs(w, &prefix, keep_hi.max(keep_lo), m.tail);
    m.head = keep_lo;
    m.tail = keep_hi.max(keep_lo);
    m.size = m.tail - m.head;
    meta::save(w, key, &m, true)
}

/// Moves the elements at `lo..hi` by one position (`left`: to `seq - 1`, else `seq + 1`).
fn shift<W: Write + ?Sized>(w: &mut W, prefix: &[u8], lo: u64, hi: u64, left: bool) -> Result<()> {
    let mut step = |from: u64, to: u64| -> Result<()> {
        let v = w
            .get(Cf::Sub, &elem_key(prefix, from))?
            .ok_or_else(corrupt)?;
        w.put(Cf::Sub, &elem_key(prefix, to), &v);
        Ok(())
    };
    if left {
        (lo..hi).try_for_each(|s| step(s, s - 1))
    } else {
        (lo..hi).rev().try_for_each(|s| step(s, s + 1))
    }
}

/// The sequence of the first element equal to `value`, scanning from the head.
fn find<R: Read + ?Sized>(r: &R, m: &Meta, prefix: &[u8], value: &[u8]) -> Result<Option<u64>> {
    let mut found = None;
    let mut seq = m.head;
    r.scan(
        Cf::Sub,
        &elem_key(prefix, m.head),
        &elem_key(prefix, m.tail),
        false,
        &mut |_, v| {
            if v == value {
                found = Some(seq);
                return false;
            }
            seq += 1;
            true
        },
    )?;
    Ok(found)
}

/// LINSERT: inserts `value` before (or after) the first `pivot`; returns the new length, -1
/// when the pivot is absent, 0 when there is no list. Shifts the shorter side.
pub fn linsert<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    before: bool,
    pivot: &[u8],
    value: &[u8],
) -> Result<i64> {
    let Some(mut m) = load(w, key)? else {
        return Ok(0);
    };
    let prefix = m.prefix(key);
    let Some(p) = find(w, &m, &prefix, pivot)? else {
        return Ok(-1);
    };
    // The new element takes sequence `at` once the elements from `at` on move right, or
    // `at - 1` once those before `at` move left.
    let at = if before { p } else { p + 1 };
    let slot = if at - m.head < m.tail - at {
        shift(w, &prefix, m.head, at, true)?;
        m.head -= 1;
        at - 1
    } else {
        shift(w, &prefix, at, m.tail, false)?;
        m.tail += 1;
        at
    };
    w.put(Cf::Sub, &elem_key(&prefix, slot), value);
    m.size += 1;
    meta::save(w, key, &m, true)?;
    Ok(m.size as i64)
}

/// LREM: removes up to `count` elements equal to `value` (from the head when `count > 0`,
/// the tail when `< 0`, all when 0), closing the gaps; returns how many went.
pub fn lrem<W: Write + ?Sized>(w: &mut W, key: &[u8], count: i64, value: &[u8]) -> Result<u64> {
    let Some(mut m) = load(w, key)? else {
        return Ok(0);
    };
    let prefix = m.prefix(key);
    let limit = if count == 0 {
        u64::MAX
    } else {
        count.unsigned_abs()
    };
    let from_tail = count < 0;
    let seqs: Box<dyn Iterator<Item = u64>> = if from_tail {
        Box::new((m.head..m.tail).rev())
    } else {
        Box::new(m.head..m.tail)
    };
    let mut removed = 0u64;
    let mut dest = if from_tail { m.tail - 1 } else { m.head };
    for seq in seqs {
        let v = w
            .get(Cf::Sub, &elem_key(&prefix, seq))?
            .ok_or_else(corrupt)?;
        if removed < limit && v == value {
            removed += 1;
            continue;
        }
        if dest != seq {
            w.put(Cf::Sub, &elem_key(&prefix, dest), &v);
        }
        dest = if from_tail {
            dest.wrapping_sub(1)
        } else {
            dest + 1
        };
    }
    let freed = if from_tail {
        let lo = m.head;
        m.head += removed;
        lo..m.head
    } else {
        m.tail -= removed;
        m.tail..m.tail + removed
    };
    delete_seqs(w, &prefix, freed.start, freed.end);
    m.size -= removed;
    meta::save(w, key, &m, true)?;
    Ok(removed)
}

/// LMOVE / RPOPLPUSH: pops one element from `src`'s `from` end and pushes it at `dst`'s `to`
/// end (the same list rotates); `None` when there is no `src`. As Redis: a missing `src`
/// answers nil before `dst`'s type is looked at.
pub fn lmove<W: Write + ?Sized>(
    w: &mut W,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Vec<u8>>> {
    if load(w, src)?.is_none() {
        return Ok(None);
    }
    load(w, dst)?;
    let Some(mut popped) = pop(w, src, from, 1)? else {
        return Ok(None);
    };
    let Some(v) = popped.pop() else {
        return Ok(None);
    };
    push(w, dst, to, &[&v], false)?;
    Ok(Some(v))
}

/// LPOS: the indexes of elements equal to `value`. `rank` (not 0) picks the n-th match,
/// negative from the tail; `count` (0 = all) how many to return; `maxlen` (0 = all) how many
/// elements to compare at most. O(elements compared).
pub fn lpos<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    value: &[u8],
    rank: i64,
    count: u64,
    maxlen: u64,
) -> Result<Vec<u64>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let prefix = m.prefix(key);
    let (reverse, mut skip) = (rank < 0, rank.unsigned_abs().max(1) - 1);
    let want = if count == 0 { u64::MAX } else { count };
    let limit = if maxlen == 0 { u64::MAX } else { maxlen };
    let (mut out, mut seen) = (Vec::new(), 0u64);
    let (lo, hi) = (elem_key(&prefix, m.head), elem_key(&prefix, m.tail));
    r.scan(Cf::Sub, &lo, &hi, reverse, &mut |_, v| {
        let index = if reverse { m.size - 1 - seen } else { seen };
        seen += 1;
        if v == value {
            if skip == 0 {
                out.push(index);
            } else {
                skip -= 1;
            }
        }
        (out.len() as u64) < want && seen < limit
    })?;
    Ok(out)
}
