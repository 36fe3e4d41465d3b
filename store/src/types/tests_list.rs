//! Tests of lists: Redis's index rules, pops with counts, LSET/LTRIM/LINSERT/LREM, WRONGTYPE,
//! DEL then re-create, and the cost of operations on a 100k-element list.

use super::list::*;
use super::testutil::{bs, Db};
use super::{hash, Cf, Error};

fn filled(items: &[&str]) -> Db {
    let mut db = Db::new();
    db.w(|st| push(st, b"l", End::Right, &bs(items), false).unwrap());
    db
}

fn all(db: &Db) -> Vec<Vec<u8>> {
    db.r(|v| lrange(v, b"l", 0, -1).unwrap())
}

#[test]
fn pushes_keep_redis_order_and_pushx_needs_a_list() {
    let mut db = Db::new();
    assert_eq!(
        db.w(|st| push(st, b"l", End::Left, &bs(&["a", "b"]), false)),
        Ok(2)
    );
    assert_eq!(
        db.w(|st| push(st, b"l", End::Right, &bs(&["c"]), false)),
        Ok(3)
    );
    assert_eq!(all(&db), bs(&["b", "a", "c"]));
    assert_eq!(
        db.w(|st| push(st, b"nx", End::Left, &bs(&["a"]), true)),
        Ok(0)
    );
    assert_eq!(db.r(|v| llen(v, b"nx")), Ok(0));
    assert_eq!(
        db.w(|st| push(st, b"l", End::Right, &bs(&["d"]), true)),
        Ok(4)
    );
}

#[test]
fn lrange_and_lindex_follow_redis_index_rules() {
    let db = filled(&["a", "b", "c", "d", "e"]);
    db.r(|v| {
        assert_eq!(lrange(v, b"l", 1, 2).unwrap(), bs(&["b", "c"]));
        assert_eq!(lrange(v, b"l", -2, -1).unwrap(), bs(&["d", "e"]));
        assert_eq!(
            lrange(v, b"l", -100, 100).unwrap(),
            bs(&["a", "b", "c", "d", "e"])
        );
        assert!(lrange(v, b"l", 3, 1).unwrap().is_empty());
        assert!(lrange(v, b"l", 5, 10).unwrap().is_empty());
        assert!(lrange(v, b"l", 0, -6).unwrap().is_empty());
        assert!(lrange(v, b"nokey", 0, -1).unwrap().is_empty());
        assert_eq!(lindex(v, b"l", 0).unwrap(), Some(b"a".to_vec()));
        assert_eq!(lindex(v, b"l", -1).unwrap(), Some(b"e".to_vec()));
        assert_eq!(lindex(v, b"l", 5).unwrap(), None);
        assert_eq!(lindex(v, b"l", -6).unwrap(), None);
        assert_eq!(lindex(v, b"l", i64::MIN).unwrap(), None);
        assert_eq!(llen(v, b"l").unwrap(), 5);
    });
}

#[test]
fn pops_with_counts_and_the_last_pop_deletes_the_key() {
    let mut db = filled(&["a", "b", "c", "d", "e"]);
    assert_eq!(db.w(|st| pop(st, b"l", End::Left, 1)), Ok(Some(bs(&["a"]))));
    assert_eq!(
        db.w(|st| pop(st, b"l", End::Right, 2)),
        Ok(Some(bs(&["e", "d"])))
    );
    assert_eq!(db.w(|st| pop(st, b"l", End::Left, 0)), Ok(Some(vec![])));
    assert_eq!(db.w(|st| pop(st, b"nokey", End::Left, 1)), Ok(None));
    assert_eq!(
        db.w(|st| pop(st, b"l", End::Left, 10)),
        Ok(Some(bs(&["b", "c"])))
    );
    assert_eq!(db.w(|st| pop(st, b"l", End::Left, 1)), Ok(None));
    assert_eq!((db.keys, db.count(Cf::Data), db.count(Cf::Sub)), (0, 0, 0));
}

#[test]
fn lset_errors_and_overwrites() {
    let mut db = filled(&["a", "b"]);
    assert_eq!(db.w(|st| lset(st, b"l", -1, b"B")), Ok(()));
    assert_eq!(
        db.w(|st| lset(st, b"l", 2, b"x")),
        Err(Error::IndexOutOfRange)
    );
    assert_eq!(
        db.w(|st| lset(st, b"nokey", 0, b"x")),
        Err(Error::NoSuchKey)
    );
    assert_eq!(Error::IndexOutOfRange.to_string(), "ERR index out of range");
    assert_eq!(Error::NoSuchKey.to_string(), "ERR no such key");
    assert_eq!(all(&db), bs(&["a", "B"]));
}

#[test]
fn ltrim_keeps_the_range_and_an_empty_range_deletes_the_key() {
    let mut db = filled(&["a", "b", "c", "d", "e"]);
    db.w(|st| ltrim(st, b"l", 1, -2).unwrap());
    assert_eq!(all(&db), bs(&["b", "c", "d"]));
    db.w(|st| ltrim(st, b"l", -100, 100).unwrap());
    assert_eq!(all(&db), bs(&["b", "c", "d"]));
    assert_eq!(db.count(Cf::Sub), 3);
    db.w(|st| ltrim(st, b"l", 2, 1).unwrap());
    assert_eq!((db.keys, db.count(Cf::Sub)), (0, 0));
    db.w(|st| ltrim(st, b"nokey", 0, 1).unwrap());
}

#[test]
fn linsert_before_and_after_shifting_either_side() {
    let mut db = filled(&["a", "b", "c", "d", "e"]);
    assert_eq!(db.w(|st| linsert(st, b"l", true, b"b", b"x")), Ok(6));
    assert_eq!(db.w(|st| linsert(st, b"l", false, b"d", b"y")), Ok(7));
    assert_eq!(all(&db), bs(&["a", "x", "b", "c", "d", "y", "e"]));
    assert_eq!(db.w(|st| linsert(st, b"l", false, b"e", b"z")), Ok(8));
    assert_eq!(db.w(|st| linsert(st, b"l", true, b"a", b"w")), Ok(9));
    assert_eq!(all(&db), bs(&["w", "a", "x", "b", "c", "d", "y", "e", "z"]));
    assert_eq!(db.w(|st| linsert(st, b"l", true, b"nope", b"q")), Ok(-1));
    assert_eq!(db.w(|st| linsert(st, b"nokey", true, b"a", b"q")), Ok(0));
    assert_eq!(db.r(|v| lindex(v, b"l", 4)), Ok(Some(b"c".to_vec())));
    assert_eq!(db.count(Cf::Sub), 9);
}

#[test]
fn lrem_from_head_tail_and_all() {
    let items = ["x", "a", "x", "b", "x", "c", "x"];
    let mut db = filled(&items);
    assert_eq!(db.w(|st| lrem(st, b"l", 2, b"x")), Ok(2));
    assert_eq!(all(&db), bs(&["a", "b", "x", "c", "x"]));
    assert_eq!(db.w(|st| lrem(st, b"l", -1, b"x")), Ok(1));
    assert_eq!(all(&db), bs(&["a", "b", "x", "c"]));
    assert_eq!(db.w(|st| lrem(st, b"l", 0, b"x")), Ok(1));
    assert_eq!(all(&db), bs(&["a", "b", "c"]));
    assert_eq!(db.w(|st| lrem(st, b"l", 0, b"q")), Ok(0));
    assert_eq!(db.count(Cf::Sub), 3);
    assert_eq!(db.r(|v| lindex(v, b"l", -1)), Ok(Some(b"c".to_vec())));
    assert_eq!(db.w(|st| lrem(st, b"l", 0, b"a")), Ok(1));
    assert_eq!(db.w(|st| lrem(st, b"l", -5, b"b")), Ok(1));
    assert_eq!(db.w(|st| lrem(st, b"l", 1, b"c")), Ok(1));
    assert_eq!((db.keys, db.count(Cf::Sub)), (0, 0));
}

#[test]
fn wrong_type_against_strings_and_hashes() {
    let mut db = Db::new();
    db.set_string(b"s", b"v");
    db.w(|st| hash::hset(st, b"h", &[(b"f", b"v")]).unwrap());
    for key in [&b"s"[..], b"h"] {
        assert_eq!(
            db.w(|st| push(st, key, End::Left, &bs(&["a"]), false)),
            Err(Error::WrongType)
        );
        assert_eq!(db.w(|st| pop(st, key, End::Left, 1)), Err(Error::WrongType));
        assert_eq!(db.r(|v| lrange(v, key, 0, -1)), Err(Error::WrongType));
        assert_eq!(db.r(|v| llen(v, key)), Err(Error::WrongType));
    }
}

#[test]
fn del_then_recreate_starts_empty_and_the_cleaner_removes_old_elements() {
    let mut db = filled(&["a", "b", "c"]);
    db.del(b"l");
    db.w(|st| push(st, b"l", End::Left, &bs(&["new"]), false).unwrap());
    assert_eq!(all(&db), bs(&["new"]));
    assert_eq!(db.r(|v| lindex(v, b"l", 1)), Ok(None));
    assert_eq!(db.count(Cf::Sub), 4);
    db.clean_all(10);
    assert_eq!(db.count(Cf::Sub), 1);
}

#[test]
fn a_queue_of_one_batch_sees_its_own_pushes_and_pops() {
    let mut db = Db::new();
    let popped = db.w(|st| {
        push(st, b"q", End::Right, &bs(&["1", "2"]), false).unwrap();
        let a = pop(st, b"q", End::Left, 1).unwrap();
        push(st, b"q", End::Right, &bs(&["3"]), false).unwrap();
        let b = pop(st, b"q", End::Left, 5).unwrap();
        (a, b)
    });
    assert_eq!(popped, (Some(bs(&["1"])), Some(bs(&["2", "3"]))));
    assert_eq!(db.keys, 0);
}

#[test]
fn operations_on_a_100k_element_list_touch_a_constant_number_of_records() {
    let mut db = Db::new();
    let chunk: Vec<Vec<u8>> = (0..10_000).map(|i| format!("e{i}").into_bytes()).collect();
    for _ in 0..10 {
        db.w(|st| push(st, b"big", End::Right, &chunk, false).unwrap());
    }
    db.w(|st| push(st, b"small", End::Right, &chunk[..20], false).unwrap());
    let cost = |db: &mut Db, key: &[u8]| {
        db.w(|st| {
            let mut out = Vec::new();
            let mut probe = |st: &mut super::view::Staged, f: &dyn Fn(&mut super::view::Staged)| {
                st.stats().reset();
                f(st);
                out.push((st.stats().reads(), st.stats().writes()));
            };
            probe(st, &|st| drop(push(st, key, End::Left, &bs(&["x"]), false)));
            probe(st, &|st| {
                drop(push(st, key, End::Right, &bs(&["y"]), false))
            });
            probe(st, &|st| drop(pop(st, key, End::Left, 1)));
            probe(st, &|st| drop(pop(st, key, End::Right, 3)));
            probe(st, &|st| drop(lindex(st, key, -5)));
            probe(st, &|st| drop(lset(st, key, 7, b"z")));
            probe(st, &|st| drop(lrange(st, key, -10, -1)));
            probe(st, &|st| drop(ltrim(st, key, 1, -2)));
            out
        })
    };
    let big = cost(&mut db, b"big");
    let small = cost(&mut db, b"small");
    assert_eq!(big, small, "same records touched at 100k elements as at 20");
    assert!(big.iter().all(|&(r, w)| r <= 12 && w <= 4), "{big:?}");
    assert_eq!(db.r(|v| llen(v, b"big")), Ok(100_000 + 2 - 4 - 2));
}

#[test]
fn lmove_pops_and_pushes_and_rotates_one_list() {
    let mut db = filled(&["a", "b", "c"]);
    let mv = |db: &mut Db, s: &[u8], d: &[u8], f, t| db.w(|st| lmove(st, s, d, f, t));
    assert_eq!(
        mv(&mut db, b"l", b"l", End::Right, End::Left),
        Ok(Some(b"c".to_vec()))
    );
    assert_eq!(all(&db), bs(&["c", "a", "b"]));
    assert_eq!(
        mv(&mut db, b"l", b"d", End::Left, End::Right),
        Ok(Some(b"c".to_vec()))
    );
    assert_eq!(
        mv(&mut db, b"l", b"d", End::Left, End::Right),
        Ok(Some(b"a".to_vec()))
    );
    assert_eq!(db.r(|v| lrange(v, b"d", 0, -1)), Ok(bs(&["c", "a"])));
    db.set_string(b"s", b"v");
    assert_eq!(
        mv(&mut db, b"nokey", b"s", End::Left, End::Left),
        Ok(None),
        "nil before dst's type"
    );
    assert_eq!(
        mv(&mut db, b"l", b"s", End::Left, End::Left),
        Err(Error::WrongType)
    );
    assert_eq!(all(&db), bs(&["b"]), "nothing popped on WRONGTYPE");
    assert_eq!(
        mv(&mut db, b"l", b"d", End::Left, End::Left),
        Ok(Some(b"b".to_vec()))
    );
    assert_eq!(db.r(|v| llen(v, b"l")), Ok(0));
}

#[test]
fn lpos_with_rank_count_and_maxlen() {
    let db = filled(&["a", "b", "c", "1", "2", "3", "c", "c"]);
    db.r(|v| {
        assert_eq!(lpos(v, b"l", b"c", 1, 1, 0).unwrap(), vec![2]);
        assert_eq!(lpos(v, b"l", b"c", 2, 1, 0).unwrap(), vec![6]);
        assert_eq!(lpos(v, b"l", b"c", -1, 1, 0).unwrap(), vec![7]);
        assert_eq!(lpos(v, b"l", b"c", 1, 0, 0).unwrap(), vec![2, 6, 7]);
        assert_eq!(lpos(v, b"l", b"c", -1, 2, 0).unwrap(), vec![7, 6]);
        assert_eq!(lpos(v, b"l", b"c", 1, 0, 3).unwrap(), vec![2]);
        assert_eq!(lpos(v, b"l", b"c", -1, 0, 1).unwrap(), vec![7]);
        assert!(lpos(v, b"l", b"zz", 1, 0, 0).unwrap().is_empty());
        assert!(lpos(v, b"nokey", b"c", 1, 0, 0).unwrap().is_empty());
    });
}

#[test]
fn ltrim_of_a_long_list_costs_two_range_deletes_and_later_pushes_reuse_the_space() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..1000).map(|i| format!("e{i}").into_bytes()).collect();
    db.w(|st| push(st, b"l", End::Right, &items, false).unwrap());
    let (writes, after) = db.w(|st| {
        st.stats().reset();
        ltrim(st, b"l", 400, 409).unwrap();
        let writes = st.stats().writes();
        // In the same batch: pushes reuse trimmed sequences, reads see only live ones.
        push(st, b"l", End::Left, &bs(&["L"]), false).unwrap();
        push(st, b"l", End::Right, &bs(&["R"]), false).unwrap();
        (writes, lrange(st, b"l", 0, -1).unwrap())
    });
    assert_eq!(writes, 3, "two range deletes and the metadata");
    let mut want = bs(&["L"]);
    want.extend(items[400..410].iter().cloned());
    want.push(b"R".to_vec());
    assert_eq!(after, want);
    assert_eq!(all(&db), want);
    assert_eq!(db.count(Cf::Sub), 12);
    // The trimmed span was deleted for good: popping everything leaves nothing behind.
    db.w(|st| pop(st, b"l", End::Left, 100).unwrap());
    assert_eq!(db.count(Cf::Sub), 0);
}

#[test]
fn lrange_shared_returns_what_lrange_does_as_slices_of_one_buffer() {
    let items: Vec<String> = (0..40)
        .map(|i| "x".repeat(i % 7) + &i.to_string())
        .collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let mut db = filled(&refs);
    // A popped head: the range starts past sequence `head`, in the middle of the records.
    db.w(|st| pop(st, b"l", End::Left, 1).unwrap());
    db.w(|st| push(st, b"l", End::Left, &bs(&["", "new"]), false).unwrap());
    db.r(|v| {
        for (a, b) in [
            (0, -1),
            (0, 3),
            (1, 2),
            (-5, -1),
            (3, 30),
            (-100, 100),
            (5, 2),
            (50, 60),
        ] {
            let shared = lrange_shared(v, b"l", a, b).unwrap();
            let plain = lrange(v, b"l", a, b).unwrap();
            let shared: Vec<Vec<u8>> = shared.iter().map(|b| b.to_vec()).collect();
            assert_eq!(shared, plain, "{a} {b}");
        }
        assert_eq!(
            lrange_shared(v, b"nope", 0, -1).unwrap(),
            Vec::<bytes::Bytes>::new()
        );
        assert_eq!(
            lrange_shared(v, b"l", 0, 1).unwrap()[0],
            bytes::Bytes::from("new")
        );
    });
    db.w(|st| hash::hset(st, b"h", &[(b"f".to_vec(), b"v".to_vec())]).unwrap());
    assert_eq!(
        db.r(|v| lrange_shared(v, b"h", 0, -1)),
        Err(Error::WrongType)
    );
}
