//! Hashes, lists, sets and sorted sets on a real 3-node cluster through the `redis` crate:
//! every family's main commands with Redis's replies, written through every node and read
//! back identical on every node; after a kill -9 and restart, and after a catch-up by
//! snapshot; the WRONGTYPE matrix; RESP3 reply shapes.

mod common;

use std::io::{BufRead as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::read_until;
use common::{wait_for, Cluster};
use redis::Connection;

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn q_err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
        Ok(v) => panic!("{args:?}: expected an error, got {v:?}"),
    }
}

/// A key's whole content as text, whatever its type (hash and set contents sorted).
fn dump(con: &mut Connection, key: &str) -> String {
    let typ: String = q(con, &["TYPE", key]);
    let body = match typ.as_str() {
        "string" => q::<String>(con, &["GET", key]),
        "list" => q::<Vec<String>>(con, &["LRANGE", key, "0", "-1"]).join(","),
        "zset" => q::<Vec<String>>(con, &["ZRANGE", key, "0", "-1", "WITHSCORES"]).join(","),
        "set" => {
            let mut m: Vec<String> = q(con, &["SMEMBERS", key]);
            m.sort();
            m.join(",")
        }
        "hash" => {
            let flat: Vec<String> = q(con, &["HGETALL", key]);
            let mut pairs: Vec<String> = flat.chunks(2).map(|p| p.join("=")).collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => String::new(),
    };
    format!("{typ}:{body}")
}

const KEYS: &[&str] = &[
    "h", "l", "s", "z", "zs", "sd", "str", "renamed", "popped", "queue",
];

/// Every key of [`KEYS`] on node `i`.
fn dump_all(c: &Cluster, i: usize) -> Vec<String> {
    let mut con = c.client(i);
    KEYS.iter().map(|k| dump(&mut con, k)).collect()
}

/// Writes every family, each through another of the `live` nodes, checking the replies.
fn write_families(c: &Cluster, live: &[usize]) {
    let mut con: Vec<Connection> = (0..3).map(|i| c.client(live[i % live.len()])).collect();
    let c0 = &mut con[0];
    assert_eq!(q::<i64>(c0, &["HSET", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(q::<i64>(c0, &["HSET", "h", "a", "9", "c", "3"]), 1);
    assert_eq!(q::<String>(c0, &["HMSET", "h", "d", "4"]), "OK");
    assert_eq!(q::<i64>(c0, &["HSETNX", "h", "a", "x"]), 0);
    assert_eq!(q::<i64>(c0, &["HINCRBY", "h", "b", "40"]), 42);
    assert_eq!(q::<String>(c0, &["HINCRBYFLOAT", "h", "e", "1.1"]), "1.1");
    assert_eq!(q::<i64>(c0, &["HDEL", "h", "d", "nope"]), 1);
    let c1 = &mut con[1];
    assert_eq!(q::<i64>(c1, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(c1, &["LPUSH", "l", "z"]), 4);
    assert_eq!(q::<i64>(c1, &["LPUSHX", "nolist", "z"]), 0);
    assert_eq!(q::<String>(c1, &["LPOP", "l"]), "z");
    assert_eq!(q::<Vec<String>>(c1, &["RPOP", "l", "1"]), ["c"]);
    assert_eq!(q::<i64>(c1, &["LINSERT", "l", "BEFORE", "b", "x"]), 3);
    assert_eq!(q::<String>(c1, &["LSET", "l", "-1", "B"]), "OK");
    assert_eq!(
        q_err(c1, &["LSET", "l", "9", "v"]),
        "ERR index out of range"
    );
    assert_eq!(q::<String>(c1, &["RPOPLPUSH", "l", "popped"]), "B");
    assert_eq!(q::<Option<i64>>(c1, &["LPOS", "l", "x"]), Some(1));
    let c2 = &mut con[2];
    assert_eq!(
        q::<i64>(c2, &["SADD", "s", "a", "b", "c", "d", "e", "f"]),
        6
    );
    assert_eq!(q::<i64>(c2, &["SREM", "s", "f", "zz"]), 1);
    assert_eq!(q::<Vec<i64>>(c2, &["SMISMEMBER", "s", "a", "zz"]), [1, 0]);
    assert_eq!(q::<i64>(c2, &["SADD", "s2", "a", "b", "x"]), 3);
    assert_eq!(q::<i64>(c2, &["SDIFFSTORE", "sd", "s2", "s"]), 1);
    // SPOP picks from the entry's seed: every replica removes the same member.
    let _: String = q(c2, &["SPOP", "s"]);
    assert_eq!(q::<i64>(c2, &["SMOVE", "s2", "sd", "zz"]), 0);
    let c0 = &mut con[0];
    assert_eq!(
        q::<i64>(c0, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        3
    );
    assert_eq!(
        q::<i64>(c0, &["ZADD", "z", "XX", "CH", "1.5", "a", "9", "new"]),
        1
    );
    assert_eq!(q::<String>(c0, &["ZINCRBY", "z", "0.25", "c"]), "3.25");
    assert_eq!(
        q::<Option<String>>(c0, &["ZADD", "z", "NX", "INCR", "1", "a"]),
        None
    );
    assert_eq!(
        q::<Vec<String>>(c0, &["ZPOPMAX", "z"]),
        ["c", "3.25"],
        "ZPOPMAX without a count"
    );
    assert_eq!(q::<i64>(c0, &["ZADD", "z2", "10", "a", "20", "q"]), 2);
    let zs = ["ZUNIONSTORE", "zs", "2", "z", "z2", "WEIGHTS", "1", "2"];
    assert_eq!(q::<i64>(c0, &zs), 3);
    assert_eq!(q::<i64>(c0, &["ZREMRANGEBYSCORE", "z2", "-inf", "(20"]), 1);
    assert_eq!(q::<String>(c0, &["SET", "str", "plain"]), "OK");
    assert_eq!(q::<i64>(c0, &["HSET", "tmp", "f", "v"]), 1);
    assert_eq!(q::<String>(c0, &["RENAME", "tmp", "renamed"]), "OK");
}

/// Reads on node `i` answer like Redis for what [`write_families`] wrote.
fn check_reads(c: &Cluster, i: usize) {
    let mut con = c.client(i);
    let con = &mut con;
    assert_eq!(
        q::<Option<String>>(con, &["HGET", "h", "a"]).as_deref(),
        Some("9")
    );
    assert_eq!(
        q::<Vec<Option<String>>>(con, &["HMGET", "h", "b", "zz"]),
        [Some("42".into()), None]
    );
    assert_eq!(q::<i64>(con, &["HLEN", "h"]), 4);
    assert_eq!(q::<i64>(con, &["HSTRLEN", "h", "b"]), 2);
    assert_eq!(q::<i64>(con, &["HEXISTS", "h", "zz"]), 0);
    assert_eq!(
        q::<Vec<String>>(con, &["LRANGE", "l", "0", "-1"]),
        ["a", "x"]
    );
    assert_eq!(q::<i64>(con, &["LLEN", "l"]), 2);
    assert_eq!(
        q::<Option<String>>(con, &["LINDEX", "l", "-1"]).as_deref(),
        Some("x")
    );
    assert_eq!(q::<i64>(con, &["SCARD", "s"]), 4);
    assert_eq!(q::<Vec<String>>(con, &["SINTER", "s2", "sd"]), ["x"]);
    assert_eq!(q::<i64>(con, &["SINTERCARD", "2", "s2", "s2"]), 3);
    assert_eq!(
        q::<Vec<String>>(con, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        ["a", "1.5", "b", "2"]
    );
    assert_eq!(
        q::<Vec<String>>(
            con,
            &["ZRANGE", "z", "(9", "-inf", "BYSCORE", "REV", "LIMIT", "0", "1"]
        ),
        ["b"]
    );
    assert_eq!(
        q::<Vec<String>>(con, &["ZRANGEBYLEX", "z2", "-", "+"]),
        ["q"]
    );
    assert_eq!(q::<String>(con, &["ZSCORE", "zs", "a"]), "21.5");
    assert_eq!(q::<i64>(con, &["ZCOUNT", "z", "2", "+inf"]), 1);
    assert_eq!(q::<Option<i64>>(con, &["ZREVRANK", "z", "a"]), Some(1));
    assert_eq!(q::<i64>(con, &["ZCARD", "zs"]), 3);
    assert_eq!(
        q_err(con, &["ZCOUNT", "z", "x", "1"]),
        "ERR min or max is not a float"
    );
    let (_, mut all): (String, Vec<String>) =
        q(con, &["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]);
    all.sort();
    assert_eq!(all, ["h", "renamed"]);
}

#[test]
fn every_family_replicates_identically_and_answers_like_redis() {
    let c = Cluster::start(3);
    write_families(&c, &[0, 1, 2]);
    let want = dump_all(&c, 0);
    // Every key but the kill test's queue exists.
    let absent = want.iter().filter(|d| d.starts_with("none")).count();
    assert_eq!(absent, 1, "{want:?}");
    for i in 0..3 {
        check_reads(&c, i);
        assert_eq!(dump_all(&c, i), want, "node {}", i + 1);
    }
}

fn num(c: &Cluster, i: usize, field: &str) -> u64 {
    c.info_field(i, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn collections_survive_kill_restart_and_a_snapshot_catch_up() {
    let mut c = Cluster::start_with(3, &["--snapshot-entries", "20"]);
    let leader = c.wait_leader();
    let f = (leader + 1) % 3;
    c.kill(f);
    let live: Vec<usize> = (0..3).filter(|&i| i != f).collect();
    write_families(&c, &live);
    // Enough entries that the leader compacts its log past the killed follower.
    let mut con = c.client(leader);
    for i in 0..60 {
        let _: i64 = q(&mut con, &["RPUSH", "queue", &format!("e{i}")]);
    }
    let want = dump_all(&c, leader);
    c.restart(f);
    wait_for(
        Duration::from_secs(60),
        "follower restored a snapshot",
        || (num(&c, f, "raft_snapshots_restored") >= 1).then_some(()),
    );
    assert_eq!(dump_all(&c, f), want, "caught up by snapshot");
    // Every node killed and restarted keeps every type.
    for i in 0..3 {
        c.kill(i);
        c.restart(i);
    }
    c.wait_leader();
    for i in 0..3 {
        assert_eq!(dump_all(&c, i), want, "node {} after restart", i + 1);
        check_reads(&c, i);
    }
    // A collection created after the snapshot still gets fresh records.
    let mut con = c.client(f);
    assert_eq!(q::<i64>(&mut con, &["DEL", "h"]), 1);
    assert_eq!(q::<i64>(&mut con, &["HSET", "h", "only", "1"]), 1);
    assert_eq!(dump(&mut con, "h"), "hash:only=1");
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn wrongtype_matrix() {
    let c = Cluster::start(3);
    let mut con = c.client(1);
    let con = &mut con;
    let _: () = q(con, &["SET", "str", "1"]);
    let _: i64 = q(con, &["HSET", "hash", "f", "1"]);
    let _: i64 = q(con, &["RPUSH", "list", "1"]);
    let _: i64 = q(con, &["SADD", "set", "1"]);
    let _: i64 = q(con, &["ZADD", "zset", "1", "m"]);
    let per_type: &[(&str, &[&[&str]])] = &[
        (
            "string",
            &[
                &["GET", "K"],
                &["INCR", "K"],
                &["APPEND", "K", "x"],
                &["STRLEN", "K"],
            ],
        ),
        (
            "hash",
            &[
                &["HSET", "K", "f", "v"],
                &["HGET", "K", "f"],
                &["HGETALL", "K"],
            ],
        ),
        (
            "list",
            &[
                &["LPUSH", "K", "v"],
                &["LRANGE", "K", "0", "-1"],
                &["LPOP", "K"],
            ],
        ),
        (
            "set",
            &[&["SADD", "K", "v"], &["SMEMBERS", "K"], &["SPOP", "K"]],
        ),
        (
            "zset",
            &[
                &["ZADD", "K", "1", "v"],
                &["ZRANGE", "K", "0", "-1"],
                &["ZSCORE", "K", "v"],
            ],
        ),
    ];
    let keys = [
        ("string", "str"),
        ("hash", "hash"),
        ("list", "list"),
        ("set", "set"),
        ("zset", "zset"),
    ];
    for (typ, key) in keys {
        assert_eq!(q::<String>(con, &["TYPE", key]), typ);
        for (family, cmds) in per_type {
            if *family == typ {
                continue;
            }
            for cmd in *cmds {
                let args: Vec<&str> = cmd
                    .iter()
                    .map(|a| if *a == "K" { key } else { a })
                    .collect();
                let e = q_err(con, &args);
                assert_eq!(e, WRONGTYPE, "{args:?} on a {typ}");
            }
        }
    }
    // Nothing was changed by the refused commands.
    let n: i64 = q(con, &["DBSIZE"]);
    assert_eq!(n, 5);
    assert_eq!(q::<String>(con, &["GET", "str"]), "1");
}

#[test]
fn resp2_and_resp3_reply_shapes() {
    let c = Cluster::start(1);
    let mut s = TcpStream::connect(("127.0.0.1", c.port(0))).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s.write_all(b"HSET h f v\r\nZADD z 1.1 a 2 b\r\nSADD s m\r\nZSCORE z a\r\nZRANGE z 0 -1 WITHSCORES\r\nHGETALL h\r\nPING\r\n")
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want2: &[u8] = b":1\r\n:2\r\n:1\r\n$3\r\n1.1\r\n*4\r\n$1\r\na\r\n$3\r\n1.1\r\n$1\r\nb\r\n$1\r\n2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n+PONG\r\n";
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want2)
    );
    s.write_all(b"HELLO 3\r\nZSCORE z a\r\nZRANGE z 0 -1 WITHSCORES\r\nHGETALL h\r\nSMEMBERS s\r\nZPOPMIN z 1\r\nPING\r\n")
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want3: &[u8] = b",1.1\r\n*2\r\n*2\r\n$1\r\na\r\n,1.1\r\n*2\r\n$1\r\nb\r\n,2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n~1\r\n$1\r\nm\r\n*1\r\n*2\r\n$1\r\na\r\n,1.1\r\n+PONG\r\n";
    assert!(got.ends_with(want3), "{:?}", String::from_utf8_lossy(&got));
}

/// Clients the node of `con` lists whose last command is `cmd` (lower case).
fn clients_on(con: &mut Connection, cmd: &str) -> usize {
    let list: String = q(con, &["CLIENT", "LIST"]);
    list.lines()
        .filter(|l| l.contains(&format!(" cmd={cmd} ")))
        .count()
}

/// Waits until node `i` lists `n` clients whose last command is `cmd` (lower case).
fn wait_blocked(c: &Cluster, i: usize, cmd: &str, n: usize) {
    let mut con = c.client(i);
    wait_for(Duration::from_secs(10), "clients blocked", || {
        (clients_on(&mut con, cmd) >= n).then_some(())
    });
}

#[test]
fn a_blocked_client_that_disconnects_stops_waiting_and_pops_nothing() {
    let c = Cluster::start(3);
    let ghost = {
        let mut s = TcpStream::connect(("127.0.0.1", c.port(1))).expect("connect");
        s.write_all(b"BRPOP ghost 0\r\n").expect("write");
        s
    };
    wait_blocked(&c, 1, "brpop", 1);
    drop(ghost);
    let mut con = c.client(1);
    wait_for(
        Duration::from_secs(10),
        "the closed client to leave",
        || (clients_on(&mut con, "brpop") == 0).then_some(()),
    );
    let _: i64 = q(&mut con, &["RPUSH", "ghost", "kept"]);
    // A second write to the key, applied after the push: a ghost would have popped by now.
    let _: i64 = q(&mut con, &["RPUSH", "ghost", "also"]);
    let all: Vec<String> = q(&mut con, &["LRANGE", "ghost", "0", "-1"]);
    assert_eq!(all, ["kept", "also"]);
}

#[test]
fn blocking_pops_wake_on_a_push_from_another_node_in_fifo_order() {
    let c = Cluster::start(3);
    // Nothing to pop and a timeout: the null array once it passes, not before.
    let mut con = c.client(2);
    let (t0, applied) = (Instant::now(), num(&c, 2, "raft_applied_index"));
    let v: redis::Value = q(&mut con, &["BLPOP", "none", "0.3"]);
    // It slept: one proposal for the try, a few for the cluster's own ticks, not a loop.
    let entries = num(&c, 2, "raft_applied_index") - applied;
    assert!(
        entries < 10,
        "{entries} entries applied while one client was blocked"
    );
    assert_eq!(v, redis::Value::Nil);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    // Something to pop: at once.
    let _: i64 = q(&mut con, &["RPUSH", "ready", "x"]);
    assert_eq!(
        q::<Vec<String>>(&mut con, &["BRPOP", "other", "ready", "0"]),
        ["ready", "x"]
    );
    // Two clients blocked on node 3, woken by a push through node 1, served first come first.
    let (p3a, p3b) = (c.port(2), c.port(2));
    let first = std::thread::spawn(move || {
        let mut con = common::try_client(p3a).expect("connect");
        q::<Vec<String>>(&mut con, &["BLPOP", "q", "0"])
    });
    wait_blocked(&c, 2, "blpop", 1);
    let second = std::thread::spawn(move || {
        let mut con = common::try_client(p3b).expect("connect");
        q::<Vec<String>>(&mut con, &["BLPOP", "q", "0"])
    });
    wait_blocked(&c, 2, "blpop", 2);
    let mut con1 = c.client(0);
    let _: i64 = q(&mut con1, &["RPUSH", "q", "a", "b"]);
    assert_eq!(first.join().expect("first"), ["q", "a"]);
    assert_eq!(second.join().expect("second"), ["q", "b"]);
    assert_eq!(q::<i64>(&mut con1, &["LLEN", "q"]), 0);
    // BLMOVE and BZPOPMIN wake the same way.
    let p2 = c.port(1);
    let mover = std::thread::spawn(move || {
        let mut con = common::try_client(p2).expect("connect");
        q::<String>(&mut con, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"])
    });
    let zpop = std::thread::spawn(move || {
        let mut con = common::try_client(p2).expect("connect");
        q::<Vec<String>>(&mut con, &["BZPOPMIN", "zq", "5"])
    });
    wait_blocked(&c, 1, "blmove", 1);
    wait_blocked(&c, 1, "bzpopmin", 1);
    let _: i64 = q(&mut con1, &["RPUSH", "src", "m"]);
    let _: i64 = q(&mut con1, &["ZADD", "zq", "1.5", "z"]);
    assert_eq!(mover.join().expect("mover"), "m");
    assert_eq!(zpop.join().expect("zpop"), ["zq", "z", "1.5"]);
    assert_eq!(
        q::<Vec<String>>(&mut con1, &["LRANGE", "dst", "0", "-1"]),
        ["m"]
    );
}

/// A client blocked on a node that shuts down is released with an error (nothing was
/// proposed for it), not left to see its connection drop.
#[test]
fn a_blocked_client_is_released_with_an_error_when_its_node_shuts_down() {
    let mut c = Cluster::start(3);
    let mut s = TcpStream::connect(("127.0.0.1", c.port(2))).expect("connect");
    s.write_all(b"BLPOP never 0\r\n").expect("write");
    wait_blocked(&c, 2, "blpop", 1);
    let _: redis::Value = redis::cmd("SHUTDOWN")
        .query(&mut c.client(2))
        .unwrap_or(redis::Value::Nil);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut line = String::new();
    std::io::BufReader::new(&s)
        .read_line(&mut line)
        .expect("a reply before the close");
    assert_eq!(line, "-TRYAGAIN node is shutting down\r\n");
    let status = c.wait_exit(2, Duration::from_secs(20));
    assert!(status.success(), "clean shutdown: {status}");
}
