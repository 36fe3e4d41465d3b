//! The node's request router: decides for each parsed command whether the session answers
//! it, whether it is a linearizable read (ReadIndex barrier, then the local store), or a
//! write (proposed to Raft here if this node leads, else forwarded to the leader). Every
//! wait is bounded: no leader within `--leader-wait-ms` gives `-CLUSTERDOWN`, no read index
//! within `--request-timeout-ms` gives `-TRYAGAIN`, a write with no commit by then
//! `-UNCERTAIN` (see `cluster::errors`, the one mapping of failures to replies).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_node::{ForwardError, NodeError, NodeHandle, Transport};
use resp::{Command, Kind, Protocol, Reply};
use slog::Logger;
use tokio::time::{sleep, timeout};

use crate::cluster::errors::{self, Failure};
use crate::config::Config;
use crate::groups::{GroupRt, Groups};
use crate::session::{reply_bytes, Conn, Group, Outcome, Pending};
use crate::sm::encode_argv;

/// One connected client, for CLIENT LIST / INFO.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub name: Bytes,
    pub lib_name: Bytes,
    pub lib_ver: Bytes,
    pub created: Instant,
    pub resp: u8,
    /// Name of the last command, shared with the connection (uncontended per-client lock,
    /// so the hot path never takes the registry lock).
    pub last_cmd: Arc<Mutex<&'static str>>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String) -> Self {
        ClientInfo {
            id,
            addr,
            name: Bytes::new(),
            lib_name: Bytes::new(),
            lib_ver: Bytes::new(),
            created: Instant::now(),
            resp: 2,
            last_cmd: Arc::new(Mutex::new("NULL")),
        }
    }
}

/// Counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    pub commands: AtomicU64,
    pub connections: AtomicU64,
    pub rejected: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub forwarded: AtomicU64,
    /// -MOVED replies (`--redirect moved`).
    pub moved: AtomicU64,
    pub errors: AtomicU64,
    /// The read path's pool for heavy reads and its in-flight lazy deletes.
    pub read_work: crate::reads::ReadWork,
}

/// Everything a session needs, shared.
pub struct Server {
    pub cfg: Config,
    /// The home group's raft handle (group 1: node records, membership commands).
    pub node: NodeHandle<Reply>,
    /// The home group's store reader.
    pub reader: store::Reader,
    /// Every data group this node hosts, and the slot map.
    pub groups: Arc<Groups>,
    pub transport: Arc<Transport>,
    pub logger: Logger,
    pub clients: Mutex<BTreeMap<u64, ClientInfo>>,
    pub next_client_id: AtomicU64,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
    /// Notified when a client asks the node to shut down (SHUTDOWN) or it was removed.
    pub shutdown: tokio::sync::Notify,
    /// Client connections accepted and not yet closed (counted at accept, so a burst of
    /// connections cannot pass `--maxclients` before their sessions register).
    pub open_conns: std::sync::atomic::AtomicUsize,
    /// What opening a data group at runtime takes.
    pub host: crate::hosting::Host,
    /// What this node's slot-migration coordinator did (see `cluster::migrate`).
    pub migration: crate::cluster::migrate::Progress,
}

pub use raft_node::node::wall_ms;

/// Most commands in one group (one proposal or one read barrier).
const MAX_GROUP: usize = 1024;

/// How long a proposal the leader drops is retried before it is refused (not applied).
const DROPPED_RETRY: Duration = Duration::from_secs(1);

/// Most reply bytes relayed to a follower in one forwarded response: one peer frame,
/// less room for the envelope.
pub(crate) const RELAY_MAX: usize = raft_node::transport::MAX_FRAME - (1 << 20);

/// Reads of a read group run before the rest is sized from their replies.
const FIRST_READ_CHUNK: usize = 32;

/// True once proposals have been dropped for [`DROPPED_RETRY`] (the first drop starts it).
pub(crate) fn gave_up_retrying(since: &mut Option<Instant>) -> bool {
    since.get_or_insert_with(Instant::now).elapsed() >= DROPPED_RETRY
}

/// A write that could not travel as one peer frame: refused, certainly not applied.
pub(crate) fn too_large(what: &str, size: usize, limit: usize) -> Reply {
    Reply::err(format!(
        "ERR {what} of {size} bytes exceeds the {limit}-byte limit of one Raft entry (--max-write-bytes); it was not applied"
    ))
}

impl Server {
    pub fn register_client(&self, c: ClientInfo) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.clients_lock().insert(c.id, c);
    }

    pub fn unregister_client(&self, id: u64) {
        self.clients_lock().remove(&id);
    }

    pub fn clients_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ClientInfo>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cluster time of one group (its own stamps judge expiry of its keys).
    pub fn read_time_in(g: &GroupRt) -> i64 {
        g.node.status.cluster_time_ms()
    }

    /// The group a batch of keyed commands belongs to (the first keyed command's), else
    /// the home group.
    pub fn group_of_argvs(&self, argvs: &[Vec<Bytes>]) -> u64 {
        argvs
            .iter()
            .filter_map(|a| Command::parse(a).ok())
            .find_map(|c| c.keys().first().map(|k| self.groups.key_group(k)))
            .unwrap_or_else(|| self.groups.home_id())
    }

    pub(crate) fn group(&self, id: u64) -> Arc<GroupRt> {
        self.groups
            .get(id)
            .unwrap_or_else(|| self.groups.home().clone())
    }

    /// Routes one request: local commands are answered now (after flushing the group
    /// before them, to keep order); reads and writes join the connection's current group.
    pub fn dispatch(self: &Arc<Self>, conn: &mut Conn, argv: Vec<Bytes>) -> Vec<Pending> {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        let cmd = match Command::parse(&argv) {
            Ok(c) => c,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                out.extend(self.flush_group(conn));
                out.push(self.queue_failed(conn, &argv, e));
                return out;
            }
        };
        if !conn.authenticated
            && !matches!(
                cmd,
                Command::Auth { .. } | Command::Hello { .. } | Command::Quit
            )
        {
            out.extend(self.flush_group(conn));
            out.push(Pending::Ready(Reply::err(
                "NOAUTH Authentication required.",
            )));
            return out;
        }
        *conn.last_cmd.lock().unwrap_or_else(|p| p.into_inner()) = cmd.name();
        if conn.multi.is_none() {
            if let Some(p) = self.pubsub_intercept(conn, &cmd) {
                out.extend(self.flush_group(conn));
                out.push(p);
                return out;
            }
        }
        let cmd = self.script_route(cmd);
        if conn.multi.is_some() || cmd.is_transaction() {
            out.extend(self.flush_group(conn));
            out.push(self.transaction(conn, argv, cmd));
            return out;
        }
        match cmd.kind() {
            Kind::Local => {
                out.extend(self.flush_group(conn));
                out.push(self.answer_local(conn, cmd));
            }
            Kind::Admin => {
                out.extend(self.flush_group(conn));
                let me = self.clone();
                let resp3 = conn.proto == Protocol::Resp3;
                out.push(Pending::Later(Box::pin(async move {
                    me.admin(argv, cmd, resp3).await
                })));
            }
            _ if crate::fanout::fans_out(&cmd, self.groups.len()) => {
                out.extend(self.flush_group(conn));
                let (me, resp3) = (self.clone(), conn.proto == Protocol::Resp3);
                out.push(Pending::Later(Box::pin(async move {
                    me.fan_out(argv, cmd, resp3).await
                })));
            }
            Kind::Write if cmd.spec().has_flag("blocking") => {
                out.extend(self.flush_group(conn));
                if let Err(refused) = self.route_refusal(conn, &cmd) {
                    out.push(Pending::Ready(refused));
                    return out;
                }
                let (me, resp3) = (self.clone(), conn.proto == Protocol::Resp3);
                out.push(Pending::Later(Box::pin(
                    me.blocking(conn.id, argv, cmd, resp3),
                )));
            }
            Kind::Read | Kind::Write => {
                // Redis Cluster routing (src/cluster/route.rs): -MOVED, -CROSSSLOT, ...
                let gid = match self.route_refusal(conn, &cmd) {
                    Err(refused) => {
                        out.extend(self.flush_group(conn));
                        out.push(Pending::Ready(refused));
                        return out;
                    }
                    Ok(g) => g.unwrap_or_else(|| self.groups.home_id()),
                };
                if gid != conn.raft_group && !matches!(conn.group, Group::None) {
                    // One batch is one group's proposal or read barrier.
                    out.extend(self.flush_group(conn));
                }
                conn.raft_group = gid;
                if let Err(refused) = self.make_room(conn, &argv, cmd.kind(), &mut out) {
                    out.push(Pending::Ready(refused));
                    return out;
                }
                self.join_group(conn, argv, cmd);
            }
        }
        let full = match &conn.group {
            Group::Reads(c) => c.len() >= MAX_GROUP,
            Group::Writes(a) => a.len() >= MAX_GROUP,
            Group::None => false,
        };
        if full {
            out.extend(self.flush_group(conn));
        }
        out
    }

    /// Keeps every proposal within `--max-write-bytes`, so it fits one peer frame: a write
    /// larger than that alone is refused before it is proposed (after the group before it,
    /// to keep order); a command that would take the group past it starts a new group.
    fn make_room(
        self: &Arc<Self>,
        conn: &mut Conn,
        argv: &[Bytes],
        kind: Kind,
        out: &mut Vec<Pending>,
    ) -> Result<(), Reply> {
        let size = crate::sm::encoded_len(argv);
        let limit = self.cfg.write_limit();
        if kind == Kind::Write && size > limit {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            out.extend(self.flush_group(conn));
            return Err(too_large("write", size, limit));
        }
        if conn.group_bytes > 0 && conn.group_bytes.saturating_add(size) > limit {
            out.extend(self.flush_group(conn));
        }
        conn.group_bytes = conn.group_bytes.saturating_add(size);
        Ok(())
    }

    /// Adds a data command to the connection's group (a read joins a write group and then
    /// runs at apply time; a write turns a read group into a write group).
    fn join_group(&self, conn: &mut Conn, argv: Vec<Bytes>, cmd: Command) {
        conn.stats.joined();
        match cmd.kind() {
            Kind::Read => match &mut conn.group {
                Group::Writes(argvs) => argvs.push(argv),
                Group::Reads(cmds) => cmds.push((argv, cmd)),
                Group::None => conn.group = Group::Reads(vec![(argv, cmd)]),
            },
            _ => match &mut conn.group {
                Group::Writes(argvs) => argvs.push(argv),
                Group::Reads(cmds) => {
                    let mut argvs: Vec<Vec<Bytes>> =
                        std::mem::take(cmds).into_iter().map(|(a, _)| a).collect();
                    argvs.push(argv);
                    conn.group = Group::Writes(argvs);
                }
                Group::None => conn.group = Group::Writes(vec![argv]),
            },
        }
    }

    /// Closes the connection's collected group into one pending reply; the session's
    /// writer runs it once every earlier reply is done.
    pub fn flush_group(self: &Arc<Self>, conn: &mut Conn) -> Option<Pending> {
        let group = std::mem::replace(&mut conn.group, Group::None);
        conn.group_bytes = 0;
        let me = self.clone();
        let resp3 = conn.proto == Protocol::Resp3;
        let gid = conn.raft_group;
        let p = match group {
            Group::None => None,
            Group::Reads(reads) => Some(Pending::Later(Box::pin(async move {
                me.read_routed(gid, reads, resp3).await
            }))),
            Group::Writes(argvs) => Some(Pending::Later(Box::pin(async move {
                me.write_routed(gid, argvs, resp3).await
            }))),
        };
        p.map(|p| conn.stats.flushed(p))
    }

    /// Runs a read group in chunks so its replies never hold much more than
    /// `--client-output-buffer-limit` (each chunk is one [`Server::read`], sized from the
    /// replies so far): once they pass it the connection is closed, as Redis does, and the
    /// rest of the group is not read. A group of small replies takes two chunks at most.
    pub(crate) async fn read_bounded(&self, gid: u64, mut cmds: Vec<Command>) -> Outcome {
        let limit = self.cfg.client_output_buffer_limit;
        if limit == 0 || cmds.len() <= FIRST_READ_CHUNK {
            // The session's writer checks the limit once the replies are in.
            return Outcome::Replies(self.read_in(gid, cmds).await);
        }
        let mut replies = Vec::with_capacity(cmds.len());
        let mut bytes = 0usize;
        let mut chunk = FIRST_READ_CHUNK;
        while !cmds.is_empty() {
            let rest = cmds.split_off(chunk.min(cmds.len()));
            let rs = self.read_in(gid, std::mem::replace(&mut cmds, rest)).await;
            bytes = bytes.saturating_add(rs.iter().map(reply_bytes).sum());
            if bytes > limit {
                return Outcome::Overflow(bytes);
            }
            replies.extend(rs);
            // Room left, at the mean reply size so far, kept to half for safety.
            let mean = (bytes / replies.len()).max(1);
            chunk = ((limit - bytes) / 2 / mean).max(1);
        }
        Outcome::Replies(replies)
    }

    /// Waits until group `g` has a known leader; false after `--leader-wait-ms`.
    async fn await_leader(&self, g: &GroupRt) -> bool {
        let deadline = Instant::now() + self.cfg.leader_wait();
        while g.node.status.leader() == 0 {
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Linearizable reads: one ReadIndex barrier, then the whole group on one snapshot of
    /// the local store (heavy groups off the tokio workers, see [`crate::reads`]).
    pub async fn read_in(&self, gid: u64, cmds: Vec<Command>) -> Vec<Reply> {
        self.stats
            .reads
            .fetch_add(cmds.len() as u64, Ordering::Relaxed);
        let Some(g) = self.groups.get(gid) else {
            let e = Reply::err(format!("ERR group {gid} is not hosted on this node"));
            return vec![e; cmds.len()];
        };
        if let Err(e) = self.read_barrier_in(&g).await {
            return vec![e; cmds.len()];
        }
        let now = Self::read_time_in(&g);
        let (replies, expired) = self.stats.read_work.run(&g.reader, cmds, now).await;
        if !expired.is_empty() && g.node.status.is_leader() {
            self.lazy_delete(&g, expired);
        }
        replies
    }

    /// Lazy expiry: deletes expired keys through Raft, at most one delete in flight per
    /// key; nobody waits for it.
    fn lazy_delete(&self, g: &GroupRt, expired: Vec<Bytes>) {
        let keys = self.stats.read_work.claim(expired);
        if keys.is_empty() {
            return;
        }
        let rx = g
            .node
            .propose(vec![encode_argv(&Command::del_if_expired_argv(&keys))]);
        let releaser = self.stats.read_work.releaser();
        let wait = self.cfg.request_timeout();
        tokio::spawn(async move {
            let _ = timeout(wait, rx).await;
            releaser.release(&keys);
        });
    }

    /// Waits until a linearizable read of group `g` may run on this node.
    pub(crate) async fn read_barrier_in(&self, g: &GroupRt) -> Result<(), Reply> {
        let deadline = Instant::now() + self.cfg.request_timeout();
        loop {
            if !self.await_leader(g).await {
                return Err(errors::reply(Failure::NoLeader));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Bound one attempt so a leader change is noticed and the read re-issued.
            let attempt = left.min(self.cfg.leader_wait().max(Duration::from_millis(500)));
            match timeout(attempt, g.node.read_barrier()).await {
                Ok(Ok(Ok(()))) => return Ok(()),
                Ok(Ok(Err(NodeError::Stopped))) | Ok(Err(_)) => {
                    return Err(errors::reply(Failure::ReadStopped));
                }
                Ok(Ok(Err(_))) | Err(_) => {
                    if Instant::now() >= deadline {
                        return Err(errors::reply(Failure::ReadTimedOut));
                    }
                }
            }
        }
    }

    /// A write: propose here if leader, else forward to the leader; retried while it is
    /// certain nothing was proposed.
    pub async fn write(&self, argvs: Vec<Vec<Bytes>>, resp3: bool) -> Outcome {
        let gid = self.group_of_argvs(&argvs);
        self.write_in(gid, argvs, resp3).await
    }

    /// A write of group `gid` (see [`Server::write`]).
    pub async fn write_in(&self, gid: u64, argvs: Vec<Vec<Bytes>>, resp3: bool) -> Outcome {
        let Some(g) = self.groups.get(gid) else {
            return self.remote_call(gid, argvs, resp3).await;
        };
        let n = argvs.len();
        self.stats.writes.fetch_add(n as u64, Ordering::Relaxed);
        let deadline = Instant::now() + self.cfg.request_timeout();
        let data: Vec<Vec<u8>> = argvs.iter().map(|a| encode_argv(a)).collect();
        let fail = |f: Failure| Outcome::Replies(vec![errors::reply(f); n]);
        let mut dropped_since = None;
        let mut counted = false;
        loop {
            if Instant::now() >= deadline {
                return fail(Failure::NoLeaderInTime);
            }
            if !self.await_leader(&g).await {
                return fail(Failure::NoLeader);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if g.node.status.is_leader() {
                match timeout(left, g.node.propose(data.clone())).await {
                    Ok(Ok(Ok(replies))) => return Outcome::Replies(replies),
                    Ok(Ok(Err(NodeError::NotLeader(_)))) => {
                        // Not proposed: safe to retry.
                        sleep(Duration::from_millis(5)).await;
                    }
                    Ok(Ok(Err(NodeError::Dropped))) => {
                        // Refused or overwritten before commit: safe to retry, briefly.
                        if gave_up_retrying(&mut dropped_since) {
                            return fail(Failure::Node(NodeError::Dropped));
                        }
                        sleep(Duration::from_millis(5)).await;
                    }
                    Ok(Ok(Err(e))) => return fail(Failure::Node(e)),
                    Ok(Err(_)) => return fail(Failure::Gone),
                    Err(_) => return fail(Failure::TimedOut),
                }
            } else {
                let leader = g.node.status.leader();
                if leader == 0 || leader == self.cfg.id {
                    sleep(Duration::from_millis(5)).await;
                    continue;
                }
                // Commands, not forward calls (a batch is one call), each counted once
                // however often it is retried.
                if !counted {
                    counted = true;
                    self.stats.forwarded.fetch_add(n as u64, Ordering::Relaxed);
                }
                let call = self.transport.forward(leader, gid, resp3, data.clone());
                match timeout(left, call).await {
                    Ok(Ok(raw)) => return Outcome::Raw(raw),
                    // Certainly not proposed: retry (the leader may have moved).
                    Ok(Err(
                        ForwardError::NotLeader
                        | ForwardError::Connect(_)
                        | ForwardError::UnknownPeer(_),
                    )) => {
                        sleep(Duration::from_millis(10)).await;
                    }
                    Ok(Err(ForwardError::Lost)) => return fail(Failure::ForwardLost),
                    Err(_) => return fail(Failure::TimedOut),
                }
            }
        }
    }
}
