//! The node's driver: ONE thread serving every group's [`Peer`] in rounds, and the log
//! sync thread whose ONE WAL fsync covers every group's Readies of one or more rounds.
//!
//! A round, in order:
//! 1. receive: wait for the inbox (proposals, reads, peer messages, persistence reports)
//!    or the next tick, then drain what else is queued (bounded);
//! 2. batch: every peer that queued proposals turns them into ONE log entry, and its
//!    queued reads into ONE ReadIndex request;
//! 3. tick: when the tick is due, every peer ticks;
//! 4. collect: every peer with a Ready stages it into the round's ONE `WriteBatch`
//!    (applies, applied index, hard state, new entries); messages that may leave before
//!    the fsync go out now, batched per destination node across groups (a peer restoring
//!    a snapshot writes the batch staged so far before the restore, without sync);
//! 5. write: the batch, once, without sync;
//! 6. finish: each peer answers its proposers; Readies that need durability are handed to
//!    the sync thread as ONE job for the round (one fsync, then their messages go out, then
//!    the peers hear `Persisted`); Readies with nothing to persist advance at once and
//!    their light Readies' applies go into a second batch, written once;
//! 7. snapshots: peers decide whether to snapshot; snapshot files are written on threads
//!    of their own, whose results come back through the inbox.
//!
//! A peer applies committed entries within a time budget per round (see
//! [`Peer::set_apply_budget`]); one left with a backlog is served again next round at once,
//! so slow applies never hold ticks and heartbeats past the election timeout.
//!
//! Only peers that saw an event in the round (or, on a tick, every peer that is awake) are
//! visited: a hibernating peer (see [`crate::peer`]'s hibernation) costs nothing per tick.
//! Each tick the driver also sends every peer node one keepalive (a bare heartbeat in
//! group 0, which no group uses) and wakes hibernating followers whose leader's node has
//! been silent for an election timeout.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Instant;

use rocksdb::{WriteBatch, WriteOptions, DB};
use slog::{crit, debug, info, o, Logger};

use crate::node::{
    die, wall_ms, AddGroup, DriverConfig, GroupMessage, Input, MessageSink, Msg, NodeConfig,
    NodeHandle, StateMachine,
};
use crate::peer::Peer;
use crate::status::Status;

/// One round's Readies waiting for the WAL fsync.
struct SyncJob {
    /// (group, Ready number) of each.
    readies: Vec<(u64, u64)>,
    /// Some Ready wrote entries or a hard state.
    sync: bool,
    /// Messages to send once durable.
    msgs: Vec<GroupMessage>,
    /// Status of each group in the job (for the sync counters).
    statuses: Vec<Arc<Status>>,
}

/// Most inbox messages handled in one round before the peers are served.
const MAX_DRAIN: usize = 16384;

/// The group id of node keepalives (no Raft group has it).
pub const KEEPALIVE_GROUP: u64 = 0;

/// Opens every group's peer and starts the driver and sync threads.
pub(crate) fn spawn<S: StateMachine, K: MessageSink>(
    cfg: DriverConfig,
    groups: Vec<(NodeConfig, S)>,
    db: Arc<DB>,
    sink: K,
    logger: &Logger,
) -> Result<crate::node::Started<S::Output>, raft::Error> {
    let logger = logger.new(o!());
    let (tx, rx) = std::sync::mpsc::channel();
    let (persist_tx, persist_rx) = std::sync::mpsc::channel();
    let sync_thread = {
        let (db, sink, inbox, logger) = (db.clone(), sink.clone(), tx.clone(), logger.clone());
        std::thread::Builder::new()
            .name("raft-sync".into())
            .spawn(move || sync_loop(db, persist_rx, sink, inbox, logger))
            .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?
    };
    let silence = cfg.tick * 10;
    let mut driver = Driver {
        cfg,
        db,
        peers: BTreeMap::new(),
        sink,
        logger,
        inbox: tx,
        persist_tx: Some(persist_tx),
        sync_thread: Some(sync_thread),
        members: HashMap::new(),
        active: BTreeSet::new(),
        heard: HashMap::new(),
        silence,
        nonce: process_nonce(),
    };
    let mut handles = Vec::with_capacity(groups.len());
    for (gcfg, sm) in groups {
        let group = gcfg.group_id;
        if driver.peers.contains_key(&group) {
            return Err(raft::Error::ConfigInvalid(format!(
                "group {group} given twice"
            )));
        }
        handles.push(driver.open_peer(gcfg, sm)?);
    }
    let th = std::thread::Builder::new()
        .name("raft-driver".into())
        .spawn(move || driver.run(rx))
        .map_err(|e| raft::Error::Store(raft::StorageError::Other(Box::new(e))))?;
    Ok((handles, th))
}

/// Random per process, so ReadIndex contexts never repeat across restarts.
fn process_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(wall_ms() as u64);
    h.write_u32(std::process::id());
    h.finish()
}

/// The log sync thread: one WAL fsync covers every job queued since the last one; then
/// the messages that waited for it are sent and the driver is told.
fn sync_loop<O, K: MessageSink>(
    db: Arc<DB>,
    jobs: Receiver<SyncJob>,
    sink: K,
    inbox: Sender<Input<O>>,
    logger: Logger,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        if batch.iter().any(|j| j.sync) {
            let started = Instant::now();
            if let Err(e) = db.flush_wal(true) {
                crit!(logger, "raft log sync failed, stopping"; "err" => %e);
                die();
            }
            let micros = started.elapsed().as_micros() as u64;
            let mut seen = HashSet::new();
            for s in batch.iter().flat_map(|j| &j.statuses) {
                if seen.insert(s.group) {
                    s.syncs.fetch_add(1, Ordering::Relaxed);
                    s.sync_micros.fetch_add(micros, Ordering::Relaxed);
                    s.sync_hist.observe(micros);
                }
            }
        }
        let mut readies = Vec::new();
        let mut msgs = Vec::new();
        for j in batch {
            readies.extend(j.readies);
            msgs.extend(j.msgs);
        }
        if !msgs.is_empty() {
            sink.send(msgs);
        }
        if inbox.send(Input::Persisted(readies)).is_err() {
            return;
        }
    }
}

struct Driver<S: StateMachine, K: MessageSink> {
    cfg: DriverConfig,
    db: Arc<DB>,
    peers: BTreeMap<u64, Peer<S>>,
    sink: K,
    logger: Logger,
    /// The driver's own inbox (snapshot threads report here).
    inbox: Sender<Input<S::Output>>,
    persist_tx: Option<Sender<SyncJob>>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
    /// Which of this node's groups have each other node as a member (the transport's
    /// route to a node goes only when no group has it).
    members: HashMap<u64, HashSet<u64>>,
    /// Peers that saw an event this round.
    active: BTreeSet<u64>,
    /// When each peer node was last heard from (any message of any group).
    heard: HashMap<u64, Instant>,
    /// Election timeout: a hibernating follower's leader node silent this long wakes it.
    silence: std::time::Duration,
    /// This process's random nonce (each group's ReadIndex contexts derive from it).
    nonce: u64,
}

impl<S: StateMachine, K: MessageSink> Driver<S, K> {
    /// Opens group `gcfg.group_id`'s peer (at start, or at runtime by
    /// [`NodeHandle::add_group`]) and learns the member addresses it knows.
    fn open_peer(
        &mut self,
        mut gcfg: NodeConfig,
        sm: S,
    ) -> Result<NodeHandle<S::Output>, raft::Error> {
        gcfg.log_cache = Some(self.cfg.log_cache.clone());
        let group = gcfg.group_id;
        if group == KEEPALIVE_GROUP {
            return Err(raft::Error::ConfigInvalid("group 0 is reserved".into()));
        }
        self.silence = gcfg.tick * gcfg.election_tick as u32;
        let nonce = self.nonce ^ group.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut peer = Peer::open(gcfg, self.db.clone(), sm, nonce, &self.logger)?;
        let known = peer.take_effects().peers;
        let handle = NodeHandle {
            group,
            tx: self.inbox.clone(),
            status: peer.status().clone(),
        };
        self.peers.insert(group, peer);
        for (id, addr) in known {
            self.learn_peer(group, id, addr);
        }
        self.active.insert(group);
        Ok(handle)
    }

    /// A runtime request to open a group (see [`NodeHandle::add_group`]).
    fn add_group(&mut self, req: Box<dyn std::any::Any + Send>) {
        let Ok(req) = req.downcast::<AddGroup<S>>() else {
            crit!(
                self.logger,
                "a group of another state machine type was added, stopping"
            );
            die();
        };
        let AddGroup { cfg, sm, reply } = *req;
        let group = cfg.group_id;
        let out = match self.peers.get(&group) {
            Some(p) => Ok(NodeHandle {
                group,
                tx: self.inbox.clone(),
                status: p.status().clone(),
            }),
            None => self.open_peer(cfg, sm).map_err(|e| e.to_string()),
        };
        match &out {
            Ok(_) => info!(self.logger, "group opened at runtime"; "group" => group),
            Err(e) => {
                crit!(self.logger, "cannot open a group at runtime"; "group" => group, "err" => e)
            }
        }
        let _ = reply.send(out);
    }

    /// Stops group `g`'s peer, forgets its members' routes and deletes its raft records.
    fn remove_group(&mut self, g: u64) -> Result<(), String> {
        let Some(mut p) = self.peers.remove(&g) else {
            return Ok(());
        };
        p.stop();
        let m = p.status().members();
        for id in m.voters.iter().chain(&m.learners).chain(&m.voters_outgoing) {
            if *id != self.cfg.id {
                self.learn_peer(g, *id, None);
            }
        }
        self.active.remove(&g);
        drop(p);
        crate::storage::destroy(&self.db, g).map_err(|e| e.to_string())?;
        info!(self.logger, "group removed at runtime"; "group" => g);
        Ok(())
    }

    fn run(&mut self, rx: Receiver<Input<S::Output>>) {
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            // 1. receive (without waiting when a peer has applies left over)
            let wait = if self.active.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                std::time::Duration::ZERO
            };
            match rx.recv_timeout(wait) {
                Ok(m) => {
                    if !self.dispatch(m) {
                        return self.stop();
                    }
                    for _ in 0..MAX_DRAIN {
                        match rx.try_recv() {
                            Ok(m) => {
                                if !self.dispatch(m) {
                                    return self.stop();
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.stop(),
            }
            let now = Instant::now();
            let wall = wall_ms();
            // 3. tick (before batching, so a peer that ticks also flushes).
            let tick = now >= next_tick;
            if tick {
                next_tick = now + self.cfg.tick;
                self.on_tick(now);
            }
            let active: Vec<u64> = std::mem::take(&mut self.active).into_iter().collect();
            for g in &active {
                if let Some(p) = self.peers.get_mut(g) {
                    p.set_now(now, wall);
                    // 2. batch
                    p.flush();
                    if tick {
                        p.tick();
                    }
                }
            }
            self.ready_round(&active);
            // 7. snapshots
            for g in &active {
                if let Some(p) = self.peers.get_mut(g) {
                    p.maybe_snapshot();
                }
            }
            self.carry_out(&active);
            // Peers over their apply budget go on applying next round.
            for g in &active {
                if self.peers.get(g).is_some_and(|p| p.has_backlog()) {
                    self.active.insert(*g);
                }
            }
        }
    }

    /// Steps 4-6 of the round for the peers in `active`.
    fn ready_round(&mut self, active: &[u64]) {
        // 4. collect
        let mut wb = WriteBatch::default();
        let mut inflight = Vec::new();
        for g in active {
            if let Some(p) = self.peers.get_mut(g) {
                let started = Instant::now();
                if let Some(f) = p.collect_ready(&mut wb) {
                    inflight.push((*g, f));
                }
                p.status()
                    .ready_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        }
        if inflight.is_empty() {
            return;
        }
        self.send_now(active);
        // 5. write
        self.write(wb);
        // 6. finish
        let mut wb2 = WriteBatch::default();
        let mut light = Vec::new();
        for (g, f) in inflight {
            if let Some(p) = self.peers.get_mut(&g) {
                if let Some(l) = p.finish_ready(f, &mut wb2) {
                    light.push((g, l));
                }
            }
        }
        self.write(wb2);
        for (g, l) in light {
            if let Some(p) = self.peers.get_mut(&g) {
                p.finish_light(l);
            }
        }
    }

    /// Sends the messages peers queued so far (before the round's write: they need no
    /// durability), leaving their other effects for [`Driver::carry_out`].
    fn send_now(&mut self, active: &[u64]) {
        let mut msgs = Vec::new();
        for g in active {
            if let Some(p) = self.peers.get_mut(g) {
                msgs.extend(p.take_messages().into_iter().map(|m| (*g, m)));
            }
        }
        if !msgs.is_empty() {
            self.sink.send(msgs);
        }
    }

    /// Carries out what the round's peers asked for.
    fn carry_out(&mut self, active: &[u64]) {
        let mut msgs: Vec<GroupMessage> = Vec::new();
        let mut job = SyncJob {
            readies: Vec::new(),
            sync: false,
            msgs: Vec::new(),
            statuses: Vec::new(),
        };
        for g in active {
            let Some(p) = self.peers.get_mut(g) else {
                continue;
            };
            let fx = p.take_effects();
            if fx.is_empty() {
                continue;
            }
            let status = p.status().clone();
            msgs.extend(fx.send.into_iter().map(|m| (*g, m)));
            for j in fx.persist {
                job.readies.push((*g, j.number));
                job.sync |= j.sync;
                job.msgs.extend(j.msgs.into_iter().map(|m| (*g, m)));
            }
            if !job.readies.is_empty() && job.statuses.last().map(|s| s.group) != Some(*g) {
                job.statuses.push(status);
            }
            // Notices first: the transport still has the removed member's address.
            for (id, notice) in fx.removed {
                self.sink.notify_removed(*g, id, notice);
            }
            for (id, addr) in fx.peers {
                self.learn_peer(*g, id, addr);
            }
            if let Some(task) = fx.snapshot {
                self.spawn_snapshot(*g, task);
            }
        }
        if !msgs.is_empty() {
            self.sink.send(msgs);
        }
        if !job.readies.is_empty() {
            let sent = self.persist_tx.as_ref().map(|tx| tx.send(job));
            if !matches!(sent, Some(Ok(()))) {
                crit!(self.logger, "log sync thread is gone, stopping");
                die();
            }
        }
    }

    /// Group `g` learnt node `id`'s address, or `id` left `g`.
    fn learn_peer(&mut self, g: u64, id: u64, addr: Option<String>) {
        match addr {
            Some(a) => {
                self.members.entry(id).or_default().insert(g);
                self.sink.set_peer(id, Some(a));
            }
            None => {
                let set = self.members.entry(id).or_default();
                set.remove(&g);
                if set.is_empty() {
                    self.members.remove(&id);
                    self.sink.set_peer(id, None);
                }
            }
        }
    }

    fn spawn_snapshot(&self, g: u64, task: crate::peer::SnapshotTask) {
        let inbox = self.inbox.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let r = task();
                let _ = inbox.send(Input::Group(g, Msg::SnapshotGenerated(r)));
            });
        if let Err(e) = spawned {
            crit!(self.logger, "cannot start snapshot thread, stopping"; "err" => %e);
            die();
        }
    }

    /// A tick: keepalives out, silent leaders' followers woken, awake peers to tick.
    fn on_tick(&mut self, now: Instant) {
        let mut keepalives = Vec::with_capacity(self.members.len());
        for &to in self.members.keys() {
            let mut m = raft::eraftpb::Message::default();
            m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
            m.from = self.cfg.id;
            m.to = to;
            keepalives.push((KEEPALIVE_GROUP, m));
        }
        if !keepalives.is_empty() {
            self.sink.send(keepalives);
        }
        for (g, p) in self.peers.iter_mut() {
            if p.is_hibernating() && !p.apply_waiting() {
                let leader = p.leader_id();
                let silent = leader != self.cfg.id
                    && self
                        .heard
                        .get(&leader)
                        .is_none_or(|t| now.saturating_duration_since(*t) >= self.silence);
                if !silent {
                    continue;
                }
                p.wake();
            }
            self.active.insert(*g);
        }
    }

    /// Hands one inbox message to its peer; false means stop.
    fn dispatch(&mut self, m: Input<S::Output>) -> bool {
        if let Input::Group(_, Msg::Raft(m)) = &m {
            self.heard.insert(m.from, Instant::now());
        }
        match m {
            Input::Group(KEEPALIVE_GROUP, Msg::Raft(_)) => {}
            Input::Group(_, Msg::Stop) => return false,
            Input::Group(g, m) => match self.peers.get_mut(&g) {
                Some(p) => {
                    p.handle(m);
                    self.active.insert(g);
                }
                None => self.refuse_unknown(g, m),
            },
            Input::AddGroup(req) => self.add_group(req),
            Input::RemoveGroup(g, reply) => {
                let _ = reply.send(self.remove_group(g));
            }
            Input::Persisted(readies) => {
                for (g, n) in readies {
                    if let Some(p) = self.peers.get_mut(&g) {
                        p.on_persisted(n);
                        self.active.insert(g);
                    }
                }
            }
        }
        true
    }

    /// A message for a group this node does not host.
    fn refuse_unknown(&self, g: u64, m: Msg<S::Output>) {
        let why = || crate::node::NodeError::Refused(format!("group {g} is not hosted here"));
        match m {
            Msg::Propose { reply, .. } => {
                let _ = reply.send(Err(why()));
            }
            Msg::Read { reply } => {
                let _ = reply.send(Err(why()));
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(Err(why()));
            }
            Msg::ConfChange { reply, .. } => {
                let _ = reply.send(Err(why()));
            }
            Msg::Raft(m) => {
                debug!(self.logger, "raft message for a group not hosted here"; "group" => g, "from" => m.from);
            }
            _ => {}
        }
    }

    /// Writes a batch without sync (durability comes from the sync thread's WAL sync).
    fn write(&self, wb: WriteBatch) {
        if wb.is_empty() {
            return;
        }
        if let Err(e) = self.db.write_opt(wb, &WriteOptions::default()) {
            crit!(self.logger, "storage write failed, stopping"; "err" => %e);
            die();
        }
    }

    fn stop(&mut self) {
        // Let the sync thread finish (and release the database) before reporting stopped.
        self.persist_tx = None;
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
        for p in self.peers.values_mut() {
            p.stop();
        }
        info!(self.logger, "raft node stopped");
    }
}
