//! Spreads group leadership over the nodes. A data group whose operator chose a leader
//! (`RAFT.TRANSFER-LEADER`, recorded as the group's preference in the cluster metadata,
//! see `store::leader_prefs`) goes to that node whenever it is a live voter of the group,
//! so a manual transfer sticks and the node gets its groups back after a restart. The
//! other groups (and a group whose preferred node is down or no longer a voter) follow the
//! round-robin spread when there are several data groups: group `i` (1-based, in id order)
//! prefers the `i`-th voter, so with three nodes and three groups each node leads one
//! group and takes a third of the writes.
//!
//! A leader hands its group to the wanted node once that node is a caught-up voter it
//! can reach, and only after it has led the group (in the same term) for a whole check
//! period: a node that has just been given a group by hand applies the preference
//! recorded before the transfer by then, instead of handing the group straight back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft_node::Msg;
use slog::info;
use store::cluster_meta::ClusterMeta;

use crate::groups::GroupRt;
use crate::server::Server;

/// How often leaders look at their group's preference.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The node group `index` (0-based) prefers as leader among `voters` (sorted).
pub fn preferred(index: usize, voters: &[u64]) -> Option<u64> {
    (!voters.is_empty()).then(|| voters[index % voters.len()])
}

/// The node that should lead group `index` (0-based) with sorted `voters`: the operator's
/// `prefer`ence when it is a live voter, else (when leaders are `spread`) the round-robin
/// node if it is live; `None` leaves the leadership where it is.
pub fn wanted_leader(
    index: usize,
    voters: &[u64],
    prefer: Option<u64>,
    spread: bool,
    live: impl Fn(u64) -> bool,
) -> Option<u64> {
    if let Some(p) = prefer.filter(|p| voters.contains(p) && live(*p)) {
        return Some(p);
    }
    if !spread {
        return None;
    }
    preferred(index, voters).filter(|&n| live(n))
}

impl Server {
    /// Runs forever: every [`CHECK_EVERY`], each group this node has led since the last
    /// check is handed to its wanted node (see [`wanted_leader`]) when that node is a
    /// caught-up voter.
    pub async fn spread_leaders(self: Arc<Self>) {
        // The term in which this node led each group at the last check.
        let mut led: HashMap<u64, u64> = HashMap::new();
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let groups = self.groups.all();
            let mut due = Vec::new();
            for g in groups.iter() {
                let st = &g.node.status;
                if !st.is_leader() {
                    led.remove(&g.id);
                    continue;
                }
                let term = st.term.load(Ordering::Acquire);
                if led.insert(g.id, term) == Some(term) {
                    due.push(g);
                }
            }
            if due.is_empty() {
                continue;
            }
            // Decide from metadata at least as new as every committed preference: a node
            // just restarted would otherwise hand a group it was given back by its recorded
            // preference to the round-robin node, from a view that lacks the preference.
            if self.read_barrier_in(self.groups.meta()).await.is_err() {
                continue;
            }
            let state = self.groups.meta_state();
            for g in due {
                // Group g's place in the round-robin spread (bootstrap groups: their index).
                let i = g.id.saturating_sub(1) as usize;
                if g.node.status.is_leader() {
                    self.maybe_hand_over(i, g, &state);
                }
            }
        }
    }

    fn maybe_hand_over(&self, index: usize, g: &GroupRt, state: &ClusterMeta) {
        let st = &g.node.status;
        let m = st.members();
        let mut voters = m.voters.clone();
        voters.sort_unstable();
        let prefer = state.preferred_leader(g.id);
        let spread = self.groups.len() >= 2;
        let Some(want) = wanted_leader(index, &voters, prefer, spread, |id| self.peer_live(id))
        else {
            return;
        };
        let commit = st.commit.load(Ordering::Acquire);
        let caught_up = m.matched.get(&want).is_some_and(|&i| i >= commit);
        if want != self.cfg.id && caught_up && m.voters_outgoing.is_empty() {
            info!(self.logger, "handing leadership to the group's preferred node";
                "group" => g.id, "to" => want, "chosen" => prefer == Some(want));
            g.node.send(Msg::TransferLeader(want));
        }
    }

    /// True when this node's raft link to node `id` is up (the driver sends every peer a
    /// keepalive each tick, so a live peer's link never idles).
    fn peer_live(&self, id: u64) -> bool {
        if id == self.cfg.id {
            return true;
        }
        let peers = self
            .transport
            .stats
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        peers
            .get(&id)
            .is_some_and(|p| p.connected.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::{preferred, wanted_leader};

    #[test]
    fn groups_prefer_nodes_round_robin() {
        let v = [1, 2, 3];
        let picks: Vec<_> = (0..4).map(|i| preferred(i, &v)).collect();
        assert_eq!(picks, vec![Some(1), Some(2), Some(3), Some(1)]);
        assert_eq!(preferred(0, &[]), None);
    }

    #[test]
    fn a_live_voter_preference_wins_else_the_spread() {
        let v = [1, 2, 3];
        let all = |_| true;
        assert_eq!(wanted_leader(0, &v, Some(3), true, all), Some(3));
        assert_eq!(wanted_leader(0, &v, Some(3), false, all), Some(3));
        // Down, or no voter: ignored (until it returns).
        assert_eq!(wanted_leader(0, &v, Some(3), true, |n| n != 3), Some(1));
        assert_eq!(wanted_leader(1, &v, Some(4), true, all), Some(2));
        assert_eq!(wanted_leader(1, &v, Some(4), false, all), None);
        // A round-robin node that is down is not handed anything.
        assert_eq!(wanted_leader(1, &v, None, true, |n| n != 2), None);
    }
}
