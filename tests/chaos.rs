//! CI profile of the fault-injection harness (`chaos/`): a few short seeded schedules of
//! kill -9, SIGSTOP, node isolation, one-way link cuts, leader transfers, snapshots and
//! membership changes (nodes joining, voters removed) against a real 3-node cluster
//! (compacting its log every 100 entries), on three groups with slot migrations between
//! them on top (moves of the keys' slots, moves back, rebalances, and a fresh group
//! joined on two or three nodes, fed moves and made to leave, all while the other faults
//! go on),
//! asserting that every per-key history is linearizable (hash fields as registers; list keys
//! used as queues pass the FIFO checks of `chaos/src/queue.rs`) and no acknowledged write is
//! lost.
//! The long mode is `cargo run --release -p chaos -- --schedules N --duration D`
//! (docs/verification.md).

use std::path::PathBuf;
use std::time::Duration;

/// 15 s schedules from `seed` with 4 clients and every fault kind (leader transfers,
/// snapshots and membership changes too), nodes compacting their log every 100 entries
/// so lagging and joining nodes are caught up by snapshot while faults go on; `node_args`
/// are passed to every node on top.
fn config(seed: u64, node_args: &[&str], tag: &str) -> chaos::ScheduleConfig {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_raftkv"));
    let mut cfg = chaos::ScheduleConfig::new(bin, seed);
    cfg.duration = Duration::from_secs(15);
    cfg.clients = 4;
    cfg.faults.transfer_leader = true;
    cfg.faults.snapshot = true;
    cfg.faults.membership = true;
    cfg.node_args.extend(
        node_args
            .iter()
            .chain(&["--snapshot-entries", "100"])
            .map(|s| s.to_string()),
    );
    cfg.out_dir = std::env::temp_dir().join(format!("raftkv-chaos-{tag}-{}", std::process::id()));
    cfg
}

/// Runs `n` schedules of `cfg` and asserts each injected faults, checked more than 100
/// operations and passed (no violation, no lost write); removes the evidence after.
fn run_and_check(cfg: &chaos::ScheduleConfig, n: u64) -> Vec<chaos::ScheduleReport> {
    let reports = chaos::run_schedules_blocking(cfg, n, |r| eprintln!("{}", r.line()))
        .unwrap_or_else(|e| panic!("chaos harness failed: {e}"));
    assert_eq!(reports.len() as u64, n);
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
    let _ = std::fs::remove_dir_all(&cfg.out_dir);
    reports
}

#[test]
fn short_fault_schedules_are_linearizable() {
    let reports = run_and_check(&config(101, &[], "ci"), 3);
    let membership: usize = reports
        .iter()
        .map(|r| r.faults.counts.get("membership").copied().unwrap_or(0))
        .sum();
    assert!(membership > 0, "no membership change was made");
    let lost: usize = reports.iter().map(|r| r.lost_writes).sum();
    let violations: usize = reports.iter().map(|r| r.violations).sum();
    assert_eq!((violations, lost), (0, 0));
}

/// The sharded cluster: every node hosts three groups, leaders spread, quiet groups
/// hibernate; faults hit all groups of a node at once, and the slots of the keys move
/// between the groups meanwhile, also into a group joined on some nodes during the
/// schedule and out of it as it leaves (every recorded migration must be done once
/// healed). It
/// replaced the profile without migrations once long runs with migrations were clean
/// (docs/verification.md, sessions 8 and 9: 60 schedules, 1,067 migrations, 0 violations).
#[test]
fn short_fault_schedules_on_three_groups_with_migrations_are_linearizable() {
    let mut cfg = config(201, &["--groups", "3"], "mgm");
    cfg.faults.migrate = true;
    let reports = run_and_check(&cfg, 2);
    let recorded: usize = reports.iter().map(|r| r.migrations.recorded).sum();
    let completed: usize = reports.iter().map(|r| r.migrations.completed()).sum();
    let joins: usize = reports.iter().map(|r| r.migrations.joins).sum();
    assert!(recorded > 0, "no migration was recorded");
    assert!(joins > 0, "no fresh group was joined");
    assert_eq!(completed, recorded, "migrations left pending");
}
