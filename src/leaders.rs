//! Spreads group leadership over the nodes: group `i` (1-based, in id order) prefers the
//! `i`-th founding voter (round robin), so with three nodes and three groups each node
//! leads one group and takes a third of the writes. A leader that is not its group's
//! preferred node hands leadership over once the preferred node is a caught-up voter
//! (after start, and again after that node returns from a restart).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft_node::Msg;
use slog::info;

use crate::groups::GroupRt;
use crate::server::Server;

/// How often leaders look at their group's preference.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The node group `index` (0-based) prefers as leader among `voters` (sorted).
pub fn preferred(index: usize, voters: &[u64]) -> Option<u64> {
    (!voters.is_empty()).then(|| voters[index % voters.len()])
}

impl Server {
    /// Runs forever: every [`CHECK_EVERY`], each group this node leads is handed to its
    /// preferred node when that node is a caught-up voter.
    pub async fn spread_leaders(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if self.groups.len() < 2 {
                continue;
            }
            for (i, g) in self.groups.all().iter().enumerate() {
                self.maybe_hand_over(i, g);
            }
        }
    }

    fn maybe_hand_over(&self, index: usize, g: &GroupRt) {
        let st = &g.node.status;
        if !st.is_leader() {
            return;
        }
        let m = st.members();
        let mut voters = m.voters.clone();
        voters.sort_unstable();
        let Some(want) = preferred(index, &voters) else {
            return;
        };
        let commit = st.commit.load(Ordering::Acquire);
        let caught_up = m.matched.get(&want).is_some_and(|&i| i >= commit);
        if want != self.cfg.id && caught_up && m.voters_outgoing.is_empty() {
            info!(self.logger, "handing leadership to the group's preferred node"; "group" => g.id, "to" => want);
            g.node.send(Msg::TransferLeader(want));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::preferred;

    #[test]
    fn groups_prefer_nodes_round_robin() {
        let v = [1, 2, 3];
        let picks: Vec<_> = (0..4).map(|i| preferred(i, &v)).collect();
        assert_eq!(picks, vec![Some(1), Some(2), Some(3), Some(1)]);
        assert_eq!(preferred(0, &[]), None);
    }
}
