//! Running the simulated nodes: starting and crashing them, one driver round
//! ([`SimNode::round`]) and carrying out what it produced — messages onto the network, the
//! round's job to the node's log sync thread (one fsync at a time, taking every job queued
//! meanwhile, modelled by [`Ev::SyncEnd`]), snapshot files to their thread, removal
//! notices, members that left — and the checks after each round.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use rand::Rng;

use super::client::cmd_number;
use super::disk::WalSizes;
use super::log::logger;
use super::node::{NodeSpec, RoundOut, SimNode, SyncJob, TICK_MS};
use super::report::Failure;
use super::sm::{CrashPoint, SmEvent};
use super::world::{Ev, Sim};

impl Sim {
    pub fn start_node(&mut self, id: u64) -> Result<(), Failure> {
        let seed = self.rng.gen::<u64>();
        let slot = &self.slots[(id - 1) as usize];
        let voters = if slot.founding {
            self.founders.clone()
        } else {
            Vec::new()
        };
        let spec = NodeSpec {
            id,
            groups: slot
                .groups
                .iter()
                .map(|g| (*g, self.placement.get(g).unwrap_or(&voters).clone()))
                .collect(),
            founders: self.founders.clone(),
            snapshot_entries: self.p.snapshot_every,
            seed,
            all_groups: self.p.groups.clone(),
            slot_model: self.mover.model,
            mutant: self.mutant,
        };
        let (logger, clock) = (logger(self.seed, id, &self.crit), self.clock(id));
        let slot = self.slot(id);
        let db = slot.db.get_or_insert_with(|| slot.disk.open_db()).clone();
        let mut node = SimNode::open(&spec, db, slot.disk.clone(), &logger, clock)
            .map_err(|e| self.fail(e))?;
        node.only_touched = self.scale.is_some();
        let restarts: Vec<(u64, u64, u64)> = node
            .peers
            .iter()
            .map(|(g, p)| {
                let st = p.state_machine().state();
                (*g, st.applied, st.digest)
            })
            .collect();
        let applied: Vec<String> = node
            .peers
            .iter()
            .map(|(g, p)| format!("{g}:{}", p.applied()))
            .collect();
        let slot = self.slot(id);
        slot.node = Some(node);
        slot.inc += 1;
        let inc = slot.inc;
        self.checker.restarted(id);
        let step = self.stats.steps;
        for (g, index, digest) in restarts {
            if index > 0 {
                let ev = SmEvent::Restored { index, digest };
                if let Err(e) = self.checker.sm_event(id, g, &ev, None, step) {
                    return Err(self.fail(e));
                }
            }
        }
        self.note(format!("n{id} starts (applied {})", applied.join(" ")));
        let first_tick = self.rng.gen_range(1..=TICK_MS);
        self.schedule(first_tick, Ev::Tick { id, inc });
        Ok(())
    }

    /// A process crash (what was written survives; sometimes the database is closed and
    /// reopened too) or, with `power_loss`, a machine crash that loses every write since
    /// the node's last completed log sync.
    pub fn crash(&mut self, id: u64, why: &str, power_loss: bool) {
        let reopen = power_loss || self.rng.gen_bool(0.2);
        let slot = self.slot(id);
        let Some(node) = slot.node.take() else {
            return;
        };
        drop(node);
        slot.inc += 1;
        slot.round_pending = false;
        slot.sync_queue.clear();
        slot.syncing = false;
        slot.tasks.clear();
        let mut lost = 0;
        if reopen {
            // The last handle: the database closes now and is reopened on restart.
            slot.db = None;
            if power_loss {
                lost = slot.disk.lose_unsynced();
            }
        }
        self.stats.crashes += 1;
        if power_loss {
            self.stats.power_losses += 1;
        }
        // Its clients' calls end with closed channels (outcome unknown).
        if let Err(e) = self.clients.poll(id, None) {
            self.violated(e);
        }
        if power_loss && self.print_trace {
            // Not in the trace's digest: the byte count depends on the cluster id's
            // varint length, and the real code draws that id at random.
            eprintln!(
                "[seed {}] n{id}'s power loss cut {lost} WAL bytes",
                self.seed
            );
        }
        let how = match (power_loss, reopen) {
            (true, _) => ", power loss: unsynced WAL writes lost".to_string(),
            (false, true) => ", database closed".to_string(),
            _ => String::new(),
        };
        self.note(format!("n{id} crashes ({why}){how}"));
    }

    /// Runs one driver round of node `id` and carries out what it produced.
    pub fn run_round(&mut self, id: u64) -> Result<(), Failure> {
        self.stats.rounds += 1;
        let (now, wall) = self.clock(id);
        let crash = self.rng.gen_bool(self.p.crash_in_restore);
        let node = self.slot(id).node.as_mut().expect("live node");
        node.hooks
            .crash_in_restore
            .store(crash, std::sync::atomic::Ordering::Relaxed);
        match catch_unwind(AssertUnwindSafe(|| node.round(now, wall))) {
            Ok(out) => {
                node.hooks
                    .crash_in_restore
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                self.after_round(id, out);
                self.check_node(id)
            }
            Err(p) if p.is::<CrashPoint>() => {
                // The restore synced the received snapshot's raft state right before.
                self.slot(id).disk.sync_now();
                self.stats.restore_crashes += 1;
                self.crash(id, "in snapshot restore", false);
                let d = self.rng.gen_range(100..2000);
                self.schedule(d, Ev::Restart { id });
                Ok(())
            }
            Err(p) => resume_unwind(p),
        }
    }

    /// Carries out one round's effects (the driver's `carry_out` and its threads).
    fn after_round(&mut self, id: u64, out: RoundOut) {
        self.send(id, out.send);
        if let Some(job) = out.job {
            self.slot(id).sync_queue.push(job);
            self.start_sync(id);
        }
        for (g, to, notice) in out.notices {
            self.note(format!("n{id} sends n{to} its removal from group {g}"));
            self.send(id, vec![(g, notice)]);
        }
        for (g, r) in out.left {
            self.member_left(g, r);
        }
        for (g, task) in out.snapshots {
            let key = self.next_task;
            self.next_task += 1;
            let inc = self.slot(id).inc;
            self.slot(id).tasks.insert(key, (g, task));
            let d = self.rng.gen_range(0..=self.p.max_snapshot_ms);
            self.schedule(d, Ev::SnapshotTask { id, inc, key });
        }
        if out.again {
            self.wake(id);
        }
    }

    /// Group `g` applied the removal of node `r`.
    fn member_left(&mut self, g: u64, r: u64) {
        if !self.removed.insert((r, g)) {
            return;
        }
        self.stats.removed += 1;
        self.note(format!("n{r} is out of group {g}"));
        let slot = self.slot(r);
        slot.groups.remove(&g);
        if slot.groups.is_empty() && !slot.retired {
            slot.retired = true;
            self.crash(r, "removed from every group", false);
            self.note(format!("n{r} retired"));
        }
    }

    /// Starts an fsync of the sync thread when it is idle and has jobs.
    fn start_sync(&mut self, id: u64) {
        let d = self.rng.gen_range(0..=self.p.max_persist);
        let slot = self.slot(id);
        if slot.syncing || slot.sync_queue.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut slot.sync_queue);
        let sizes = jobs.iter().any(|j| j.sync).then(|| slot.disk.wal_sizes());
        slot.syncing = true;
        let inc = slot.inc;
        self.schedule(
            d,
            Ev::SyncEnd {
                id,
                inc,
                sizes,
                jobs,
            },
        );
    }

    /// The fsync completed: the messages that waited go out and the peers hear it.
    pub fn sync_end(&mut self, id: u64, sizes: Option<WalSizes>, jobs: Vec<SyncJob>) {
        if let Some(s) = sizes {
            self.slot(id).disk.synced(s);
        }
        let mut readies = Vec::new();
        let mut msgs = Vec::new();
        for j in jobs {
            readies.extend(j.readies);
            msgs.extend(j.msgs);
        }
        self.send(id, msgs);
        if let Some(n) = self.slot(id).node.as_mut() {
            n.persisted(readies);
        }
        self.wake(id);
        self.slot(id).syncing = false;
        self.start_sync(id);
    }

    /// After a round of node `id`: its removed peers stop, its state machines' reports and
    /// its clients' answers are checked, and every peer's invariants.
    fn check_node(&mut self, id: u64) -> Result<(), Failure> {
        let mut notes = Vec::new();
        let mut errs = Vec::new();
        let mut applied = Vec::new();
        let step = self.stats.steps;
        let node = self.slots[(id - 1) as usize].node.as_ref();
        let Some(node) = node else {
            return Ok(());
        };
        let mut gone = Vec::new();
        let only = node.only_touched;
        for (&g, p) in &node.peers {
            if only && node.touched.binary_search(&g).is_err() {
                continue;
            }
            if let Err(e) = self.checker.peer(id, p) {
                errs.push(e);
            }
            let evs = std::mem::take(&mut *node.events[&g].lock().expect("events lock"));
            for ev in evs {
                let term = match &ev {
                    SmEvent::Applied {
                        index,
                        cmds,
                        served,
                        ..
                    } => {
                        let numbered = cmds.iter().zip(served);
                        applied.extend(
                            numbered.filter_map(|(c, s)| Some((cmd_number(c)?, g, *index, *s))),
                        );
                        p.raw().raft.raft_log.term(*index).ok()
                    }
                    SmEvent::Restored { .. } => {
                        self.stats.snapshots_restored += 1;
                        None
                    }
                };
                if let Err(e) = self.checker.sm_event(id, g, &ev, term, step) {
                    errs.push(e);
                }
            }
            let r = &p.raw().raft;
            if r.state == raft::StateRole::Leader
                && self.leaders_noted.get(&g) != Some(&(r.term, id))
            {
                self.leaders_noted.insert(g, (r.term, id));
                notes.push(format!("n{id} leads group {g} in term {}", r.term));
            }
            if p.status()
                .removed
                .load(std::sync::atomic::Ordering::Acquire)
            {
                gone.push(g);
            }
        }
        match self.clients.poll(id, Some(node)) {
            Ok(n) => notes.extend(n),
            Err(e) => errs.push(e),
        }
        for n in notes {
            self.note(n);
        }
        self.outcomes(applied, &mut errs);
        for g in gone {
            self.note(format!(
                "n{id} applied its own removal from group {g}: its peer stops"
            ));
            if let Some(n) = self.slot(id).node.as_mut() {
                n.drop_group(g);
            }
            self.member_left(g, id);
        }
        if let Some(e) = errs.into_iter().next().or(self.violation.take()) {
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// What the clients learnt in a round: the serves go to the slot invariant, the
    /// commands `applied` (number, group, index, served) are checked against the answers,
    /// the migration takes its outcomes.
    fn outcomes(&mut self, applied: Vec<(u64, u64, u64, bool)>, errs: &mut Vec<String>) {
        for s in std::mem::take(&mut self.clients.serves) {
            if let Err(e) = self.checker.serve(&s, self.now) {
                errs.push(e);
            }
        }
        for (c, g, index, served) in applied {
            if let Err(e) = self.clients.applied(c, g, index, served) {
                errs.push(e);
            }
            if self.heal_cmd.is_some_and(|h| c >= h) {
                self.progressed.insert(g);
            }
        }
        self.move_outcomes();
    }
}
