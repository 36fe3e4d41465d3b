//! Tests of hashes: Redis's edge cases, WRONGTYPE, batch visibility, DEL then re-create,
//! expiry, the cleaner, and the cost of operations on a 100k-field hash.

use super::hash::*;
use super::testutil::{bs, Db, NOW};
use super::{list, Cf, Error, Write};

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn pairs(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn hset_counts_new_fields_and_overwrites_old_ones() {
    let mut db = Db::new();
    assert_eq!(
        db.w(|st| hset(st, b"h", &pairs(&[("a", "1"), ("b", "2")]))),
        Ok(2)
    );
    assert_eq!(
        db.w(|st| hset(st, b"h", &pairs(&[("a", "x"), ("c", "3")]))),
        Ok(1)
    );
    // A field twice in one call counts once; the last value wins.
    assert_eq!(
        db.w(|st| hset(st, b"h", &pairs(&[("d", "1"), ("d", "2")]))),
        Ok(1)
    );
    db.r(|v| {
        assert_eq!(hget(v, b"h", b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(hget(v, b"h", b"d").unwrap(), Some(b"2".to_vec()));
        assert_eq!(hget(v, b"h", b"zz").unwrap(), None);
        assert_eq!(hget(v, b"nokey", b"a").unwrap(), None);
        assert_eq!(hlen(v, b"h").unwrap(), 4);
        assert_eq!(hlen(v, b"nokey").unwrap(), 0);
        assert_eq!(
            hmget(v, b"h", &bs(&["a", "nope", "c"])).unwrap(),
            vec![Some(b"x".to_vec()), None, Some(b"3".to_vec())]
        );
        assert_eq!(
            hmget(v, b"nokey", &bs(&["a", "b"])).unwrap(),
            vec![None, None]
        );
        assert!(hexists(v, b"h", b"b").unwrap());
        assert!(!hexists(v, b"h", b"q").unwrap());
        assert_eq!(hstrlen(v, b"h", b"a").unwrap(), 1);
        assert_eq!(hstrlen(v, b"h", b"q").unwrap(), 0);
        // Fields come in hash order (Redis's are unordered too); values in the same order.
        let all = hgetall(v, b"h").unwrap();
        let keys: Vec<Vec<u8>> = all.iter().map(|(f, _)| f.clone()).collect();
        let vals: Vec<Vec<u8>> = all.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(hkeys(v, b"h").unwrap(), keys);
        assert_eq!(hvals(v, b"h").unwrap(), vals);
        assert_eq!(sorted(keys), bs(&["a", "b", "c", "d"]));
        assert_eq!(
            sorted(all),
            pairs(&[("a", "x"), ("b", "2"), ("c", "3"), ("d", "2")])
        );
        assert!(hgetall(v, b"nokey").unwrap().is_empty());
    });
}

#[test]
fn hsetnx_sets_only_absent_fields() {
    let mut db = Db::new();
    assert_eq!(db.w(|st| hsetnx(st, b"h", b"f", b"1")), Ok(true));
    assert_eq!(db.w(|st| hsetnx(st, b"h", b"f", b"2")), Ok(false));
    assert_eq!(db.r(|v| hget(v, b"h", b"f")), Ok(Some(b"1".to_vec())));
}

#[test]
fn hdel_counts_existing_fields_and_the_last_one_deletes_the_key() {
    let mut db = Db::new();
    db.w(|st| hset(st, b"h", &pairs(&[("a", "1"), ("b", "2")])).unwrap());
    assert_eq!(db.w(|st| hdel(st, b"h", &bs(&["a", "a", "zz"]))), Ok(1));
    assert_eq!(db.w(|st| hdel(st, b"nokey", &bs(&["a"]))), Ok(0));
    assert_eq!(db.keys, 1);
    assert_eq!(db.w(|st| hdel(st, b"h", &bs(&["b"]))), Ok(1));
    assert_eq!(db.keys, 0, "the emptied hash is deleted");
    assert_eq!(db.count(Cf::Data), 0);
    assert_eq!(db.count(Cf::Sub), 0);
}

#[test]
fn hincrby_and_hincrbyfloat_follow_redis() {
    let mut db = Db::new();
    assert_eq!(db.w(|st| hincrby(st, b"h", b"n", 5)), Ok(5));
    assert_eq!(db.w(|st| hincrby(st, b"h", b"n", -7)), Ok(-2));
    db.w(|st| {
        hset(
            st,
            b"h",
            &pairs(&[("s", "abc"), ("big", "9223372036854775807")]),
        )
    })
    .unwrap();
    assert_eq!(
        db.w(|st| hincrby(st, b"h", b"s", 1)),
        Err(Error::HashNotInteger)
    );
    assert_eq!(
        db.w(|st| hincrby(st, b"h", b"big", 1)),
        Err(Error::Overflow)
    );
    assert_eq!(
        Error::HashNotInteger.to_string(),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        db.w(|st| hincrbyfloat(st, b"h", b"f", 10.5)),
        Ok("10.5".into())
    );
    assert_eq!(
        db.w(|st| hincrbyfloat(st, b"h", b"f", 0.1)),
        Ok("10.6".into())
    );
    assert_eq!(db.w(|st| hincrbyfloat(st, b"h", b"n", 2.0)), Ok("0".into()));
    assert_eq!(
        db.w(|st| hincrbyfloat(st, b"h", b"s", 1.0)),
        Err(Error::HashNotFloat)
    );
    assert_eq!(
        Error::HashNotFloat.to_string(),
        "ERR hash value is not a float"
    );
    assert_eq!(
        db.w(|st| hincrbyfloat(st, b"h", b"f", f64::INFINITY)),
        Err(Error::NanOrInfinity)
    );
    assert_eq!(db.r(|v| hget(v, b"h", b"f")), Ok(Some(b"10.6".to_vec())));
}

#[test]
fn hscan_pages_through_every_field_once_with_a_pattern() {
    let mut db = Db::new();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..25)
        .map(|i| (format!("f{i:02}").into_bytes(), b"v".to_vec()))
        .collect();
    db.w(|st| hset(st, b"h", &fields).unwrap());
    let (mut seen, mut after, mut pages) = (Vec::new(), None::<Vec<u8>>, 0);
    loop {
        let page = db.r(|v| hscan(v, b"h", after.as_deref(), 10, Some(b"f1*")).unwrap());
        seen.extend(page.items.into_iter().map(|(f, _)| f));
        pages += 1;
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<Vec<u8>> = (10..20).map(|i| format!("f{i}").into_bytes()).collect();
    assert_eq!(sorted(seen), want);
    let all = db.r(|v| hscan(v, b"h", None, 100, Some(b"*")).unwrap());
    assert_eq!((all.items.len(), all.next), (25, None));
    assert_eq!(
        db.r(|v| hscan(v, b"nokey", None, 10, None)),
        Ok(ScanPage::default())
    );
}

#[test]
fn wrong_type_against_strings_and_other_collections() {
    let mut db = Db::new();
    db.set_string(b"s", b"v");
    db.w(|st| list::push(st, b"l", list::End::Left, &bs(&["x"]), false).unwrap());
    for key in [&b"s"[..], b"l"] {
        assert_eq!(
            db.w(|st| hset(st, key, &pairs(&[("a", "1")]))),
            Err(Error::WrongType)
        );
        assert_eq!(db.w(|st| hincrby(st, key, b"a", 1)), Err(Error::WrongType));
        assert_eq!(db.w(|st| hdel(st, key, &bs(&["a"]))), Err(Error::WrongType));
        assert_eq!(db.r(|v| hget(v, key, b"a")), Err(Error::WrongType));
        assert_eq!(db.r(|v| hlen(v, key)), Err(Error::WrongType));
        assert_eq!(db.r(|v| hgetall(v, key)), Err(Error::WrongType));
    }
    assert_eq!(
        Error::WrongType.to_string(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn commands_of_one_batch_see_each_other() {
    let mut db = Db::new();
    let (a, b, c) = db.w(|st| {
        let a = hset(st, b"h", &pairs(&[("f", "1")])).unwrap();
        let b = hincrby(st, b"h", b"f", 1).unwrap();
        let c = hgetall(st, b"h").unwrap();
        (a, b, c)
    });
    assert_eq!((a, b, c), (1, 2, pairs(&[("f", "2")])));
    // Deleted in the batch, then recreated: the scan merges overlay and database.
    db.w(|st| hset(st, b"h", &pairs(&[("a", "1"), ("z", "1")])).unwrap());
    let got = db.w(|st| {
        hdel(st, b"h", &bs(&["f"])).unwrap();
        hset(st, b"h", &pairs(&[("m", "1")])).unwrap();
        sorted(hkeys(st, b"h").unwrap())
    });
    assert_eq!(got, bs(&["a", "m", "z"]));
}

#[test]
fn del_then_recreate_does_not_resurrect_and_the_cleaner_removes_the_old_version() {
    let mut db = Db::new();
    db.w(|st| hset(st, b"h", &pairs(&[("old1", "1"), ("old2", "2")])).unwrap());
    db.del(b"h");
    assert_eq!(db.r(|v| hlen(v, b"h")), Ok(0));
    db.w(|st| hset(st, b"h", &pairs(&[("new", "1")])).unwrap());
    assert_eq!(db.r(|v| hkeys(v, b"h")), Ok(bs(&["new"])));
    assert_eq!(db.r(|v| hget(v, b"h", b"old1")), Ok(None));
    // Overwritten by a string, and a hash created again in the same batch as the DEL.
    db.w(|st| hset(st, b"g", &pairs(&[("x", "1")])).unwrap());
    db.set_string(b"g", b"str");
    db.w(|st| {
        st.del_data(b"h").unwrap();
        hset(st, b"h", &pairs(&[("newer", "1")])).unwrap();
    });
    assert_eq!(db.r(|v| hgetall(v, b"h")), Ok(pairs(&[("newer", "1")])));
    assert_eq!(db.count(Cf::Sub), 5);
    db.clean_all(1);
    assert_eq!(db.count(Cf::Sub), 1, "only the live field is left");
    assert_eq!(db.r(|v| hgetall(v, b"h")), Ok(pairs(&[("newer", "1")])));
}

#[test]
fn an_expired_hash_is_absent_and_recreated_with_a_new_version() {
    let mut db = Db::new();
    db.w(|st| hset(st, b"h", &pairs(&[("a", "1")])).unwrap());
    db.expire_at(b"h", NOW + 10);
    db.batch(NOW + 5, |st| assert_eq!(hlen(st, b"h"), Ok(1)));
    db.batch(NOW + 10, |st| {
        assert_eq!(hget(st, b"h", b"a"), Ok(None));
        assert_eq!(hset(st, b"h", &pairs(&[("b", "1")])), Ok(1));
        assert_eq!(hkeys(st, b"h"), Ok(bs(&["b"])));
    });
    assert_eq!(db.keys, 1, "overwriting an expired key keeps the count");
    // The new hash has no TTL: its expiry index entry went with the old one.
    db.batch(NOW + 100, |st| assert_eq!(hlen(st, b"h"), Ok(1)));
}

#[test]
fn operations_on_a_100k_field_hash_touch_a_constant_number_of_records() {
    let mut db = Db::new();
    for chunk in 0..10 {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..10_000)
            .map(|i| {
                (
                    format!("f{}", chunk * 10_000 + i).into_bytes(),
                    b"v".to_vec(),
                )
            })
            .collect();
        db.w(|st| hset(st, b"big", &fields).unwrap());
    }
    let few: Vec<(Vec<u8>, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i}").into_bytes(), b"v".to_vec()))
        .collect();
    db.w(|st| hset(st, b"small", &few).unwrap());
    let cost = |db: &mut Db, key: &[u8]| {
        db.w(|st| {
            let mut out = Vec::new();
            let mut probe = |st: &mut super::view::Staged, f: &dyn Fn(&mut super::view::Staged)| {
                st.stats().reset();
                f(st);
                out.push((st.stats().reads(), st.stats().writes()));
            };
            probe(st, &|st| drop(hset(st, key, &pairs(&[("new", "1")]))));
            probe(st, &|st| drop(hget(st, key, b"f5")));
            probe(st, &|st| drop(hincrby(st, key, b"n", 1)));
            probe(st, &|st| drop(hdel(st, key, &bs(&["new"]))));
            probe(st, &|st| drop(hlen(st, key)));
            probe(st, &|st| drop(hscan(st, key, None, 10, None)));
            out
        })
    };
    let big = cost(&mut db, b"big");
    let small = cost(&mut db, b"small");
    assert_eq!(big, small, "same records touched at 100k fields as at 20");
    assert!(big.iter().all(|&(r, w)| r <= 12 && w <= 3), "{big:?}");
    assert_eq!(db.r(|v| hlen(v, b"big")), Ok(100_001));
}

#[test]
fn hrandfield_counts_follow_redis() {
    let mut db = Db::new();
    let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..10)
        .map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    db.w(|st| hset(st, b"h", &fields).unwrap());
    let mut rng = super::Rng::new(9);
    db.r(|v| {
        let three = hrandfield(v, b"h", 3, &mut rng).unwrap();
        assert_eq!(three.len(), 3);
        assert!(
            three.iter().all(|p| fields.contains(p)),
            "values belong to their fields"
        );
        assert_eq!(
            sorted(hrandfield(v, b"h", 50, &mut rng).unwrap()),
            sorted(fields.clone())
        );
        assert_eq!(hrandfield(v, b"h", -30, &mut rng).unwrap().len(), 30);
        assert!(hrandfield(v, b"nokey", 5, &mut rng).unwrap().is_empty());
        let many = hrandfield(v, b"h", -3000, &mut rng).unwrap();
        let distinct: std::collections::BTreeSet<_> = many.iter().collect();
        assert_eq!(distinct.len(), 10, "every field comes up");
    });
}
