//! Applying one peer's committed entries: client commands to the state machine (at the
//! entry's stamped time), membership changes to raft-rs and the address book, and the
//! replies to the proposers once the batch holding the applies is written (an entry the
//! state machine says must wait for another group stops the applies until a later tick);
//! and a new
//! leader's look at the stamps its log will apply before its own (cluster time).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType};
use raft::StateRole;
use rocksdb::WriteBatch;
use slog::{crit, info, warn};

use super::identity::IDENTITY_CTX;
use super::{Deliveries, Peer};
use crate::node::{die, NodeError, StateMachine};
use crate::proto::{PeerAddr, RaftCommit};
use crate::storage::conf_contains;

/// Entries at the end of a new leader's log whose stamps it observes (see
/// `Peer::observe_log_stamps`).
const STAMP_TAIL: u64 = 64;

/// Context of an entry holding a command that may have to wait for another group of this
/// node before it applies ([`StateMachine::may_wait`]): only such entries are checked.
pub(super) const WAIT_CTX: &[u8] = b"raftkv/may-wait";

impl<S: StateMachine> Peer<S> {
    /// Once per term, before a new leader's first stamp: its log may hold entries of earlier
    /// leaders that it has not applied yet (they apply before its own), stamped later than
    /// anything it applied; its stamps must not fall below theirs, or cluster time would go
    /// back along the log. Stamps rise along a leader's log, so the last entries of the tail
    /// carry the highest: the last [`STAMP_TAIL`] are read.
    pub(super) fn observe_log_stamps(&mut self) {
        let term = self.raw.raft.term;
        if self.stamps_seen_term == term {
            return;
        }
        self.stamps_seen_term = term;
        let log = &self.raw.raft.raft_log;
        let last = log.last_index();
        let from = (log.applied + 1).max(last.saturating_sub(STAMP_TAIL) + 1);
        if from > last {
            return;
        }
        let ctx = raft::GetEntriesContext::empty(false);
        let entries = match log.slice(from, last + 1, None, ctx) {
            Ok(es) => es,
            Err(e) => {
                crit!(self.logger, "reading the log tail failed"; "from" => from, "err" => %e);
                die();
            }
        };
        for e in entries {
            if e.get_entry_type() != EntryType::EntryNormal
                || e.data.is_empty()
                || e.context[..] == *IDENTITY_CTX
            {
                continue;
            }
            if let Ok(c) = RaftCommit::parse_from_bytes(&e.data) {
                self.clock.observe(c.time_ms);
            }
        }
    }

    /// Queues committed entries behind the backlog (see [`super::backlog`]) and applies
    /// from it into `wb`, in order, until the round's apply budget is spent (at least one
    /// entry per call) or an entry must wait; the replies to deliver once written go to
    /// `out`. True when committed entries were waiting.
    pub(super) fn apply_entries(
        &mut self,
        wb: &mut WriteBatch,
        ents: Vec<Entry>,
        out: &mut Deliveries<S::Output>,
    ) -> bool {
        self.take_committed(ents);
        if !self.backlog_pending() {
            return false;
        }
        let deadline = self.apply_budget.map(|b| {
            *self
                .apply_deadline
                .get_or_insert_with(|| Instant::now() + b)
        });
        self.apply_blocked = false;
        while let Some(e) = self.next_committed() {
            if e.context[..] == *WAIT_CTX && self.entry_must_wait(&e) {
                self.put_back(e);
                self.apply_blocked = true;
                break;
            }
            self.apply_one(wb, e, out);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        self.backlog_changed();
        self.clock.stage(&self.db, wb, self.cfg.group_id);
        true
    }

    /// True when the state machine says the marked entry `e` must wait (logged once per
    /// entry).
    fn entry_must_wait(&mut self, e: &Entry) -> bool {
        let (wait, snapshot) = match RaftCommit::parse_from_bytes(&e.data) {
            Ok(c) if self.sm.must_wait(&c.commands) => (true, self.sm.needs_snapshot(&c.commands)),
            _ => (false, false),
        };
        if wait && self.waited_at != e.index {
            self.waited_at = e.index;
            info!(self.logger, "apply waits for another group of this node"; "index" => e.index, "needs_snapshot" => snapshot);
        }
        // Asked at the next tick: raft-rs takes no new messages inside a Ready's handling.
        self.snapshot_wanted |= snapshot;
        wait
    }

    /// Asks the leader for a snapshot (raft-rs drops repeats while one is pending); a
    /// leader first hands leadership to another voter.
    pub(super) fn ask_for_snapshot(&mut self) {
        if self.raw.raft.state == StateRole::Leader {
            let me = self.cfg.id;
            let other = self
                .raw
                .raft
                .prs()
                .conf()
                .voters()
                .ids()
                .iter()
                .find(|&id| id != me);
            if let Some(to) = other {
                info!(self.logger, "handing leadership over to be sent a snapshot"; "to" => to);
                self.raw.transfer_leader(to);
            }
        } else if self.raw.raft.leader_id != 0 {
            let _ = self.raw.request_snapshot();
        }
    }

    /// Applies one committed entry into `wb`.
    fn apply_one(&mut self, wb: &mut WriteBatch, e: Entry, out: &mut Deliveries<S::Output>) {
        {
            let index = e.index;
            self.bytes_since_snapshot += e.data.len() as u64;
            if self.pending_conf.as_ref().is_some_and(|(i, t, _)| {
                *i == index && (*t != e.term || e.get_entry_type() == EntryType::EntryNormal)
            }) {
                // Our membership change was overwritten, or raft-rs replaced it with an
                // empty entry (another change was pending): it did not take effect.
                if let Some((_, _, w)) = self.pending_conf.take() {
                    let _ = w.send(Err(NodeError::Refused(
                        "the membership change was dropped (another change was in progress or leadership moved); retry".into(),
                    )));
                }
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    let results = if e.data.is_empty() {
                        Vec::new()
                    } else if e.context[..] == *IDENTITY_CTX {
                        self.apply_identity(wb, index, &e.data);
                        Vec::new()
                    } else {
                        match RaftCommit::parse_from_bytes(&e.data) {
                            Ok(c) if c.group_id == self.cfg.group_id => {
                                self.clock.observe(c.time_ms);
                                self.sm.apply(wb, index, c.time_ms, &c.commands)
                            }
                            Ok(c) => {
                                crit!(self.logger, "entry of another group"; "index" => index, "entry_group" => c.group_id);
                                die();
                            }
                            Err(err) => {
                                crit!(self.logger, "undecodable committed entry"; "index" => index, "err" => %err);
                                die();
                            }
                        }
                    };
                    out.push((index, e.term, results));
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let cc = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data)
                            .map(|cc| {
                                let mut v2 = ConfChangeV2::default();
                                let mut ch = raft::eraftpb::ConfChangeSingle::default();
                                ch.set_change_type(cc.get_change_type());
                                ch.node_id = cc.node_id;
                                v2.mut_changes().push(ch);
                                v2.context = cc.context;
                                v2
                            })
                            .map_err(|e| e.to_string())
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data).map_err(|e| e.to_string())
                    };
                    let matched = self.matched_before_change();
                    let cs = cc.and_then(|cc| {
                        self.raw
                            .apply_conf_change(&cc)
                            .map(|cs| (cc, cs))
                            .map_err(|e| e.to_string())
                    });
                    let pending = self
                        .pending_conf
                        .take_if(|(i, t, _)| *i == index && *t == e.term)
                        .map(|(_, _, w)| w);
                    match cs {
                        Ok((cc, cs)) => {
                            info!(self.logger, "configuration changed"; "index" => index, "voters" => ?cs.voters, "learners" => ?cs.learners, "outgoing" => ?cs.voters_outgoing);
                            self.apply_membership(wb, &cc, &cs, index, &matched);
                            self.raw.mut_store().stage_conf_state(wb, cs.clone());
                            if let Some(w) = pending {
                                // Published before the reply, so whoever waited on the
                                // change sees it in `Status::members` (the addresses of
                                // a new member follow once its record is written).
                                self.publish_members();
                                self.members_dirty = true;
                                let _ = w.send(Ok(cs));
                            }
                        }
                        Err(err) => {
                            warn!(self.logger, "conf change rejected"; "index" => index, "err" => &err);
                            if let Some(w) = pending {
                                let _ = w.send(Err(NodeError::Refused(format!(
                                    "membership change rejected: {err}"
                                ))));
                            }
                        }
                    }
                    out.push((index, e.term, Vec::new()));
                }
            }
            self.applied = index;
        }
    }

    /// Replication progress of every member, on the leader (before a conf change drops the
    /// progress of members it removes).
    fn matched_before_change(&self) -> HashMap<u64, u64> {
        if self.raw.raft.state != StateRole::Leader {
            return HashMap::new();
        }
        self.raw
            .raft
            .prs()
            .iter()
            .map(|(id, pr)| (*id, pr.matched))
            .collect()
    }

    /// Records addresses of added members and forgets removed ones; notices our own removal.
    fn apply_membership(
        &mut self,
        wb: &mut WriteBatch,
        cc: &ConfChangeV2,
        cs: &ConfState,
        index: u64,
        matched: &HashMap<u64, u64>,
    ) {
        if let Ok(pa) = PeerAddr::parse_from_bytes(&cc.context) {
            if pa.id != 0 && !pa.addr.is_empty() && conf_contains(cs, pa.id) {
                self.raw.mut_store().stage_peer(wb, pa.id, &pa.addr);
                if pa.id != self.cfg.id {
                    self.fx.peers.push((pa.id, Some(pa.addr.clone())));
                }
            }
        }
        // Members of the previous configuration that are in no part of the new one left
        // (with joint consensus that happens when the joint configuration is left, by an
        // entry that names no change).
        let prev = self.raw.store().conf_state().clone();
        let gone: Vec<u64> = prev
            .voters
            .iter()
            .chain(&prev.learners)
            .chain(&prev.voters_outgoing)
            .copied()
            .filter(|&id| !conf_contains(cs, id))
            .collect();
        for id in gone {
            self.raw.mut_store().stage_forget_peer(wb, id);
            if id == self.cfg.id {
                warn!(self.logger, "this node was removed from the group");
                self.status.removed.store(true, Ordering::Release);
            } else {
                let notice = matched
                    .get(&id)
                    .and_then(|&m| crate::removal::notice(&self.raw.raft, id, index, m));
                match notice {
                    Some(n) => self.fx.removed.push((id, n)),
                    None if self.raw.raft.state == StateRole::Leader => {
                        warn!(self.logger, "cannot send a removed member its removal (its log is too far behind): stop it by hand"; "id" => id)
                    }
                    None => {}
                }
                self.fx.peers.push((id, None));
            }
        }
        self.members_dirty = true;
    }

    /// Hands results to the proposers once the batch holding them is written.
    pub(super) fn deliver(&mut self, out: Deliveries<S::Output>) {
        for (index, term, results) in out {
            // Anything proposed below this index that is still waiting was overwritten.
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() >= index {
                    break;
                }
                for (_, w) in entry.remove().waiters {
                    let _ = w.send(Err(NodeError::Dropped));
                }
            }
            let Some(p) = self.pending.remove(&index) else {
                continue;
            };
            let expected: usize = p.waiters.iter().map(|(n, _)| n).sum();
            if p.term != term || expected != results.len() {
                for (_, w) in p.waiters {
                    let _ = w.send(Err(NodeError::Dropped));
                }
                continue;
            }
            let mut results = results.into_iter();
            for (n, w) in p.waiters {
                let _ = w.send(Ok(results.by_ref().take(n).collect()));
            }
        }
    }
}
