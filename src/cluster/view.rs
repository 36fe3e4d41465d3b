//! The node's view of the cluster in Redis Cluster terms: which Raft group owns each hash
//! slot, who leads and who replicates each group, and each node's addresses and its stable
//! 40-hex Redis Cluster node id. Built from the Raft state and the cluster metadata (slot
//! map, config epoch, node records; see `store::cluster_meta`). Everything a cluster command or a
//! routing decision needs is read from one view, so the replies agree with each other.

use std::collections::BTreeMap;

use store::slot::SLOTS;

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Raft id.
    pub id: u64,
    /// Redis Cluster node id: 40 lowercase hex digits, stable for the node.
    pub name: String,
    /// Address clients reach it at (`ip:port`), when known.
    pub redis_addr: Option<String>,
    /// Address its peers reach it at.
    pub raft_addr: String,
}

/// One Raft group and the slots it owns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupInfo {
    pub id: u64,
    /// Voting members (node ids), in id order.
    pub voters: Vec<u64>,
    /// Non-voting members catching up.
    pub learners: Vec<u64>,
    /// Current leader, 0 when none is known.
    pub leader: u64,
    /// Slot ranges it owns, inclusive, sorted and disjoint.
    pub ranges: Vec<(u16, u16)>,
    /// Applied index on this node (the replication offset clients see).
    pub applied: u64,
}

impl GroupInfo {
    /// Members, leader first, then voters and learners in id order.
    pub fn members(&self) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        if self.leader != 0 {
            out.push(self.leader);
        }
        for &id in self.voters.iter().chain(&self.learners) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// Number of slots owned.
    pub fn slot_count(&self) -> usize {
        self.ranges.iter().map(|&(a, b)| (b - a) as usize + 1).sum()
    }

    /// Redis Cluster shard id: 40 hex digits, stable for the group.
    pub fn shard_id(&self) -> String {
        hex_name(b"shard", self.id)
    }
}

/// The whole view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterView {
    /// Raft id of this node.
    pub myself: u64,
    /// Incremented by every configuration change.
    pub epoch: u64,
    pub nodes: BTreeMap<u64, NodeInfo>,
    pub groups: BTreeMap<u64, GroupInfo>,
    /// Leader of the metadata group (0: none known).
    pub meta_leader: u64,
    /// Data groups of the metadata's layout (0: not laid out yet).
    pub data_groups: u64,
}

/// A stable, random-looking 40-hex name for `id` in namespace `ns`.
pub fn hex_name(ns: &[u8], id: u64) -> String {
    // splitmix64 over the namespace and the id: 160 bits from three outputs.
    let mut state = ns.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    }) ^ id;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b, c) = (next(), next(), next());
    format!("{a:016x}{b:016x}{:08x}", c >> 32)
}

/// The Redis Cluster node id of Raft node `id`.
pub fn node_name(id: u64) -> String {
    hex_name(b"node", id)
}

/// The `ip` and `port` of an `ip:port` address (port 0 when it has none).
pub fn split_addr(addr: &str) -> (&str, u16) {
    match addr.rsplit_once(':') {
        Some((ip, port)) => (ip, port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

impl ClusterView {
    /// One group (id 1) owning every slot (the tests' cluster).
    #[cfg(test)]
    pub fn single_group(myself: u64, nodes: Vec<NodeInfo>, group: GroupInfo) -> ClusterView {
        let group = GroupInfo {
            ranges: vec![(0, SLOTS - 1)],
            ..group
        };
        ClusterView {
            myself,
            epoch: 1,
            nodes: nodes.into_iter().map(|n| (n.id, n)).collect(),
            groups: BTreeMap::from([(group.id, group)]),
            meta_leader: 0,
            data_groups: 1,
        }
    }

    /// The group owning `slot`.
    pub fn group_of_slot(&self, slot: u16) -> Option<&GroupInfo> {
        self.groups
            .values()
            .find(|g| g.ranges.iter().any(|&(a, b)| a <= slot && slot <= b))
    }

    /// Slots owned by some group.
    pub fn slots_assigned(&self) -> usize {
        self.groups.values().map(GroupInfo::slot_count).sum()
    }

    /// Slots whose group has a known leader reachable by clients.
    pub fn slots_ok(&self) -> usize {
        self.groups
            .values()
            .filter(|g| self.leader_addr(g).is_some())
            .map(GroupInfo::slot_count)
            .sum()
    }

    /// The client address of `g`'s leader.
    pub fn leader_addr(&self, g: &GroupInfo) -> Option<&str> {
        self.nodes.get(&g.leader)?.redis_addr.as_deref()
    }

    /// The Redis Cluster name of node `id` (derived when the node is not in the view).
    pub fn name_of(&self, id: u64) -> String {
        self.nodes
            .get(&id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| node_name(id))
    }

    /// Groups node `id` is a member of.
    pub fn groups_of(&self, id: u64) -> impl Iterator<Item = &GroupInfo> {
        self.groups
            .values()
            .filter(move |g| g.voters.contains(&id) || g.learners.contains(&id))
    }

    /// Groups node `id` leads.
    pub fn led_by(&self, id: u64) -> impl Iterator<Item = &GroupInfo> {
        self.groups.values().filter(move |g| g.leader == id)
    }

    /// Whether every slot is owned by a group with a reachable leader.
    pub fn is_ok(&self) -> bool {
        self.slots_ok() == SLOTS as usize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Three nodes, one group, node 2 leading.
    pub fn three_nodes(leader: u64) -> ClusterView {
        let nodes = (1..=3)
            .map(|id| NodeInfo {
                id,
                name: node_name(id),
                redis_addr: Some(format!("127.0.0.1:{}", 63790 + id)),
                raft_addr: format!("127.0.0.1:{}2379", id),
            })
            .collect();
        ClusterView::single_group(
            1,
            nodes,
            GroupInfo {
                id: 1,
                voters: vec![1, 2, 3],
                learners: vec![],
                leader,
                ranges: vec![],
                applied: 42,
            },
        )
    }

    #[test]
    fn names_are_stable_distinct_hex() {
        let a = node_name(1);
        assert_eq!(a.len(), 40);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(a, node_name(1));
        assert_ne!(a, node_name(2));
        assert_ne!(hex_name(b"shard", 1), a);
    }

    #[test]
    fn one_group_owns_every_slot() {
        let v = three_nodes(2);
        assert_eq!(v.slots_assigned(), 16384);
        assert_eq!(v.slots_ok(), 16384);
        assert_eq!(v.group_of_slot(0).map(|g| g.id), Some(1));
        assert_eq!(v.group_of_slot(16383).map(|g| g.id), Some(1));
        assert_eq!(v.groups[&1].members(), vec![2, 1, 3]);
        assert!(three_nodes(0).slots_ok() == 0 && !three_nodes(0).is_ok());
    }
}
