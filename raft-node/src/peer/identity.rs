//! A node that lost its disk does not vote twice (issue #9 item 9).
//!
//! A founding member restarted with an empty data dir would start like a new founder
//! (term 0, no vote, empty log), yet it may have voted in the current term, and it may
//! have acknowledged entries that a majority needed: voting again, it could elect a second
//! leader in a term or a leader without a committed entry. So:
//!
//! - the cluster has an identity ([`ClusterIdentity`]): the first leader proposes an
//!   identity entry (a normal entry whose context is [`IDENTITY_CTX`]) with a random id;
//!   the leader then records, by further identity entries, every member whose acknowledged
//!   log reaches that entry (a *participant*). It is replicated, kept with the raft state
//!   and carried by snapshots;
//! - a founder whose data dir held nothing starts *guarded* (persisted, so a crash does not
//!   lift it): it grants no (pre-)vote to a candidate whose log is not as empty as a new
//!   founder's, nor steps a heartbeat whose commit index lies beyond its log, while it
//!   catches up from the leader by appends. The commit index of the first append (or
//!   snapshot) it gets from a leader is its *target* (persisted): what the cluster had
//!   recorded before this node's first acknowledgement since it started empty. Once it
//!   applied up to the target: listed as a participant there (by an identity entry at or
//!   below the target: each listing keeps its entry's index, so a snapshot taken past the
//!   target, which also lists the node for the acknowledgements it sent since, decides
//!   the same as the log would), it refuses to start
//!   (persisted too, with a message saying how to recover); not listed (a founder started
//!   for the first time after the others formed the cluster, or a new cluster), it lifts
//!   the guard and goes on. Winning an election also lifts it (a majority had logs no newer
//!   than its own: a new cluster). Founders that all start empty elect as before.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use raft::StateRole;
use rocksdb::{WriteBatch, DB};
use slog::{crit, info};

use super::Peer;
use crate::node::{die, StateMachine};
use crate::proto::ClusterIdentity;
use crate::storage::{meta_key, CF_RAFT, TAG_GUARD, TAG_IDENTITY, TAG_REFUSED};

/// Context of identity entries (normal entries the state machine never sees).
pub(super) const IDENTITY_CTX: &[u8] = b"raftkv/identity";

/// The identity state of one group on this node.
#[derive(Default)]
pub(super) struct Identity {
    known: Option<ClusterIdentity>,
    guarded: bool,
    /// While guarded: the commit index to apply before deciding (0 = no leader seen yet).
    target: u64,
    /// Index of this node's latest identity proposal (0 = none).
    proposed: u64,
}

fn get(db: &DB, key: Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    let cf = db.cf_handle(CF_RAFT).ok_or("missing raft column family")?;
    db.get_cf(cf, key).map_err(|e| e.to_string())
}

impl Identity {
    /// Loads the group's identity state. `founded_now`: the storage was just created as a
    /// founder's (an empty data dir), so the guard goes on, persisted. Fails when this node
    /// refused to start before (it lost its data after taking part in the cluster).
    pub(super) fn load(db: &DB, group: u64, founded_now: bool) -> Result<Identity, String> {
        if let Some(why) = get(db, meta_key(TAG_REFUSED, group))? {
            return Err(String::from_utf8_lossy(&why).into_owned());
        }
        let known = match get(db, meta_key(TAG_IDENTITY, group))? {
            Some(v) => Some(ClusterIdentity::parse_from_bytes(&v).map_err(|e| e.to_string())?),
            None => None,
        };
        let guard = get(db, meta_key(TAG_GUARD, group))?;
        let mut guarded = guard.is_some();
        let target = guard
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        if founded_now && !guarded {
            let cf = db.cf_handle(CF_RAFT).ok_or("missing raft column family")?;
            db.put_cf(cf, meta_key(TAG_GUARD, group), b"")
                .map_err(|e| e.to_string())?;
            guarded = true;
        }
        Ok(Identity {
            known,
            guarded,
            target,
            proposed: 0,
        })
    }

    /// The identity as known now (recorded in snapshots).
    pub(super) fn known(&self) -> Option<&ClusterIdentity> {
        self.known.as_ref()
    }
}

/// The text a node that must not start as a founder exits with.
fn refusal(id: u64, cluster: u64) -> String {
    format!(
        "node {id} started with an empty data dir, but cluster {cluster:016x} records it as a member that took part \
         (it may have voted or acknowledged writes it no longer has), so it must not start as a founder. To recover: \
         on a running member run RAFT.NODE REMOVE {id}, then start this node with an empty data dir and \
         --join <member-redis-addr> --peer-addr <its-raft-addr>; or wipe every node's data dir to start a new cluster"
    )
}

/// `have` with the participants of `more` added: per participant the earliest index it
/// was listed at (a missing `recorded_at` counts as 0: listed before anything), sorted by id.
fn merge_listings(mut have: ClusterIdentity, more: &ClusterIdentity) -> ClusterIdentity {
    let listings = |k: &ClusterIdentity| -> Vec<(u64, u64)> {
        let at = |i: usize| k.recorded_at.get(i).copied().unwrap_or(0);
        k.participants
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, at(i)))
            .collect()
    };
    let mut all: BTreeMap<u64, u64> = BTreeMap::new();
    for (p, at) in listings(&have).into_iter().chain(listings(more)) {
        all.entry(p).and_modify(|a| *a = (*a).min(at)).or_insert(at);
    }
    have.participants = all.keys().copied().collect();
    have.recorded_at = all.values().copied().collect();
    have
}

/// True when `ident` lists node `id` by an identity entry at or below `target` (the
/// cluster counted on it before it started empty; a listing above the target comes from
/// the acknowledgements it sent since, e.g. while its apply waited and a snapshot then
/// brought the identity recorded past the target).
fn listed_by(ident: &ClusterIdentity, id: u64, target: u64) -> bool {
    ident
        .participants
        .iter()
        .enumerate()
        .any(|(i, &p)| p == id && ident.recorded_at.get(i).copied().unwrap_or(0) <= target)
}

/// A fresh random cluster id (never 0).
fn new_cluster_id(node: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(node);
    h.write_i64(crate::node::wall_ms());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

impl<S: StateMachine> Peer<S> {
    /// True when a guarded node must drop this message: a (pre-)vote request from a
    /// candidate whose log is not empty like a new founder's (index 1, term 1); or a
    /// heartbeat whose commit index lies beyond this node's log (the leader still counts the
    /// entries this node had before it lost them, and raft-rs would panic). For such a
    /// heartbeat the leader is told that this node's log ends earlier (append rejections it
    /// cannot take for stale), so it probes back and catches this node up by appends.
    /// Also takes the target from the first append or snapshot from a leader.
    pub(super) fn guard_drops(&mut self, m: &Message) -> bool {
        if !self.identity.guarded {
            return false;
        }
        if self.identity.target == 0 && m.term >= self.raw.raft.term {
            let target = match m.get_msg_type() {
                MessageType::MsgAppend => m.commit,
                MessageType::MsgSnapshot => m.get_snapshot().get_metadata().index,
                _ => 0,
            };
            if target > 0 {
                self.identity.target = target;
                if let Some(cf) = self.db.cf_handle(CF_RAFT) {
                    let _ = self.db.put_cf(
                        cf,
                        meta_key(TAG_GUARD, self.cfg.group_id),
                        target.to_be_bytes(),
                    );
                }
            }
        }
        match m.get_msg_type() {
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                m.index > 1 || m.log_term > 1
            }
            MessageType::MsgHeartbeat if m.commit > self.raw.raft.raft_log.last_index() => {
                if m.term >= self.raw.raft.term {
                    // Two rejections: one the leader takes in its Replicate state (beyond
                    // its match), one in Probe (its next index - 1, which is the match the
                    // heartbeat's commit index shows).
                    let last = self.raw.raft.raft_log.last_index();
                    let reject = |index: u64| {
                        let mut r = Message::default();
                        r.set_msg_type(MessageType::MsgAppendResponse);
                        r.to = m.from;
                        r.from = self.cfg.id;
                        r.term = m.term;
                        r.reject = true;
                        r.index = index;
                        r.reject_hint = last;
                        r
                    };
                    self.fx.send.extend([reject(u64::MAX), reject(m.commit)]);
                }
                true
            }
            _ => false,
        }
    }

    /// Applies a committed identity entry at `index`. A guarded node decides before it
    /// merges an identity entry beyond its target: the decision must see the participants
    /// as the cluster had recorded them at the target, not the ones recorded later (among
    /// them, this node itself once it caught up), which a batch of applies reaching past
    /// the target would otherwise add first.
    pub(super) fn apply_identity(&mut self, wb: &mut WriteBatch, index: u64, data: &[u8]) {
        let id = &self.identity;
        if id.guarded && id.target > 0 && index > id.target {
            self.decide_guard(wb);
        }
        match ClusterIdentity::parse_from_bytes(data) {
            Ok(mut ident) => {
                if ident.index == 0 {
                    ident.index = index;
                }
                // The entry lists its participants as of its own index (its proposer
                // leaves `recorded_at` empty).
                ident.recorded_at = vec![index; ident.participants.len()];
                self.merge_identity(wb, ident);
            }
            Err(e) => {
                crit!(self.logger, "undecodable identity entry"; "index" => index, "err" => %e);
                die();
            }
        }
    }

    /// Records an identity learned from the log or a snapshot (the first id wins;
    /// participants only grow, each keeping the earliest index it was listed at).
    pub(super) fn merge_identity(&mut self, wb: &mut WriteBatch, ident: ClusterIdentity) {
        let merged = match self.identity.known.take() {
            None => merge_listings(ident.clone(), &ident),
            Some(have) => merge_listings(have, &ident),
        };
        if let (Ok(bytes), Some(cf)) = (merged.write_to_bytes(), self.db.cf_handle(CF_RAFT)) {
            wb.put_cf(cf, meta_key(TAG_IDENTITY, self.cfg.group_id), bytes);
        }
        self.identity.known = Some(merged);
    }

    /// A guarded node that applied up to its target decides: refuse when the cluster had
    /// recorded it as a participant, else lift the guard.
    pub(super) fn check_guard(&mut self) {
        let id = &self.identity;
        if !id.guarded || id.target == 0 || self.applied < id.target {
            return;
        }
        let mut wb = WriteBatch::default();
        self.decide_guard(&mut wb);
        self.write(wb);
    }

    /// The decision of a guarded node at its target, on the identity known now: refuse
    /// (and stop) when listed as a participant, else lift the guard (staged in `wb`).
    fn decide_guard(&mut self, wb: &mut WriteBatch) {
        let id = &self.identity;
        let cluster = id.known.as_ref().map_or(0, |k| k.id);
        if id
            .known
            .as_ref()
            .is_some_and(|k| listed_by(k, self.cfg.id, id.target))
        {
            self.refuse(cluster);
        }
        info!(self.logger, "founder with an empty data dir: the cluster never counted on this node, going on as a member"; "cluster" => format!("{cluster:016x}"));
        self.lift_guard(wb);
    }

    fn lift_guard(&mut self, wb: &mut WriteBatch) {
        self.identity.guarded = false;
        if let Some(cf) = self.db.cf_handle(CF_RAFT) {
            wb.delete_cf(cf, meta_key(TAG_GUARD, self.cfg.group_id));
        }
    }

    /// Persists the refusal (a restart refuses again) and stops with a non-zero exit.
    fn refuse(&self, cluster: u64) -> ! {
        let why = refusal(self.cfg.id, cluster);
        if let Some(cf) = self.db.cf_handle(CF_RAFT) {
            let _ = self
                .db
                .put_cf(cf, meta_key(TAG_REFUSED, self.cfg.group_id), why.as_bytes());
            let _ = self.db.flush_wal(true);
        }
        crit!(self.logger, "refusing to start"; "why" => why);
        die();
    }

    /// This node won an election: a majority's logs were no newer than its own.
    pub(super) fn on_leadership(&mut self) {
        if self.identity.guarded {
            let mut wb = WriteBatch::default();
            self.lift_guard(&mut wb);
            self.write(wb);
        }
    }

    /// The leader (once per tick) proposes the identity when there is none, or adds the
    /// members whose acknowledged log reaches the identity entry; one proposal at a time.
    pub(super) fn maybe_record_identity(&mut self) {
        if self.raw.raft.state != StateRole::Leader || self.identity.proposed > self.applied {
            return;
        }
        let ident = match &self.identity.known {
            None => ClusterIdentity {
                id: new_cluster_id(self.cfg.id),
                participants: vec![self.cfg.id],
                ..Default::default()
            },
            Some(have) => {
                let mut add: Vec<u64> = self
                    .raw
                    .raft
                    .prs()
                    .iter()
                    .filter(|(id, pr)| {
                        (**id == self.cfg.id || pr.matched >= have.index)
                            && !have.participants.contains(id)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if add.is_empty() {
                    return;
                }
                add.extend(have.participants.iter().copied());
                add.sort_unstable();
                add.dedup();
                ClusterIdentity {
                    id: have.id,
                    index: have.index,
                    participants: add,
                    ..Default::default()
                }
            }
        };
        let Ok(data) = ident.write_to_bytes() else {
            return;
        };
        if self.raw.propose(IDENTITY_CTX.to_vec(), data).is_ok() {
            self.identity.proposed = self.raw.raft.raft_log.last_index();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(participants: &[u64], recorded_at: &[u64]) -> ClusterIdentity {
        ClusterIdentity {
            id: 7,
            index: 3,
            participants: participants.to_vec(),
            recorded_at: recorded_at.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_listing_counts_against_a_node_only_when_made_by_its_target() {
        // Node 3 listed by the entry at 40: the cluster counted on it before a node whose
        // target is 40 or more started empty, not before one whose target is 39.
        let k = ident(&[1, 2, 3], &[3, 3, 40]);
        assert!(listed_by(&k, 3, 40));
        assert!(!listed_by(&k, 3, 39));
        assert!(listed_by(&k, 1, 3));
        assert!(!listed_by(&k, 4, u64::MAX));
        // An identity recorded before `recorded_at` existed: every listing counts.
        let old = ident(&[1, 2, 3], &[]);
        assert!(listed_by(&old, 3, 0));
    }

    #[test]
    fn merged_listings_keep_the_earliest_index_of_each_participant() {
        let have = ident(&[1, 3], &[3, 50]);
        let more = ident(&[1, 2, 3], &[3, 9, 20]);
        let m = merge_listings(have, &more);
        assert_eq!(m.participants, vec![1, 2, 3]);
        assert_eq!(m.recorded_at, vec![3, 9, 20]);
        assert_eq!(
            (m.id, m.index),
            (7, 3),
            "the first identity's id and index stay"
        );
        // A participant without an index (older data) is listed at 0 from then on.
        let m = merge_listings(m, &ident(&[2], &[]));
        assert_eq!(m.recorded_at, vec![3, 0, 20]);
    }
}
