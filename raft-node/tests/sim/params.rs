//! The fault mix and workload of one run, drawn from its seed (printed with any failure).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct Params {
    /// Founding members.
    pub nodes: usize,
    /// The raft groups every node hosts (ids > 0, not contiguous).
    pub groups: Vec<u64>,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub dup: f64,
    /// Usual delivery delay is uniform in 0..=max_delay ms.
    pub max_delay: u64,
    /// Probability of a long delay (up to 2 s: heavy reordering).
    pub long_delay: f64,
    /// Most time a log sync (fsync) takes; persisted messages wait for it.
    pub max_persist: u64,
    /// Most time between a driver being woken and its round (more events per round).
    pub round_delay: u64,
    /// Length of the chaos phase.
    pub chaos_ms: u64,
    /// Mean time between faults.
    pub fault_every: u64,
    /// Mean time between client proposals.
    pub propose_every: u64,
    /// Mean time between client reads.
    pub read_every: u64,
    /// Proposals per client burst (one round apart).
    pub burst: u64,
    /// Compact the log after this many applied entries (0: only when raft or a fault
    /// asks).
    pub snapshot_every: u64,
    /// Most time writing a snapshot's files takes.
    pub max_snapshot_ms: u64,
    /// Probability that a node crashes in the middle of restoring a received snapshot.
    pub crash_in_restore: f64,
    /// Probability that a crash is a power loss (unsynced writes lost).
    pub power_loss: f64,
    /// Membership changes (add a learner, promote it, remove a member).
    pub membership: bool,
    /// Nodes' wall clocks are off by up to this much (ms, either way).
    pub max_skew: i64,
}

impl Params {
    pub fn draw(rng: &mut ChaCha8Rng, chaos_ms: u64) -> Self {
        let n_groups = if rng.gen_bool(0.5) { 2 } else { 3 };
        let mut groups = vec![1];
        while groups.len() < n_groups {
            let g = rng.gen_range(2..1000);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let mut p = Params {
            nodes: if rng.gen_bool(0.5) { 3 } else { 5 },
            groups,
            drop: *[0.0, 0.02, 0.1, 0.25].choose(rng).unwrap(),
            dup: *[0.0, 0.02, 0.1].choose(rng).unwrap(),
            max_delay: *[1, 20, 80, 250].choose(rng).unwrap(),
            long_delay: *[0.0, 0.01, 0.05].choose(rng).unwrap(),
            max_persist: *[0, 5, 50, 200].choose(rng).unwrap(),
            round_delay: *[0, 0, 1, 5].choose(rng).unwrap(),
            chaos_ms,
            fault_every: rng.gen_range(300..3000),
            propose_every: rng.gen_range(20..300),
            read_every: rng.gen_range(50..500),
            burst: 1,
            snapshot_every: *[0, 5, 20, 60].choose(rng).unwrap(),
            max_snapshot_ms: *[0, 50, 400].choose(rng).unwrap(),
            crash_in_restore: *[0.0, 0.2].choose(rng).unwrap(),
            power_loss: *[0.0, 0.5, 0.9].choose(rng).unwrap(),
            membership: rng.gen_bool(0.5),
            max_skew: *[0, 0, 300, 5_000].choose(rng).unwrap(),
        };
        if rng.gen_bool(0.04) {
            // Long logs: past the storage's entry cache (8192), so that lagging followers
            // are fed from entries read back from RocksDB.
            p.burst = 150;
            p.propose_every = 150;
            p.snapshot_every = 0;
        }
        p
    }
}
