//! What happens to the simulated cluster from outside: faults (partitions and heals,
//! crashes and power losses, forced compactions, membership changes, leadership
//! transfers) and the clients' proposals and reads — all through the peers' real request
//! paths (`Msg::ConfChange`, `Msg::TransferLeader`, `Msg::Snapshot`, `Msg::Propose`,
//! `Msg::Read` into the node's inbox).

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use raft_node::proto::PeerAddr;
use raft_node::Msg;
use rand::seq::SliceRandom;
use rand::Rng;

use super::node::addr;
use super::report::Failure;
use super::world::{Ev, Sim, MAX_NODES};

/// A one-step membership change of node `id`, with its address as the context.
fn conf_change(t: ConfChangeType, id: u64) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    let mut ch = ConfChangeSingle::default();
    ch.set_change_type(t);
    ch.node_id = id;
    cc.mut_changes().push(ch);
    let pa = PeerAddr {
        id,
        addr: addr(id),
        ..Default::default()
    };
    cc.context = pa.write_to_bytes().expect("encode PeerAddr").into();
    cc
}

impl Sim {
    fn random_group(&mut self) -> u64 {
        *self.p.groups.choose(&mut self.rng).expect("groups")
    }

    /// A client proposal to `to` (node, group), or to a node it guesses leads a random
    /// group; returns the target (a burst goes on at the same one).
    pub fn propose(&mut self, to: Option<(u64, u64)>) -> Option<(u64, u64)> {
        let live = self.live();
        let (id, g) = match to {
            Some(t) => t,
            None => {
                // Bursts go mostly to the first group, so that its log outgrows the
                // storage's entry cache.
                let g = if self.p.burst > 1 && self.rng.gen_bool(0.8) {
                    self.p.groups[0]
                } else {
                    self.random_group()
                };
                let guess = self.clients.leader_guess.get(&g).copied();
                match guess {
                    Some(l) if live.contains(&l) && self.rng.gen_bool(0.7) => (l, g),
                    _ => (*live.choose(&mut self.rng)?, g),
                }
            }
        };
        let slot = self.pick_slot(g);
        let (m, cmd) = self.clients.propose(id, g, slot);
        match slot {
            Some(s) => self.note(format!(
                "client proposes c{cmd} of slot {s} to n{id} group {g}"
            )),
            None => self.note(format!("client proposes c{cmd} to n{id} group {g}")),
        }
        self.post(id, g, m);
        Some((id, g))
    }

    /// A client read at a random node of a random group.
    pub fn read(&mut self) {
        let g = self.random_group();
        let live = self.live();
        if let Some(&id) = live.choose(&mut self.rng) {
            let slot = self.pick_slot(g);
            let m = self.clients.read(id, g, slot, self.stats.steps);
            self.post(id, g, m);
        }
    }

    /// Proposes adding a node (new, or one not in the group) as learner of a random group,
    /// or removing a member, at the group's leader.
    fn change_membership(&mut self) -> Result<(), Failure> {
        let g = self.random_group();
        let Ok((lid, members)) = self.members(g) else {
            return Ok(());
        };
        let voters = self.node(lid).expect("leader").peers[&g]
            .raw()
            .raft
            .prs()
            .conf()
            .to_conf_state()
            .voters;
        if self.rng.gen_bool(0.5) {
            let others: Vec<u64> = (1..=self.slots.len() as u64)
                .filter(|id| {
                    !members.contains(id)
                        && !self.removed.contains(&(*id, g))
                        && !self.slots[(*id - 1) as usize].retired
                })
                .collect();
            let id = match others.choose(&mut self.rng) {
                Some(&id) if self.rng.gen_bool(0.5) || self.slots.len() >= MAX_NODES => id,
                _ if self.slots.len() < MAX_NODES => {
                    let id = self.new_slot(false);
                    self.start_node(id)?;
                    id
                }
                _ => return Ok(()),
            };
            self.stats.added += 1;
            let what = format!("adding learner n{id} to group {g}");
            let m = self.clients.conf(
                lid,
                g,
                what,
                conf_change(ConfChangeType::AddLearnerNode, id),
            );
            self.note(format!(
                "n{lid} is asked: adding learner n{id} to group {g}"
            ));
            self.post(lid, g, m);
        } else if voters.len() > 3 {
            let victim = *members.choose(&mut self.rng).expect("members");
            let what = format!("removing n{victim} from group {g}");
            self.note(format!("n{lid} is asked: {what}"));
            let m = self.clients.conf(
                lid,
                g,
                what,
                conf_change(ConfChangeType::RemoveNode, victim),
            );
            self.post(lid, g, m);
        }
        Ok(())
    }

    /// Cuts links: one node isolated (often a leader), a random split, or one-way links.
    fn partition(&mut self, ids: &[u64], k: u32) {
        match k {
            0..=14 => {
                let g = self.random_group();
                let victim = match self.leader(g) {
                    Some(l) if self.rng.gen_bool(0.6) => l,
                    _ => *ids.choose(&mut self.rng).expect("ids"),
                };
                for &o in ids {
                    if o != victim {
                        self.blocked.insert((victim, o));
                        self.blocked.insert((o, victim));
                    }
                }
                self.note(format!("partition: n{victim} isolated"));
            }
            15..=29 => {
                let mut shuffled = ids.to_vec();
                shuffled.shuffle(&mut self.rng);
                let cut = self.rng.gen_range(1..shuffled.len());
                let (a, b) = shuffled.split_at(cut);
                for &x in a {
                    for &y in b {
                        self.blocked.insert((x, y));
                        self.blocked.insert((y, x));
                    }
                }
                self.note(format!("partition: {a:?} | {b:?}"));
            }
            _ => {
                let n = self.rng.gen_range(1..=3);
                let mut links = Vec::new();
                for _ in 0..n {
                    let x = *ids.choose(&mut self.rng).expect("ids");
                    let y = *ids.choose(&mut self.rng).expect("ids");
                    if x != y {
                        self.blocked.insert((x, y));
                        links.push((x, y));
                    }
                }
                self.note(format!("partition: one-way links cut {links:?}"));
            }
        }
        self.stats.partitions += 1;
    }

    /// One random fault.
    pub fn fault(&mut self) -> Result<(), Failure> {
        let ids = self.live();
        if ids.is_empty() {
            return Ok(());
        }
        let k = self.rng.gen_range(0..100);
        match k {
            0..=41 if ids.len() >= 2 => self.partition(&ids, k),
            42..=61 => {
                if !self.blocked.is_empty() {
                    self.blocked.clear();
                    self.note("partition healed".into());
                }
            }
            62..=69 if self.p.membership => self.change_membership()?,
            80..=84 => {
                // An operator moves leadership of a group to a random voter.
                let g = self.random_group();
                if let Ok((lid, _)) = self.members(g) {
                    let voters = self.node(lid).expect("leader").peers[&g]
                        .raw()
                        .raft
                        .prs()
                        .conf()
                        .to_conf_state()
                        .voters;
                    let to = *voters.choose(&mut self.rng).expect("voters");
                    if to != lid {
                        self.stats.transfers += 1;
                        self.note(format!("n{lid} is asked to transfer group {g} to n{to}"));
                        self.post(lid, g, Msg::TransferLeader(to));
                    }
                }
            }
            62..=79 => {
                let id = *ids.choose(&mut self.rng).expect("ids");
                let power_loss = self.rng.gen_bool(self.p.power_loss);
                self.crash(id, "fault", power_loss);
                let d = self.rng.gen_range(100..5000);
                self.schedule(d, Ev::Restart { id });
            }
            _ => {
                // An operator asks a random node for a snapshot of a random group.
                let id = *ids.choose(&mut self.rng).expect("ids");
                let g = self.random_group();
                let (reply, _rx) = tokio::sync::oneshot::channel();
                self.note(format!("n{id} is asked for a snapshot of group {g}"));
                self.post(id, g, Msg::Snapshot { reply });
            }
        }
        Ok(())
    }
}
