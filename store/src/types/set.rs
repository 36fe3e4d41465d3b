//! Sets: one `sub` record per member, sub key = `[hash u64 BE][member]`, empty value;
//! SRANDMEMBER picks at random in O(count) records ([`super::random`]).
//!
//! SPOP pops from the low end of the hash order, as a cursor that advances: the set's `lo`
//! hint ([`Meta::lo`]) is a lower bound of its live members' hashes, SPOP seeks there, takes
//! the first `count` members and raises the hint to the first member left. A pop thus seeks
//! past the tombstones of earlier pops (RocksDB keeps deleted keys until compaction) instead
//! of stepping over them from a random start, which grew to about (popped / left) tombstones
//! per pop as a set emptied (N ln N in all to empty it). The hash mixes the key's version
//! (a fresh one for each incarnation of the key) with the member, so the order is a
//! pseudo-random permutation of the members, not the order of insertion, the same on every
//! replica; but unlike Redis's, two SPOPs of the same set contents pop in the same order.
//! (A random offset within a window of the first live members was tried: the members it
//! skips linger, and the tombstones between them made pops walk more than a random start.)

use super::hash::{scan_page, ScanPage};
use super::meta::join;
use super::meta::{self, prefix_end, Meta};
use super::random::{hashed_key, name_hash, pick, HASH_LEN};
use super::{Cf, Read, Result, Rng, Write};
use crate::TYPE_SET;

fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_SET)
}

fn member_key(m: &Meta, prefix: &[u8], member: &[u8]) -> Vec<u8> {
    hashed_key(prefix, m.version, member)
}

/// The set's `lo` hint (0: none).
fn low_hash(m: &Meta) -> u64 {
    m.lo.get(..HASH_LEN)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The hash of a member's sub key.
fn hash_of(prefix_len: usize, k: &[u8]) -> u64 {
    k.get(prefix_len..prefix_len + HASH_LEN)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// SADD: returns how many members were new.
pub fn sadd<W, M>(w: &mut W, key: &[u8], members: &[M]) -> Result<u64>
where
    W: Write + ?Sized,
    M: AsRef<[u8]>,
{
    let (mut m, existed) = meta::load_or_new(w, key, TYPE_SET)?;
    let prefix = m.prefix(key);
    let mut added = 0;
    for member in members {
        let h = name_hash(m.version, member.as_ref());
        let mk = join(&prefix, &[&h.to_be_bytes(), member.as_ref()]);
        if w.get(Cf::Sub, &mk)?.is_none() {
            w.put(Cf::Sub, &mk, &[]);
            added += 1;
            if h < low_hash(&m) {
                m.lo = h.to_be_bytes().to_vec();
            }
        }
    }
    m.size += added;
    meta::save(w, key, &m, existed)?;
    Ok(added)
}

/// SREM: returns how many members existed; the key goes with its last member.
pub fn srem<W, M>(w: &mut W, key: &[u8], members: &[M]) -> Result<u64>
where
    W: Write + ?Sized,
    M: AsRef<[u8]>,
{
    let Some(mut m) = load(w, key)? else {
        return Ok(0);
    };
    let prefix = m.prefix(key);
    let mut removed = 0;
    for member in members {
        let mk = member_key(&m, &prefix, member.as_ref());
        if w.get(Cf::Sub, &mk)?.is_some() {
            w.delete(Cf::Sub, &mk);
            removed += 1;
        }
    }
    m.size -= removed.min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(removed)
}

/// SISMEMBER.
pub fn sismember<R: Read + ?Sized>(r: &R, key: &[u8], member: &[u8]) -> Result<bool> {
    Ok(smismember(r, key, &[member])?[0])
}

/// SMISMEMBER: one answer per member, in order.
pub fn smismember<R, M>(r: &R, key: &[u8], members: &[M]) -> Result<Vec<bool>>
where
    R: Read + ?Sized,
    M: AsRef<[u8]>,
{
    let Some(m) = load(r, key)? else {
        return Ok(vec![false; members.len()]);
    };
    let prefix = m.prefix(key);
    members
        .iter()
        .map(|x| {
            Ok(r.get(Cf::Sub, &member_key(&m, &prefix, x.as_ref()))?
                .is_some())
        })
        .collect()
}

/// SCARD (from the metadata).
pub fn scard<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<u64> {
    Ok(load(r, key)?.map_or(0, |m| m.size))
}

/// SMEMBERS, in the set's (hash) order.
pub fn smembers<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let prefix = m.prefix(key);
    let skip = prefix.len() + HASH_LEN;
    let mut out = Vec::with_capacity(m.size.min(1 << 16) as usize);
    r.scan(
        Cf::Sub,
        &prefix,
        &prefix_end(&prefix),
        false,
        &mut |k, _| {
            out.push(k[skip..].to_vec());
            true
        },
    )?;
    Ok(out)
}

/// SPOP: removes up to `count` members, the first ones of the hash order (see the module
/// doc: every replica pops the same ones; `_seed`, the entry's, is not needed); `None` when
/// there is no set.
pub fn spop<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    count: u64,
    _seed: u64,
) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(mut m) = load(w, key)? else {
        return Ok(None);
    };
    let prefix = m.prefix(key);
    // One more than popped: the first member left, where the hint moves.
    let want = count.min(m.size).saturating_add(1);
    let from = join(&prefix, &[&low_hash(&m).to_be_bytes()]);
    let mut live: Vec<Vec<u8>> = Vec::with_capacity(want.min(1 << 16) as usize);
    w.scan(Cf::Sub, &from, &prefix_end(&prefix), false, &mut |k, _| {
        live.push(k.to_vec());
        (live.len() as u64) < want
    })?;
    let n = count.min(m.size).min(live.len() as u64) as usize;
    if let Some(k) = live.get(n) {
        m.lo = hash_of(prefix.len(), k).to_be_bytes().to_vec();
    }
    let skip = prefix.len() + HASH_LEN;
    let mut popped = Vec::with_capacity(n);
    for k in &live[..n] {
        w.delete(Cf::Sub, k);
        popped.push(k.get(skip..).unwrap_or_default().to_vec());
    }
    m.size -= (n as u64).min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(Some(popped))
}

/// SRANDMEMBER with a count: `count > 0` gives up to `count` distinct members, `count < 0`
/// gives `-count` members that may repeat (see [`pick`]).
pub fn srandmember<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    count: i64,
    rng: &mut Rng,
) -> Result<Vec<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let picked = pick(r, &m.prefix(key), m.size, count, rng)?;
    Ok(picked.into_iter().map(|(_, name, _)| name).collect())
}

/// SSCAN: examines up to `count` members after sub key `after` (the `next` of the previous
/// page); returns those matching `pattern`.
pub fn sscan<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    after: Option<&[u8]>,
    count: usize,
    pattern: Option<&[u8]>,
) -> Result<ScanPage<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(ScanPage::default());
    };
    let pattern = pattern.filter(|p| *p != b"*");
    let mut items = Vec::new();
    let next = scan_page(r, &m.prefix(key), after, count, |sub, _| {
        let member = &sub[HASH_LEN.min(sub.len())..];
        if pattern.is_none_or(|p| crate::glob_match(p, member, false)) {
            items.push(member.to_vec());
        }
    })?;
    Ok(ScanPage { items, next })
}
