//! Raft lifecycle against real processes: log compaction and catch-up by snapshot, a
//! snapshot transfer interrupted and resumed, a node joining a loaded cluster and an
//! original one leaving, leader transfer and leader removal under write load, and
//! snapshots taken while writes continue. Every acknowledged write is checked afterwards.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, wait_for, Cluster};

fn num(c: &Cluster, i: usize, field: &str) -> u64 {
    c.info_field(i, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The value of key number `i`: `len` pseudo-random hex digits (they do not compress, so
/// snapshot sizes follow the data size).
fn value(i: usize, len: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap_or('0')
        })
        .collect()
}

/// Writes `n` keys `prefix{i}` = `value(i)` to node `i`, pipelined in batches.
fn load(c: &Cluster, node: usize, prefix: &str, n: usize, value_len: usize) {
    let mut con = c.client(node);
    for start in (0..n).step_by(1000) {
        let mut p = redis::pipe();
        for i in start..(start + 1000).min(n) {
            p.cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(value(i, value_len))
                .ignore();
        }
        p.query::<()>(&mut con).expect("pipelined SETs");
    }
}

/// Reads every key `prefix{0..n}` from node `i` and checks its value.
fn check_all(c: &Cluster, node: usize, prefix: &str, n: usize, value_len: usize) {
    let mut con = c.client(node);
    for start in (0..n).step_by(5000) {
        let keys: Vec<String> = (start..(start + 5000).min(n))
            .map(|i| format!("{prefix}{i}"))
            .collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
        for (k, (i, v)) in keys.iter().zip((start..).zip(vals)) {
            assert_eq!(
                v.as_deref(),
                Some(value(i, value_len).as_str()),
                "node {} key {k}",
                node + 1
            );
        }
    }
}

/// A client thread that keeps writing unique keys to one node and records what was
/// acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, u64>>>,
    errors: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(c: &Cluster, node: usize, tag: &str) -> Writer {
        let port = c.port(node);
        let password = c.password.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, a, e, tag) = (stop.clone(), acked.clone(), errors.clone(), tag.to_string());
        let thread = std::thread::spawn(move || {
            let url = match password {
                Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
                None => format!("redis://127.0.0.1:{port}/"),
            };
            let client = redis::Client::open(url).unwrap();
            let mut con = None;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                if con.is_none() {
                    con = client
                        .get_connection_with_timeout(Duration::from_secs(2))
                        .ok();
                    if let Some(c) = &con {
                        let _ = c.set_read_timeout(Some(Duration::from_secs(15)));
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
                let key = format!("{tag}:{i}");
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .query(con.as_mut().unwrap());
                match r {
                    Ok(()) => {
                        a.lock().unwrap().insert(key, i);
                    }
                    Err(_) => {
                        e.fetch_add(1, Ordering::Relaxed);
                        con = None;
                    }
                }
                i += 1;
            }
        });
        Writer {
            stop,
            acked,
            errors,
            thread: Some(thread),
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `more` further writes were acknowledged (the cluster keeps working).
    fn wait_progress(&self, more: usize, what: &str) {
        let target = self.acked_count() + more;
        wait_for(Duration::from_secs(30), what, || {
            (self.acked_count() >= target).then_some(())
        });
    }

    fn finish(mut self) -> (BTreeMap<String, u64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, self.errors.load(Ordering::Relaxed))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every acknowledged write is readable through node `i`.
fn check_acked(c: &Cluster, node: usize, acked: &BTreeMap<String, u64>) {
    let mut con = c.client(node);
    let keys: Vec<&String> = acked.keys().collect();
    for chunk in keys.chunks(2000) {
        let vals: Vec<Option<u64>> = redis::cmd("MGET").arg(chunk).query(&mut con).unwrap();
        for (k, v) in chunk.iter().zip(vals) {
            assert_eq!(
                v,
                Some(acked[*k]),
                "acknowledged write {k} via node {}",
                node + 1
            );
        }
    }
}

fn member_line(c: &Cluster, via: usize, id: u64) -> Option<String> {
    c.raft_nodes(via)
        .into_iter()
        .find(|l| l.starts_with(&format!("{id} ")))
}

#[test]
fn follower_catches_up_by_snapshot_after_200k_writes() {
    let mut c = Cluster::start_with(3, &["--snapshot-entries", "100"]);
    let leader = c.wait_leader();
    let f = (leader + 1) % 3;
    let follower_had = num(&c, f, "raft_applied_index");
    c.kill(f);
    load(&c, leader, "k", 200_000, 8);
    // The log was compacted past what the follower holds.
    let follower_applied = {
        let first = num(&c, leader, "raft_first_log_index");
        assert!(
            first > follower_had + 1,
            "leader log not compacted past the follower: first index {first}"
        );
        assert!(num(&c, leader, "raft_snapshots_taken") > 0);
        first
    };
    c.restart(f);
    wait_for(
        Duration::from_secs(60),
        "follower restored a snapshot",
        || {
            (num(&c, f, "raft_snapshots_restored") >= 1
                && num(&c, f, "raft_applied_index") >= follower_applied)
                .then_some(())
        },
    );
    // Sent by whichever node led at the time (leadership may move under this load).
    let sent: u64 = (0..3).map(|i| num(&c, i, "raft_snapshot_sends_ok")).sum();
    assert!(sent >= 1);
    for i in 0..3 {
        let mut con = c.client(i);
        let n: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(n, 200_000, "DBSIZE on node {}", i + 1);
        check_all(&c, i, "k", 200_000, 8);
    }
    // Writes after the snapshot flow to the follower by log again.
    let mut con = c.client(f);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let v: String = redis::cmd("GET").arg("after").query(&mut con).unwrap();
    assert_eq!(v, "1");
}

#[test]
fn interrupted_snapshot_transfer_resumes() {
    // 2 MB/s makes the ~6 MB transfer last long enough to kill the receiver mid-way.
    let mut c = Cluster::start_with(3, &["--snapshot-entries", "0", "--snapshot-max-mbps", "2"]);
    let leader = c.wait_leader();
    let f = (leader + 1) % 3;
    c.kill(f);
    load(&c, leader, "big", 3000, 2000);
    // Compact both live nodes, so whichever leads must send a snapshot.
    for i in (0..3).filter(|&i| i != f) {
        let mut con = c.client(i);
        let _: u64 = redis::cmd("RAFT.SNAPSHOT").query(&mut con).unwrap();
        assert!(num(&c, i, "raft_first_log_index") > 2);
    }
    c.restart(f);
    // Kill the receiver once part of the snapshot arrived.
    wait_for(
        Duration::from_secs(30),
        "snapshot transfer under way",
        || {
            let got = num(&c, f, "raft_snapshot_recv_bytes");
            (got >= 1_000_000).then_some(())
        },
    );
    let total = num(&c, f, "raft_snapshot_recv_total");
    assert!(num(&c, f, "raft_snapshot_recv_bytes") < total);
    c.kill(f);
    c.restart(f);
    wait_for(
        Duration::from_secs(60),
        "snapshot restored after resume",
        || (num(&c, f, "raft_snapshots_restored") >= 1).then_some(()),
    );
    let log = std::fs::read_to_string(&c.nodes[f].log).unwrap();
    let resumed = log
        .lines()
        .find(|l| l.contains("resuming snapshot receive"))
        .unwrap_or_else(|| panic!("receiver did not resume"));
    assert!(
        !resumed.contains("have: 0,"),
        "resumed from zero: {resumed}"
    );
    check_all(&c, f, "big", 3000, 2000);
}

#[test]
fn node_joins_loaded_cluster_then_original_removed() {
    let mut c = Cluster::start_with(3, &["--snapshot-entries", "200"]);
    c.wait_leader();
    load(&c, 0, "base", 20_000, 16);
    let w = Writer::start(&c, 1, "w");
    w.wait_progress(50, "writes before the join");
    let new = c.add_joining_node(0);
    let new_id = c.nodes[new].id;
    wait_for(
        Duration::from_secs(60),
        "new node promoted to voter",
        || {
            member_line(&c, 1, new_id)
                .filter(|l| l.contains(" voter "))
                .map(|_| ())
        },
    );
    w.wait_progress(50, "writes after the join");
    // Remove an original node that is neither the writer's node nor necessarily leader.
    let victim = 2;
    let victim_id = c.nodes[victim].id;
    let mut con = c.client(new);
    let _: () = redis::cmd("RAFT.NODE")
        .arg("REMOVE")
        .arg(victim_id)
        .query(&mut con)
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "removal applied on the new node",
        || member_line(&c, new, victim_id).is_none().then_some(()),
    );
    // A removed node applies its removal and shuts itself down.
    let status = c.wait_exit(victim, Duration::from_secs(20));
    assert!(status.success(), "removed node exit status {status:?}");
    w.wait_progress(50, "writes after the removal");
    let (acked, errors) = w.finish();
    assert!(acked.len() >= 150);
    assert!(
        errors <= 20,
        "{errors} write errors during membership changes"
    );
    for i in [0, 1, new] {
        check_acked(&c, i, &acked);
        check_all(&c, i, "base", 20_000, 16);
    }
    // Membership survives a restart of the new node.
    c.restart(new);
    c.wait_leader();
    let line = member_line(&c, new, new_id).unwrap();
    assert!(line.contains(" voter "), "{line}");
}

#[test]
fn leader_transfer_and_leader_removal_under_load() {
    let mut c = Cluster::start(3);
    let leader = c.wait_leader();
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let w = Writer::start(&c, other, "t");
    w.wait_progress(50, "writes before the transfer");
    // Asked on a follower: forwarded to the leader.
    let mut con = c.client(other);
    let _: () = redis::cmd("RAFT.TRANSFER-LEADER")
        .arg(c.nodes[target].id)
        .query(&mut con)
        .unwrap();
    assert_eq!(c.wait_leader(), target);
    w.wait_progress(50, "writes after the transfer");
    // Bad arguments get clear errors.
    let e = redis::cmd("RAFT.TRANSFER-LEADER")
        .arg(99)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("not a voter"), "{e}");
    let e = redis::cmd("RAFT.NODE")
        .arg("REMOVE")
        .arg("abc")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("invalid node id"), "{e}");
    // Remove the leader itself: it hands leadership over, then leaves.
    let leader_id = c.nodes[target].id;
    let _: () = redis::cmd("RAFT.NODE")
        .arg("REMOVE")
        .arg(leader_id)
        .query(&mut con)
        .unwrap();
    let status = c.wait_exit(target, Duration::from_secs(20));
    assert!(status.success());
    let new_leader = c.wait_leader();
    assert_ne!(new_leader, target);
    w.wait_progress(50, "writes after removing the leader");
    let (acked, errors) = w.finish();
    assert!(errors <= 20, "{errors} write errors");
    for i in [leader, other] {
        check_acked(&c, i, &acked);
    }
}

#[test]
fn snapshots_during_write_load() {
    let c = Cluster::start_with(3, &["--snapshot-entries", "0"]);
    let leader = c.wait_leader();
    load(&c, leader, "s", 20_000, 100);
    let w = Writer::start(&c, leader, "s2");
    let mut last = 0u64;
    for node in [leader, (leader + 1) % 3] {
        for _ in 0..3 {
            w.wait_progress(20, "writes between snapshots");
            let mut con = c.client(node);
            match redis::cmd("RAFT.SNAPSHOT").query::<u64>(&mut con) {
                Ok(index) => {
                    if node == leader {
                        assert!(index >= last, "snapshot index went back");
                        last = index;
                    }
                }
                Err(e) => assert!(
                    e.to_string().contains("already in progress"),
                    "unexpected snapshot error {e}"
                ),
            }
        }
    }
    assert!(num(&c, leader, "raft_snapshots_taken") >= 1);
    assert!(num(&c, leader, "raft_first_log_index") > 1);
    let (acked, errors) = w.finish();
    assert_eq!(errors, 0);
    for i in 0..3 {
        check_acked(&c, i, &acked);
    }
    check_all(&c, (leader + 2) % 3, "s", 20_000, 100);
}

#[test]
fn shutdown_command_stops_a_node_cleanly() {
    let mut c = Cluster::start(3);
    let leader = c.wait_leader();
    let mut con = c.client(leader);
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let e = redis::cmd("SHUTDOWN")
        .arg("BOGUS")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(e.to_string().contains("syntax error"), "{e}");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    let status = c.wait_exit(leader, Duration::from_secs(20));
    assert!(status.success());
    let next = c.wait_leader();
    assert_ne!(next, leader);
    let mut con = c.client(next);
    let v: String = redis::cmd("GET").arg("before").query(&mut con).unwrap();
    assert_eq!(v, "1");
}

#[test]
fn replace_a_voter_through_joint_consensus() {
    let mut c = Cluster::start(3);
    c.wait_leader();
    let mut con = c.client(1);
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut con).unwrap();
    // Node 4 is added (as a learner) before it even runs, then swapped in for node 1 in
    // one joint-consensus change: {1,2,3} -> {1,2,3}&{2,3,4} -> {2,3,4}.
    let raft_port = free_port();
    let _: () = redis::cmd("RAFT.NODE")
        .arg("ADD")
        .arg(4)
        .arg(format!("127.0.0.1:{raft_port}"))
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("RAFT.NODE")
        .arg("REPLACE")
        .arg(1)
        .arg(4)
        .query(&mut con)
        .unwrap();
    wait_for(Duration::from_secs(10), "joint configuration left", || {
        let nodes = c.raft_nodes(1);
        let ids: Vec<&str> = nodes.iter().filter_map(|l| l.split(' ').next()).collect();
        (ids == ["2", "3", "4"] && nodes.iter().all(|l| l.contains(" voter "))).then_some(())
    });
    let log = std::fs::read_to_string(&c.nodes[1].log).unwrap()
        + &std::fs::read_to_string(&c.nodes[2].log).unwrap();
    assert!(
        log.contains("outgoing: [1, 2, 3]"),
        "never entered joint consensus"
    );
    // Nodes 2 and 3 are a majority of {2,3,4}: writes go on while node 4 is not up yet.
    let _: () = redis::cmd("SET").arg("b").arg("2").query(&mut con).unwrap();
    let new = c.add_joining_node_at(1, raft_port);
    assert_eq!(new, 3);
    wait_for(Duration::from_secs(30), "node 4 caught up", || {
        let mut c4 = c.try_connect(c.port(new))?;
        let v: Option<String> = redis::cmd("GET").arg("b").query(&mut c4).ok()?;
        (v.as_deref() == Some("2")).then_some(())
    });
    // Node 1 never applies the entry that leaves the joint configuration (it is no longer
    // replicated to), so the leader tells it; it shuts down.
    let status = c.wait_exit(0, Duration::from_secs(20));
    assert!(status.success(), "replaced node exit status {status:?}");
    // {3,4} is a majority of {2,3,4}: writes go on without node 2.
    c.kill(1);
    let mut c3 = c.client(2);
    let _: () = redis::cmd("SET").arg("c").arg("3").query(&mut c3).unwrap();
    let mut c4 = c.client(new);
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["a", "b", "c"])
        .query(&mut c4)
        .unwrap();
    assert_eq!(
        v,
        vec![Some("1".into()), Some("2".into()), Some("3".into())]
    );
}
