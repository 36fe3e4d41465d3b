//! Safety invariants of the simulation, checked after every step: at most one leader per
//! term, committed entries never change, state machines agree at every applied index, and a
//! node never applies past its commit index nor sees its commit index go back.

use std::collections::BTreeMap;

use raft::GetEntriesContext;

use super::node::SimNode;

#[derive(Default)]
pub struct Checker {
    /// Term → the node that led it.
    leaders: BTreeMap<u64, u64>,
    /// Every entry any node reported committed or applied: index → (term, data).
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// State machine digest after applying up to an index (from any node).
    digests: BTreeMap<u64, u64>,
    /// Per node: highest commit index whose entries were compared already.
    checked: BTreeMap<u64, u64>,
    /// Per node: commit index seen at the last step of its current incarnation.
    last_commit: BTreeMap<u64, u64>,
}

impl Checker {
    /// Distinct terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    /// Highest index known committed.
    pub fn max_committed(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// The node restarted: its in-memory commit index may legitimately be lower now.
    pub fn restarted(&mut self, id: u64) {
        self.last_commit.remove(&id);
        self.checked.remove(&id);
    }

    /// An entry at `index` with `term` and `data` is committed (reported by node `who`).
    pub fn entry(&mut self, who: u64, index: u64, term: u64, data: &[u8]) -> Result<(), String> {
        match self.committed.get(&index) {
            Some((t, d)) if *t != term || d.as_slice() != data => Err(format!(
                "committed entry changed: index {index} was (term {t}, {} bytes {:?}) and n{who} has (term {term}, {} bytes {:?})",
                d.len(),
                String::from_utf8_lossy(d),
                data.len(),
                String::from_utf8_lossy(data)
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(index, (term, data.to_vec()));
                Ok(())
            }
        }
    }

    /// Node `who`'s state machine has `digest` after applying up to `index`.
    pub fn digest(&mut self, who: u64, index: u64, digest: u64) -> Result<(), String> {
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

    /// Checks one live node after a step.
    pub fn node(&mut self, n: &SimNode) -> Result<(), String> {
        let id = n.id;
        let r = &n.raw.raft;
        if n.is_leader() {
            let l = *self.leaders.entry(r.term).or_insert(id);
            if l != id {
                return Err(format!("two leaders in term {}: n{l} and n{id}", r.term));
            }
        }
        let committed = r.raft_log.committed;
        if n.applied > committed {
            return Err(format!(
                "n{id} applied {} beyond its commit index {committed}",
                n.applied
            ));
        }
        // (A founding member starts at the bootstrap index 1 with an empty state machine.)
        if n.sm.applied != n.applied && !(n.sm.applied == 0 && n.applied == 1) {
            return Err(format!(
                "n{id} state machine at {} but node applied {}",
                n.sm.applied, n.applied
            ));
        }
        let last = self.last_commit.insert(id, committed).unwrap_or(0);
        if committed < last {
            return Err(format!(
                "n{id} commit index went back from {last} to {committed}"
            ));
        }
        if committed > r.raft_log.last_index() {
            return Err(format!(
                "n{id} commit index {committed} beyond its last index {}",
                r.raft_log.last_index()
            ));
        }
        let lo = (self.checked.get(&id).copied().unwrap_or(0) + 1).max(r.raft_log.first_index());
        if lo <= committed {
            let ents = r
                .raft_log
                .slice(lo, committed + 1, None, GetEntriesContext::empty(false))
                .map_err(|e| {
                    format!("n{id} cannot read committed entries [{lo}, {committed}]: {e}")
                })?;
            if ents.len() as u64 != committed + 1 - lo {
                return Err(format!(
                    "n{id} returned {} committed entries for [{lo}, {committed}]",
                    ents.len()
                ));
            }
            for e in &ents {
                self.entry(id, e.index, e.term, &e.data)?;
            }
        }
        self.checked.insert(id, committed);
        Ok(())
    }
}
