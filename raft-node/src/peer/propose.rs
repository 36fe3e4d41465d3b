//! Turning the proposals a peer queued since the last flush into ONE log entry: stamped
//! with cluster time, marked when one of its commands may have to wait for another group,
//! and remembered with its proposers until it applies; refused (certainly not applied)
//! when this peer does not lead or the leader's uncommitted log is full.

use std::sync::atomic::{AtomicI64, Ordering};

use protobuf::Message as _;
use raft::StateRole;
use slog::{crit, warn};

use super::{apply, Peer, PendingEntry};
use crate::node::{die, NodeError, StateMachine, MAX_UNCOMMITTED_BYTES};
use crate::proto::RaftCommit;

impl<S: StateMachine> Peer<S> {
    /// Turns the queued proposals into one log entry.
    pub(super) fn flush_proposals(&mut self) {
        if self.proposals.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.proposals);
        self.proposal_bytes = 0;
        self.proposal_cmds = 0;
        if self.raw.raft.state != StateRole::Leader {
            let hint = self.leader_hint();
            for (_, r) in batch {
                let _ = r.send(Err(NodeError::NotLeader(hint)));
            }
            return;
        }
        self.observe_log_stamps();
        let stamp = self.clock.stamp(self.now_ms, &self.logger);
        let mut commit = RaftCommit::new();
        commit.group_id = self.cfg.group_id;
        commit.time_ms = stamp;
        let mut waiters = Vec::with_capacity(batch.len());
        for (cmds, r) in batch {
            waiters.push((cmds.len(), r));
            commit.commands.extend(cmds);
        }
        let data = match commit.write_to_bytes() {
            Ok(d) => d,
            Err(e) => {
                crit!(self.logger, "encoding RaftCommit failed"; "err" => %e);
                die();
            }
        };
        let n = commit.commands.len() as u64;
        let context = if commit.commands.iter().any(|c| S::may_wait(c)) {
            apply::WAIT_CTX.to_vec()
        } else {
            vec![]
        };
        match self.raw.propose(context, data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                self.pending.insert(index, PendingEntry { term, waiters });
                self.status.proposals.fetch_add(n, Ordering::Relaxed);
                self.status.entries_proposed.fetch_add(1, Ordering::Relaxed);
            }
            Err(raft::Error::ProposalDropped) if self.raw.raft.state == StateRole::Leader => {
                // Still leader: the uncommitted log is full (or a leader transfer is under
                // way). Nothing was appended, so the proposers may retry or give up.
                self.warn_dropped(n);
                for (_, r) in waiters {
                    let _ = r.send(Err(NodeError::Dropped));
                }
            }
            Err(_) => {
                let hint = self.leader_hint();
                for (_, r) in waiters {
                    let _ = r.send(Err(NodeError::NotLeader(hint)));
                }
            }
        }
    }

    /// Logs proposals the leader refused, at most once per second.
    fn warn_dropped(&self, commands: u64) {
        static LAST_MS: AtomicI64 = AtomicI64::new(0);
        let now = self.now_ms;
        if now - LAST_MS.load(Ordering::Relaxed) >= 1000 {
            LAST_MS.store(now, Ordering::Relaxed);
            warn!(self.logger, "leader refused proposals: uncommitted log full (peers not keeping up) or leader transfer in progress";
                "commands" => commands,
                "uncommitted_limit" => MAX_UNCOMMITTED_BYTES,
                "last_index" => self.raw.raft.raft_log.last_index(),
                "committed" => self.raw.raft.raft_log.committed);
        }
    }
}
