//! End-to-end tests of a real 3-node cluster: replication, forwarding from followers,
//! leader failure, restarts, pipelining, deterministic expiry and bad input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{try_client, wait_for, Cluster};
use redis::Commands;

fn get(c: &mut redis::Connection, k: &str) -> Option<String> {
    c.get(k).expect("GET")
}

#[test]
fn writes_on_any_node_are_read_on_every_node() {
    let cl = Cluster::start(3);
    cl.wait_leader();
    for i in 0..3 {
        let mut c = cl.client(i);
        let _: () = c.set(format!("k{i}"), format!("v{i}")).expect("SET");
        // Linearizable reads: every node sees the acknowledged write at once.
        for j in 0..3 {
            let mut r = cl.client(j);
            assert_eq!(get(&mut r, &format!("k{i}")), Some(format!("v{i}")));
        }
    }
    let mut c = cl.client(1);
    let n: i64 = c.incr("ctr", 5).expect("INCR");
    assert_eq!(n, 5);
    let n: i64 = cl.client(2).incr("ctr", 1).expect("INCR");
    assert_eq!(n, 6);
    let dbsize: i64 = redis::cmd("DBSIZE")
        .query(&mut cl.client(0))
        .expect("DBSIZE");
    assert_eq!(dbsize, 4);
}

#[test]
fn leader_kill_elects_new_leader_and_writes_continue() {
    let mut cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let _: () = cl.client(leader).set("before", "1").expect("SET");
    cl.kill(leader);
    let new_leader = cl.wait_leader();
    assert_ne!(new_leader, leader);
    let other = (0..3)
        .find(|&i| i != leader && i != new_leader)
        .expect("third node");
    let _: () = cl
        .client(other)
        .set("after", "2")
        .expect("SET via follower");
    assert_eq!(get(&mut cl.client(new_leader), "before"), Some("1".into()));
    // The old leader comes back as a follower and catches up.
    cl.restart(leader);
    cl.wait_leader();
    assert_eq!(get(&mut cl.client(leader), "after"), Some("2".into()));
}

#[test]
fn follower_restart_catches_up() {
    let mut cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    cl.kill(follower);
    let mut c = cl.client(leader);
    for i in 0..500 {
        let _: () = c.set(format!("key:{i}"), i).expect("SET");
    }
    cl.restart(follower);
    let mut f = cl.client(follower);
    for i in (0..500).step_by(50) {
        let v: Option<i64> = f.get(format!("key:{i}")).expect("GET");
        assert_eq!(v, Some(i));
    }
    let applied = wait_for(Duration::from_secs(10), "follower applied index", || {
        let a: u64 = cl
            .info_field(follower, "raft_applied_index")?
            .parse()
            .ok()?;
        let b: u64 = cl.info_field(leader, "raft_commit_index")?.parse().ok()?;
        (a >= b).then_some(a)
    });
    assert!(applied >= 500);
}

#[test]
fn full_cluster_restart_keeps_every_acknowledged_write() {
    let mut cl = Cluster::start(3);
    cl.wait_leader();
    let mut acked = Vec::new();
    for i in 0..300 {
        let mut c = cl.client(i % 3);
        let _: () = c.set(format!("d:{i}"), format!("val{i}")).expect("SET");
        acked.push(i);
    }
    let _: () = cl.client(0).set("ttl-key", "x").expect("SET");
    let _: bool = cl.client(0).expire("ttl-key", 1000).expect("EXPIRE");
    for i in 0..3 {
        cl.kill(i);
    }
    for i in 0..3 {
        cl.restart(i);
    }
    cl.wait_leader();
    for i in 0..3 {
        let mut c = cl.client(i);
        for &k in acked.iter().step_by(7) {
            assert_eq!(
                get(&mut c, &format!("d:{k}")),
                Some(format!("val{k}")),
                "node {i} key {k}"
            );
        }
        let ttl: i64 = c.ttl("ttl-key").expect("TTL");
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    }
    let n: i64 = redis::cmd("DBSIZE")
        .query(&mut cl.client(1))
        .expect("DBSIZE");
    assert_eq!(n, 301);
}

#[test]
fn ten_thousand_pipelined_commands_keep_order() {
    let cl = Cluster::start(3);
    cl.wait_leader();
    for node in [0, 1] {
        let mut c = cl.client(node);
        let key = format!("pipe{node}");
        let mut p = redis::pipe();
        for i in 0..10_000 {
            if i % 2 == 0 {
                p.cmd("INCR").arg(&key);
            } else {
                p.cmd("GET").arg(&key);
            }
        }
        let out: Vec<i64> = p.query(&mut c).expect("pipeline");
        assert_eq!(out.len(), 10_000);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, (i / 2 + 1) as i64, "reply {i} out of order");
        }
    }
}

#[test]
fn expiry_is_seen_identically_on_all_nodes() {
    let cl = Cluster::start(3);
    cl.wait_leader();
    let mut c = cl.client(0);
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(400)
        .query(&mut c)
        .expect("SET PX");
    let _: () = c.set("long", "v").expect("SET");
    let _: bool = c.pexpire("long", 60_000).expect("PEXPIRE");
    for i in 0..3 {
        let mut r = cl.client(i);
        let pttl: i64 = r.pttl("long").expect("PTTL");
        assert!(pttl > 50_000 && pttl <= 60_000, "node {i} pttl {pttl}");
    }
    // Once expired, the key is invisible everywhere, then deleted through Raft.
    for i in 0..3 {
        wait_for(Duration::from_secs(5), "short key to expire", || {
            let mut r = cl.client(i);
            get(&mut r, "short").is_none().then_some(())
        });
    }
    wait_for(
        Duration::from_secs(5),
        "sweep to delete the key on all nodes",
        || {
            (0..3)
                .all(|i| {
                    let n: i64 = redis::cmd("DBSIZE").query(&mut cl.client(i)).unwrap_or(-1);
                    n == 1
                })
                .then_some(())
        },
    );
}

#[test]
fn malformed_input_gets_protocol_error_and_server_stays_up() {
    let cl = Cluster::start(3);
    cl.wait_leader();
    let port = cl.port(1);
    for garbage in [
        &b"*2\r\n$3\r\nGET\r\n:12\r\n"[..],
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$999999999999\r\n",
        b"\"unbalanced\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(garbage).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("-ERR Protocol error"),
            "reply to {garbage:?}: {text:?}"
        );
    }
    // Inline commands work.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"PING\r\nSET inline \"a b\"\r\nGET inline\r\n")
        .expect("write");
    let want = b"+PONG\r\n+OK\r\n$3\r\na b\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).expect("read");
    assert_eq!(&got[..], &want[..]);
    // Unknown command and arity errors in Redis's words.
    let mut c = cl.client(1);
    let e = redis::cmd("NOSUCH")
        .arg("x")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("unknown command 'NOSUCH'"), "{e}");
    let e = redis::cmd("GET").query::<String>(&mut c).unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'get' command"),
        "{e}"
    );
    let _: () = c.set("s", "x").expect("SET");
    let e = c.incr::<_, _, i64>("s", 1).unwrap_err();
    assert!(e.to_string().contains("not an integer"), "{e}");
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut c).expect("PING"),
        "PONG"
    );
}

#[test]
fn without_quorum_requests_fail_in_bounded_time() {
    let mut cl = Cluster::start_with(
        3,
        &["--leader-wait-ms", "1000", "--request-timeout-ms", "2000"],
    );
    let leader = cl.wait_leader();
    let survivor = (leader + 1) % 3;
    for i in 0..3 {
        if i != survivor {
            cl.kill(i);
        }
    }
    let mut c = try_client(cl.port(survivor)).expect("client");
    let start = Instant::now();
    let e = c.set::<_, _, ()>("k", "v").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(e.code(), Some("CLUSTERDOWN") | Some("TRYAGAIN")),
        "{e}"
    );
    let start = Instant::now();
    let e = c.get::<_, Option<String>>("k").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(e.code(), Some("CLUSTERDOWN") | Some("TRYAGAIN")),
        "{e}"
    );
}

#[test]
fn sigterm_on_the_leader_hands_leadership_over() {
    let mut cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let _: () = cl.client(leader).set("k", "1").expect("SET");
    let status = cl.terminate(leader);
    assert!(status.success(), "exit status {status:?}");
    // A transfer, not an election timeout: the old leader saw its successor take over
    // before it exited.
    let log = std::fs::read_to_string(&cl.nodes[leader].log).unwrap_or_default();
    assert!(
        log.contains("leadership transferred"),
        "no hand-over in the log"
    );
    let new_leader = cl.wait_leader();
    assert_ne!(new_leader, leader);
    let _: () = cl
        .client(new_leader)
        .set("k", "2")
        .expect("SET after hand-over");
    cl.restart(leader);
    assert_eq!(get(&mut cl.client(leader), "k"), Some("2".into()));
}
