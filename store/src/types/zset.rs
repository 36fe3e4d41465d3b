//! Sorted sets: per member one `sub` record (sub key = `[hash u64 BE][member]`, value =
//! score f64 bits BE; ZRANDMEMBER picks from them in O(count), see [`super::random`]) and
//! one `zscore` index record (`[score, order-preserving u64 BE][member]` → score bits), so
//! members are ordered by (score, member) as in Redis. ZADD, ZREM, ZSCORE, ZINCRBY touch
//! O(1) records per member; ranges by score or lex seek straight to their start and touch
//! what they return (plus a LIMIT offset, as Redis); ranges by rank and ZRANK walk from the
//! nearer end, O(min(rank, n - rank)): there is no order-statistics index (yet).
//!
//! Every scan of the score index is clamped to the metadata's live-range hints
//! ([`Meta::lo`], [`Meta::hi`], see [`live_span`]): ZPOPMIN / ZPOPMAX and range removals
//! move them past what they delete, so the next pop seeks past the deleted records'
//! tombstones instead of stepping over every one of them (they stay until compaction).

use super::hash::{scan_page, ScanPage};
use super::meta::{self, join, prefix_end, Meta, HINT_LEN};
use super::random::{hashed_key, pick, HASH_LEN};
pub use super::zrange::*;
use super::{Cf, Error, Read, Result, Rng, Write};
use crate::TYPE_ZSET;

pub(crate) fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    meta::load(r, key, TYPE_ZSET)
}

/// Maps a score to a u64 whose big-endian bytes sort as the scores do (-0 as 0; never NaN).
pub fn score_order(score: f64) -> u64 {
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The member's `sub` record key.
pub(crate) fn member_key(m: &Meta, prefix: &[u8], member: &[u8]) -> Vec<u8> {
    hashed_key(prefix, m.version, member)
}

pub(crate) fn index_key(prefix: &[u8], score: f64, member: &[u8]) -> Vec<u8> {
    join(prefix, &[&score_order(score).to_be_bytes(), member])
}

/// The smallest lower hint for "no live index suffix below `s`" (truncated: smaller is
/// still true).
pub(crate) fn lower_hint(s: &[u8]) -> Vec<u8> {
    s[..s.len().min(HINT_LEN)].to_vec()
}

/// An upper hint for "every live index suffix is below `s`": `s` itself, or for a long `s`
/// the end of its truncated prefix (greater than `s`); empty (no hint) if there is none.
pub(crate) fn upper_hint(s: &[u8]) -> Vec<u8> {
    if s.len() <= HINT_LEN {
        return s.to_vec();
    }
    let end = prefix_end(&s[..HINT_LEN]);
    if end.len() <= HINT_LEN && end.as_slice() > s {
        end
    } else {
        Vec::new()
    }
}

/// Raises `m.lo` to `lo` (a valid lower hint) if that is higher.
pub(crate) fn raise_lo(m: &mut Meta, lo: Vec<u8>) {
    if lo > m.lo {
        m.lo = lo;
    }
}

/// Lowers `m.hi` to `hi` (a valid upper hint; empty = none) if that is lower.
pub(crate) fn lower_hi(m: &mut Meta, hi: Vec<u8>) {
    if !hi.is_empty() && (m.hi.is_empty() || hi < m.hi) {
        m.hi = hi;
    }
}

/// Keeps the hints true when the index record with suffix `s` becomes live.
fn widen(m: &mut Meta, s: &[u8]) {
    if !m.lo.is_empty() && s < m.lo.as_slice() {
        m.lo = lower_hint(s);
    }
    if !m.hi.is_empty() && s >= m.hi.as_slice() {
        m.hi = upper_hint(&join(s, &[&[0]]));
    }
}

/// The key range of `m`'s score index that can hold live records (`prefix` = `m.prefix`).
pub(crate) fn live_span(m: &Meta, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let lower = join(prefix, &[&m.lo]);
    let upper = if m.hi.is_empty() {
        prefix_end(prefix)
    } else {
        join(prefix, &[&m.hi])
    };
    (lower, upper)
}

/// `[lower, upper)` within [`live_span`].
pub(crate) fn clamp(m: &Meta, prefix: &[u8], lower: &[u8], upper: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (lo, hi) = live_span(m, prefix);
    (lo.max(lower.to_vec()), hi.min(upper.to_vec()))
}

/// Stages the index record of `member` at `score` (and keeps the hints true).
fn put_index<W: Write + ?Sized>(w: &mut W, m: &mut Meta, prefix: &[u8], score: f64, member: &[u8]) {
    let key = index_key(prefix, score, member);
    widen(m, &key[prefix.len()..]);
    w.put(Cf::Score, &key, &score.to_bits().to_be_bytes());
}

pub(crate) fn decode_score(v: &[u8]) -> Result<f64> {
    let b: [u8; 8] = v
        .try_into()
        .map_err(|_| Error::Storage("corrupt score".into()))?;
    Ok(f64::from_bits(u64::from_be_bytes(b)))
}

/// ZADD's options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub ch: bool,
    pub incr: bool,
}

/// ZADD's reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ZAddReply {
    /// Members added (with CH: added or changed).
    Count(u64),
    /// With INCR: the new score, or `None` when nothing was done (NX, XX, GT, LT).
    Score(Option<f64>),
}

/// What adding one member did.
enum Outcome {
    Added(f64),
    Updated(f64),
    /// Processed without a change of score.
    Same(f64),
    Nop,
}

fn check_flags<M>(flags: &ZAddFlags, pairs: &[(f64, M)]) -> Result<()> {
    if pairs.iter().any(|(s, _)| s.is_nan()) {
        return Err(Error::NotFloat);
    }
    if flags.nx && flags.xx {
        return Err(Error::XxAndNx);
    }
    if (flags.gt && flags.lt) || (flags.nx && (flags.gt || flags.lt)) {
        return Err(Error::GtLtNx);
    }
    if flags.incr && pairs.len() != 1 {
        return Err(Error::IncrPair);
    }
    Ok(())
}

/// Adds or updates one member (Redis's `zsetAdd`).
fn add_one<W: Write + ?Sized>(
    w: &mut W,
    m: &mut Meta,
    prefix: &[u8],
    flags: &ZAddFlags,
    score: f64,
    member: &[u8],
) -> Result<Outcome> {
    let mkey = member_key(m, prefix, member);
    let cur = match w.get(Cf::Sub, &mkey)? {
        Some(v) => Some(decode_score(&v)?),
        None => None,
    };
    let Some(cur) = cur else {
        if flags.xx {
            return Ok(Outcome::Nop);
        }
        w.put(Cf::Sub, &mkey, &score.to_bits().to_be_bytes());
        put_index(w, m, prefix, score, member);
        m.size += 1;
        return Ok(Outcome::Added(score));
    };
    if flags.nx {
        return Ok(Outcome::Nop);
    }
    let new = if flags.incr { cur + score } else { score };
    if new.is_nan() {
        return Err(Error::ScoreNan);
    }
    if (flags.gt && new <= cur) || (flags.lt && new >= cur) {
        return Ok(Outcome::Nop);
    }
    if new == cur {
        return Ok(Outcome::Same(new));
    }
    w.delete(Cf::Score, &index_key(prefix, cur, member));
    w.put(Cf::Sub, &mkey, &new.to_bits().to_be_bytes());
    put_index(w, m, prefix, new, member);
    Ok(Outcome::Updated(new))
}

/// ZADD with its options; `pairs` are (score, member), scores never NaN (the parser refuses).
pub fn zadd<W, M>(w: &mut W, key: &[u8], flags: ZAddFlags, pairs: &[(f64, M)]) -> Result<ZAddReply>
where
    W: Write + ?Sized,
    M: AsRef<[u8]>,
{
    check_flags(&flags, pairs)?;
    let nothing = if flags.incr {
        ZAddReply::Score(None)
    } else {
        ZAddReply::Count(0)
    };
    if flags.xx && load(w, key)?.is_none() {
        return Ok(nothing);
    }
    let (mut m, existed) = meta::load_or_new(w, key, TYPE_ZSET)?;
    let prefix = m.prefix(key);
    let (mut added, mut changed, mut last) = (0, 0, None);
    for (score, member) in pairs {
        match add_one(w, &mut m, &prefix, &flags, *score, member.as_ref())? {
            Outcome::Added(s) => (added, last) = (added + 1, Some(s)),
            Outcome::Updated(s) => (changed, last) = (changed + 1, Some(s)),
            Outcome::Same(s) => last = Some(s),
            Outcome::Nop => {}
        }
    }
    meta::save(w, key, &m, existed)?;
    Ok(match (flags.incr, flags.ch) {
        (true, _) => ZAddReply::Score(last),
        (false, true) => ZAddReply::Count(added + changed),
        (false, false) => ZAddReply::Count(added),
    })
}

/// ZINCRBY: returns the new score.
pub fn zincrby<W: Write + ?Sized>(w: &mut W, key: &[u8], delta: f64, member: &[u8]) -> Result<f64> {
    let flags = ZAddFlags {
        incr: true,
        ..Default::default()
    };
    match zadd(w, key, flags, &[(delta, member)])? {
        ZAddReply::Score(Some(s)) => Ok(s),
        _ => Err(Error::Storage("ZINCRBY did nothing".into())),
    }
}

/// ZREM: returns how many members existed; the key goes with its last member.
pub fn zrem<W, M>(w: &mut W, key: &[u8], members: &[M]) -> Result<u64>
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
        let mkey = member_key(&m, &prefix, member.as_ref());
        if let Some(v) = w.get(Cf::Sub, &mkey)? {
            w.delete(
                Cf::Score,
                &index_key(&prefix, decode_score(&v)?, member.as_ref()),
            );
            w.delete(Cf::Sub, &mkey);
            removed += 1;
        }
    }
    m.size -= removed.min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(removed)
}

/// ZSCORE.
pub fn zscore<R: Read + ?Sized>(r: &R, key: &[u8], member: &[u8]) -> Result<Option<f64>> {
    let Some(m) = load(r, key)? else {
        return Ok(None);
    };
    match r.get(Cf::Sub, &member_key(&m, &m.prefix(key), member))? {
        Some(v) => Ok(Some(decode_score(&v)?)),
        None => Ok(None),
    }
}

/// ZMSCORE: one answer per member, in order.
pub fn zmscore<R, M>(r: &R, key: &[u8], members: &[M]) -> Result<Vec<Option<f64>>>
where
    R: Read + ?Sized,
    M: AsRef<[u8]>,
{
    let Some(m) = load(r, key)? else {
        return Ok(vec![None; members.len()]);
    };
    let prefix = m.prefix(key);
    members
        .iter()
        .map(
            |x| match r.get(Cf::Sub, &member_key(&m, &prefix, x.as_ref()))? {
                Some(v) => Ok(Some(decode_score(&v)?)),
                None => Ok(None),
            },
        )
        .collect()
}

/// ZCARD (from the metadata).
pub fn zcard<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<u64> {
    Ok(load(r, key)?.map_or(0, |m| m.size))
}

/// ZPOPMIN / ZPOPMAX (`max`): removes up to `count` members from that end.
pub fn zpop<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    max: bool,
    count: u64,
) -> Result<Vec<(Vec<u8>, f64)>> {
    let Some(mut m) = load(w, key)? else {
        return Ok(Vec::new());
    };
    let prefix = m.prefix(key);
    let (lower, upper) = live_span(&m, &prefix);
    let out = collect(w, prefix.len(), (&lower, &upper), max, 0, count)?;
    for (member, score) in &out {
        let ikey = index_key(&prefix, *score, member);
        w.delete(Cf::Score, &ikey);
        w.delete(Cf::Sub, &member_key(&m, &prefix, member));
        // The last one popped is the innermost: nothing live is beyond it any more.
        let s = &ikey[prefix.len()..];
        if max {
            lower_hi(&mut m, upper_hint(s));
        } else {
            raise_lo(&mut m, lower_hint(s));
        }
    }
    m.size -= (out.len() as u64).min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(out)
}

/// ZRANDMEMBER with a count: `count > 0` gives up to `count` distinct (member, score) pairs,
/// `count < 0` gives `-count` pairs that may repeat (see [`pick`]).
pub fn zrandmember<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    count: i64,
    rng: &mut Rng,
) -> Result<Vec<(Vec<u8>, f64)>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let picked = pick(r, &m.prefix(key), m.size, count, rng)?;
    picked
        .into_iter()
        .map(|(_, member, v)| Ok((member, decode_score(&v)?)))
        .collect()
}

/// ZSCAN: examines up to `count` members after sub key `after` (the `next` of the previous
/// page); returns those matching `pattern` with their scores.
pub fn zscan<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    after: Option<&[u8]>,
    count: usize,
    pattern: Option<&[u8]>,
) -> Result<ScanPage<(Vec<u8>, f64)>> {
    let Some(m) = load(r, key)? else {
        return Ok(ScanPage::default());
    };
    let pattern = pattern.filter(|p| *p != b"*");
    let (mut items, mut bad) = (Vec::new(), false);
    let next = scan_page(r, &m.prefix(key), after, count, |sub, v| {
        let member = sub.get(HASH_LEN..).unwrap_or_default();
        if pattern.is_none_or(|p| crate::glob_match(p, member, false)) {
            match decode_score(v) {
                Ok(s) => items.push((member.to_vec(), s)),
                Err(_) => bad = true,
            }
        }
    })?;
    if bad {
        return Err(Error::Storage("corrupt score".into()));
    }
    Ok(ScanPage { items, next })
}
