//! Redis Cluster model of the node: the cluster view (slots → Raft group → members and
//! leader, node ids and addresses), the CLUSTER introspection replies built from it, and the
//! routing decision for one request. Pure code over a view, so it is unit-tested without a
//! cluster; the server builds the view from the Raft state.

pub mod reply;
pub mod route;
pub mod view;
