//! Set algebra and moves between sets: SMOVE, SINTER, SINTERCARD, SUNION, SDIFF and their
//! STORE forms. These read whole sets, as Redis's own do (O(N·M) for SINTER, O(N) for the
//! others): intersections walk the smallest set and look members up in the others.

use std::collections::BTreeSet;

use super::set::{sadd, scard, sismember, smembers, srem};
use super::{meta, Read, Result, Write};
use crate::TYPE_SET;

/// Looks every key up first, so any non-set gives WRONGTYPE (as Redis); the sizes.
fn sizes<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K]) -> Result<Vec<u64>> {
    keys.iter()
        .map(|k| Ok(meta::load(r, k.as_ref(), TYPE_SET)?.map_or(0, |m| m.size)))
        .collect()
}

/// SMOVE: moves `member` from `src` to `dst`; true when it was in `src`.
pub fn smove<W: Write + ?Sized>(w: &mut W, src: &[u8], dst: &[u8], member: &[u8]) -> Result<bool> {
    sizes(w, &[src, dst])?;
    if src == dst {
        return sismember(w, src, member);
    }
    if srem(w, src, &[member])? == 0 {
        return Ok(false);
    }
    sadd(w, dst, &[member])?;
    Ok(true)
}

/// The members of the intersection, walking the smallest set; stops after `limit` (0: all).
fn inter<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K], limit: u64) -> Result<Vec<Vec<u8>>> {
    let sizes = sizes(r, keys)?;
    let Some((smallest, _)) = sizes.iter().enumerate().min_by_key(|(_, n)| **n) else {
        return Ok(Vec::new());
    };
    if sizes[smallest] == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for member in smembers(r, keys[smallest].as_ref())? {
        let mut everywhere = true;
        for (i, k) in keys.iter().enumerate() {
            if i != smallest && !sismember(r, k.as_ref(), &member)? {
                everywhere = false;
                break;
            }
        }
        if everywhere {
            out.push(member);
            if limit != 0 && out.len() as u64 >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// SINTER.
pub fn sinter<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K]) -> Result<Vec<Vec<u8>>> {
    inter(r, keys, 0)
}

/// SINTERCARD: the intersection's size, counting stops at `limit` (0: no limit).
pub fn sintercard<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K], limit: u64) -> Result<u64> {
    Ok(inter(r, keys, limit)?.len() as u64)
}

/// SUNION, in member order.
pub fn sunion<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K]) -> Result<Vec<Vec<u8>>> {
    sizes(r, keys)?;
    let mut all = BTreeSet::new();
    for k in keys {
        all.extend(smembers(r, k.as_ref())?);
    }
    Ok(all.into_iter().collect())
}

/// SDIFF: the first set's members that no other set has.
pub fn sdiff<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K]) -> Result<Vec<Vec<u8>>> {
    sizes(r, keys)?;
    let Some((first, others)) = keys.split_first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    'members: for member in smembers(r, first.as_ref())? {
        for k in others {
            if sismember(r, k.as_ref(), &member)? {
                continue 'members;
            }
        }
        out.push(member);
    }
    Ok(out)
}

/// The STORE forms: replaces `dst` (any type) with `members`; an empty result deletes it.
/// Returns the new cardinality.
pub fn store<W: Write + ?Sized>(w: &mut W, dst: &[u8], members: &[Vec<u8>]) -> Result<u64> {
    w.del_data(dst)?;
    if !members.is_empty() {
        sadd(w, dst, members)?;
    }
    scard(w, dst)
}
