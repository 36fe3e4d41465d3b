//! Consensus layer of raftkv: a raft-rs `RawNode` per group with RocksDB-backed storage
//! ([`storage`]), the Ready loop with group commit and ReadIndex reads ([`node`]), and the
//! tokio peer transport that carries raft messages and forwarded client requests
//! ([`transport`]), and cluster time ([`clock`]); every peer raft message passes [`filter`]
//! before it is stepped. It knows nothing of RESP: commands are opaque bytes.

pub mod clock;
pub mod filter;
pub mod node;
pub mod ratelimit;
pub mod removal;
pub mod snap;
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
    start, Members, Msg, NodeConfig, NodeError, NodeHandle, SnapshotJob, StateMachine, Status,
};
pub use raft;
pub use storage::{RocksStorage, CF_RAFT};
pub use transport::{ForwardError, ForwardHandler, Transport, TransportConfig};
