//! Command-line configuration of a raftkv node (clap), with the seed-compatible form
//! `raftkv --id 1 --cluster 127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 --port 63791`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A Redis-protocol key-value store replicated with Raft.
#[derive(Parser, Debug, Clone)]
#[command(name = "raftkv", version, about)]
pub struct Config {
    /// This node's Raft id: its 1-based position in --cluster (a node that joins later
    /// picks an id no member has).
    #[arg(long)]
    pub id: u64,

    /// Comma-separated Raft (peer) addresses of all founding members, in id order.
    #[arg(long, value_delimiter = ',', required_unless_present = "join")]
    pub cluster: Vec<String>,

    /// Join an existing cluster through any member's Redis address (host:port): the node
    /// starts empty, asks to be added (RAFT.NODE ADD), receives a snapshot as a learner and
    /// becomes a voter once caught up. Ignored once the node is a member.
    #[arg(long)]
    pub join: Option<String>,

    /// This node's Raft (peer) address, when it is not in --cluster (joining nodes).
    #[arg(long)]
    pub peer_addr: Option<String>,

    /// Address to listen on for peers when it differs from the Raft address the others
    /// dial (--peer-addr, or this node's --cluster entry): behind NAT, a port forward or a
    /// proxy. Default: that Raft address.
    #[arg(long)]
    pub peer_bind: Option<String>,

    /// Take a snapshot and compact the Raft log after this many applied entries (0 = never).
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_entries: u64,

    /// ... or after this many bytes of applied log entries (0 = never).
    #[arg(long, default_value_t = 256 << 20)]
    pub snapshot_bytes: u64,

    /// Size of one snapshot transfer chunk (bytes).
    #[arg(long, default_value_t = 1 << 20)]
    pub snapshot_chunk_bytes: usize,

    /// Snapshot transfer rate limit per receiver in MB/s (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub snapshot_max_mbps: f64,

    /// Port for Redis clients.
    #[arg(long, default_value_t = 6379)]
    pub port: u16,

    /// Address to bind the Redis port on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,

    /// Directory holding this node's RocksDB data (default: ./data/node<ID>).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Log level: critical, error, warning, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Raft tick interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,

    /// Ticks without a heartbeat before a follower starts an election.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: usize,

    /// Ticks between leader heartbeats.
    #[arg(long, default_value_t = 2)]
    pub heartbeat_ticks: usize,

    /// How long a request waits for a leader to be known before -CLUSTERDOWN (ms).
    #[arg(long, default_value_t = 3000)]
    pub leader_wait_ms: u64,

    /// How long a request waits for commit/apply or a read index before -TRYAGAIN (ms).
    #[arg(long, default_value_t = 10000)]
    pub request_timeout_ms: u64,

    /// Largest bulk string a client may send (bytes), like Redis's proto-max-bulk-len.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,

    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 10000)]
    pub maxclients: usize,

    /// How reads get their linearizable read index: `safe` (a heartbeat round to a quorum
    /// per batch of reads). `lease` is accepted as an alias of `safe` (with a warning at
    /// start): raft-rs 0.7's lease reads check no lease, so they could be stale.
    #[arg(long, default_value = "safe", value_parser = ["safe", "lease"])]
    pub read_mode: String,

    /// Password clients must give with AUTH or HELLO AUTH (user `default`); none if unset.
    #[arg(long)]
    pub requirepass: Option<String>,

    /// Shared secret every node presents to its peers; connections without it are refused.
    /// Must be the same on all nodes.
    #[arg(long)]
    pub cluster_secret: Option<String>,

    /// Interval of the leader's sweep of expired keys (ms).
    #[arg(long, default_value_t = 100)]
    pub expire_sweep_ms: u64,
}

impl Config {
    /// Raft address of every founding member by id.
    pub fn peers(&self) -> HashMap<u64, String> {
        self.cluster
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u64 + 1, a.trim().to_string()))
            .collect()
    }

    /// This node's own Raft address.
    pub fn raft_addr(&self) -> Option<String> {
        self.peer_addr
            .clone()
            .or_else(|| self.peers().get(&self.id).cloned())
    }

    /// Founding voters when this node starts fresh: the --cluster ids, or none for a node
    /// that joins an existing cluster.
    pub fn founding_voters(&self) -> Vec<u64> {
        let peers = self.peers();
        if self.join.is_some() && !peers.contains_key(&self.id) {
            return Vec::new();
        }
        let mut ids: Vec<u64> = peers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Where data lives.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("data/node{}", self.id)))
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.leader_wait_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}
