//! Membership of one peer's group: proposing conf changes (one at a time), promoting
//! caught-up learners, and publishing the configuration with replication progress.

use std::collections::BTreeMap;

use raft::eraftpb::{ConfChangeType, ConfChangeV2, ConfState};
use raft::StateRole;
use slog::info;
use tokio::sync::oneshot;

use super::Peer;
use crate::node::{NodeError, Reply, StateMachine, CHANGE_IN_PROGRESS};
use crate::status::Members;

impl<S: StateMachine> Peer<S> {
    /// Proposes a membership change (one at a time).
    pub(super) fn propose_conf_change(&mut self, cc: ConfChangeV2, reply: Reply<ConfState>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(NodeError::NotLeader(self.leader_hint())));
            return;
        }
        if self.pending_conf.is_some() || self.raw.raft.has_pending_conf() {
            let _ = reply.send(Err(NodeError::Refused(CHANGE_IN_PROGRESS.into())));
            return;
        }
        let before = self.raw.raft.raft_log.last_index();
        let context = cc.context.to_vec();
        match self.raw.propose_conf_change(context, cc) {
            Ok(()) if self.raw.raft.raft_log.last_index() > before => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending_conf = Some((index, self.raw.raft.term, reply));
            }
            Ok(()) => {
                let _ = reply.send(Err(NodeError::Refused(
                    "the membership change was not accepted (a leader transfer may be in progress)"
                        .into(),
                )));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Refused(format!(
                    "membership change refused: {e}"
                ))));
            }
        }
    }

    /// The leader promotes a learner to voter once it has caught up with the log.
    pub(super) fn maybe_promote(&mut self) {
        if self.raw.raft.state != StateRole::Leader
            || self.pending_conf.is_some()
            || self.raw.raft.has_pending_conf()
        {
            return;
        }
        let last = self.raw.raft.raft_log.last_index();
        let conf = self.raw.raft.prs().conf().to_conf_state();
        for id in conf.learners {
            let caught_up = self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|pr| pr.matched + 16 >= last && pr.matched > 0);
            if caught_up {
                info!(self.logger, "promoting caught-up learner to voter"; "id" => id);
                let mut cc = ConfChangeV2::default();
                let mut ch = raft::eraftpb::ConfChangeSingle::default();
                ch.set_change_type(ConfChangeType::AddNode);
                ch.node_id = id;
                cc.mut_changes().push(ch);
                let (tx, _rx) = oneshot::channel();
                self.propose_conf_change(cc, tx);
                return;
            }
        }
    }

    /// Publishes membership and replication progress for INFO and admin commands.
    pub(super) fn publish_members(&mut self) {
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let mut m = Members {
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            voters_outgoing: conf.voters_outgoing.clone(),
            addrs: self
                .raw
                .store()
                .peers()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            matched: BTreeMap::new(),
        };
        if !self.cfg.addr.is_empty() {
            m.addrs.insert(self.cfg.id, self.cfg.addr.clone());
        }
        if self.raw.raft.state == StateRole::Leader {
            for (id, pr) in self.raw.raft.prs().iter() {
                m.matched.insert(*id, pr.matched);
            }
        }
        self.members_dirty = false;
        *self
            .status
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = m;
    }
}
