//! The bootstrap groups (`--groups`) are data groups like the created ones: group 1 moves
//! off node 1 (`RAFT.NODE REMOVE 1 GROUP 1`: node 1 closes it, deletes its data, keeps
//! serving its keys through the members and does not found it again after a restart) and
//! back (`ADD ... GROUP 1`: node 1 is caught up again); group 3 leaves the cluster
//! (`RAFT.SHARDGROUP LEAVE 3`: its keys move to groups 1 and 2, every node closes it, its
//! id is not used again, and a restart does not bring it back).

mod common;

use std::time::Duration;

use common::shards::*;
use common::{wait_for, Cluster};

/// `RAFT.NODE <args>` on node `i`, sent again while it answers TRYAGAIN; the reply text
/// or the error text.
fn raft_node(cl: &Cluster, i: usize, args: &[&str]) -> Result<String, String> {
    wait_for(Duration::from_secs(30), "RAFT.NODE answered", || {
        let mut c = cl.try_connect(cl.port(i))?;
        let mut cmd = redis::cmd("RAFT.NODE");
        for a in args {
            cmd.arg(*a);
        }
        match cmd.query::<String>(&mut c) {
            Ok(s) => Some(Ok(s)),
            Err(e) if e.kind() == redis::ErrorKind::TryAgain => None,
            Err(e) => Some(Err(format!(
                "{} {}",
                e.code().unwrap_or(""),
                e.detail().unwrap_or("")
            ))),
        }
    })
}

/// Group `g`'s voters in node `i`'s QUERY.
fn voters(cl: &Cluster, i: usize, g: u64) -> Option<String> {
    Some(field(&group_line(cl, i, g)?, "voters")?.to_string())
}

/// `SET key value` through node `i`, sent again after an error that leaves it unapplied
/// or unknown (SET is idempotent).
fn set(cl: &Cluster, i: usize, key: &str, value: &str) {
    wait_for(Duration::from_secs(30), "SET acknowledged", || {
        let mut c = cl.try_connect(cl.port(i))?;
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut c)
            .ok()
    })
}

fn get(cl: &Cluster, i: usize, key: &str) -> Option<String> {
    let mut c = cl.try_connect(cl.port(i))?;
    redis::cmd("GET").arg(key).query(&mut c).ok()?
}

#[test]
fn a_bootstrap_group_moves_off_a_node_and_back() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
    let mut c = cl.client(0);
    let tag = tag_below(&mut c, 100);
    let keys: Vec<String> = (0..20).map(|i| format!("{{{tag}}}k{i}")).collect();
    for k in &keys {
        set(&cl, 0, k, k);
    }
    assert!(info_line(&cl, 0, "raft_group_1").is_some());
    wait_for(
        Duration::from_secs(60),
        "nodes and members recorded",
        || {
            let e = shardgroup(&cl, 1, &["JOIN", "7", "1", "2", "3", "9"]).err()?;
            (e.contains("unknown node id 9") && voters(&cl, 1, 1)? == "1,2,3").then_some(())
        },
    );
    assert_eq!(
        raft_node(&cl, 1, &["REMOVE", "1", "GROUP", "1"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(30), "node 1 out of group 1", || {
        let out = voters(&cl, 0, 1)? == "2,3";
        (out && info_line(&cl, 0, "raft_group_1").is_none()).then_some(())
    });
    // Node 1 still serves group 1's keys (through the members), reads and writes.
    set(&cl, 0, &keys[0], "new");
    for (i, k) in keys.iter().enumerate() {
        let want = if i == 0 { "new" } else { k.as_str() };
        assert_eq!(get(&cl, 0, k).as_deref(), Some(want), "{k}");
    }
    // A restart does not found the group again.
    cl.kill(0);
    cl.restart(0);
    wait_for(
        Duration::from_secs(30),
        "node 1 serving group 1's keys",
        || (get(&cl, 0, &keys[1]).as_deref() == Some(keys[1].as_str())).then_some(()),
    );
    assert!(info_line(&cl, 0, "raft_group_1").is_none());
    assert!(info_line(&cl, 0, "raft_group_2").is_some());
    assert_eq!(voters(&cl, 1, 1).as_deref(), Some("2,3"));
    // Back: node 1 is added to group 1 again and caught up.
    let addr = format!("127.0.0.1:{}", cl.nodes[0].raft_port);
    assert_eq!(
        raft_node(&cl, 2, &["ADD", "1", &addr, "GROUP", "1"]).as_deref(),
        Ok("OK")
    );
    wait_for(Duration::from_secs(60), "node 1 a voter of group 1", || {
        (voters(&cl, 0, 1)? == "1,2,3").then_some(())
    });
    // Caught up: node 1's replica applied what the group committed before.
    let commit = |i: usize, what: &str| -> Option<u64> {
        let line = info_line(&cl, i, "raft_group_1")?;
        line.split(&format!("{what}="))
            .nth(1)?
            .split(',')
            .next()?
            .parse()
            .ok()
    };
    let target = commit(1, "commit").expect("node 2's group 1");
    wait_for(
        Duration::from_secs(30),
        "node 1's group 1 caught up",
        || (commit(0, "applied")? >= target).then_some(()),
    );
    assert_eq!(get(&cl, 0, &keys[0]).as_deref(), Some("new"));
    // With node 1 back, group 1 survives losing node 2.
    cl.kill(1);
    set(&cl, 0, &keys[1], "without node 2");
    assert_eq!(get(&cl, 2, &keys[1]).as_deref(), Some("without node 2"));
    cl.restart(1);
}

#[test]
fn a_bootstrap_group_leaves_for_good() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
    let keys: Vec<String> = (0..60).map(|i| format!("key{i}")).collect();
    for k in &keys {
        set(&cl, 1, k, k);
    }
    let moves = admin_int(&cl, 1, &["RAFT.SHARDGROUP", "LEAVE", "3"]);
    assert!(moves > 0);
    wait_for(Duration::from_secs(120), "group 3 gone everywhere", || {
        let q = shardgroup(&cl, 0, &["QUERY"]).ok()?;
        let gone = group_line(&cl, 0, 3).is_none() && !q.contains("migration ");
        let closed = (0..3).all(|i| info_line(&cl, i, "raft_group_3").is_none());
        (gone && closed).then_some(())
    });
    for i in 0..3 {
        for k in &keys {
            assert_eq!(
                get(&cl, i, k).as_deref(),
                Some(k.as_str()),
                "node {}",
                i + 1
            );
        }
    }
    let e = shardgroup(&cl, 0, &["JOIN", "3", "1"]).expect_err("id 3 again");
    assert!(e.contains("not used again"), "{e}");
    let e = shardgroup(&cl, 0, &["LEAVE", "3"]).expect_err("gone");
    assert!(e.contains("unknown data group 3"), "{e}");
    // A restarted node does not bring it back.
    cl.kill(2);
    cl.restart(2);
    wait_for(Duration::from_secs(30), "node 3 serving", || {
        (get(&cl, 2, &keys[0]).as_deref() == Some("key0")).then_some(())
    });
    assert!(info_line(&cl, 2, "raft_group_3").is_none());
    set(&cl, 2, &keys[5], "after");
    assert_eq!(get(&cl, 0, &keys[5]).as_deref(), Some("after"));
}
