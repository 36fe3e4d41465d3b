//! Sets: one `sub` record per member, sub key = `[hash u64 BE][member]`, empty value. The
//! hash mixes the key's version with the member, so members sit in a pseudo-random order
//! that a client cannot arrange; SPOP and SRANDMEMBER seek to a random hash and take the
//! records that follow (wrapping around): O(count) records, no whole-set read. A member's
//! chance is proportional to the hash gap before it, so picks are random but not exactly
//! uniform (Redis's own picks are approximate too). SPOP's seed comes from the Raft entry.

use super::hash::{scan_page, ScanPage};
use super::meta::{self, join, prefix_end, Meta};
use super::{Cf, Error, Read, Result, Rng, Write};
use crate::TYPE_SET;

fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_SET)
}

/// FNV-1a over (version, member) with a 64-bit finaliser: stable across builds and replicas
/// (unlike std's hasher, whose algorithm may change).
pub(crate) fn member_hash(version: u64, member: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in version.to_be_bytes().iter().chain(member) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn member_key(m: &Meta, prefix: &[u8], member: &[u8]) -> Vec<u8> {
    join(
        prefix,
        &[&member_hash(m.version, member).to_be_bytes(), member],
    )
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
        let mk = member_key(&m, &prefix, member.as_ref());
        if w.get(Cf::Sub, &mk)?.is_none() {
            w.put(Cf::Sub, &mk, &[]);
            added += 1;
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
    let skip = prefix.len() + 8;
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

/// Up to `n` distinct records from hash position `start` on, wrapping around: (sub key,
/// member) pairs.
fn run<R: Read + ?Sized>(
    r: &R,
    prefix: &[u8],
    start: u64,
    n: u64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let skip = prefix.len() + 8;
    let mid = join(prefix, &[&start.to_be_bytes()]);
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    let mut take = |k: &[u8]| {
        out.push((k.to_vec(), k[skip..].to_vec()));
        (out.len() as u64) < n
    };
    if n > 0 {
        r.scan(Cf::Sub, &mid, &prefix_end(prefix), false, &mut |k, _| {
            take(k)
        })?;
    }
    if (out.len() as u64) < n {
        let mut take = |k: &[u8]| {
            out.push((k.to_vec(), k[skip..].to_vec()));
            (out.len() as u64) < n
        };
        r.scan(Cf::Sub, prefix, &mid, false, &mut |k, _| take(k))?;
    }
    Ok(out)
}

/// SPOP: removes up to `count` random members, chosen from `seed` (carried by the Raft
/// entry, so every replica pops the same ones); `None` when there is no set.
pub fn spop<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    count: u64,
    seed: u64,
) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(mut m) = load(w, key)? else {
        return Ok(None);
    };
    let prefix = m.prefix(key);
    let picked = run(w, &prefix, Rng::new(seed).next_u64(), count.min(m.size))?;
    for (k, _) in &picked {
        w.delete(Cf::Sub, k);
    }
    m.size -= (picked.len() as u64).min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(Some(picked.into_iter().map(|(_, v)| v).collect()))
}

/// Most members SRANDMEMBER with a negative count returns (Redis has no limit but its
/// output buffers; here a reply is built in memory, so it is bounded).
pub const MAX_RANDOM_REPEATS: u64 = 1 << 20;

/// SRANDMEMBER with a count: `count > 0` gives up to `count` distinct members, `count < 0`
/// gives `-count` members that may repeat (one seek each; `OutOfRange` beyond
/// [`MAX_RANDOM_REPEATS`]).
pub fn srandmember<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    count: i64,
    rng: &mut Rng,
) -> Result<Vec<Vec<u8>>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let prefix = m.prefix(key);
    if count >= 0 {
        let picked = run(r, &prefix, rng.next_u64(), (count as u64).min(m.size))?;
        return Ok(picked.into_iter().map(|(_, v)| v).collect());
    }
    if count.unsigned_abs() > MAX_RANDOM_REPEATS {
        return Err(Error::OutOfRange);
    }
    let mut out = Vec::with_capacity(count.unsigned_abs().min(1 << 16) as usize);
    for _ in 0..count.unsigned_abs() {
        out.extend(
            run(r, &prefix, rng.next_u64(), 1)?
                .into_iter()
                .map(|(_, v)| v),
        );
    }
    Ok(out)
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
        let member = &sub[8.min(sub.len())..];
        if pattern.is_none_or(|p| crate::glob_match(p, member, false)) {
            items.push(member.to_vec());
        }
    })?;
    Ok(ScanPage { items, next })
}
