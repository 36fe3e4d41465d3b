//! The check every peer raft message passes before `RawNode::step`. raft-rs 0.7 trusts
//! its peers: some well-formed but impossible messages make it `fatal!` (panic) or corrupt
//! its state, e.g. a heartbeat whose commit index lies beyond this node's log
//! (`commit_to` out of range), a `MsgReadIndex` without its context entry (index out of
//! bounds), an append whose entries are not consecutive (slice out of range), an append
//! response claiming an index beyond the leader's log, or a snapshot whose configuration
//! cannot be restored. A message from a node that is not a member, or a locally-generated
//! type (`MsgHup`, `MsgBeat`, `MsgPropose`, ...) arriving from the network, is dropped too:
//! a peer could otherwise append entries to the leader's log directly or disrupt the
//! group with votes. Every drop is counted and logged (rate-limited) by the caller.
//!
//! Non-members: this node's configuration may lag (it was down while members changed),
//! so a follower still accepts what only a leader sends (appends, heartbeats, snapshots)
//! from a node it does not know yet; raft's own term checks apply to them. A node with
//! no configuration at all (a new node waiting to join) accepts any authenticated peer.

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfState, Message, MessageType};
use raft::{Changer, ProgressTracker, Raft, StateRole, Storage};

/// Why a message was dropped.
pub type Reason = &'static str;

fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.contains(&id)
        || cs.learners.contains(&id)
        || cs.voters_outgoing.contains(&id)
        || cs.learners_next.contains(&id)
}

/// `Ok` when `m` may be stepped by `raft` (this node).
pub fn check<T: Storage>(raft: &Raft<T>, m: &Message) -> Result<(), Reason> {
    use MessageType::*;
    if m.to != raft.id {
        return Err("addressed to another node");
    }
    if m.from == 0 || m.from == raft.id {
        return Err("invalid sender id");
    }
    let t = m.get_msg_type();
    if matches!(
        t,
        MsgHup | MsgBeat | MsgPropose | MsgUnreachable | MsgSnapStatus | MsgCheckQuorum
    ) {
        return Err("local message type from the network");
    }
    // Only a forwarded MsgReadIndex travels without a term.
    if m.term == 0 && t != MsgReadIndex {
        return Err("message without a term");
    }
    check_sender(raft, m)?;
    match t {
        MsgAppend => check_append(raft, m),
        MsgAppendResponse if m.index > raft.raft_log.last_index() => {
            Err("append response beyond the log")
        }
        MsgHeartbeat if m.commit > raft.raft_log.last_index() => {
            Err("heartbeat commit beyond the log")
        }
        MsgReadIndex | MsgReadIndexResp if m.entries.len() != 1 => {
            Err("read index message without exactly one context entry")
        }
        MsgSnapshot => check_snapshot(m),
        _ => Ok(()),
    }
}

fn check_sender<T: Storage>(raft: &Raft<T>, m: &Message) -> Result<(), Reason> {
    let cs = raft.prs().conf().to_conf_state();
    if in_conf(&cs, m.from) || (cs.voters.is_empty() && cs.learners.is_empty()) {
        return Ok(());
    }
    let from_a_leader = matches!(
        m.get_msg_type(),
        MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
    );
    if from_a_leader && raft.state != StateRole::Leader {
        return Ok(());
    }
    Err("sender is not a member")
}

fn check_append<T: Storage>(raft: &Raft<T>, m: &Message) -> Result<(), Reason> {
    if m.log_term > m.term {
        return Err("append anchored at a term after the message's");
    }
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        if m.index.checked_add(i as u64 + 1) != Some(e.index) {
            return Err("append entries are not consecutive");
        }
        if e.term < prev_term || e.term > m.term {
            return Err("append entry terms out of order");
        }
        prev_term = e.term;
    }
    // Committed entries are the same everywhere and terms never decrease along a log, so
    // a leader's append at or after this node's commit index is anchored at a term no
    // lower than the committed entry's. (raft-rs panics looking for a conflict below the
    // compacted log otherwise.)
    let committed = raft.raft_log.committed;
    if m.index >= committed {
        if let Ok(t) = raft.raft_log.term(committed) {
            if m.log_term < t {
                return Err("append anchored below the committed term");
            }
        }
    }
    Ok(())
}

fn check_snapshot(m: &Message) -> Result<(), Reason> {
    let meta = m.get_snapshot().get_metadata();
    if meta.index == 0 || meta.term == 0 || meta.term > m.term {
        return Err("snapshot metadata out of range");
    }
    if !restorable(meta.get_conf_state()) {
        return Err("snapshot configuration cannot be restored");
    }
    Ok(())
}

fn single(id: u64, t: ConfChangeType) -> ConfChangeSingle {
    let mut c = ConfChangeSingle::default();
    c.node_id = id;
    c.set_change_type(t);
    c
}

/// True when raft-rs can restore `cs` (it `fatal!`s otherwise): the same steps as its
/// `confchange::restore`, on a scratch tracker.
pub fn restorable(cs: &ConfState) -> bool {
    use ConfChangeType::{AddLearnerNode, AddNode, RemoveNode};
    if cs.voters.is_empty() || in_conf(cs, 0) {
        return false;
    }
    let mut tracker = ProgressTracker::new(16);
    let outgoing: Vec<_> = cs.voters_outgoing.iter().map(|&i| single(i, AddNode)).collect();
    let incoming: Vec<_> = cs
        .voters_outgoing
        .iter()
        .map(|&i| single(i, RemoveNode))
        .chain(cs.voters.iter().map(|&i| single(i, AddNode)))
        .chain(cs.learners.iter().map(|&i| single(i, AddLearnerNode)))
        .chain(cs.learners_next.iter().map(|&i| single(i, AddLearnerNode)))
        .collect();
    let mut apply = |joint: bool, ccs: &[ConfChangeSingle]| {
        let changed = if joint {
            Changer::new(&tracker).enter_joint(cs.auto_leave, ccs)
        } else {
            Changer::new(&tracker).simple(ccs)
        };
        match changed {
            Ok((cfg, changes)) => {
                tracker.apply_conf(cfg, changes, 1);
                true
            }
            Err(_) => false,
        }
    };
    if outgoing.is_empty() {
        incoming.iter().all(|c| apply(false, std::slice::from_ref(c)))
    } else {
        outgoing.iter().all(|c| apply(false, std::slice::from_ref(c))) && apply(true, &incoming)
    }
}
