//! Tests of the sorted-set operations beside ZRANGE: ZMSCORE, ZLEXCOUNT, ZREMRANGEBY*.

use super::testutil::{bs, Db};
use super::zset::*;
use super::Cf;

fn abcde(db: &mut Db, same_score: bool) {
    let pairs: Vec<(f64, &[u8])> = [&b"a"[..], b"b", b"c", b"d", b"e"]
        .iter()
        .enumerate()
        .map(|(i, m)| (if same_score { 0.0 } else { i as f64 + 1.0 }, *m))
        .collect();
    db.w(|st| zadd(st, b"z", ZAddFlags::default(), &pairs).unwrap());
}

fn members(db: &Db) -> Vec<Vec<u8>> {
    let all = db.r(|v| zrange(v, b"z", &RangeBy::Rank(0, -1), false, None).unwrap());
    all.into_iter().map(|(m, _)| m).collect()
}

#[test]
fn zmscore_answers_per_member() {
    let mut db = Db::new();
    abcde(&mut db, false);
    db.r(|v| {
        assert_eq!(
            zmscore(v, b"z", &bs(&["a", "x", "e"])).unwrap(),
            vec![Some(1.0), None, Some(5.0)]
        );
        assert_eq!(zmscore(v, b"nokey", &bs(&["a"])).unwrap(), vec![None]);
    });
}

#[test]
fn zlexcount_counts_between_bounds() {
    let mut db = Db::new();
    abcde(&mut db, true);
    let lex = |s: &str| parse_lex_bound(s.as_bytes()).unwrap();
    db.r(|v| {
        assert_eq!(zlexcount(v, b"z", &lex("-"), &lex("+")).unwrap(), 5);
        assert_eq!(zlexcount(v, b"z", &lex("[b"), &lex("(d")).unwrap(), 2);
        assert_eq!(zlexcount(v, b"z", &lex("+"), &lex("-")).unwrap(), 0);
        assert_eq!(zlexcount(v, b"nokey", &lex("-"), &lex("+")).unwrap(), 0);
    });
}

#[test]
fn zremrange_by_rank_score_and_lex() {
    let mut db = Db::new();
    abcde(&mut db, false);
    assert_eq!(
        db.w(|st| zremrange(st, b"z", &RangeBy::Rank(-2, -1))),
        Ok(2)
    );
    assert_eq!(members(&db), bs(&["a", "b", "c"]));
    let by_score = RangeBy::Score(ScoreBound::Exclusive(1.0), ScoreBound::Inclusive(2.0));
    assert_eq!(db.w(|st| zremrange(st, b"z", &by_score)), Ok(1));
    assert_eq!(members(&db), bs(&["a", "c"]));
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (2, 2));
    assert_eq!(
        db.w(|st| zremrange(st, b"nokey", &RangeBy::Rank(0, -1))),
        Ok(0)
    );
    assert_eq!(db.w(|st| zremrange(st, b"z", &RangeBy::Rank(5, 9))), Ok(0));
    assert_eq!(db.w(|st| zremrange(st, b"z", &RangeBy::Rank(0, -1))), Ok(2));
    assert_eq!((db.keys, db.count(Cf::Sub), db.count(Cf::Score)), (0, 0, 0));
    abcde(&mut db, true);
    let by_lex = RangeBy::Lex(
        LexBound::Inclusive(b"b".to_vec()),
        LexBound::Exclusive(b"e".to_vec()),
    );
    assert_eq!(db.w(|st| zremrange(st, b"z", &by_lex)), Ok(3));
    assert_eq!(members(&db), bs(&["a", "e"]));
}

#[test]
fn zrandmember_gives_members_with_their_scores() {
    let mut db = Db::new();
    abcde(&mut db, false);
    let mut rng = super::Rng::new(4);
    db.r(|v| {
        let all = zrandmember(v, b"z", 10, &mut rng).unwrap();
        let mut names: Vec<Vec<u8>> = all.iter().map(|(m, _)| m.clone()).collect();
        names.sort();
        assert_eq!(names, bs(&["a", "b", "c", "d", "e"]));
        for (m, s) in &all {
            assert_eq!(zscore(v, b"z", m).unwrap(), Some(*s));
        }
        assert_eq!(zrandmember(v, b"z", -12, &mut rng).unwrap().len(), 12);
        assert_eq!(zrandmember(v, b"z", 2, &mut rng).unwrap().len(), 2);
        assert!(zrandmember(v, b"nokey", 2, &mut rng).unwrap().is_empty());
    });
}
