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
//!   was sent (the node's list is at least that long).

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::{ConfChangeV2, ConfState};
use raft_node::{Msg, NodeError};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::node::SimNode;
use super::sm::Out;

type WriteRx = oneshot::Receiver<Result<Vec<Out>, NodeError>>;
type ReadRx = oneshot::Receiver<Result<(), NodeError>>;
type ConfRx = oneshot::Receiver<Result<ConfState, NodeError>>;

enum Rx {
    Write {
        cmd: u64,
        rx: WriteRx,
    },
    Read {
        need: u64,
        rx: ReadRx,
    },
    /// An operator's membership change (its outcome is only noted).
    Conf {
        what: String,
        rx: ConfRx,
    },
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
    /// Command → (group, index) where some node applied it first.
    applied: BTreeMap<u64, (u64, u64)>,
    /// Per group: length of the list that every acknowledged write fits in.
    acked_len: BTreeMap<u64, u64>,
    /// Per group: the node last named as leader.
    pub leader_guess: BTreeMap<u64, u64>,
    pub stats: ClientStats,
}

/// The command a number stands for.
pub fn cmd_bytes(n: u64) -> Vec<u8> {
    format!("c{n}").into_bytes()
}

/// The number of a command.
pub fn cmd_number(c: &[u8]) -> Option<u64> {
    std::str::from_utf8(c).ok()?.strip_prefix('c')?.parse().ok()
}

impl Clients {
    /// The number the next proposal will get.
    pub fn next_cmd(&self) -> u64 {
        self.next_cmd
    }

    /// A new proposal to `group` at `node`: the message to deliver, and its command.
    pub fn propose(&mut self, node: u64, group: u64) -> (Msg<Out>, u64) {
        let cmd = self.next_cmd;
        self.next_cmd += 1;
        self.stats.proposals += 1;
        let (reply, rx) = oneshot::channel();
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Write { cmd, rx },
        });
        let m = Msg::Propose {
            cmds: vec![cmd_bytes(cmd)],
            reply,
        };
        (m, cmd)
    }

    /// A new read of `group` at `node`.
    pub fn read(&mut self, node: u64, group: u64) -> Msg<Out> {
        self.stats.reads += 1;
        let (reply, rx) = oneshot::channel();
        let need = self.acked_len.get(&group).copied().unwrap_or(0);
        self.calls.push(Call {
            node,
            group,
            rx: Rx::Read { need, rx },
        });
        Msg::Read { reply }
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

    /// A state machine applied command `cmd` at (`group`, `index`).
    pub fn applied(&mut self, cmd: u64, group: u64, index: u64) -> Result<(), String> {
        if self.refused.contains(&cmd) {
            return Err(format!(
                "c{cmd} was answered as certainly not applied, yet group {group} applied it at {index}"
            ));
        }
        match self.applied.get(&cmd) {
            Some(&at) if at != (group, index) => Err(format!(
                "c{cmd} applied twice: at (group, index) {at:?} and ({group}, {index})"
            )),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(cmd, (group, index));
                Ok(())
            }
        }
    }

    /// Polls the calls in flight at `node`, which is `sim` now (`None`: dead). Returns
    /// notes for the trace, or the violation.
    pub fn poll(&mut self, node: u64, sim: Option<&SimNode>) -> Result<Vec<String>, String> {
        let list = |g: u64| -> Option<&[Vec<u8>]> {
            let p = sim?.peers.get(&g)?;
            Some(&p.state_machine().state().items)
        };
        let mut notes = Vec::new();
        let mut keep = Vec::with_capacity(self.calls.len());
        let mut err = None;
        for mut c in std::mem::take(&mut self.calls) {
            if c.node != node || err.is_some() {
                keep.push(c);
                continue;
            }
            let done = match &mut c.rx {
                Rx::Write { cmd, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => false,
                    r => {
                        let cmd = *cmd;
                        match self.write_done(node, c.group, cmd, r, &list, &mut notes) {
                            Ok(()) => {}
                            Err(e) => err = Some(e),
                        }
                        true
                    }
                },
                Rx::Read { need, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => false,
                    Ok(Ok(())) => {
                        self.stats.reads_ok += 1;
                        let have = list(c.group).map_or(0, |l| l.len() as u64);
                        if have < *need {
                            err = Some(format!(
                                "stale read: n{node} served a read of group {} with {have} items, but {need} were acknowledged before it was sent",
                                c.group
                            ));
                        }
                        true
                    }
                    _ => true,
                },
                Rx::Conf { what, rx } => match rx.try_recv() {
                    Err(TryRecvError::Empty) => false,
                    Ok(Ok(cs)) => {
                        notes.push(format!(
                            "n{node} done {what}: voters {:?} learners {:?}",
                            cs.voters, cs.learners
                        ));
                        true
                    }
                    Ok(Err(e)) => {
                        notes.push(format!("n{node} failed {what}: {e}"));
                        true
                    }
                    Err(_) => true,
                },
            };
            if !done {
                keep.push(c);
            }
        }
        self.calls.extend(keep);
        match err {
            Some(e) => Err(e),
            None => Ok(notes),
        }
    }

    fn write_done<'a>(
        &mut self,
        node: u64,
        group: u64,
        cmd: u64,
        r: Result<Result<Vec<Out>, NodeError>, TryRecvError>,
        list: &dyn Fn(u64) -> Option<&'a [Vec<u8>]>,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        match r {
            Ok(Ok(outs)) => {
                let [out] = outs[..] else {
                    return Err(format!("c{cmd} got {} outputs for one command", outs.len()));
                };
                let at = list(group).and_then(|l| l.get(out.pos as usize));
                if at.map(|a| &a[..]) != Some(&cmd_bytes(cmd)[..]) {
                    return Err(format!(
                        "c{cmd} acknowledged at group {group} index {} position {}, but n{node}'s list has {:?} there",
                        out.index,
                        out.pos,
                        at.map(|a| String::from_utf8_lossy(a).into_owned())
                    ));
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
        if let Some(at) = self.applied.get(&cmd) {
            return Err(format!(
                "c{cmd} (group {group}) was answered as certainly not applied, yet it was applied at {at:?}"
            ));
        }
        self.refused.insert(cmd);
        Ok(())
    }
}
