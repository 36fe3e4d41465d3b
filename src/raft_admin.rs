//! Cluster administration over RESP, so `redis-cli` is the operator's tool: the `RAFT.*`
//! commands (snapshot, member listing, adding and removing members, leader transfer) and
//! SHUTDOWN; plus the two background duties that go with membership: a new node asking to
//! be added (`--join`) and a removed node shutting itself down.
//!
//! Membership changes and leader transfers run on the leader; any node accepts them and
//! forwards them there, like writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_node::proto::PeerAddr;
use raft_node::raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use raft_node::{ForwardError, Msg, NodeError, CHANGE_IN_PROGRESS};
use resp::{Command, RaftCmd, Reply};
use slog::{info, warn};
use tokio::time::{sleep, timeout};

use crate::cluster::errors::{self, Failure};
use crate::groups::GroupRt;
use crate::server::Server;
use crate::session::Outcome;
use crate::sm::encode_argv;

fn bulk(s: String) -> Reply {
    Reply::Bulk(Bytes::from(s))
}

fn node_error(e: NodeError) -> Reply {
    errors::reply(Failure::Node(e))
}

impl Server {
    /// Serves SHUTDOWN and the RAFT.* commands.
    pub async fn admin(self: Arc<Self>, argv: Vec<Bytes>, cmd: Command, resp3: bool) -> Outcome {
        let reply = match cmd {
            Command::Shutdown => {
                info!(self.logger, "SHUTDOWN requested by a client");
                self.shutdown.notify_one();
                Reply::ok()
            }
            Command::Raft(RaftCmd::Snapshot) => self.take_snapshot().await,
            Command::Raft(RaftCmd::Nodes) => self.list_nodes(),
            Command::Raft(
                c @ (RaftCmd::ShardQuery
                | RaftCmd::ShardMove { .. }
                | RaftCmd::ShardJoin { .. }
                | RaftCmd::ShardLeave { .. }
                | RaftCmd::Rebalance),
            ) => self.shardgroup(c).await,
            Command::Raft(
                c @ (RaftCmd::NodeAdd { group: Some(g), .. }
                | RaftCmd::NodeRemove { group: Some(g), .. }
                | RaftCmd::NodeReplace { group: Some(g), .. }),
            ) => return self.on_one_group(argv, c, g, resp3).await,
            Command::Raft(c) => return self.on_every_leader(argv, c, resp3).await,
            _ => Reply::err("ERR not an administration command"),
        };
        Outcome::Replies(vec![reply])
    }

    /// Snapshots every data group; replies with the home group's snapshot index. (The
    /// metadata group snapshots by `--snapshot-entries` / `--snapshot-bytes` only: its log
    /// is tiny, and a second transfer to a catching-up node would blur the node-wide
    /// snapshot receive figures of INFO raft.)
    async fn take_snapshot(&self) -> Reply {
        let mut home = None;
        for g in self.groups.all().iter() {
            let r = match timeout(Duration::from_secs(600), g.node.snapshot()).await {
                Ok(Ok(Ok(index))) => Reply::Int(index as i64),
                Ok(Ok(Err(e))) => node_error(e),
                Ok(Err(_)) => Reply::err("TRYAGAIN node is shutting down"),
                Err(_) => Reply::err("ERR snapshot did not finish within 600 seconds"),
            };
            if matches!(r, Reply::Error(_)) {
                return r;
            }
            home.get_or_insert(r);
        }
        home.unwrap_or(Reply::Int(0))
    }

    /// Runs a membership or leadership command in every group, one after the other (the
    /// commands are idempotent per group, so a retry after a partial failure finishes the
    /// rest); the first error stops it. The metadata group comes first (a new node learns
    /// the layout before it holds data). A removal has its own order (see
    /// [`Server::remove_everywhere`]); a leader transfer with `GROUP <g>` runs in that data
    /// group only.
    async fn on_every_leader(&self, argv: Vec<Bytes>, cmd: RaftCmd, resp3: bool) -> Outcome {
        if let RaftCmd::NodeRemove { id, .. } = cmd {
            return self.remove_everywhere(argv, id, resp3).await;
        }
        let meta = self.groups.meta().id;
        let ids: Vec<u64> = match cmd {
            RaftCmd::TransferLeader { group: Some(g), .. } => {
                if self.groups.get(g).is_none() {
                    return Outcome::Replies(vec![Reply::err(format!("ERR no data group {g}"))]);
                }
                vec![g]
            }
            _ => std::iter::once(meta)
                .chain(self.groups.all().iter().map(|g| g.id))
                .collect(),
        };
        let mut last = Outcome::Replies(vec![Reply::ok()]);
        for gid in ids {
            last = self.on_leader(gid, argv.clone(), cmd.clone(), resp3).await;
            if failed(&last) {
                return last;
            }
        }
        last
    }

    /// `RAFT.NODE REMOVE <id>`: removes the node from every group it is a member of, the
    /// metadata group last (a node stays known while it holds data), each change run on
    /// the group's leader: whether the node is a member is the leader's answer, not this
    /// node's view (which may lag: a node that has not yet applied the node's addition to a
    /// group would otherwise skip that group and leave the removal partial). A group whose
    /// leader answers "not a member" is skipped; once the node is in no group it leaves the
    /// metadata's node list (with its leader preferences). Idempotent: a retry after a
    /// partial failure finishes the rest. A created group this node does not host, whose
    /// recorded members include the node, is asked through its members like any request
    /// for such a group (`crate::remote`), before the hosted ones: without it the node
    /// stayed in that group, kept running (it was not out of every group) and, once
    /// forgotten by the metadata, left the group a member short for good.
    async fn remove_everywhere(&self, argv: Vec<Bytes>, id: u64, resp3: bool) -> Outcome {
        let cmd = RaftCmd::NodeRemove { id, group: None };
        let not_member = Reply::err(not_member_text(id));
        let not_member_raw = encode_reply(&not_member);
        let state = self.groups.meta_state();
        let elsewhere = state.data_groups().into_iter().filter(|&gid| {
            let m = state.members_of(gid);
            !self.groups.hosts(gid) && (m.voters.contains(&id) || m.learners.contains(&id))
        });
        let ids = elsewhere
            .map(|gid| (gid, false))
            .chain(self.groups.all().iter().map(|g| (g.id, true)))
            .chain(std::iter::once((self.groups.meta().id, true)))
            .collect::<Vec<(u64, bool)>>();
        let mut removed_any = false;
        for (gid, hosted) in ids {
            let out = if hosted {
                self.on_leader(gid, argv.clone(), cmd.clone(), resp3).await
            } else {
                self.remote_call(gid, vec![argv.clone()], resp3).await
            };
            let skipped = match &out {
                Outcome::Replies(rs) => rs.as_slice() == std::slice::from_ref(&not_member),
                Outcome::Raw(raw) => *raw == not_member_raw,
                Outcome::Overflow(_) => false,
            };
            if skipped {
                continue;
            }
            if failed(&out) {
                return out;
            }
            removed_any = true;
        }
        let state = self.groups.meta_state();
        let known = state.nodes.contains_key(&id) || state.prefer.values().any(|&n| n == id);
        if !removed_any && !known {
            return Outcome::Replies(vec![not_member]);
        }
        let forget = [store::cluster_meta::MetaCmd::Forget { id }];
        if !self.propose_meta(&forget).await {
            warn!(self.logger, "removed node still listed in the metadata"; "id" => id);
        }
        Outcome::Replies(vec![Reply::ok()])
    }

    /// One line per member: `<id> <addr> <suffrage> <flags> match=<index>`.
    fn list_nodes(&self) -> Reply {
        let home = self.groups.home();
        let st = &home.node.status;
        let m = st.members();
        let leader = st.leader();
        let mut lines = Vec::new();
        let mut ids: Vec<(u64, &str)> = m.voters.iter().map(|&i| (i, "voter")).collect();
        ids.extend(m.learners.iter().map(|&i| (i, "learner")));
        ids.extend(
            m.voters_outgoing
                .iter()
                .filter(|i| !m.voters.contains(i) && !m.learners.contains(i))
                .map(|&i| (i, "voter-outgoing")),
        );
        ids.sort_unstable_by_key(|(i, _)| *i);
        for (id, suffrage) in ids {
            let mut flags = vec![if id == leader { "leader" } else { "follower" }];
            if id == st.id {
                flags.push("myself");
            }
            lines.push(bulk(format!(
                "{id} {} {suffrage} {} match={}",
                m.addrs.get(&id).map_or("?", String::as_str),
                flags.join(","),
                m.matched
                    .get(&id)
                    .map_or_else(|| "-".to_string(), u64::to_string),
            )));
        }
        Reply::Array(lines)
    }

    /// Runs a membership or leadership command on the leader (here, or forwarded).
    pub(crate) async fn on_leader(
        &self,
        gid: u64,
        argv: Vec<Bytes>,
        cmd: RaftCmd,
        resp3: bool,
    ) -> Outcome {
        let Some(g) = self.groups.any(gid) else {
            return Outcome::Replies(vec![Reply::err(format!("ERR no group {gid}"))]);
        };
        let deadline = Instant::now() + self.cfg.request_timeout();
        let one = |r: Reply| Outcome::Replies(vec![r]);
        loop {
            if Instant::now() >= deadline {
                return one(Reply::err(
                    "TRYAGAIN no stable leader to run the command on (or another membership change still runs)",
                ));
            }
            let leader = g.node.status.leader();
            if leader == 0 {
                sleep(Duration::from_millis(20)).await;
                continue;
            }
            if g.node.status.is_leader() {
                match self.leader_admin(&g, &cmd).await {
                    Some(r) => return one(r),
                    None => {
                        sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let data = vec![encode_argv(&argv)];
            match timeout(left, self.transport.forward(leader, gid, resp3, data)).await {
                Ok(Ok(raw)) => return Outcome::Raw(raw),
                Ok(Err(
                    ForwardError::NotLeader
                    | ForwardError::Connect(_)
                    | ForwardError::UnknownPeer(_),
                )) => sleep(Duration::from_millis(20)).await,
                Ok(Err(ForwardError::Lost)) => return one(errors::reply(Failure::ForwardLost)),
                Err(_) => return one(errors::reply(Failure::TimedOut)),
            }
        }
    }

    /// A forwarded administration command; `None` when this node does not lead.
    pub async fn serve_forwarded_admin(&self, gid: u64, cmd: Command) -> Option<Reply> {
        let g = self.groups.any(gid)?;
        match cmd {
            Command::Raft(c) if g.node.status.is_leader() => self.leader_admin(&g, &c).await,
            Command::Raft(_) => None,
            _ => Some(Reply::err("ERR malformed forwarded request")),
        }
    }

    /// Runs `cmd` on this node, the leader; `None` if it turns out not to lead (retry).
    async fn leader_admin(&self, g: &GroupRt, cmd: &RaftCmd) -> Option<Reply> {
        let st = &g.node.status;
        let m = st.members();
        let member = |id: u64| {
            m.voters.contains(&id) || m.learners.contains(&id) || m.voters_outgoing.contains(&id)
        };
        match cmd {
            RaftCmd::NodeAdd { id, addr, .. } => {
                if member(*id) {
                    return Some(if m.addrs.get(id) == Some(addr) {
                        Reply::ok()
                    } else {
                        Reply::err(format!(
                            "ERR node {id} is already a member with address {}",
                            m.addrs.get(id).map_or("?", String::as_str)
                        ))
                    });
                }
                if m.addrs.iter().any(|(i, a)| a == addr && member(*i)) {
                    return Some(Reply::err(format!(
                        "ERR address {addr} belongs to another member"
                    )));
                }
                let ctx = PeerAddr {
                    id: *id,
                    addr: addr.clone(),
                    ..Default::default()
                };
                let ctx = match protobuf::Message::write_to_bytes(&ctx) {
                    Ok(c) => c,
                    Err(e) => return Some(Reply::err(format!("ERR {e}"))),
                };
                info!(self.logger, "adding member as learner"; "id" => id, "addr" => addr);
                self.change(g, ConfChangeType::AddLearnerNode, *id, ctx)
                    .await
            }
            RaftCmd::NodeRemove { id, .. } => {
                if !member(*id) {
                    return Some(Reply::err(not_member_text(*id)));
                }
                if m.voters.len() == 1 && m.voters[0] == *id {
                    return Some(Reply::err("ERR cannot remove the last voter"));
                }
                if *id == st.id {
                    return self.step_aside(g, "removing").await;
                }
                info!(self.logger, "removing member"; "id" => id, "group" => g.id);
                self.change(g, ConfChangeType::RemoveNode, *id, Vec::new())
                    .await
            }
            RaftCmd::NodeReplace { old, new, .. } => {
                if !m.voters.contains(old) {
                    return Some(Reply::err(format!("ERR node {old} is not a voter")));
                }
                if !member(*new) {
                    return Some(Reply::err(format!(
                        "ERR node {new} is not a member (add it first with RAFT.NODE ADD)"
                    )));
                }
                if old == new {
                    return Some(Reply::err("ERR old and new node are the same"));
                }
                if *old == st.id {
                    return self.step_aside(g, "replacing").await;
                }
                info!(self.logger, "replacing member (joint consensus)"; "old" => old, "new" => new);
                let mut changes = vec![(ConfChangeType::RemoveNode, *old)];
                if !m.voters.contains(new) {
                    changes.insert(0, (ConfChangeType::AddNode, *new));
                }
                self.change_many(g, &changes, Vec::new()).await
            }
            RaftCmd::TransferLeader { to, .. } => self.transfer_leader(g, *to).await,
            _ => Some(Reply::err("ERR not a leader command")),
        }
    }

    /// Moves `g`'s leadership from this node (its leader) to voter `to` (default: the most
    /// up-to-date other voter). For a data group the choice is first recorded as the
    /// group's preferred leader in the metadata (`PREFER <group> <node>`), so the leader
    /// spread keeps it (see `crate::leaders`) and the node gets the group back after a
    /// restart; nothing moves when it cannot be recorded.
    async fn transfer_leader(&self, g: &GroupRt, to: Option<u64>) -> Option<Reply> {
        let st = &g.node.status;
        let m = st.members();
        let target = match to {
            Some(t) => t,
            None => {
                let best = m
                    .voters
                    .iter()
                    .copied()
                    .filter(|&i| i != st.id)
                    .max_by_key(|i| m.matched.get(i).copied().unwrap_or(0));
                match best {
                    Some(b) => b,
                    None => return Some(Reply::err("ERR no other voter to transfer to")),
                }
            }
        };
        if !m.voters.contains(&target) {
            return Some(Reply::err(format!("ERR node {target} is not a voter")));
        }
        if g.id != self.groups.meta().id && !self.record_preference(g.id, target).await {
            return Some(Reply::err(
                "TRYAGAIN could not record the leader preference in the metadata",
            ));
        }
        if target == st.id {
            return Some(Reply::ok());
        }
        info!(self.logger, "transferring leadership"; "group" => g.id, "to" => target);
        let wait = self.cfg.tick() * (self.cfg.election_ticks as u32 * 3).max(10);
        let deadline = Instant::now() + wait;
        g.node.send(Msg::TransferLeader(target));
        while Instant::now() < deadline {
            if st.leader() == target {
                return Some(Reply::ok());
            }
            sleep(Duration::from_millis(10)).await;
        }
        Some(Reply::err(format!(
            "ERR leader transfer to {target} did not complete in time (leader is {})",
            st.leader()
        )))
    }

    /// Proposes `PREFER <group> <node>` (retrying while the metadata group has no leader,
    /// up to the request timeout); true once applied or already recorded.
    async fn record_preference(&self, group: u64, node: u64) -> bool {
        let deadline = Instant::now() + self.cfg.request_timeout();
        let cmd = [store::cluster_meta::MetaCmd::Prefer { group, node }];
        loop {
            if self.groups.meta_state().preferred_leader(group) == Some(node) {
                return true;
            }
            if self.propose_meta(&cmd).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader is the member to leave: it hands leadership over first; `None` then
    /// tells the caller to retry on the new leader, which runs the change.
    async fn step_aside(&self, g: &GroupRt, doing: &str) -> Option<Reply> {
        crate::hand_over_leadership(&g.node, &self.logger).await;
        g.node.status.is_leader().then(|| {
            Reply::err(format!(
                "TRYAGAIN could not move leadership away before {doing} the leader"
            ))
        })
    }

    async fn change(
        &self,
        g: &GroupRt,
        kind: ConfChangeType,
        id: u64,
        context: Vec<u8>,
    ) -> Option<Reply> {
        self.change_many(g, &[(kind, id)], context).await
    }

    /// Proposes one conf change (v2); several changes enter joint consensus, left
    /// automatically once applied.
    async fn change_many(
        &self,
        g: &GroupRt,
        changes: &[(ConfChangeType, u64)],
        context: Vec<u8>,
    ) -> Option<Reply> {
        let mut cc = ConfChangeV2::default();
        for &(kind, id) in changes {
            let mut ch = ConfChangeSingle::default();
            ch.set_change_type(kind);
            ch.node_id = id;
            cc.mut_changes().push(ch);
        }
        cc.context = context.into();
        match timeout(self.cfg.request_timeout(), g.node.conf_change(cc)).await {
            Ok(Ok(Ok(_))) => Some(Reply::ok()),
            Ok(Ok(Err(NodeError::NotLeader(_)))) => None,
            // Another change (say a learner's promotion) runs first: retry until the deadline.
            Ok(Ok(Err(NodeError::Refused(t)))) if t == CHANGE_IN_PROGRESS => None,
            Ok(Ok(Err(e))) => Some(node_error(e)),
            Ok(Err(_)) => Some(errors::reply(Failure::Gone)),
            Err(_) => Some(errors::reply(Failure::TimedOut)),
        }
    }
}

/// The reply of a removal from a group the node is not a member of.
fn not_member_text(id: u64) -> String {
    format!("ERR node {id} is not a member")
}

/// `reply` as RESP2 bytes (how a forwarded command's reply comes back).
fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    resp::encode::encode(reply, resp::Protocol::Resp2, &mut out);
    out.to_vec()
}

/// True when a command's outcome is (or starts with) an error.
pub(crate) fn failed(out: &Outcome) -> bool {
    match out {
        Outcome::Replies(rs) => rs.iter().any(|r| matches!(r, Reply::Error(_))),
        Outcome::Raw(raw) => raw.first() == Some(&b'-'),
        Outcome::Overflow(_) => true,
    }
}
