//! Execution of the sorted-set family (`resp::ZSetOp`) on [`crate::types::zset`],
//! [`crate::types::zrange`] and [`crate::types::zsetops`]. Score and lex bounds are parsed
//! here (Redis's errors). Scores reply as doubles (`Reply::Double`), everywhere.

use bytes::Bytes;
use resp::{Reply, ZAggregate, ZAlgebra, ZBy, ZSetCmd, ZSetOp};

use crate::cmd_common::scored;
use crate::cmd_common::{bulk, int, int_arg, local_rng, opt_bulk, page, scan_after, scan_reply};
use crate::types::zrange::{self as zr, parse_lex_bound, parse_score_bound, RangeBy};
use crate::types::zset::{self as z, ZAddFlags, ZAddReply};
use crate::types::zsetops::{self as zo, Aggregate};
use crate::types::{Read, Result, Write};

/// Members with their scores, in order.
type Scored = Vec<(Vec<u8>, f64)>;

/// The selection of a range or removal: `lo` / `hi` in (min, max) order.
fn range_by(by: ZBy, lo: &[u8], hi: &[u8]) -> Result<RangeBy> {
    Ok(match by {
        ZBy::Rank => RangeBy::Rank(int_arg(lo)?, int_arg(hi)?),
        ZBy::Score => RangeBy::Score(parse_score_bound(lo)?, parse_score_bound(hi)?),
        ZBy::Lex => RangeBy::Lex(parse_lex_bound(lo)?, parse_lex_bound(hi)?),
    })
}

fn aggregate(a: ZAggregate) -> Aggregate {
    match a {
        ZAggregate::Sum => Aggregate::Sum,
        ZAggregate::Min => Aggregate::Min,
        ZAggregate::Max => Aggregate::Max,
    }
}

fn algebra(
    r: &dyn Read,
    kind: ZAlgebra,
    keys: &[Bytes],
    weights: &Option<Vec<f64>>,
    agg: ZAggregate,
) -> Result<Scored> {
    let w = weights.as_deref();
    match kind {
        ZAlgebra::Union => zo::zunion(r, keys, w, aggregate(agg)),
        ZAlgebra::Inter => zo::zinter(r, keys, w, aggregate(agg), 0),
        ZAlgebra::Diff => zo::zdiff(r, keys),
    }
}

/// The members of a ZRANGE form (`args` gives the source key).
fn range(r: &dyn Read, c: &ZSetCmd) -> Result<Option<Scored>> {
    let ZSetOp::Range {
        by,
        start,
        stop,
        rev,
        limit,
        store,
        ..
    } = &c.op
    else {
        return Ok(None);
    };
    let src = if store.is_some() {
        c.args.get(1).map_or(&b""[..], |k| &k[..])
    } else {
        c.key()
    };
    // By score or lex, REV takes `max min`.
    let (lo, hi) = if *rev && *by != ZBy::Rank {
        (stop, start)
    } else {
        (start, stop)
    };
    let sel = range_by(*by, lo, hi)?;
    Ok(Some(zr::zrange(r, src, &sel, *rev, *limit)?))
}

/// ZRANK / ZREVRANK [WITHSCORE].
fn rank(r: &dyn Read, key: &[u8], member: &[u8], rev: bool, with_score: bool) -> Result<Reply> {
    Ok(match (zr::zrank(r, key, member, rev)?, with_score) {
        (None, false) => Reply::Nil,
        (None, true) => Reply::NilArray,
        (Some(n), false) => int(n),
        (Some(n), true) => {
            let s = z::zscore(r, key, member)?.unwrap_or_default();
            Reply::Array(vec![int(n), Reply::Double(s)])
        }
    })
}

/// A read command of the family.
pub(crate) fn read(r: &dyn Read, c: &ZSetCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        ZSetOp::Card => int(z::zcard(r, key)?),
        ZSetOp::Score(m) => z::zscore(r, key, m)?.map_or(Reply::Nil, Reply::Double),
        ZSetOp::MScore(ms) => Reply::Array(
            z::zmscore(r, key, ms)?
                .into_iter()
                .map(|s| s.map_or(Reply::Nil, Reply::Double))
                .collect(),
        ),
        ZSetOp::Count {
            lex: false,
            min,
            max,
        } => {
            let (lo, hi) = (parse_score_bound(min)?, parse_score_bound(max)?);
            int(zr::zcount(r, key, lo, hi)?)
        }
        ZSetOp::Count {
            lex: true,
            min,
            max,
        } => {
            let (lo, hi) = (parse_lex_bound(min)?, parse_lex_bound(max)?);
            int(zr::zlexcount(r, key, &lo, &hi)?)
        }
        ZSetOp::Rank {
            member,
            rev,
            with_score,
        } => rank(r, key, member, *rev, *with_score)?,
        ZSetOp::Range {
            with_scores,
            store: None,
            ..
        } => scored(range(r, c)?.unwrap_or_default(), *with_scores),
        ZSetOp::RandMember { count, with_scores } => {
            let mut rng = local_rng();
            let got = z::zrandmember(r, key, count.unwrap_or(1), &mut rng)?;
            match count {
                None => opt_bulk(got.into_iter().next().map(|(m, _)| m)),
                Some(_) => scored(got, *with_scores),
            }
        }
        ZSetOp::Algebra {
            kind,
            keys,
            weights,
            aggregate,
            with_scores,
            store: None,
        } => scored(algebra(r, *kind, keys, weights, *aggregate)?, *with_scores),
        ZSetOp::InterCard { keys, limit } => {
            int(zo::zinter(r, keys, None, Aggregate::Sum, *limit)?.len() as u64)
        }
        ZSetOp::Scan(a) => {
            let after = scan_after(a.cursor);
            let p = z::zscan(
                r,
                key,
                after.as_deref(),
                page(a.count),
                a.pattern.as_deref(),
            )?;
            let items = p.items.into_iter().flat_map(|(m, s)| {
                let text = resp::encode::format_reply_double(s);
                [bulk(m), bulk(text.into_bytes())]
            });
            scan_reply(p.next, items.collect())
        }
        _ => Reply::err(format!("ERR '{}' is not a read", c.spec.name)),
    })
}

/// A write command of the family.
pub(crate) fn write(w: &mut dyn Write, c: &ZSetCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        ZSetOp::Add { opts, pairs } => {
            let flags = ZAddFlags {
                nx: opts.nx,
                xx: opts.xx,
                gt: opts.gt,
                lt: opts.lt,
                ch: opts.ch,
                incr: opts.incr,
            };
            match z::zadd(w, key, flags, pairs)? {
                ZAddReply::Count(n) => int(n),
                ZAddReply::Score(s) => s.map_or(Reply::Nil, Reply::Double),
            }
        }
        ZSetOp::IncrBy(d, m) => Reply::Double(z::zincrby(w, key, *d, m)?),
        ZSetOp::Rem(ms) => int(z::zrem(w, key, ms)?),
        ZSetOp::RemRange { by, min, max } => int(zr::zremrange(w, key, &range_by(*by, min, max)?)?),
        ZSetOp::Range {
            store: Some(dst), ..
        } => {
            let got = range(w, c)?.unwrap_or_default();
            int(zo::store(w, dst, &got)?)
        }
        ZSetOp::Algebra {
            kind,
            keys,
            weights,
            aggregate,
            store: Some(dst),
            ..
        } => {
            let got = algebra(w, *kind, keys, weights, *aggregate)?;
            int(zo::store(w, dst, &got)?)
        }
        ZSetOp::Pop { max, count } => {
            let got = z::zpop(w, key, *max, count.unwrap_or(1))?;
            match count {
                None => Reply::Array(
                    got.into_iter()
                        .flat_map(|(m, s)| [bulk(m), Reply::Double(s)])
                        .collect(),
                ),
                Some(_) => scored(got, true),
            }
        }
        ZSetOp::MPop {
            keys,
            max,
            count,
            bzpop,
            ..
        } => mpop(w, keys, *max, *count, *bzpop)?,
        _ => read(w, c)?,
    })
}

/// ZMPOP / BZMPOP / BZPOPMIN / BZPOPMAX: pops from the first non-empty sorted set.
fn mpop(w: &mut dyn Write, keys: &[Bytes], max: bool, count: u64, bzpop: bool) -> Result<Reply> {
    for k in keys {
        if z::zcard(w, k)? == 0 {
            continue;
        }
        let got = z::zpop(w, k, max, count)?;
        let key = Reply::Bulk(k.clone());
        return Ok(if bzpop {
            let mut out = vec![key];
            if let Some((m, s)) = got.into_iter().next() {
                out.extend([bulk(m), Reply::Double(s)]);
            }
            Reply::Array(out)
        } else {
            let items = got
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![bulk(m), Reply::Double(s)]))
                .collect();
            Reply::Array(vec![key, Reply::Array(items)])
        });
    }
    // Also the blocking forms' reply when there is nothing to pop (they wait above the store).
    Ok(Reply::NilArray)
}
