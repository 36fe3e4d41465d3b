//! Reproduction of a fault the chaos harness's migration fault found (docs/verification.md,
//! session 7): a node that was down while a slot's last writes and the slot's move happened
//! catches its source group up by snapshot (the snapshot no longer holds the slot), and its
//! target group's `RAFTKV.SLOTS.ADD` then adopts the node's own, older records of the slot.
//! A read on that node must still see the latest write.

mod common;

use std::time::Duration;

use common::{wait_for, Cluster};

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// Waits until node `i` lists no pending migration.
fn wait_migrated(cl: &Cluster, i: usize) {
    wait_for(Duration::from_secs(60), "migrations to finish", || {
        let mut c = cl.try_connect(cl.port(i))?;
        let t: String = q(&mut c, &["RAFT.SHARDGROUP", "QUERY"]).ok()?;
        (!t.contains("migration ")).then_some(())
    });
}

/// The group owning slot 0 and the end of its range from slot 0, per a QUERY text.
fn first_range(text: &str) -> Option<(u64, u16)> {
    text.lines()
        .filter(|l| l.starts_with("group "))
        .find_map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            let ranges = w.get(w.iter().position(|x| *x == "ranges")? + 1)?;
            let hi = ranges.split(',').find_map(|r| r.strip_prefix("0-"))?;
            Some((w.get(1)?.parse().ok()?, hi.parse().ok()?))
        })
}

/// SETs `key` through node 1 until a SET is acknowledged (retrying errors of a group
/// that is electing a leader; SET is idempotent).
fn set_until_ok(cl: &Cluster, key: &str, value: &str) {
    wait_for(Duration::from_secs(30), &format!("SET {key}"), || {
        q::<()>(&mut cl.try_connect(cl.port(0))?, &["SET", key, value]).ok()
    });
}

/// `{06S}x` hashes to slot 0; `{q0}<n>` to slot 3387, in the same group at the start
/// (never moved here).
#[test]

fn a_node_catching_up_by_snapshot_after_a_slot_moved_reads_the_latest_write() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--snapshot-entries", "20"]);
    cl.wait_group_leaders(0, 3);
    let mut c0 = cl.client(0);
    let _: () = q(&mut c0, &["SET", "{06S}x", "old"]).expect("SET old");
    // Node 3 has the old value (every write is on every node once applied).
    wait_for(
        Duration::from_secs(20),
        "node 3 to read the old value",
        || {
            let mut c = cl.try_connect(cl.port(2))?;
            let v: Option<String> = q(&mut c, &["GET", "{06S}x"]).ok()?;
            (v.as_deref() == Some("old")).then_some(())
        },
    );
    cl.kill(2);
    // Slot 0's leader may have been node 3: until a new one is elected a write can
    // fail (or be UNCERTAIN); SET is idempotent, so retry it until it is acknowledged.
    set_until_ok(&cl, "{06S}x", "new");
    let (owner, hi) = wait_for(Duration::from_secs(20), "the slot map", || {
        first_range(&q::<String>(&mut cl.client(0), &["RAFT.SHARDGROUP", "QUERY"]).ok()?)
    });
    assert!(hi >= 3387, "slot 3387 must stay with slot 0's group");
    let to = (owner % 3 + 1).to_string();
    // The metadata group may be electing too: retry the MOVE (a retry of a MOVE that
    // took effect moves nothing), then check where slot 0 went.
    wait_for(Duration::from_secs(30), "MOVE", || {
        let mut c = cl.try_connect(cl.port(0))?;
        q::<i64>(&mut c, &["RAFT.SHARDGROUP", "MOVE", &to, "0"]).ok()
    });
    wait_migrated(&cl, 0);
    // Node 1 may not have applied the MOVE's record yet when it first answers QUERY (no
    // migration line): wait until its view shows the cut-over.
    let (now, _) = wait_for(Duration::from_secs(30), "slot 0 in its new group", || {
        let r = first_range(&q::<String>(&mut cl.client(0), &["RAFT.SHARDGROUP", "QUERY"]).ok()?)?;
        (r.0.to_string() == to).then_some(r)
    });
    assert_eq!(now.to_string(), to, "slot 0 moved to group {to}");
    // Group 1 compacts its log past the REMOVE: node 3 will need its snapshot.
    for i in 0..80 {
        set_until_ok(&cl, &format!("{{q0}}{i}"), "v");
    }
    cl.restart(2);
    let got = wait_for(
        Duration::from_secs(30),
        "a read of slot 0 on node 3",
        || {
            let mut c = cl.try_connect(cl.port(2))?;
            q::<Option<String>>(&mut c, &["GET", "{06S}x"]).ok()
        },
    );
    assert_eq!(got.as_deref(), Some("new"), "node 3 reads a stale value");
    let v: Option<String> = q(&mut cl.client(0), &["GET", "{06S}x"]).expect("GET on node 1");
    assert_eq!(v.as_deref(), Some("new"));
}
