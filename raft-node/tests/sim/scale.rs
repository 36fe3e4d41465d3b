//! The measurement mode (issue #11, `docs/scaling.md`): N simulated nodes and G groups,
//! each group on 3 of the nodes (spread evenly, [`placements`]), the same real `Peer`s and driver rounds as the
//! checking runs, on virtual time, without faults: no loss, 0-1 ms delivery, 0-1 ms
//! fsyncs. Three windows are measured per run:
//!
//! - startup: from opening every group until each has a leader and every leader has
//!   hibernated (or [`SETTLE_MS`] passed);
//! - idle: nothing proposed, every group hibernating;
//! - load: a steady write load (`SIM_SCALE_WPS` writes per virtual second over the
//!   cluster, default 1000, each to a random group's leader), which wakes the groups it
//!   touches; they fall asleep again after two quiet election timeouts.
//!
//! Per node and virtual second: raft messages sent and received, their bytes as the
//! transport frames them (one `PeerBatch` per destination node per send of a round,
//! which is what the transport's writer gets at once), the frames; the elections (terms
//! started) of the window; the groups awake at its end. The invariants of the checking runs
//! are still checked after every round (every write acknowledged is where it was told).
//!
//! Not simulated (arithmetic in `docs/scaling.md`): the driver's node keepalives (one bare
//! heartbeat per peer node per tick) and the wake-up of hibernating followers whose leader's
//! node went silent (no node fails here).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::MessageType;
use raft::StateRole;
use raft_node::proto::PeerBatch;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::node::GroupMsg;
use super::params::Params;
use super::report::Failure;
use super::world::{Ev, Sim};

/// Longest virtual time the startup window may take.
pub const SETTLE_MS: u64 = 30_000;
/// Virtual time between two batches of the write load.
const LOAD_EVERY_MS: u64 = 10;
/// How often (virtual ms) the startup window looks whether it is over.
const CENSUS_EVERY_MS: u64 = 500;

/// What one run measures.
#[derive(Debug, Clone)]
pub struct ScaleCfg {
    pub nodes: u64,
    pub groups: u64,
    /// Writes per virtual second over the whole cluster in the load window.
    pub wps: u64,
    pub idle_ms: u64,
    pub load_ms: u64,
    pub seed: u64,
}

/// Each group's 3 nodes: the three holding the fewest replicas so far, ties broken by a
/// hash of (group, node). Every node holds the same number of replicas (±1), and the pairs
/// of nodes sharing a group spread as a placement driver would spread them (not only
/// neighbours: that would flatter the per-destination batching and the connection count).
pub fn placements(nodes: u64, groups: u64) -> BTreeMap<u64, Vec<u64>> {
    let mix = |g: u64, n: u64| {
        let mut z = g.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 29)
    };
    let mut held = vec![0u64; nodes as usize + 1];
    let mut out = BTreeMap::new();
    for g in 1..=groups {
        let mut ids: Vec<u64> = (1..=nodes).collect();
        ids.sort_by_key(|&n| (held[n as usize], mix(g, n)));
        let mut v = ids[..3.min(ids.len())].to_vec();
        v.sort_unstable();
        for &n in &v {
            held[n as usize] += 1;
        }
        out.insert(g, v);
    }
    out
}

/// Raft messages by kind, for the cluster-wide breakdown.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kinds {
    pub heartbeat: u64,
    pub append: u64,
    pub vote: u64,
    pub other: u64,
}

/// Message counters per node (index = node id).
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    pub sent: Vec<u64>,
    pub received: Vec<u64>,
    /// Bytes of the frames sent (4-byte length and the `PeerBatch`).
    pub bytes: Vec<u64>,
    pub frames: Vec<u64>,
    pub kinds: Kinds,
}

impl Traffic {
    fn new(nodes: u64) -> Self {
        let v = vec![0; nodes as usize + 1];
        Traffic {
            sent: v.clone(),
            received: v.clone(),
            bytes: v.clone(),
            frames: v,
            kinds: Kinds::default(),
        }
    }

    /// Node `from` sends `msgs` (sorted by destination): one frame per destination.
    pub fn sent(&mut self, from: u64, msgs: &[GroupMsg]) {
        let nodes = self.sent.len() as u64 - 1;
        let mut frames: BTreeMap<u64, PeerBatch> = BTreeMap::new();
        for (g, m) in msgs {
            let to = m.to;
            if to == from || to == 0 || to > nodes {
                continue;
            }
            let k = &mut self.kinds;
            match m.get_msg_type() {
                MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse => k.heartbeat += 1,
                MessageType::MsgAppend | MessageType::MsgAppendResponse => k.append += 1,
                MessageType::MsgRequestVote
                | MessageType::MsgRequestVoteResponse
                | MessageType::MsgRequestPreVote
                | MessageType::MsgRequestPreVoteResponse => k.vote += 1,
                _ => k.other += 1,
            }
            self.sent[from as usize] += 1;
            self.received[to as usize] += 1;
            let b = frames.entry(to).or_default();
            b.msgs
                .push(m.write_to_bytes().expect("encode raft message"));
            b.groups.push(*g);
        }
        for b in frames.values() {
            self.frames[from as usize] += 1;
            self.bytes[from as usize] += 4 + u64::from(b.compute_size());
        }
    }
}

/// The measurement mode's state inside the [`Sim`].
pub struct ScaleState {
    pub traffic: Traffic,
    pub groups: u64,
    /// Writes per virtual second while loading (0: not loading).
    pub wps: u64,
    /// Writes owed to the load (thousandths).
    owed: u64,
}

/// One measured window.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: &'static str,
    pub virtual_ms: u64,
    pub real_s: f64,
    pub traffic: Traffic,
    pub elections: u64,
    /// Groups with a leader, and leaders not hibernating, at the end.
    pub led: u64,
    pub awake: u64,
    pub acked: u64,
}

/// Who leads what right now.
struct Census {
    led: u64,
    awake: u64,
    /// Sum over groups of the highest term any replica is in.
    terms: u64,
}

/// The run's parameters: no faults, a LAN's delays.
fn params(cfg: &ScaleCfg) -> Params {
    Params {
        nodes: cfg.nodes as usize,
        groups: (1..=cfg.groups).collect(),
        drop: 0.0,
        dup: 0.0,
        max_delay: 1,
        long_delay: 0.0,
        max_persist: 1,
        round_delay: 0,
        chaos_ms: 0,
        fault_every: u64::MAX / 4,
        propose_every: u64::MAX / 4,
        read_every: u64::MAX / 4,
        burst: 1,
        snapshot_every: 0,
        max_snapshot_ms: 0,
        crash_in_restore: 0.0,
        power_loss: 0.0,
        membership: false,
        max_skew: 0,
    }
}

impl Sim {
    /// A measurement run of `cfg`.
    pub fn scale(cfg: &ScaleCfg) -> Sim {
        let rng: ChaCha8Rng = rand::SeedableRng::seed_from_u64(cfg.seed);
        let mut sim = Sim::with_params(cfg.seed, rng, params(cfg), false);
        sim.max_steps = u64::MAX;
        sim.placement = placements(cfg.nodes, cfg.groups);
        for slot in sim.slots.iter_mut() {
            slot.groups = sim
                .placement
                .iter()
                .filter(|(_, v)| v.contains(&slot.id))
                .map(|(g, _)| *g)
                .collect::<BTreeSet<u64>>();
        }
        sim.scale = Some(ScaleState {
            traffic: Traffic::new(cfg.nodes),
            groups: cfg.groups,
            wps: 0,
            owed: 0,
        });
        sim
    }

    /// Runs the three windows.
    pub fn scale_run(&mut self, cfg: &ScaleCfg) -> Result<Vec<Window>, Failure> {
        for id in self.founders.clone() {
            self.start_node(id)?;
        }
        let mut out = Vec::new();
        let (start, started, terms) = (self.now, Instant::now(), self.census().terms);
        loop {
            self.run_until(self.now + CENSUS_EVERY_MS)?;
            let c = self.census();
            if (c.led == cfg.groups && c.awake == 0) || self.now - start >= SETTLE_MS {
                break;
            }
        }
        out.push(self.window("startup", start, started, terms));
        let (start, started, terms) = (self.now, Instant::now(), self.census().terms);
        self.run_until(start + cfg.idle_ms)?;
        out.push(self.window("idle", start, started, terms));
        let acked = self.clients.stats.acked;
        if let Some(s) = self.scale.as_mut() {
            s.wps = cfg.wps;
        }
        self.schedule(0, Ev::Load);
        let (start, started, terms) = (self.now, Instant::now(), self.census().terms);
        self.run_until(start + cfg.load_ms)?;
        let mut w = self.window("load", start, started, terms);
        w.acked = self.clients.stats.acked - acked;
        out.push(w);
        if let Some(s) = self.scale.as_mut() {
            s.wps = 0;
        }
        Ok(out)
    }

    fn run_until(&mut self, t: u64) -> Result<(), Failure> {
        while self.now < t {
            self.step()?;
        }
        Ok(())
    }

    /// Closes a window: takes its counters, starts new ones.
    fn window(&mut self, name: &'static str, start: u64, t: Instant, terms: u64) -> Window {
        let c = self.census();
        let nodes = self.slots.len() as u64;
        let traffic = self
            .scale
            .as_mut()
            .map(|s| std::mem::replace(&mut s.traffic, Traffic::new(nodes)))
            .unwrap_or_default();
        Window {
            name,
            virtual_ms: self.now - start,
            real_s: t.elapsed().as_secs_f64(),
            traffic,
            elections: c.terms - terms,
            led: c.led,
            awake: c.awake,
            acked: 0,
        }
    }

    fn census(&self) -> Census {
        let mut terms: BTreeMap<u64, u64> = BTreeMap::new();
        let mut led = BTreeSet::new();
        let mut awake = 0;
        for n in self.slots.iter().filter_map(|s| s.node.as_ref()) {
            for (g, p) in &n.peers {
                let r = &p.raw().raft;
                let t = terms.entry(*g).or_default();
                *t = (*t).max(r.term);
                if r.state == StateRole::Leader {
                    led.insert(*g);
                    awake += u64::from(!p.is_hibernating());
                }
            }
        }
        Census {
            led: led.len() as u64,
            awake,
            terms: terms.values().sum(),
        }
    }

    /// The write load's next batch: each write to a random group's leader.
    pub fn load(&mut self) {
        let Some(s) = self.scale.as_mut() else {
            return;
        };
        if s.wps == 0 {
            return;
        }
        s.owed += s.wps * LOAD_EVERY_MS;
        let (n, groups) = (s.owed / 1000, s.groups);
        s.owed %= 1000;
        for _ in 0..n {
            let g = self.rng.gen_range(1..=groups);
            if let Some(l) = self.leader(g) {
                let (m, _) = self.clients.propose(l, g, None);
                self.post(l, g, m);
            }
        }
        self.schedule(LOAD_EVERY_MS, Ev::Load);
    }
}

/// Distinct other nodes node `id` shares a group with (its raft connections, and the
/// keepalives its driver sends per tick).
pub fn peer_nodes(placement: &BTreeMap<u64, Vec<u64>>, id: u64) -> usize {
    let mut peers = BTreeSet::new();
    for p in placement.values().filter(|p| p.contains(&id)) {
        peers.extend(p.iter().copied().filter(|&n| n != id));
    }
    peers.len()
}

/// The table's header.
pub const HEADER: &str = "| nodes | groups | window | virtual s | msgs sent/node/s (mean / max) | msgs received/node/s (max) | frames/node/s (mean) | KB sent/node/s (mean / max) | heartbeat / append / vote msgs/s (cluster) | elections | leaders awake at end | writes acked/s | peer nodes/node | real s |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// One row of the table: per-node figures averaged over the nodes that host a group.
pub fn row(cfg: &ScaleCfg, placement: &BTreeMap<u64, Vec<u64>>, w: &Window) -> String {
    let secs = w.virtual_ms.max(1) as f64 / 1000.0;
    let hosting: BTreeSet<u64> = placement.values().flatten().copied().collect();
    let hosts: Vec<usize> = hosting.into_iter().map(|id| id as usize).collect();
    let t = &w.traffic;
    let mean = |v: &[u64]| hosts.iter().map(|&i| v[i]).sum::<u64>() as f64 / hosts.len() as f64;
    let max = |v: &[u64]| hosts.iter().map(|&i| v[i]).max().unwrap_or(0) as f64;
    let peers = hosts
        .iter()
        .map(|&i| peer_nodes(placement, i as u64))
        .max()
        .unwrap_or(0);
    let k = t.kinds;
    format!(
        "| {} | {} | {} | {:.1} | {:.0} / {:.0} | {:.0} | {:.0} | {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {} | {} / {} | {:.0} | {} | {:.1} |",
        cfg.nodes,
        cfg.groups,
        w.name,
        secs,
        mean(&t.sent) / secs,
        max(&t.sent) / secs,
        max(&t.received) / secs,
        mean(&t.frames) / secs,
        mean(&t.bytes) / secs / 1000.0,
        max(&t.bytes) / secs / 1000.0,
        k.heartbeat as f64 / secs,
        k.append as f64 / secs,
        k.vote as f64 / secs,
        w.elections,
        w.awake,
        w.led,
        w.acked as f64 / secs,
        peers,
        w.real_s,
    )
}
