//! Builds the node's [`ClusterView`] from what the node knows now: each hosted group's Raft
//! status (leader, voters, learners, applied index), the slot map ([`crate::groups`]) and
//! the client addresses recorded in the home group's store by `RAFTKV.NODEADDR`. Nothing
//! is cached, so a leader change shows in the next reply.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::view::{node_name, ClusterView, GroupInfo, NodeInfo};
use crate::groups::GroupRt;
use crate::server::Server;

impl Server {
    /// The cluster view now (node names and addresses included).
    pub fn cluster_view(&self) -> ClusterView {
        let addrs = self.reader.node_addrs();
        let me = self.cfg.id;
        let mut raft_addrs = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let mut epoch = 1;
        for g in self.groups.all() {
            let m = g.node.status.members();
            raft_addrs.extend(m.addrs.clone());
            let info = self.group_info(g, m.voters, m.learners);
            // A term passes with every election: the config epoch clients see moves with
            // it (the sum over groups grows with any group's election).
            epoch += g.node.status.term.load(Ordering::Relaxed);
            groups.insert(g.id, info);
        }
        let mut ids: Vec<u64> = groups
            .values()
            .flat_map(|g: &GroupInfo| g.voters.iter().chain(&g.learners).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let nodes = ids
            .iter()
            .map(|&id| {
                let info = NodeInfo {
                    id,
                    name: node_name(id),
                    // This node knows its own address before its record is applied.
                    redis_addr: if id == me {
                        Some(self.cfg.announce_addr())
                    } else {
                        addrs.get(&id).cloned()
                    },
                    raft_addr: raft_addrs.get(&id).cloned().unwrap_or_default(),
                };
                (id, info)
            })
            .collect();
        ClusterView {
            myself: me,
            epoch,
            nodes,
            groups,
        }
    }

    /// The view routing needs for a request on `slot`: only that slot's group (members,
    /// leader, ranges) and, for `-MOVED` only, the leader's client address; no names, so
    /// the per-request cost stays small.
    pub fn routing_view(&self, slot: u16, moved: bool) -> ClusterView {
        let g = self.groups.of_slot(slot);
        let m = g.node.status.members();
        let group = self.group_info(g, m.voters, m.learners);
        let leader = group.leader;
        let redis_addr = if moved && leader != self.cfg.id {
            self.reader.node_addrs().get(&leader).cloned()
        } else {
            None
        };
        let node = NodeInfo {
            id: leader,
            name: String::new(),
            redis_addr,
            raft_addr: String::new(),
        };
        ClusterView {
            myself: self.cfg.id,
            epoch: 1,
            nodes: BTreeMap::from([(leader, node)]),
            groups: BTreeMap::from([(group.id, group)]),
        }
    }

    fn group_info(&self, g: &GroupRt, mut voters: Vec<u64>, mut learners: Vec<u64>) -> GroupInfo {
        let st = &g.node.status;
        voters.sort_unstable();
        learners.sort_unstable();
        GroupInfo {
            id: g.id,
            voters,
            learners,
            leader: st.leader(),
            ranges: self.groups.ranges(g.id),
            applied: st.applied.load(Ordering::Relaxed),
        }
    }
}
