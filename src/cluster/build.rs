//! Builds the node's [`ClusterView`] from what the node knows now: each hosted group's Raft
//! status (leader, voters, learners, applied index) and the cluster metadata as this node
//! applied it ([`crate::groups::MetaView`]: slot map, config epoch, node names and
//! addresses). Nothing is cached, so a leader change shows in the next reply.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::view::{node_name, ClusterView, GroupInfo, NodeInfo};
use store::cluster_meta::ClusterMeta;

use crate::groups::GroupRt;
use crate::server::Server;

impl Server {
    /// The cluster view now (node names and addresses included).
    pub fn cluster_view(&self) -> ClusterView {
        let meta = self.groups.meta_state();
        let me = self.cfg.id;
        let mut raft_addrs = BTreeMap::new();
        let mut groups = BTreeMap::new();
        for g in self.groups.all().iter() {
            let m = g.node.status.members();
            raft_addrs.extend(m.addrs.clone());
            groups.insert(g.id, self.group_info(g, m.voters, m.learners));
        }
        for gid in meta.data_groups() {
            groups
                .entry(gid)
                .or_insert_with(|| self.remote_info(&meta, gid));
        }
        let meta_members = self.groups.meta().node.status.members();
        raft_addrs.extend(meta_members.addrs.clone());
        let mut ids: Vec<u64> = groups
            .values()
            .flat_map(|g: &GroupInfo| g.voters.iter().chain(&g.learners).copied())
            .chain(
                meta_members
                    .voters
                    .iter()
                    .chain(&meta_members.learners)
                    .copied(),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let nodes = ids
            .iter()
            .map(|&id| {
                let rec = meta.nodes.get(&id);
                let info = NodeInfo {
                    id,
                    name: rec.map_or_else(|| node_name(id), |r| r.name.clone()),
                    // This node knows its own address before its record is applied.
                    redis_addr: if id == me {
                        Some(self.cfg.announce_addr())
                    } else {
                        rec.map(|r| r.redis_addr.clone())
                    },
                    raft_addr: rec
                        .map(|r| r.raft_addr.clone())
                        .or_else(|| raft_addrs.get(&id).cloned())
                        .unwrap_or_default(),
                };
                (id, info)
            })
            .collect();
        ClusterView {
            myself: me,
            epoch: meta.epoch,
            nodes,
            groups,
            meta_leader: self.groups.meta().node.status.leader(),
            data_groups: meta.groups,
        }
    }

    /// Client addresses of the nodes, by id, as the metadata records them.
    pub fn redis_addrs(&self) -> BTreeMap<u64, String> {
        let meta = self.groups.meta_state();
        meta.nodes
            .iter()
            .map(|(&id, n)| (id, n.redis_addr.clone()))
            .collect()
    }

    /// The view routing needs for a request on `slot`: only that slot's group (members,
    /// leader, ranges) and, for `-MOVED` only, the leader's client address; no names, so
    /// the per-request cost stays small.
    pub fn routing_view(&self, slot: u16, moved: bool) -> ClusterView {
        let gid = self.groups.slot_group(slot);
        let group = match self.groups.get(gid) {
            Some(g) => {
                let m = g.node.status.members();
                self.group_info(&g, m.voters, m.learners)
            }
            None => self.remote_info(&self.groups.meta_state(), gid),
        };
        let leader = group.leader;
        let redis_addr = if moved && leader != self.cfg.id {
            let meta = self.groups.meta_state();
            meta.nodes.get(&leader).map(|n| n.redis_addr.clone())
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
            ..Default::default()
        }
    }

    /// A data group this node does not host, as the metadata records it: its members, and
    /// as leader the member last seen leading it, else its first voter (a request sent
    /// there is forwarded or redirected on to the leader).
    fn remote_info(&self, meta: &ClusterMeta, gid: u64) -> GroupInfo {
        let m = meta.members_of(gid);
        let hint = self.groups.hint(gid);
        let leader = if m.voters.contains(&hint) {
            hint
        } else {
            m.voters.first().copied().unwrap_or(0)
        };
        GroupInfo {
            id: gid,
            voters: m.voters,
            learners: m.learners,
            leader,
            ranges: meta.ranges_of(gid),
            applied: 0,
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
