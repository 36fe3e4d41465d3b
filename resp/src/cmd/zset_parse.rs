//! The sorted-set family's parser (entries and types in `zset.rs`): ZADD's flags, the
//! ZRANGE forms' options, the algebra's WEIGHTS / AGGREGATE, with Redis's error texts.

use bytes::Bytes;

use super::coll::{count, numkeys, scan_args, timeout, Typed};
use super::set::limit;
use super::spec::CommandSpec;
use super::util::{int, parse_float, syntax, upper};
use super::zset::{ZAddOpts, ZAggregate, ZAlgebra, ZBy, ZSetOp};
use crate::{Command, Reply};

fn not_float() -> Reply {
    Reply::err("ERR value is not a valid float")
}

/// The family's parser (one for every entry, by name).
pub fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let name = spec.name;
    let a = &argv[2..];
    let op = match name {
        "ZADD" => zadd(a)?,
        "ZINCRBY" => ZSetOp::IncrBy(parse_float(&a[0]).ok_or_else(not_float)?, a[1].clone()),
        "ZREM" => ZSetOp::Rem(a.to_vec()),
        "ZCARD" => ZSetOp::Card,
        "ZSCORE" => ZSetOp::Score(a[0].clone()),
        "ZMSCORE" => ZSetOp::MScore(a.to_vec()),
        "ZCOUNT" | "ZLEXCOUNT" => ZSetOp::Count {
            lex: name == "ZLEXCOUNT",
            min: a[0].clone(),
            max: a[1].clone(),
        },
        "ZRANK" | "ZREVRANK" => ZSetOp::Rank {
            member: a[0].clone(),
            rev: name == "ZREVRANK",
            with_score: match &a[1..] {
                [] => false,
                [w] if upper(w) == "WITHSCORE" => true,
                _ => return Err(syntax()),
            },
        },
        "ZREMRANGEBYRANK" | "ZREMRANGEBYSCORE" | "ZREMRANGEBYLEX" => ZSetOp::RemRange {
            by: match name {
                "ZREMRANGEBYRANK" => ZBy::Rank,
                "ZREMRANGEBYSCORE" => ZBy::Score,
                _ => ZBy::Lex,
            },
            min: a[0].clone(),
            max: a[1].clone(),
        },
        "ZPOPMIN" | "ZPOPMAX" | "ZMPOP" | "BZMPOP" | "BZPOPMIN" | "BZPOPMAX" => pops(name, argv)?,
        "ZRANDMEMBER" => ZSetOp::RandMember {
            count: a.first().map(|c| int(c)).transpose()?,
            with_scores: match a {
                [] | [_] => false,
                [_, w] if upper(w) == "WITHSCORES" => true,
                _ => return Err(syntax()),
            },
        },
        "ZUNION" | "ZINTER" | "ZDIFF" => algebra(name, &argv[1..], None)?,
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            algebra(name, &argv[2..], Some(argv[1].clone()))?
        }
        "ZINTERCARD" => {
            let (keys, rest) = numkeys(&argv[1..])?;
            ZSetOp::InterCard {
                keys,
                limit: limit(rest)?,
            }
        }
        "ZSCAN" => ZSetOp::Scan(scan_args(a)?),
        _ => range(name, &argv[1..])?,
    };
    Ok(Command::ZSet(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// ZPOPMIN / ZPOPMAX, ZMPOP / BZMPOP and BZPOPMIN / BZPOPMAX.
fn pops(name: &str, argv: &[Bytes]) -> Result<ZSetOp, Reply> {
    let a = &argv[2..];
    Ok(match name {
        "ZPOPMIN" | "ZPOPMAX" => {
            if a.len() > 1 {
                return Err(syntax());
            }
            ZSetOp::Pop {
                max: name == "ZPOPMAX",
                count: a.first().map(|c| count(c)).transpose()?,
            }
        }
        "ZMPOP" => mpop(&argv[1..], None)?,
        "BZMPOP" => mpop(&argv[2..], Some(timeout(&argv[1])?))?,
        _ => {
            let (keys, t) = argv[1..].split_at(argv.len() - 2);
            ZSetOp::MPop {
                keys: keys.to_vec(),
                max: name == "BZPOPMAX",
                count: 1,
                timeout: Some(timeout(&t[0])?),
                bzpop: true,
            }
        }
    })
}

fn zadd(a: &[Bytes]) -> Result<ZSetOp, Reply> {
    let mut o = ZAddOpts::default();
    let mut i = 0;
    while let Some(w) = a.get(i) {
        match upper(w).as_str() {
            "NX" => o.nx = true,
            "XX" => o.xx = true,
            "GT" => o.gt = true,
            "LT" => o.lt = true,
            "CH" => o.ch = true,
            "INCR" => o.incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(syntax());
    }
    if o.nx && o.xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if ((o.gt || o.lt) && o.nx) || (o.gt && o.lt) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if o.incr && rest.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for c in rest.chunks_exact(2) {
        pairs.push((parse_float(&c[0]).ok_or_else(not_float)?, c[1].clone()));
    }
    Ok(ZSetOp::Add { opts: o, pairs })
}

/// `numkeys key... MIN|MAX [COUNT count]`.
fn mpop(a: &[Bytes], timeout: Option<f64>) -> Result<ZSetOp, Reply> {
    let (keys, rest) = numkeys(a)?;
    let (dir, rest) = rest.split_first().ok_or_else(syntax)?;
    let max = match upper(dir).as_str() {
        "MIN" => false,
        "MAX" => true,
        _ => return Err(syntax()),
    };
    let count = match rest {
        [] => 1,
        [c, n] if upper(c) == "COUNT" => u64::try_from(int(n)?)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?,
        _ => return Err(syntax()),
    };
    Ok(ZSetOp::MPop {
        keys,
        max,
        count,
        timeout,
        bzpop: false,
    })
}

/// `numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]` (no WEIGHTS or
/// AGGREGATE for ZDIFF, no WITHSCORES for the STORE forms).
fn algebra(name: &str, a: &[Bytes], store: Option<Bytes>) -> Result<ZSetOp, Reply> {
    let n = int(&a[0])?;
    if n < 1 {
        return Err(Reply::err(format!(
            "ERR at least 1 input key is needed for '{}' command",
            name.to_ascii_lowercase()
        )));
    }
    let n = n as usize;
    if n > a.len() - 1 {
        return Err(syntax());
    }
    let keys = a[1..=n].to_vec();
    let kind = match &name[..5] {
        "ZUNIO" => ZAlgebra::Union,
        "ZINTE" => ZAlgebra::Inter,
        _ => ZAlgebra::Diff,
    };
    let (mut weights, mut aggregate, mut with_scores) = (None, ZAggregate::Sum, false);
    let mut rest = &a[n + 1..];
    while let Some((w, tail)) = rest.split_first() {
        let opt = upper(w);
        rest = tail;
        match opt.as_str() {
            "WEIGHTS" if kind != ZAlgebra::Diff && rest.len() >= n => {
                let mut ws = Vec::with_capacity(n);
                for x in &rest[..n] {
                    ws.push(
                        parse_float(x)
                            .ok_or_else(|| Reply::err("ERR weight value is not a float"))?,
                    );
                }
                weights = Some(ws);
                rest = &rest[n..];
            }
            "AGGREGATE" if kind != ZAlgebra::Diff && !rest.is_empty() => {
                aggregate = match upper(&rest[0]).as_str() {
                    "SUM" => ZAggregate::Sum,
                    "MIN" => ZAggregate::Min,
                    "MAX" => ZAggregate::Max,
                    _ => return Err(syntax()),
                };
                rest = &rest[1..];
            }
            "WITHSCORES" if store.is_none() => with_scores = true,
            _ => return Err(syntax()),
        }
    }
    Ok(ZSetOp::Algebra {
        kind,
        keys,
        weights,
        aggregate,
        with_scores,
        store,
    })
}

/// Every ZRANGE form; `a` starts at the key (ZRANGESTORE: at the destination).
fn range(name: &str, a: &[Bytes]) -> Result<ZSetOp, Reply> {
    let store = (name == "ZRANGESTORE").then(|| a[0].clone());
    let a = if store.is_some() { &a[1..] } else { a };
    let (mut by, mut rev) = match name {
        "ZREVRANGE" => (ZBy::Rank, true),
        "ZRANGEBYSCORE" => (ZBy::Score, false),
        "ZREVRANGEBYSCORE" => (ZBy::Score, true),
        "ZRANGEBYLEX" => (ZBy::Lex, false),
        "ZREVRANGEBYLEX" => (ZBy::Lex, true),
        _ => (ZBy::Rank, false),
    };
    let general = matches!(name, "ZRANGE" | "ZRANGESTORE");
    let (mut limit, mut with_scores) = (None, false);
    let mut i = 3;
    while let Some(w) = a.get(i) {
        match upper(w).as_str() {
            "WITHSCORES" if store.is_none() => with_scores = true,
            "LIMIT" if a.len() > i + 2 => {
                limit = Some((int(&a[i + 1])?, int(&a[i + 2])?));
                i += 2;
            }
            "BYSCORE" if general => by = ZBy::Score,
            "BYLEX" if general => by = ZBy::Lex,
            "REV" if general => rev = true,
            _ => return Err(syntax()),
        }
        i += 1;
    }
    if limit.is_some() && by == ZBy::Rank {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && by == ZBy::Lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    Ok(ZSetOp::Range {
        by,
        start: a[1].clone(),
        stop: a[2].clone(),
        rev,
        limit,
        with_scores,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};

    fn op(s: &str) -> ZSetOp {
        match p(s) {
            Command::ZSet(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn zadd_flags_and_errors() {
        let ZSetOp::Add { opts, pairs } = op("ZADD z gt ch 1 a 2.5 b") else {
            panic!()
        };
        assert!(opts.gt && opts.ch && !opts.nx);
        assert_eq!(
            pairs,
            vec![(1.0, Bytes::from("a")), (2.5, Bytes::from("b"))]
        );
        assert_eq!(err("ZADD z 1 a 2"), SYNTAX);
        assert_eq!(err("ZADD z NX 1"), SYNTAX);
        assert_eq!(err("ZADD z x a"), "ERR value is not a valid float");
        assert_eq!(
            err("ZADD z NX XX 1 a"),
            "ERR XX and NX options at the same time are not compatible"
        );
        assert_eq!(
            err("ZADD z GT LT 1 a"),
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        );
        assert_eq!(
            err("ZADD z INCR 1 a 2 b"),
            "ERR INCR option supports a single increment-element pair"
        );
        assert!(matches!(op("ZADD z 1 a"), ZSetOp::Add { .. }));
        assert_eq!(p("ZADD z 1 a").kind(), crate::Kind::Write);
    }

    #[test]
    fn zrange_forms() {
        assert_eq!(
            op("ZRANGE z (1 +inf BYSCORE REV LIMIT 0 2 WITHSCORES"),
            ZSetOp::Range {
                by: ZBy::Score,
                start: "(1".into(),
                stop: "+inf".into(),
                rev: true,
                limit: Some((0, 2)),
                with_scores: true,
                store: None
            }
        );
        assert!(err("ZRANGE z 0 1 LIMIT 0 1").starts_with("ERR syntax error, LIMIT is only"));
        assert!(err("ZRANGE z - + BYLEX WITHSCORES").starts_with("ERR syntax error, WITHSCORES"));
        assert_eq!(err("ZRANGEBYSCORE z 0 1 REV"), SYNTAX);
        assert_eq!(err("ZRANGESTORE d z 0 1 WITHSCORES"), SYNTAX);
        assert_eq!(err("ZRANGEBYSCORE z 0 1 LIMIT x 1"), NOT_INT);
        let c = p("ZRANGESTORE d z 0 -1");
        assert_eq!(c.keys(), vec![&Bytes::from("d"), &Bytes::from("z")]);
        assert!(matches!(
            op("ZREVRANGEBYLEX z + - LIMIT 1 1"),
            ZSetOp::Range {
                by: ZBy::Lex,
                rev: true,
                ..
            }
        ));
    }

    #[test]
    fn algebra_and_pops() {
        let ZSetOp::Algebra {
            weights,
            aggregate,
            with_scores,
            ..
        } = op("ZUNION 2 a b WEIGHTS 1 2 AGGREGATE max WITHSCORES")
        else {
            panic!()
        };
        assert_eq!(
            (weights, aggregate, with_scores),
            (Some(vec![1.0, 2.0]), ZAggregate::Max, true)
        );
        assert_eq!(
            err("ZUNION 0 a"),
            "ERR at least 1 input key is needed for 'zunion' command"
        );
        assert_eq!(err("ZUNION 3 a b"), SYNTAX);
        assert_eq!(err("ZUNION 2 a b WEIGHTS 1"), SYNTAX);
        assert_eq!(
            err("ZUNION 1 a WEIGHTS x"),
            "ERR weight value is not a float"
        );
        assert_eq!(err("ZDIFF 1 a WEIGHTS 1"), SYNTAX);
        assert_eq!(err("ZUNIONSTORE d 1 a WITHSCORES"), SYNTAX);
        assert_eq!(p("ZUNIONSTORE d 2 a b").keys().len(), 3);
        assert_eq!(
            err("ZPOPMIN z -1"),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(err("ZMPOP 1 z MID"), SYNTAX);
        assert_eq!(
            err("ZMPOP 1 z MIN COUNT 0"),
            "ERR count should be greater than 0"
        );
        assert_eq!(p("BZMPOP 1 2 a b MAX").keys().len(), 2);
        assert!(matches!(
            op("BZPOPMIN a b 1"),
            ZSetOp::MPop { bzpop: true, .. }
        ));
        assert_eq!(err("ZRANK z m x"), SYNTAX);
        assert_eq!(err("ZRANDMEMBER z 1 WITHSCORE"), SYNTAX);
    }
}
