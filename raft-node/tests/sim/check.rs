//! Safety invariants of the simulation, per group, checked after every round of a node:
//!
//! - election safety: at most one leader per term, both as raft-rs sees it and as the
//!   peer publishes it in its `Status` (what routing believes);
//! - log matching: committed entries never change (every entry between a peer's previous
//!   and current commit index is compared with the first (term, data) seen at that index);
//! - state machine safety: what a state machine applied at an index (its commands and
//!   stamp, the entry's term) is the committed entry at that index, and the digest after
//!   applying it (or after restoring a snapshot taken there) is the same on every node;
//! - applied ≤ commit ≤ last index; the commit index never goes back within one process
//!   lifetime; the state machine's persisted applied index follows the peer's;
//! - stamps (cluster time) along the applied log never go back: a stamp below the previous
//!   entry's fails the run (with `SIM_STAMPS=count` it is only counted,
//!   [`Checker::stamp_regressions`]). A new leader observes the stamps of its log's
//!   unapplied tail before its first stamp (`Peer::observe_log_stamps`); before that fix,
//!   34 entries over 4,814 seeds were stamped earlier than their predecessor;
//! - slots (`sim/slots.rs`): no slot is served by two groups at once. Every serve (a
//!   write acknowledged, a read served) is recorded with its slot, group, the fence the
//!   serving state machine got the slot at, and its point: the step of the write entry's
//!   first apply in the group, or for a read the later of the step it was sent at and the
//!   first apply of the last command entry of the state it read. Per slot, a fence is
//!   served by one group only, and every serve at a fence comes strictly before (in steps)
//!   the first serve at any higher fence: an owner never serves after its successor did.
//!   (Sound for the real code: the source's writes and read states are at most its REMOVE,
//!   a read sent after the REMOVE committed gets a read index past it, and the target's ADD
//!   is proposed only after the REMOVE was acknowledged, so it applies at a later step.)

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::GetEntriesContext;
use raft_node::peer::Peer;
use raft_node::proto::RaftCommit;

use super::client::{Serve, ServeAt};
use super::sm::{ListSm, SmEvent};

/// What is known of one group.
#[derive(Default)]
struct GroupCheck {
    /// Term → the node that led it (raft-rs's view).
    leaders: BTreeMap<u64, u64>,
    /// Term → the node whose `Status` said it led it.
    published: BTreeMap<u64, u64>,
    /// Every committed entry seen: index → (term, data).
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// State machine digest after applying up to an index (from any node).
    digests: BTreeMap<u64, u64>,
    /// Per node: highest commit index whose entries were compared already.
    checked: BTreeMap<u64, u64>,
    /// Per node: commit index seen at its last check in its current incarnation.
    last_commit: BTreeMap<u64, u64>,
    /// Per node: (index, stamp) of the last entry its state machine applied.
    last_stamp: BTreeMap<u64, (u64, i64)>,
    /// Index of a command entry → the step any node first applied it at.
    first_applied: BTreeMap<u64, u64>,
}

/// The serves of one slot at one fence.
struct FenceServes {
    group: u64,
    /// (step, virtual ms, what) of the first and the last serve.
    first: (u64, u64, String),
    last: (u64, u64, String),
}

/// The invariants of every group.
#[derive(Default)]
pub struct Checker {
    groups: BTreeMap<u64, GroupCheck>,
    /// Stamps seen going back along the applied log: (group, index, ms back).
    pub stamp_regressions: Vec<(u64, u64, i64)>,
    strict_stamps: bool,
    /// Per slot: fence → its serves.
    slots: BTreeMap<u16, BTreeMap<u64, FenceServes>>,
    /// Serves checked.
    pub serves: u64,
}

impl GroupCheck {
    /// An entry at `index` with `term` and `data` is committed (reported by `who`).
    fn entry(&mut self, who: u64, index: u64, term: u64, data: &[u8]) -> Result<(), String> {
        match self.committed.get(&index) {
            Some((t, d)) if *t != term || d.as_slice() != data => Err(format!(
                "committed entry changed: index {index} was (term {t}, {} bytes) and n{who} has (term {term}, {} bytes)",
                d.len(),
                data.len(),
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(index, (term, data.to_vec()));
                Ok(())
            }
        }
    }

    /// Node `who`'s state machine has `digest` after applying up to `index`.
    fn digest(&mut self, who: u64, index: u64, digest: u64) -> Result<(), String> {
        match self.digests.get(&index) {
            Some(&d) if d != digest => Err(format!(
                "state machines diverge: at applied index {index} n{who} has digest {digest:016x}, another node had {d:016x}"
            )),
            Some(_) => Ok(()),
            None => {
                self.digests.insert(index, digest);
                Ok(())
            }
        }
    }

    fn leader(map: &mut BTreeMap<u64, u64>, term: u64, who: u64, view: &str) -> Result<(), String> {
        let l = *map.entry(term).or_insert(who);
        if l != who {
            return Err(format!(
                "two leaders in term {term} ({view}): n{l} and n{who}"
            ));
        }
        Ok(())
    }
}

impl Checker {
    pub fn new() -> Self {
        Checker {
            strict_stamps: std::env::var("SIM_STAMPS").map_or(true, |v| v != "count"),
            ..Default::default()
        }
    }

    fn group(&mut self, g: u64) -> &mut GroupCheck {
        self.groups.entry(g).or_default()
    }

    /// Distinct (group, term) that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.groups.values().map(|g| g.leaders.len()).sum()
    }

    /// Highest index known committed, summed over the groups.
    pub fn max_committed(&self) -> u64 {
        self.groups
            .values()
            .map(|g| g.committed.keys().next_back().copied().unwrap_or(0))
            .sum()
    }

    /// Node `id` restarted: its in-memory commit indexes may legitimately be lower now.
    pub fn restarted(&mut self, id: u64) {
        for g in self.groups.values_mut() {
            g.last_commit.remove(&id);
            g.checked.remove(&id);
            g.last_stamp.remove(&id);
        }
    }

    /// Checks one live peer of node `id` after a round.
    pub fn peer(&mut self, id: u64, p: &Peer<ListSm>) -> Result<(), String> {
        let gid = p.group();
        let g = self.group(gid);
        let r = &p.raw().raft;
        let ctx = |e: String| format!("group {gid}: {e}");
        if r.state == raft::StateRole::Leader {
            GroupCheck::leader(&mut g.leaders, r.term, id, "raft-rs").map_err(ctx)?;
        }
        let st = p.status();
        if st.is_leader() {
            let term = st.term.load(std::sync::atomic::Ordering::Acquire);
            GroupCheck::leader(&mut g.published, term, id, "published status").map_err(ctx)?;
        }
        let committed = r.raft_log.committed;
        let applied = p.applied();
        if applied > committed {
            return Err(ctx(format!(
                "n{id} applied {applied} beyond its commit index {committed}"
            )));
        }
        // (A founding member starts at the bootstrap index 1 with an empty state machine.)
        let sm = p.state_machine().state().applied;
        if sm != applied && !(sm == 0 && applied == 1) {
            return Err(ctx(format!(
                "n{id} state machine at {sm} but the peer applied {applied}"
            )));
        }
        let last = g.last_commit.insert(id, committed).unwrap_or(0);
        if committed < last {
            return Err(ctx(format!(
                "n{id} commit index went back from {last} to {committed}"
            )));
        }
        if committed > r.raft_log.last_index() {
            return Err(ctx(format!(
                "n{id} commit index {committed} beyond its last index {}",
                r.raft_log.last_index()
            )));
        }
        let lo = (g.checked.get(&id).copied().unwrap_or(0) + 1).max(r.raft_log.first_index());
        if lo <= committed {
            let ents = r
                .raft_log
                .slice(lo, committed + 1, None, GetEntriesContext::empty(false))
                .map_err(|e| {
                    ctx(format!(
                        "n{id} cannot read committed entries [{lo}, {committed}]: {e}"
                    ))
                })?;
            if ents.len() as u64 != committed + 1 - lo {
                return Err(ctx(format!(
                    "n{id} returned {} committed entries for [{lo}, {committed}]",
                    ents.len()
                )));
            }
            for e in &ents {
                g.entry(id, e.index, e.term, &e.data).map_err(ctx)?;
            }
        }
        g.checked.insert(id, committed);
        Ok(())
    }

    /// Checks what node `id`'s state machine of group `gid` did; `term` is the term of the
    /// applied entry as the peer's log has it (when it still has it).
    pub fn sm_event(
        &mut self,
        id: u64,
        gid: u64,
        ev: &SmEvent,
        term: Option<u64>,
        step: u64,
    ) -> Result<(), String> {
        let strict = self.strict_stamps;
        let g = self.groups.entry(gid).or_default();
        let ctx = |e: String| format!("group {gid}: {e}");
        match ev {
            SmEvent::Restored { index, digest } => {
                g.last_stamp.remove(&id);
                g.digest(id, *index, *digest).map_err(ctx)
            }
            SmEvent::Applied {
                index,
                time_ms,
                cmds,
                digest,
                ..
            } => {
                if let Some((t, data)) = g.committed.get(index) {
                    if term.is_some_and(|term| term != *t) {
                        return Err(ctx(format!(
                            "n{id} applied index {index} of term {term:?}, the committed entry there is of term {t}"
                        )));
                    }
                    let c = RaftCommit::parse_from_bytes(data)
                        .map_err(|e| ctx(format!("committed entry {index} undecodable: {e}")))?;
                    if c.commands.as_slice() != cmds.as_slice()
                        || c.time_ms != *time_ms
                        || c.group_id != gid
                    {
                        return Err(ctx(format!(
                            "n{id} applied at {index} {} commands stamped {time_ms}, the committed entry has {} of group {} stamped {}",
                            cmds.len(),
                            c.commands.len(),
                            c.group_id,
                            c.time_ms
                        )));
                    }
                }
                let prev = g.last_stamp.insert(id, (*index, *time_ms));
                if let Some((pi, pt)) = prev.filter(|(_, pt)| time_ms < pt) {
                    if strict {
                        return Err(ctx(format!(
                            "stamps go back on n{id}: entry {pi} stamped {pt}, entry {index} {time_ms} ({} ms earlier)",
                            pt - time_ms
                        )));
                    }
                    // Counted once per entry (by the first node that applies it).
                    if !self
                        .stamp_regressions
                        .iter()
                        .any(|r| (r.0, r.1) == (gid, *index))
                    {
                        self.stamp_regressions.push((gid, *index, pt - time_ms));
                    }
                }
                let g = self.groups.get_mut(&gid).expect("group");
                g.first_applied.entry(*index).or_insert(step);
                g.digest(id, *index, *digest).map_err(ctx)
            }
        }
    }
}

impl Checker {
    /// The step of a serve's point (see the module doc).
    fn serve_step(&self, s: &Serve) -> Result<u64, String> {
        let first = self.groups.get(&s.group).map(|g| &g.first_applied);
        match s.at {
            ServeAt::Write { index } => first.and_then(|f| f.get(&index)).copied().ok_or(format!(
                "group {}: a write acknowledged at {index}, which no state machine applied",
                s.group
            )),
            ServeAt::Read { sent, applied } => {
                let state = first.and_then(|f| f.range(..=applied).next_back());
                Ok(state.map_or(sent, |(_, &at)| at.max(sent)))
            }
        }
    }

    /// Checks one serve (at virtual time `now`) against every serve of its slot so far.
    pub fn serve(&mut self, s: &Serve, now: u64) -> Result<(), String> {
        let step = self.serve_step(s)?;
        self.serves += 1;
        let what = format!(
            "{} by n{} of group {}, point at step {step}, acknowledged at t={now} ms",
            match s.at {
                ServeAt::Write { index } => format!("a write at {index}"),
                ServeAt::Read { applied, .. } => format!("a read at applied {applied}"),
            },
            s.node,
            s.group
        );
        let fences = self.slots.entry(s.slot).or_default();
        let err = |e: String| Err(format!("slot {}: {e}", s.slot));
        if let Some(fs) = fences.get(&s.fence) {
            if fs.group != s.group {
                return err(format!(
                    "served at fence {} by group {} ({}) and by group {} ({what})",
                    s.fence, fs.group, fs.first.2, s.group
                ));
            }
        }
        // Every lower fence's serves come before this one; every higher fence's first
        // serve after it.
        if let Some((f, fs)) = fences.range(..s.fence).find(|(_, fs)| fs.last.0 >= step) {
            return err(format!(
                "group {} served it at fence {f} ({}) not before group {} at fence {} ({what})",
                fs.group, fs.last.2, s.group, s.fence
            ));
        }
        let later = fences
            .range(s.fence + 1..)
            .find(|(_, fs)| fs.first.0 <= step);
        if let Some((f, fs)) = later {
            return err(format!(
                "group {} served it at fence {} ({what}) not before group {} at fence {f} ({})",
                s.group, s.fence, fs.group, fs.first.2
            ));
        }
        let me = (step, now, what);
        match fences.get_mut(&s.fence) {
            Some(fs) => {
                if step < fs.first.0 {
                    fs.first = me.clone();
                }
                if step > fs.last.0 {
                    fs.last = me;
                }
            }
            None => {
                let fs = FenceServes {
                    group: s.group,
                    first: me.clone(),
                    last: me,
                };
                fences.insert(s.fence, fs);
            }
        }
        Ok(())
    }
}
