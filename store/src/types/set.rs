//! Sets: one `sub` record per member, sub key = `[hash u64 BE][member]`, empty value; SPOP
//! and SRANDMEMBER pick at random in O(count) records ([`super::random`]). SPOP's seed comes
//! from the Raft entry.

use super::hash::{scan_page, ScanPage};
use super::meta::{self, prefix_end, Meta};
use super::random::{hashed_key, pick, run, HASH_LEN};
use super::{Cf, Read, Result, Rng, Write};
use crate::TYPE_SET;

fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_SET)
}

fn member_key(m: &Meta, prefix: &[u8], member: &[u8]) -> Vec<u8> {
    hashed_key(prefix, m.version, member)
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
    for (k, _, _) in &picked {
        w.delete(Cf::Sub, k);
    }
    m.size -= (picked.len() as u64).min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(Some(picked.into_iter().map(|(_, name, _)| name).collect()))
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
