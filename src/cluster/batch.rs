//! Merging small migrations into one run (issue #11): `MOVE` and `REBALANCE` record
//! migrations of at most `store::migrations::BATCH_SLOTS` slots, planned without knowing
//! how much data the slots hold; each costs a fixed few Raft commits besides its copy, so
//! moving little data per migration spends most of the time on those. Before carrying out
//! the lowest pending migration, the coordinator widens it (`MERGE`, one metadata entry,
//! see `store::migrations`) with the next pending ones of the same source and target, as
//! many slots as the last run says fit in [`RUN_BYTES`] of copied records (a run that
//! copied nothing: in [`TARGET_RUN`] at its pace), never fewer than a batch nor more than
//! `store::migrations::MERGE_MAX_SLOTS`. The run's slots answer `-TRYAGAIN` until its
//! cut-over, so the budget bounds that window (8 MB at the default `--migrate-max-mbps`
//! of 64: 125 ms of copy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use resp::Reply;
use slog::{info, warn};
use store::cluster_meta::{ClusterMeta, MetaCmd};
use store::migrations::{slots_of, Migration, BATCH_SLOTS, MERGE_MAX_SLOTS};

use crate::server::Server;

/// Bytes of records (keys and values) one run of merged migrations should copy.
pub const RUN_BYTES: u64 = 8_000_000;

/// How long one run of merged migrations that copies nothing should take, start to
/// cut-over.
pub const TARGET_RUN: Duration = Duration::from_millis(200);

/// The slots the next run may move, from the pace of the last one.
#[derive(Default)]
pub struct Budget {
    /// 0: no run finished since the queue was last empty ([`BATCH_SLOTS`]).
    slots: AtomicU64,
}

impl Budget {
    /// Slots the next run may move.
    pub fn slots(&self) -> usize {
        match self.slots.load(Ordering::Relaxed) {
            0 => BATCH_SLOTS,
            n => n as usize,
        }
    }

    /// A run of `slots` slots copied `copied` bytes and took `took`: the next one gets as
    /// many slots as fit in [`RUN_BYTES`] at that density, or when nothing was copied in
    /// [`TARGET_RUN`] at that pace (between a batch and `MERGE_MAX_SLOTS`).
    pub fn finished(&self, slots: u64, copied: u64, took: Duration) {
        let by_time = || {
            let micros = took.as_micros().max(1) as u64;
            slots.saturating_mul(TARGET_RUN.as_micros() as u64) / micros
        };
        let fit = slots
            .saturating_mul(RUN_BYTES)
            .checked_div(copied)
            .unwrap_or_else(by_time);
        let n = fit.clamp(BATCH_SLOTS as u64, MERGE_MAX_SLOTS as u64);
        self.slots.store(n, Ordering::Relaxed);
    }

    /// The queue is empty: the next run's data may differ.
    pub fn reset(&self) {
        self.slots.store(0, Ordering::Relaxed);
    }
}

/// The pending migrations after `id` (of `m`'s source and target, in id order, up to the
/// first of another pair) that fit with `m` in `budget` slots.
pub fn mergeable(state: &ClusterMeta, id: u64, m: &Migration, budget: usize) -> Vec<u64> {
    let mut total = slots_of(&m.ranges);
    let mut ids = Vec::new();
    for (&i, o) in state.migrations.range(id + 1..) {
        let n = slots_of(&o.ranges);
        if (o.from, o.to) != (m.from, m.to) || total + n > budget.min(MERGE_MAX_SLOTS) {
            break;
        }
        total += n;
        ids.push(i);
    }
    ids
}

impl Server {
    /// Migration `id` (`m`, the lowest pending) widened as the module doc says: the record
    /// to carry out, as this node applied it (`m` when nothing was merged).
    pub(super) async fn widen(&self, state: &ClusterMeta, id: u64, m: Migration) -> Migration {
        let ids = mergeable(state, id, &m, self.migration.budget.slots());
        if ids.is_empty() {
            return m;
        }
        let n = ids.len();
        match self.meta_call(MetaCmd::Merge { id, ids }).await {
            Ok(Reply::Error(e)) | Err(e) => {
                warn!(self.logger, "merging migrations failed"; "migration" => id, "err" => e)
            }
            Ok(_) => info!(self.logger, "migrations merged"; "migration" => id, "merged" => n),
        }
        // The merge applied here (this node leads the metadata) before its reply; a record
        // read too early only fails its cut-over, and the migration is tried again.
        let now = self.groups.meta_state();
        now.migrations.get(&id).cloned().unwrap_or(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_last_runs_pace_and_merges_only_one_pair() {
        let b = Budget::default();
        assert_eq!(b.slots(), BATCH_SLOTS);
        b.finished(256, 0, Duration::from_millis(40));
        assert_eq!(b.slots(), 1280, "nothing copied: by time");
        b.finished(1280, 0, Duration::from_millis(20));
        assert_eq!(b.slots(), MERGE_MAX_SLOTS);
        b.finished(256, 0, Duration::from_secs(2));
        assert_eq!(b.slots(), BATCH_SLOTS);
        b.finished(256, 1_000_000, Duration::from_secs(2));
        assert_eq!(b.slots(), 2048, "copied: by bytes, whatever the time");
        b.finished(256, 16_000_000, Duration::from_millis(10));
        assert_eq!(b.slots(), BATCH_SLOTS);
        let mut state = ClusterMeta::default();
        state.apply(&MetaCmd::Init { groups: 2 });
        state.apply(&MetaCmd::Migrate {
            to: 2,
            ranges: vec![(0, 1023)],
        });
        state.apply(&MetaCmd::Migrate {
            to: 1,
            ranges: vec![(8192, 8199)],
        });
        state.apply(&MetaCmd::Migrate {
            to: 2,
            ranges: vec![(1024, 1279)],
        });
        let (id, m) = state.next_migration().map(|(i, m)| (i, m.clone())).unwrap();
        assert_eq!(mergeable(&state, id, &m, 256), Vec::<u64>::new());
        assert_eq!(mergeable(&state, id, &m, 700), vec![id + 1]);
        assert_eq!(
            mergeable(&state, id, &m, 100_000),
            vec![id + 1, id + 2, id + 3],
            "up to the other pair's migration"
        );
    }
}
