//! Redis Cluster model of the node: the cluster view (slots → Raft group → members and
//! leader, node ids and addresses), the CLUSTER introspection replies built from it, the
//! routing decision for one request, the error words cluster clients act on, and the
//! node's duties toward the cluster metadata group. The pure parts (`view`, `reply`,
//! `route`, `errors`) are unit-tested without a cluster; `build` makes the view from the
//! Raft state and the metadata, `commands` serves the session, `meta` keeps the metadata
//! current (layout, node records, group members), `migrate` moves slots between groups
//! (`batch` merges small migrations into one run, `copy` copies their records where
//! needed, `pace` limits and reports the copy).

pub mod batch;
pub mod build;
pub mod commands;
pub mod copy;
pub mod errors;
pub mod meta;
pub mod migrate;
pub mod pace;
pub mod relay;
pub mod reply;
pub mod route;
pub mod shardgroup;
pub mod view;

pub use commands::ConnFlags;
