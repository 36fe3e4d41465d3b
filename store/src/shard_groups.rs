//! Data groups created at runtime (`RAFT.SHARDGROUP JOIN <gid> <node-id>...`) in the
//! cluster metadata: which groups exist beyond the bootstrap layout's `1..=groups`, on
//! which nodes each was founded, and which nodes host each now (its reported members,
//! which `RAFT.NODE ... GROUP <g>` changes: [`ClusterMeta::hosted_on`]).
//!
//! `GROUP <gid> <ids>` is one metadata entry: it records the group with its founding
//! voters (also its first reported members) and owns no slot yet. Every named node, on
//! applying it, opens a peer for the group whose storage is bootstrapped with exactly those
//! voters, so every member starts from the same state and no snapshot is needed. The
//! bootstrap groups are implicit (every founder hosts them; a `--join`ed node joins them)
//! until `RAFT.NODE ... GROUP <g>` changes their members (then their reported members say
//! where they live, as for a created group). A group that left is `gone`, bootstrap or
//! created: its id is never used again (a node down meanwhile may still hold its raft log).
//!
//! The command is checked twice with the same function ([`ClusterMeta::check_new_group`]):
//! by the node the operator asked (clear errors at once) and where it applies (the same
//! verdict on every replica, whatever was applied in between).

use crate::cluster_meta::{ClusterMeta, GroupMembers};

/// Highest data group id (ids are 16-bit in the commands; the metadata group is far above).
pub const MAX_GROUP_ID: u64 = 0xffff;

impl ClusterMeta {
    /// Every data group: the bootstrap layout's and those created since, in id order.
    pub fn data_groups(&self) -> Vec<u64> {
        let mut out: Vec<u64> = (1..=self.groups)
            .filter(|g| !self.gone.contains(g))
            .collect();
        out.extend(self.added.keys().filter(|&&g| g > self.groups));
        out
    }

    /// True when `group` is a data group of the cluster.
    pub fn is_data_group(&self, group: u64) -> bool {
        self.is_bootstrap(group) || self.added.contains_key(&group)
    }

    /// True when `group` is one of the bootstrap layout's groups and has not left.
    pub fn is_bootstrap(&self, group: u64) -> bool {
        (1..=self.groups).contains(&group) && !self.gone.contains(&group)
    }

    /// True when `group`'s leader has reported members that include node `id` (a
    /// bootstrap group has no recorded members until then).
    pub fn reported_member(&self, group: u64, id: u64) -> bool {
        self.members
            .get(&group)
            .is_some_and(|m| m.voters.contains(&id) || m.learners.contains(&id))
    }

    /// The groups created at runtime that node `id` was founded on.
    pub fn added_on(&self, id: u64) -> Vec<(u64, Vec<u64>)> {
        self.added
            .iter()
            .filter(|(_, v)| v.contains(&id))
            .map(|(&g, v)| (g, v.clone()))
            .collect()
    }

    /// The data groups node `id` should host now by their members (as their leader last
    /// reported, see [`ClusterMeta::members_of`]): those that include it, voter or learner;
    /// each with the voters to found a new storage on. For a created group that is the
    /// founding voters while the group still has exactly them (a founder opening late
    /// starts where every founder started); otherwise none (an added member, or a founder
    /// removed and added again, starts empty and is caught up by the leader, by snapshot or
    /// log). A bootstrap group is listed once its reported members include the node, always
    /// with no voters (only `hosting`'s start founds one: see there).
    pub fn hosted_on(&self, id: u64) -> Vec<(u64, Vec<u64>)> {
        let boot = (1..=self.groups)
            .filter(|&g| self.is_bootstrap(g) && self.reported_member(g, id))
            .map(|g| (g, Vec::new()));
        let created = self
            .added
            .iter()
            .filter(|(&g, _)| g > self.groups)
            .filter_map(|(&g, founders)| {
                let m = self.members_of(g);
                if !m.voters.contains(&id) && !m.learners.contains(&id) {
                    return None;
                }
                let unchanged = m.learners.is_empty() && m.voters == *founders;
                let voters = if unchanged {
                    founders.clone()
                } else {
                    Vec::new()
                };
                Some((g, voters))
            })
            .collect::<Vec<_>>();
        boot.chain(created).collect()
    }

    /// Why `RAFT.NODE ... GROUP <group>` naming node `id` would be refused, if it would:
    /// `group` is not a data group, or `id` is not a node of the cluster.
    pub fn check_group_member_change(&self, group: u64, id: u64) -> Result<(), String> {
        if self.groups == 0 {
            return Err("TRYAGAIN the cluster has no slot layout yet".into());
        }
        if !self.is_data_group(group) {
            return Err(format!("ERR unknown data group {group}"));
        }
        if !self.nodes.contains_key(&id) {
            return Err(format!("ERR node {id} is not in the cluster metadata"));
        }
        Ok(())
    }

    /// The members of data group `group` as the metadata knows them: as its leader last
    /// reported, else its founding voters (a created group), else none.
    pub fn members_of(&self, group: u64) -> GroupMembers {
        if let Some(m) = self.members.get(&group) {
            return m.clone();
        }
        GroupMembers {
            voters: self.added.get(&group).cloned().unwrap_or_default(),
            learners: Vec::new(),
        }
    }

    /// The data groups not leaving (those slots may move to).
    pub fn staying_groups(&self) -> Vec<u64> {
        let mut v = self.data_groups();
        v.retain(|g| !self.leaving.contains(g));
        v
    }

    /// Why `LEAVE <group>` would be refused, if it would: not a data group, leaving
    /// already, or the last group staying.
    pub fn check_leave(&self, group: u64) -> Result<(), String> {
        if self.groups == 0 {
            return Err("TRYAGAIN the cluster has no slot layout yet".into());
        }
        if !self.is_data_group(group) {
            return Err(format!("ERR unknown data group {group}"));
        }
        if self.leaving.contains(&group) {
            return Err(format!("ERR group {group} is leaving already"));
        }
        if self.staying_groups().iter().all(|&g| g == group) {
            return Err(format!(
                "ERR group {group} is the last data group staying; its slots have nowhere to go"
            ));
        }
        Ok(())
    }

    /// `LEAVE <group>`: marks it leaving and records the migrations that give its slots
    /// to the other groups, evenly (see [`ClusterMeta::rebalance_plan`]).
    pub(crate) fn leave_group(&mut self, group: u64) -> bool {
        if self.check_leave(group).is_err() {
            return false;
        }
        self.leaving.insert(group);
        let plan = self.rebalance_plan(&self.staying_groups());
        for (to, ranges) in plan {
            self.plan_migrations(to, &ranges);
        }
        true
    }

    /// True when group `group` left and nothing of it is left to move.
    pub fn left(&self, group: u64) -> bool {
        self.leaving.contains(&group)
            && self.ranges_of(group).is_empty()
            && !self
                .migrations
                .values()
                .any(|m| m.from == group || m.to == group)
    }

    /// `REMOVED <group>`: the group that left is no more (nothing happens before it left).
    pub(crate) fn remove_group(&mut self, group: u64) -> bool {
        if !self.left(group) {
            return false;
        }
        self.leaving.remove(&group);
        self.gone.insert(group);
        self.added.remove(&group);
        self.members.remove(&group);
        self.prefer.remove(&group);
        true
    }

    /// Why `GROUP <group> <voters>` would be refused, if it would: the id is 0, reserved
    /// or taken, no node or a node twice, or an id the metadata knows no node by.
    pub fn check_new_group(&self, group: u64, voters: &[u64]) -> Result<(), String> {
        if group == 0 {
            return Err("ERR group id 0 is reserved".into());
        }
        if group > MAX_GROUP_ID {
            return Err(format!(
                "ERR group id {group} is reserved: data group ids are 1 to {MAX_GROUP_ID}"
            ));
        }
        if self.groups == 0 {
            return Err("TRYAGAIN the cluster has no slot layout yet".into());
        }
        if self.is_data_group(group) {
            return Err(format!("ERR group {group} already exists"));
        }
        if self.gone.contains(&group) {
            // A node down while the group went may still hold its old raft log: a new group
            // of that id would take it for its own (an old, longer log wins elections).
            return Err(format!(
                "ERR group {group} was removed; its id is not used again"
            ));
        }
        if voters.is_empty() {
            return Err("ERR no nodes given".into());
        }
        let mut seen = voters.to_vec();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("ERR node {} is given twice", w[0]));
        }
        if let Some(id) = voters.iter().find(|id| !self.nodes.contains_key(id)) {
            return Err(format!("ERR unknown node id {id}"));
        }
        Ok(())
    }

    /// `GROUP <group> <voters>`: records the group (see the module doc); false (and no
    /// change) when [`ClusterMeta::check_new_group`] refuses it.
    pub(crate) fn add_group(&mut self, group: u64, voters: &[u64]) -> bool {
        if self.check_new_group(group, voters).is_err() {
            return false;
        }
        let mut v = voters.to_vec();
        v.sort_unstable();
        self.added.insert(group, v.clone());
        self.members.insert(
            group,
            GroupMembers {
                voters: v,
                learners: Vec::new(),
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_meta::{MetaCmd, NodeRecord};

    fn cluster() -> ClusterMeta {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        for id in 1..=5 {
            m.apply(&MetaCmd::Node {
                id,
                record: NodeRecord {
                    name: format!("n{id}"),
                    redis_addr: format!("h:{id}"),
                    raft_addr: format!("h:1{id}"),
                },
            });
        }
        m
    }

    #[test]
    fn a_created_group_is_recorded_once_with_its_voters_and_no_slots() {
        let mut m = cluster();
        let e = m.epoch;
        let cmd = MetaCmd::Group {
            group: 4,
            voters: vec![4, 5],
        };
        assert_eq!(MetaCmd::parse(&cmd.to_argv()), Some(cmd.clone()));
        assert!(m.apply(&cmd));
        assert_eq!(m.epoch, e + 1);
        assert!(!m.apply(&cmd), "a repeat changes nothing");
        assert_eq!(m.data_groups(), vec![1, 2, 3, 4]);
        assert_eq!(m.members_of(4).voters, vec![4, 5]);
        assert_eq!(m.added_on(5), vec![(4, vec![4, 5])]);
        assert!(m.added_on(1).is_empty());
        assert!(m.ranges_of(4).is_empty());
        assert_eq!(ClusterMeta::decode(&m.encode()), Some(m.clone()));
        // It can receive slots like any other group.
        assert!(m.apply(&MetaCmd::Migrate {
            to: 4,
            ranges: vec![(0, 9)]
        }));
    }

    #[test]
    fn a_group_is_hosted_where_its_members_are() {
        let mut m = cluster();
        m.apply(&MetaCmd::Group {
            group: 4,
            voters: vec![4, 5],
        });
        assert_eq!(m.hosted_on(4), vec![(4, vec![4, 5])]);
        assert!(m.hosted_on(1).is_empty(), "bootstrap groups are not listed");
        let members = |voters: Vec<u64>, learners: Vec<u64>| MetaCmd::Members {
            group: 4,
            members: GroupMembers { voters, learners },
        };
        m.apply(&members(vec![4, 5], vec![3]));
        assert_eq!(m.hosted_on(3), vec![(4, vec![])], "a learner starts empty");
        assert_eq!(m.hosted_on(5), vec![(4, vec![])]);
        m.apply(&members(vec![3, 5], vec![]));
        assert!(
            m.hosted_on(4).is_empty(),
            "a removed founder hosts it no more"
        );
        m.apply(&members(vec![3, 4, 5], vec![]));
        assert_eq!(m.hosted_on(4), vec![(4, vec![])], "added again: empty");
        assert!(m.check_group_member_change(4, 3).is_ok());
        assert!(
            m.check_group_member_change(2, 3).is_ok(),
            "a bootstrap group"
        );
        assert!(m
            .check_group_member_change(7, 3)
            .unwrap_err()
            .contains("unknown data group 7"));
        assert!(m
            .check_group_member_change(4, 9)
            .unwrap_err()
            .contains("not in the cluster metadata"));
    }

    #[test]
    fn bad_groups_are_refused_with_a_reason() {
        let m = cluster();
        let why = |g: u64, v: &[u64]| m.check_new_group(g, v).unwrap_err();
        assert!(why(0, &[4]).contains("reserved"));
        assert!(why(1 << 32, &[4]).contains("reserved"));
        assert!(why(2, &[4]).contains("already exists"));
        assert!(why(4, &[]).contains("no nodes"));
        assert!(why(4, &[4, 5, 4]).contains("twice"));
        assert!(why(4, &[4, 9]).contains("unknown node id 9"));
        assert!(m.check_new_group(4, &[4, 5]).is_ok());
        assert!(ClusterMeta::default()
            .check_new_group(4, &[1])
            .unwrap_err()
            .starts_with("TRYAGAIN"));
    }

    #[test]
    fn a_leaving_group_gives_its_slots_away_then_goes() {
        let mut m = cluster();
        m.apply(&MetaCmd::Group {
            group: 4,
            voters: vec![4, 5],
        });
        m.apply(&MetaCmd::Assign {
            group: 4,
            ranges: vec![(0, 99)],
        });
        assert!(m.check_leave(9).unwrap_err().contains("unknown"));
        assert!(
            !m.apply(&MetaCmd::Removed { group: 4 }),
            "not before it left"
        );
        assert!(m.apply(&MetaCmd::Leave { group: 4 }));
        assert!(m.check_leave(4).unwrap_err().contains("already"));
        assert!(m.migrations.values().any(|x| x.from == 4));
        assert!(m.migrations.values().all(|x| x.to != 4));
        // Nothing moves into a leaving group.
        assert!(!m.apply(&MetaCmd::Migrate {
            to: 4,
            ranges: vec![(200, 299)]
        }));
        assert!(!m.left(4));
        assert_eq!(ClusterMeta::decode(&m.encode()), Some(m.clone()));
        let ids: Vec<u64> = m.migrations.keys().copied().collect();
        for id in ids {
            m.apply(&MetaCmd::Migrated { id, ranges: vec![] });
        }
        assert!(m.left(4));
        assert!(m.apply(&MetaCmd::Removed { group: 4 }));
        assert_eq!(m.data_groups(), vec![1, 2, 3]);
        assert!(!m.members.contains_key(&4));
        assert!(m
            .check_new_group(4, &[4])
            .unwrap_err()
            .contains("not used again"));
    }

    #[test]
    fn a_bootstrap_group_moves_by_its_reported_members_and_can_leave_for_good() {
        let mut m = cluster();
        assert!(
            m.hosted_on(1).is_empty(),
            "no report yet: hosting's start opens them"
        );
        m.apply(&MetaCmd::Members {
            group: 1,
            members: GroupMembers {
                voters: vec![2, 3, 4],
                learners: vec![],
            },
        });
        assert_eq!(m.hosted_on(4), vec![(1, vec![])], "never founded again");
        assert!(m.hosted_on(1).is_empty(), "node 1 left group 1");
        // Group 1 leaves: its slots go to groups 2 and 3, then it is gone for good.
        assert!(m.apply(&MetaCmd::Leave { group: 1 }));
        assert!(m.migrations.values().all(|x| x.from == 1 && x.to != 1));
        let ids: Vec<u64> = m.migrations.keys().copied().collect();
        for id in ids {
            m.apply(&MetaCmd::Migrated { id, ranges: vec![] });
        }
        assert!(m.apply(&MetaCmd::Removed { group: 1 }));
        assert_eq!(m.data_groups(), vec![2, 3]);
        assert!(!m.is_data_group(1));
        assert!(m.hosted_on(4).is_empty());
        assert!(m.ranges_of(1).is_empty());
        assert!(m
            .check_new_group(1, &[4])
            .unwrap_err()
            .contains("not used again"));
        assert!(m
            .check_group_member_change(1, 4)
            .unwrap_err()
            .contains("unknown"));
        assert_eq!(ClusterMeta::decode(&m.encode()), Some(m.clone()));
        // The last group staying cannot leave.
        assert!(m.apply(&MetaCmd::Leave { group: 2 }));
        assert!(m.check_leave(3).unwrap_err().contains("last data group"));
    }
}
