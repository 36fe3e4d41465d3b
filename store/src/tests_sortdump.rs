//! Unit tests of SORT / SORT_RO and DUMP / RESTORE through the store: Redis's examples
//! (numeric, ALPHA, LIMIT, BY weights and hash fields, `nosort`, GET `#`, STORE), its
//! errors, and a DUMP → RESTORE round trip of every type with TTLs.

use super::*;
use crate::tests_coll::{bulk, T, WRONGTYPE_ERR};
use bytes::Bytes;

fn bulks(v: &[&str]) -> Reply {
    Reply::Array(v.iter().map(|s| bulk(s)).collect())
}

fn argv(words: &[&[u8]]) -> Command {
    let a: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w)).collect();
    Command::parse_replicated(&a).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn sort_numeric_alpha_limit() {
    let mut t = T::new();
    t.w("RPUSH l 3 1 2 10");
    assert_eq!(t.r("SORT l"), bulks(&["1", "2", "3", "10"]));
    assert_eq!(t.r("SORT_RO l DESC"), bulks(&["10", "3", "2", "1"]));
    assert_eq!(t.r("SORT l ALPHA"), bulks(&["1", "10", "2", "3"]));
    assert_eq!(t.r("SORT l LIMIT 1 2"), bulks(&["2", "3"]));
    assert_eq!(t.r("SORT l LIMIT 10 2"), bulks(&[]));
    assert_eq!(t.r("SORT l LIMIT -1 1"), bulks(&["1"]));
    assert_eq!(t.r("SORT nokey"), bulks(&[]));
    t.w("RPUSH words banana apple");
    assert_eq!(
        t.r("SORT words"),
        Reply::err("ERR One or more scores can't be converted into double")
    );
    assert_eq!(t.r("SORT words ALPHA"), bulks(&["apple", "banana"]));
    // Equal scores sort by the element's bytes.
    t.w("SADD s 1.0 1 01 -inf");
    assert_eq!(t.r("SORT s"), bulks(&["-inf", "01", "1", "1.0"]));
    t.w("ZADD z 1 c 2 b 3 a");
    assert_eq!(t.r("SORT z ALPHA"), bulks(&["a", "b", "c"]));
    assert_eq!(t.r("SORT z BY nosort"), bulks(&["c", "b", "a"]));
    assert_eq!(t.r("SORT z BY nosort DESC LIMIT 0 2"), bulks(&["a", "b"]));
    t.w("SET str x");
    t.w("HSET h f v");
    assert_eq!(t.r("SORT str"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.r("SORT h"), Reply::err(WRONGTYPE_ERR));
}

#[test]
fn sort_by_and_get_patterns() {
    let mut t = T::new();
    t.w("RPUSH {u}ids 1 2 3");
    t.w("MSET {u}w_1 30 {u}w_2 10 {u}w_3 20 {u}name_1 ann {u}name_2 bob");
    t.w("HSET {u}h_1 age 5");
    t.w("HSET {u}h_2 age 7");
    assert_eq!(t.r("SORT {u}ids BY {u}w_*"), bulks(&["2", "3", "1"]));
    assert_eq!(
        t.r("SORT {u}ids BY {u}w_* GET # GET {u}name_*"),
        Reply::Array(vec![
            bulk("2"),
            bulk("bob"),
            bulk("3"),
            Reply::Nil,
            bulk("1"),
            bulk("ann"),
        ])
    );
    // A missing BY key sorts as 0; a hash field by `->`.
    assert_eq!(
        t.r("SORT {u}ids BY {u}h_*->age DESC"),
        bulks(&["2", "1", "3"])
    );
    assert_eq!(
        t.r("SORT {u}ids BY {u}w_* GET {u}h_*->age LIMIT 0 2"),
        Reply::Array(vec![bulk("7"), Reply::Nil])
    );
    // ALPHA BY: missing values first.
    assert_eq!(
        t.r("SORT {u}ids BY {u}name_* ALPHA"),
        bulks(&["3", "1", "2"])
    );
    assert_eq!(t.r("SORT {u}ids BY nosort DESC"), bulks(&["3", "2", "1"]));
    t.w("SET {u}w_2 abc");
    assert_eq!(
        t.r("SORT {u}ids BY {u}w_*"),
        Reply::err("ERR One or more scores can't be converted into double")
    );
}

#[test]
fn sort_store_writes_a_list() {
    let mut t = T::new();
    t.w("SADD {s}set c a b");
    assert_eq!(t.w("SORT {s}set ALPHA STORE {s}out"), Reply::Int(3));
    assert_eq!(t.r("LRANGE {s}out 0 -1"), bulks(&["a", "b", "c"]));
    // BY a constant with STORE sorts a set ALPHA (replicas agree whatever the set order).
    assert_eq!(t.w("SORT {s}set BY nosort STORE {s}out"), Reply::Int(3));
    assert_eq!(t.r("LRANGE {s}out 0 -1"), bulks(&["a", "b", "c"]));
    // GET values that are missing are stored as empty strings.
    assert_eq!(
        t.w("SORT {s}set ALPHA GET {s}x_* GET # STORE {s}out"),
        Reply::Int(6)
    );
    assert_eq!(t.r("LRANGE {s}out 0 1"), bulks(&["", "a"]));
    // An empty result deletes the destination.
    assert_eq!(t.w("SORT {s}none STORE {s}out"), Reply::Int(0));
    assert_eq!(t.r("EXISTS {s}out"), Reply::Int(0));
    t.w("SET str x");
    assert_eq!(t.w("SORT str STORE {s}out"), Reply::err(WRONGTYPE_ERR));
}

/// The payload DUMP gives for `key`.
fn dump(t: &T, key: &str) -> Vec<u8> {
    match t.r(&format!("DUMP {key}")) {
        Reply::Bulk(b) => b.to_vec(),
        other => panic!("DUMP {key}: {other:?}"),
    }
}

#[test]
fn dump_restore_every_type() {
    let mut t = T::new();
    t.batch(&[
        "SET s hello",
        "HSET h f1 v1 f2 v2",
        "RPUSH l a b a",
        "SADD st x y",
        "ZADD z 1.5 m -2 n",
    ]);
    let reads = [
        ("s", "GET"),
        ("h", "HMGET"),
        ("l", "LRANGE"),
        ("st", "SMEMBERS"),
        ("z", "ZRANGE"),
    ];
    for (key, read) in reads {
        let payload = dump(&t, key);
        let copy = format!("{key}-copy");
        let restore = argv(&[b"RESTORE", copy.as_bytes(), b"5000", &payload]);
        assert_eq!(t.apply(&restore), Reply::ok(), "{key}");
        let q = |k: &str| match read {
            "LRANGE" => format!("LRANGE {k} 0 -1"),
            "ZRANGE" => format!("ZRANGE {k} 0 -1 WITHSCORES"),
            // Member order is the stored hash order: compare sorted / by field.
            "HMGET" => format!("HMGET {k} f1 f2 f3"),
            "SMEMBERS" => format!("SORT {k} ALPHA"),
            _ => format!("{read} {k}"),
        };
        assert_eq!(t.r(&q(key)), t.r(&q(&copy)), "{key}");
        assert_eq!(t.r(&format!("PTTL {copy}")), Reply::Int(5000), "{key}");
        assert_eq!(t.r(&format!("TYPE {key}")), t.r(&format!("TYPE {copy}")));
    }
    assert_eq!(t.r("DUMP nokey"), Reply::Nil);
}

#[test]
fn restore_errors_and_options_as_redis() {
    let mut t = T::new();
    t.w("SET s v");
    let p = dump(&t, "s");
    let busy = Reply::err("BUSYKEY Target key name already exists.");
    assert_eq!(t.apply(&argv(&[b"RESTORE", b"s", b"0", &p])), busy);
    // BUSYKEY comes before the TTL check, as in Redis.
    assert_eq!(t.apply(&argv(&[b"RESTORE", b"s", b"x", &p])), busy);
    assert_eq!(
        t.apply(&argv(&[b"RESTORE", b"n", b"x", &p])),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.apply(&argv(&[b"RESTORE", b"n", b"-1", &p])),
        Reply::err("ERR Invalid TTL value, must be >= 0")
    );
    let mut bad = p.clone();
    bad[2] ^= 0xff;
    assert_eq!(
        t.apply(&argv(&[b"RESTORE", b"n", b"0", &bad])),
        Reply::err("ERR DUMP payload version or checksum are wrong")
    );
    t.w("RPUSH l a");
    let lp = dump(&t, "l");
    let replace = argv(&[b"RESTORE", b"s", b"0", &lp, b"REPLACE"]);
    assert_eq!(t.apply(&replace), Reply::ok());
    assert_eq!(t.r("TYPE s"), Reply::Status("list".into()));
    // ABSTTL in the past: the key is replaced by nothing.
    let past = argv(&[b"RESTORE", b"s", b"500", &p, b"REPLACE", b"ABSTTL"]);
    assert_eq!(t.apply(&past), Reply::ok());
    assert_eq!(t.r("EXISTS s"), Reply::Int(0));
    let abs = argv(&[b"RESTORE", b"s", b"9000", &p, b"ABSTTL", b"IDLETIME", b"3"]);
    assert_eq!(t.apply(&abs), Reply::ok());
    assert_eq!(t.r("PEXPIRETIME s"), Reply::Int(9000));
    assert_eq!(t.r("GET s"), bulk("v"));
}
