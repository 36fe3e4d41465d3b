//! `chaos`: runs seeded fault schedules against a real 3-node raftkv cluster and checks
//! every history for linearizability; exits non-zero on any violation or lost write.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::checker::Verdict;
use chaos::cluster::locate_binary;
use chaos::faults::FaultConfig;
use chaos::{ScheduleConfig, ScheduleReport};
use clap::Parser;

/// Fault injection and linearizability checking for raftkv.
#[derive(Parser, Debug)]
#[command(name = "chaos")]
struct Args {
    /// Seed of the first schedule; schedule k uses seed + k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of workload and faults per schedule.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// How many schedules to run.
    #[arg(long, default_value_t = 1)]
    schedules: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Register and counter keys (half each); one queue and one hash key come on top, one more of each per 8.
    #[arg(long, default_value_t = 6)]
    keys: usize,
    /// Directory for schedule evidence (kept only for failing schedules unless --keep).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep every schedule's directory (history, fault log, node logs).
    #[arg(long)]
    keep: bool,
    /// raftkv binary (else $RAFTKV_BIN, else target/{release,debug}/raftkv).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Also inject leader transfers (RAFT.TRANSFER-LEADER; skipped if unknown).
    #[arg(long)]
    transfer_leader: bool,
    /// Also inject snapshots (RAFT.SNAPSHOT on a random node; skipped if unknown).
    #[arg(long)]
    snapshot: bool,
    /// Also inject membership changes: fresh nodes join (`--join`) and voters, the leader
    /// included, are removed (`RAFT.NODE REMOVE`).
    #[arg(long)]
    membership: bool,
    /// Also move slot ranges between data groups (`RAFT.SHARDGROUP MOVE` around the keys'
    /// slots, moves back, `RAFT.REBALANCE`; fresh groups joined on 2-3 nodes, fed moves and
    /// made to leave) beside the other faults; needs `--groups` > 1 on the nodes
    /// (`--node-arg=--groups --node-arg=3`).
    #[arg(long)]
    migrate: bool,
    /// Faults to leave out: any of kill, pause, partition, link-cut, fresh-group (the
    /// migration fault's groups joined on some nodes and left again) (comma-separated).
    #[arg(long, value_delimiter = ',')]
    no_fault: Vec<String>,
    /// Only re-check a saved history (JSON lines, as kept in a schedule directory) and exit.
    #[arg(long, value_name = "HISTORY")]
    check: Option<PathBuf>,
    /// Raft tick of the nodes (ms).
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    /// Extra flag for every node, e.g. `--node-arg=--read-mode --node-arg=lease` (repeat).
    #[arg(long, allow_hyphen_values = true)]
    node_arg: Vec<String>,
    /// Client-side timeout of one operation (ms).
    #[arg(long, default_value_t = 3000)]
    op_timeout_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check {
        return recheck(path);
    }
    let bin = match locate_binary(args.bin.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = ScheduleConfig::new(bin, args.seed);
    cfg.duration = Duration::from_secs(args.duration);
    cfg.clients = args.clients.max(1);
    cfg.keys = args.keys;
    cfg.keep = args.keep;
    cfg.tick_ms = args.tick_ms;
    cfg.op_timeout = Duration::from_millis(args.op_timeout_ms);
    cfg.node_args.extend(args.node_arg.iter().cloned());
    if let Some(out) = args.out {
        cfg.out_dir = out;
    }
    cfg.faults = FaultConfig {
        transfer_leader: args.transfer_leader,
        snapshot: args.snapshot,
        membership: args.membership,
        migrate: args.migrate,
        ..FaultConfig::default()
    };
    for f in &args.no_fault {
        match f.as_str() {
            "kill" => cfg.faults.kill = false,
            "pause" => cfg.faults.pause = false,
            "partition" => cfg.faults.partition = false,
            "link-cut" => cfg.faults.link_cut = false,
            "fresh-group" => cfg.faults.fresh_groups = false,
            other => {
                eprintln!("chaos: unknown fault {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "chaos: {} schedule(s) of {} s from seed {}, {} clients, {} keys, binary {}, evidence under {}",
        args.schedules,
        args.duration,
        args.seed,
        cfg.clients,
        chaos::workload::keys(cfg.keys).len(),
        cfg.bin.display(),
        cfg.out_dir.display()
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = chaos::run_schedules(&cfg, args.schedules, print_report) => Some(r),
            // Dropping the running schedule kills its nodes.
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let reports = match result {
        None => {
            eprintln!("chaos: interrupted");
            return ExitCode::from(130);
        }
        Some(Err(e)) => {
            eprintln!("chaos: harness error: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(r)) => r,
    };
    let sum = |f: fn(&ScheduleReport) -> usize| reports.iter().map(f).sum::<usize>();
    let failed: Vec<u64> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.seed)
        .collect();
    println!(
        "total: {} schedules, {} faults, {} ops ({} ok, {} failed, {} indeterminate), {} checked, {} violations, {} lost writes, {} inconclusive keys, failing seeds {:?}",
        reports.len(),
        sum(|r| r.faults.injected()),
        sum(|r| r.ops),
        sum(|r| r.ok),
        sum(|r| r.failed),
        sum(|r| r.indeterminate),
        sum(|r| r.checked),
        sum(|r| r.violations),
        sum(|r| r.lost_writes),
        sum(|r| r.inconclusive),
        failed
    );
    if args.migrate {
        println!(
            "fresh groups: {} JOINs sent, {} groups joined, {} moves into one recorded, {} LEAVEs sent, {} recorded, {} groups gone",
            sum(|r| r.migrations.joins_asked),
            sum(|r| r.migrations.joins),
            sum(|r| r.migrations.moves_fresh),
            sum(|r| r.migrations.leaves_asked),
            sum(|r| r.migrations.leaves),
            sum(|r| r.migrations.left),
        );
        println!(
            "migrations: {} requests ({} rebalances, {} moves back), {} recorded, {} completed, {} still pending, {} requests of unknown outcome; coordinators' INFO: {} done, {} slots moved",
            sum(|r| r.migrations.requests),
            sum(|r| r.migrations.rebalances),
            sum(|r| r.migrations.moves_back),
            sum(|r| r.migrations.recorded),
            sum(|r| r.migrations.completed()),
            sum(|r| r.migrations.pending_after),
            sum(|r| r.migrations.unknown),
            reports.iter().map(|r| r.migrations.done_info).sum::<u64>(),
            reports.iter().map(|r| r.migrations.slots_info).sum::<u64>(),
        );
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks a saved history and prints every key's verdict.
fn recheck(path: &std::path::Path) -> ExitCode {
    let ops = match chaos::history::load(path) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("chaos: read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let report = chaos::checker::check(&ops);
    for k in &report.keys {
        let verdict = match &k.verdict {
            Verdict::Linearizable => "linearizable".to_string(),
            Verdict::Violation {
                counter_example, ..
            } => format!("VIOLATION\n{}", indent(counter_example)),
            Verdict::Inconclusive(why) => format!("inconclusive: {why}"),
        };
        println!(
            "key {:<8} {:?}, {} ops: {verdict}",
            k.key, k.model, k.ops_checked
        );
    }
    println!(
        "{} ops, {} checked, {} violations, {} lost writes",
        ops.len(),
        report.ops_checked(),
        report.violations().count(),
        report.lost_writes()
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_report(r: &ScheduleReport) {
    println!("{}", r.line());
    if !r.passed() || r.inconclusive > 0 || !r.faults.external_kills.is_empty() {
        for f in &r.findings {
            println!("{}", indent(f));
        }
    }
    if let Some(dir) = &r.dir {
        println!(
            "    seed {}: evidence kept in {} (history.jsonl, faults.log, node*.log)",
            r.seed,
            dir.display()
        );
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
