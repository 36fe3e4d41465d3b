//! `RAFT.SHARDGROUP JOIN`: a data group created at runtime on some nodes only. Three
//! founders with `--groups 3`, nodes 4 and 5 joined; `JOIN 4 4 5` records group 4 and
//! nodes 4 and 5 (only) start its peer and elect a leader among themselves; bad JOINs get
//! specific errors; QUERY, CLUSTER SHARDS and INFO raft show the group on every node; the
//! group comes back after node 4 restarts; slots moved into it are served from every
//! node (nodes 1-3, which do not host it, forward to its members).

mod common;

use std::time::Duration;

use common::{wait_for, Cluster};

/// `RAFT.SHARDGROUP <args>` on node `i`: the reply text or the error text.
fn shardgroup(cl: &Cluster, i: usize, args: &[&str]) -> Result<String, String> {
    let mut c = cl.try_connect(cl.port(i)).ok_or("no connection")?;
    let mut cmd = redis::cmd("RAFT.SHARDGROUP");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut c)
        .map_err(|e| format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")))
}

/// Group `gid`'s line of node `i`'s `RAFT.SHARDGROUP QUERY`.
fn group_line(cl: &Cluster, i: usize, gid: u64) -> Option<String> {
    let q = shardgroup(cl, i, &["QUERY"]).ok()?;
    let head = format!("group {gid} ");
    q.lines().find(|l| l.starts_with(&head)).map(str::to_string)
}

/// The word after `key` in `line`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut w = line.split(' ');
    w.find(|x| *x == key)?;
    w.next()
}

/// Node `i`'s INFO raft line starting `prefix:`.
fn info_line(cl: &Cluster, i: usize, prefix: &str) -> Option<String> {
    let mut c = cl.try_connect(cl.port(i))?;
    let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    let head = format!("{prefix}:");
    info.lines()
        .find(|l| l.starts_with(&head))
        .map(str::to_string)
}

/// The leader node 4 or 5 reports for group 4 (once one is elected).
fn group4_leader(cl: &Cluster, i: usize) -> Option<u64> {
    let line = info_line(cl, i, "raft_group_4")?;
    let leader: u64 = line
        .split("leader=")
        .nth(1)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    (leader == 4 || leader == 5).then_some(leader)
}

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
    let moved: i64 = redis::cmd("RAFT.SHARDGROUP")
        .arg("MOVE")
        .arg(4)
        .arg("0-99")
        .query(&mut c)
        .expect("MOVE");
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

/// The store keys of slots `lo..=hi` node `i`'s database holds in its data column family
/// (the node must be stopped: the database is opened read-only).
fn records_in(cl: &Cluster, i: usize, lo: u16, hi: u16) -> usize {
    let mut cfs: Vec<&str> = store::column_families();
    cfs.push("raft");
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        &cl.nodes[i].data_dir,
        cfs,
        false,
    )
    .expect("open the stopped node's database");
    let cf = db.cf_handle(store::CF_DATA).expect("data family");
    let mut it = db.raw_iterator_cf(cf);
    it.seek(lo.to_be_bytes());
    let mut n = 0;
    while let Some(k) = it.key() {
        if k.len() < 2 || u16::from_be_bytes([k[0], k[1]]) > hi {
            break;
        }
        n += 1;
        it.next();
    }
    n
}

/// A hash tag whose slot is below `below`.
fn tag_below(c: &mut redis::Connection, below: i64) -> String {
    (0..)
        .map(|i| format!("t{i}"))
        .find(|t| {
            let slot: i64 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(t)
                .query(c)
                .expect("KEYSLOT");
            slot < below
        })
        .expect("a tag")
}

/// Node `i`'s view of the typed keys written by [`typed_keys`].
fn typed_view(cl: &Cluster, i: usize, tag: &str) -> (String, i64, Vec<String>, Vec<String>, i64) {
    let mut c = cl.client(i);
    let s: String = redis::cmd("GET")
        .arg(format!("{{{tag}}}s"))
        .query(&mut c)
        .expect("GET");
    let h: i64 = redis::cmd("HLEN")
        .arg(format!("{{{tag}}}h"))
        .query(&mut c)
        .expect("HLEN");
    let l: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{{{tag}}}l"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .expect("LRANGE");
    let z: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{{{tag}}}z"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .expect("ZRANGE");
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{{{tag}}}s"))
        .query(&mut c)
        .expect("TTL");
    (s, h, l, z, ttl)
}

#[test]
fn moving_slots_to_a_group_on_other_nodes_copies_them_and_collects_the_old_copies() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
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
    assert_eq!(shardgroup(&cl, 0, &["JOIN", "5", "1"]).as_deref(), Ok("OK"));
    wait_for(Duration::from_secs(30), "group 4's leader", || {
        group4_leader(&cl, n4)
    });
    let mut c = cl.client(0);
    // Keys of several types in slots 0-99, one with a TTL.
    let tag = tag_below(&mut c, 100);
    let k = |s: &str| format!("{{{tag}}}{s}");
    let _: () = redis::cmd("SET")
        .arg(k("s"))
        .arg("str")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .expect("SET");
    let _: () = redis::cmd("HSET")
        .arg(k("h"))
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .query(&mut c)
        .expect("HSET");
    let _: () = redis::cmd("RPUSH")
        .arg(k("l"))
        .arg("x")
        .arg("y")
        .query(&mut c)
        .expect("RPUSH");
    let _: () = redis::cmd("ZADD")
        .arg(k("z"))
        .arg(1)
        .arg("m1")
        .arg(2)
        .arg("m2")
        .query(&mut c)
        .expect("ZADD");
    // A client writes new keys of the moving slots all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, port, tag) = (stop.clone(), cl.port(1), tag.clone());
        std::thread::spawn(move || {
            let (mut acked, mut unknown) = (Vec::new(), 0usize);
            let mut c = common::try_client(port).expect("writer connection");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("{{{tag}}}w{n}");
                match redis::cmd("SET").arg(&key).arg(n).query::<()>(&mut c) {
                    Ok(()) => acked.push((key, n)),
                    Err(e) if e.code() == Some("UNCERTAIN") => unknown += 1,
                    Err(_) => {}
                }
            }
            (acked, unknown)
        })
    };
    let before = typed_view(&cl, 0, &tag);
    // 1 -> 4: nodes 4 and 5 host both groups (records handed over); nodes 1-3 collect.
    // 4 -> 5: node 1 hosts group 5 only: the records are copied to it; 4 and 5 collect.
    for (to, owner_line) in [("4", 4u64), ("5", 5u64)] {
        let _: i64 = redis::cmd("RAFT.SHARDGROUP")
            .arg("MOVE")
            .arg(to)
            .arg("0-99")
            .query(&mut c)
            .expect("MOVE");
        wait_for(Duration::from_secs(60), "slots 0-99 moved", || {
            let line = group_line(&cl, 0, owner_line)?;
            let q = shardgroup(&cl, 0, &["QUERY"]).ok()?;
            (field(&line, "slots") == Some("100") && !q.contains("migration ")).then_some(())
        });
        for i in 0..5 {
            let (s, h, l, z, ttl) = typed_view(&cl, i, &tag);
            assert_eq!(
                (&s, h, &l, &z),
                (&before.0, before.1, &before.2, &before.3),
                "node {}",
                i + 1
            );
            assert!(ttl > 900 && ttl <= 1000, "node {}: TTL {ttl}", i + 1);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, unknown) = writer.join().expect("writer");
    assert!(!acked.is_empty());
    let mut c2 = cl.client(2);
    for (key, n) in &acked {
        let v: Option<u64> = redis::cmd("GET").arg(key).query(&mut c2).expect("GET");
        assert_eq!(v, Some(*n), "{key}");
    }
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c2).expect("DBSIZE");
    let extra = keys as usize - acked.len() - 4;
    assert!(
        extra <= unknown,
        "every key once: {keys} keys, {} acknowledged",
        acked.len()
    );
    // The copies left behind were collected: node 3 (groups 1-3 only) after the first
    // move, node 4 (groups 1-4) after the second; node 1 holds them for group 5.
    for (i, want_some) in [(2usize, false), (n4, false), (0, true)] {
        cl.kill(i);
        let n = records_in(&cl, i, 0, 99);
        assert_eq!(
            n > 0,
            want_some,
            "node {} holds {n} records of slots 0-99",
            i + 1
        );
        cl.restart(i);
    }
    let _ = n5;
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
    // LEAVE: bootstrap groups and unknown ones are refused; group 4's slots move back to
    // groups 1-3, then it is gone from the metadata and from nodes 4 and 5.
    let e = shardgroup(&cl, 1, &["LEAVE", "1"]).expect_err("a bootstrap group");
    assert!(e.contains("bootstrap group"), "{e}");
    let e = shardgroup(&cl, 1, &["LEAVE", "9"]).expect_err("an unknown group");
    assert!(e.contains("unknown data group 9"), "{e}");
    let mut c = cl.client(1);
    let moves: i64 = redis::cmd("RAFT.SHARDGROUP")
        .arg("LEAVE")
        .arg(4)
        .query(&mut c)
        .expect("LEAVE 4");
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
    // Its id can be used again.
    assert_eq!(shardgroup(&cl, 0, &["JOIN", "4", "4"]).as_deref(), Ok("OK"));
}

/// `args` on the node at `port`, following `-MOVED` (at most five hops); the reply and
/// the ports that answered `-MOVED`.
fn follow_moved(port: u16, args: &[&str]) -> (redis::RedisResult<redis::Value>, Vec<u16>) {
    let mut port = port;
    let mut moved = Vec::new();
    for _ in 0..5 {
        let mut c = common::try_client(port).expect("connection");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        match cmd.query::<redis::Value>(&mut c) {
            Err(e) if e.redirect_node().is_some() => {
                let (addr, _) = e.redirect_node().expect("MOVED");
                moved.push(port);
                port = addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port");
            }
            other => return (other, moved),
        }
    }
    panic!("more than five redirections for {args:?}");
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
    let moved: i64 = redis::cmd("RAFT.SHARDGROUP")
        .arg("MOVE")
        .arg(4)
        .arg("0-99")
        .query(&mut c)
        .expect("MOVE");
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

/// The index of the node leading the metadata group, as node `via` sees it.
fn meta_leader(cl: &Cluster, via: usize) -> Option<usize> {
    let line = info_line(cl, via, "raft_meta")?;
    let id: usize = line
        .split("leader=")
        .nth(1)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    (id > 0).then(|| id - 1)
}

#[test]
fn killing_the_coordinator_during_a_copy_leaves_a_migration_that_finishes() {
    let mut cl = Cluster::start_with(3, &["--groups", "3", "--auto-rebalance", "no"]);
    let n4 = cl.add_joining_node(0);
    wait_for(
        Duration::from_secs(60),
        "node 4 recorded and in group 1",
        || {
            let line = group_line(&cl, 0, 1)?;
            let v = field(&line, "voters")?.to_string() + "," + field(&line, "learners")?;
            let e = shardgroup(&cl, 0, &["JOIN", "7", "4", "9"]).err()?;
            (v.split(',').any(|x| x == "4") && e.contains("unknown node id 9")).then_some(())
        },
    );
    assert_eq!(shardgroup(&cl, 0, &["JOIN", "4", "4"]).as_deref(), Ok("OK"));
    assert_eq!(shardgroup(&cl, 0, &["JOIN", "5", "1"]).as_deref(), Ok("OK"));
    let mut c = cl.client(1);
    let tag = tag_below(&mut c, 100);
    // 8 MB in one slot: about 32 copy chunks.
    let value = "x".repeat(1000);
    for batch in 0..16 {
        let mut cmd = redis::cmd("MSET");
        for i in 0..500 {
            cmd.arg(format!("{{{tag}}}{}", batch * 500 + i)).arg(&value);
        }
        let _: () = cmd.query(&mut c).expect("MSET");
    }
    let mv = |to: &str| {
        let mut c = cl.client(1);
        let n: i64 = redis::cmd("RAFT.SHARDGROUP")
            .arg("MOVE")
            .arg(to)
            .arg("0-99")
            .query(&mut c)
            .expect("MOVE");
        assert!(n >= 1);
    };
    let done = |cl: &Cluster, g: u64| {
        wait_for(Duration::from_secs(90), "the migration done", || {
            let q = shardgroup(cl, 1, &["QUERY"]).ok()?;
            let line = group_line(cl, 1, g)?;
            (field(&line, "slots") == Some("100") && !q.contains("migration ")).then_some(())
        })
    };
    mv("4");
    done(&cl, 4);
    // 4 -> 5 copies to node 1; the coordinator dies right after the move is recorded.
    let coordinator = wait_for(Duration::from_secs(20), "a metadata leader", || {
        meta_leader(&cl, 1)
    });
    mv("5");
    cl.kill(coordinator);
    cl.restart(coordinator);
    done(&cl, 5);
    for i in [1, n4] {
        let mut c = cl.client(i);
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
        assert_eq!(n, 8000, "node {}", i + 1);
        for k in [0, 3999, 7999] {
            let v: String = redis::cmd("GET")
                .arg(format!("{{{tag}}}{k}"))
                .query(&mut c)
                .expect("GET");
            assert_eq!(v.len(), 1000);
        }
    }
}
