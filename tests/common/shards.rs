//! Helpers of the shard group tests (`tests/shard_groups.rs`, `tests/shard_copy.rs`):
//! `RAFT.SHARDGROUP` calls and QUERY / INFO raft lines, a stopped node's records of some
//! slots, `-MOVED` following.

use super::Cluster;

/// `RAFT.SHARDGROUP <args>` on node `i`: the reply text or the error text.
pub fn shardgroup(cl: &Cluster, i: usize, args: &[&str]) -> Result<String, String> {
    let mut c = cl.try_connect(cl.port(i)).ok_or("no connection")?;
    let mut cmd = redis::cmd("RAFT.SHARDGROUP");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut c)
        .map_err(|e| format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")))
}

/// Group `gid`'s line of node `i`'s `RAFT.SHARDGROUP QUERY`.
pub fn group_line(cl: &Cluster, i: usize, gid: u64) -> Option<String> {
    let q = shardgroup(cl, i, &["QUERY"]).ok()?;
    let head = format!("group {gid} ");
    q.lines().find(|l| l.starts_with(&head)).map(str::to_string)
}

/// The word after `key` in `line`.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut w = line.split(' ');
    w.find(|x| *x == key)?;
    w.next()
}

/// Node `i`'s INFO raft line starting `prefix:`.
pub fn info_line(cl: &Cluster, i: usize, prefix: &str) -> Option<String> {
    let mut c = cl.try_connect(cl.port(i))?;
    let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
    let head = format!("{prefix}:");
    info.lines()
        .find(|l| l.starts_with(&head))
        .map(str::to_string)
}

/// The leader node 4 or 5 reports for group 4 (once one is elected).
pub fn group4_leader(cl: &Cluster, i: usize) -> Option<u64> {
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

/// The store keys of slots `lo..=hi` node `i`'s database holds in its data column family
/// (the node must be stopped: the database is opened read-only).
pub fn records_in(cl: &Cluster, i: usize, lo: u16, hi: u16) -> usize {
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
pub fn tag_below(c: &mut redis::Connection, below: i64) -> String {
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

/// `args` on the node at `port`, following `-MOVED` (at most five hops); the reply and
/// the ports that answered `-MOVED`.
pub fn follow_moved(port: u16, args: &[&str]) -> (redis::RedisResult<redis::Value>, Vec<u16>) {
    let mut port = port;
    let mut moved = Vec::new();
    for _ in 0..5 {
        let mut c = super::try_client(port).expect("connection");
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

/// The index of the node leading the metadata group, as node `via` sees it.
pub fn meta_leader(cl: &Cluster, via: usize) -> Option<usize> {
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

/// `args` (a `RAFT.SHARDGROUP` or `RAFT.REBALANCE` call answering an integer) on node `i`,
/// sent again while it answers TRYAGAIN (not recorded, or recorded and a repeat changes
/// nothing: a metadata leader change, a node not caught up yet).
pub fn admin_int(cl: &Cluster, i: usize, args: &[&str]) -> i64 {
    super::wait_for(std::time::Duration::from_secs(60), "the admin call", || {
        let mut c = cl.try_connect(cl.port(i))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        match cmd.query::<i64>(&mut c) {
            Ok(n) => Some(n),
            Err(e) if e.kind() == redis::ErrorKind::TryAgain => None,
            Err(e) => panic!("{args:?}: {e}"),
        }
    })
}

/// A 3-node `--groups 3 --auto-rebalance no` cluster (plus `extra` flags) set up for copies:
/// node 4 joined (so it hosts groups 1-3 too), group 4 created on node 4 (a move 1 -> 4 is
/// handed over there) and group 5 on node 1 (a move 4 -> 5 copies the records to node 1).
/// Returns the cluster and node 4's index.
pub fn copy_pair(extra: &[&str]) -> (Cluster, usize) {
    let mut args = vec!["--groups", "3", "--auto-rebalance", "no"];
    args.extend_from_slice(extra);
    let mut cl = Cluster::start_with(3, &args);
    let n4 = cl.add_joining_node(0);
    super::wait_for(
        std::time::Duration::from_secs(60),
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
    (cl, n4)
}
