//! Sorted-set algebra: ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms (ZRANGESTORE
//! too). Sources may be sorted sets or sets (members of a set score 1), as in Redis; they are
//! read whole, as Redis's own are. Results come ordered by (score, member).

use std::collections::BTreeMap;

use super::keyspace::collection;
use super::zrange::{zrange, RangeBy};
use super::zset::{zadd, zcard, zscore, ZAddFlags};
use super::{set, Error, Read, Result, Write};
use crate::{TYPE_SET, TYPE_ZSET};

/// How scores of one member in several sources combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    #[default]
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn combine(self, a: f64, b: f64) -> f64 {
        match self {
            // inf + -inf: Redis takes 0.
            Aggregate::Sum => Some(a + b).filter(|s| !s.is_nan()).unwrap_or(0.0),
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

/// A source's type: a sorted set, a set, or nothing (missing or expired).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Zset,
    Set,
    Empty,
}

fn kind<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<(Kind, u64)> {
    match collection(r, key)? {
        Some(m) if m.typ == TYPE_ZSET => Ok((Kind::Zset, m.size)),
        Some(m) if m.typ == TYPE_SET => Ok((Kind::Set, m.size)),
        Some(_) => Err(Error::WrongType),
        // A string is not a collection: tell it from a missing key.
        None if super::keyspace::type_of(r, key)? == "none" => Ok((Kind::Empty, 0)),
        None => Err(Error::WrongType),
    }
}

fn members<R: Read + ?Sized>(r: &R, key: &[u8], k: Kind) -> Result<Vec<(Vec<u8>, f64)>> {
    match k {
        Kind::Zset => zrange(r, key, &RangeBy::Rank(0, -1), false, None),
        Kind::Set => Ok(set::smembers(r, key)?
            .into_iter()
            .map(|m| (m, 1.0))
            .collect()),
        Kind::Empty => Ok(Vec::new()),
    }
}

fn score_in<R: Read + ?Sized>(r: &R, key: &[u8], k: Kind, member: &[u8]) -> Result<Option<f64>> {
    match k {
        Kind::Zset => zscore(r, key, member),
        Kind::Set => Ok(set::sismember(r, key, member)?.then_some(1.0)),
        Kind::Empty => Ok(None),
    }
}

/// `score × weight`, NaN (0 × inf) taken as 0 as Redis does.
fn weighted(score: f64, weight: f64) -> f64 {
    Some(score * weight).filter(|s| !s.is_nan()).unwrap_or(0.0)
}

fn ordered(map: BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut out: Vec<(Vec<u8>, f64)> = map.into_iter().collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn weight(weights: Option<&[f64]>, i: usize) -> f64 {
    weights.and_then(|w| w.get(i).copied()).unwrap_or(1.0)
}

/// ZUNION: every member of any source, scores weighted then aggregated.
pub fn zunion<R, K>(
    r: &R,
    keys: &[K],
    weights: Option<&[f64]>,
    agg: Aggregate,
) -> Result<Vec<(Vec<u8>, f64)>>
where
    R: Read + ?Sized,
    K: AsRef<[u8]>,
{
    let kinds = keys
        .iter()
        .map(|k| kind(r, k.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let mut acc: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    for (i, (key, (k, _))) in keys.iter().zip(&kinds).enumerate() {
        for (m, s) in members(r, key.as_ref(), *k)? {
            let s = weighted(s, weight(weights, i));
            let v = acc.get(&m).map_or(s, |old| agg.combine(*old, s));
            acc.insert(m, v);
        }
    }
    Ok(ordered(acc))
}

/// ZINTER: members of every source (walking the smallest), weighted and aggregated; stops
/// after `limit` members (0: all), for ZINTERCARD.
pub fn zinter<R, K>(
    r: &R,
    keys: &[K],
    weights: Option<&[f64]>,
    agg: Aggregate,
    limit: u64,
) -> Result<Vec<(Vec<u8>, f64)>>
where
    R: Read + ?Sized,
    K: AsRef<[u8]>,
{
    let kinds = keys
        .iter()
        .map(|k| kind(r, k.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let Some((small, _)) = kinds.iter().enumerate().min_by_key(|(_, (_, n))| *n) else {
        return Ok(Vec::new());
    };
    let mut acc = BTreeMap::new();
    'members: for (m, s) in members(r, keys[small].as_ref(), kinds[small].0)? {
        let mut total = None;
        for (i, (key, (k, _))) in keys.iter().zip(&kinds).enumerate() {
            let s = if i == small {
                Some(s)
            } else {
                score_in(r, key.as_ref(), *k, &m)?
            };
            let Some(s) = s else { continue 'members };
            let s = weighted(s, weight(weights, i));
            total = Some(total.map_or(s, |t| agg.combine(t, s)));
        }
        acc.insert(m, total.unwrap_or(0.0));
        if limit != 0 && acc.len() as u64 >= limit {
            break;
        }
    }
    Ok(ordered(acc))
}

/// ZDIFF: the first source's members that no other source has, with their scores.
pub fn zdiff<R: Read + ?Sized, K: AsRef<[u8]>>(r: &R, keys: &[K]) -> Result<Vec<(Vec<u8>, f64)>> {
    let kinds = keys
        .iter()
        .map(|k| Ok(kind(r, k.as_ref())?.0))
        .collect::<Result<Vec<_>>>()?;
    let Some((first, others)) = keys.split_first() else {
        return Ok(Vec::new());
    };
    let mut acc = BTreeMap::new();
    'members: for (m, s) in members(r, first.as_ref(), kinds[0])? {
        for (key, k) in others.iter().zip(&kinds[1..]) {
            if score_in(r, key.as_ref(), *k, &m)?.is_some() {
                continue 'members;
            }
        }
        acc.insert(m, s);
    }
    Ok(ordered(acc))
}

/// The STORE forms: replaces `dst` (any type) with `pairs`; an empty result deletes it.
/// Returns the new cardinality.
pub fn store<W: Write + ?Sized>(w: &mut W, dst: &[u8], pairs: &[(Vec<u8>, f64)]) -> Result<u64> {
    w.del_data(dst)?;
    if !pairs.is_empty() {
        let pairs: Vec<(f64, &[u8])> = pairs.iter().map(|(m, s)| (*s, m.as_slice())).collect();
        zadd(w, dst, ZAddFlags::default(), &pairs)?;
    }
    zcard(w, dst)
}
