//! The Redis Cluster protocol on a real 3-node cluster (one Raft group owning every slot):
//! CLUSTER SLOTS / SHARDS / NODES / INFO agree with each other and with RAFT.NODES, a new
//! leader shows at once after kill -9, `--redirect moved` answers -MOVED on followers and
//! serves READONLY reads there, and real cluster clients work against it: `redis-cli -c`,
//! `redis-cli --cluster check` and the `redis` crate's async cluster client.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{wait_for, Cluster};
use redis::Value;

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// Field `name` of a map reply (RESP3 map, or RESP2 flat key/value array).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Map(kv) => kv
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .map(|(_, v)| v),
        Value::Array(a) => a
            .chunks(2)
            .find(|c| text(&c[0]).as_deref() == Some(name))
            .and_then(|c| c.get(1)),
        _ => None,
    }
}

fn cmd(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn cmd_text(c: &mut redis::Connection, args: &[&str]) -> String {
    let v = cmd(c, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    text(&v).unwrap_or_else(|| panic!("{args:?}: not text: {v:?}"))
}

/// CLUSTER SLOTS of node `i`: per range (start, end, ports of the master then replicas,
/// node ids in the same order).
type SlotRange = (i64, i64, Vec<u16>, Vec<String>);

fn cluster_slots(cl: &Cluster, i: usize) -> Option<Vec<SlotRange>> {
    let mut c = cl.try_connect(cl.port(i))?;
    let Value::Array(ranges) = cmd(&mut c, &["CLUSTER", "SLOTS"]).ok()? else {
        return None;
    };
    ranges
        .iter()
        .map(|r| {
            let Value::Array(parts) = r else { return None };
            let nodes: Option<Vec<(u16, String)>> = parts[2..]
                .iter()
                .map(|n| {
                    let Value::Array(n) = n else { return None };
                    let port = u16::try_from(int(&n[1])?).ok()?;
                    Some((port, text(&n[2])?))
                })
                .collect();
            let (ports, ids) = nodes?.into_iter().unzip();
            Some((int(&parts[0])?, int(&parts[1])?, ports, ids))
        })
        .collect()
}

/// Waits until every node's CLUSTER SLOTS shows one range of all slots, mastered by
/// the node leading the group, with every member's address recorded; returns the leader.
fn wait_slots_agree(cl: &Cluster, live: &[usize], within: Duration) -> usize {
    wait_for(
        within,
        "CLUSTER SLOTS on every node to show the leader",
        || {
            let leader = live
                .iter()
                .copied()
                .find(|&i| cl.info_field(i, "raft_role").as_deref() == Some("leader"))?;
            let agree = live.iter().all(|&i| {
                cluster_slots(cl, i).is_some_and(|s| {
                    s.len() == 1
                        && (s[0].0, s[0].1) == (0, 16383)
                        && s[0].2.len() == cl.nodes.len()
                        && s[0].2[0] == cl.port(leader)
                })
            });
            agree.then_some(leader)
        },
    )
}

#[test]
fn cluster_replies_agree_with_each_other_and_with_raft_nodes() {
    let cl = Cluster::start(3);
    let leader = wait_slots_agree(&cl, &[0, 1, 2], Duration::from_secs(20));
    let ids: Vec<String> = (0..3)
        .map(|i| cmd_text(&mut cl.client(i), &["CLUSTER", "MYID"]))
        .collect();
    assert!(ids.iter().all(|id| id.len() == 40), "{ids:?}");
    for i in 0..3 {
        let mut c = cl.client(i);
        // SLOTS: the leader, then the two others, by the same ids as MYID.
        let slots = cluster_slots(&cl, i).expect("slots");
        assert_eq!(slots[0].3[0], ids[leader]);
        let mut all = slots[0].3.clone();
        all.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(all, want, "node {i}: every member in SLOTS");
        // NODES: one line per node; the leader is the master of every slot.
        let nodes = cmd_text(&mut c, &["CLUSTER", "NODES"]);
        let lines: Vec<&str> = nodes.lines().collect();
        assert_eq!(lines.len(), 3, "{nodes}");
        for (j, id) in ids.iter().enumerate() {
            let line = lines
                .iter()
                .find(|l| l.starts_with(id.as_str()))
                .unwrap_or_else(|| panic!("node {j} missing: {nodes}"));
            let f: Vec<&str> = line.split(' ').collect();
            let addr = format!("127.0.0.1:{}@{}", cl.port(j), cl.nodes[j].raft_port);
            assert_eq!(f[1], addr, "{line}");
            assert_eq!(f[2].contains("myself"), i == j, "{line}");
            if j == leader {
                assert!(f[2].ends_with("master") && f[3] == "-", "{line}");
                assert_eq!(f[7..], ["connected", "0-16383"], "{line}");
            } else {
                assert!(f[2].ends_with("slave") && f[3] == ids[leader], "{line}");
                assert_eq!(f[7..], ["connected"], "{line}");
            }
        }
        // SHARDS: one shard, the leader its master, the others replicas.
        let Value::Array(shards) = cmd(&mut c, &["CLUSTER", "SHARDS"]).expect("shards") else {
            panic!("SHARDS is not an array")
        };
        assert_eq!(shards.len(), 1);
        let range = field(&shards[0], "slots").expect("slots field");
        assert_eq!(range, &Value::Array(vec![Value::Int(0), Value::Int(16383)]));
        let Some(Value::Array(members)) = field(&shards[0], "nodes") else {
            panic!("no nodes in SHARDS")
        };
        assert_eq!(members.len(), 3);
        for m in members {
            let id = field(m, "id").and_then(text).expect("id");
            let role = field(m, "role").and_then(text).expect("role");
            let port = field(m, "port").and_then(int).expect("port");
            let j = ids.iter().position(|x| *x == id).expect("known id");
            assert_eq!(port, i64::from(cl.port(j)));
            assert_eq!(role, if j == leader { "master" } else { "replica" });
        }
        // INFO: consistent counts.
        let info = cmd_text(&mut c, &["CLUSTER", "INFO"]);
        for want in [
            "cluster_state:ok",
            "cluster_slots_assigned:16384",
            "cluster_slots_ok:16384",
            "cluster_known_nodes:3",
            "cluster_size:1",
        ] {
            assert!(info.lines().any(|l| l == want), "{want} in {info}");
        }
        // RAFT.NODES names the same leader.
        let raft: Vec<String> = cl.raft_nodes(i);
        let raft_leader = raft
            .iter()
            .find(|l| l.contains(" leader"))
            .expect("RAFT.NODES leader");
        assert!(
            raft_leader.starts_with(&format!("{} ", leader + 1)),
            "{raft:?}"
        );
        assert_eq!(raft.len(), 3);
    }
}

#[test]
fn roles_info_and_slot_commands_on_a_follower() {
    let cl = Cluster::start(3);
    let leader = wait_slots_agree(&cl, &[0, 1, 2], Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    for (i, info_role, hello_role) in [(leader, "master", "master"), (follower, "slave", "replica")]
    {
        let mut c = cl.client(i);
        let info = cmd_text(&mut c, &["INFO"]);
        assert!(
            info.contains(&format!("\r\nrole:{info_role}\r\n")),
            "{info}"
        );
        assert!(
            info.contains("# Cluster\r\ncluster_enabled:1\r\n"),
            "{info}"
        );
        let section = cmd_text(&mut c, &["INFO", "cluster"]);
        assert!(
            section.starts_with("# Cluster\r\ncluster_enabled:1\r\n")
                && section.contains("\r\nraftkv_migrations_pending:0\r\n"),
            "{section}"
        );
        // HELLO 3 (issue #14: a follower said master here while INFO said slave).
        let hello = cmd(&mut cl.client(i), &["HELLO", "3"]).expect("HELLO 3");
        assert_eq!(
            field(&hello, "role").and_then(text).as_deref(),
            Some(hello_role)
        );
        assert_eq!(
            field(&hello, "mode").and_then(text).as_deref(),
            Some("cluster")
        );
    }
    let mut c = cl.client(follower);
    // One group owns every slot: multi-key commands over any slots work (forwarded).
    assert_eq!(
        cmd_text(
            &mut c,
            &["MSET", "a", "1", "b", "2", "{t}x", "3", "{t}y", "4"]
        ),
        "OK"
    );
    let mget = cmd(&mut c, &["MGET", "a", "b"]).expect("MGET");
    assert_eq!(
        mget,
        Value::Array(vec![
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"2".to_vec())
        ])
    );
    let slot = int(&cmd(&mut c, &["CLUSTER", "KEYSLOT", "{t}x"]).expect("keyslot")).expect("int");
    assert_eq!(
        cmd(&mut c, &["CLUSTER", "KEYSLOT", "foo"]).expect("keyslot"),
        Value::Int(12182)
    );
    // Linearizable on a follower: the write just acknowledged is counted.
    let s = slot.to_string();
    assert_eq!(
        cmd(&mut c, &["CLUSTER", "COUNTKEYSINSLOT", &s]).expect("count"),
        Value::Int(2)
    );
    assert_eq!(
        cmd(&mut c, &["CLUSTER", "GETKEYSINSLOT", &s, "1"]).expect("getkeys"),
        Value::Array(vec![Value::BulkString(b"{t}x".to_vec())])
    );
    let bad = |args: &[&str]| {
        cmd(&mut cl.client(follower), args)
            .expect_err("refused")
            .to_string()
    };
    assert!(bad(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]).contains("Invalid slot"));
    assert!(
        bad(&["CLUSTER", "GETKEYSINSLOT", "1", "-1"]).contains("Invalid slot or number of keys")
    );
    assert!(bad(&["CLUSTER", "NOPE"]).contains("unknown subcommand 'NOPE'. Try CLUSTER HELP."));
    // The internal address record is never accepted from a client.
    assert!(bad(&["RAFTKV.NODEADDR", "1", "10.0.0.1:1"]).contains("unknown command"));
    for cmdname in ["READONLY", "READWRITE", "ASKING"] {
        assert_eq!(cmd_text(&mut c, &[cmdname]), "OK");
    }
}

#[test]
fn a_new_leader_shows_in_cluster_slots_soon_after_kill_9() {
    let mut cl = Cluster::start(3);
    let old = wait_slots_agree(&cl, &[0, 1, 2], Duration::from_secs(20));
    cl.kill(old);
    let live: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = wait_slots_agree(&cl, &live, Duration::from_secs(5));
    assert_ne!(new, old);
    for &i in &live {
        let nodes = cmd_text(&mut cl.client(i), &["CLUSTER", "NODES"]);
        let master: Vec<&str> = nodes.lines().filter(|l| l.contains("master")).collect();
        assert_eq!(master.len(), 1, "{nodes}");
        assert!(
            master[0].contains(&format!("127.0.0.1:{}@", cl.port(new))),
            "{nodes}"
        );
    }
}

fn moved_cluster() -> (Cluster, usize) {
    let cl = Cluster::start_with(3, &["--redirect", "moved"]);
    let leader = wait_slots_agree(&cl, &[0, 1, 2], Duration::from_secs(20));
    (cl, leader)
}

#[test]
fn moved_mode_redirects_followers_and_serves_readonly_reads_there() {
    let (cl, leader) = moved_cluster();
    let follower = (leader + 1) % 3;
    let moved = format!("MOVED 12182 127.0.0.1:{}", cl.port(leader));
    let mut f = cl.client(follower);
    let err = cmd(&mut f, &["SET", "foo", "x"]).expect_err("MOVED");
    assert_eq!(err.code(), Some("MOVED"), "{err}");
    assert!(
        err.to_string().contains("12182") && err.to_string().contains(&moved[12..]),
        "{err}"
    );
    let mut l = cl.client(leader);
    assert_eq!(cmd_text(&mut l, &["SET", "foo", "bar"]), "OK");
    // A read without READONLY is redirected too; with it, served here (never stale).
    assert_eq!(
        cmd(&mut f, &["GET", "foo"]).expect_err("MOVED").code(),
        Some("MOVED")
    );
    assert_eq!(cmd_text(&mut f, &["READONLY"]), "OK");
    assert_eq!(cmd_text(&mut f, &["GET", "foo"]), "bar");
    assert_eq!(cmd_text(&mut l, &["SET", "foo", "baz"]), "OK");
    assert_eq!(cmd_text(&mut f, &["GET", "foo"]), "baz");
    // Writes still go to the leader, READONLY or not.
    assert_eq!(
        cmd(&mut f, &["INCR", "foo"]).expect_err("MOVED").code(),
        Some("MOVED")
    );
    assert_eq!(cmd_text(&mut f, &["READWRITE"]), "OK");
    assert_eq!(
        cmd(&mut f, &["GET", "foo"]).expect_err("MOVED").code(),
        Some("MOVED")
    );
    // Keyless commands are answered anywhere.
    assert_eq!(cmd_text(&mut f, &["PING"]), "PONG");
    let stats = cmd_text(&mut f, &["INFO", "stats"]);
    assert!(stats.contains("total_moved_replies:4"), "{stats}");
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn cluster_clients_work_against_moved_mode() {
    let (cl, leader) = moved_cluster();
    let follower = (leader + 1) % 3;
    let fport = cl.port(follower).to_string();
    // redis-cli -c follows MOVED from the follower to the leader.
    let (ok, out) = run("redis-cli", &["-c", "-p", &fport, "SET", "clikey", "v1"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let other = cl.port((leader + 2) % 3).to_string();
    let (ok, out) = run("redis-cli", &["-c", "-p", &other, "GET", "clikey"]);
    assert!(ok && out.trim() == "v1", "{out}");
    // redis-cli --cluster check sees every slot covered, from any node.
    let (ok, out) = run(
        "redis-cli",
        &["--cluster", "check", &format!("127.0.0.1:{fport}")],
    );
    assert!(ok && out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
    assert!(
        !out.contains("[ERR]") && !out.contains("[WARNING]"),
        "{out}"
    );
    // The redis crate's cluster client: keys over many slots.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client =
            redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{fport}/")])
                .expect("cluster client");
        let mut con = client
            .get_async_connection()
            .await
            .expect("cluster connection");
        for i in 0..300 {
            let k = format!("key:{i}");
            let _: () = redis::cmd("SET")
                .arg(&k)
                .arg(i)
                .query_async(&mut con)
                .await
                .expect("SET through the cluster client");
        }
        for i in 0..300 {
            let v: i64 = redis::cmd("GET")
                .arg(format!("key:{i}"))
                .query_async(&mut con)
                .await
                .expect("GET through the cluster client");
            assert_eq!(v, i);
        }
    });
    // `redis-benchmark --cluster` needs two masters at least ("Invalid cluster: 1 node(s)",
    // redis-benchmark.c): with one Raft group there is one master, so it runs once slots
    // are sharded over several groups (issue #10).
}

#[test]
fn a_joining_node_records_its_address_and_learns_everyone_elses() {
    let mut cl = Cluster::start(3);
    wait_slots_agree(&cl, &[0, 1, 2], Duration::from_secs(20));
    // Every log is compacted past the address records, so the new node, which starts
    // empty, learns them only from the snapshot's meta column family.
    for i in 0..3 {
        let index = cmd(&mut cl.client(i), &["RAFT.SNAPSHOT"]).expect("RAFT.SNAPSHOT");
        assert!(int(&index).is_some_and(|n| n >= 4), "{index:?}");
    }
    let new = cl.add_joining_node(0);
    let leader = wait_slots_agree(&cl, &[0, 1, 2, new], Duration::from_secs(30));
    let restored = cl.info_field(new, "raft_snapshots_restored");
    assert_eq!(restored.as_deref(), Some("1"), "caught up by snapshot");
    let nodes = cmd_text(&mut cl.client(new), &["CLUSTER", "NODES"]);
    let mine = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .unwrap_or_else(|| panic!("{nodes}"));
    assert!(
        mine.contains(&format!(" 127.0.0.1:{}@", cl.port(new))),
        "{nodes}"
    );
    assert_eq!(nodes.lines().count(), 4, "{nodes}");
    assert!(!nodes.contains("noaddr"), "{nodes}");
    let master: Vec<&str> = nodes.lines().filter(|l| l.contains("master")).collect();
    assert_eq!(master.len(), 1, "{nodes}");
    assert!(master[0].contains(&format!(" 127.0.0.1:{}@", cl.port(leader))));
}
