//! Leader preferences in the cluster metadata: `PREFER <group> <node>` records the node an
//! operator moved a data group's leadership to (`RAFT.TRANSFER-LEADER`), so the node's
//! leader spread (`src/leaders.rs` of the binary) keeps that choice instead of moving the
//! group back to its round-robin node, and hands the group back to it after a restart.
//!
//! A preference is kept in the metadata (not in a node's memory) so it survives restarts
//! and is the same on every node. It does not move the config epoch: who leads a group is
//! no part of the Redis Cluster configuration (clients see leaders live from the Raft
//! status, and a failover does not move the epoch either). A preference is only a wish:
//! the spread ignores it while its node is down or not a voter of the group, and
//! `FORGET <id>` (a node leaving the cluster) drops the node's preferences.

use crate::cluster_meta::ClusterMeta;

impl ClusterMeta {
    /// `PREFER <group> <node>`; true when it changed the state (the epoch stays).
    pub(crate) fn set_preference(&mut self, group: u64, node: u64) -> bool {
        self.prefer.insert(group, node) != Some(node)
    }

    /// Drops every preference for `node`; true when there was one.
    pub(crate) fn drop_preferences_of(&mut self, node: u64) -> bool {
        let before = self.prefer.len();
        self.prefer.retain(|_, n| *n != node);
        self.prefer.len() != before
    }

    /// The node preferred to lead `group`, if an operator chose one.
    pub fn preferred_leader(&self, group: u64) -> Option<u64> {
        self.prefer.get(&group).copied()
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster_meta::{ClusterMeta, MetaCmd, NodeRecord};

    #[test]
    fn a_preference_is_kept_without_moving_the_epoch() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        let epoch = m.epoch;
        let p = MetaCmd::Prefer { group: 2, node: 3 };
        assert!(m.apply(&p));
        assert!(!m.apply(&p), "a repeat changes nothing");
        assert_eq!(m.preferred_leader(2), Some(3));
        assert_eq!(m.preferred_leader(1), None);
        assert!(m.apply(&MetaCmd::Prefer { group: 2, node: 1 }));
        assert_eq!(m.preferred_leader(2), Some(1));
        assert_eq!(m.epoch, epoch, "preferences are no config change");
        assert_eq!(MetaCmd::parse(&p.to_argv()), Some(p));
        assert_eq!(ClusterMeta::decode(&m.encode()), Some(m));
    }

    #[test]
    fn forgetting_a_node_drops_its_preferences() {
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        m.apply(&MetaCmd::Node {
            id: 4,
            record: NodeRecord {
                name: "n4".into(),
                redis_addr: "h:4".into(),
                raft_addr: "h:40".into(),
            },
        });
        m.apply(&MetaCmd::Prefer { group: 1, node: 4 });
        m.apply(&MetaCmd::Prefer { group: 3, node: 4 });
        m.apply(&MetaCmd::Prefer { group: 2, node: 1 });
        assert!(m.apply(&MetaCmd::Forget { id: 4 }));
        assert_eq!(m.prefer.into_iter().collect::<Vec<_>>(), vec![(2, 1)]);
        // A node with preferences but no record (its FORGET was partial) is forgotten too.
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Prefer { group: 1, node: 5 });
        assert!(m.apply(&MetaCmd::Forget { id: 5 }));
        assert!(m.prefer.is_empty());
    }
}
