//! The fresh group of the migration fault: now and then the fault creates a data group on
//! two or three of the running nodes (`RAFT.SHARDGROUP JOIN <gid> <ids>`, ids from
//! [`FIRST_GID`] up, a new one each time), favours it as the target of its moves for a
//! while (so the keys' slots are copied into a group on some nodes only and moved back
//! out), then makes it leave (`RAFT.SHARDGROUP LEAVE`: its slots move back to the other
//! groups and it is removed everywhere), all while the nemesis kills, pauses, cuts and
//! changes the membership.
//!
//! Admin requests fail during faults; each is judged from the layout (`QUERY`) rather
//! than from its reply: a group the layout shows is joined, whatever the JOIN's reply
//! said; a leaving group the layout no longer shows has left. A JOIN or LEAVE that may
//! not have been recorded is sent again (a repeat is refused harmlessly: `already
//! exists`, `leaving already`).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::migrate::{Layout, MigrationLog};

/// The first id of a fresh group; a layout group with an id at least this is one.
pub const FIRST_GID: u64 = 100;

/// Where the fresh group is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No fresh group.
    Idle,
    /// JOIN sent `asked` times (with these node ids); not yet in the layout.
    Joining {
        gid: u64,
        nodes: Vec<u64>,
        asked: u32,
    },
    /// In the layout; LEAVE once `moves_in` reached `want`.
    Joined {
        gid: u64,
        moves_in: usize,
        want: usize,
    },
    /// LEAVE sent (`recorded`: an integer reply, or `leaving already`).
    Leaving { gid: u64, recorded: bool },
}

/// The fresh-group state of one schedule.
#[derive(Debug)]
pub struct Fresh {
    phase: Phase,
    next_gid: u64,
    /// Fresh groups seen gone after their LEAVE (a lagging node may still list one).
    gone: Vec<u64>,
}

impl Default for Fresh {
    fn default() -> Self {
        Fresh {
            phase: Phase::Idle,
            next_gid: FIRST_GID,
            gone: Vec::new(),
        }
    }
}

/// How many JOINs of one group are sent before the fault gives it up.
const JOIN_TRIES: u32 = 4;

impl Fresh {
    /// The group new moves should favour: the joined fresh group.
    pub fn prefer(&self) -> Option<u64> {
        match self.phase {
            Phase::Joined { gid, .. } => Some(gid),
            _ => None,
        }
    }

    /// The group no move may go to: the leaving one.
    pub fn avoid(&self) -> Option<u64> {
        match self.phase {
            Phase::Leaving { gid, .. } => Some(gid),
            _ => None,
        }
    }

    /// Follows `layout`, then gives the JOIN or LEAVE to send now, if any. `nodes` are
    /// the ids of the running nodes.
    pub fn step(
        &mut self,
        rng: &mut ChaCha8Rng,
        layout: &Layout,
        nodes: &[u64],
        log: &mut MigrationLog,
    ) -> Option<Vec<String>> {
        let has = |g: u64| layout.groups.iter().any(|(id, _)| *id == g);
        let fresh_in_layout = layout
            .groups
            .iter()
            .map(|(g, _)| *g)
            .filter(|g| *g >= FIRST_GID && !self.gone.contains(g))
            .max();
        if let Some(g) = fresh_in_layout {
            self.next_gid = self.next_gid.max(g + 1);
        }
        let roll: u32 = rng.gen_range(0..100);
        match self.phase.clone() {
            Phase::Idle => self.step_idle(rng, fresh_in_layout, roll, nodes, log),
            Phase::Joining { gid, nodes, asked } => {
                if has(gid) {
                    log.joins += 1;
                    self.phase = Phase::Joined {
                        gid,
                        moves_in: 0,
                        want: rng.gen_range(1..=3),
                    };
                    return None;
                }
                if asked >= JOIN_TRIES {
                    self.phase = Phase::Idle;
                    return None;
                }
                self.phase = Phase::Joining {
                    gid,
                    nodes: nodes.clone(),
                    asked: asked + 1,
                };
                Some(join_argv(gid, &nodes))
            }
            Phase::Joined {
                gid,
                moves_in,
                want,
            } => {
                if moves_in < want || roll >= 50 {
                    return None;
                }
                self.phase = Phase::Leaving {
                    gid,
                    recorded: false,
                };
                log.leaves_asked += 1;
                Some(leave_argv(gid))
            }
            Phase::Leaving { gid, recorded } => {
                if !has(gid) {
                    log.left += 1;
                    self.gone.push(gid);
                    self.phase = Phase::Idle;
                    return None;
                }
                (!recorded && roll < 40).then(|| {
                    log.leaves_asked += 1;
                    leave_argv(gid)
                })
            }
        }
    }

    /// With no fresh group: adopts one the layout shows (a JOIN given up on was recorded
    /// after all, or a LEAVE is pending: it is made to leave), or, one time in four, sends
    /// a JOIN of a new one on 2 or 3 of `nodes`.
    fn step_idle(
        &mut self,
        rng: &mut ChaCha8Rng,
        in_layout: Option<u64>,
        roll: u32,
        nodes: &[u64],
        log: &mut MigrationLog,
    ) -> Option<Vec<String>> {
        if let Some(gid) = in_layout {
            self.phase = Phase::Leaving {
                gid,
                recorded: false,
            };
            return None;
        }
        if roll >= 25 || nodes.len() < 2 {
            return None;
        }
        let n = rng.gen_range(2..=3usize).min(nodes.len());
        let mut picked: Vec<u64> = nodes.choose_multiple(rng, n).copied().collect();
        picked.sort_unstable();
        let gid = self.next_gid;
        self.next_gid += 1;
        self.phase = Phase::Joining {
            gid,
            nodes: picked.clone(),
            asked: 1,
        };
        log.joins_asked += 1;
        Some(join_argv(gid, &picked))
    }

    /// Takes the reply to a request (`argv`): a JOIN or LEAVE of [`Fresh::step`], or a
    /// MOVE.
    pub fn answered(
        &mut self,
        argv: &[String],
        reply: &Result<redis::Value, String>,
        log: &mut MigrationLog,
    ) {
        let verb = argv.get(1).map(String::as_str);
        let gid: Option<u64> = argv.get(2).and_then(|g| g.parse().ok());
        match (&mut self.phase, verb, reply) {
            (Phase::Joining { .. }, Some("JOIN"), Err(e)) if e.contains("unknown node") => {
                // A node not (yet) in the metadata: pick others next time.
                self.phase = Phase::Idle;
            }
            (
                Phase::Joined {
                    gid: g, moves_in, ..
                },
                Some("MOVE"),
                Ok(redis::Value::Int(n)),
            ) if gid == Some(*g) && *n > 0 => {
                *moves_in += 1;
                log.moves_fresh += 1;
            }
            (Phase::Leaving { recorded, .. }, Some("LEAVE"), Ok(redis::Value::Int(_))) => {
                *recorded = true;
                log.leaves += 1;
            }
            (Phase::Leaving { recorded, .. }, Some("LEAVE"), Err(e))
                if e.contains("leaving already") =>
            {
                *recorded = true;
                log.leaves += 1;
            }
            _ => {}
        }
    }
}

fn join_argv(gid: u64, nodes: &[u64]) -> Vec<String> {
    let mut argv = vec!["RAFT.SHARDGROUP".into(), "JOIN".into(), gid.to_string()];
    argv.extend(nodes.iter().map(u64::to_string));
    argv
}

fn leave_argv(gid: u64) -> Vec<String> {
    vec!["RAFT.SHARDGROUP".into(), "LEAVE".into(), gid.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn layout(groups: &[u64]) -> Layout {
        Layout {
            epoch: 1,
            groups: groups.iter().map(|&g| (g, Vec::new())).collect(),
            pending: 0,
        }
    }

    #[test]
    fn a_fresh_group_joins_takes_moves_and_leaves() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut log = MigrationLog::default();
        let mut f = Fresh::default();
        let argv = loop {
            if let Some(a) = f.step(&mut rng, &layout(&[1, 2, 3]), &[1, 2, 3, 4], &mut log) {
                break a;
            }
        };
        assert_eq!(&argv[..3], ["RAFT.SHARDGROUP", "JOIN", "100"]);
        assert!((2..=3).contains(&(argv.len() - 3)), "{argv:?}");
        let joined = layout(&[1, 2, 3, 100]);
        assert_eq!(f.step(&mut rng, &joined, &[1, 2, 3], &mut log), None);
        assert_eq!((f.prefer(), log.joins), (Some(100), 1));
        let mv = |g: &str| vec!["RAFT.SHARDGROUP".into(), "MOVE".into(), g.to_string()];
        for _ in 0..5 {
            f.answered(&mv("100"), &Ok(redis::Value::Int(1)), &mut log);
            f.answered(&mv("2"), &Ok(redis::Value::Int(1)), &mut log);
        }
        let leave = loop {
            if let Some(a) = f.step(&mut rng, &joined, &[1, 2, 3], &mut log) {
                break a;
            }
        };
        assert_eq!(leave, ["RAFT.SHARDGROUP", "LEAVE", "100"]);
        assert_eq!((f.prefer(), f.avoid()), (None, Some(100)));
        f.answered(
            &leave,
            &Err("ERR group 100 is leaving already".into()),
            &mut log,
        );
        assert_eq!((log.moves_fresh, log.leaves), (5, 1));
        for _ in 0..20 {
            assert_eq!(f.step(&mut rng, &joined, &[1, 2, 3], &mut log), None);
        }
        assert_eq!(f.step(&mut rng, &layout(&[1, 2, 3]), &[1], &mut log), None);
        assert_eq!((log.left, f.avoid()), (1, None));
        // The next one gets a new id.
        let again = loop {
            if let Some(a) = f.step(&mut rng, &layout(&[1, 2, 3]), &[1, 2], &mut log) {
                break a;
            }
        };
        assert_eq!(again, ["RAFT.SHARDGROUP", "JOIN", "101", "1", "2"]);
    }

    #[test]
    fn an_unanswered_join_is_asked_again_then_given_up_and_adopted_if_recorded() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut log = MigrationLog::default();
        let mut f = Fresh::default();
        let base = layout(&[1, 2, 3]);
        let first = loop {
            if let Some(a) = f.step(&mut rng, &base, &[1, 2, 3], &mut log) {
                break a;
            }
        };
        for _ in 1..JOIN_TRIES {
            assert_eq!(
                f.step(&mut rng, &base, &[1, 2, 3], &mut log),
                Some(first.clone())
            );
        }
        assert_eq!(f.step(&mut rng, &base, &[1, 2, 3], &mut log), None);
        assert_eq!(f.prefer(), None);
        // It shows up later: it is made to leave.
        assert_eq!(
            f.step(&mut rng, &layout(&[1, 2, 3, 100]), &[1], &mut log),
            None
        );
        assert_eq!(f.avoid(), Some(100));
    }
}
