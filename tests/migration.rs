//! Online slot migration on a real 3-node, 3-group cluster: slots move between groups
//! (RAFT.SHARDGROUP MOVE, RAFT.REBALANCE) while clients on every node write, and afterwards
//! every acknowledged write is there exactly once with every type and TTL; a cluster client
//! in `--redirect moved` mode follows the moves; kill -9 of the node coordinating the moves
//! (the metadata leader) mid-way, and the migrations finish by themselves.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_for, Cluster};

fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// An admin command on node `i`, again while it answers `-TRYAGAIN` (certainly not done:
/// e.g. the metadata leader is not reachable yet after a pause or a kill).
fn admin(cl: &Cluster, i: usize, args: &[&str]) -> i64 {
    wait_for(Duration::from_secs(30), args[args.len() - 1], || {
        let mut c = cl.try_connect(cl.port(i))?;
        match q::<i64>(&mut c, args) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == redis::ErrorKind::TryAgain => None,
            Err(e) => panic!("{args:?}: {e}"),
        }
    })
}

/// RAFT.SHARDGROUP QUERY of node `i`.
fn query(cl: &Cluster, i: usize) -> Option<String> {
    let mut c = cl.try_connect(cl.port(i))?;
    q(&mut c, &["RAFT.SHARDGROUP", "QUERY"]).ok()
}

/// Waits until node `i` reports no pending migration and `done` holds for its QUERY text
/// (a node's view may lag behind the metadata leader, which recorded the migrations).
fn wait_migrated(cl: &Cluster, i: usize, done: impl Fn(&str) -> bool) -> String {
    wait_for(Duration::from_secs(90), "migrations to finish", || {
        query(cl, i).filter(|t| !t.contains("migration ") && done(t))
    })
}

/// True when every group's slot count in a QUERY text differs by at most one.
fn even(text: &str) -> bool {
    let c: Vec<u64> = (1..=3).map(|g| slots_of(text, g)).collect();
    c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) <= 1
}

/// The slot count of group `g` in a QUERY text.
fn slots_of(text: &str, g: u64) -> u64 {
    text.lines()
        .find(|l| l.starts_with(&format!("group {g} ")))
        .and_then(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            let at = w.iter().position(|x| *x == "slots")?;
            w.get(at + 1)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no group {g} in {text}"))
}

/// The group owning `slot` per CLUSTER SLOTS of node `i`, as the master's port.
fn slot_master(cl: &Cluster, i: usize, slot: i64) -> Option<i64> {
    let mut c = cl.try_connect(cl.port(i))?;
    let v: redis::Value = q(&mut c, &["CLUSTER", "SLOTS"]).ok()?;
    let redis::Value::Array(ranges) = v else {
        return None;
    };
    ranges.into_iter().find_map(|r| {
        let redis::Value::Array(f) = r else {
            return None;
        };
        match (f.first()?, f.get(1)?, f.get(2)?) {
            (redis::Value::Int(a), redis::Value::Int(b), redis::Value::Array(m))
                if *a <= slot && slot <= *b =>
            {
                match m.get(1)? {
                    redis::Value::Int(p) => Some(*p),
                    _ => None,
                }
            }
            _ => None,
        }
    })
}

/// Counters incremented by one writer: key → (acknowledged, unknown outcome). Key "" holds
/// the number of `-TRYAGAIN slot ...` refusals seen (none in the default forwarding mode,
/// where the node routes a refused request again).
type Tally = BTreeMap<String, (i64, i64)>;

/// A writer on node port `port`: INCRs of `keys` until `stop`, retrying `-TRYAGAIN`
/// (certainly not applied).
fn writer(port: u16, keys: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut tally = Tally::new();
        let mut con = None;
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let key = keys[i % keys.len()].clone();
            if con.is_none() {
                con = common::try_client(port);
                if con.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            let c = con.as_mut().expect("connection");
            match q::<i64>(c, &["INCR", &key]) {
                Ok(_) => {
                    tally.entry(key).or_default().0 += 1;
                    i += 1;
                }
                Err(e) if e.kind() == redis::ErrorKind::TryAgain => {
                    if e.to_string().contains("is not served by this group") {
                        tally.entry(String::new()).or_default().0 += 1;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => {
                    tally.entry(key).or_default().1 += 1;
                    con = None;
                    i += 1;
                }
            }
        }
        tally
    })
}

fn merge(all: Vec<Tally>) -> Tally {
    let mut out = Tally::new();
    for t in all {
        for (k, (a, u)) in t {
            let e = out.entry(k).or_default();
            e.0 += a;
            e.1 += u;
        }
    }
    out
}

/// Every counter on every live node is its acknowledged count (plus at most its unknown
/// outcomes).
fn check_counters(cl: &Cluster, tally: &Tally) {
    for i in (0..cl.nodes.len()).filter(|&i| cl.is_running(i)) {
        let mut c = cl.client(i);
        for (k, (acked, unknown)) in tally {
            let v: i64 = q::<Option<i64>>(&mut c, &["GET", k])
                .unwrap_or_else(|e| panic!("GET {k} on node {i}: {e}"))
                .unwrap_or(0);
            assert!(
                *acked <= v && v <= acked + unknown,
                "node {i}: {k} = {v}, acknowledged {acked}, unknown {unknown}"
            );
        }
    }
}

/// True when `n` keys are the populated ones plus the counters (those with an
/// acknowledged increment at least; those with only unknown outcomes may exist).
fn key_count_fits(n: i64, tally: &Tally) -> bool {
    let sure = tally.values().filter(|v| v.0 > 0).count();
    (420 + sure..=420 + tally.len()).contains(&(n as usize))
}

/// Keys of every type, some with a TTL, spread over all slots.
fn populate(c: &mut redis::Connection) {
    for i in 0..300 {
        let k = format!("s{i}");
        let _: () = q(c, &["SET", &k, &i.to_string()]).expect("SET");
        if i % 3 == 0 {
            let _: () = q(c, &["PEXPIRE", &k, "600000"]).expect("PEXPIRE");
        }
    }
    for i in 0..30 {
        let _: () = q(c, &["HSET", &format!("h{i}"), "f", "v", "g", "w"]).expect("HSET");
        let _: () = q(c, &["RPUSH", &format!("l{i}"), "a", "b", "c"]).expect("RPUSH");
        let _: () = q(c, &["SADD", &format!("t{i}"), "x", "y"]).expect("SADD");
        let _: () = q(c, &["ZADD", &format!("z{i}"), "1", "m", "2", "n"]).expect("ZADD");
    }
}

fn check_populated(c: &mut redis::Connection, node: usize) {
    for i in 0..300 {
        let k = format!("s{i}");
        let v: Option<String> = q(c, &["GET", &k]).expect("GET");
        assert_eq!(
            v.as_deref(),
            Some(i.to_string().as_str()),
            "node {node}: {k}"
        );
        let ttl: i64 = q(c, &["PTTL", &k]).expect("PTTL");
        if i % 3 == 0 {
            assert!(ttl > 0, "node {node}: {k} lost its TTL ({ttl})");
        } else {
            assert_eq!(ttl, -1, "node {node}: {k}");
        }
    }
    for i in 0..30 {
        let h: Vec<String> = q(c, &["HGETALL", &format!("h{i}")]).expect("HGETALL");
        assert_eq!(h.len(), 4, "node {node}: h{i}");
        let l: Vec<String> = q(c, &["LRANGE", &format!("l{i}"), "0", "-1"]).expect("LRANGE");
        assert_eq!(l, ["a", "b", "c"], "node {node}: l{i}");
        let n: i64 = q(c, &["SCARD", &format!("t{i}")]).expect("SCARD");
        assert_eq!(n, 2, "node {node}: t{i}");
        let z: Vec<String> = q(c, &["ZRANGE", &format!("z{i}"), "0", "-1"]).expect("ZRANGE");
        assert_eq!(z, ["m", "n"], "node {node}: z{i}");
    }
}

/// Starts one writer per node over `counters` keys.
fn start_writers(cl: &Cluster, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Tally>> {
    (0..cl.nodes.len())
        .map(|i| {
            let keys: Vec<String> = (0..120).map(|k| format!("c{}", k * 3 + i)).collect();
            writer(cl.port(i), keys, stop.clone())
        })
        .collect()
}

#[test]
fn slots_move_online_under_writes_and_every_key_stays_with_its_ttl() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    cl.wait_group_leaders(0, 3);
    populate(&mut cl.client(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&cl, &stop);
    std::thread::sleep(Duration::from_millis(300));
    // Group 1's first 2000 slots to group 2, then half of them back, then even again.
    let n: i64 = admin(&cl, 2, &["RAFT.SHARDGROUP", "MOVE", "2", "0-1999"]);
    assert_eq!(n, 8, "one migration per 256 slots (2000 = 7 x 256 + 208)");
    // A node stopped meanwhile catches up afterwards: on it, each target's ADD waits until
    // its source replica has applied the REMOVE (see store::claims).
    cl.pause(1);
    let text = wait_migrated(&cl, 0, |t| slots_of(t, 1) == 5461 - 2000);
    cl.resume(1);
    assert_eq!(slots_of(&text, 1), 5461 - 2000, "{text}");
    assert_eq!(slots_of(&text, 2), 5461 + 2000, "{text}");
    let _: i64 = admin(&cl, 1, &["RAFT.SHARDGROUP", "MOVE", "1", "0-999"]);
    // REBALANCE right away, on another node: it is planned where the metadata applies it,
    // after the move above, whatever this node's view shows yet.
    let moves: i64 = admin(&cl, 0, &["RAFT.REBALANCE"]);
    assert!(moves > 0);
    let text = wait_migrated(&cl, 2, even);
    assert_eq!(
        slots_of(&text, 3),
        5462,
        "fewest moves: group 3 keeps its slots: {text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let tally = merge(
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect(),
    );
    let acked: i64 = tally.values().map(|v| v.0).sum();
    assert!(acked > 100, "the writers got through: {acked}");
    check_counters(&cl, &tally);
    for i in 0..3 {
        let mut c = cl.client(i);
        check_populated(&mut c, i);
        let keys: i64 = q(&mut c, &["DBSIZE"]).expect("DBSIZE");
        // The node that was paused too (it once ended 12 keys short: a target's ADD applied
        // in the same driver round as the source's REMOVE and its writes, see store::claims).
        assert!(key_count_fits(keys, &tally), "node {i}: DBSIZE {keys}");
    }
    // Every node routes each slot to one master, and they agree.
    for slot in [0i64, 999, 1000, 1999, 5460, 9000, 16383] {
        let m: Vec<Option<i64>> = (0..3).map(|i| slot_master(&cl, i, slot)).collect();
        assert!(
            m[0].is_some() && m.iter().all(|x| *x == m[0]),
            "slot {slot}: {m:?}"
        );
    }
    let info: String = q(&mut cl.client(0), &["INFO", "cluster"]).expect("INFO");
    assert!(info.contains("raftkv_migrations_pending:0"), "{info}");
}

/// The node leading the metadata group (0-based), per node `via`.
fn meta_leader(cl: &Cluster, via: usize) -> Option<usize> {
    let mut c = cl.try_connect(cl.port(via))?;
    let info: String = q(&mut c, &["INFO", "raft"]).ok()?;
    let line = info.lines().find(|l| l.starts_with("raft_meta:"))?;
    let leader: u64 = line
        .split(',')
        .find_map(|f| f.strip_prefix("leader="))?
        .parse()
        .ok()?;
    (leader > 0).then(|| leader as usize - 1)
}

#[test]
fn killing_the_coordinator_mid_migration_leaves_migrations_that_finish_by_themselves() {
    let mut cl = Cluster::start_with(3, &["--groups", "3"]);
    cl.wait_group_leaders(0, 3);
    populate(&mut cl.client(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = start_writers(&cl, &stop);
    let coordinator = wait_for(Duration::from_secs(20), "a metadata leader", || {
        meta_leader(&cl, 0)
    });
    let other = (coordinator + 1) % 3;
    let n: i64 = admin(&cl, other, &["RAFT.SHARDGROUP", "MOVE", "3", "0-10921"]);
    assert_eq!(n, 44, "22 of 256 slots at most from each of groups 1 and 2");
    // Kill it once some, not all, migrations are done.
    wait_for(Duration::from_secs(60), "some migrations done", || {
        let t = query(&cl, other)?;
        let left = t.lines().filter(|l| l.starts_with("migration ")).count() as i64;
        (left < n && left > 0).then_some(())
    });
    cl.kill(coordinator);
    let text = wait_migrated(&cl, other, |t| slots_of(t, 3) == 16384);
    assert_eq!(slots_of(&text, 1) + slots_of(&text, 2), 0, "{text}");
    cl.restart(coordinator);
    cl.wait_group_leaders(coordinator, 3);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let tally = merge(
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect(),
    );
    // The restarted node catches up in every group (it may have missed the last writes).
    wait_for(
        Duration::from_secs(30),
        "the restarted node to catch up",
        || {
            let mut c = cl.try_connect(cl.port(coordinator))?;
            let keys: i64 = q(&mut c, &["DBSIZE"]).ok()?;
            key_count_fits(keys, &tally).then_some(())
        },
    );
    check_counters(&cl, &tally);
    for i in 0..3 {
        check_populated(&mut cl.client(i), i);
    }
}

#[test]
fn a_cluster_client_follows_moved_through_migrations() {
    let cl = Cluster::start_with(3, &["--groups", "3", "--redirect", "moved"]);
    cl.wait_group_leaders(0, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let urls: Vec<String> = (0..3)
        .map(|i| format!("redis://127.0.0.1:{}/", cl.port(i)))
        .collect();
    rt.block_on(async {
        let client = redis::cluster::ClusterClientBuilder::new(urls.clone())
            .retries(30)
            .build()
            .expect("cluster client");
        let mut con = client.get_async_connection().await.expect("connection");
        let mut moved = false;
        for round in 0..6i64 {
            for i in 0..300 {
                let _: () = redis::cmd("SET")
                    .arg(format!("k{i}"))
                    .arg(round * 1000 + i)
                    .query_async(&mut con)
                    .await
                    .expect("SET through the cluster client");
            }
            if !moved {
                let mut c = cl.client(0);
                let _: i64 = q(&mut c, &["RAFT.SHARDGROUP", "MOVE", "2", "0-3000"]).expect("MOVE");
                moved = true;
            }
            for i in 0..300 {
                let v: i64 = redis::cmd("GET")
                    .arg(format!("k{i}"))
                    .query_async(&mut con)
                    .await
                    .expect("GET through the cluster client");
                assert_eq!(v, round * 1000 + i);
            }
        }
    });
    wait_migrated(&cl, 0, |t| slots_of(t, 2) == 5461 + 3001);
    // After the moves, a node that does not lead slot 0's new group answers MOVED.
    let master = wait_for(Duration::from_secs(10), "slot 0's master", || {
        slot_master(&cl, 0, 0)
    });
    let other = (0..3)
        .find(|&i| cl.port(i) as i64 != master)
        .expect("a non-leader");
    let e = q::<()>(&mut cl.client(other), &["SET", "{06S}x", "1"]).expect_err("MOVED");
    assert!(e.to_string().to_lowercase().contains("moved"), "{e}");
}
