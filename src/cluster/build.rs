//! Builds the node's [`ClusterView`] from what the node knows now: the Raft status (leader,
//! voters, learners, term, applied index) and the client addresses recorded in the store by
//! `RAFTKV.NODEADDR`. Nothing is cached, so a leader change shows in the next reply. Today
//! one group (id 1) owns every slot; with slot sharding the groups come from the metadata
//! group instead, and this is the one place that changes.

use std::sync::atomic::Ordering;

use super::view::{node_name, ClusterView, GroupInfo, NodeInfo};
use crate::server::Server;

/// The only data group before slot sharding.
pub const GROUP: u64 = 1;

impl Server {
    /// The cluster view now (node names and addresses included).
    pub fn cluster_view(&self) -> ClusterView {
        let st = &self.node.status;
        let m = st.members();
        let addrs = self.reader.node_addrs();
        let me = self.cfg.id;
        let mut ids: Vec<u64> = m.voters.iter().chain(&m.learners).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let nodes = ids
            .iter()
            .map(|&id| NodeInfo {
                id,
                name: node_name(id),
                // This node knows its own address before its record is applied.
                redis_addr: if id == me {
                    Some(self.cfg.announce_addr())
                } else {
                    addrs.get(&id).cloned()
                },
                raft_addr: m.addrs.get(&id).cloned().unwrap_or_default(),
            })
            .collect();
        let mut view = ClusterView::single_group(me, nodes, self.group_info(m.voters, m.learners));
        // A term passes with every election: the config epoch clients see moves with it.
        view.epoch = st.term.load(Ordering::Relaxed).max(1);
        view
    }

    /// The view routing needs: the group's members and leader, and (for `-MOVED` only) the
    /// leader's client address; no names, so the per-request cost stays small.
    pub fn routing_view(&self, moved: bool) -> ClusterView {
        let st = &self.node.status;
        let m = st.members();
        let group = self.group_info(m.voters, m.learners);
        let leader = group.leader;
        let redis_addr = if moved && leader != self.cfg.id {
            self.reader.node_addrs().get(&leader).cloned()
        } else {
            None
        };
        let nodes = vec![NodeInfo {
            id: leader,
            name: String::new(),
            redis_addr,
            raft_addr: String::new(),
        }];
        ClusterView::single_group(self.cfg.id, nodes, group)
    }

    fn group_info(&self, mut voters: Vec<u64>, mut learners: Vec<u64>) -> GroupInfo {
        let st = &self.node.status;
        voters.sort_unstable();
        learners.sort_unstable();
        GroupInfo {
            id: GROUP,
            voters,
            learners,
            leader: st.leader(),
            ranges: vec![],
            applied: st.applied.load(Ordering::Relaxed),
        }
    }
}
