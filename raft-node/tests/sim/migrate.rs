//! Slot migrations during the chaos phase, carried out as the real system does
//! (`src/cluster/migrate.rs`, README "Slot migration"): one at a time, each with a new,
//! higher fence; the source group is sent `REMOVE(slot, fence)` until one is acknowledged
//! (applied: from then on it refuses the slot), and only then the target group
//! `ADD(slot, fence)` until one is acknowledged (it serves the slot from then on). A
//! command of unknown outcome is simply sent again (a repeated command changes nothing).
//! [`Mover::owner`] is what "the metadata" says, updated when a migration ends: the
//! clients mostly send a slot's requests to its group per this map (so also to a source
//! that no longer serves it, during a migration), and often the moving slot's to the
//! source and the target while it moves.
//!
//! With `SIM_MUTANT=slot-early-add` the ADD is proposed at once with the REMOVE.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;

use super::node::Mutant;
use super::slots::{initial_owned, Cmd, SLOTS};
use super::world::{Ev, Sim};

/// Time between two looks at the migration (ms, at most).
const MOVE_TICK_MS: u64 = 400;
/// A command in flight this long is sent again (its reply may never come).
const RESEND_MS: u64 = 3_000;

/// The migration under way.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub slot: u16,
    pub from: u64,
    pub to: u64,
    pub fence: u64,
    /// The REMOVE is acknowledged: the ADD's turn.
    pub removed: bool,
    /// A command is in flight (its outcome not known yet), since this virtual time.
    pub inflight: Option<u64>,
}

/// The migrations of a run.
#[derive(Debug, Default)]
pub struct Mover {
    /// Writes carry slots, migrations run (false: the slotless runs).
    pub model: bool,
    /// Slot → its group, per the finished migrations.
    pub owner: BTreeMap<u16, u64>,
    pub moving: Option<Move>,
    next_fence: u64,
    /// Probability that a look with no migration under way starts one (chaos only).
    start_p: f64,
    early_add: bool,
}

impl Mover {
    /// The slot model over `groups`, with migrations drawn from `rng`.
    pub fn new(groups: &[u64], rng: &mut impl Rng, mutant: Option<Mutant>) -> Self {
        let mut owner = BTreeMap::new();
        for &g in groups {
            owner.extend(initial_owned(groups, g, true).into_keys().map(|s| (s, g)));
        }
        Mover {
            model: true,
            owner,
            moving: None,
            next_fence: 1,
            start_p: *[0.02, 0.05, 0.15].choose(rng).expect("choices"),
            early_add: mutant == Some(Mutant::SlotEarlyAdd),
        }
    }

    /// Slots `g` owns per the map.
    pub fn slots_of(&self, g: u64) -> Vec<u16> {
        let owned = self.owner.iter().filter(|(_, o)| **o == g);
        owned.map(|(s, _)| *s).collect()
    }
}

impl Sim {
    /// A slot for a request to `g`: often the moving slot when `g` is the migration's
    /// source or target (requests race the move), else mostly one of `g`'s per the map,
    /// else any.
    pub fn pick_slot(&mut self, g: u64) -> Option<u16> {
        if !self.mover.model {
            return None;
        }
        if let Some(m) = self.mover.moving.filter(|m| m.from == g || m.to == g) {
            if self.rng.gen_bool(0.3) {
                return Some(m.slot);
            }
        }
        let mine = self.mover.slots_of(g);
        match mine.choose(&mut self.rng) {
            Some(&s) if self.rng.gen_bool(0.85) => Some(s),
            _ => Some(self.rng.gen_range(0..SLOTS)),
        }
    }

    /// A look at the migration: start one (chaos only), or send its current command again
    /// if none is in flight. Schedules the next look while there is something to do.
    pub fn migrate_tick(&mut self) {
        self.move_outcomes();
        if self.mover.moving.is_none() && self.chaos && self.rng.gen_bool(self.mover.start_p) {
            self.start_move();
        }
        if let Some(m) = self.mover.moving {
            if m.inflight.is_none_or(|t| self.now >= t + RESEND_MS) {
                self.send_move(m);
            }
        }
        if self.chaos || self.mover.moving.is_some() {
            let d = self.rng.gen_range(1..=MOVE_TICK_MS);
            self.schedule(d, Ev::Migrate);
        }
    }

    fn start_move(&mut self) {
        let slot = self.rng.gen_range(0..SLOTS);
        let from = self.mover.owner[&slot];
        let others: Vec<u64> = self
            .p
            .groups
            .iter()
            .copied()
            .filter(|&g| g != from)
            .collect();
        let Some(&to) = others.choose(&mut self.rng) else {
            return;
        };
        let fence = self.mover.next_fence;
        self.mover.next_fence += 1;
        let m = Move {
            slot,
            from,
            to,
            fence,
            removed: false,
            inflight: None,
        };
        self.note(format!(
            "migration {fence}: slot {slot} from group {from} to {to}"
        ));
        if self.mover.early_add {
            // The mutant: the ADD goes out with the REMOVE, which is not waited for.
            let mut add = m;
            add.removed = true;
            self.send_move(add);
        }
        self.mover.moving = Some(m);
    }

    /// Proposes the migration's current command at a node that likely leads the group.
    fn send_move(&mut self, m: Move) {
        let (g, cmd, what) = if m.removed {
            let c = Cmd::Add {
                slot: m.slot,
                fence: m.fence,
            };
            (m.to, c, "ADD")
        } else {
            let c = Cmd::Remove {
                slot: m.slot,
                fence: m.fence,
            };
            (m.from, c, "REMOVE")
        };
        let live = self.live();
        let node = match self.leader(g) {
            Some(l) if self.rng.gen_bool(0.8) => Some(l),
            _ => live.choose(&mut self.rng).copied(),
        };
        let Some(node) = node else {
            return;
        };
        let msg = self.clients.slot_command(node, g, m.fence, m.removed, cmd);
        self.note(format!(
            "migration {}: {what} of slot {} proposed to n{node} group {g}",
            m.fence, m.slot
        ));
        self.post(node, g, msg);
        let now = self.now;
        if let Some(cur) = self
            .mover
            .moving
            .as_mut()
            .filter(|c| c.removed == m.removed)
        {
            cur.inflight = Some(now);
        }
    }

    /// Takes the outcomes of the migration's commands (polled with the clients' calls):
    /// an acknowledged REMOVE lets the ADD go, an acknowledged ADD ends the migration;
    /// anything else is sent again. Outcomes of another migration or of the other command
    /// (the mutant's early ADD, a repeated REMOVE) are ignored.
    pub fn move_outcomes(&mut self) {
        for (fence, add, ok) in std::mem::take(&mut self.clients.moves) {
            let Some(m) = self.mover.moving.as_mut() else {
                continue;
            };
            if m.fence != fence || m.removed != add {
                continue;
            }
            m.inflight = None;
            if !ok {
                continue;
            }
            let m = *m;
            if !add {
                self.note(format!(
                    "migration {fence}: REMOVE of slot {} acknowledged",
                    m.slot
                ));
                if let Some(cur) = self.mover.moving.as_mut() {
                    cur.removed = true;
                    let add = *cur;
                    self.send_move(add);
                }
            } else {
                self.note(format!(
                    "migration {fence}: ADD of slot {} acknowledged: done",
                    m.slot
                ));
                self.mover.owner.insert(m.slot, m.to);
                self.mover.moving = None;
                self.stats.migrations += 1;
            }
        }
    }
}
