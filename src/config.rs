//! Command-line configuration of a raftkv node (clap), with the seed-compatible form
//! `raftkv --id 1 --cluster 127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 --port 63791`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Largest `--max-write-bytes`: an entry holds up to the node's batching threshold (4 MiB)
/// plus one write, a raft message batch up to 8 MiB plus one message; 48 MiB leaves that
/// and the envelopes well inside the 64 MiB peer frame.
pub const MAX_WRITE_BYTES_CAP: usize = 48 << 20;

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

    /// A snapshot is captured by a RocksDB checkpoint (hard links; its SST files are made
    /// only when a follower needs it) once the node's data is at least this many MiB, and
    /// written at once as SST files below (0 = always by checkpoint).
    #[arg(long, default_value_t = 64)]
    pub snapshot_checkpoint_mb: u64,

    /// Most bytes of one Raft group's newest log entries kept in memory (the replication
    /// and apply paths read them from there; older entries are read from disk).
    #[arg(long, default_value_t = 32 << 20)]
    pub raft_log_cache_bytes: usize,

    /// Node-wide figure for all groups' in-memory log entries: while the caches hold more,
    /// each group that writes keeps only its share (this figure / groups), so the node
    /// holds at most twice this however many groups it serves.
    #[arg(long, default_value_t = 128 << 20)]
    pub raft_log_cache_node_bytes: usize,

    /// Size of one snapshot transfer chunk (bytes).
    #[arg(long, default_value_t = 1 << 20)]
    pub snapshot_chunk_bytes: usize,

    /// Snapshot transfer rate limit per receiver in MB/s (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub snapshot_max_mbps: f64,

    /// Rate limit of a slot migration's data copy in MB/s (10^6 bytes; 0 = unlimited),
    /// applied by the node coordinating it (the metadata leader). CONFIG SET
    /// `migrate-max-mbps` changes it at run time.
    #[arg(long, default_value_t = 64)]
    pub migrate_max_mbps: u64,

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

    /// How long a request waits for commit/apply or a read index (ms): then a read answers
    /// -TRYAGAIN, a write -UNCERTAIN (it may or may not take effect).
    #[arg(long, default_value_t = 10000)]
    pub request_timeout_ms: u64,

    /// Largest bulk string a client may send (bytes), like Redis's proto-max-bulk-len.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub proto_max_bulk_len: usize,

    /// Close a client connection idle for this many seconds (0 = never), as Redis's
    /// `timeout`: subscribers and clients waiting on a blocking command or a reply are
    /// never idle. CONFIG SET timeout changes it at run time.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2147483647))]
    pub timeout: u64,

    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 10000)]
    pub maxclients: usize,

    /// How reads get their linearizable read index: `safe` (a heartbeat round to a quorum
    /// per batch of reads). `lease` is accepted as an alias of `safe` (with a warning at
    /// start): raft-rs 0.7's lease reads check no lease, so they could be stale.
    #[arg(long, default_value = "safe", value_parser = ["safe", "lease"])]
    pub read_mode: String,

    /// Password clients must give with AUTH or HELLO AUTH (user `default`); none if unset.
    /// Also from --requirepass-file or the environment variable RAFTKV_REQUIREPASS (argv
    /// is visible in `ps`). Without a cluster secret, peers derive theirs from it.
    #[arg(long)]
    pub requirepass: Option<String>,

    /// File holding the client password (one line; a trailing newline is ignored).
    #[arg(long, conflicts_with = "requirepass")]
    pub requirepass_file: Option<PathBuf>,

    /// Secret every node proves to its peers (challenge-response, never sent); peer
    /// connections that cannot prove it are refused. Must be the same on all nodes. Also
    /// from --cluster-secret-file or RAFTKV_CLUSTER_SECRET. Default: derived from
    /// --requirepass when that is set, else none (peers are not authenticated).
    #[arg(long)]
    pub cluster_secret: Option<String>,

    /// File holding the cluster secret (one line; a trailing newline is ignored).
    #[arg(long, conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Interval of the leader's sweep of expired keys (ms).
    #[arg(long, default_value_t = 100)]
    pub expire_sweep_ms: u64,

    /// Largest write proposed as one Raft entry (bytes, as encoded): one command, or the
    /// pipelined run of commands proposed together (a longer run is split). A single
    /// command beyond it is refused before it is proposed (`-ERR ... not applied`). At most
    /// 50331648 (48 MiB), so an entry always fits one peer frame (64 MiB) with its batch.
    #[arg(long, default_value_t = 32 << 20)]
    pub max_write_bytes: usize,

    /// Hard limit of one client's reply bytes computed and not yet written (bytes, like
    /// Redis's `client-output-buffer-limit normal <hard> 0 0`): past it the connection is
    /// closed. 0 = no limit. The default is twice the largest string (512 MiB), so one GET
    /// of any value always fits.
    #[arg(long, default_value_t = 1 << 30)]
    pub client_output_buffer_limit: usize,

    /// Client (Redis) address this node advertises to the cluster (CLUSTER SLOTS/NODES,
    /// -MOVED), as host:port. Default: --bind:--port, or the host of the node's Raft
    /// address with --port when --bind is a wildcard (0.0.0.0 or ::).
    #[arg(long)]
    pub announce_addr: Option<String>,

    /// What a node that does not lead a key's group does with a keyed command: `forward`
    /// writes to the leader and serve reads here after ReadIndex (every client works), or
    /// `moved`: answer -MOVED <slot> <leader-addr> as Redis Cluster does (reads are served
    /// here only on connections that sent READONLY).
    #[arg(long, default_value = "forward", value_parser = ["forward", "moved"])]
    pub redirect: String,

    /// After `RAFT.SHARDGROUP JOIN` records a new data group, move slots to it until every
    /// group's slot count differs by at most one (as `RAFT.REBALANCE`; the records are
    /// copied to nodes that lack them). `no`: the new group owns no slots until a MOVE or
    /// REBALANCE.
    #[arg(long, default_value = "yes", value_parser = ["yes", "no"])]
    pub auto_rebalance: String,

    /// Serve Prometheus metrics (text exposition format) over HTTP `GET /metrics` on this
    /// host:port. Off by default.
    #[arg(long)]
    pub metrics_addr: Option<String>,

    /// Number of data groups (Raft groups) the 16384 hash slots are split over, evenly,
    /// each replicated on every founding node. 1 keeps one group for all slots, so
    /// multi-key commands work over any keys as in standalone Redis; with more, keys of one
    /// command must share a slot (use {hash tags}). Fixed for the life of the data dir.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub groups: u64,

    /// Worker threads of the runtime serving client connections and the peer transport
    /// (0: one per core). Heavy reads run on separate blocking threads either way.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub io_threads: u64,
}

/// Environment variable with the client password (when no flag gives it).
pub const ENV_REQUIREPASS: &str = "RAFTKV_REQUIREPASS";
/// Environment variable with the cluster secret (when no flag gives it).
pub const ENV_CLUSTER_SECRET: &str = "RAFTKV_CLUSTER_SECRET";

/// A secret from its flag, else its file, else its environment variable.
fn secret_from(
    flag: Option<String>,
    file: Option<&PathBuf>,
    env: &str,
    what: &str,
) -> Result<Option<String>, String> {
    let value = match (flag, file) {
        (Some(v), _) => Some(v),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
            Some(text.trim_end_matches(['\n', '\r']).to_string())
        }
        (None, None) => std::env::var(env).ok(),
    };
    match value {
        Some(v) if v.is_empty() => Err(format!("the {what} is empty")),
        v => Ok(v),
    }
}

impl Config {
    /// Fills `requirepass` and `cluster_secret` from their files or environment variables
    /// when no flag gave them (the flags win).
    pub fn resolve_secrets(&mut self) -> Result<(), String> {
        self.requirepass = secret_from(
            self.requirepass.take(),
            self.requirepass_file.as_ref(),
            ENV_REQUIREPASS,
            "client password",
        )?;
        self.cluster_secret = secret_from(
            self.cluster_secret.take(),
            self.cluster_secret_file.as_ref(),
            ENV_CLUSTER_SECRET,
            "cluster secret",
        )?;
        Ok(())
    }

    /// The key peers prove to each other: the cluster secret, else one derived from the
    /// client password, else none (empty).
    pub fn peer_secret(&self) -> Vec<u8> {
        match (&self.cluster_secret, &self.requirepass) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(p)) => raft_node::transport::derive_secret(p.as_bytes()),
            (None, None) => Vec::new(),
        }
    }

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

    /// `--migrate-max-mbps`, as CONFIG SET last changed it.
    pub fn migrate_max_mbps(&self) -> u64 {
        crate::live::migrate_max_mbps().unwrap_or(self.migrate_max_mbps)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(crate::live::request_timeout_ms().unwrap_or(self.request_timeout_ms))
    }

    /// The client address advertised to the cluster (see `--announce-addr`).
    pub fn announce_addr(&self) -> String {
        if let Some(a) = &self.announce_addr {
            return a.clone();
        }
        let wildcard = matches!(self.bind.as_str(), "0.0.0.0" | "::" | "[::]" | "");
        let host = match self.raft_addr() {
            Some(raft) if wildcard => raft
                .rsplit_once(':')
                .map_or(raft.clone(), |(h, _)| h.to_string()),
            _ => self.bind.clone(),
        };
        format!("{host}:{}", self.port)
    }

    /// Whether `--redirect moved` (strict Redis Cluster redirections) is on.
    pub fn redirect_moved(&self) -> bool {
        self.redirect == "moved"
    }

    /// `--max-write-bytes`, capped so a write always fits one peer frame.
    pub fn write_limit(&self) -> usize {
        self.max_write_bytes.clamp(1024, MAX_WRITE_BYTES_CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut a = vec!["raftkv", "--id", "1", "--cluster", "127.0.0.1:1"];
        a.extend_from_slice(args);
        Config::parse_from(a)
    }

    #[test]
    fn secrets_come_from_flag_file_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "from-file\n").unwrap();
        let mut c = parse(&["--cluster-secret-file", f.to_str().unwrap()]);
        c.resolve_secrets().unwrap();
        assert_eq!(c.cluster_secret.as_deref(), Some("from-file"));
        let mut c = parse(&["--cluster-secret", "argv"]);
        c.resolve_secrets().unwrap();
        assert_eq!(c.peer_secret(), b"argv".to_vec());
        std::fs::write(&f, "\n").unwrap();
        let mut c = parse(&["--requirepass-file", f.to_str().unwrap()]);
        assert!(c.resolve_secrets().is_err(), "empty password accepted");
    }

    #[test]
    fn the_environment_gives_secrets_when_no_flag_does() {
        // The only test touching these variables (tests in this binary share them).
        std::env::set_var(ENV_CLUSTER_SECRET, "from-env");
        let mut c = parse(&[]);
        c.resolve_secrets().unwrap();
        assert_eq!(c.cluster_secret.as_deref(), Some("from-env"));
        let mut c = parse(&["--cluster-secret", "argv-wins"]);
        c.resolve_secrets().unwrap();
        assert_eq!(c.cluster_secret.as_deref(), Some("argv-wins"));
        std::env::remove_var(ENV_CLUSTER_SECRET);
    }

    #[test]
    fn the_announced_address_defaults_to_bind_or_the_raft_host() {
        assert_eq!(parse(&["--port", "7001"]).announce_addr(), "127.0.0.1:7001");
        let wild = parse(&["--bind", "0.0.0.0", "--port", "7001"]);
        assert_eq!(wild.announce_addr(), "127.0.0.1:7001");
        let given = parse(&["--announce-addr", "10.0.0.5:6379"]);
        assert_eq!(given.announce_addr(), "10.0.0.5:6379");
        assert!(!parse(&[]).redirect_moved());
        assert!(parse(&["--redirect", "moved"]).redirect_moved());
    }

    #[test]
    fn a_password_alone_derives_the_peer_secret() {
        let c = parse(&["--requirepass", "pw"]);
        let k = c.peer_secret();
        assert!(!k.is_empty() && k != b"pw".to_vec());
        assert!(parse(&[]).peer_secret().is_empty());
    }
}
