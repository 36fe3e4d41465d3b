//! Fault-injection harness and linearizability checker for raftkv: starts a real 3-node
//! cluster behind harness-owned TCP proxies, runs concurrent Redis clients while injecting
//! seeded faults (kill -9, SIGSTOP, partitions, one-way link cuts), records the history and
//! checks it per key against register and counter models.

pub mod checker;
pub mod history;
