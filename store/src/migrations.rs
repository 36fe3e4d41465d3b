//! Slot migrations in the cluster metadata: the records of moves still to be carried out,
//! how `MIGRATE` plans them and `MIGRATED` cuts them over, and the rebalance plan.
//!
//! A [`Migration`] moves slot ranges of one source group to one target group. `MIGRATE
//! <to> <ranges>` records one migration per run of slots of one owner, at most
//! [`BATCH_SLOTS`] slots each, with ids from a counter in the metadata (so ids only grow:
//! they are the fences of the groups' slot commands). Slots already owned by the target or
//! already part of a pending migration are skipped. The coordinator (the metadata leader)
//! carries out the lowest id first: the source's `RAFTKV.SLOTS.REMOVE FENCE <id>`, then the
//! target's `RAFTKV.SLOTS.ADD FENCE <id>`, then `MIGRATED <id>`: the cut-over, one entry
//! that gives the ranges to the target (new epoch) and drops the record. Every step is
//! idempotent, so a coordinator that dies anywhere leaves a record its successor finishes
//! (migrations always roll forward).
//!
//! `MERGE <id> <ids>` widens the lowest pending migration `id` with later pending ones of
//! the same source and target (the coordinator merges small migrations into one run, see
//! `src/cluster/migrate.rs`): their slots then move under `id`'s fence, which no group has
//! passed (`id` is the lowest pending, and the later ones have not started: the
//! coordinator runs the lowest id first). A step of `id` already applied over its old
//! ranges is repeated over the wider ones (a slot command fenced as the last one a group
//! applied is not stale). The cut-over names the ranges it moved (`MIGRATED <id>
//! <ranges>`) and cuts nothing over when they are not the record's: a coordinator that ran
//! `id` before the merge (deposed meanwhile) cannot give the target slots it never moved.

use std::collections::BTreeMap;

use crate::cluster_meta::ClusterMeta;
use crate::slot::SLOTS;

/// Most slots one migration moves (its cut-over window covers them all, and both groups
/// count the keys of its slots in one apply).
pub const BATCH_SLOTS: usize = 256;

/// Most slots one merged migration moves (`MERGE`).
pub const MERGE_MAX_SLOTS: usize = 4096;

/// Most migrations pending at once (each is a line of the metadata record).
pub const MAX_PENDING: usize = 1024;

/// One pending move of slot ranges from group `from` to group `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub from: u64,
    pub to: u64,
    /// Inclusive ranges, in slot order.
    pub ranges: Vec<(u16, u16)>,
}

/// `ranges` as `a-b` words.
pub fn ranges_words(ranges: &[(u16, u16)]) -> Vec<String> {
    ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect()
}

/// The number of slots of `ranges`.
pub fn slots_of(ranges: &[(u16, u16)]) -> usize {
    ranges.iter().map(|&(a, b)| usize::from(b - a) + 1).sum()
}

/// The owner of every slot (0: none).
fn owners(m: &ClusterMeta) -> Vec<u64> {
    let mut owner = vec![0u64; SLOTS as usize];
    for &(a, b, g) in &m.slots {
        owner[a as usize..=b as usize].fill(g);
    }
    owner
}

impl ClusterMeta {
    /// True when `slot` is part of a pending migration.
    fn migrating(&self, slot: u16) -> bool {
        self.migrations
            .values()
            .any(|m| m.ranges.iter().any(|&(a, b)| a <= slot && slot <= b))
    }

    /// `MIGRATE <to> <ranges>`: records the moves (see the module doc); the number of
    /// migrations recorded.
    pub(crate) fn plan_migrations(&mut self, to: u64, ranges: &[(u16, u16)]) -> usize {
        if !self.is_data_group(to) || self.leaving.contains(&to) {
            return 0;
        }
        let owner = owners(self);
        let mut runs: Vec<(u64, u16, u16)> = Vec::new();
        for &(a, b) in ranges {
            for s in a..=b {
                let from = owner[s as usize];
                if from == 0 || from == to || self.migrating(s) {
                    continue;
                }
                match runs.last_mut() {
                    Some(r)
                        if r.0 == from && r.2 + 1 == s && usize::from(s - r.1) < BATCH_SLOTS =>
                    {
                        r.2 = s
                    }
                    _ => runs.push((from, s, s)),
                }
            }
        }
        let room = MAX_PENDING.saturating_sub(self.migrations.len());
        let n = runs.len().min(room);
        for (from, a, b) in runs.into_iter().take(n) {
            self.next_migration += 1;
            let m = Migration {
                from,
                to,
                ranges: vec![(a, b)],
            };
            self.migrations.insert(self.next_migration, m);
        }
        n
    }

    /// `MIGRATED <id> [<ranges>]`: the cut-over of a pending migration; false when there
    /// is none (done already) or `ranges` (when given) are not its ranges.
    pub(crate) fn finish_migration(&mut self, id: u64, ranges: &[(u16, u16)]) -> bool {
        match self.migrations.get(&id) {
            Some(m) if ranges.is_empty() || m.ranges == ranges => {
                let m = m.clone();
                self.migrations.remove(&id);
                self.assign(m.to, &m.ranges);
                true
            }
            _ => false,
        }
    }

    /// `MERGE <id> <ids>`: migration `id`, the lowest pending one, takes the ranges of the
    /// pending migrations `ids` (each above `id`, with its source and target), which are
    /// dropped; at most [`MERGE_MAX_SLOTS`] slots in all. False (nothing changes) when any
    /// of that does not hold.
    pub(crate) fn merge_migrations(&mut self, id: u64, ids: &[u64]) -> bool {
        let Some((&lowest, first)) = self.migrations.iter().next() else {
            return false;
        };
        let others: Option<Vec<&Migration>> = ids
            .iter()
            .map(|i| self.migrations.get(i).filter(|_| *i > id))
            .collect();
        let Some(others) = others.filter(|o| !o.is_empty()) else {
            return false;
        };
        let mut ranges = first.ranges.clone();
        for o in &others {
            if (o.from, o.to) != (first.from, first.to) {
                return false;
            }
            ranges.extend_from_slice(&o.ranges);
        }
        if lowest != id || slots_of(&ranges) > MERGE_MAX_SLOTS {
            return false;
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(r) if u32::from(r.1) + 1 == u32::from(a) => r.1 = b,
                _ => merged.push((a, b)),
            }
        }
        for i in ids {
            self.migrations.remove(i);
        }
        if let Some(m) = self.migrations.get_mut(&id) {
            m.ranges = merged;
        }
        true
    }

    /// The migration to carry out next (lowest id).
    pub fn next_migration(&self) -> Option<(u64, &Migration)> {
        self.migrations.iter().next().map(|(&id, m)| (id, m))
    }

    /// The moves that make every group of `groups` own the same number of slots, give or
    /// take one, moving as few slots as possible: groups above their share give their
    /// highest slots to groups below theirs. Pending migrations count as done. Each move is
    /// `(to, ranges)`.
    pub fn rebalance_plan(&self, groups: &[u64]) -> Vec<(u64, Vec<(u16, u16)>)> {
        if groups.is_empty() {
            return Vec::new();
        }
        let mut owner = owners(self);
        for m in self.migrations.values() {
            for &(a, b) in &m.ranges {
                owner[a as usize..=b as usize].fill(m.to);
            }
        }
        let mut gs = groups.to_vec();
        gs.sort_unstable();
        gs.dedup();
        let n = gs.len();
        let base = SLOTS as usize / n;
        let extra = SLOTS as usize % n;
        // `extra` groups keep one slot more: those above the base share, the smallest of
        // them first (the number of slots moved is the same either way; this way a group
        // already at base + 1 is left alone).
        let mut count: BTreeMap<u64, usize> = gs.iter().map(|&g| (g, 0)).collect();
        for &g in &owner {
            if let Some(c) = count.get_mut(&g) {
                *c += 1;
            }
        }
        let mut order = gs.clone();
        order.sort_by_key(|g| {
            let c = count[g];
            if c > base {
                (0, c)
            } else {
                (1, usize::MAX - c)
            }
        });
        let target: BTreeMap<u64, usize> = order
            .iter()
            .enumerate()
            .map(|(i, &g)| (g, base + usize::from(i < extra)))
            .collect();
        // Slots to give: unowned or owned by a group outside `groups`, then the highest
        // slots of groups above their target.
        let mut give: Vec<u16> = Vec::new();
        let mut over: BTreeMap<u64, usize> = BTreeMap::new();
        for (&g, &c) in &count {
            over.insert(g, c.saturating_sub(target[&g]));
        }
        for s in (0..SLOTS).rev() {
            let g = owner[s as usize];
            match over.get_mut(&g) {
                Some(o) if *o > 0 => {
                    *o -= 1;
                    give.push(s);
                }
                Some(_) => {}
                None => give.push(s),
            }
        }
        give.sort_unstable();
        let mut moves: Vec<(u64, Vec<(u16, u16)>)> = Vec::new();
        let mut slots = give.into_iter();
        for &g in &gs {
            let need = target[&g].saturating_sub(count[&g]);
            let mine: Vec<u16> = slots.by_ref().take(need).collect();
            if mine.is_empty() {
                continue;
            }
            let mut ranges: Vec<(u16, u16)> = Vec::new();
            for s in mine {
                match ranges.last_mut() {
                    Some(r) if r.1 + 1 == s => r.1 = s,
                    _ => ranges.push((s, s)),
                }
            }
            moves.push((g, ranges));
        }
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_meta::MetaCmd;

    fn counts(m: &ClusterMeta) -> BTreeMap<u64, usize> {
        let mut c = BTreeMap::new();
        for &(a, b, g) in &m.slots {
            *c.entry(g).or_default() += usize::from(b - a) + 1;
        }
        c
    }

    #[test]
    fn migrate_records_batches_per_owner_and_migrated_cuts_over() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        let epoch = m.epoch;
        // 5400-5500 spans groups 1 and 2; group 2's own slots are skipped.
        assert_eq!(m.plan_migrations(2, &[(5400, 5500)]), 1);
        assert_eq!(m.plan_migrations(3, &[(5400, 5500)]), 1, "5461-5500 only");
        let (id, first) = m.next_migration().unwrap();
        assert_eq!(
            (first.from, first.to, first.ranges.clone()),
            (1, 2, vec![(5400, 5460)])
        );
        assert!(m.finish_migration(id, &[]));
        assert!(!m.finish_migration(id, &[]), "a repeat changes nothing");
        assert_eq!(m.group_of(5400), Some(2));
        assert_eq!(m.group_of(5461), Some(2), "not cut over yet");
        let (id2, second) = m.next_migration().unwrap();
        assert!(id2 > id);
        assert_eq!(second.ranges, vec![(5461, 5500)]);
        assert_eq!(m.epoch, epoch, "the epoch moves in MetaCmd::apply");
    }

    #[test]
    fn a_long_run_is_split_into_batches() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 2 });
        assert_eq!(
            m.plan_migrations(2, &[(0, 599)]),
            600usize.div_ceil(BATCH_SLOTS)
        );
        let all: Vec<_> = m
            .migrations
            .values()
            .flat_map(|x| x.ranges.clone())
            .collect();
        assert_eq!(all.first(), Some(&(0, 255)));
        assert_eq!(all.last(), Some(&(512, 599)));
    }

    #[test]
    fn merge_widens_the_lowest_pending_migration_and_the_cut_over_checks_its_ranges() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 2 });
        // Group 1 owns 0-8191: four migrations of 256 slots, then one from group 2.
        assert_eq!(m.plan_migrations(2, &[(0, 1023)]), 4);
        assert_eq!(m.plan_migrations(1, &[(8192, 8200)]), 1);
        let ids: Vec<u64> = m.migrations.keys().copied().collect();
        let (a, b, c, d, e) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
        let epoch = m.epoch;
        assert!(
            !m.apply(&MetaCmd::Merge {
                id: b,
                ids: vec![c]
            }),
            "b is not the lowest"
        );
        assert!(
            !m.apply(&MetaCmd::Merge {
                id: a,
                ids: vec![e]
            }),
            "another pair"
        );
        assert!(
            !m.apply(&MetaCmd::Merge {
                id: a,
                ids: vec![99]
            }),
            "no such migration"
        );
        let before = m.clone();
        // A coordinator that ran `a` before the merge cuts nothing over afterwards.
        assert!(m.apply(&MetaCmd::Merge {
            id: a,
            ids: vec![b, d]
        }));
        assert_eq!(m.epoch, epoch, "no owner changed");
        assert_eq!(m.migrations[&a].ranges, vec![(0, 511), (768, 1023)]);
        assert_eq!(ClusterMeta::decode(&m.encode()), Some(m.clone()));
        assert!(!m.migrations.contains_key(&b));
        assert!(!m.apply(&MetaCmd::Migrated {
            id: a,
            ranges: before.migrations[&a].ranges.clone()
        }));
        assert!(
            !m.apply(&MetaCmd::Merge {
                id: a,
                ids: vec![b]
            }),
            "b is gone"
        );
        assert!(m.apply(&MetaCmd::Migrated {
            id: a,
            ranges: vec![(0, 511), (768, 1023)]
        }));
        assert_eq!(m.group_of(511), Some(2));
        assert_eq!(m.group_of(600), Some(1), "c still pending");
        assert_eq!(m.next_migration().map(|(i, _)| i), Some(c));
        // Bounded: at most MERGE_MAX_SLOTS slots in one migration.
        let mut big = ClusterMeta::default();
        big.apply(&MetaCmd::Init { groups: 1 });
        big.groups = 2;
        let n = big.plan_migrations(2, &[(0, 16383)]);
        assert_eq!(n, 64, "{:?}", big.migrations.len());
        let ids: Vec<u64> = big.migrations.keys().copied().collect();
        let all = ids[1..].to_vec();
        assert!(!big.apply(&MetaCmd::Merge {
            id: ids[0],
            ids: all
        }));
        let fit = ids[1..MERGE_MAX_SLOTS / BATCH_SLOTS].to_vec();
        assert!(big.apply(&MetaCmd::Merge {
            id: ids[0],
            ids: fit
        }));
        assert_eq!(
            big.migrations[&ids[0]].ranges,
            vec![(0, MERGE_MAX_SLOTS as u16 - 1)]
        );
        assert_eq!(ClusterMeta::decode(&big.encode()), Some(big.clone()));
    }

    #[test]
    fn rebalance_evens_counts_with_few_moves() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        assert!(m.rebalance_plan(&[1, 2, 3]).is_empty(), "already even");
        // A fourth group (as a JOIN would record): each of the three gives about a
        // quarter of its slots.
        m.groups = 4;
        let plan = m.rebalance_plan(&[1, 2, 3, 4]);
        assert!(plan.iter().all(|(to, _)| *to == 4));
        for (to, ranges) in &plan {
            m.plan_migrations(*to, ranges);
        }
        while let Some((id, _)) = m.next_migration() {
            m.finish_migration(id, &[]);
        }
        let c = counts(&m);
        assert_eq!(c.len(), 4);
        let (lo, hi) = (c.values().min().unwrap(), c.values().max().unwrap());
        assert!(hi - lo <= 1, "{c:?}");
        assert_eq!(c.values().sum::<usize>(), SLOTS as usize);
        // Back to three: group 4's slots go.
        m.groups = 3;
        let plan = m.rebalance_plan(&[1, 2, 3]);
        let moved: usize = plan
            .iter()
            .flat_map(|(_, r)| r.iter().map(|(a, b)| usize::from(b - a) + 1))
            .sum();
        assert_eq!(moved, c[&4]);
    }

    #[test]
    fn rebalance_is_planned_at_apply_and_records_survive_encoding() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        assert!(m.apply(&MetaCmd::Migrate {
            to: 2,
            ranges: vec![(0, 999)]
        }));
        assert!(
            !m.apply(&MetaCmd::Migrate {
                to: 9,
                ranges: vec![(0, 10)]
            }),
            "no such data group"
        );
        let round = ClusterMeta::decode(&m.encode()).unwrap();
        assert_eq!(round, m);
        // Planned with the pending move counted as done: only what is left moves.
        assert!(m.apply(&MetaCmd::Rebalance));
        while let Some((id, _)) = m.next_migration() {
            m.finish_migration(id, &[]);
        }
        let c = counts(&m);
        assert!(
            c.values().max().unwrap() - c.values().min().unwrap() <= 1,
            "{c:?}"
        );
        assert!(
            !m.apply(&MetaCmd::Rebalance),
            "even: nothing to do, no new epoch"
        );
        for cmd in [
            MetaCmd::Rebalance,
            MetaCmd::Migrated {
                id: 4,
                ranges: vec![],
            },
            MetaCmd::Migrated {
                id: 4,
                ranges: vec![(1, 9), (20, 20)],
            },
            MetaCmd::Merge {
                id: 4,
                ids: vec![5, 7],
            },
        ] {
            assert_eq!(MetaCmd::parse(&cmd.to_argv()), Some(cmd));
        }
    }
}
