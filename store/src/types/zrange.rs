//! Sorted-set ranges: bounds by score and lex (and their parsing), ZRANGE in all its forms,
//! ZCOUNT, ZLEXCOUNT, ZRANK, ZREMRANGEBY*. Ranges by score or lex seek straight to their
//! first member; ranges by rank and ZRANK walk from the nearer end (no order-statistics
//! index: O(min(rank, n - rank)) records).

use super::list::norm_range;
use super::meta::{self, join, prefix_end, Meta};
use super::num::parse_f64;
use super::zset::{
    clamp, decode_score, index_key, live_span, load, lower_hi, lower_hint, member_key, raise_lo,
    score_order, upper_hint,
};
use super::{Cf, Error, Read, Result, Write};

/// One end of a score range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreBound {
    /// `score` (or `-inf` / `+inf`).
    Inclusive(f64),
    /// `(score`.
    Exclusive(f64),
}

/// Parses a ZRANGEBYSCORE / ZCOUNT bound.
pub fn parse_score_bound(b: &[u8]) -> Result<ScoreBound> {
    let (excl, num) = match b.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, b),
    };
    let f = parse_f64(num).ok_or(Error::MinMaxNotFloat)?;
    Ok(if excl {
        ScoreBound::Exclusive(f)
    } else {
        ScoreBound::Inclusive(f)
    })
}

/// One end of a lex range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[member`.
    Inclusive(Vec<u8>),
    /// `(member`.
    Exclusive(Vec<u8>),
}

/// Parses a ZRANGEBYLEX bound.
pub fn parse_lex_bound(b: &[u8]) -> Result<LexBound> {
    match b {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Inclusive(rest.to_vec())),
        [b'(', rest @ ..] => Ok(LexBound::Exclusive(rest.to_vec())),
        _ => Err(Error::MinMaxNotLex),
    }
}

/// What a range selects. Score and lex bounds are given as (min, max) even for REV (the RESP
/// layer swaps Redis's `max min` argument order).
#[derive(Debug, Clone, PartialEq)]
pub enum RangeBy {
    /// Ranks `start..=stop` (negative: from the end).
    Rank(i64, i64),
    /// Scores between the bounds.
    Score(ScoreBound, ScoreBound),
    /// Members between the bounds (meaningful when all scores are equal, as in Redis).
    Lex(LexBound, LexBound),
}

/// The index key range `[lower, upper)` of a score range, within `m`'s [`live_span`].
fn score_span(m: &Meta, prefix: &[u8], min: ScoreBound, max: ScoreBound) -> (Vec<u8>, Vec<u8>) {
    let at = |o: u64| join(prefix, &[&o.to_be_bytes()]);
    let after = |s: f64| match score_order(s).checked_add(1) {
        Some(o) => at(o),
        None => prefix_end(prefix),
    };
    let lower = match min {
        ScoreBound::Inclusive(s) => at(score_order(s)),
        ScoreBound::Exclusive(s) => after(s),
    };
    let upper = match max {
        ScoreBound::Inclusive(s) => after(s),
        ScoreBound::Exclusive(s) => at(score_order(s)),
    };
    clamp(m, prefix, &lower, &upper)
}

/// The order key of the first (or last) member: its score's 8 bytes.
fn edge_order<R: Read + ?Sized>(
    r: &R,
    m: &Meta,
    prefix: &[u8],
    last: bool,
) -> Result<Option<Vec<u8>>> {
    let n = prefix.len();
    let mut out = None;
    let (lower, upper) = live_span(m, prefix);
    r.scan(Cf::Score, &lower, &upper, last, &mut |k, _| {
        out = k.get(n..n + 8).map(|o| o.to_vec());
        false
    })?;
    Ok(out)
}

/// The index key range of a lex range, within the score of the first member (or the last,
/// for REV): with equal scores, as Redis requires for lex ranges, that is every member.
fn lex_span<R: Read + ?Sized>(
    r: &R,
    m: &Meta,
    prefix: &[u8],
    min: &LexBound,
    max: &LexBound,
    rev: bool,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let Some(order) = edge_order(r, m, prefix, rev)? else {
        return Ok(None);
    };
    let base = join(prefix, &[&order]);
    let lower = match min {
        LexBound::Min => base.clone(),
        LexBound::Max => return Ok(None),
        LexBound::Inclusive(m) => join(&base, &[m]),
        LexBound::Exclusive(m) => join(&base, &[m, &[0]]),
    };
    let upper = match max {
        LexBound::Max => prefix_end(&base),
        LexBound::Min => return Ok(None),
        LexBound::Inclusive(m) => join(&base, &[m, &[0]]),
        LexBound::Exclusive(m) => join(&base, &[m]),
    };
    Ok(Some(clamp(m, prefix, &lower, &upper)))
}

/// Index records of `[lower, upper)` in order (reverse: descending), skipping `skip`, at most
/// `take`: (member, score).
pub(crate) fn collect<R: Read + ?Sized>(
    r: &R,
    prefix_len: usize,
    span: (&[u8], &[u8]),
    reverse: bool,
    skip: u64,
    take: u64,
) -> Result<Vec<(Vec<u8>, f64)>> {
    let mut out = Vec::new();
    let mut seen = 0u64;
    let mut bad = false;
    if take > 0 {
        r.scan(Cf::Score, span.0, span.1, reverse, &mut |k, v| {
            seen += 1;
            if seen <= skip {
                return true;
            }
            match (k.get(prefix_len + 8..), decode_score(v)) {
                (Some(member), Ok(s)) => out.push((member.to_vec(), s)),
                _ => bad = true,
            }
            !bad && (out.len() as u64) < take
        })?;
    }
    if bad {
        return Err(Error::Storage("corrupt score index record".into()));
    }
    Ok(out)
}

/// Visits the members with `min <= score < max` in (score, member) order until `f` returns
/// false (the geo searches' box scans: they touch only the box's members).
pub fn scan_score_range<R: Read + ?Sized>(
    r: &R,
    m: &Meta,
    key: &[u8],
    (min, max): (f64, f64),
    f: &mut dyn FnMut(&[u8], f64) -> bool,
) -> Result<()> {
    let prefix = m.prefix(key);
    let (lower, upper) = score_span(
        m,
        &prefix,
        ScoreBound::Inclusive(min),
        ScoreBound::Exclusive(max),
    );
    let n = prefix.len();
    let mut bad = false;
    r.scan(
        Cf::Score,
        &lower,
        &upper,
        false,
        &mut |k, v| match (k.get(n + 8..), decode_score(v)) {
            (Some(member), Ok(s)) => f(member, s),
            _ => {
                bad = true;
                false
            }
        },
    )?;
    if bad {
        return Err(Error::Storage("corrupt score index record".into()));
    }
    Ok(())
}

/// ZRANGE (and ZRANGEBYSCORE / ZRANGEBYLEX / ZREVRANGE...): (member, score) pairs in range
/// order (descending with `rev`). `limit` is (offset, count) for score and lex ranges: a
/// negative offset selects nothing, a negative count everything after the offset.
pub fn zrange<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    by: &RangeBy,
    rev: bool,
    limit: Option<(i64, i64)>,
) -> Result<Vec<(Vec<u8>, f64)>> {
    let Some(m) = load(r, key)? else {
        return Ok(Vec::new());
    };
    let prefix = m.prefix(key);
    let (skip, take) = match limit {
        None => (0, u64::MAX),
        Some((off, _)) if off < 0 => return Ok(Vec::new()),
        Some((off, cnt)) => (off as u64, if cnt < 0 { u64::MAX } else { cnt as u64 }),
    };
    if let RangeBy::Rank(start, stop) = by {
        return rank_range(r, &m, &prefix, *start, *stop, rev);
    }
    match span_of(r, &m, &prefix, by, rev)? {
        Some(span) => collect(r, prefix.len(), (&span.0, &span.1), rev, skip, take),
        None => Ok(Vec::new()),
    }
}

/// The index key range of a score or lex range (`None`: empty; ranks have none).
fn span_of<R: Read + ?Sized>(
    r: &R,
    m: &Meta,
    prefix: &[u8],
    by: &RangeBy,
    rev: bool,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    match by {
        RangeBy::Rank(..) => Ok(None),
        RangeBy::Score(min, max) => Ok(Some(score_span(m, prefix, *min, *max))),
        RangeBy::Lex(min, max) => lex_span(r, m, prefix, min, max, rev),
    }
}

/// Ranks `start..=stop` (of the REV order when `rev`), walked from the nearer end.
fn rank_range<R: Read + ?Sized>(
    r: &R,
    m: &Meta,
    prefix: &[u8],
    start: i64,
    stop: i64,
    rev: bool,
) -> Result<Vec<(Vec<u8>, f64)>> {
    let Some((a, b)) = norm_range(start, stop, m.size) else {
        return Ok(Vec::new());
    };
    let n = m.size;
    // Ranks in ascending order.
    let (a, b) = if rev { (n - 1 - b, n - 1 - a) } else { (a, b) };
    let all = live_span(m, prefix);
    let span = (all.0.as_slice(), all.1.as_slice());
    let from_start = a <= n - 1 - b;
    let mut out = if from_start {
        collect(r, prefix.len(), span, false, a, b - a + 1)?
    } else {
        collect(r, prefix.len(), span, true, n - 1 - b, b - a + 1)?
    };
    if from_start == rev {
        out.reverse();
    }
    Ok(out)
}

/// ZCOUNT: members with a score in range (touches each of them).
pub fn zcount<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    min: ScoreBound,
    max: ScoreBound,
) -> Result<u64> {
    let Some(m) = load(r, key)? else {
        return Ok(0);
    };
    let (lower, upper) = score_span(&m, &m.prefix(key), min, max);
    let mut n = 0;
    r.scan(Cf::Score, &lower, &upper, false, &mut |_, _| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// Counts index records in `[lower, upper)` up to `limit`.
fn count_upto<R: Read + ?Sized>(
    r: &R,
    lower: &[u8],
    upper: &[u8],
    reverse: bool,
    limit: u64,
) -> Result<u64> {
    let mut n = 0;
    r.scan(Cf::Score, lower, upper, reverse, &mut |_, _| {
        n += 1;
        n < limit
    })?;
    Ok(n)
}

/// ZRANK / ZREVRANK: counts from both ends with growing limits, so the cost is about
/// 4 × min(rank, n - rank) records.
pub fn zrank<R: Read + ?Sized>(r: &R, key: &[u8], member: &[u8], rev: bool) -> Result<Option<u64>> {
    let Some(m) = load(r, key)? else {
        return Ok(None);
    };
    let prefix = m.prefix(key);
    let Some(v) = r.get(Cf::Sub, &member_key(&m, &prefix, member))? else {
        return Ok(None);
    };
    let at = index_key(&prefix, decode_score(&v)?, member);
    let after = join(&at, &[&[0]]);
    let (start, end) = live_span(&m, &prefix);
    let mut limit = 8u64;
    let rank = loop {
        let before = count_upto(r, &start, &at, false, limit)?;
        if before < limit {
            break before;
        }
        let behind = count_upto(r, &after, &end, true, limit)?;
        if behind < limit {
            break m.size.saturating_sub(1 + behind);
        }
        limit = limit.saturating_mul(4);
    };
    Ok(Some(if rev {
        m.size - 1 - rank.min(m.size - 1)
    } else {
        rank
    }))
}

/// ZLEXCOUNT: members between the lex bounds (touches each of them).
pub fn zlexcount<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    min: &LexBound,
    max: &LexBound,
) -> Result<u64> {
    let Some(m) = load(r, key)? else {
        return Ok(0);
    };
    match lex_span(r, &m, &m.prefix(key), min, max, false)? {
        None => Ok(0),
        Some((lower, upper)) => count_upto(r, &lower, &upper, false, u64::MAX),
    }
}

/// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX: removes what `by` selects (cost:
/// the members removed, plus the walk to a rank); returns how many went.
pub fn zremrange<W: Write + ?Sized>(w: &mut W, key: &[u8], by: &RangeBy) -> Result<u64> {
    let Some(mut m) = load(w, key)? else {
        return Ok(0);
    };
    let prefix = m.prefix(key);
    let span = span_of(w, &m, &prefix, by, false)?;
    let gone = zrange(w, key, by, false, None)?;
    for (member, score) in &gone {
        w.delete(Cf::Score, &index_key(&prefix, *score, member));
        w.delete(Cf::Sub, &member_key(&m, &prefix, member));
    }
    narrow(&mut m, &prefix, by, span, &gone);
    m.size -= (gone.len() as u64).min(m.size);
    meta::save(w, key, &m, true)?;
    Ok(gone.len() as u64)
}

/// After a range removal (`gone`, ascending; `m.size` not yet reduced): when the range
/// reached an end of the set, moves that end's hint past the removed records.
fn narrow(
    m: &mut Meta,
    prefix: &[u8],
    by: &RangeBy,
    span: Option<(Vec<u8>, Vec<u8>)>,
    gone: &[(Vec<u8>, f64)],
) {
    let (Some(first), Some(last)) = (gone.first(), gone.last()) else {
        return;
    };
    let (to_start, to_end) = match (by, span) {
        (RangeBy::Rank(a, b), _) => match norm_range(*a, *b, m.size) {
            Some((a, b)) => (a == 0, b + 1 == m.size),
            None => return,
        },
        (_, Some((lower, upper))) => {
            // Nothing can be live before the lowest score or after the highest.
            let (start, end) = live_span(m, prefix);
            let floor = join(prefix, &[&score_order(f64::NEG_INFINITY).to_be_bytes()]);
            let ceil = join(prefix, &[&(score_order(f64::INFINITY) + 1).to_be_bytes()]);
            (lower <= start.max(floor), upper >= end.min(ceil))
        }
        _ => return,
    };
    let suffix = |(member, score): &(Vec<u8>, f64)| index_key(&[], *score, member);
    if to_start {
        raise_lo(m, lower_hint(&suffix(last)));
    }
    if to_end {
        lower_hi(m, upper_hint(&suffix(first)));
    }
}
