//! Bitmaps, HyperLogLog and LCS on a real 3-node cluster through the `redis` crate: every
//! command's replies as Redis 7.0 gives them (written through every node in turn), values
//! byte-identical on every node afterwards (each node reads its own replica after its
//! ReadIndex barrier), the WRONGTYPE rules, RESP2 / RESP3 shapes on the wire, and
//! HyperLogLog counts of 100k elements within 2% (equal to Redis's own) on every node.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use common::raw::read_until;
use common::Cluster;
use redis::{Connection, Value};

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&[u8]]) -> T {
    let mut c = redis::cmd(&String::from_utf8_lossy(args[0]));
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{:?}: {e}", text(args)))
}

fn text(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `q` with space-separated words.
fn w<T: redis::FromRedisValue>(con: &mut Connection, line: &str) -> T {
    let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    q(con, &words)
}

fn err(con: &mut Connection, line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut c = redis::cmd(words[0]);
    for a in &words[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
        Ok(v) => panic!("{line}: expected an error, got {v:?}"),
    }
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const BIT_KEYS: &[&str] = &["b", "f", "and", "or", "xor", "not", "a1", "a2", "z"];

/// Each key of [`BIT_KEYS`] as node `i` holds it (type and bytes).
fn dump(c: &Cluster, i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    let mut con = c.client(i);
    BIT_KEYS
        .iter()
        .map(|k| {
            let t: String = w(&mut con, &format!("TYPE {k}"));
            (t, w(&mut con, &format!("GET {k}")))
        })
        .collect()
}

/// SETBIT, BITFIELD and BITOP written through nodes 1, 2 and 3 in turn.
fn write_bitmaps(c: &Cluster) {
    let mut con: Vec<Connection> = (0..3).map(|i| c.client(i)).collect();
    let c0 = &mut con[0];
    assert_eq!(w::<i64>(c0, "SETBIT b 7 1"), 0);
    assert_eq!(w::<i64>(c0, "SETBIT b 7 1"), 1);
    assert_eq!(w::<i64>(c0, "SETBIT b 100 1"), 0);
    assert_eq!(w::<i64>(c0, "SETBIT z 31 0"), 0);
    assert_eq!(
        err(c0, "SETBIT b 4294967296 1"),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err(c0, "SETBIT b 1 2"),
        "ERR bit is not an integer or out of range"
    );
    let c1 = &mut con[1];
    let got: Vec<i64> = w(c1, "BITFIELD f INCRBY i5 100 1 GET u4 0 SET u8 #1 255");
    assert_eq!(got, [1, 0, 0]);
    let got: Vec<Option<i64>> = w(
        c1,
        "BITFIELD f OVERFLOW FAIL INCRBY u8 8 1 OVERFLOW SAT INCRBY u8 8 1 OVERFLOW WRAP INCRBY u8 8 2",
    );
    assert_eq!(got, [None, Some(255), Some(1)]);
    assert_eq!(
        err(c1, "BITFIELD f GET u64 0"),
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
    );
    let c2 = &mut con[2];
    q::<()>(c2, &[b"SET", b"a1", b"foobar"]);
    q::<()>(c2, &[b"SET", b"a2", b"abcdef\xff"]);
    assert_eq!(w::<i64>(c2, "BITOP AND and a1 a2"), 7);
    assert_eq!(w::<i64>(c2, "BITOP OR or a1 a2 nokey"), 7);
    assert_eq!(w::<i64>(c2, "BITOP XOR xor a1 a2"), 7);
    assert_eq!(w::<i64>(c2, "BITOP NOT not a1"), 6);
    assert_eq!(w::<i64>(c2, "BITOP OR gone nokey"), 0);
    assert_eq!(
        err(c2, "BITOP NOT not a1 a2"),
        "ERR BITOP NOT must be called with a single source key."
    );
}

/// The bitmap reads on node `i` answer like Redis for what [`write_bitmaps`] wrote.
fn check_bitmaps(c: &Cluster, i: usize) {
    let mut con = c.client(i);
    let con = &mut con;
    assert_eq!(w::<i64>(con, "GETBIT b 7"), 1);
    assert_eq!(w::<i64>(con, "GETBIT b 8"), 0);
    assert_eq!(w::<i64>(con, "STRLEN b"), 13);
    assert_eq!(w::<i64>(con, "BITCOUNT a1"), 26);
    assert_eq!(w::<i64>(con, "BITCOUNT a1 1 1"), 6);
    assert_eq!(w::<i64>(con, "BITCOUNT a1 5 30 BIT"), 17);
    assert_eq!(w::<i64>(con, "BITCOUNT a1 -2 -1 BYTE"), 7);
    assert_eq!(w::<i64>(con, "BITCOUNT nokey 0 x"), 0);
    assert_eq!(w::<i64>(con, "BITPOS b 1"), 7);
    assert_eq!(w::<i64>(con, "BITPOS b 1 1"), 100);
    assert_eq!(w::<i64>(con, "BITPOS b 1 8 99 BIT"), -1);
    assert_eq!(w::<i64>(con, "BITPOS z 0"), 0);
    assert_eq!(w::<i64>(con, "BITPOS z 1"), -1);
    assert_eq!(w::<i64>(con, "BITPOS nokey 0"), 0);
    assert_eq!(w::<i64>(con, "BITPOS nokey 1"), -1);
    assert_eq!(
        err(con, "BITPOS b 2"),
        "ERR The bit argument must be 1 or 0."
    );
    let got: Vec<i64> = w(con, "BITFIELD_RO f GET u8 8 GET i5 100 GET u8 #100");
    assert_eq!(got, [1, 1, 0]);
    assert_eq!(
        err(con, "BITFIELD_RO f SET u8 0 1"),
        "ERR BITFIELD_RO only supports the GET subcommand"
    );
    assert_eq!(w::<Vec<u8>>(con, "GET and"), b"`bc`ab\x00");
    assert_eq!(w::<i64>(con, "EXISTS gone"), 0);
    assert_eq!(w::<String>(con, "TYPE f"), "string");
}

/// LCS on node `i` (keys written by [`bitmaps_hll_and_lcs_replicate_identically`]).
fn check_lcs(c: &Cluster, i: usize) {
    let mut con = c.client(i);
    let con = &mut con;
    assert_eq!(w::<String>(con, "LCS k1 k2"), "mytext");
    assert_eq!(w::<i64>(con, "LCS k1 k2 LEN"), 6);
    let idx: Value = w(con, "LCS k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN");
    let range = |a: i64, b: i64| Value::Array(vec![Value::Int(a), Value::Int(b)]);
    let want = Value::Array(vec![
        Value::BulkString(b"matches".to_vec()),
        Value::Array(vec![Value::Array(vec![
            range(4, 7),
            range(5, 8),
            Value::Int(4),
        ])]),
        Value::BulkString(b"len".to_vec()),
        Value::Int(6),
    ]);
    assert_eq!(idx, want);
    assert_eq!(
        err(con, "LCS k1 k2 LEN IDX"),
        "ERR If you want both the length and indexes, please just use IDX."
    );
}

/// Every bitmap command against a list, a hash and a set; HyperLogLog and LCS errors.
fn check_wrong_types(c: &Cluster, i: usize) {
    let mut con = c.client(i);
    let con = &mut con;
    for key in ["list", "hash", "set"] {
        for cmd in [
            "SETBIT {} 1 1",
            "GETBIT {} 1",
            "BITCOUNT {}",
            "BITCOUNT {} 0 x",
            "BITPOS {} 1",
            "BITOP AND d a1 {}",
            "BITFIELD {} GET u8 0",
            "BITFIELD {} SET u8 0 1",
            "BITFIELD_RO {} GET u8 0",
            "PFADD {} x",
            "PFCOUNT {}",
            "PFMERGE d2 {}",
        ] {
            let line = cmd.replace("{}", key);
            assert_eq!(err(con, &line), WRONGTYPE, "{line}");
        }
        assert_eq!(
            err(con, &format!("LCS a1 {key}")),
            "ERR The specified keys must contain string values"
        );
    }
    let not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    assert_eq!(err(con, "PFADD a1 x"), not_hll);
    assert_eq!(err(con, "PFCOUNT h1 a1"), not_hll);
    assert_eq!(err(con, "PFMERGE a1 h1"), not_hll);
    // Nothing was created by the refused commands.
    assert_eq!(w::<i64>(con, "EXISTS d d2"), 0);
}

#[test]
fn bitmaps_hll_and_lcs_replicate_identically() {
    let c = Cluster::start(3);
    write_bitmaps(&c);
    let mut c0 = c.client(0);
    w::<()>(&mut c0, "SET k1 ohmytext");
    w::<()>(&mut c0, "SET k2 mynewtext");
    w::<()>(&mut c0, "RPUSH list x");
    w::<()>(&mut c0, "HSET hash f v");
    w::<()>(&mut c0, "SADD set m");
    w::<()>(&mut c0, "PFADD h1 a b c");
    let want = dump(&c, 0);
    assert!(want.iter().all(|(t, _)| t == "string"), "{want:?}");
    for i in 0..3 {
        assert_eq!(dump(&c, i), want, "node {}", i + 1);
        check_bitmaps(&c, i);
        check_lcs(&c, i);
        check_wrong_types(&c, i);
    }
    resp_shapes(&c, 2);
}

/// LCS IDX (a map) and a failed BITFIELD field (a null) in RESP2 and RESP3, byte for byte
/// as Redis 7.0 sends them, on node `i` (a follower or the leader alike).
fn resp_shapes(c: &Cluster, i: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", c.port(i))).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let cmds: &[u8] = b"LCS k1 k2 IDX MINMATCHLEN 2 WITHMATCHLEN\r\nBITFIELD bf OVERFLOW FAIL INCRBY u2 0 5 GET u2 0\r\nPING\r\n";
    let body: &[u8] = b"matches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n*2\r\n";
    s.write_all(cmds).expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want2 = [&b"*4\r\n$7\r\n"[..], body, b"$-1\r\n:0\r\n+PONG\r\n"].concat();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want2)
    );
    s.write_all(&[&b"HELLO 3\r\n"[..], cmds].concat())
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want3 = [&b"%2\r\n$7\r\n"[..], body, b"_\r\n:0\r\n+PONG\r\n"].concat();
    assert!(got.ends_with(&want3), "{:?}", String::from_utf8_lossy(&got));
}

/// PFADD of `elements` in pipelined batches of 1000 through `con`.
fn pfadd_all(con: &mut Connection, key: &str, elements: impl Iterator<Item = String>) {
    let all: Vec<String> = elements.collect();
    for batch in all.chunks(10_000) {
        let mut p = redis::pipe();
        for chunk in batch.chunks(1000) {
            p.cmd("PFADD").arg(key).arg(chunk).ignore();
        }
        p.query::<()>(con).expect("PFADD pipeline");
    }
}

#[test]
fn hyperloglog_counts_within_two_percent_on_every_node() {
    let c = Cluster::start(3);
    let mut c0 = c.client(0);
    let mut c1 = c.client(1);
    pfadd_all(&mut c0, "h1", (0..100_000).map(|i| format!("element:{i}")));
    pfadd_all(
        &mut c1,
        "h2",
        (50_000..150_000).map(|i| format!("element:{i}")),
    );
    assert_eq!(w::<i64>(&mut c1, "PFADD h2 element:50000"), 0);
    assert_eq!(w::<i64>(&mut c1, "PFADD empty"), 1);
    let mut c2 = c.client(2);
    assert_eq!(w::<String>(&mut c2, "PFMERGE u h1 h2"), "OK");
    assert_eq!(w::<String>(&mut c2, "PFMERGE u2 h1 h2 nokey"), "OK");
    let keys = ["h1", "h2", "u", "u2", "empty"];
    let sketch = |i: usize| -> Vec<Vec<u8>> {
        let mut con = c.client(i);
        keys.iter()
            .map(|k| w(&mut con, &format!("GET {k}")))
            .collect()
    };
    let want = sketch(0);
    assert!(want
        .iter()
        .all(|v| v.len() == 12304 && v.starts_with(b"HYLL")));
    for i in 0..3 {
        assert_eq!(sketch(i), want, "node {}", i + 1);
        let mut con = c.client(i);
        // Redis 7.0 counts exactly these for the same elements.
        assert_eq!(w::<i64>(&mut con, "PFCOUNT h1"), 100_039);
        assert_eq!(w::<i64>(&mut con, "PFCOUNT h2"), 99_682);
        assert_eq!(w::<i64>(&mut con, "PFCOUNT h1 h2"), 148_311);
        assert_eq!(w::<i64>(&mut con, "PFCOUNT u"), 148_311);
        assert_eq!(w::<i64>(&mut con, "PFCOUNT empty"), 0);
        assert_eq!(w::<i64>(&mut con, "PFCOUNT nokey"), 0);
        for (key, n) in [("h1", 100_000.0), ("u", 150_000.0)] {
            let got: i64 = w(&mut con, &format!("PFCOUNT {key}"));
            assert!((got as f64 - n).abs() / n < 0.02, "{key}: {got}");
        }
    }
}
