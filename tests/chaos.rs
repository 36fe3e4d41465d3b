//! CI profile of the fault-injection harness (`chaos/`): a few short seeded schedules of
//! kill -9, SIGSTOP, node isolation, one-way link cuts, leader transfers, snapshots and
//! membership changes (nodes joining, voters removed) against a real 3-node cluster
//! (compacting its log every 100 entries),
//! asserting that every per-key history is linearizable (hash fields as registers; list keys
//! used as queues pass the FIFO checks of `chaos/src/queue.rs`) and no acknowledged write is
//! lost.
//! The long mode is `cargo run --release -p chaos -- --schedules N --duration D`
//! (docs/verification.md).

use std::path::PathBuf;
use std::time::Duration;

#[test]
fn short_fault_schedules_are_linearizable() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_raftkv"));
    let mut cfg = chaos::ScheduleConfig::new(bin, 101);
    cfg.duration = Duration::from_secs(15);
    cfg.clients = 4;
    // Leader transfers, snapshots and membership changes too, with a small log-compaction
    // threshold so lagging and joining nodes are caught up by snapshot while faults go on.
    cfg.faults.transfer_leader = true;
    cfg.faults.snapshot = true;
    cfg.faults.membership = true;
    cfg.node_args
        .extend(["--snapshot-entries".to_string(), "100".to_string()]);
    cfg.out_dir = std::env::temp_dir().join(format!("raftkv-chaos-ci-{}", std::process::id()));
    let reports = chaos::run_schedules_blocking(&cfg, 3, |r| eprintln!("{}", r.line()))
        .unwrap_or_else(|e| panic!("chaos harness failed: {e}"));
    assert_eq!(reports.len(), 3);
    let mut problems = Vec::new();
    for r in &reports {
        assert!(
            r.faults.injected() > 0,
            "seed {}: no fault injected",
            r.seed
        );
        assert!(
            r.checked > 100,
            "seed {}: only {} ops checked",
            r.seed,
            r.checked
        );
        if !r.passed() {
            problems.push(format!(
                "{}\n{}\nevidence: {:?}",
                r.line(),
                r.findings.join("\n"),
                r.dir
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    let membership: usize = reports
        .iter()
        .map(|r| r.faults.counts.get("membership").copied().unwrap_or(0))
        .sum();
    assert!(membership > 0, "no membership change was made");
    let lost: usize = reports.iter().map(|r| r.lost_writes).sum();
    let violations: usize = reports.iter().map(|r| r.violations).sum();
    assert_eq!((violations, lost), (0, 0));
    let _ = std::fs::remove_dir_all(&cfg.out_dir);
}

#[test]
fn short_fault_schedules_on_three_groups_are_linearizable() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_raftkv"));
    let mut cfg = chaos::ScheduleConfig::new(bin, 201);
    cfg.duration = Duration::from_secs(15);
    cfg.clients = 4;
    cfg.faults.transfer_leader = true;
    cfg.faults.snapshot = true;
    cfg.faults.membership = true;
    // The sharded cluster: every node hosts three groups, leaders spread, quiet groups
    // hibernate; faults hit all groups of a node at once.
    cfg.node_args.extend(
        ["--groups", "3", "--snapshot-entries", "100"]
            .iter()
            .map(|s| s.to_string()),
    );
    cfg.out_dir = std::env::temp_dir().join(format!("raftkv-chaos-mg-{}", std::process::id()));
    let reports = chaos::run_schedules_blocking(&cfg, 2, |r| eprintln!("{}", r.line()))
        .unwrap_or_else(|e| panic!("chaos harness failed: {e}"));
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(
            r.faults.injected() > 0,
            "seed {}: no fault injected",
            r.seed
        );
        assert!(
            r.checked > 100,
            "seed {}: only {} ops checked",
            r.seed,
            r.checked
        );
        assert!(
            r.passed(),
            "{}\n{}\nevidence: {:?}",
            r.line(),
            r.findings.join("\n"),
            r.dir
        );
    }
    let _ = std::fs::remove_dir_all(&cfg.out_dir);
}
