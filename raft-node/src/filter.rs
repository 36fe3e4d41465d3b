//! The check every peer raft message passes before `RawNode::step`. raft-rs 0.7 trusts
//! its peers: some well-formed but impossible messages make it `fatal!` (panic) or corrupt
//! its state, e.g. a heartbeat whose commit index lies beyond this node's log
//! (`commit_to` out of range), a `MsgReadIndex` without its context entry (index out of
//! bounds), an append whose entries are not consecutive (slice out of range), an append
//! response claiming an index beyond the leader's log, or a snapshot whose configuration
//! cannot be restored, a `MsgReadIndex` with a term or a `MsgTransferLeader` to a follower
//! (both forwarded, and raft-rs `fatal!`s forwarding a message with a term). A message from a node that is not a member, or a locally-generated
//! type (`MsgHup`, `MsgBeat`, `MsgPropose`, ...) arriving from the network, is dropped too:
//! a peer could otherwise append entries to the leader's log directly or disrupt the
//! group with votes. Every drop is counted and logged (rate-limited) by the caller.
//!
//! Non-members: this node's configuration may lag (it was down while members changed),
//! so a follower still accepts what only a leader sends (appends, heartbeats, snapshots)
//! from a node it does not know yet, if it is of a newer term, or of this term and either
//! the leader it follows or no leader is known; raft's own term checks apply to them. A node with
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
    // Only a forwarded MsgReadIndex travels without a term, and it always does (a
    // follower forwarding one with a term `fatal!`s).
    if (m.term == 0) != (t == MsgReadIndex) {
        return Err("message term does not fit its type");
    }
    // A follower forwards a leader transfer request to its leader, and raft-rs `fatal!`s
    // forwarding one that came with a term: only the leader takes them from peers.
    if t == MsgTransferLeader && raft.state != StateRole::Leader {
        return Err("leader transfer request to a node that does not lead");
    }
    check_sender(raft, m)?;
    match t {
        MsgAppend => check_append(raft, m),
        // An acceptance beyond the log would raise the match (and the commit) past it; a
        // rejection only moves the sender back to probing (a restricted founder sends one on
        // purpose, see `node/identity.rs`).
        MsgAppendResponse if !m.reject && m.index > raft.raft_log.last_index() => {
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
    // A leader this node does not know yet: of a newer term, or of this term when this
    // node follows it or knows no leader (it may have learned the term from a vote).
    let leads = m.term > raft.term
        || (m.term == raft.term
            && (raft.leader_id == m.from || raft.leader_id == raft::INVALID_ID));
    if from_a_leader && leads && raft.state != StateRole::Leader {
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
    let mut c = ConfChangeSingle {
        node_id: id,
        ..Default::default()
    };
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
    let outgoing: Vec<_> = cs
        .voters_outgoing
        .iter()
        .map(|&i| single(i, AddNode))
        .collect();
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
    let applied = if outgoing.is_empty() {
        incoming
            .iter()
            .all(|c| apply(false, std::slice::from_ref(c)))
    } else {
        outgoing
            .iter()
            .all(|c| apply(false, std::slice::from_ref(c)))
            && apply(true, &incoming)
    };
    // raft-rs also requires the restored configuration to be exactly `cs`.
    applied && same_conf(&tracker.conf().to_conf_state(), cs)
}

fn same_conf(a: &ConfState, b: &ConfState) -> bool {
    let sorted = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    sorted(&a.voters) == sorted(&b.voters)
        && sorted(&a.learners) == sorted(&b.learners)
        && sorted(&a.voters_outgoing) == sorted(&b.voters_outgoing)
        && sorted(&a.learners_next) == sorted(&b.learners_next)
        && a.auto_leave == b.auto_leave
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, Snapshot};
    use raft::storage::MemStorage;
    use raft::{Config, RawNode};

    /// Node 1 of voters {1, 2, 3}, follower at term 2 with entries 1..=3 (commit 1).
    fn follower() -> RawNode<MemStorage> {
        let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        let ents: Vec<Entry> = (1..=3)
            .map(|i| Entry {
                index: i,
                term: 2,
                ..Default::default()
            })
            .collect();
        store.wl().append(&ents).unwrap();
        let hs = raft::eraftpb::HardState {
            term: 2,
            commit: 1,
            ..Default::default()
        };
        store.wl().set_hardstate(hs);
        let cfg = Config {
            id: 1,
            ..Default::default()
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        RawNode::new(&cfg, store, &log).unwrap()
    }

    fn msg(t: MessageType, from: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.from = from;
        m.to = 1;
        m.term = 2;
        m
    }

    #[test]
    fn a_heartbeat_committing_beyond_the_log_is_dropped_and_would_panic() {
        let mut m = msg(MessageType::MsgHeartbeat, 2);
        m.commit = 100;
        let raw = follower();
        assert_eq!(check(&raw.raft, &m), Err("heartbeat commit beyond the log"));
        // Without the filter raft-rs panics (`fatal!` in commit_to).
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut raw = follower();
            let _ = raw.step(m.clone());
        }));
        assert!(
            stepped.is_err(),
            "raft-rs no longer panics: update the filter docs"
        );
        let mut ok = msg(MessageType::MsgHeartbeat, 2);
        ok.commit = 3;
        assert_eq!(check(&raw.raft, &ok), Ok(()));
    }

    #[test]
    fn malformed_messages_are_dropped() {
        let raw = follower();
        let r = &raw.raft;
        assert!(
            check(r, &msg(MessageType::MsgReadIndex, 2)).is_err(),
            "no ctx"
        );
        assert!(
            check(r, &msg(MessageType::MsgPropose, 2)).is_err(),
            "propose"
        );
        assert!(check(r, &msg(MessageType::MsgHup, 2)).is_err(), "local");
        let mut wrong_to = msg(MessageType::MsgHeartbeat, 2);
        wrong_to.to = 9;
        assert!(check(r, &wrong_to).is_err(), "misaddressed");
        let mut ri = msg(MessageType::MsgReadIndex, 2);
        ri.entries = vec![Entry::default()].into();
        assert!(check(r, &ri).is_err(), "read index with a term");
        ri.term = 0;
        assert_eq!(check(r, &ri), Ok(()));
        let transfer = msg(MessageType::MsgTransferLeader, 2);
        assert!(check(r, &transfer).is_err(), "transfer to a follower");
        let mut no_term = msg(MessageType::MsgAppend, 2);
        no_term.term = 0;
        assert!(check(r, &no_term).is_err(), "no term");
        let mut gap = msg(MessageType::MsgAppend, 2);
        gap.index = 3;
        gap.log_term = 2;
        let e = Entry {
            index: 9,
            term: 2,
            ..Default::default()
        };
        gap.entries = vec![e].into();
        assert!(check(r, &gap).is_err(), "non-consecutive entries");
        let mut low = msg(MessageType::MsgAppend, 2);
        low.index = 3;
        low.log_term = 1;
        assert!(check(r, &low).is_err(), "anchored below the committed term");
        let mut resp = msg(MessageType::MsgAppendResponse, 2);
        resp.index = 50;
        assert!(check(r, &resp).is_err(), "response beyond the log");
        let mut snap = msg(MessageType::MsgSnapshot, 2);
        let mut s = Snapshot::default();
        s.mut_metadata().index = 5;
        s.mut_metadata().term = 2;
        snap.set_snapshot(s.clone());
        assert!(check(r, &snap).is_err(), "snapshot without voters");
        s.mut_metadata().mut_conf_state().voters = vec![1, 2];
        s.mut_metadata().mut_conf_state().learners = vec![2];
        snap.set_snapshot(s.clone());
        assert!(check(r, &snap).is_err(), "voter and learner at once");
        s.mut_metadata().mut_conf_state().learners = vec![3];
        snap.set_snapshot(s);
        assert_eq!(check(r, &snap), Ok(()));
    }

    #[test]
    fn non_members_may_not_vote_but_a_leader_this_node_does_not_know_may_append() {
        let raw = follower();
        let mut vote = msg(MessageType::MsgRequestPreVote, 7);
        vote.term = 9;
        assert_eq!(check(&raw.raft, &vote), Err("sender is not a member"));
        vote.from = 2;
        assert_eq!(check(&raw.raft, &vote), Ok(()));
        let mut hb = msg(MessageType::MsgHeartbeat, 7);
        hb.commit = 1;
        assert_eq!(check(&raw.raft, &hb), Ok(()), "same term, no leader known");
        let mut raw = raw;
        raw.raft.leader_id = 2;
        assert_eq!(
            check(&raw.raft, &hb),
            Err("sender is not a member"),
            "same term, following another leader"
        );
        hb.term = 3;
        assert_eq!(check(&raw.raft, &hb), Ok(()), "newer term");
    }
}

/// Random messages, filtered, stepped into real nodes: nothing the filter lets through may
/// panic raft-rs (a quick, seeded stand-in for the cargo-fuzz target `peer_message`).
#[cfg(test)]
mod random {
    use super::*;
    use raft::eraftpb::{Entry, HardState, Snapshot};
    use raft::storage::MemStorage;
    use raft::{Config, RawNode};
    use rand::{Rng, SeedableRng};

    fn node(leader: bool) -> RawNode<MemStorage> {
        let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        let ents: Vec<Entry> = (1..=5)
            .map(|i| Entry {
                index: i,
                term: 2,
                ..Default::default()
            })
            .collect();
        store.wl().append(&ents).unwrap();
        let hs = HardState {
            term: 2,
            commit: 3,
            ..Default::default()
        };
        store.wl().set_hardstate(hs);
        let cfg = Config {
            id: 1,
            ..Default::default()
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&cfg, store, &log).unwrap();
        if leader {
            raw.raft.become_candidate();
            raw.raft.become_leader();
        }
        raw
    }

    /// Persists and applies a Ready as a real node would (MemStorage).
    fn handle_ready(raw: &mut RawNode<MemStorage>) {
        if !raw.has_ready() {
            return;
        }
        let rd = raw.ready();
        if !rd.snapshot().is_empty() {
            let _ = raw.mut_store().wl().apply_snapshot(rd.snapshot().clone());
        }
        let _ = raw.mut_store().wl().append(rd.entries());
        if let Some(hs) = rd.hs() {
            raw.mut_store().wl().set_hardstate(hs.clone());
        }
        let light = raw.advance(rd);
        if let Some(c) = light.commit_index() {
            raw.mut_store().wl().mut_hard_state().commit = c;
        }
        raw.advance_apply();
    }

    fn ids(r: &mut impl Rng) -> Vec<u64> {
        (0..r.gen_range(0..4)).map(|_| r.gen_range(0..6)).collect()
    }

    fn message(r: &mut impl Rng) -> Message {
        let mut m = Message::default();
        m.set_msg_type(protobuf::ProtobufEnum::from_i32(r.gen_range(0..19)).unwrap_or_default());
        m.to = 1;
        m.from = r.gen_range(0..6);
        m.term = r.gen_range(0..6);
        m.index = r.gen_range(0..9);
        m.log_term = r.gen_range(0..5);
        m.commit = r.gen_range(0..9);
        m.reject = r.gen_bool(0.3);
        m.reject_hint = r.gen_range(0..9);
        m.request_snapshot = r.gen_range(0..3);
        let n = r.gen_range(0..4);
        let start = if r.gen_bool(0.8) {
            m.index + 1
        } else {
            r.gen_range(0..9)
        };
        m.entries = (0..n)
            .map(|i| Entry {
                index: start + i,
                term: r.gen_range(0..6),
                ..Default::default()
            })
            .collect::<Vec<_>>()
            .into();
        if r.gen_bool(0.2) {
            let mut s = Snapshot::default();
            s.mut_metadata().index = r.gen_range(0..12);
            s.mut_metadata().term = r.gen_range(0..6);
            let cs = s.mut_metadata().mut_conf_state();
            cs.voters = ids(r);
            cs.learners = ids(r);
            cs.voters_outgoing = ids(r);
            cs.learners_next = ids(r);
            cs.auto_leave = r.gen_bool(0.5);
            m.set_snapshot(s);
        }
        m
    }

    #[test]
    fn nothing_the_filter_passes_panics_raft() {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(
            std::env::var("SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(9),
        );
        // FILTER_ROUNDS and SEED make longer or other runs (e.g. FILTER_ROUNDS=200000).
        let rounds = std::env::var("FILTER_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5000);
        for round in 0..rounds {
            let msgs: Vec<Message> = (0..r.gen_range(1..8)).map(|_| message(&mut r)).collect();
            for leader in [false, true] {
                let mut raw = node(leader);
                for m in &msgs {
                    if check(&raw.raft, m).is_ok() {
                        let stepped =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                let _ = raw.step(m.clone());
                                handle_ready(&mut raw);
                            }));
                        assert!(stepped.is_ok(), "round {round}, leader {leader}: {m:?}");
                    }
                }
            }
        }
    }
}
