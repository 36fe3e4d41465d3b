//! Fault-injection harness and linearizability checker for raftkv: starts a real 3-node
//! cluster behind harness-owned TCP proxies, runs concurrent Redis clients while injecting
//! seeded faults (kill -9, SIGSTOP, partitions, one-way link cuts, optionally slot
//! migrations between data groups: [`migrate`], into and out of groups joined on some
//! nodes during the schedule: [`fresh`]), records the history and
//! checks it per key against register and counter models, hashes field by field as
//! registers, and lists used as queues against a FIFO model.
//!
//! [`run_schedules`] is the entry point shared by the `chaos` binary and the CI test.

pub mod batch;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod faults;
pub mod fresh;
pub mod hash;
pub mod history;
pub mod migrate;
pub mod proxy;
pub mod queue;
pub mod schedule;
pub mod workload;

pub use schedule::{ScheduleConfig, ScheduleReport};

/// Runs `count` schedules with seeds `base.seed`, `base.seed + 1`, ... one after another,
/// calling `each` with every report as it completes. Stops at the first harness error.
pub async fn run_schedules(
    base: &ScheduleConfig,
    count: u64,
    mut each: impl FnMut(&ScheduleReport),
) -> Result<Vec<ScheduleReport>, String> {
    let mut reports = Vec::new();
    for k in 0..count {
        let mut cfg = base.clone();
        cfg.seed = base.seed.wrapping_add(k);
        // A port taken by another process between probing and binding fails the start:
        // try that once more with fresh ports.
        let r = match schedule::run(&cfg).await {
            Err(e) if e.starts_with("start cluster") => schedule::run(&cfg).await,
            other => other,
        }
        .map_err(|e| format!("seed {}: {e}", cfg.seed))?;
        each(&r);
        reports.push(r);
    }
    Ok(reports)
}

/// [`run_schedules`] on a fresh two-thread tokio runtime, for synchronous callers (tests).
pub fn run_schedules_blocking(
    base: &ScheduleConfig,
    count: u64,
    each: impl FnMut(&ScheduleReport),
) -> Result<Vec<ScheduleReport>, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(run_schedules(base, count, each))
}
