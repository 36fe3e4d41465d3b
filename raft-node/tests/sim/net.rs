//! The simulated network and transport: every raft message may be lost, delayed (and so
//! reordered) or duplicated, and is dropped at delivery time when its link is cut or its
//! receiver is down; a sender whose message met a cut link may hear `Unreachable`. A
//! `MsgSnapshot` carries only the snapshot's descriptor, as in production: at delivery the
//! snapshot's files are copied from the sender's snapshot directory into the receiver's
//! (as the transport's snapshot stream does), and the sender's peer is told the outcome
//! (`Msg::SnapshotStatus`).

use raft::eraftpb::{Message, MessageType};
use raft_node::{group_snap_dir, snap, Msg};
use rand::Rng;

use super::disk::copy_snapshot;
use super::node::GroupMsg;
use super::world::{Ev, Sim};

/// A one-line summary of a raft message for the trace.
pub fn msg_summary(m: &Message) -> String {
    let t = format!("{:?}", m.get_msg_type());
    let t = t.trim_start_matches("Msg");
    match m.get_msg_type() {
        MessageType::MsgAppend => format!(
            "{t} term {} prev {}/{} ents {} commit {}",
            m.term,
            m.index,
            m.log_term,
            m.entries.len(),
            m.commit
        ),
        MessageType::MsgAppendResponse => format!(
            "{t} term {} index {} reject {} hint {}",
            m.term, m.index, m.reject, m.reject_hint
        ),
        MessageType::MsgSnapshot => format!(
            "{t} term {} snap {}/{}",
            m.term,
            m.get_snapshot().get_metadata().index,
            m.get_snapshot().get_metadata().term
        ),
        MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
            format!("{t} term {} last {}/{}", m.term, m.index, m.log_term)
        }
        MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse => {
            format!("{t} term {} reject {}", m.term, m.reject)
        }
        _ => format!("{t} term {} commit {}", m.term, m.commit),
    }
}

impl Sim {
    /// Puts messages on the network: each may be lost, delayed, duplicated.
    pub fn send(&mut self, from: u64, mut msgs: Vec<GroupMsg>) {
        // raft-rs may emit broadcasts in hash order; fix one order per destination.
        msgs.sort_by_key(|(g, m)| (m.to, *g));
        if let Some(s) = self.scale.as_mut() {
            s.traffic.sent(from, &msgs);
        }
        for (g, m) in msgs {
            self.stats.messages += 1;
            let to = m.to;
            if to == from || to == 0 || to > self.slots.len() as u64 {
                continue;
            }
            let copies = if self.rng.gen_bool(self.p.dup) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if self.rng.gen_bool(self.p.drop) {
                    self.stats.dropped += 1;
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        self.snapshot_status(from, g, to, false);
                    }
                    continue;
                }
                let delay = if self.rng.gen_bool(self.p.long_delay) {
                    self.rng.gen_range(0..=2000)
                } else {
                    self.rng.gen_range(0..=self.p.max_delay)
                };
                self.schedule(
                    delay,
                    Ev::Deliver {
                        from,
                        to,
                        group: g,
                        msg: Box::new(m.clone()),
                    },
                );
            }
        }
    }

    /// A message arrives at node `to` (or is dropped there).
    pub fn deliver(&mut self, from: u64, to: u64, g: u64, msg: Message) {
        let is_snap = msg.get_msg_type() == MessageType::MsgSnapshot;
        let blocked = self.blocked.contains(&(from, to));
        if blocked || self.slot(to).node.is_none() {
            self.stats.dropped += 1;
            if is_snap {
                self.snapshot_status(from, g, to, false);
            } else if blocked && self.rng.gen_bool(0.3) {
                // The transport's connection attempt failed.
                self.local(from, g, Msg::Unreachable(to));
            }
            return;
        }
        // A snapshot streams from the sender's files: the stream breaks when it is down.
        let sender_up = self.slot(from).node.is_some();
        if is_snap && !(sender_up && self.fetch_snapshot(from, to, g, &msg)) {
            self.stats.dropped += 1;
            self.snapshot_status(from, g, to, false);
            return;
        }
        self.note(format!("n{from}->n{to} g{g} {}", msg_summary(&msg)));
        self.post(to, g, Msg::Raft(Box::new(msg)));
        if is_snap {
            self.stats.snapshots_sent += 1;
            // The transport reports a delivered snapshot as finished.
            self.snapshot_status(from, g, to, true);
        }
    }

    /// The snapshot stream: copies the files of `m`'s snapshot from the sender's
    /// directory of group `g` into the receiver's. False when the sender no longer has
    /// them (it pruned the snapshot since).
    fn fetch_snapshot(&mut self, from: u64, to: u64, g: u64, m: &Message) -> bool {
        let meta = m.get_snapshot().get_metadata();
        let name = snap::done_name(meta.term, meta.index);
        let src = group_snap_dir(&self.slot(from).disk.snap_root(), g);
        let dst = group_snap_dir(&self.slot(to).disk.snap_root(), g);
        if std::fs::create_dir_all(&dst).is_err() {
            return false;
        }
        copy_snapshot(&src, &dst, &name, from)
    }

    /// The sender's transport reports how sending a snapshot ended.
    fn snapshot_status(&mut self, leader: u64, g: u64, to: u64, ok: bool) {
        self.local(leader, g, Msg::SnapshotStatus { to, ok });
    }

    /// A report of node `id`'s own transport reaches its driver a little later.
    fn local(&mut self, id: u64, group: u64, msg: Msg<super::sm::Out>) {
        let inc = self.slot(id).inc;
        let d = self.rng.gen_range(0..=self.p.max_delay);
        self.schedule(
            d,
            Ev::Local {
                id,
                inc,
                group,
                msg,
            },
        );
    }
}
