//! Tests of sets: membership, seeded SPOP (same seed, same pops on every replica),
//! SRANDMEMBER counts, SSCAN, WRONGTYPE, DEL then re-create, the cleaner, and the cost of
//! operations on a 100k-member set.

use std::collections::BTreeSet;

use super::set::*;
use super::testutil::{bs, Db};
use super::{zset, Cf, Error, Rng};

fn sorted(v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v = v;
    v.sort();
    v
}

#[test]
fn sadd_srem_and_membership() {
    let mut db = Db::new();
    assert_eq!(db.w(|st| sadd(st, b"s", &bs(&["a", "b", "a"]))), Ok(2));
    assert_eq!(db.w(|st| sadd(st, b"s", &bs(&["b", "c"]))), Ok(1));
    db.r(|v| {
        assert_eq!(scard(v, b"s").unwrap(), 3);
        assert_eq!(scard(v, b"nokey").unwrap(), 0);
        assert!(sismember(v, b"s", b"a").unwrap());
        assert!(!sismember(v, b"s", b"z").unwrap());
        assert!(!sismember(v, b"nokey", b"a").unwrap());
        assert_eq!(
            smismember(v, b"s", &bs(&["a", "z", "c"])).unwrap(),
            vec![true, false, true]
        );
        assert_eq!(smismember(v, b"nokey", &bs(&["a"])).unwrap(), vec![false]);
        assert_eq!(sorted(smembers(v, b"s").unwrap()), bs(&["a", "b", "c"]));
        assert!(smembers(v, b"nokey").unwrap().is_empty());
    });
    assert_eq!(db.w(|st| srem(st, b"s", &bs(&["a", "z", "a"]))), Ok(1));
    assert_eq!(db.w(|st| srem(st, b"nokey", &bs(&["a"]))), Ok(0));
    assert_eq!(db.w(|st| srem(st, b"s", &bs(&["b", "c"]))), Ok(2));
    assert_eq!((db.keys, db.count(Cf::Sub)), (0, 0));
}

fn members(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("m{i}").into_bytes()).collect()
}

#[test]
fn spop_is_decided_by_the_seed_alone() {
    let run = |seed: u64| {
        let mut db = Db::new();
        db.w(|st| sadd(st, b"s", &members(50)).unwrap());
        let a = db.w(|st| spop(st, b"s", 1, seed).unwrap().unwrap());
        let b = db.w(|st| spop(st, b"s", 5, seed ^ 1).unwrap().unwrap());
        (a, b, db.r(|v| scard(v, b"s").unwrap()))
    };
    let (a, b, left) = run(42);
    assert_eq!(
        run(42),
        (a.clone(), b.clone(), left),
        "replicas pop the same members"
    );
    assert_eq!((a.len(), b.len(), left), (1, 5, 44));
    let distinct: BTreeSet<_> = a.iter().chain(&b).collect();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn spop_counts_and_popping_everything_deletes_the_key() {
    let mut db = Db::new();
    db.w(|st| sadd(st, b"s", &members(10)).unwrap());
    assert_eq!(db.w(|st| spop(st, b"s", 0, 1)), Ok(Some(vec![])));
    assert_eq!(db.w(|st| spop(st, b"nokey", 1, 1)), Ok(None));
    let mut got = db.w(|st| spop(st, b"s", 3, 7).unwrap().unwrap());
    got.extend(db.w(|st| spop(st, b"s", 100, 8).unwrap().unwrap()));
    assert_eq!(sorted(got), sorted(members(10)));
    assert_eq!((db.keys, db.count(Cf::Sub)), (0, 0));
}

#[test]
fn srandmember_counts_follow_redis() {
    let mut db = Db::new();
    db.w(|st| sadd(st, b"s", &members(10)).unwrap());
    let mut rng = Rng::new(3);
    db.r(|v| {
        let five = srandmember(v, b"s", 5, &mut rng).unwrap();
        assert_eq!(five.iter().collect::<BTreeSet<_>>().len(), 5, "distinct");
        assert_eq!(
            sorted(srandmember(v, b"s", 50, &mut rng).unwrap()),
            sorted(members(10))
        );
        assert_eq!(srandmember(v, b"s", -25, &mut rng).unwrap().len(), 25);
        assert!(srandmember(v, b"s", 0, &mut rng).unwrap().is_empty());
        assert!(srandmember(v, b"nokey", -3, &mut rng).unwrap().is_empty());
        let huge = srandmember(v, b"s", i64::MIN, &mut rng).unwrap_err();
        assert_eq!(huge.to_string(), "ERR value is out of range");
        // Every member comes up over many draws.
        let picks = srandmember(v, b"s", -5000, &mut rng).unwrap();
        assert_eq!(picks.iter().collect::<BTreeSet<_>>().len(), 10);
    });
    assert_eq!(db.r(|v| scard(v, b"s")), Ok(10), "reads remove nothing");
}

#[test]
fn sscan_pages_visit_each_member_once() {
    let mut db = Db::new();
    db.w(|st| sadd(st, b"s", &members(33)).unwrap());
    let (mut seen, mut after) = (Vec::new(), None::<Vec<u8>>);
    loop {
        let page = db.r(|v| sscan(v, b"s", after.as_deref(), 5, None).unwrap());
        seen.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(sorted(seen), sorted(members(33)));
    let ones = db.r(|v| sscan(v, b"s", None, 100, Some(b"m1*")).unwrap());
    assert_eq!(ones.items.len(), 11);
}

#[test]
fn wrong_type_against_strings_and_sorted_sets() {
    let mut db = Db::new();
    db.set_string(b"str", b"v");
    db.w(|st| zset::zadd(st, b"z", Default::default(), &[(1.0, b"a")]).unwrap());
    for key in [&b"str"[..], b"z"] {
        assert_eq!(db.w(|st| sadd(st, key, &bs(&["a"]))), Err(Error::WrongType));
        assert_eq!(db.w(|st| spop(st, key, 1, 1)), Err(Error::WrongType));
        assert_eq!(db.r(|v| sismember(v, key, b"a")), Err(Error::WrongType));
        assert_eq!(db.r(|v| smembers(v, key)), Err(Error::WrongType));
    }
}

#[test]
fn del_then_recreate_does_not_resurrect_members() {
    let mut db = Db::new();
    db.w(|st| sadd(st, b"s", &bs(&["old"])).unwrap());
    db.del(b"s");
    db.w(|st| sadd(st, b"s", &bs(&["new"])).unwrap());
    assert_eq!(db.r(|v| smembers(v, b"s")), Ok(bs(&["new"])));
    assert_eq!(db.r(|v| sismember(v, b"s", b"old")), Ok(false));
    db.clean_all(1);
    assert_eq!(db.count(Cf::Sub), 1);
}

#[test]
fn operations_on_a_100k_member_set_touch_a_constant_number_of_records() {
    let mut db = Db::new();
    for chunk in 0..10 {
        let ms: Vec<Vec<u8>> = (0..10_000)
            .map(|i| format!("m{}", chunk * 10_000 + i).into_bytes())
            .collect();
        db.w(|st| sadd(st, b"big", &ms).unwrap());
    }
    db.w(|st| sadd(st, b"small", &members(20)).unwrap());
    let cost = |db: &mut Db, key: &[u8]| {
        db.w(|st| {
            let mut out = Vec::new();
            let mut probe = |st: &mut super::view::Staged, f: &dyn Fn(&mut super::view::Staged)| {
                st.stats().reset();
                f(st);
                out.push((st.stats().reads(), st.stats().writes()));
            };
            probe(st, &|st| drop(sadd(st, key, &bs(&["new"]))));
            probe(st, &|st| drop(sismember(st, key, b"m3")));
            probe(st, &|st| drop(srem(st, key, &bs(&["m4"]))));
            probe(st, &|st| drop(scard(st, key)));
            probe(st, &|st| drop(spop(st, key, 3, 99)));
            probe(st, &|st| drop(srandmember(st, key, 4, &mut Rng::new(5))));
            probe(st, &|st| drop(srandmember(st, key, -4, &mut Rng::new(5))));
            out
        })
    };
    let big = cost(&mut db, b"big");
    let small = cost(&mut db, b"small");
    assert!(big.iter().all(|&(r, w)| r <= 20 && w <= 5), "{big:?}");
    assert!(small.iter().all(|&(r, w)| r <= 20 && w <= 5), "{small:?}");
    assert_eq!(db.r(|v| scard(v, b"big")), Ok(100_000 + 1 - 1 - 3));
}

fn sets(db: &mut Db) {
    db.w(|st| {
        sadd(st, b"a", &bs(&["1", "2", "3", "4"])).unwrap();
        sadd(st, b"b", &bs(&["2", "3", "5"])).unwrap();
        sadd(st, b"c", &bs(&["3", "2", "9"])).unwrap();
    });
    db.set_string(b"str", b"v");
}

#[test]
fn set_algebra_follows_redis() {
    use super::setops::*;
    let mut db = Db::new();
    sets(&mut db);
    db.r(|v| {
        assert_eq!(
            sorted(sinter(v, &bs(&["a", "b", "c"])).unwrap()),
            bs(&["2", "3"])
        );
        assert!(sinter(v, &bs(&["a", "nokey"])).unwrap().is_empty());
        assert_eq!(sintercard(v, &bs(&["a", "b"]), 0).unwrap(), 2);
        assert_eq!(sintercard(v, &bs(&["a", "b"]), 1).unwrap(), 1);
        assert_eq!(
            sunion(v, &bs(&["a", "b", "nokey"])).unwrap(),
            bs(&["1", "2", "3", "4", "5"])
        );
        assert_eq!(sorted(sdiff(v, &bs(&["a", "b"])).unwrap()), bs(&["1", "4"]));
        assert_eq!(
            sorted(sdiff(v, &bs(&["a", "nokey"])).unwrap()),
            bs(&["1", "2", "3", "4"])
        );
        assert!(sdiff(v, &bs(&["nokey", "a"])).unwrap().is_empty());
        // Every key is type-checked, even after a missing one.
        assert_eq!(sinter(v, &bs(&["nokey", "str"])), Err(Error::WrongType));
        assert_eq!(sunion(v, &bs(&["a", "str"])), Err(Error::WrongType));
        assert_eq!(sdiff(v, &bs(&["a", "str"])), Err(Error::WrongType));
    });
    let inter = db.r(|v| sinter(v, &bs(&["a", "b"])).unwrap());
    assert_eq!(
        db.w(|st| store(st, b"str", &inter)),
        Ok(2),
        "replaces a string"
    );
    assert_eq!(
        db.r(|v| sorted(smembers(v, b"str").unwrap())),
        bs(&["2", "3"])
    );
    assert_eq!(db.w(|st| store(st, b"a", &[])), Ok(0));
    assert_eq!(db.r(|v| scard(v, b"a")), Ok(0));
}

#[test]
fn smove_moves_one_member() {
    use super::setops::smove;
    let mut db = Db::new();
    sets(&mut db);
    assert_eq!(db.w(|st| smove(st, b"a", b"new", b"1")), Ok(true));
    assert_eq!(db.w(|st| smove(st, b"a", b"new", b"1")), Ok(false));
    assert_eq!(db.w(|st| smove(st, b"nokey", b"new", b"1")), Ok(false));
    assert_eq!(db.w(|st| smove(st, b"b", b"b", b"5")), Ok(true));
    assert_eq!(
        db.w(|st| smove(st, b"a", b"str", b"2")),
        Err(Error::WrongType)
    );
    assert_eq!(
        db.w(|st| smove(st, b"str", b"a", b"2")),
        Err(Error::WrongType)
    );
    db.r(|v| {
        assert_eq!(smembers(v, b"new").unwrap(), bs(&["1"]));
        assert_eq!(scard(v, b"a").unwrap(), 3);
        assert_eq!(scard(v, b"b").unwrap(), 3);
    });
}
