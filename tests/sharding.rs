//! Slot sharding on a real 3-node cluster with three data groups (`--groups 3`, the
//! default of the binary): each group's leader on its own node, keys of every slot served
//! from any node, multi-key commands over several groups fanned out (MGET, DEL, EXISTS,
//! KEYS, DBSIZE, SCAN), `-CROSSSLOT` where Redis Cluster gives it (MSET, MULTI), strict
//! `-MOVED` routing followed by real cluster clients, and kill -9 of a group leader.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Cluster};
use redis::Value;

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// The leader port of each shard, from CLUSTER SHARDS of node `i` (one entry per shard,
/// in slot order), when every shard has a master.
fn shard_masters(cl: &Cluster, i: usize) -> Option<Vec<i64>> {
    let mut c = cl.try_connect(cl.port(i))?;
    let shards: Vec<Value> = q(&mut c, &["CLUSTER", "SHARDS"]).ok()?;
    let mut out = Vec::new();
    for s in shards {
        let Value::Array(fields) = s else { return None };
        let nodes = fields
            .chunks(2)
            .find(|kv| matches!(&kv[0], Value::BulkString(b) if b == b"nodes"))?;
        let Value::Array(nodes) = &nodes[1] else {
            return None;
        };
        let mut master = None;
        for n in nodes {
            let Value::Array(f) = n else { return None };
            let get = |name: &[u8]| {
                f.chunks(2)
                    .find(|kv| matches!(&kv[0], Value::BulkString(b) if b == name))
                    .map(|kv| kv[1].clone())
            };
            if get(b"role") == Some(Value::BulkString(b"master".to_vec())) {
                if let Some(Value::Int(p)) = get(b"port") {
                    master = Some(p);
                }
            }
        }
        out.push(master?);
    }
    Some(out)
}

/// Waits until node `i` reports three shards whose masters are three different nodes.
fn wait_spread(cl: &Cluster, i: usize) -> Vec<i64> {
    wait_for(
        Duration::from_secs(30),
        "leaders spread one per node",
        || {
            let m = shard_masters(cl, i)?;
            let distinct: BTreeSet<_> = m.iter().collect();
            (m.len() == 3 && distinct.len() == 3).then_some(m)
        },
    )
}

#[test]
fn three_groups_spread_leaders_and_serve_every_slot_from_any_node() {
    let cl = Cluster::start_with(3, &["--groups", "3"]);
    let masters = wait_spread(&cl, 0);
    let ports: BTreeSet<i64> = (0..3).map(|i| cl.port(i) as i64).collect();
    assert_eq!(masters.iter().copied().collect::<BTreeSet<_>>(), ports);
    let mut c1 = cl.client(0);
    let mut c3 = cl.client(2);
    for i in 0..300 {
        let _: () = q(&mut c1, &["SET", &format!("key:{i}"), &i.to_string()]).expect("SET");
    }
    for i in 0..300 {
        let v: i64 = q(&mut c3, &["GET", &format!("key:{i}")]).expect("GET");
        assert_eq!(v, i);
    }
    // Fan-out over groups, combined as one reply.
    let keys: Vec<String> = (0..20).map(|i| format!("key:{i}")).collect();
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    let vals: Vec<i64> = q(&mut c3, &mget).expect("MGET");
    assert_eq!(vals, (0..20).collect::<Vec<i64>>());
    let mut exists = vec!["EXISTS", "nope"];
    exists.extend(keys.iter().map(String::as_str));
    assert_eq!(q::<i64>(&mut c1, &exists).expect("EXISTS"), 20);
    let n: i64 = q(&mut c1, &["DBSIZE"]).expect("DBSIZE");
    assert_eq!(n, 300);
    let all: Vec<String> = q(&mut c3, &["KEYS", "key:*"]).expect("KEYS");
    assert_eq!(all.len(), 300);
    // SCAN's cursor walks every group once.
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    loop {
        let (next, batch): (String, Vec<String>) =
            q(&mut c1, &["SCAN", &cursor, "COUNT", "50"]).expect("SCAN");
        seen.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 300);
    // CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT read the slot's own group.
    for i in 0..10 {
        let key = format!("key:{i}");
        let slot: i64 = q(&mut c1, &["CLUSTER", "KEYSLOT", &key]).expect("KEYSLOT");
        let n: i64 = q(&mut c3, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
            .expect("COUNTKEYSINSLOT");
        assert!(n >= 1, "{key} in slot {slot}: {n}");
        let keys: Vec<String> = q(
            &mut c1,
            &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"],
        )
        .expect("GETKEYSINSLOT");
        assert!(keys.contains(&key), "{key}: {keys:?}");
    }
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    assert_eq!(q::<i64>(&mut c3, &del).expect("DEL"), 20);
    assert_eq!(q::<i64>(&mut c1, &["DBSIZE"]).expect("DBSIZE"), 280);
}

#[test]
fn atomic_multi_key_commands_need_one_slot() {
    let cl = Cluster::start_with(3, &["--groups", "3"]);
    wait_spread(&cl, 0);
    let mut c = cl.client(1);
    let cross = "CROSSSLOT Keys in the request don't hash to the same slot";
    let e = q::<()>(&mut c, &["MSET", "a", "1", "b", "2"]).expect_err("MSET over slots");
    assert!(e.to_string().contains("don't hash to the same slot"), "{e}");
    let _: () = q(&mut c, &["MSET", "{u}a", "1", "{u}b", "2"]).expect("tagged MSET");
    let v: Vec<i64> = q(&mut c, &["MGET", "{u}a", "{u}b"]).expect("MGET");
    assert_eq!(v, vec![1, 2]);
    // A transaction over two slots: the command is refused and EXEC aborts.
    let _: () = q(&mut c, &["MULTI"]).expect("MULTI");
    let _: String = q(&mut c, &["SET", "a", "1"]).expect("queued");
    let e = q::<String>(&mut c, &["SET", "b", "1"]).expect_err("other slot");
    assert!(e.to_string().contains("same slot"), "{e} / {cross}");
    let e = q::<Value>(&mut c, &["EXEC"]).expect_err("EXECABORT");
    assert!(
        e.to_string()
            .contains("discarded because of previous errors"),
        "{e}"
    );
    // One slot: atomic as usual.
    let _: () = q(&mut c, &["MULTI"]).expect("MULTI");
    let _: String = q(&mut c, &["INCR", "{t}n"]).expect("queued");
    let _: String = q(&mut c, &["INCR", "{t}n"]).expect("queued");
    let r: Vec<i64> = q(&mut c, &["EXEC"]).expect("EXEC");
    assert_eq!(r, vec![1, 2]);
}

#[test]
fn moved_mode_serves_cluster_clients_and_survives_a_leader_kill() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--redirect", "moved"]);
    let masters = wait_spread(&cl, 0);
    // A node that does not lead slot 0's group answers MOVED to the one that does. The
    // leaders a node reports may lag a hand-over still settling: asked again until they agree
    // (an idempotent SET, so an attempt that reached the leader changes nothing).
    wait_for(
        Duration::from_secs(20),
        "a non-leader to answer MOVED",
        || {
            let masters = shard_masters(&cl, 0)?;
            let other = (0..3).find(|&i| cl.port(i) as i64 != masters[0])?;
            let e = q::<()>(&mut cl.client(other), &["SET", "{06S}x", "1"]).err()?;
            e.to_string().to_lowercase().contains("moved").then_some(())
        },
    );
    if let Ok(out) = Command::new("redis-cli")
        .args(["--cluster", "check", &format!("127.0.0.1:{}", cl.port(0))])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
        assert!(!text.contains("[ERR]"), "{text}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let urls: Vec<String> = (0..3)
        .map(|i| format!("redis://127.0.0.1:{}/", cl.port(i)))
        .collect();
    let write_all = |round: i64| {
        rt.block_on(async {
            let client = redis::cluster::ClusterClientBuilder::new(urls.clone())
                .retries(20)
                .build()
                .expect("cluster client");
            let mut con = client.get_async_connection().await.expect("connection");
            for i in 0..200 {
                let _: () = redis::cmd("SET")
                    .arg(format!("k{i}"))
                    .arg(round * 1000 + i)
                    .query_async(&mut con)
                    .await
                    .expect("SET through the cluster client");
            }
            for i in 0..200 {
                let v: i64 = redis::cmd("GET")
                    .arg(format!("k{i}"))
                    .query_async(&mut con)
                    .await
                    .expect("GET through the cluster client");
                assert_eq!(v, round * 1000 + i);
            }
        })
    };
    write_all(1);
    // kill -9 the node leading the second group: its group elects a new leader that
    // CLUSTER SHARDS shows, and cluster clients go on.
    let victim = (0..3)
        .find(|&i| cl.port(i) as i64 == masters[1])
        .expect("victim");
    cl.kill(victim);
    let alive = (0..3).find(|&i| i != victim).expect("survivor");
    wait_for(Duration::from_secs(20), "a new leader for group 2", || {
        let m = shard_masters(&cl, alive)?;
        (m.len() == 3 && m[1] != masters[1]).then_some(())
    });
    write_all(2);
    // The node comes back, catches up in every group, and leads its group again.
    cl.restart(victim);
    wait_spread(&cl, victim);
    let mut c = cl.client(victim);
    let _: () = q(&mut c, &["READONLY"]).expect("READONLY");
    for i in 0..200 {
        let key = format!("k{i}");
        let v = wait_for(Duration::from_secs(20), "catch-up", || {
            let r: redis::RedisResult<i64> = q(&mut c, &["GET", &key]);
            r.ok()
        });
        assert!(v == 2000 + i, "{key}: {v}");
    }
}

/// INFO raft's count of hibernating groups on node `i`.
fn asleep(cl: &Cluster, i: usize) -> Option<usize> {
    cl.info_field(i, "raft_groups_hibernating")?.parse().ok()
}

#[test]
fn quiet_groups_hibernate_wake_on_writes_and_elect_when_a_leader_dies() {
    let mut cl = Cluster::start_with(3, &["--groups", "6"]);
    // Every group goes quiet: all six sleep on every node.
    for i in 0..3 {
        wait_for(Duration::from_secs(30), "all groups hibernating", || {
            (asleep(&cl, i)? == 6).then_some(())
        });
    }
    // A write to a sleeping group wakes it and is served at once.
    let mut c = cl.client(1);
    for i in 0..30 {
        let _: () = q(&mut c, &["SET", &format!("h{i}"), "1"]).expect("SET");
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]).expect("DBSIZE"), 30);
    for i in 0..3 {
        wait_for(Duration::from_secs(30), "back to sleep", || {
            (asleep(&cl, i)? == 6).then_some(())
        });
    }
    // kill -9 a node while every group sleeps: the groups it led elect new leaders (their
    // followers notice the silent node), writes to every slot go on.
    cl.kill(0);
    let mut c = cl.client(2);
    for i in 0..30 {
        let key = format!("h{i}");
        wait_for(Duration::from_secs(30), "a write after the kill", || {
            q::<()>(&mut c, &["SET", &key, "2"]).ok()
        });
    }
    for i in 0..30 {
        let v: i64 = q(&mut c, &["GET", &format!("h{i}")]).expect("GET");
        assert_eq!(v, 2);
    }
}

/// The `raft_group_<g>` line of node `i`'s INFO raft, as `field=value` pairs.
fn group_line(cl: &Cluster, i: usize, g: u64) -> Option<String> {
    cl.info_field(i, &format!("raft_group_{g}"))
}

#[test]
fn a_joining_node_becomes_a_member_of_every_group_and_can_leave_them_all() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    wait_spread(&cl, 0);
    let mut c = cl.client(0);
    for i in 0..100 {
        let _: () = q(&mut c, &["SET", &format!("j{i}"), &i.to_string()]).expect("SET");
    }
    let new = cl.add_joining_node(0);
    // A member of every group, caught up: it serves every key.
    for g in 1..=3u64 {
        wait_for(
            Duration::from_secs(60),
            "the new node in every group",
            || {
                let line = group_line(&cl, new, g)?;
                let applied: u64 = line
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("applied="))?
                    .parse()
                    .ok()?;
                (applied > 1 && !line.contains("leader=0")).then_some(())
            },
        );
    }
    let mut cn = cl.client(new);
    for i in 0..100 {
        let v: i64 = wait_for(Duration::from_secs(20), "a read on the new node", || {
            q(&mut cn, &["GET", &format!("j{i}")]).ok()
        });
        assert_eq!(v, i);
    }
    // It leaves every group again.
    let id = (new + 1).to_string();
    let r: String = q(&mut c, &["RAFT.NODE", "REMOVE", &id]).expect("REMOVE");
    assert_eq!(r, "OK");
    let status = cl.wait_exit(new, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let _: () = q(&mut c, &["SET", "after", "1"]).expect("SET after removal");
}

#[test]
fn a_script_loaded_once_runs_in_every_group() {
    let cl = Cluster::start_with(3, &["--groups", "3"]);
    wait_spread(&cl, 0);
    let mut c = cl.client(1);
    let sha: String = q(
        &mut c,
        &["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"],
    )
    .expect("SCRIPT LOAD");
    // Keys over all three groups: EVALSHA finds the script in each.
    for i in 0..30 {
        let key = format!("s{i}");
        let n: i64 = q(&mut c, &["EVALSHA", &sha, "1", &key]).expect("EVALSHA");
        assert_eq!(n, 1, "{key}");
    }
    let e = q::<i64>(&mut c, &["EVAL", "return 1", "2", "a", "b"]).expect_err("keys of two slots");
    assert!(e.to_string().contains("same slot"), "{e}");
}
