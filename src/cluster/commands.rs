//! The session side of the Redis Cluster protocol: the CLUSTER subcommands and the
//! connection flags READONLY / READWRITE / ASKING (answered from the node's cluster view),
//! and the routing check of keyed commands, which calls [`route::route`] once per command.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use resp::{ClusterCmd, Command, Kind, Reply};
use store::slot::key_slot;

use super::route::{self, RedirectMode, Request, Route};
use super::{reply, view::ClusterView};
use crate::groups::GroupRt;
use crate::server::Server;
use crate::session::{Conn, Outcome, Pending};

/// Per-connection Redis Cluster state.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnFlags {
    /// READONLY was sent: reads may run on a replica (still linearizable: ReadIndex).
    pub readonly: bool,
    /// ASKING was sent: the next command may use an importing slot (slot migration, part 2).
    pub asking: bool,
}

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];

impl Server {
    /// Answers a session-local command: the cluster family here, the rest in `admin`.
    pub fn answer_local(self: &Arc<Self>, conn: &mut Conn, cmd: Command) -> Pending {
        match cmd {
            Command::Cluster(c) => self.cluster_cmd(c),
            Command::ReadOnly => {
                conn.cluster.readonly = true;
                Pending::Ready(Reply::ok())
            }
            Command::ReadWrite => {
                conn.cluster.readonly = false;
                Pending::Ready(Reply::ok())
            }
            Command::Asking => {
                conn.cluster.asking = true;
                Pending::Ready(Reply::ok())
            }
            other => Pending::Ready(self.local(conn, other)),
        }
    }

    fn cluster_cmd(self: &Arc<Self>, c: ClusterCmd) -> Pending {
        let ready = |r| Pending::Ready(r);
        match c {
            ClusterCmd::Slots => ready(reply::slots(&self.cluster_view())),
            ClusterCmd::Shards => ready(reply::shards(&self.cluster_view())),
            ClusterCmd::Nodes => ready(Reply::Verbatim(reply::nodes(&self.cluster_view()))),
            ClusterCmd::Info => ready(Reply::Verbatim(reply::info(&self.cluster_view()))),
            ClusterCmd::MyId => ready(bulk(self.cluster_view().name_of(self.cfg.id))),
            ClusterCmd::MyShardId => ready(match reply::my_shard_id(&self.cluster_view()) {
                Some(id) => bulk(id),
                None => Reply::err("ERR this node is not a member of any group"),
            }),
            ClusterCmd::KeySlot(key) => ready(Reply::Int(key_slot(&key) as i64)),
            ClusterCmd::Links => ready(links(&self.cluster_view())),
            ClusterCmd::Help => ready(Reply::Array(
                HELP.iter().map(|s| Reply::Status(s.to_string())).collect(),
            )),
            ClusterCmd::CountKeysInSlot(slot) => self.after_barrier(slot, move |g: &GroupRt| {
                g.reader.count_keys_in_slot(slot, Server::read_time_in(g))
            }),
            ClusterCmd::GetKeysInSlot { slot, count } => self
                .after_barrier(slot, move |g: &GroupRt| {
                    g.reader.keys_in_slot(slot, count, Server::read_time_in(g))
                }),
        }
    }

    /// A read of the local store of `slot`'s group after that group's ReadIndex barrier
    /// (never stale, on any node).
    fn after_barrier(
        self: &Arc<Self>,
        slot: u16,
        read: impl FnOnce(&GroupRt) -> Reply + Send + 'static,
    ) -> Pending {
        let me = self.clone();
        Pending::Later(Box::pin(async move {
            let gid = me.groups.slot_group(slot);
            let Some(g) = me.groups.get(gid) else {
                let e = format!("ERR slot {slot} belongs to group {gid}, which this node does not host: ask a node of that group");
                return Outcome::Replies(vec![Reply::err(e)]);
            };
            let r = match me.read_barrier_in(&g).await {
                Ok(()) => read(&g),
                Err(e) => e,
            };
            Outcome::Replies(vec![r])
        }))
    }

    /// The routing decision for a keyed read or write: the group it runs in (here, or
    /// forwarded to the group's leader, waiting for a leader first), `None` for a keyless
    /// command, or the error this node answers it with (`-CROSSSLOT`, `-CLUSTERDOWN`,
    /// `-MOVED`).
    pub fn route_refusal(&self, conn: &mut Conn, cmd: &Command) -> Result<Option<u64>, Reply> {
        // ASKING lasts one command; it matters only for a slot being imported (part 2).
        conn.cluster.asking = false;
        let keys = cmd.keys();
        let Some(first) = keys.first() else {
            return Ok(None);
        };
        let slot = key_slot(first);
        if !self.cfg.redirect_moved() {
            // Forwarding: every node hosts every group, so the only refusal is CROSSSLOT
            // (no view to build on the hot path).
            if self.groups.len() > 1 && keys[1..].iter().any(|k| key_slot(k) != slot) {
                return Err(Reply::err(route::CROSSSLOT));
            }
            return Ok(Some(self.groups.slot_group(slot)));
        }
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let mode = RedirectMode::Moved;
        let req = Request {
            keys: &keys,
            write: cmd.kind() == Kind::Write,
            readonly: conn.cluster.readonly,
            sharded: self.groups.len() > 1,
        };
        let view = self.routing_view(slot, true);
        match route::route(&view, mode, req) {
            Route::Error(e) => {
                if e.starts_with("MOVED ") {
                    self.stats.moved.fetch_add(1, Ordering::Relaxed);
                }
                Err(Reply::err(e))
            }
            Route::Anywhere => Ok(None),
            Route::Local(g) | Route::Forward { group: g, .. } | Route::NoLeader(g) => Ok(Some(g)),
        }
    }
}

/// CLUSTER LINKS, minimal: one outgoing link per peer (raftkv's peer connections carry
/// Raft, not the cluster bus, so the buffer fields are 0).
fn links(view: &ClusterView) -> Reply {
    let entry = |name: String| {
        Reply::Map(vec![
            (bulk("direction"), bulk("to")),
            (bulk("node"), bulk(name)),
            (bulk("create-time"), Reply::Int(0)),
            (bulk("events"), bulk("rw")),
            (bulk("send-buffer-allocated"), Reply::Int(0)),
            (bulk("send-buffer-used"), Reply::Int(0)),
        ])
    };
    Reply::Array(
        view.nodes
            .values()
            .filter(|n| n.id != view.myself)
            .map(|n| entry(n.name.clone()))
            .collect(),
    )
}
