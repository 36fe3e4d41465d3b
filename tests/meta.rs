//! The cluster metadata Raft group on real processes (3 nodes, 3 data groups): every node
//! shows the same config epoch, node ids and addresses (CLUSTER INFO / NODES), stable
//! across a restart of every node; kill -9 of the metadata leader elects another and the
//! views keep serving; a `--join` node with a wrong `--groups` is refused, with the right
//! one it learns the layout from the metadata group (caught up by snapshot), shows on
//! every node, and leaves the metadata when removed.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for, Cluster};

/// Epoch of a settled 3-node, 3-group cluster: the layout (1), three node records (3) and
/// the members of the three data groups and of the metadata group (4).
const SETTLED_EPOCH: u64 = 8;

fn cluster_info(cl: &Cluster, i: usize) -> Option<BTreeMap<String, String>> {
    let mut c = cl.try_connect(cl.port(i))?;
    let text: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}

fn epoch(cl: &Cluster, i: usize) -> Option<u64> {
    cluster_info(cl, i)?
        .get("cluster_current_epoch")?
        .parse()
        .ok()
}

/// CLUSTER NODES of node `i` as node id → `ip:port@cport` (flags and roles left out: they
/// differ by viewpoint).
fn nodes(cl: &Cluster, i: usize) -> Option<BTreeMap<String, String>> {
    let mut c = cl.try_connect(cl.port(i))?;
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).ok()?;
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.first()?.to_string(), f.get(1)?.to_string()))
        })
        .collect()
}

fn myid(cl: &Cluster, i: usize) -> Option<String> {
    let mut c = cl.try_connect(cl.port(i))?;
    redis::cmd("CLUSTER").arg("MYID").query(&mut c).ok()
}

/// Waits until the running nodes `live` agree on `want` nodes (all with addresses) and on
/// one epoch of at least `min_epoch`; returns the node table and the epoch.
fn wait_agreed(
    cl: &Cluster,
    live: &[usize],
    want: usize,
    min_epoch: u64,
) -> (BTreeMap<String, String>, u64) {
    wait_for(
        Duration::from_secs(40),
        "nodes agreeing on the metadata",
        || {
            let first = nodes(cl, live[0])?;
            let e = epoch(cl, live[0])?;
            let complete = first.len() == want && first.values().all(|a| !a.starts_with(":0"));
            let same = live
                .iter()
                .all(|&i| nodes(cl, i).as_ref() == Some(&first) && epoch(cl, i) == Some(e));
            (complete && same && e >= min_epoch).then_some((first, e))
        },
    )
}

fn meta_leader(cl: &Cluster, i: usize) -> Option<u64> {
    cluster_info(cl, i)?
        .get("raftkv_meta_leader")?
        .parse()
        .ok()
        .filter(|&l| l != 0)
}

/// The `raft_meta` line of INFO raft of node `i`, as fields.
fn raft_meta(cl: &Cluster, i: usize) -> Option<BTreeMap<String, String>> {
    let line = cl.info_field(i, "raft_meta")?;
    Some(
        line.split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Whether `v` holds the bulk string `s` anywhere.
fn holds(v: &redis::Value, s: &str) -> bool {
    match v {
        redis::Value::BulkString(b) => b == s.as_bytes(),
        redis::Value::Array(a) => a.iter().any(|x| holds(x, s)),
        redis::Value::Map(m) => m.iter().any(|(k, x)| holds(k, s) || holds(x, s)),
        _ => false,
    }
}

/// How many shards of CLUSTER SHARDS of node `i` list node id `id`.
fn shards_with(cl: &Cluster, i: usize, id: &str) -> Option<usize> {
    let mut c = cl.try_connect(cl.port(i))?;
    let shards: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SHARDS").query(&mut c).ok()?;
    Some(shards.iter().filter(|s| holds(s, id)).count())
}

#[test]
fn epoch_and_node_ids_agree_everywhere_and_survive_restarting_every_node() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    let (table, e) = wait_agreed(&cl, &[0, 1, 2], 3, SETTLED_EPOCH);
    assert_eq!(e, SETTLED_EPOCH, "one epoch per metadata change");
    let ids: Vec<String> = (0..3).map(|i| myid(&cl, i).expect("MYID")).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id.len(), 40);
        let addr = &table[id];
        assert!(
            addr.starts_with(&format!("127.0.0.1:{}@", cl.port(i))),
            "{addr}"
        );
    }
    let info = cluster_info(&cl, 1).expect("CLUSTER INFO");
    assert_eq!(info["raftkv_data_groups"], "3");
    assert_eq!(info["cluster_known_nodes"], "3");
    for i in 0..3 {
        cl.terminate(i);
    }
    for i in 0..3 {
        cl.spawn_node(i);
    }
    for i in 0..3 {
        cl.wait_serving(i);
    }
    let (after, e2) = wait_agreed(&cl, &[0, 1, 2], 3, SETTLED_EPOCH);
    assert_eq!(
        after, table,
        "node ids and addresses stable across restarts"
    );
    assert_eq!(e2, SETTLED_EPOCH, "a restart changes no metadata");
    let again: Vec<String> = (0..3).map(|i| myid(&cl, i).expect("MYID")).collect();
    assert_eq!(again, ids);
    let mut c = cl.client(2);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut c)
        .expect("SET");
}

#[test]
fn killing_the_metadata_leader_elects_another_and_views_keep_serving() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    let (table, e) = wait_agreed(&cl, &[0, 1, 2], 3, SETTLED_EPOCH);
    let old = wait_for(Duration::from_secs(10), "a metadata leader", || {
        meta_leader(&cl, 0)
    });
    let victim = old as usize - 1;
    cl.kill(victim);
    let live: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let new = wait_for(Duration::from_secs(20), "a new metadata leader", || {
        let l = meta_leader(&cl, live[0])?;
        (l != old && live.iter().all(|&i| meta_leader(&cl, i) == Some(l))).then_some(l)
    });
    assert_ne!(new, old);
    for &i in &live {
        // The views still answer from the applied metadata: same nodes, same epoch.
        assert_eq!(nodes(&cl, i).as_ref(), Some(&table));
        assert_eq!(epoch(&cl, i), Some(e));
        // Groups the victim led elect new leaders: every slot is served again.
        wait_for(
            Duration::from_secs(20),
            "three shards in CLUSTER SLOTS",
            || {
                let mut c = cl.try_connect(cl.port(i))?;
                let slots: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).ok()?;
                matches!(slots, redis::Value::Array(ref a) if a.len() == 3).then_some(())
            },
        );
    }
    // The returning node catches up with the metadata and agrees again.
    cl.restart(victim);
    let (back, e2) = wait_agreed(&cl, &[0, 1, 2], 3, e);
    assert_eq!((back, e2), (table, e));
}

#[test]
fn a_joiner_learns_the_layout_from_the_metadata_group() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--snapshot-entries", "4"]);
    let (_, e) = wait_agreed(&cl, &[0, 1, 2], 3, SETTLED_EPOCH);
    // `--snapshot-entries 4` compacted the metadata group's log (more than 4 entries):
    // the joiner gets its state by snapshot.
    wait_for(Duration::from_secs(20), "compacted metadata logs", || {
        (0..3)
            .all(|i| raft_meta(&cl, i).is_some_and(|m| m["snapshot_index"] != "0"))
            .then_some(())
    });
    // Leaders spread one per node first: raft-node names a received snapshot by its term
    // and index only, so two leaders' snapshots of one group at the same index collide on
    // the receiver (a known raft-node issue this test keeps out of its way).
    wait_for(Duration::from_secs(30), "one master per node", || {
        let mut c = cl.try_connect(cl.port(0))?;
        let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).ok()?;
        let masters = text
            .lines()
            .filter(|l| l.contains("master") && l.split(' ').count() > 8)
            .count();
        (masters == 3).then_some(())
    });
    // A joiner whose --groups disagrees with the cluster's layout is refused.
    let wrong_dir = cl.dir.path().join("wrong");
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--join", &format!("127.0.0.1:{}", cl.port(0))])
        .args(["--peer-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--id", "9", "--port", &free_port().to_string()])
        .args([
            "--data-dir",
            wrong_dir.to_str().expect("utf8"),
            "--groups",
            "2",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run raftkv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong --groups must be refused");
    assert!(
        stderr.contains("3 data group(s) but --groups 2") && stderr.contains("--groups 3"),
        "{stderr}"
    );
    // With the cluster's --groups it joins: metadata group first, then every data group.
    let j = cl.add_joining_node(0);
    let (table, e2) = wait_agreed(&cl, &[0, 1, 2, j], 4, e + 1);
    let id = myid(&cl, j).expect("MYID");
    assert!(table[&id].starts_with(&format!("127.0.0.1:{}@", cl.port(j))));
    let info = cluster_info(&cl, j).expect("CLUSTER INFO");
    assert_eq!(info["raftkv_data_groups"], "3");
    assert_eq!(info["cluster_state"], "ok");
    // Its metadata came with a snapshot of the metadata group.
    let m = wait_for(Duration::from_secs(20), "the joiner's metadata", || {
        raft_meta(&cl, j).filter(|m| m.get("epoch").and_then(|e| e.parse().ok()) >= Some(e2))
    });
    assert_ne!(m["snapshots_restored"], "0", "{m:?}");
    let mut c = cl.client(j);
    let _: () = redis::cmd("SET")
        .arg("{j}k")
        .arg("v")
        .query(&mut c)
        .expect("SET via joiner");
    // It replicates every shard, as every node sees it (RAFT.NODE REMOVE below runs on node 1
    // and skips groups its view does not show the node in).
    wait_for(Duration::from_secs(30), "the joiner in every shard", || {
        (0..=j)
            .all(|i| shards_with(&cl, i, &id) == Some(3))
            .then_some(())
    });
    // Removing it takes it out of every group and its record out of the metadata.
    let mut c = cl.client(0);
    let _: () = redis::cmd("RAFT.NODE")
        .arg("REMOVE")
        .arg(cl.nodes[j].id)
        .query(&mut c)
        .expect("RAFT.NODE REMOVE");
    let status = cl.wait_exit(j, Duration::from_secs(30));
    assert!(status.success(), "a removed node shuts down cleanly");
    let (left, e3) = wait_agreed(&cl, &[0, 1, 2], 3, e2 + 1);
    assert!(!left.contains_key(&id), "{left:?}");
    assert!(e3 > e2);
}

#[test]
fn a_founder_with_another_group_count_stops_once_it_learns_the_layout() {
    let cl = Cluster::start_without(3, &["--groups", "3"], &[2]);
    wait_for(Duration::from_secs(20), "the layout", || {
        let info = cluster_info(&cl, 0)?;
        (info.get("raftkv_data_groups")? == "3").then_some(())
    });
    let cluster: Vec<String> = cl
        .nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.raft_port))
        .collect();
    let n = &cl.nodes[2];
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args([
            "--cluster",
            &cluster.join(","),
            "--id",
            "3",
            "--tick-ms",
            "20",
        ])
        .args(["--port", &n.redis_port.to_string()])
        .args([
            "--data-dir",
            n.data_dir.to_str().expect("utf8"),
            "--groups",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn raftkv");
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(30), "the founder to stop", || {
            child.try_wait().ok().flatten()
        })
    }));
    let _ = child.kill();
    let status = status.expect("the founder with --groups 2 did not stop");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success());
    assert!(
        stderr.contains("3 data group(s) but --groups 2 was given; start with --groups 3"),
        "{stderr}"
    );
}
