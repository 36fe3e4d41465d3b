//! A migration's data copy runs at most at `--migrate-max-mbps` (CONFIG SET
//! `migrate-max-mbps`), and INFO cluster shows it while it runs: the migration in
//! progress, the run's slots, the records and bytes copied and the copy's rate.

mod common;

use std::time::{Duration, Instant};

use common::shards::*;
use common::{wait_for, Cluster};

/// Node `i`'s INFO cluster field `name` (None: no answer or no such field).
fn cluster_field(cl: &Cluster, i: usize, name: &str) -> Option<i64> {
    let mut c = cl.try_connect(cl.port(i))?;
    let info: String = redis::cmd("INFO").arg("cluster").query(&mut c).ok()?;
    let head = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&head))?
        .trim()
        .parse()
        .ok()
}

/// CONFIG SET migrate-max-mbps on every node, read back with CONFIG GET.
fn set_rate(cl: &Cluster, nodes: usize, mbps: &str) {
    for i in 0..nodes {
        let mut c = cl.client(i);
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("migrate-max-mbps")
            .arg(mbps)
            .query(&mut c)
            .expect("CONFIG SET");
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("migrate-max-mbps")
            .query(&mut c)
            .expect("CONFIG GET");
        assert_eq!(got, vec!["migrate-max-mbps".to_string(), mbps.to_string()]);
    }
}

/// About 4 MB (4,000 keys of 1,000 bytes) in one slot below 100, written through node 0.
fn load_4mb(c: &mut redis::Connection) {
    let tag = tag_below(c, 100);
    let value = "x".repeat(1000);
    for batch in 0..8 {
        let mut cmd = redis::cmd("MSET");
        for i in 0..500 {
            cmd.arg(format!("{{{tag}}}{}", batch * 500 + i)).arg(&value);
        }
        let _: () = cmd.query(c).expect("MSET");
    }
}

/// `RAFT.SHARDGROUP MOVE <to> 0-99` through node 0.
fn move_low_slots(cl: &Cluster, to: &str) {
    let n: i64 = redis::cmd("RAFT.SHARDGROUP")
        .arg("MOVE")
        .arg(to)
        .arg("0-99")
        .query(&mut cl.client(0))
        .expect("MOVE");
    assert!(n >= 1);
}

/// Waits until group `g` owns the 100 low slots and no migration is left.
fn moved_to(cl: &Cluster, g: u64) {
    wait_for(Duration::from_secs(120), "the migration done", || {
        let q = shardgroup(cl, 0, &["QUERY"]).ok()?;
        let line = group_line(cl, 0, g)?;
        (field(&line, "slots") == Some("100") && !q.contains("migration ")).then_some(())
    })
}

/// The 4 MB of [`load_4mb`] and one key elsewhere; the low slots moved to group 4 (node 4
/// hosts both groups: nothing copied), then on to group 5, which copies them to node 1 at
/// 1 MB/s. Returns once that copy is under way: this run's bytes (the counters restart with
/// each copy; the first move's ended above 4 MB) between `from` and 3 MB.
fn in_the_middle_of_a_copy(from: i64) -> (Cluster, usize) {
    let (cl, n4) = copy_pair(&[]);
    let mut c = cl.client(0);
    load_4mb(&mut c);
    let _: () = redis::cmd("SET")
        .arg("elsewhere")
        .arg("v")
        .query(&mut c)
        .expect("SET");
    move_low_slots(&cl, "4");
    moved_to(&cl, 4);
    set_rate(&cl, n4 + 1, "1");
    move_low_slots(&cl, "5");
    wait_for(Duration::from_secs(60), "the copy under way", || {
        (0..=n4).find_map(|i| {
            let b = cluster_field(&cl, i, "raftkv_migration_copy_bytes")?;
            let running = cluster_field(&cl, i, "raftkv_migration_in_progress")? > 0;
            (running && (from..3_000_000).contains(&b)).then_some(())
        })
    });
    (cl, n4)
}

#[test]
fn a_copy_keeps_to_the_rate_limit_and_shows_its_progress_in_info() {
    let (cl, n4) = copy_pair(&["--migrate-max-mbps", "0"]);
    let mut c = cl.client(0);
    let bad: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("migrate-max-mbps")
        .arg("-1")
        .query(&mut c);
    assert!(bad.is_err(), "a negative rate is refused");
    load_4mb(&mut c);
    // 1 -> 4: node 4 hosts both groups, nothing copied.
    move_low_slots(&cl, "4");
    moved_to(&cl, 4);
    // 4 -> 5 copies every record to node 1, at 1 MB/s.
    set_rate(&cl, n4 + 1, "1");
    let started = Instant::now();
    move_low_slots(&cl, "5");
    // The coordinator shows the copy in progress, its bytes growing and its rate.
    let in_progress = |i: usize| cluster_field(&cl, i, "raftkv_migration_in_progress");
    let (who, first) = wait_for(Duration::from_secs(60), "a copy in progress", || {
        (0..=n4).find_map(|i| {
            let b = cluster_field(&cl, i, "raftkv_migration_copy_bytes")?;
            let rate = cluster_field(&cl, i, "raftkv_migration_copy_rate_bps")?;
            (in_progress(i)? > 0 && b > 0 && rate > 0).then_some((i, b))
        })
    });
    let total = cluster_field(&cl, who, "raftkv_migration_run_slots_total").expect("total");
    assert!(total >= 100, "{total} slots in the run");
    assert!(cluster_field(&cl, who, "raftkv_migration_eta_sec").is_some());
    wait_for(Duration::from_secs(60), "the copy's bytes growing", || {
        let b = cluster_field(&cl, who, "raftkv_migration_copy_bytes")?;
        (b > first).then_some(())
    });
    moved_to(&cl, 5);
    let elapsed = started.elapsed();
    let copied = cluster_field(&cl, who, "raftkv_migration_copy_bytes").expect("bytes");
    assert!(copied >= 4_000_000, "{copied} bytes copied");
    // At 1 MB/s, the copy takes at least its bytes' time.
    let floor = Duration::from_secs_f64(copied as f64 / 1e6);
    assert!(
        elapsed >= floor,
        "{copied} bytes copied in {elapsed:?} at 1 MB/s"
    );
    assert_eq!(in_progress(who), Some(0));
    let mut c1 = cl.client(0);
    let n: i64 = redis::cmd("DBSIZE").query(&mut c1).expect("DBSIZE");
    assert_eq!(n, 4000);
}

/// FLUSHALL while a migration copies slots: its answer waits (or asks to retry) until each
/// group's share can apply to the slots that group serves, so once it answers OK no key
/// written before it is left, and the rest of the copy brings none back.
#[test]
fn a_flushall_during_a_copy_leaves_no_key_behind() {
    // FLUSHALL in the middle of the copy.
    let (cl, n4) = in_the_middle_of_a_copy(500_000);
    wait_for(Duration::from_secs(60), "FLUSHALL answered OK", || {
        let r: redis::RedisResult<String> = redis::cmd("FLUSHALL").query(&mut cl.client(0));
        match r {
            Ok(ok) => {
                assert_eq!(ok, "OK");
                Some(())
            }
            Err(e) => {
                assert_eq!(e.code(), Some("TRYAGAIN"), "{e}");
                None
            }
        }
    });
    let dbsize = |i: usize| -> i64 {
        redis::cmd("DBSIZE")
            .query(&mut cl.client(i))
            .expect("DBSIZE")
    };
    assert_eq!(dbsize(0), 0, "keys left right after FLUSHALL");
    moved_to(&cl, 5);
    for i in 0..=n4 {
        assert_eq!(dbsize(i), 0, "node {i}: keys back after the copy");
    }
}

/// KEYS and DBSIZE while a migration copies slots, on every node (hosting the groups or
/// forwarding to them): each slot is read in the group one layout gives it, so every key
/// counts once: never the copy's keys besides the source's, never none of a slot between
/// the source's REMOVE and the target's SEAL (the read waits for the cut-over, as a
/// write to the slots does).
#[test]
fn keys_and_dbsize_count_every_key_once_while_slots_move() {
    // The reads start in the middle of the copy.
    let (cl, n4) = in_the_middle_of_a_copy(100_000);
    let round = |when: &str| {
        for i in 0..=n4 {
            let mut ci = cl.client(i);
            let n: i64 = redis::cmd("DBSIZE").query(&mut ci).expect("DBSIZE");
            assert_eq!(n, 4001, "node {i}, {when}: DBSIZE");
            let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut ci).expect("KEYS");
            assert_eq!(keys.len(), 4001, "node {i}, {when}: KEYS");
        }
    };
    round("mid-copy");
    moved_to(&cl, 5);
    round("after the move");
}
