//! The simulated clients: proposals and linearizable reads sent to the peers' real
//! request paths (`Msg::Propose`, `Msg::Read`, whose replies come on tokio oneshot
//! channels, polled with `try_recv` after every round of the node), and what their
//! outcomes must satisfy:
//!
//! - a proposal answered `Ok` was applied: its command is in the answering node's list at
//!   the position it was told, and (at the end) in every member's;
//! - a proposal answered `NotLeader`, `Dropped` or `Refused` ("certainly not applied")
//!   is never applied anywhere; `Unknown`, `Stopped` and a dead node may go either way;
//! - no command is applied at two different indexes;
//! - a read answered `Ok` on a node finds there every write acknowledged before the read
//!   was sent (the node's list is at least that long);
//! - a write refused by the state machine (its slot is not the group's) is certainly not
//!   applied: in no list, and refused the same way by every replica.
//!
//! Writes and reads carry a slot (`sim/slots.rs`): a read answered `Ok` is served if the
//! answering node's state owns the slot then, else refused (the real store's
//! `-TRYAGAIN`). Every serve — a write acknowledged, a read served — is queued in
//! [`Clients::serves`] for the slot invariant (`sim/check.rs`). The migrations' REMOVE and
//! ADD go through the same request path; their outcomes are queued in
//! [`Clients::moves`].

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::{ConfChangeV2, ConfState};
use raft_node::{Msg, NodeError};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::node::SimNode;
use super::slots::Cmd;
use super::sm::{ListState, Out};

type WriteRx = oneshot::Receiver<Result<Vec<Out>, NodeError>>;
type ReadRx = oneshot::Receiver<Result<(), NodeError>>;
type ConfRx = oneshot::Receiver<Result<ConfState, NodeError>>;

enum Rx {
    Write {
        cmd: u64,
        slot: Option<u16>,
        rx: WriteRx,
    },
    Read {
        need: u64,
        slot: Option<u16>,
        /// The step it was sent at.
        sent: u64,
        rx: ReadRx,
    },
    /// A migration's REMOVE or ADD (of migration `fence`).
    Move { fence: u64, add: bool, rx: WriteRx },
    /// An operator's membership change (its outcome is only noted).
    Conf { what: String, rx: ConfRx },
}

struct Call {
    node: u64,
    group: u64,
    rx: Rx,
}

/// Counters of the clients.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientStats {
    pub proposals: u64,
    pub acked: u64,
    pub refused: u64,
    pub unknown: u64,
    pub reads: u64,
    pub reads_ok: u64,
    /// Writes refused by the state machine (foreign slot).
    pub slot_refused: u64,
    /// Reads answered but refused (foreign slot at the read's point).
    pub reads_refused: u64,
}

/// When a serve happened: the step of the entry's first apply in its group, or of the read
/// (the later of its sending and of the first apply of the state it read).
#[derive(Debug, Clone, Copy)]
pub enum ServeAt {
    Write { index: u64 },
    Read { sent: u64, applied: u64 },
}

/// One acknowledged serve of a slot by a group: for the slot invariant.
#[derive(Debug, Clone, Copy)]
pub struct Serve {
    pub slot: u16,
    pub group: u64,
    pub node: u64,
    /// The fence the serving state machine got the slot at.
    pub fence: u64,
    pub at: ServeAt,
}

/// Every client call in flight, and what was learnt from the answered ones.
#[derive(Default)]
pub struct Clients {
    calls: Vec<Call>,
    next_cmd: u64,
    /// Command → (group, index, position) of each acknowledged proposal.
    pub acked: BTreeMap<u64, (u64, u64, u64)>,
    /// Commands that were certainly not applied.
    refused: BTreeSet<u64>,
    /// Command → (group, index, served) where some node applied it first (served false:
    /// applied as a refusal).
    applied: BTreeMap<u64, (u64, u64, bool)>,
    /// Per group: length of the list that every acknowledged write fits in.
    acked_len: BTreeMap<u64, u64>,
    /// Per group: the node last named as leader.
    pub leader_guess: BTreeMap<u64, u64>,
    pub stats: ClientStats,
    /// Serves not yet handed to the checker.
    pub serves: Vec<Serve>,
    /// Outcomes of migration commands not yet handed to the migration: (fence, ADD,
    /// applied).
    pub moves: Vec<(u64, bool, bool)>,
}

/// The number of a client write.
pub fn cmd_number(c: &[u8]) -> Option<u64> {
    match Cmd::decode(c)? {
        Cmd::Write { n, .. } => Some(n),
        _ => None,
    }
}

impl Clients {
    /// The number the next proposal will get.
    pub fn next_cmd(&self) -> u64 {
        self.next_cmd
    }

    /// A new proposal of a write of `slot` to `group` at `node`: the message to deliver,
    /// and its command.
    pub fn propose(&mut self, node: u64, group: u64, slot: Option<u16>) -> (Msg<Out>, u64) {
        let cmd = self.next_cmd;
        self.next_cmd += 1;
        self.stats.proposals += 1;
        let (reply, rx) = oneshot::channel();
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Write { cmd, slot, rx },
        });
        let m = Msg::Propose {
            cmds: vec![Cmd::Write { n: cmd, slot }.encode()],
            reply,
        };
        (m, cmd)
    }

    /// A new read of `slot` of `group` at `node`, sent at step `sent`.
    pub fn read(&mut self, node: u64, group: u64, slot: Option<u16>, sent: u64) -> Msg<Out> {
        self.stats.reads += 1;
        let (reply, rx) = oneshot::channel();
        let need = self.acked_len.get(&group).copied().unwrap_or(0);
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Read {
                need,
                slot,
                sent,
                rx,
            },
        });
        Msg::Read { reply }
    }

    /// A migration's command `cmd` (of migration `fence`; an ADD when `add`) to `group`
    /// at `node`.
    pub fn slot_command(
        &mut self,
        node: u64,
        group: u64,
        fence: u64,
        add: bool,
        cmd: Cmd,
    ) -> Msg<Out> {
        let (reply, rx) = oneshot::channel();
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Move { fence, add, rx },
        });
        Msg::Propose {
            cmds: vec![cmd.encode()],
            reply,
        }
    }

    /// An operator's membership change `cc` of `group` at `node`.
    pub fn conf(&mut self, node: u64, group: u64, what: String, cc: ConfChangeV2) -> Msg<Out> {
        let (reply, rx) = oneshot::channel();
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Conf { what, rx },
        });
        Msg::ConfChange { cc, reply }
    }

    /// A state machine applied command `cmd` at (`group`, `index`), as a refusal when not
    /// `served`.
    pub fn applied(
        &mut self,
        cmd: u64,
        group: u64,
        index: u64,
        served: bool,
    ) -> Result<(), String> {
        if served && self.refused.contains(&cmd) {
            return Err(format!(
                "c{cmd} was answered as certainly not applied, yet group {group} applied it at {index}"
            ));
        }
        match self.applied.get(&cmd) {
            Some(&(g, i, _)) if (g, i) != (group, index) => Err(format!(
                "c{cmd} applied twice: at (group, index) {:?} and ({group}, {index})",
                (g, i)
            )),
            Some(&(_, _, s)) if s != served => Err(format!(
                "c{cmd} at ({group}, {index}) applied on one node and refused on another"
            )),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(cmd, (group, index, served));
                Ok(())
            }
        }
    }

    /// Polls the calls in flight at `node`, which is `sim` now (`None`: dead). Returns
    /// notes for the trace, or the violation.
    pub fn poll(&mut self, node: u64, sim: Option<&SimNode>) -> Result<Vec<String>, String> {
        let state = |g: u64| -> Option<&ListState> {
            let p = sim?.peers.get(&g)?;
            Some(p.state_machine().state())
        };
        let mut notes = Vec::new();
        let mut keep = Vec::with_capacity(self.calls.len());
        let mut err = None;
        for mut c in std::mem::take(&mut self.calls) {
            if c.node != node || err.is_some() {
                keep.push(c);
                continue;
            }
            let g = c.group;
            let r = match &mut c.rx {
                Rx::Write { cmd, slot, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => None,
                    r => Some(self.write_done(node, g, (*cmd, *slot), r, &state, &mut notes)),
                },
                Rx::Read {
                    need,
                    slot,
                    sent,
                    rx,
                } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => None,
                    Ok(Ok(())) => Some(self.read_done(node, g, (*need, *slot, *sent), &state)),
                    _ => Some(Ok(())),
                },
                Rx::Move { fence, add, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => None,
                    r => {
                        let ok = matches!(r, Ok(Ok(ref outs)) if outs.iter().all(|o| o.served));
                        self.moves.push((*fence, *add, ok));
                        Some(Ok(()))
                    }
                },
                Rx::Conf { what, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => None,
                    Ok(Ok(cs)) => {
                        notes.push(format!(
                            "n{node} done {what}: voters {:?} learners {:?}",
                            cs.voters, cs.learners
                        ));
                        Some(Ok(()))
                    }
                    Ok(Err(e)) => {
                        notes.push(format!("n{node} failed {what}: {e}"));
                        Some(Ok(()))
                    }
                    Err(_) => Some(Ok(())),
                },
            };
            match r {
                None => keep.push(c),
                Some(Ok(())) => {}
                Some(Err(e)) => err = Some(e),
            }
        }
        self.calls.extend(keep);
        match err {
            Some(e) => Err(e),
            None => Ok(notes),
        }
    }

    /// A read of (`need` items, `slot`, sent at step `sent`) of `group` was answered `Ok`
    /// at `node`: the node's state now is what it reads.
    fn read_done<'a>(
        &mut self,
        node: u64,
        group: u64,
        (need, slot, sent): (u64, Option<u16>, u64),
        state: &dyn Fn(u64) -> Option<&'a ListState>,
    ) -> Result<(), String> {
        self.stats.reads_ok += 1;
        let st = state(group);
        let have = st.map_or(0, |s| s.items.len() as u64);
        if have < need {
            return Err(format!(
                "stale read: n{node} served a read of group {group} with {have} items, but {need} were acknowledged before it was sent"
            ));
        }
        let (Some(slot), Some(st)) = (slot, st) else {
            return Ok(());
        };
        match st.owned.get(&slot) {
            Some(&fence) => self.serves.push(Serve {
                slot,
                group,
                node,
                fence,
                at: ServeAt::Read {
                    sent,
                    applied: st.applied,
                },
            }),
            None => self.stats.reads_refused += 1,
        }
        Ok(())
    }

    fn write_done<'a>(
        &mut self,
        node: u64,
        group: u64,
        (cmd, slot): (u64, Option<u16>),
        r: Result<Result<Vec<Out>, NodeError>, TryRecvError>,
        state: &dyn Fn(u64) -> Option<&'a ListState>,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        match r {
            Ok(Ok(outs)) => {
                let [out] = outs[..] else {
                    return Err(format!("c{cmd} got {} outputs for one command", outs.len()));
                };
                if !out.served {
                    notes.push(format!(
                        "n{node} refuses c{cmd}: slot {slot:?} is not group {group}'s"
                    ));
                    self.stats.slot_refused += 1;
                    return self.certainly_not(cmd, group);
                }
                let at = state(group).and_then(|s| s.items.get(out.pos as usize));
                if at.map(|a| &a[..]) != Some(&Cmd::Write { n: cmd, slot }.encode()[..]) {
                    return Err(format!(
                        "c{cmd} acknowledged at group {group} index {} position {}, but n{node}'s list has {:?} there",
                        out.index,
                        out.pos,
                        at.map(|a| String::from_utf8_lossy(a).into_owned())
                    ));
                }
                if let Some(slot) = slot {
                    let (fence, at) = (out.fence, ServeAt::Write { index: out.index });
                    self.serves.push(Serve {
                        slot,
                        group,
                        node,
                        fence,
                        at,
                    });
                }
                self.acked.insert(cmd, (group, out.index, out.pos));
                let len = self.acked_len.entry(group).or_default();
                *len = (*len).max(out.pos + 1);
                self.stats.acked += 1;
                self.leader_guess.insert(group, node);
                notes.push(format!("n{node} acks c{cmd} at {}/{}", group, out.index));
            }
            Ok(Err(NodeError::NotLeader(hint))) => {
                if let Some(h) = hint {
                    self.leader_guess.insert(group, h);
                }
                self.certainly_not(cmd, group)?;
            }
            Ok(Err(NodeError::Dropped)) | Ok(Err(NodeError::Refused(_))) => {
                notes.push(format!("n{node} refuses c{cmd}"));
                self.certainly_not(cmd, group)?;
            }
            Ok(Err(NodeError::Unknown(_))) | Ok(Err(NodeError::Stopped)) | Err(_) => {
                self.stats.unknown += 1;
            }
        }
        Ok(())
    }

    fn certainly_not(&mut self, cmd: u64, group: u64) -> Result<(), String> {
        self.stats.refused += 1;
        if let Some(&(g, i, true)) = self.applied.get(&cmd) {
            return Err(format!(
                "c{cmd} (group {group}) was answered as certainly not applied, yet it was applied at {:?}",
                (g, i)
            ));
        }
        self.refused.insert(cmd);
        Ok(())
    }
}
