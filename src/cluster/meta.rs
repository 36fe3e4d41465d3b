//! The node's duties toward the cluster metadata group (see `store::cluster_meta` for its
//! state and `crate::groups::MetaView` for the local copy every replica keeps):
//!
//! - the first metadata leader proposes the bootstrap layout (`INIT <groups>`: the even
//!   split) once; a later leader finds it applied and proposes nothing;
//! - every node keeps its own record (client address, raft address, node id) current;
//! - the leader of each data group (and of the metadata group) reports its members.
//!
//! A node that does not lead the metadata group forwards its proposals to the leader,
//! which accepts a node record only for the forwarding node's own id. Nothing here is
//! reachable by clients: `RAFTKV.META` is no client command.
//!
//! [`check_groups`] refuses a `--groups` that disagrees with the metadata: on restart the
//! recorded metadata, and for a node joining with `--join` the layout the cluster reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use resp::{Command, Kind, Protocol, Reply};
use slog::{crit, debug, info, warn, Logger};
use store::cluster_meta::{ClusterMeta, GroupMembers, MetaCmd, NodeRecord};
use tokio::time::{sleep, timeout};

use super::view::node_name;
use crate::config::Config;
use crate::groups::GroupRt;
use crate::server::Server;
use crate::sm::{decode_argv, encode_argv};

/// How often the node compares the metadata with what it knows.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The CLUSTER INFO field giving the number of data groups of the layout.
pub const GROUPS_FIELD: &str = "raftkv_data_groups";

/// Refuses to start when `--groups` disagrees with the cluster's layout: the one this node
/// recorded, or (for a new `--join` node) the one the node it joins through reports.
pub fn check_groups(cfg: &Config, recorded: &ClusterMeta, log: &Logger) -> Result<(), String> {
    let (have, from) = if recorded.groups > 0 {
        (recorded.groups, "this node's metadata".to_string())
    } else if let Some(via) = &cfg.join {
        (
            cluster_groups(via, cfg.requirepass.as_deref(), log)?,
            format!("the cluster at {via}"),
        )
    } else {
        return Ok(());
    };
    if have != cfg.groups {
        return Err(format!(
            "{from} lays the slots out over {have} data group(s) but --groups {} was given; start with --groups {have}",
            cfg.groups
        ));
    }
    Ok(())
}

/// Asks node `via` (until it answers) how many data groups the metadata lays out.
fn cluster_groups(via: &str, pass: Option<&str>, log: &Logger) -> Result<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        loop {
            match crate::join::raw_bulk(via, pass, &["CLUSTER", "INFO"]).await {
                Ok(text) => {
                    let n = text.lines().find_map(|l| {
                        l.strip_prefix(GROUPS_FIELD)?
                            .strip_prefix(':')?
                            .trim()
                            .parse::<u64>()
                            .ok()
                    });
                    match n {
                        Some(n) if n > 0 => return Ok(n),
                        _ => warn!(log, "the cluster has no layout yet; asking again"; "via" => via),
                    }
                }
                Err(e) => warn!(log, "cannot ask the cluster for its layout; retrying"; "via" => via, "err" => %e),
            }
            sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Sorted voters and learners of a group as this node sees them; `None` mid-change.
fn members_of(g: &GroupRt) -> Option<GroupMembers> {
    let m = g.node.status.members();
    if !m.voters_outgoing.is_empty() || m.voters.is_empty() {
        return None;
    }
    let (mut voters, mut learners) = (m.voters, m.learners);
    voters.sort_unstable();
    learners.sort_unstable();
    Some(GroupMembers { voters, learners })
}

impl Server {
    /// This node's record as it should be in the metadata.
    fn my_record(&self, state: &ClusterMeta) -> NodeRecord {
        let id = self.cfg.id;
        NodeRecord {
            name: state
                .nodes
                .get(&id)
                .map_or_else(|| node_name(id), |n| n.name.clone()),
            redis_addr: self.cfg.announce_addr(),
            raft_addr: self.cfg.raft_addr().unwrap_or_default(),
        }
    }

    /// The metadata changes this node should propose now.
    fn wanted_meta(&self) -> Vec<MetaCmd> {
        let state = self.groups.meta_state();
        let meta = self.groups.meta();
        let mut out = Vec::new();
        if state.groups == 0 {
            if meta.node.status.is_leader() {
                out.push(MetaCmd::Init {
                    groups: self.cfg.groups,
                });
            }
            return out;
        }
        let record = self.my_record(&state);
        if state.nodes.get(&self.cfg.id) != Some(&record) {
            out.push(MetaCmd::Node {
                id: self.cfg.id,
                record,
            });
        }
        for g in self.groups.every() {
            // A group removed from the metadata reports nothing (it closes soon).
            let gone = g.id != self.groups.meta().id && !state.is_data_group(g.id);
            if !g.node.status.is_leader() || gone {
                continue;
            }
            if let Some(m) = members_of(&g) {
                if state.members.get(&g.id) != Some(&m) {
                    out.push(MetaCmd::Members {
                        group: g.id,
                        members: m,
                    });
                }
            }
        }
        out
    }

    /// Keeps the metadata current (runs for the life of the node). A node whose data groups
    /// disagree with the applied layout (a founder given another `--groups` than the one
    /// the first metadata leader laid out) stops at once (exit status 1).
    pub async fn meta_loop(self: Arc<Self>) {
        loop {
            sleep(CHECK_EVERY).await;
            let laid_out = self.groups.meta_state().groups;
            let hosted = self.cfg.groups;
            if laid_out > 0 && laid_out != hosted {
                crit!(self.logger, "fatal"; "err" => format!(
                    "the cluster's metadata lays the slots out over {laid_out} data group(s) but --groups {hosted} was given; start with --groups {laid_out}"
                ));
                // Its data groups may already hold entries applied under another slot map.
                raft_node::node::die();
            }
            let cmds = self.wanted_meta();
            if cmds.is_empty() {
                continue;
            }
            let ok = self.propose_meta(&cmds).await;
            debug!(self.logger, "metadata changes proposed"; "n" => cmds.len(), "ok" => ok);
            if ok {
                info!(self.logger, "metadata updated"; "epoch" => self.groups.meta_state().epoch);
            }
        }
    }

    /// Proposes `cmds` in one metadata entry, here or through the metadata leader; true
    /// once applied.
    pub async fn propose_meta(&self, cmds: &[MetaCmd]) -> bool {
        let meta = self.groups.meta();
        let leader = meta.node.status.leader();
        if leader == 0 {
            return false;
        }
        let data: Vec<Vec<u8>> = cmds.iter().map(|c| encode_argv(&c.to_argv())).collect();
        let wait = self.cfg.request_timeout();
        if leader == self.cfg.id {
            matches!(timeout(wait, meta.node.propose(data)).await, Ok(Ok(Ok(_))))
        } else {
            let fwd = self.transport.forward(leader, meta.id, false, data);
            matches!(timeout(wait, fwd).await, Ok(Ok(raw)) if raw.first() == Some(&b'+'))
        }
    }

    /// Serves a request member `from` forwarded to the metadata group: an administration
    /// command (RAFT.NODE ... run on this group) or metadata proposals. `None`: this node
    /// does not lead the group.
    pub async fn serve_forwarded_meta(&self, from: u64, data: &[Vec<u8>]) -> Option<Vec<u8>> {
        let meta = self.groups.meta();
        let argvs: Vec<Vec<Bytes>> = match data.iter().map(|d| decode_argv(d)).collect() {
            Some(a) => a,
            None => return Some(encode(&[Reply::err("ERR malformed forwarded request")])),
        };
        if let [argv] = argvs.as_slice() {
            if let Ok(cmd) = Command::parse(argv) {
                if cmd.kind() == Kind::Admin {
                    let r = self.serve_forwarded_admin(meta.id, cmd).await?;
                    return Some(encode(&[r]));
                }
            }
        }
        for argv in &argvs {
            let allowed = match MetaCmd::parse(argv) {
                Some(MetaCmd::Node { id, .. }) => id == from,
                Some(
                    MetaCmd::Members { .. }
                    | MetaCmd::Group { .. }
                    | MetaCmd::Leave { .. }
                    | MetaCmd::Removed { .. }
                    | MetaCmd::Forget { .. }
                    | MetaCmd::Migrate { .. }
                    | MetaCmd::Migrated { .. }
                    | MetaCmd::Merge { .. }
                    | MetaCmd::Rebalance
                    | MetaCmd::Prefer { .. },
                ) => true,
                _ => false,
            };
            if !allowed {
                let e = Reply::err("ERR not a metadata change a member may forward");
                return Some(encode(&vec![e; data.len()]));
            }
        }
        if !meta.node.status.is_leader() {
            return None;
        }
        let replies =
            match timeout(self.cfg.request_timeout(), meta.node.propose(data.to_vec())).await {
                Ok(Ok(Ok(rs))) => rs,
                Ok(Ok(Err(raft_node::NodeError::NotLeader(_)))) => return None,
                // Metadata changes are idempotent: the proposing node simply proposes again.
                _ => vec![Reply::err("ERR metadata change not known to be applied"); data.len()],
            };
        Some(encode(&replies))
    }
}

fn encode(replies: &[Reply]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for r in replies {
        resp::encode::encode(r, Protocol::Resp2, &mut out);
    }
    out.to_vec()
}
