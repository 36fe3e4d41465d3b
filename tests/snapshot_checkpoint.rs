//! Snapshots captured by RocksDB checkpoint (`--snapshot-checkpoint-mb 0`: every data
//! group's snapshot is): RAFT.SNAPSHOT records a pending snapshot that holds a checkpoint;
//! the snapshot's SST files are made from it only when a follower needs the snapshot, also
//! after the node holding it was killed and restarted in between; the checkpoint is dropped
//! once the files are made, and the follower ends up with every key.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{wait_for, Cluster};

const KEYS: usize = 3000;

fn num(c: &Cluster, i: usize, field: &str) -> u64 {
    c.info_field(i, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn value(i: usize) -> String {
    format!("{i:08}-{}", "v".repeat(500))
}

/// Directories named `name` anywhere under `dir`.
fn dirs_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if e.file_name() == name {
                out.push(e.path());
            }
            out.extend(dirs_named(&e.path(), name));
        }
    }
    out
}

/// Sets every key through `node` in pipelined batches, retrying a batch (SETs are
/// idempotent) while leadership moves.
fn load(c: &Cluster, node: usize) {
    for start in (0..KEYS).step_by(500) {
        wait_for(Duration::from_secs(30), "a batch of SETs", || {
            let mut con = common::try_client(c.port(node))?;
            let mut p = redis::pipe();
            for i in start..(start + 500).min(KEYS) {
                p.cmd("SET").arg(format!("k{i}")).arg(value(i)).ignore();
            }
            p.query::<()>(&mut con).ok()
        });
    }
}

#[test]
fn a_follower_catches_up_from_a_checkpoint_snapshot_made_after_a_restart() {
    let mut c = Cluster::start_with(
        3,
        &["--snapshot-entries", "0", "--snapshot-checkpoint-mb", "0"],
    );
    let leader = c.wait_leader();
    let f = (leader + 1) % 3;
    let live: Vec<usize> = (0..3).filter(|&i| i != f).collect();
    c.kill(f);
    load(&c, leader);
    // Compact both live nodes, so whichever leads must send a snapshot: each records a
    // pending one, a checkpoint without SST files.
    for &i in &live {
        let _: u64 = redis::cmd("RAFT.SNAPSHOT").query(&mut c.client(i)).unwrap();
        assert!(num(&c, i, "raft_first_log_index") > 2);
        let snaps = c.nodes[i].data_dir.join("snap");
        assert!(
            !dirs_named(&snaps, "checkpoint").is_empty(),
            "no checkpoint under {}",
            snaps.display()
        );
    }
    // The pending snapshots survive a kill -9 of each node holding one.
    for &i in &live {
        c.kill(i);
        c.restart(i);
    }
    c.restart(f);
    wait_for(
        Duration::from_secs(60),
        "the follower restored a snapshot",
        || (num(&c, f, "raft_snapshots_restored") >= 1).then_some(()),
    );
    let sender = *live
        .iter()
        .find(|&&i| c.log_text(i).contains("snapshot files made"))
        .unwrap_or_else(|| {
            c.dump_logs();
            panic!("no node made the files of its pending snapshot")
        });
    assert!(
        dirs_named(&c.nodes[sender].data_dir.join("snap"), "checkpoint")
            .iter()
            .all(|d| !d.parent().is_some_and(|s| s.join("data.sst").exists())),
        "a snapshot whose files are made still holds its checkpoint"
    );
    let mut con = c.client(f);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for (n, chunk) in keys.chunks(1000).enumerate() {
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut con).unwrap();
        for (j, v) in vals.into_iter().enumerate() {
            assert_eq!(v, Some(value(n * 1000 + j)), "key k{}", n * 1000 + j);
        }
    }
}
