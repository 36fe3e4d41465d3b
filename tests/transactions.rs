//! MULTI / EXEC / DISCARD / WATCH / UNWATCH on a real 3-node cluster: Redis's replies and
//! error texts on the wire (RESP2 and RESP3), EXECABORT, runtime errors inside EXEC,
//! atomicity seen by a reader on another node, WATCH aborting on a write from another
//! node, on expiry and on FLUSHALL (and not when nothing changed), and the redis crate's
//! atomic pipelines and `redis::transaction` retry loop.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::{wait_for, Cluster};
use redis::Commands;

const QUEUED: &str = "+QUEUED\r\n";
const OK: &str = "+OK\r\n";

/// A follower's index (forwarding is on the path) and the leader's.
fn follower_and_leader(cl: &Cluster) -> (usize, usize) {
    let leader = cl.wait_leader();
    ((leader + 1) % 3, leader)
}

#[test]
fn queued_replies_errors_and_exec_arrays_are_redis_s() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    for node in [f, leader] {
        let mut c = Raw::to(&cl, node);
        assert_eq!(c.line("EXEC"), "-ERR EXEC without MULTI\r\n");
        assert_eq!(c.line("DISCARD"), "-ERR DISCARD without MULTI\r\n");
        assert_eq!(c.line("SET s text"), OK);
        assert_eq!(c.line("MULTI"), OK);
        assert_eq!(c.line("MULTI"), "-ERR MULTI calls can not be nested\r\n");
        assert_eq!(
            c.line("WATCH s"),
            "-ERR WATCH inside MULTI is not allowed\r\n"
        );
        assert_eq!(c.line("PING"), QUEUED);
        assert_eq!(c.line("SET a 1"), QUEUED);
        assert_eq!(c.line("INCR s"), QUEUED);
        assert_eq!(c.line("ECHO hi"), QUEUED);
        // A syntax error past the arity check shows inside EXEC, as in Redis.
        assert_eq!(c.line("SET a b c d"), QUEUED);
        assert_eq!(c.line("GET a"), QUEUED);
        // Neither the nested MULTI nor the WATCH error aborted the transaction; a runtime
        // error does not stop the commands after it.
        assert_eq!(
            c.line("EXEC"),
            "*6\r\n+PONG\r\n+OK\r\n-ERR value is not an integer or out of range\r\n\
             $2\r\nhi\r\n-ERR syntax error\r\n$1\r\n1\r\n"
        );
        assert_eq!(c.line("MULTI"), OK);
        assert_eq!(c.line("EXEC"), "*0\r\n");
    }
    let mut c = Raw::to(&cl, f);
    // Queue-time errors: answered at once, then EXECABORT, nothing applied.
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET x 1"), QUEUED);
    assert_eq!(
        c.line("NOSUCH x"),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
    );
    assert_eq!(
        c.line("GET"),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        c.line("EXEC"),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(c.line("GET x"), "$-1\r\n");
    for (refused, text) in [
        ("RAFT.NODES", "-ERR Command not allowed inside a transaction\r\n"),
        ("SHUTDOWN", "-ERR Command not allowed inside a transaction\r\n"),
        (
            "KEYS *",
            "-ERR KEYS is not supported inside MULTI (it would not see the transaction's own writes)\r\n",
        ),
    ] {
        assert_eq!(c.line("MULTI"), OK);
        assert_eq!(c.line(refused), text);
        assert_eq!(
            c.line("EXEC"),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
    }
    // DISCARD drops the queue.
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET y 1"), QUEUED);
    assert_eq!(c.line("DISCARD"), OK);
    assert_eq!(c.line("GET y"), "$-1\r\n");
    // The transaction's writes are on every node.
    for i in 0..3 {
        assert_eq!(Raw::to(&cl, i).line("GET a"), "$1\r\n1\r\n");
    }
}

#[test]
fn watch_aborts_on_a_write_from_another_node_and_not_when_nothing_changed() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    let other = 3 - f - leader;
    let mut c = Raw::to(&cl, f);
    let mut o = Raw::to(&cl, other);
    assert_eq!(o.line("SET k 0"), OK);

    // Modified (even to the same value) by another node's client: nil, nothing applied.
    assert_eq!(c.line("WATCH k"), OK);
    assert_eq!(o.line("SET k 0"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET k mine"), QUEUED);
    assert_eq!(c.line("EXEC"), "*-1\r\n");
    assert_eq!(o.line("GET k"), "$1\r\n0\r\n");

    // Nothing changed (other keys did): it runs. EXEC cleared the earlier watch.
    assert_eq!(c.line("WATCH k"), OK);
    assert_eq!(o.line("SET unrelated 1"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET k mine"), QUEUED);
    assert_eq!(c.line("EXEC"), "*1\r\n+OK\r\n");

    // Created and deleted again after WATCH: still a modification.
    assert_eq!(c.line("WATCH fresh"), OK);
    assert_eq!(o.line("SET fresh 1"), OK);
    assert_eq!(o.line("DEL fresh"), ":1\r\n");
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("PING"), QUEUED);
    assert_eq!(c.line("EXEC"), "*-1\r\n");

    // UNWATCH and DISCARD forget the watches.
    assert_eq!(c.line("WATCH k"), OK);
    assert_eq!(c.line("UNWATCH"), OK);
    assert_eq!(o.line("SET k 1"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("EXEC"), "*0\r\n");
    assert_eq!(c.line("WATCH k"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("DISCARD"), OK);
    assert_eq!(o.line("SET k 2"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("GET k"), QUEUED);
    assert_eq!(c.line("EXEC"), "*1\r\n$1\r\n2\r\n");

    // WATCH, MULTI and EXEC pipelined in one write: the watch is read before EXEC.
    let mut p = Raw::to(&cl, leader);
    p.0.get_mut()
        .write_all(b"WATCH k\r\nMULTI\r\nINCR k\r\nEXEC\r\n")
        .unwrap();
    let replies: Vec<String> = (0..4).map(|_| p.value()).collect();
    assert_eq!(replies, [OK, OK, QUEUED, "*1\r\n:3\r\n"]);

    // RESP3: the aborted EXEC is a null.
    assert!(c.line("HELLO 3").starts_with('%'));
    assert_eq!(c.line("WATCH k"), OK);
    assert_eq!(o.line("INCR k"), ":4\r\n");
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("GET k"), QUEUED);
    assert_eq!(c.line("EXEC"), "_\r\n");
}

#[test]
fn watch_aborts_on_expiry_and_on_flushall() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    let mut c = Raw::to(&cl, f);
    let mut o = Raw::to(&cl, leader);

    assert_eq!(c.line("SET e v PX 400"), OK);
    assert_eq!(c.line("WATCH e"), OK);
    wait_for(Duration::from_secs(10), "e to expire", || {
        (o.line("EXISTS e") == ":0\r\n").then_some(())
    });
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET after-expiry 1"), QUEUED);
    assert_eq!(c.line("EXEC"), "*-1\r\n");
    assert_eq!(o.line("GET after-expiry"), "$-1\r\n");

    assert_eq!(c.line("SET g 1"), OK);
    assert_eq!(c.line("WATCH g"), OK);
    assert_eq!(o.line("FLUSHALL"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET after-flush 1"), QUEUED);
    assert_eq!(c.line("EXEC"), "*-1\r\n");
    assert_eq!(o.line("GET after-flush"), "$-1\r\n");

    // Watched after the flush, unchanged since: it runs.
    assert_eq!(c.line("WATCH g"), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("SET g 2"), QUEUED);
    assert_eq!(c.line("EXEC"), "*1\r\n+OK\r\n");
    assert_eq!(o.line("GET g"), "$1\r\n2\r\n");
}

#[test]
fn a_reader_on_another_node_never_sees_half_a_transaction() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    let reader_node = 3 - f - leader;
    let done = Arc::new(AtomicBool::new(false));
    let mut w = cl.client(f);
    let mut r = cl.client(reader_node);
    let stop = done.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = std::collections::BTreeSet::new();
        while !stop.load(Ordering::Acquire) {
            let (a, b): (Option<i64>, Option<i64>) = redis::cmd("MGET")
                .arg("a")
                .arg("b")
                .query(&mut r)
                .expect("MGET");
            assert_eq!(a, b, "half a transaction seen");
            seen.extend(a);
        }
        seen.len()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..150i64 {
        let (): () = redis::pipe()
            .atomic()
            .set("a", i)
            .ignore()
            .set("b", i)
            .ignore()
            .query(&mut w)
            .expect("MULTI/EXEC");
        assert!(Instant::now() < deadline, "too slow");
    }
    done.store(true, Ordering::Release);
    let distinct = reader.join().expect("reader");
    assert!(distinct > 1, "the reader saw {distinct} states");
    let a: i64 = cl.client(leader).get("a").expect("GET");
    assert_eq!(a, 149);
}

#[test]
fn redis_crate_atomic_pipelines_and_watch_retry_loops_work() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    let mut c = cl.client(f);
    let (n, v): (i64, String) = redis::pipe()
        .atomic()
        .set("p", 1)
        .ignore()
        .incr("p", 2)
        .get("p")
        .query(&mut c)
        .expect("atomic pipeline");
    assert_eq!((n, v.as_str()), (3, "3"));
    // A runtime error inside the transaction is the pipeline's error; the rest still ran.
    let res = redis::pipe()
        .atomic()
        .set("t", "x")
        .ignore()
        .incr("t", 1)
        .set("u", 1)
        .ignore()
        .query::<redis::Value>(&mut c);
    let text = match res {
        Ok(v) => format!("{v:?}"),
        Err(e) => e.to_string(),
    };
    assert!(text.contains("not an integer"), "{text}");
    let u: i64 = c.get("u").expect("GET u");
    assert_eq!(u, 1);

    // Optimistic increments from two nodes through WATCH: no update is lost.
    let _: () = c.set("counter", 0).expect("SET");
    let per_client = 25;
    let workers: Vec<_> = [f, leader]
        .into_iter()
        .map(|node| {
            let mut con = cl.client(node);
            std::thread::spawn(move || {
                let mut retries = 0;
                for _ in 0..per_client {
                    let _: () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                        let cur: i64 = con.get("counter")?;
                        retries += 1;
                        pipe.set("counter", cur + 1).ignore().query(con)
                    })
                    .expect("transaction");
                }
                retries - per_client
            })
        })
        .collect();
    let retries: i64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let total: i64 = cl.client(3 - f - leader).get("counter").expect("GET");
    assert_eq!(total, 2 * per_client, "lost updates ({retries} retries)");
}

fn num(cl: &Cluster, i: usize, field: &str) -> u64 {
    cl.info_field(i, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// WATCH on `node`, then a transaction that must run (nothing changed the key since).
fn watch_and_exec_runs(cl: &Cluster, node: usize, key: &str) {
    let mut c = Raw::to(cl, node);
    assert_eq!(c.line(&format!("WATCH {key}")), OK);
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line(&format!("GET {key}")), QUEUED);
    let r = c.line("EXEC");
    assert!(r.starts_with("*1\r\n$"), "node {node}: {r:?}");
}

#[test]
fn versions_reach_a_follower_restored_from_a_snapshot_and_survive_its_restart() {
    let mut cl = Cluster::start_with(3, &["--snapshot-entries", "0"]);
    let leader = cl.wait_leader();
    let f = (leader + 1) % 3;
    let follower_had = num(&cl, f, "raft_applied_index");
    cl.kill(f);
    let mut c = cl.client(leader);
    for i in 0..20 {
        let _: () = c.set(format!("w{i}"), i).expect("SET");
    }
    let _: u64 = redis::cmd("RAFT.SNAPSHOT").query(&mut c).expect("snapshot");
    assert!(num(&cl, leader, "raft_first_log_index") > follower_had + 1);
    cl.restart(f);
    wait_for(
        Duration::from_secs(60),
        "follower restored a snapshot",
        || (num(&cl, f, "raft_snapshots_restored") >= 1).then_some(()),
    );
    // The versions the follower reads are the ones every replica checks against: a
    // version missing from the snapshot would make every such EXEC abort.
    watch_and_exec_runs(&cl, f, "w3");
    cl.kill(f);
    cl.restart(f);
    cl.wait_leader();
    watch_and_exec_runs(&cl, f, "w4");
    watch_and_exec_runs(&cl, leader, "w5");
}

/// WATCH sees changes of collections that rewrite only element records (HSET of an existing
/// field, LSET, a ZADD score update, SREM), and a collection left alone does not abort.
#[test]
fn watch_aborts_on_collection_element_changes() {
    let cl = Cluster::start(3);
    let (f, leader) = follower_and_leader(&cl);
    let mut c = Raw::to(&cl, f);
    let mut o = Raw::to(&cl, leader);
    assert_eq!(o.line("HSET h f 1 g 2"), ":2\r\n");
    assert_eq!(o.line("RPUSH l a b"), ":2\r\n");
    assert_eq!(o.line("ZADD z 1 m"), ":1\r\n");
    assert_eq!(o.line("SADD s x y"), ":2\r\n");
    for (key, change) in [
        ("h", "HSET h f 9"),
        ("l", "LSET l 0 c"),
        ("z", "ZADD z 5 m"),
        ("s", "SREM s x"),
    ] {
        assert_eq!(c.line(&format!("WATCH {key}")), OK);
        o.line(change);
        assert_eq!(c.line("MULTI"), OK);
        assert_eq!(c.line("SET changed 1"), QUEUED);
        assert_eq!(c.line("EXEC"), "*-1\r\n", "{change} after WATCH {key}");
    }
    assert_eq!(c.line("WATCH h"), OK);
    assert_eq!(o.line("HSET other f 1"), ":1\r\n");
    assert_eq!(c.line("MULTI"), OK);
    assert_eq!(c.line("HGET h f"), QUEUED);
    assert_eq!(c.line("EXEC"), "*1\r\n$1\r\n9\r\n");
}
