//! The cluster metadata: the state machine of the metadata Raft group. It holds the config
//! epoch, the slot map (slot ranges → data group), each data group's members (as the
//! group's leader reports them) and each node's addresses and stable Redis Cluster node
//! id, plus the operator's preferred leader of data groups (see [`crate::leader_prefs`]).
//! Every change is one committed `RAFTKV.META <op> ...` entry of the metadata group and
//! bumps the epoch (except a leader preference: it is no part of the Redis Cluster
//! configuration clients see); a command that changes nothing leaves the state (and the
//! epoch) alone, so replaying or repeating one is harmless.
//!
//! The state is small and kept whole in one record of the `meta` column family under the
//! metadata group's prefix (tag `M`), so the group's snapshots carry it like any other
//! group's meta records.
//!
//! Slot ownership changes only by `ASSIGN <group> <ranges>`: one entry, one new epoch, the
//! ranges leaving whatever group owned them. `INIT` (the bootstrap's even split) is the
//! first such assignment; online slot migration (issue #11) cuts a slot over with one
//! `ASSIGN` once the target holds its data.

use std::collections::BTreeMap;

use bytes::Bytes;
use resp::Reply;
use rocksdb::WriteBatch;

use crate::migrations::{ranges_words, Migration};
use crate::slot::SLOTS;
use crate::{fail_stop, meta_key, Store, CF_META};

/// The first word of every metadata command.
pub const META_CMD: &[u8] = b"RAFTKV.META";

/// The meta-CF tag of the record.
const TAG: u8 = b'M';

/// What the cluster knows about one node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeRecord {
    /// Redis Cluster node id (40 hex digits), fixed by the node's first record.
    pub name: String,
    /// Client (Redis) address.
    pub redis_addr: String,
    /// Raft (peer) address.
    pub raft_addr: String,
}

/// One data group's members as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMembers {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// The whole metadata state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMeta {
    /// Incremented by every change; 0 before the bootstrap layout.
    pub epoch: u64,
    /// Number of data groups of the bootstrap layout (0: not laid out yet).
    pub groups: u64,
    /// Slot ranges (inclusive) and their group, sorted, disjoint, adjacent ranges of one
    /// group merged.
    pub slots: Vec<(u16, u16, u64)>,
    /// Members by data group.
    pub members: BTreeMap<u64, GroupMembers>,
    /// Nodes by Raft id.
    pub nodes: BTreeMap<u64, NodeRecord>,
    /// Pending slot migrations by id (see [`crate::migrations`]).
    pub migrations: BTreeMap<u64, Migration>,
    /// The last migration id handed out.
    pub next_migration: u64,
    /// Preferred leader node by data group (see [`crate::leader_prefs`]).
    pub prefer: BTreeMap<u64, u64>,
    /// Data groups created at runtime and their founding voters (see
    /// [`crate::shard_groups`]).
    pub added: BTreeMap<u64, Vec<u64>>,
    /// Created groups being removed (`RAFT.SHARDGROUP LEAVE`): their slots move away,
    /// then [`MetaCmd::Removed`] drops them.
    pub leaving: std::collections::BTreeSet<u64>,
    /// Groups that left (`RAFT.SHARDGROUP LEAVE`, then [`MetaCmd::Removed`]), bootstrap
    /// or created: no longer data groups; their ids are not used again.
    pub gone: std::collections::BTreeSet<u64>,
}

/// A metadata command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCmd {
    /// The bootstrap layout: `groups` data groups splitting the slots evenly (once).
    Init { groups: u64 },
    /// `ranges` now belong to `group` (a slot cut-over).
    Assign { group: u64, ranges: Vec<(u16, u16)> },
    /// `group`'s members.
    Members { group: u64, members: GroupMembers },
    /// Node `id`'s addresses (its name is kept once recorded).
    Node { id: u64, record: NodeRecord },
    /// Node `id` left the cluster.
    Forget { id: u64 },
    /// Record migrations moving `ranges` to group `to` (see [`crate::migrations`]).
    Migrate { to: u64, ranges: Vec<(u16, u16)> },
    /// Cut migration `id` over: its ranges belong to its target from now on; `ranges`, when
    /// given, must be the record's (a coordinator that ran the migration before a merge
    /// widened it cuts nothing over, see [`crate::migrations`]).
    Migrated { id: u64, ranges: Vec<(u16, u16)> },
    /// Widen pending migration `id` with the pending migrations `ids` of the same source
    /// and target (see [`ClusterMeta::merge_migrations`]).
    Merge { id: u64, ids: Vec<u64> },
    /// Record the migrations that even the data groups' slot counts, planned from the
    /// state this entry applies to (see [`ClusterMeta::rebalance_plan`]).
    Rebalance,
    /// Node `node` should lead data group `group` (see [`crate::leader_prefs`]).
    Prefer { group: u64, node: u64 },
    /// A new data group with replicas on `voters` (see [`crate::shard_groups`]).
    Group { group: u64, voters: Vec<u64> },
    /// Group `group` leaves: its slots move to the other groups (see
    /// [`crate::shard_groups`]).
    Leave { group: u64 },
    /// Group `group`, which left and owns no slots, is no more.
    Removed { group: u64 },
}

/// Slot ranges (inclusive) of each of `n` groups splitting the slots evenly, group 1 first.
pub fn even_split(n: u64) -> Vec<(u16, u16)> {
    let n = n.clamp(1, SLOTS as u64);
    (0..n)
        .map(|i| {
            let start = i * SLOTS as u64 / n;
            let end = (i + 1) * SLOTS as u64 / n - 1;
            (start as u16, end as u16)
        })
        .collect()
}

/// Node ids as the record and QUERY write them: comma-separated, `-` for none.
pub fn ids_text(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn parse_ids(s: &str) -> Option<Vec<u64>> {
    if s == "-" {
        return Some(Vec::new());
    }
    let mut v = s
        .split(',')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    v.sort_unstable();
    v.dedup();
    Some(v)
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b && b < SLOTS).then_some((a, b))
}

/// An address or name: non-empty, printable, no spaces.
fn word(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

impl MetaCmd {
    /// The command as a replicated argument vector (`RAFTKV.META ...`).
    pub fn to_argv(&self) -> Vec<Bytes> {
        let mut a: Vec<String> = Vec::new();
        match self {
            MetaCmd::Init { groups } => a.extend(["INIT".into(), groups.to_string()]),
            MetaCmd::Assign { group, ranges } => {
                a.extend(["ASSIGN".into(), group.to_string()]);
                a.extend(ranges.iter().map(|(x, y)| format!("{x}-{y}")));
            }
            MetaCmd::Members { group, members } => a.extend([
                "MEMBERS".into(),
                group.to_string(),
                ids_text(&members.voters),
                ids_text(&members.learners),
            ]),
            MetaCmd::Node { id, record } => a.extend([
                "NODE".into(),
                id.to_string(),
                record.name.clone(),
                record.redis_addr.clone(),
                record.raft_addr.clone(),
            ]),
            MetaCmd::Forget { id } => a.extend(["FORGET".into(), id.to_string()]),
            MetaCmd::Migrate { to, ranges } => {
                a.extend(["MIGRATE".into(), to.to_string()]);
                a.extend(ranges_words(ranges));
            }
            MetaCmd::Migrated { id, ranges } => {
                a.extend(["MIGRATED".into(), id.to_string()]);
                a.extend(ranges_words(ranges));
            }
            MetaCmd::Merge { id, ids } => a.extend(["MERGE".into(), id.to_string(), ids_text(ids)]),
            MetaCmd::Rebalance => a.push("REBALANCE".into()),
            MetaCmd::Prefer { group, node } => {
                a.extend(["PREFER".into(), group.to_string(), node.to_string()])
            }
            MetaCmd::Group { group, voters } => {
                a.extend(["GROUP".into(), group.to_string(), ids_text(voters)])
            }
            MetaCmd::Leave { group } => a.extend(["LEAVE".into(), group.to_string()]),
            MetaCmd::Removed { group } => a.extend(["REMOVED".into(), group.to_string()]),
        }
        std::iter::once(Bytes::from_static(META_CMD))
            .chain(a.into_iter().map(Bytes::from))
            .collect()
    }

    /// Parses `RAFTKV.META ...`; `None` when `argv` is not a well-formed one.
    pub fn parse(argv: &[Bytes]) -> Option<MetaCmd> {
        let (first, rest) = argv.split_first()?;
        if !first.eq_ignore_ascii_case(META_CMD) {
            return None;
        }
        let words: Vec<&str> = rest
            .iter()
            .map(|b| std::str::from_utf8(b).ok())
            .collect::<Option<_>>()?;
        let num = |s: &str| s.parse::<u64>().ok();
        Some(match words.as_slice() {
            ["INIT", n] => MetaCmd::Init {
                groups: num(n).filter(|&n| (1..=SLOTS as u64).contains(&n))?,
            },
            ["ASSIGN", g, ranges @ ..] if !ranges.is_empty() => MetaCmd::Assign {
                group: num(g).filter(|&g| g > 0)?,
                ranges: ranges
                    .iter()
                    .map(|r| parse_range(r))
                    .collect::<Option<_>>()?,
            },
            ["MEMBERS", g, v, l] => MetaCmd::Members {
                group: num(g)?,
                members: GroupMembers {
                    voters: parse_ids(v)?,
                    learners: parse_ids(l)?,
                },
            },
            ["NODE", id, name, redis, raft] => MetaCmd::Node {
                id: num(id)?,
                record: NodeRecord {
                    name: word(name)?,
                    redis_addr: word(redis)?,
                    raft_addr: word(raft)?,
                },
            },
            ["FORGET", id] => MetaCmd::Forget { id: num(id)? },
            ["MIGRATE", g, ranges @ ..] if !ranges.is_empty() => MetaCmd::Migrate {
                to: num(g).filter(|&g| g > 0)?,
                ranges: ranges
                    .iter()
                    .map(|r| parse_range(r))
                    .collect::<Option<_>>()?,
            },
            ["MIGRATED", id, ranges @ ..] => MetaCmd::Migrated {
                id: num(id)?,
                ranges: ranges
                    .iter()
                    .map(|r| parse_range(r))
                    .collect::<Option<_>>()?,
            },
            ["MERGE", id, ids] => MetaCmd::Merge {
                id: num(id)?,
                ids: parse_ids(ids).filter(|v| !v.is_empty())?,
            },
            ["REBALANCE"] => MetaCmd::Rebalance,
            ["GROUP", g, v] => MetaCmd::Group {
                group: num(g)?,
                voters: parse_ids(v)?,
            },
            ["LEAVE", g] => MetaCmd::Leave { group: num(g)? },
            ["REMOVED", g] => MetaCmd::Removed { group: num(g)? },
            ["PREFER", g, n] => MetaCmd::Prefer {
                group: num(g).filter(|&g| g > 0)?,
                node: num(n).filter(|&n| n > 0)?,
            },
            _ => return None,
        })
    }
}

impl ClusterMeta {
    /// The group owning `slot`, if any.
    pub fn group_of(&self, slot: u16) -> Option<u64> {
        let i = self.slots.partition_point(|&(_, b, _)| b < slot);
        self.slots
            .get(i)
            .filter(|&&(a, _, _)| a <= slot)
            .map(|&(_, _, g)| g)
    }

    /// The slot ranges of `group`, in slot order.
    pub fn ranges_of(&self, group: u64) -> Vec<(u16, u16)> {
        self.slots
            .iter()
            .filter(|r| r.2 == group)
            .map(|&(a, b, _)| (a, b))
            .collect()
    }

    /// Applies `cmd`; true when the state changed (and then the epoch moved, unless `cmd`
    /// only set a leader preference).
    pub fn apply(&mut self, cmd: &MetaCmd) -> bool {
        let changed = match cmd {
            MetaCmd::Init { groups } => {
                let fresh = self.groups == 0;
                if fresh {
                    self.groups = *groups;
                    for (i, r) in even_split(*groups).into_iter().enumerate() {
                        self.assign(i as u64 + 1, &[r]);
                    }
                }
                fresh
            }
            MetaCmd::Assign { group, ranges } => {
                let before = self.slots.clone();
                self.assign(*group, ranges);
                self.slots != before
            }
            MetaCmd::Members { group, members } => {
                self.members.insert(*group, members.clone()).as_ref() != Some(members)
            }
            MetaCmd::Node { id, record } => {
                let name = self
                    .nodes
                    .get(id)
                    .map_or_else(|| record.name.clone(), |n| n.name.clone());
                let rec = NodeRecord {
                    name,
                    ..record.clone()
                };
                self.nodes.insert(*id, rec.clone()) != Some(rec)
            }
            MetaCmd::Forget { id } => {
                let dropped = self.drop_preferences_of(*id);
                self.nodes.remove(id).is_some() || dropped
            }
            MetaCmd::Migrate { to, ranges } => self.plan_migrations(*to, ranges) > 0,
            MetaCmd::Migrated { id, ranges } => self.finish_migration(*id, ranges),
            // The slots' owners do not change: no new epoch.
            MetaCmd::Merge { id, ids } => return self.merge_migrations(*id, ids),
            MetaCmd::Group { group, voters } => self.add_group(*group, voters),
            MetaCmd::Leave { group } => self.leave_group(*group),
            MetaCmd::Removed { group } => self.remove_group(*group),
            MetaCmd::Rebalance => {
                let groups = self.staying_groups();
                let plan = self.rebalance_plan(&groups);
                plan.iter()
                    .map(|(to, ranges)| self.plan_migrations(*to, ranges))
                    .sum::<usize>()
                    > 0
            }
            MetaCmd::Prefer { group, node } => return self.set_preference(*group, *node),
        };
        if changed {
            self.epoch += 1;
        }
        changed
    }

    /// Gives `ranges` to `group`, taking them from their owners.
    pub(crate) fn assign(&mut self, group: u64, ranges: &[(u16, u16)]) {
        let mut owner: Vec<u64> = vec![0; SLOTS as usize];
        for &(a, b, g) in &self.slots {
            owner[a as usize..=b as usize].fill(g);
        }
        for &(a, b) in ranges {
            owner[a as usize..=b as usize].fill(group);
        }
        let mut out: Vec<(u16, u16, u64)> = Vec::new();
        for (s, &g) in owner.iter().enumerate() {
            match out.last_mut() {
                Some(last) if last.2 == g && last.1 as usize + 1 == s => last.1 = s as u16,
                _ if g == 0 => {}
                _ => out.push((s as u16, s as u16, g)),
            }
        }
        self.slots = out;
    }

    /// The record's text: one line per fact, in a fixed order.
    pub fn encode(&self) -> String {
        let mut out = format!("epoch {}\ngroups {}\n", self.epoch, self.groups);
        for (a, b, g) in &self.slots {
            out.push_str(&format!("slots {a} {b} {g}\n"));
        }
        for (g, m) in &self.members {
            out.push_str(&format!(
                "members {g} {} {}\n",
                ids_text(&m.voters),
                ids_text(&m.learners)
            ));
        }
        for (id, n) in &self.nodes {
            out.push_str(&format!(
                "node {id} {} {} {}\n",
                n.name, n.redis_addr, n.raft_addr
            ));
        }
        if self.next_migration > 0 {
            out.push_str(&format!("next_migration {}\n", self.next_migration));
        }
        for (id, m) in &self.migrations {
            out.push_str(&format!(
                "migration {id} {} {} {}\n",
                m.from,
                m.to,
                ranges_words(&m.ranges).join(",")
            ));
        }
        for (g, n) in &self.prefer {
            out.push_str(&format!("prefer {g} {n}\n"));
        }
        for (g, v) in &self.added {
            out.push_str(&format!("group {g} {}\n", ids_text(v)));
        }
        for g in &self.leaving {
            out.push_str(&format!("leaving {g}\n"));
        }
        for g in &self.gone {
            out.push_str(&format!("gone {g}\n"));
        }
        out
    }

    /// Parses [`ClusterMeta::encode`]'s text.
    pub fn decode(text: &str) -> Option<ClusterMeta> {
        let mut m = ClusterMeta::default();
        for line in text.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            match w.as_slice() {
                ["epoch", e] => m.epoch = e.parse().ok()?,
                ["groups", n] => m.groups = n.parse().ok()?,
                ["slots", a, b, g] => {
                    m.slots
                        .push((a.parse().ok()?, b.parse().ok()?, g.parse().ok()?))
                }
                ["members", g, v, l] => {
                    let members = GroupMembers {
                        voters: parse_ids(v)?,
                        learners: parse_ids(l)?,
                    };
                    m.members.insert(g.parse().ok()?, members);
                }
                ["node", id, name, redis, raft] => {
                    let rec = NodeRecord {
                        name: name.to_string(),
                        redis_addr: redis.to_string(),
                        raft_addr: raft.to_string(),
                    };
                    m.nodes.insert(id.parse().ok()?, rec);
                }
                ["next_migration", n] => m.next_migration = n.parse().ok()?,
                ["migration", id, from, to, ranges] => {
                    let mig = Migration {
                        from: from.parse().ok()?,
                        to: to.parse().ok()?,
                        ranges: ranges.split(',').map(parse_range).collect::<Option<_>>()?,
                    };
                    m.migrations.insert(id.parse().ok()?, mig);
                }
                ["prefer", g, n] => {
                    m.prefer.insert(g.parse().ok()?, n.parse().ok()?);
                }
                ["group", g, v] => {
                    m.added.insert(g.parse().ok()?, parse_ids(v)?);
                }
                ["leaving", g] => {
                    m.leaving.insert(g.parse().ok()?);
                }
                ["gone", g] => {
                    m.gone.insert(g.parse().ok()?);
                }
                _ => return None,
            }
        }
        Some(m)
    }
}

impl Store {
    /// The metadata state this group recorded (empty when none; a corrupt record stops the
    /// node, like any other storage error of the apply path).
    pub fn load_cluster_meta(&self) -> ClusterMeta {
        let Some(cf) = self.db.cf_handle(CF_META) else {
            return ClusterMeta::default();
        };
        match self.db.get_cf(cf, meta_key(self.group, TAG)) {
            Ok(None) => ClusterMeta::default(),
            Ok(Some(v)) => std::str::from_utf8(&v)
                .ok()
                .and_then(ClusterMeta::decode)
                .unwrap_or_else(|| fail_stop("reading the cluster metadata", "corrupt record")),
            Err(e) => fail_stop("reading the cluster metadata", e),
        }
    }

    /// Applies one committed metadata command to `state`; the reply, and whether the state
    /// changed (then stage it with [`Store::stage_cluster_meta`] once the entry's commands
    /// are applied).
    pub fn apply_cluster_meta(state: &mut ClusterMeta, argv: &[Bytes]) -> (Reply, bool) {
        match MetaCmd::parse(argv) {
            Some(cmd @ (MetaCmd::Migrate { .. } | MetaCmd::Rebalance)) => {
                let before = state.next_migration;
                let changed = state.apply(&cmd);
                (Reply::Int((state.next_migration - before) as i64), changed)
            }
            Some(MetaCmd::Group { group, voters }) => {
                if let Err(e) = state.check_new_group(group, &voters) {
                    return (Reply::err(e), false);
                }
                (Reply::ok(), state.apply(&MetaCmd::Group { group, voters }))
            }
            Some(MetaCmd::Leave { group }) => match state.check_leave(group) {
                Err(e) => (Reply::err(e), false),
                Ok(()) => {
                    let before = state.next_migration;
                    let changed = state.apply(&MetaCmd::Leave { group });
                    (Reply::Int((state.next_migration - before) as i64), changed)
                }
            },
            Some(MetaCmd::Migrated { id, ranges })
                if !ranges.is_empty()
                    && state
                        .migrations
                        .get(&id)
                        .is_some_and(|m| m.ranges != ranges) =>
            {
                let e = format!("ERR migration {id} moves other ranges now (merged)");
                (Reply::err(e), false)
            }
            Some(cmd) => (Reply::ok(), state.apply(&cmd)),
            None => (Reply::err("ERR malformed metadata command"), false),
        }
    }

    /// Stages `state` as this group's metadata record.
    pub fn stage_cluster_meta(&self, wb: &mut WriteBatch, state: &ClusterMeta) {
        wb.put_cf(
            self.cf(CF_META),
            meta_key(self.group, TAG),
            state.encode().as_bytes(),
        );
    }
}

#[cfg(test)]
#[path = "cluster_meta_tests.rs"]
mod tests;
