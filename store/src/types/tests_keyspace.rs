//! Tests of TYPE and of copying collections between keys (RENAME, COPY).

use super::keyspace::{copy, type_of};
use super::testutil::{bs, Db, NOW};
use super::{hash, list, meta, set, zset, Cf, Write};

fn fill(db: &mut Db) {
    db.w(|st| {
        hash::hset(st, b"h", &[(b"f", b"1"), (b"g", b"2")]).unwrap();
        list::push(st, b"l", list::End::Right, &bs(&["a", "b", "c"]), false).unwrap();
        set::sadd(st, b"s", &bs(&["x", "y"])).unwrap();
        zset::zadd(st, b"z", Default::default(), &[(1.0, b"p"), (2.0, b"q")]).unwrap();
    });
    db.set_string(b"str", b"v");
}

#[test]
fn type_names_every_type() {
    let mut db = Db::new();
    fill(&mut db);
    db.expire_at(b"h", NOW + 1);
    db.r(|v| {
        for (k, t) in [
            ("h", "hash"),
            ("l", "list"),
            ("s", "set"),
            ("z", "zset"),
            ("str", "string"),
            ("none", "none"),
        ] {
            assert_eq!(type_of(v, k.as_bytes()).unwrap(), t);
        }
    });
    db.batch(NOW + 1, |st| assert_eq!(type_of(st, b"h"), Ok("none")));
}

#[test]
fn rename_moves_every_type_with_its_ttl() {
    let mut db = Db::new();
    fill(&mut db);
    db.expire_at(b"z", NOW + 1000);
    for k in ["h", "l", "s", "z"] {
        let dst = format!("{k}2");
        db.w(|st| {
            assert_eq!(copy(st, k.as_bytes(), dst.as_bytes()), Ok(true));
            st.del_data(k.as_bytes()).unwrap();
        });
    }
    db.r(|v| {
        assert_eq!(hash::hgetall(v, b"h2").unwrap().len(), 2);
        assert_eq!(hash::hget(v, b"h2", b"g").unwrap(), Some(b"2".to_vec()));
        assert_eq!(list::lrange(v, b"l2", 0, -1).unwrap(), bs(&["a", "b", "c"]));
        assert_eq!(list::lindex(v, b"l2", -1).unwrap(), Some(b"c".to_vec()));
        assert!(
            set::sismember(v, b"s2", b"y").unwrap(),
            "set members re-hashed"
        );
        assert_eq!(set::scard(v, b"s2").unwrap(), 2);
        assert_eq!(zset::zrank(v, b"z2", b"q", false).unwrap(), Some(1));
        assert_eq!(zset::zscore(v, b"z2", b"p").unwrap(), Some(1.0));
        let m = meta::load(v, b"z2", crate::TYPE_ZSET).unwrap().unwrap();
        assert_eq!(m.expire, NOW + 1000);
        assert_eq!(type_of(v, b"h").unwrap(), "none");
    });
    assert_eq!(db.keys, 5);
    db.clean_all(10);
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (9, 2));
}

#[test]
fn copy_replaces_the_destination_and_leaves_the_source() {
    let mut db = Db::new();
    fill(&mut db);
    db.w(|st| {
        assert_eq!(copy(st, b"s", b"h"), Ok(true));
        assert_eq!(
            copy(st, b"str", b"x"),
            Ok(false),
            "strings are the caller's"
        );
        assert_eq!(copy(st, b"nokey", b"x"), Ok(false));
        assert_eq!(copy(st, b"l", b"l"), Ok(true));
    });
    db.r(|v| {
        assert_eq!(type_of(v, b"h").unwrap(), "set");
        let mut got = set::smembers(v, b"h").unwrap();
        got.sort();
        assert_eq!(got, bs(&["x", "y"]));
        assert_eq!(set::scard(v, b"s").unwrap(), 2);
        assert_eq!(list::llen(v, b"l").unwrap(), 3);
    });
}

#[test]
fn a_copy_larger_than_one_page_is_complete() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..1300).map(|i| format!("e{i}").into_bytes()).collect();
    db.w(|st| list::push(st, b"l", list::End::Right, &items, false).unwrap());
    db.w(|st| copy(st, b"l", b"l2").unwrap());
    assert_eq!(db.r(|v| list::lrange(v, b"l2", 0, -1)), Ok(items));
}
