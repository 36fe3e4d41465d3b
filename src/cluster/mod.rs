//! Redis Cluster model of the node: the cluster view (slots → Raft group → members and
//! leader, node ids and addresses), the CLUSTER introspection replies built from it, the
//! routing decision for one request, the error words cluster clients act on, and the
//! replicated record of each node's client address. The pure parts (`view`, `reply`,
//! `route`, `errors`) are unit-tested without a cluster; `build` makes the view from the
//! Raft state, `commands` serves the session, `announce` records this node's address.

pub mod announce;
pub mod build;
pub mod commands;
pub mod errors;
pub mod reply;
pub mod route;
pub mod view;

pub use commands::ConnFlags;
