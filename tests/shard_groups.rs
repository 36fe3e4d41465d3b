//! `RAFT.SHARDGROUP JOIN` and `LEAVE`: data groups created at runtime on some nodes only.
//! Three founders with `--groups 3`, nodes 4 and 5 joined; `JOIN 4 4 5` records group 4
//! and nodes 4 and 5 (only) start its peer and elect a leader among themselves; bad JOINs
//! get specific errors; QUERY, CLUSTER SHARDS and INFO raft show the group on every node;
//! it comes back after node 4 restarts; slots moved into it are served from every node
//! (nodes 1-3, which do not host it, forward to its members, or answer `-MOVED` with
//! `--redirect moved`); with `--auto-rebalance` a JOIN spreads the slots over the groups
//! by itself, and a LEAVE gives them back and removes the group everywhere.

mod common;

use std::time::Duration;

use common::shards::*;
use common::{wait_for, Cluster};

#[test]
fn a_joined_group_runs_on_its_nodes_only_and_serves_through_every_node() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
    let n4 = cl.add_joining_node(0);
    let n5 = cl.add_joining_node(0);
    // Both joiners in every bootstrap group (so slots can move from group 1 to 4 later).
    wait_for(Duration::from_secs(60), "nodes 4 and 5 in group 1", || {
        let line = group_line(&cl, 0, 1)?;
        let v = field(&line, "voters")?.to_string() + "," + field(&line, "learners")?;
        (v.split(',').any(|x| x == "4") && v.split(',').any(|x| x == "5")).then_some(())
    });
    // Nodes 4 and 5 recorded in node 2's metadata (a JOIN naming them checks that).
    wait_for(Duration::from_secs(30), "nodes 4 and 5 recorded", || {
        let e = shardgroup(&cl, 1, &["JOIN", "7", "4", "5", "9"]).err()?;
        e.contains("unknown node id 9").then_some(())
    });
    // Bad JOINs, each with its reason (node 9 is unknown, group 2 exists).
    let bad = [
        (vec!["JOIN", "0", "4"], "invalid group id"),
        (vec!["JOIN", "70000", "4"], "invalid group id"),
        (vec!["JOIN", "2", "4", "5"], "already exists"),
        (vec!["JOIN", "7", "4", "9"], "unknown node id 9"),
        (vec!["JOIN", "7", "4", "4"], "given twice"),
        (vec!["JOIN", "7"], "wrong number of arguments"),
    ];
    for (args, why) in &bad {
        let e = shardgroup(&cl, 1, args).expect_err("a bad JOIN is refused");
        assert!(e.contains(why), "{args:?}: {e}");
    }
    // From node 2 (forwarded to the metadata leader).
    assert_eq!(
        shardgroup(&cl, 1, &["JOIN", "4", "4", "5"]).as_deref(),
        Ok("OK")
    );
    let leader = wait_for(Duration::from_secs(30), "group 4's leader", || {
        group4_leader(&cl, n4)
    });
    assert_eq!(
        wait_for(Duration::from_secs(10), "node 5 agrees", || group4_leader(
            &cl, n5
        )),
        leader
    );
    let e = shardgroup(&cl, 0, &["JOIN", "4", "4", "5"]).expect_err("a repeat");
    assert!(e.contains("group 4 already exists"), "{e}");
    // Every node lists it, with its members and no slots; the founders host none of it.
    for i in 0..5 {
        let line = wait_for(Duration::from_secs(10), "group 4 in QUERY", || {
            group_line(&cl, i, 4)
        });
        assert_eq!(
            field(&line, "voters"),
            Some("4,5"),
            "node {}: {line}",
            i + 1
        );
        assert_eq!(field(&line, "slots"), Some("0"), "{line}");
    }
    let on_founder = group_line(&cl, 0, 4).expect("QUERY");
    assert!(matches!(
        field(&on_founder, "leader"),
        Some("0" | "4" | "5")
    ));
    assert_eq!(
        field(&group_line(&cl, n4, 4).expect("QUERY"), "leader"),
        Some(leader.to_string().as_str())
    );
    for i in 0..3 {
        assert!(
            info_line(&cl, i, "raft_group_4").is_none(),
            "node {}",
            i + 1
        );
        let remote = info_line(&cl, i, "raft_remote_group_4").expect("remote line");
        assert!(remote.ends_with("voters=4,5"), "{remote}");
    }
    let mut c = cl.client(0);
    let shards: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query(&mut c)
        .expect("CLUSTER SHARDS");
    assert_eq!(shards.len(), 4);
    // Node 4 restarts: the group comes back from its database, and elects again.
    cl.restart(n4);
    wait_for(Duration::from_secs(30), "group 4 back on node 4", || {
        group4_leader(&cl, n4)
    });
    // A key in slots 0-99 moves to group 4 (nodes 4 and 5 host group 1 too, so the records
    // are handed over in their databases); every node serves it after the cut-over.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query(&mut c)
                .expect("KEYSLOT");
            slot < 100
        })
        .expect("a key in slots 0-99");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("before")
        .query(&mut c)
        .expect("SET");
    let moved = admin_int(&cl, 0, &["RAFT.SHARDGROUP", "MOVE", "4", "0-99"]);
    assert!(moved >= 1);
    wait_for(Duration::from_secs(60), "slots 0-99 in group 4", || {
        let line = group_line(&cl, 0, 4)?;
        (field(&line, "slots") == Some("100")).then_some(())
    });
    let mut last = "before".to_string();
    for i in 0..5 {
        let mut c = cl.client(i);
        let v: String = redis::cmd("GET").arg(&key).query(&mut c).expect("GET");
        assert_eq!(v, last, "node {}", i + 1);
        last = format!("by{i}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(format!("by{i}"))
            .query(&mut c)
            .expect("SET");
    }
    let mut c = cl.client(n5);
    let v: String = redis::cmd("GET").arg(&key).query(&mut c).expect("GET");
    assert_eq!(v, "by4");
    // Keyed reads that need the group's own store are refused where it is not hosted
    // (never answered from another group's store).
    let mut c = cl.client(0);
    let e = redis::cmd("WATCH")
        .arg(&key)
        .query::<String>(&mut c)
        .expect_err("WATCH on node 1");
    assert!(format!("{e}").contains("does not host"), "{e}");
    let e = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(0)
        .query::<i64>(&mut c)
        .expect_err("COUNTKEYSINSLOT on node 1");
    assert!(format!("{e}").contains("does not host"), "{e}");
    let mut c4 = cl.client(n4);
    let n: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(0)
        .query(&mut c4)
        .expect("COUNTKEYSINSLOT on node 4");
    assert!(n >= 0);
}

#[test]
fn a_joined_group_takes_its_share_of_the_slots_by_itself() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    let mut c = cl.client(0);
    let tag = tag_below(&mut c, 16384);
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg(k).query(&mut c).expect("SET");
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{{{tag}}}ttl"))
        .arg("v")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .expect("SET EX");
    let n4 = cl.add_joining_node(0);
    let _n5 = cl.add_joining_node(0);
    wait_for(Duration::from_secs(30), "nodes 4 and 5 recorded", || {
        let e = shardgroup(&cl, 0, &["JOIN", "7", "4", "5", "9"]).err()?;
        e.contains("unknown node id 9").then_some(())
    });
    assert_eq!(
        shardgroup(&cl, 0, &["JOIN", "4", "4", "5"]).as_deref(),
        Ok("OK")
    );
    // Four groups of 4096 slots, nothing left to move.
    wait_for(
        Duration::from_secs(120),
        "an even spread over four groups",
        || {
            let q = shardgroup(&cl, 0, &["QUERY"]).ok()?;
            let counts: Vec<&str> = q
                .lines()
                .filter(|l| l.starts_with("group "))
                .filter_map(|l| field(l, "slots"))
                .collect();
            (counts == ["4096"; 4] && !q.contains("migration ")).then_some(())
        },
    );
    for i in [0, n4] {
        let mut c = cl.client(i);
        for k in &keys {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).expect("GET");
            assert_eq!(&v, k, "node {}", i + 1);
        }
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{{{tag}}}ttl"))
            .query(&mut c)
            .expect("TTL");
        assert!(ttl > 900, "TTL {ttl}");
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
        assert_eq!(n, 201, "node {}", i + 1);
    }
    // LEAVE: unknown groups are refused; group 4's slots move back to groups 1-3, then it
    // is gone from the metadata and from nodes 4 and 5.
    let e = shardgroup(&cl, 1, &["LEAVE", "9"]).expect_err("an unknown group");
    assert!(e.contains("unknown data group 9"), "{e}");
    let moves = admin_int(&cl, 1, &["RAFT.SHARDGROUP", "LEAVE", "4"]);
    assert!(moves > 0);
    wait_for(Duration::from_secs(120), "back to three groups", || {
        let q = shardgroup(&cl, 0, &["QUERY"]).ok()?;
        let counts: Vec<&str> = q
            .lines()
            .filter(|l| l.starts_with("group "))
            .filter_map(|l| field(l, "slots"))
            .collect();
        (counts.len() == 3 && !q.contains("migration ")).then_some(counts.join(","))
    });
    for i in [n4, _n5] {
        wait_for(Duration::from_secs(20), "group 4 closed", || {
            let info = info_line(&cl, i, "raft_groups")?;
            (info == "raft_groups:3" && info_line(&cl, i, "raft_group_4").is_none()).then_some(())
        });
    }
    for i in [1, n4] {
        let mut c = cl.client(i);
        for k in &keys {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).expect("GET");
            assert_eq!(&v, k, "node {}", i + 1);
        }
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
        assert_eq!(n, 201, "node {}", i + 1);
    }
    // Its id is not used again (a node down meanwhile may hold its old raft log).
    let e = shardgroup(&cl, 0, &["JOIN", "4", "4"]).expect_err("a removed id");
    assert!(e.contains("not used again"), "{e}");
    assert_eq!(shardgroup(&cl, 0, &["JOIN", "5", "4"]).as_deref(), Ok("OK"));
}

#[test]
fn moved_mode_sends_clients_to_the_members_of_a_group_hosted_elsewhere() {
    let mut cl = Cluster::start_with(
        3,
        &[
            "--groups",
            "3",
            "--auto-rebalance",
            "no",
            "--redirect",
            "moved",
        ],
    );
    let n4 = cl.add_joining_node(0);
    let n5 = cl.add_joining_node(0);
    wait_for(
        Duration::from_secs(60),
        "nodes 4 and 5 recorded and in group 1",
        || {
            let line = group_line(&cl, 0, 1)?;
            let v = field(&line, "voters")?.to_string() + "," + field(&line, "learners")?;
            let both = v.split(',').any(|x| x == "4") && v.split(',').any(|x| x == "5");
            let e = shardgroup(&cl, 0, &["JOIN", "7", "4", "5", "9"]).err()?;
            (both && e.contains("unknown node id 9")).then_some(())
        },
    );
    assert_eq!(
        shardgroup(&cl, 0, &["JOIN", "4", "4", "5"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(30), "group 4's leader", || {
        group4_leader(&cl, n4)
    });
    let mut c = cl.client(0);
    let tag = tag_below(&mut c, 100);
    let key = format!("{{{tag}}}m");
    let (r, _) = follow_moved(cl.port(0), &["SET", &key, "v"]);
    assert!(r.is_ok(), "{r:?}");
    let moved = admin_int(&cl, 0, &["RAFT.SHARDGROUP", "MOVE", "4", "0-99"]);
    assert!(moved >= 1);
    wait_for(Duration::from_secs(60), "slots 0-99 in group 4", || {
        let q = shardgroup(&cl, 0, &["QUERY"]).ok()?;
        let line = group_line(&cl, 0, 4)?;
        (field(&line, "slots") == Some("100") && !q.contains("migration ")).then_some(())
    });
    // Node 1 hosts no replica of group 4: it redirects to a member of it, which serves the
    // key (or redirects once more to its leader).
    let members = [cl.port(n4), cl.port(n5)];
    for args in [vec!["SET", key.as_str(), "w"], vec!["GET", key.as_str()]] {
        let (r, hops) = follow_moved(cl.port(0), &args);
        assert!(r.is_ok(), "{args:?}: {r:?}");
        assert_eq!(hops.first(), Some(&cl.port(0)), "node 1 redirects");
        assert!(hops[1..].iter().all(|p| members.contains(p)), "{hops:?}");
    }
    let (r, _) = follow_moved(cl.port(1), &["GET", &key]);
    assert_eq!(r.expect("GET"), redis::Value::BulkString(b"w".to_vec()));
}
