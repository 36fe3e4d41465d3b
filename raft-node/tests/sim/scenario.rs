//! The phases of one run: start the founders, the chaos phase, healing (links up, no
//! more loss, every node restarted, removed peers that never learnt it stopped), then
//! progress (every group commits something proposed after healing) and convergence (the
//! migration under way ended, every member at its leader's commit index), and the final
//! checks (identical states, each
//! command applied at most once, every acknowledged command where its proposer was told).

use std::collections::BTreeSet;

use rand::Rng;

use super::client::cmd_number;
use super::report::{Failure, Stats};
use super::world::{Ev, Sim};

/// How long the healed cluster may take to commit a new proposal in every group, then to
/// converge.
const LIVENESS_MS: u64 = 30_000;

impl Sim {
    /// Runs the whole scenario.
    pub fn run(&mut self) -> Result<Stats, Failure> {
        self.note(format!("seed {} params {:?}", self.seed, self.p));
        for id in self.founders.clone() {
            self.start_node(id)?;
        }
        let f = self.rng.gen_range(0..self.p.fault_every);
        self.schedule(f, Ev::Fault);
        let p = self.rng.gen_range(0..self.p.propose_every);
        self.schedule(p, Ev::Propose { left: 0, to: None });
        let r = self.rng.gen_range(0..self.p.read_every);
        self.schedule(r, Ev::Read);
        if self.mover.model {
            self.schedule(0, Ev::Migrate);
        }
        while self.now < self.p.chaos_ms {
            self.step()?;
        }
        self.heal()?;
        let deadline = self.now + LIVENESS_MS;
        while self.progressed.len() < self.p.groups.len() {
            if self.now > deadline {
                return Err(self.fail(format!(
                    "no progress: groups {:?} committed nothing proposed after healing within {LIVENESS_MS} ms",
                    self.p.groups.iter().filter(|g| !self.progressed.contains(g)).collect::<Vec<_>>()
                )));
            }
            self.step()?;
        }
        self.proposing = false;
        let deadline = self.now + LIVENESS_MS;
        loop {
            let moved = match self.mover.moving {
                Some(m) => Err(format!("migration {m:?} under way")),
                None => Ok(()),
            };
            match moved.and_then(|()| self.converged()) {
                Ok(()) => break,
                Err(why) if self.now > deadline => {
                    return Err(self.fail(format!(
                        "no convergence within {LIVENESS_MS} ms after healing: {why}"
                    )))
                }
                Err(_) => self.step()?,
            }
        }
        self.final_check()?;
        let c = self.clients.stats;
        self.stats.virtual_ms = self.now;
        self.stats.leader_terms = self.checker.leader_terms() as u64;
        self.stats.committed = self.checker.max_committed();
        let regressions = &self.checker.stamp_regressions;
        self.stats.stamp_regressions = regressions.len() as u64;
        self.stats.max_stamp_back_ms = regressions.iter().map(|r| r.2).max().unwrap_or(0);
        if self.print_trace {
            for (g, index, back) in regressions {
                eprintln!("[seed {}] group {g}: entry {index} stamped {back} ms before the entry before it", self.seed);
            }
        }
        (self.stats.proposals, self.stats.acked, self.stats.refused) =
            (c.proposals, c.acked, c.refused);
        (self.stats.unknown, self.stats.reads, self.stats.reads_ok) =
            (c.unknown, c.reads, c.reads_ok);
        (self.stats.slot_refused, self.stats.reads_refused) = (c.slot_refused, c.reads_refused);
        self.stats.serves = self.checker.serves;
        Ok(self.stats.clone())
    }

    /// Ends the chaos: all links up, no more losses, every node running, and the removed
    /// members that never learnt it stopped by "the operator".
    fn heal(&mut self) -> Result<(), Failure> {
        self.chaos = false;
        self.blocked.clear();
        self.p.drop = 0.0;
        self.p.dup = 0.0;
        self.p.long_delay = 0.0;
        self.p.crash_in_restore = 0.0;
        self.heal_cmd = Some(self.clients.next_cmd());
        self.note("heal: network repaired, restarting crashed nodes".into());
        for (id, g) in self.removed.clone() {
            if let Some(n) = self.slot(id).node.as_mut() {
                if n.peers.contains_key(&g) {
                    n.drop_group(g);
                    self.note(format!("n{id} stops its removed peer of group {g}"));
                }
            }
        }
        for id in 1..=self.slots.len() as u64 {
            if self.slot(id).node.is_none() && !self.slot(id).retired {
                self.start_node(id)?;
            }
        }
        Ok(())
    }

    fn converged(&self) -> Result<(), String> {
        for &g in &self.p.groups {
            let (l, members) = self.members(g)?;
            let commit = self.node(l).expect("leader").peers[&g]
                .raw()
                .raft
                .raft_log
                .committed;
            for id in members {
                let p = self
                    .node(id)
                    .and_then(|n| n.peers.get(&g))
                    .ok_or(format!("member n{id} of group {g} is down"))?;
                let c = p.raw().raft.raft_log.committed;
                if p.applied() != commit || c != commit {
                    return Err(format!(
                        "group {g}: n{id} applied {} commit {c}, leader n{l} commit {commit}",
                        p.applied()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Identical final states in every group, each command applied at most once, and
    /// every acknowledged command where its proposer was told.
    fn final_check(&self) -> Result<(), Failure> {
        for &g in &self.p.groups {
            let (_, members) = self.members(g).map_err(|e| self.fail(e))?;
            let states: Vec<(u64, _)> = members
                .iter()
                .filter_map(|&id| Some((id, self.node(id)?.peers.get(&g)?.state_machine().state())))
                .collect();
            if states.len() != members.len() {
                return Err(self.fail(format!("a member of group {g} is down at the end")));
            }
            let (first, s0) = states[0];
            for (id, s) in &states[1..] {
                if *s != s0 {
                    return Err(self.fail(format!(
                        "group {g}: final states differ: n{first} (applied {}, {} items, digest {:016x}) vs n{id} (applied {}, {} items, digest {:016x})",
                        s0.applied, s0.items.len(), s0.digest, s.applied, s.items.len(), s.digest
                    )));
                }
            }
            let mut seen = BTreeSet::new();
            for it in &s0.items {
                if !seen.insert(it.clone()) {
                    return Err(self.fail(format!(
                        "group {g}: command {:?} applied twice",
                        String::from_utf8_lossy(it)
                    )));
                }
            }
            for (cmd, &(cg, index, pos)) in &self.clients.acked {
                let at = s0.items.get(pos as usize).and_then(|c| cmd_number(c));
                if cg == g && at != Some(*cmd) {
                    return Err(self.fail(format!(
                        "group {g}: c{cmd} was acknowledged at index {index} position {pos}, the final list has {at:?} there"
                    )));
                }
            }
        }
        Ok(())
    }
}
