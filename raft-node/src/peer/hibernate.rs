//! Hibernation of quiet groups (after TiKV's hibernate regions), so a node hosting a
//! thousand mostly idle groups stays nearly idle: a leader whose group has been quiet for
//! two election timeouts — nothing proposed, read or pending, every member's log matching
//! its own, everything committed and applied — sends each member one last heartbeat marked
//! [`HIBERNATE_CTX`] and stops ticking (no more heartbeats); a follower that steps that
//! heartbeat from its leader stops ticking too (no election timeout).
//!
//! Any event wakes a peer: a proposal, a read, an admin request, or a raft message other
//! than heartbeats and their responses (a heartbeat only says the leader lives). A hibernating follower also wakes when the driver has heard nothing from its
//! leader's node for an election timeout (every driver sends each peer node a keepalive
//! per tick, see [`crate::driver`]); it then times out and campaigns as usual. Woken by a
//! vote request, a follower forgets its leader lease first, so a group whose leader's node
//! restarted (alive, but no longer leading) elects a new leader instead of deadlocking.
//! Safety never depends on ticks; only liveness does.

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;
use slog::debug;

use super::Peer;
use crate::node::StateMachine;

/// Context of the heartbeat a leader sends when its group goes to sleep.
pub const HIBERNATE_CTX: &[u8] = b"raftkv/hibernate";

impl<S: StateMachine> Peer<S> {
    /// True while this peer does not tick.
    pub fn is_hibernating(&self) -> bool {
        self.hibernating
    }

    /// The group's leader as this peer knows it (0 = none).
    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// Resumes ticking (the driver's call when the leader's node went silent).
    pub fn wake(&mut self) {
        self.quiet_ticks = 0;
        if self.hibernating {
            debug!(self.logger, "waking up");
            self.set_hibernating(false);
        }
    }

    pub(super) fn set_hibernating(&mut self, on: bool) {
        self.hibernating = on;
        self.status
            .hibernating
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// Wakes for a peer message unless it is part of hibernating.
    pub(super) fn wake_for(&mut self, m: &Message) {
        // Heartbeats only say the leader lives (the node keepalives say that too), so they
        // leave a sleeping peer asleep: the leader's own tick may send one right after its
        // hibernate heartbeat. raft-rs still steps them (commit index, election timer).
        let quiet = matches!(
            m.get_msg_type(),
            MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
        );
        if quiet {
            return;
        }
        let vote = matches!(
            m.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        if vote && self.hibernating && self.raw.raft.state != StateRole::Leader {
            // A follower's frozen election timer says nothing about the leader being alive.
            // (Never on the leader: it would run its quorum check at once, on activity flags
            // from before it slept, and could step down.)
            self.raw.raft.election_elapsed = self.cfg.election_tick;
        }
        if self.hibernating {
            debug!(self.logger, "woken by a message"; "type" => ?m.get_msg_type(), "from" => m.from);
        }
        self.wake();
    }

    /// True when `m` is the current leader's hibernate heartbeat to this follower.
    pub(super) fn is_hibernate_call(&self, m: &Message) -> bool {
        m.get_msg_type() == MessageType::MsgHeartbeat
            && m.context[..] == *HIBERNATE_CTX
            && m.from == self.raw.raft.leader_id
            && m.term == self.raw.raft.term
            && self.raw.raft.state == StateRole::Follower
    }

    /// On the leader, after a tick: counts quiet ticks and puts the group to sleep after
    /// two election timeouts of them.
    pub(super) fn maybe_hibernate(&mut self) {
        if !self.group_quiet() {
            self.quiet_ticks = 0;
            return;
        }
        self.quiet_ticks += 1;
        if self.quiet_ticks < 2 * self.cfg.election_tick {
            return;
        }
        let r = &self.raw.raft;
        let (term, commit) = (r.term, r.raft_log.committed);
        for (&id, _) in r.prs().iter().filter(|(&id, _)| id != self.cfg.id) {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgHeartbeat);
            m.from = self.cfg.id;
            m.to = id;
            m.term = term;
            m.commit = commit;
            m.context = HIBERNATE_CTX.to_vec().into();
            self.fx.send.push(m);
        }
        debug!(self.logger, "group quiet: hibernating"; "term" => term, "commit" => commit);
        self.set_hibernating(true);
    }

    /// Leader, nothing in flight, every member's log equal to the leader's, all applied
    /// (a Ready may be pending: the tick's own heartbeats).
    fn group_quiet(&self) -> bool {
        let r = &self.raw.raft;
        let last = r.raft_log.last_index();
        r.state == StateRole::Leader
            && self.proposals.is_empty()
            && self.pending.is_empty()
            && self.reads.is_empty()
            && self.read_batches.is_empty()
            && self.pending_conf.is_none()
            && self.generating.is_none()
            && self.snap_waiters.is_empty()
            && self.unpersisted == 0
            && r.lead_transferee.is_none()
            && !r.has_pending_conf()
            && r.raft_log.committed == last
            && self.applied == last
            && r.prs().iter().all(|(_, pr)| pr.matched == last)
    }
}
