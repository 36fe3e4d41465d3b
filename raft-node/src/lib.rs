//! Consensus layer of raftkv: many Raft groups per node, each a sans-IO [`peer::Peer`]
//! (raft-rs `RawNode`, proposals, ReadIndex reads, membership, snapshots) over
//! RocksDB-backed storage ([`storage`], its log tail in memory in [`entry_cache`]), all served by one [`driver`] thread with one
//! `WriteBatch` and one WAL fsync per round; the public API in [`node`]; the
//! tokio peer transport that carries raft messages and forwarded client requests
//! ([`transport`]), and cluster time ([`clock`]); every peer raft message passes [`filter`]
//! before it is stepped. It knows nothing of RESP: commands are opaque bytes.

pub mod clock;
pub mod driver;
pub mod entry_cache;
pub mod filter;
pub mod node;
pub mod peer;
pub mod ratelimit;
pub mod removal;
pub mod snap;
pub mod status;
pub mod storage;
pub mod transport;

/// Generated protobuf messages (`proto/raftkv.proto`).
#[allow(
    clippy::all,
    missing_docs,
    unused,
    nonstandard_style,
    elided_lifetimes_in_paths,
    mismatched_lifetime_syntaxes
)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/raftkv.rs"));
}

pub use node::{
    group_snap_dir, start, start_groups, CacheBudget, DriverConfig, GroupMessage, Members, Msg,
    NodeConfig, NodeError, NodeHandle, SnapshotJob, StateMachine, Status, CHANGE_IN_PROGRESS,
};
pub use raft;
pub use storage::{RocksStorage, CF_RAFT};
pub use transport::{ForwardError, ForwardHandler, Transport, TransportConfig};
