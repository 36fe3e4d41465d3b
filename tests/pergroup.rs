//! `RAFT.NODE ADD|REMOVE ... GROUP <g>`: a created data group moves to other nodes.
//! Three founders with `--groups 3`, nodes 4, 5 and 6 joined; `JOIN 4 4 5` and slots
//! 0-99 (with keys) moved into group 4; `ADD 6 ... GROUP 4` then `REMOVE 4 GROUP 4`:
//! group 4 is on 5 and 6, every key is readable through every node, node 4 still serves
//! and no longer hosts group 4, QUERY and CLUSTER SHARDS show the new members; the
//! clause's errors; after a restart node 6 still hosts it and node 4 does not. And
//! `REPLACE <leader> 6 GROUP 4` (after `ADD 6 ... GROUP 4`): one joint change swaps the
//! group's leader for node 6, which then holds the group's records, the old leader hosts
//! it no more, writes and reads go on through every node, QUERY shows the new voters. A
//! whole-cluster `RAFT.NODE REMOVE 4` asked on node 1, which does not host group 4, takes
//! node 4 out of group 4 too, and node 4 shuts down.

mod common;

use std::time::Duration;

use common::shards::*;
use common::{wait_for, Cluster};

/// `RAFT.NODE <args>` on node `i`: the reply text or the error text.
fn raft_node(cl: &Cluster, i: usize, args: &[&str]) -> Result<String, String> {
    let mut c = cl.try_connect(cl.port(i)).ok_or("no connection")?;
    let mut cmd = redis::cmd("RAFT.NODE");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut c)
        .map_err(|e| format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")))
}

/// Node `i`'s raft address, from its own `RAFT.NODES` line (once it lists itself: a
/// node still joining may not yet).
fn raft_addr(cl: &Cluster, i: usize) -> String {
    wait_for(
        Duration::from_secs(30),
        "the node's own RAFT.NODES line",
        || {
            let lines = cl.raft_nodes(i);
            let mine = lines.iter().find(|l| l.contains("myself"))?;
            mine.split(' ').nth(1).map(str::to_string)
        },
    )
}

/// Group 4's voters and learners in node `i`'s QUERY.
fn members4(cl: &Cluster, i: usize) -> Option<(String, String)> {
    let line = group_line(cl, i, 4)?;
    Some((
        field(&line, "voters")?.to_string(),
        field(&line, "learners")?.to_string(),
    ))
}

/// Three founders with `--groups 3` and nodes 4, 5, 6 joined; group 4 created on nodes 4
/// and 5 and given slots 0-99, where five keys (value = name) are written first. Returns
/// the cluster, the indexes of nodes 4, 5, 6 and the keys.
fn group4_with_keys() -> (Cluster, [usize; 3], Vec<String>) {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
    let (n4, n5, n6) = (
        cl.add_joining_node(0),
        cl.add_joining_node(0),
        cl.add_joining_node(0),
    );
    wait_for(Duration::from_secs(60), "nodes 4-6 recorded", || {
        let e = shardgroup(&cl, 0, &["JOIN", "7", "4", "5", "6", "9"]).err()?;
        e.contains("unknown node id 9").then_some(())
    });
    wait_for(Duration::from_secs(60), "nodes 4, 5 in group 1", || {
        let line = group_line(&cl, 0, 1)?;
        let v = field(&line, "voters")?.to_string();
        (v.split(',').any(|x| x == "4") && v.split(',').any(|x| x == "5")).then_some(())
    });
    assert_eq!(
        shardgroup(&cl, 0, &["JOIN", "4", "4", "5"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(30), "group 4's leader", || {
        group4_leader(&cl, n4)
    });
    let mut c = cl.client(0);
    let keys: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query(&mut c)
                .expect("KEYSLOT");
            slot < 100
        })
        .take(5)
        .collect();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg(k).query(&mut c).expect("SET");
    }
    let moved: i64 = redis::cmd("RAFT.SHARDGROUP")
        .arg("MOVE")
        .arg(4)
        .arg("0-99")
        .query(&mut c)
        .expect("MOVE");
    assert!(moved >= 1);
    wait_for(Duration::from_secs(60), "slots 0-99 in group 4", || {
        (field(&group_line(&cl, 0, 4)?, "slots") == Some("100")).then_some(())
    });
    (cl, [n4, n5, n6], keys)
}

#[test]
fn a_group_moves_to_other_nodes_one_member_at_a_time() {
    let (mut cl, [n4, n5, n6], keys) = group4_with_keys();
    // The errors.
    let a6 = raft_addr(&cl, n6);
    let bad = [
        (vec!["ADD", "6", &a6, "GROUP", "9"], "unknown data group 9"),
        (
            vec!["ADD", "9", "127.0.0.1:1", "GROUP", "4"],
            "node 9 is not in the cluster metadata",
        ),
        (
            vec!["ADD", "5", "127.0.0.1:1", "GROUP", "4"],
            "already a member of group 4",
        ),
        (vec!["REMOVE", "1", "GROUP", "4"], "node 1 is not a member"),
        (
            vec!["REMOVE", "1", "GROUP", "4294967296"],
            "metadata group is not a valid target",
        ),
        (vec!["REMOVE", "1", "GROUP", "x"], "invalid group id"),
    ];
    for (args, why) in &bad {
        let e = raft_node(&cl, 1, args).expect_err("refused");
        assert!(e.contains(why), "{args:?}: {e}");
    }
    // Node 6 joins group 4 (asked on node 2, which does not host it), as a learner that
    // is caught up and promoted; then node 4 leaves it (asked on node 4 itself).
    assert_eq!(
        raft_node(&cl, 1, &["ADD", "6", &a6, "GROUP", "4"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(60), "node 6 a voter of group 4", || {
        let (v, _) = members4(&cl, 0)?;
        (v == "4,5,6").then_some(())
    });
    assert_eq!(
        raft_node(&cl, n4, &["REMOVE", "4", "GROUP", "4"]).as_deref(),
        Ok("OK")
    );
    for i in 0..6 {
        let m = wait_for(Duration::from_secs(30), "group 4 on 5,6 everywhere", || {
            members4(&cl, i).filter(|(v, _)| v == "5,6")
        });
        assert_eq!(m.1, "-", "node {}: no learners", i + 1);
    }
    wait_for(
        Duration::from_secs(30),
        "node 4 hosts group 4 no more",
        || info_line(&cl, n4, "raft_group_4").is_none().then_some(()),
    );
    assert!(
        info_line(&cl, n6, "raft_group_4").is_some(),
        "node 6 hosts it"
    );
    assert!(
        info_line(&cl, n5, "raft_group_4").is_some(),
        "node 5 hosts it"
    );
    for i in 0..6 {
        let mut c = cl.client(i);
        for k in &keys {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).expect("GET");
            assert_eq!(&v, k, "node {}", i + 1);
        }
        let _: () = redis::cmd("SET")
            .arg(&keys[0])
            .arg(&keys[0])
            .query(&mut c)
            .expect("SET");
    }
    let shards: String = format!(
        "{:?}",
        redis::cmd("CLUSTER")
            .arg("SHARDS")
            .query::<redis::Value>(&mut cl.client(n4))
            .expect("SHARDS")
    );
    assert!(
        shards.contains("node6") || shards.contains(&cl.port(n6).to_string()),
        "{shards}"
    );
    // Both keep it that way across a restart: node 6 reopens group 4 from its database,
    // node 4 does not.
    cl.restart(n6);
    cl.restart(n4);
    wait_for(Duration::from_secs(30), "group 4 back on node 6", || {
        let line = info_line(&cl, n6, "raft_group_4")?;
        (!line.contains("leader=0,")).then_some(())
    });
    assert!(
        info_line(&cl, n4, "raft_group_4").is_none(),
        "node 4 reopened it"
    );
    for i in [n4, n6] {
        let mut c = cl.client(i);
        for k in &keys {
            let v: String = redis::cmd("GET")
                .arg(k)
                .query(&mut c)
                .expect("GET after restart");
            assert_eq!(&v, k, "node {}", i + 1);
        }
    }
    assert!(
        info_line(&cl, n4, "raft_group_4").is_none(),
        "node 4 reopened it"
    );
    let _ = n5;
}

#[test]
fn a_group_member_is_replaced_by_another_node_in_one_change() {
    let (mut cl, [n4, n5, n6], keys) = group4_with_keys();
    // Replace the group's leader (the harder case: it hands leadership over first).
    let old = wait_for(Duration::from_secs(30), "group 4's leader", || {
        group4_leader(&cl, n4)
    });
    let (old_i, stay) = if old == 4 { (n4, 5) } else { (n5, 4) };
    let want = format!("{stay},6");
    let a6 = raft_addr(&cl, n6);
    assert_eq!(
        raft_node(&cl, 0, &["ADD", "6", &a6, "GROUP", "4"]).as_deref(),
        Ok("OK")
    );
    // Asked on node 3, which does not host group 4. A TRYAGAIN (leadership not yet
    // moved) is retried; a retry after a change that went through meanwhile is refused
    // ("not a voter"), so the members decide.
    let (old_s, new_s) = (old.to_string(), "6".to_string());
    let args = ["REPLACE", old_s.as_str(), new_s.as_str(), "GROUP", "4"];
    wait_for(Duration::from_secs(60), "REPLACE done", || {
        let r = raft_node(&cl, 2, &args);
        let done = members4(&cl, 2).is_some_and(|(v, _)| v == want);
        (r.as_deref() == Ok("OK") || done).then_some(())
    });
    for i in 0..6 {
        let m = wait_for(Duration::from_secs(30), "group 4 on the new voters", || {
            members4(&cl, i).filter(|(v, _)| *v == want)
        });
        assert_eq!(m.1, "-", "node {}: no learners", i + 1);
    }
    wait_for(
        Duration::from_secs(30),
        "the old leader hosts group 4 no more",
        || {
            info_line(&cl, old_i, "raft_group_4")
                .is_none()
                .then_some(())
        },
    );
    assert!(
        info_line(&cl, n6, "raft_group_4").is_some(),
        "node 6 hosts it"
    );
    // Reads and writes go on through every node, the replaced one included (each node
    // rewrites the first key).
    let mut first = keys[0].clone();
    for i in 0..6 {
        let mut c = cl.client(i);
        for (j, k) in keys.iter().enumerate() {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).expect("GET");
            assert_eq!(&v, if j == 0 { &first } else { k }, "node {}", i + 1);
        }
        let val = format!("v{i}");
        let _: () = redis::cmd("SET")
            .arg(&keys[0])
            .arg(&val)
            .query(&mut c)
            .expect("SET");
        let v: String = redis::cmd("GET").arg(&keys[0]).query(&mut c).expect("GET");
        assert_eq!(v, val, "node {}", i + 1);
        first = val;
    }
    // Node 6's own database holds the group's records (no other node could have
    // answered for them had it been empty: check the disk).
    cl.terminate(n6);
    assert!(
        records_in(&cl, n6, 0, 99) >= keys.len(),
        "node 6 holds slots 0-99's records"
    );
    cl.restart(n6);
    wait_for(Duration::from_secs(30), "group 4 back on node 6", || {
        let line = info_line(&cl, n6, "raft_group_4")?;
        (!line.contains("leader=0,")).then_some(())
    });
    let mut c = cl.client(n6);
    let v: String = redis::cmd("GET").arg(&keys[0]).query(&mut c).expect("GET");
    assert_eq!(v, "v5");
}

#[test]
fn a_node_removed_from_the_cluster_leaves_a_created_group_the_entry_node_does_not_host() {
    let (mut cl, [n4, _n5, n6], keys) = group4_with_keys();
    let a6 = raft_addr(&cl, n6);
    assert_eq!(
        raft_node(&cl, 0, &["ADD", "6", &a6, "GROUP", "4"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(60), "node 6 a voter of group 4", || {
        members4(&cl, 0).filter(|(v, _)| v == "4,5,6")
    });
    // Node 1 hosts no replica of group 4: the removal must reach group 4 all the same.
    wait_for(Duration::from_secs(60), "REMOVE 4 done", || {
        let r = raft_node(&cl, 0, &["REMOVE", "4"]);
        (r.as_deref() == Ok("OK")).then_some(())
    });
    for i in 0..3 {
        wait_for(Duration::from_secs(30), "group 4 on 5,6", || {
            members4(&cl, i).filter(|(v, _)| v == "5,6")
        });
    }
    // Removed from every group, node 4 shuts down.
    cl.wait_exit(n4, Duration::from_secs(30));
    for i in [0, n6] {
        let mut c = cl.client(i);
        for k in &keys {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).expect("GET");
            assert_eq!(&v, k, "node {}", i + 1);
        }
    }
}
