//! Hashes: one `sub` record per field (sub key = `[hash u64 BE][field]`, value = the field's
//! value: fields come in the hash's pseudo-random order, as Redis's own are unordered, and
//! HRANDFIELD picks in O(count), see [`super::random`]), the field count in the metadata. Every operation touches only the fields it names, except
//! those that return the whole hash (HGETALL, HKEYS, HVALS) and the cursor scan's page.

use super::meta::{self, join, prefix_end, Meta};
use super::num::{format_human, parse_f64, parse_i64};
use super::random::{hashed_key, pick, HASH_LEN};
use super::{Cf, Error, Read, Result, Rng, Write};
use crate::TYPE_HASH;

fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_HASH)
}

fn field_key(m: &Meta, key: &[u8], field: &[u8]) -> Vec<u8> {
    hashed_key(&m.prefix(key), m.version, field)
}

/// HSET / HMSET: sets the fields; returns how many were new.
pub fn hset<W, F, V>(w: &mut W, key: &[u8], pairs: &[(F, V)]) -> Result<u64>
where
    W: Write + ?Sized,
    F: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let (mut m, existed) = meta::load_or_new(w, key, TYPE_HASH)?;
    let mut added = 0;
    for (f, v) in pairs {
        let fk = field_key(&m, key, f.as_ref());
        if w.get(Cf::Sub, &fk)?.is_none() {
            added += 1;
        }
        w.put(Cf::Sub, &fk, v.as_ref());
    }
    m.size += added;
    meta::save(w, key, &m, existed)?;
    Ok(added)
}

/// HSETNX: sets the field only if it is absent; true when set.
pub fn hsetnx<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    field: &[u8],
    value: &[u8],
) -> Result<bool> {
    if hget(w, key, field)?.is_some() {
        return Ok(false);
    }
    hset(w, key, &[(field, value)])?;
    Ok(true)
}

/// HGET.
pub fn hget<R: Read + ?Sized>(r: &R, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>> {
    match load(r, key)? {
        None => Ok(None),
        Some(m) => r.get(Cf::Sub, &field_key(&m, key, field)),
    }
}

/// HMGET: one answer per field, in order.
pub fn hmget<R, F>(r: &R, key: &[u8], fields: &[F]) -> Result<Vec<Option<Vec<u8>>>>
where
    R: Read + ?Sized,
    F: AsRef<[u8]>,
{
    let Some(m) = load(r, key)? else {
        return Ok(vec![None; fields.len()]);
    };
    fields
        .iter()
        .map(|f| r.get(Cf::Sub, &field_key(&m, key, f.as_ref())))
        .collect()
}

/// HDEL: returns how many fields existed; the key goes with its last field.
pub fn hdel<W, F>(w: &mut W, key: &[u8], fields: &[F]) -> Result<u64>
where
    W: Write + ?Sized,
    F: AsRef<[u8]>,
{
    let Some(mut m) = load(w, key)? else {
        return Ok(0);
    };
    let mut removed = 0;
    for f in fields {
        let fk = field_key(&m, key, f.as_ref());
        if w.get(Cf::Sub, &fk)?.is_some() {
            w.delete(Cf::Sub, &fk);
            removed += 1;
        }
    }
    m.size -= removed.min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(removed)
}

/// HEXISTS.
pub fn hexists<R: Read + ?Sized>(r: &R, key: &[u8], field: &[u8]) -> Result<bool> {
    Ok(hget(r, key, field)?.is_some())
}

/// HLEN (from the metadata, no field is read).
pub fn hlen<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<u64> {
    Ok(load(r, key)?.map_or(0, |m| m.size))
}

/// HSTRLEN: the value's length, 0 when absent.
pub fn hstrlen<R: Read + ?Sized>(r: &R, key: &[u8], field: &[u8]) -> Result<u64> {
    Ok(hget(r, key, field)?.map_or(0, |v| v.len() as u64))
}

/// Visits every (field, value), in hash order.
fn each<R: Read + ?Sized>(r: &R, key: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
    let Some(m) = load(r, key)? else {
        return Ok(());
    };
    let prefix = m.prefix(key);
    let n = prefix.len() + HASH_LEN;
    let end = prefix_end(&prefix);
    r.scan(Cf::Sub, &prefix, &end, false, &mut |k, v| {
        f(k.get(n..).unwrap_or_default(), v);
        true
    })
}

/// HGETALL: (field, value) pairs.
pub fn hgetall<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    each(r, key, |f, v| out.push((f.to_vec(), v.to_vec())))?;
    Ok(out)
}

/// HKEYS.
pub fn hkeys<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    each(r, key, |f, _| out.push(f.to_vec()))?;
    Ok(out)
}

/// HVALS.
pub fn hvals<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    each(r, key, |_, v| out.push(v.to_vec()))?;
    Ok(out)
}

/// HINCRBY: adds `delta` to the field's integer (0 when absent); returns the new value.
pub fn hincrby<W: Write + ?Sized>(w: &mut W, key: &[u8], field: &[u8], delta: i64) -> Result<i64> {
    let cur = match hget(w, key, field)? {
        None => 0,
        Some(v) => parse_i64(&v).ok_or(Error::HashNotInteger)?,
    };
    let new = cur.checked_add(delta).ok_or(Error::Overflow)?;
    hset(w, key, &[(field, new.to_string().as_bytes())])?;
    Ok(new)
}

/// HINCRBYFLOAT: adds `delta` to the field's number (0 when absent); returns the new value
/// as stored (and replied).
pub fn hincrbyfloat<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    field: &[u8],
    delta: f64,
) -> Result<String> {
    let cur = match hget(w, key, field)? {
        None => 0.0,
        Some(v) => parse_f64(&v).ok_or(Error::HashNotFloat)?,
    };
    let new = cur + delta;
    if !new.is_finite() {
        return Err(Error::NanOrInfinity);
    }
    let text = format_human(new);
    hset(w, key, &[(field, text.as_bytes())])?;
    Ok(text)
}

/// One page of a cursor scan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanPage<T> {
    /// The matching items of this page.
    pub items: Vec<T>,
    /// The last sub key examined: pass it back to continue; `None` once the scan is done.
    pub next: Option<Vec<u8>>,
}

/// Scans the records of one collection after sub key `after` (from the start when `None`),
/// examining at most `count` (at least 1), giving each (sub key, value) to `f`.
pub(crate) fn scan_page<R: Read + ?Sized>(
    r: &R,
    prefix: &[u8],
    after: Option<&[u8]>,
    count: usize,
    mut f: impl FnMut(&[u8], &[u8]),
) -> Result<Option<Vec<u8>>> {
    let from = match after {
        Some(a) => join(prefix, &[a, &[0]]),
        None => prefix.to_vec(),
    };
    let (n, count) = (prefix.len(), count.max(1));
    let (mut seen, mut last) = (0, None);
    r.scan(Cf::Sub, &from, &prefix_end(prefix), false, &mut |k, v| {
        seen += 1;
        f(&k[n..], v);
        last = Some(k[n..].to_vec());
        seen < count
    })?;
    Ok(if seen < count { None } else { last })
}

/// HSCAN: examines up to `count` fields after sub key `after` (the `next` of the previous
/// page); returns those matching `pattern` (a glob) with their values. The RESP layer maps
/// `next` to Redis's numeric cursor.
pub fn hscan<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    after: Option<&[u8]>,
    count: usize,
    pattern: Option<&[u8]>,
) -> Result<ScanPage<(Vec<u8>, Vec<u8>)>> {
    let Some(m) = load(r, key)? else {
        return Ok(ScanPage::default());
    };
    let pattern = pattern.filter(|p| *p != b"*");
    let mut items = Vec::new();
    let next = scan_page(r, &m.prefix(key), after, count, |sub, v| {
        let f = sub.get(HASH_LEN..).unwrap_or_default();
        if pattern.is_none_or(|p| crate::glob_match(p, f, false)) {
            items.push((f.to_vec(), v.to_vec()));
        }
    })?;
    Ok(ScanPage { items, next })
}

/// HRANDFIELD with a count: `count > 0` gives up to `count` distinct (field, value) pairs,
/// `count < 0` gives `-count` pairs that may repeat (see [`pick`]).
pub fn hrandfield<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    count: i64,
    rng: &mut Rng,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let picked = pick(r, &m.prefix(key), m.size, count, rng)?;
    Ok(picked.into_iter().map(|(_, f, v)| (f, v)).collect())
}
