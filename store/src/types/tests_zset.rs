//! Tests of sorted sets: ZADD's options and errors, score order (negative, -0, inf), ranges
//! by rank / score / lex with REV and LIMIT, ranks, pops, WRONGTYPE, DEL then re-create, the
//! cleaner, and the cost of operations on a 100k-member sorted set.

use super::testutil::{bs, Db};
use super::zset::*;
use super::{hash, Cf, Error};

fn add(
    db: &mut Db,
    key: &[u8],
    flags: ZAddFlags,
    pairs: &[(f64, &str)],
) -> Result<ZAddReply, Error> {
    db.w(|st| zadd(st, key, flags, pairs))
}

fn names(v: Vec<(Vec<u8>, f64)>) -> Vec<Vec<u8>> {
    v.into_iter().map(|(m, _)| m).collect()
}

fn range(db: &Db, by: RangeBy, rev: bool, limit: Option<(i64, i64)>) -> Vec<Vec<u8>> {
    names(db.r(|v| zrange(v, b"z", &by, rev, limit).unwrap()))
}

const NONE: ZAddFlags = ZAddFlags {
    nx: false,
    xx: false,
    gt: false,
    lt: false,
    ch: false,
    incr: false,
};

fn abcde() -> Db {
    let mut db = Db::new();
    let pairs = [(1.0, "a"), (2.0, "b"), (3.0, "c"), (4.0, "d"), (5.0, "e")];
    add(&mut db, b"z", NONE, &pairs).unwrap();
    db
}

#[test]
fn zadd_options_follow_redis() {
    let mut db = Db::new();
    assert_eq!(
        add(&mut db, b"z", NONE, &[(1.0, "a"), (2.0, "b")]),
        Ok(ZAddReply::Count(2))
    );
    let f = |set: fn(&mut ZAddFlags)| {
        let mut x = NONE;
        set(&mut x);
        x
    };
    let ch = f(|x| x.ch = true);
    assert_eq!(
        add(&mut db, b"z", ch, &[(5.0, "a"), (2.0, "b"), (3.0, "c")]),
        Ok(ZAddReply::Count(2))
    );
    assert_eq!(
        add(&mut db, b"z", f(|x| x.nx = true), &[(9.0, "a"), (1.0, "n")]),
        Ok(ZAddReply::Count(1))
    );
    assert_eq!(
        add(&mut db, b"z", f(|x| x.xx = true), &[(9.0, "a"), (1.0, "q")]),
        Ok(ZAddReply::Count(0))
    );
    let gt_ch = f(|x| (x.gt, x.ch) = (true, true));
    assert_eq!(
        add(&mut db, b"z", gt_ch, &[(1.0, "a"), (10.0, "b"), (0.0, "g")]),
        Ok(ZAddReply::Count(2))
    );
    let lt_ch = f(|x| (x.lt, x.ch) = (true, true));
    assert_eq!(
        add(&mut db, b"z", lt_ch, &[(100.0, "a"), (0.5, "b")]),
        Ok(ZAddReply::Count(1))
    );
    db.r(|v| {
        assert_eq!(zscore(v, b"z", b"a").unwrap(), Some(9.0));
        assert_eq!(zscore(v, b"z", b"b").unwrap(), Some(0.5));
        assert_eq!(zscore(v, b"z", b"q").unwrap(), None);
        assert_eq!(zscore(v, b"nokey", b"q").unwrap(), None);
        assert_eq!(zcard(v, b"z").unwrap(), 5);
    });
    let incr = f(|x| x.incr = true);
    assert_eq!(
        add(&mut db, b"z", incr, &[(1.5, "a")]),
        Ok(ZAddReply::Score(Some(10.5)))
    );
    assert_eq!(
        add(&mut db, b"z", incr, &[(2.0, "new")]),
        Ok(ZAddReply::Score(Some(2.0)))
    );
    let incr_nx = f(|x| (x.incr, x.nx) = (true, true));
    assert_eq!(
        add(&mut db, b"z", incr_nx, &[(1.0, "a")]),
        Ok(ZAddReply::Score(None))
    );
    let incr_gt = f(|x| (x.incr, x.gt) = (true, true));
    assert_eq!(
        add(&mut db, b"z", incr_gt, &[(-1.0, "a")]),
        Ok(ZAddReply::Score(None))
    );
    let incr_xx = f(|x| (x.incr, x.xx) = (true, true));
    assert_eq!(
        add(&mut db, b"nokey", incr_xx, &[(1.0, "a")]),
        Ok(ZAddReply::Score(None))
    );
    assert_eq!(
        add(&mut db, b"nokey", f(|x| x.xx = true), &[(1.0, "a")]),
        Ok(ZAddReply::Count(0))
    );
    assert_eq!(db.keys, 1, "XX on a missing key creates nothing");
    assert_eq!(db.w(|st| zincrby(st, b"z", -0.5, b"a")), Ok(10.0));
}

#[test]
fn zadd_errors_have_redis_texts() {
    let mut db = Db::new();
    let both = ZAddFlags {
        nx: true,
        xx: true,
        ..NONE
    };
    assert_eq!(
        add(&mut db, b"z", both, &[(1.0, "a")])
            .unwrap_err()
            .to_string(),
        "ERR XX and NX options at the same time are not compatible"
    );
    let gt_nx = ZAddFlags {
        nx: true,
        gt: true,
        ..NONE
    };
    assert_eq!(add(&mut db, b"z", gt_nx, &[(1.0, "a")]), Err(Error::GtLtNx));
    let gt_lt = ZAddFlags {
        lt: true,
        gt: true,
        ..NONE
    };
    assert_eq!(
        add(&mut db, b"z", gt_lt, &[(1.0, "a")])
            .unwrap_err()
            .to_string(),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    let incr = ZAddFlags { incr: true, ..NONE };
    assert_eq!(
        add(&mut db, b"z", incr, &[(1.0, "a"), (2.0, "b")])
            .unwrap_err()
            .to_string(),
        "ERR INCR option supports a single increment-element pair"
    );
    assert_eq!(
        add(&mut db, b"z", NONE, &[(f64::NAN, "a")]),
        Err(Error::NotFloat)
    );
    add(&mut db, b"z", NONE, &[(f64::INFINITY, "a")]).unwrap();
    assert_eq!(
        db.w(|st| zincrby(st, b"z", f64::NEG_INFINITY, b"a"))
            .unwrap_err()
            .to_string(),
        "ERR resulting score is not a number (NaN)"
    );
    assert_eq!(db.r(|v| zscore(v, b"z", b"a")), Ok(Some(f64::INFINITY)));
}

#[test]
fn members_sort_by_score_then_member() {
    let mut db = Db::new();
    let pairs = [
        (-0.0, "z0"),
        (0.0, "a0"),
        (-1.5, "neg"),
        (f64::NEG_INFINITY, "ninf"),
        (f64::INFINITY, "inf"),
        (1e-300, "tiny"),
        (-1e300, "huge_neg"),
        (2.0, "b"),
        (2.0, "a"),
    ];
    add(&mut db, b"z", NONE, &pairs).unwrap();
    assert_eq!(
        range(&db, RangeBy::Rank(0, -1), false, None),
        bs(&["ninf", "huge_neg", "neg", "a0", "z0", "tiny", "a", "b", "inf"])
    );
    assert!(
        db.r(|v| zscore(v, b"z", b"z0"))
            .unwrap()
            .unwrap()
            .is_sign_negative(),
        "-0 kept"
    );
}

#[test]
fn rank_ranges_from_either_end_and_rev() {
    let db = abcde();
    assert_eq!(
        range(&db, RangeBy::Rank(0, 1), false, None),
        bs(&["a", "b"])
    );
    assert_eq!(
        range(&db, RangeBy::Rank(3, 4), false, None),
        bs(&["d", "e"])
    );
    assert_eq!(
        range(&db, RangeBy::Rank(-2, -1), false, None),
        bs(&["d", "e"])
    );
    assert_eq!(range(&db, RangeBy::Rank(0, 1), true, None), bs(&["e", "d"]));
    assert_eq!(
        range(&db, RangeBy::Rank(3, 10), true, None),
        bs(&["b", "a"])
    );
    assert_eq!(
        range(&db, RangeBy::Rank(-100, 100), true, None),
        bs(&["e", "d", "c", "b", "a"])
    );
    assert!(range(&db, RangeBy::Rank(3, 2), false, None).is_empty());
    assert!(range(&db, RangeBy::Rank(5, 9), false, None).is_empty());
    let with_scores = db.r(|v| zrange(v, b"z", &RangeBy::Rank(0, 0), false, None).unwrap());
    assert_eq!(with_scores, vec![(b"a".to_vec(), 1.0)]);
}

#[test]
fn score_ranges_with_bounds_rev_and_limit() {
    let db = abcde();
    let inc = ScoreBound::Inclusive;
    let exc = ScoreBound::Exclusive;
    assert_eq!(
        range(&db, RangeBy::Score(inc(2.0), inc(4.0)), false, None),
        bs(&["b", "c", "d"])
    );
    assert_eq!(
        range(&db, RangeBy::Score(exc(2.0), exc(4.0)), false, None),
        bs(&["c"])
    );
    assert_eq!(
        range(
            &db,
            RangeBy::Score(inc(f64::NEG_INFINITY), inc(f64::INFINITY)),
            true,
            None
        ),
        bs(&["e", "d", "c", "b", "a"])
    );
    assert_eq!(
        range(&db, RangeBy::Score(exc(1.0), inc(5.0)), true, Some((1, 2))),
        bs(&["d", "c"])
    );
    assert_eq!(
        range(
            &db,
            RangeBy::Score(inc(0.0), inc(9.0)),
            false,
            Some((3, -1))
        ),
        bs(&["d", "e"])
    );
    assert!(range(
        &db,
        RangeBy::Score(inc(0.0), inc(9.0)),
        false,
        Some((-1, 2))
    )
    .is_empty());
    assert!(range(&db, RangeBy::Score(inc(0.0), inc(9.0)), false, Some((1, 0))).is_empty());
    assert!(range(&db, RangeBy::Score(inc(4.0), inc(2.0)), false, None).is_empty());
    assert!(range(&db, RangeBy::Score(exc(3.0), exc(3.0)), false, None).is_empty());
    db.r(|v| {
        assert_eq!(zcount(v, b"z", inc(2.0), exc(5.0)).unwrap(), 3);
        assert_eq!(
            zcount(v, b"z", exc(f64::NEG_INFINITY), inc(f64::INFINITY)).unwrap(),
            5
        );
        assert_eq!(zcount(v, b"nokey", inc(0.0), inc(1.0)).unwrap(), 0);
    });
    assert_eq!(parse_score_bound(b"(1.5"), Ok(exc(1.5)));
    assert_eq!(parse_score_bound(b"-inf"), Ok(inc(f64::NEG_INFINITY)));
    assert_eq!(parse_score_bound(b"+inf"), Ok(inc(f64::INFINITY)));
    assert_eq!(
        parse_score_bound(b"(").unwrap_err().to_string(),
        "ERR min or max is not a float"
    );
    assert_eq!(parse_score_bound(b"nan"), Err(Error::MinMaxNotFloat));
}

#[test]
fn lex_ranges_with_bounds_rev_and_limit() {
    let mut db = Db::new();
    let pairs: Vec<(f64, &str)> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|m| (0.0, *m))
        .collect();
    add(&mut db, b"z", NONE, &pairs).unwrap();
    let lex = |s: &str| parse_lex_bound(s.as_bytes()).unwrap();
    let by = |a: &str, b: &str| RangeBy::Lex(lex(a), lex(b));
    assert_eq!(range(&db, by("-", "[c"), false, None), bs(&["a", "b", "c"]));
    assert_eq!(range(&db, by("-", "(c"), false, None), bs(&["a", "b"]));
    assert_eq!(
        range(&db, by("[aaa", "(g"), false, None),
        bs(&["b", "c", "d", "e", "f"])
    );
    assert_eq!(
        range(&db, by("(b", "+"), true, None),
        bs(&["f", "e", "d", "c"])
    );
    assert_eq!(
        range(&db, by("-", "+"), false, Some((2, 3))),
        bs(&["c", "d", "e"])
    );
    assert!(range(&db, by("+", "-"), false, None).is_empty());
    assert!(range(&db, by("[d", "[c"), false, None).is_empty());
    assert_eq!(
        parse_lex_bound(b"c").unwrap_err().to_string(),
        "ERR min or max not valid string range item"
    );
    assert_eq!(parse_lex_bound(b"[").unwrap(), LexBound::Inclusive(vec![]));
}

#[test]
fn ranks_match_positions_from_both_ends() {
    let mut db = Db::new();
    let names: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    let pairs: Vec<(f64, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64 * 0.5 - 20.0, m.as_str()))
        .collect();
    add(&mut db, b"z", NONE, &pairs).unwrap();
    db.r(|v| {
        for (i, m) in names.iter().enumerate() {
            assert_eq!(
                zrank(v, b"z", m.as_bytes(), false).unwrap(),
                Some(i as u64),
                "{m}"
            );
            assert_eq!(
                zrank(v, b"z", m.as_bytes(), true).unwrap(),
                Some(199 - i as u64),
                "{m}"
            );
        }
        assert_eq!(zrank(v, b"z", b"nope", false).unwrap(), None);
        assert_eq!(zrank(v, b"nokey", b"m000", false).unwrap(), None);
    });
    for (start, stop) in [(10, 19), (150, 160), (-30, -25), (0, 199)] {
        let got = range(&db, RangeBy::Rank(start, stop), false, None);
        let (a, b) = (
            start.rem_euclid(200) as usize,
            stop.rem_euclid(200) as usize,
        );
        let want: Vec<Vec<u8>> = names[a..=b].iter().map(|m| m.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn pops_take_from_either_end_and_the_last_deletes_the_key() {
    let mut db = abcde();
    assert_eq!(
        db.w(|st| zpop(st, b"z", false, 2)),
        Ok(vec![(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.0)])
    );
    assert_eq!(
        names(db.w(|st| zpop(st, b"z", true, 1)).unwrap()),
        bs(&["e"])
    );
    assert_eq!(db.w(|st| zpop(st, b"z", true, 0)), Ok(vec![]));
    assert_eq!(db.w(|st| zpop(st, b"nokey", true, 1)), Ok(vec![]));
    assert_eq!(
        names(db.w(|st| zpop(st, b"z", true, 10)).unwrap()),
        bs(&["d", "c"])
    );
    assert_eq!((db.keys, db.count(Cf::Sub), db.count(Cf::Score)), (0, 0, 0));
}

#[test]
fn zrem_removes_member_and_index_records() {
    let mut db = abcde();
    assert_eq!(db.w(|st| zrem(st, b"z", &bs(&["a", "zz", "a"]))), Ok(1));
    assert_eq!(
        range(&db, RangeBy::Rank(0, -1), false, None),
        bs(&["b", "c", "d", "e"])
    );
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (4, 4));
    // An update moves the index record too.
    add(&mut db, b"z", NONE, &[(0.0, "e")]).unwrap();
    assert_eq!(range(&db, RangeBy::Rank(0, 0), false, None), bs(&["e"]));
    assert_eq!(db.count(Cf::Score), 4);
}

#[test]
fn wrong_type_against_strings_and_hashes() {
    let mut db = Db::new();
    db.set_string(b"s", b"v");
    db.w(|st| hash::hset(st, b"h", &[(b"f", b"v")]).unwrap());
    for key in [&b"s"[..], b"h"] {
        assert_eq!(
            add(&mut db, key, NONE, &[(1.0, "a")]),
            Err(Error::WrongType)
        );
        assert_eq!(db.w(|st| zpop(st, key, false, 1)), Err(Error::WrongType));
        assert_eq!(db.r(|v| zscore(v, key, b"a")), Err(Error::WrongType));
        assert_eq!(
            db.r(|v| zrange(v, key, &RangeBy::Rank(0, -1), false, None)),
            Err(Error::WrongType)
        );
    }
}

#[test]
fn del_then_recreate_and_the_cleaner_clears_both_families() {
    let mut db = abcde();
    db.del(b"z");
    add(&mut db, b"z", NONE, &[(7.0, "new")]).unwrap();
    assert_eq!(range(&db, RangeBy::Rank(0, -1), false, None), bs(&["new"]));
    assert_eq!(db.r(|v| zscore(v, b"z", b"a")), Ok(None));
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (6, 6));
    db.clean_all(1);
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (1, 1));
}

#[test]
fn operations_on_a_100k_member_zset_touch_a_constant_number_of_records() {
    let mut db = Db::new();
    for chunk in 0..10 {
        let names: Vec<String> = (0..10_000)
            .map(|i| format!("m{}", chunk * 10_000 + i))
            .collect();
        let pairs: Vec<(f64, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, m)| ((chunk * 10_000 + i) as f64, m.as_str()))
            .collect();
        add(&mut db, b"big", NONE, &pairs).unwrap();
    }
    let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let pairs: Vec<(f64, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64, m.as_str()))
        .collect();
    add(&mut db, b"small", NONE, &pairs).unwrap();
    let cost = |db: &mut Db, key: &[u8], last: &[u8]| {
        db.w(|st| {
            let mut out = Vec::new();
            let mut probe = |st: &mut super::view::Staged, f: &dyn Fn(&mut super::view::Staged)| {
                st.stats().reset();
                f(st);
                out.push((st.stats().reads(), st.stats().writes()));
            };
            let s = |x| ScoreBound::Inclusive(x);
            probe(st, &|st| drop(zadd(st, key, NONE, &[(0.5, b"new")])));
            probe(st, &|st| drop(zadd(st, key, NONE, &[(3.5, b"m3")])));
            probe(st, &|st| drop(zscore(st, key, b"m7")));
            probe(st, &|st| drop(zincrby(st, key, 1.0, b"m8")));
            probe(st, &|st| drop(zrem(st, key, &[b"m9"])));
            probe(st, &|st| drop(zcard(st, key)));
            probe(st, &|st| drop(zpop(st, key, false, 1)));
            probe(st, &|st| drop(zpop(st, key, true, 1)));
            probe(st, &|st| {
                drop(zrange(st, key, &RangeBy::Rank(0, 4), false, None))
            });
            probe(st, &|st| {
                drop(zrange(st, key, &RangeBy::Rank(-5, -1), true, None))
            });
            probe(st, &|st| {
                drop(zrange(
                    st,
                    key,
                    &RangeBy::Score(s(2.0), s(1e9)),
                    false,
                    Some((0, 5)),
                ))
            });
            probe(st, &|st| drop(zcount(st, key, s(4.0), s(6.0))));
            probe(st, &|st| drop(zrank(st, key, b"m2", false)));
            probe(st, &|st| drop(zrank(st, key, last, true)));
            out
        })
    };
    let big = cost(&mut db, b"big", b"m99998");
    let small = cost(&mut db, b"small", b"m18");
    assert_eq!(big, small, "same records touched at 100k members as at 20");
    assert!(big.iter().all(|&(r, w)| r <= 40 && w <= 6), "{big:?}");
    assert_eq!(db.r(|v| zcard(v, b"big")), Ok(100_000 + 1 - 1 - 2));
}
