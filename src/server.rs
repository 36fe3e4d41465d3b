//! The node's request router: decides for each parsed command whether the session answers
//! it, whether it is a linearizable read (ReadIndex barrier, then the local store), or a
//! write (proposed to Raft here if this node leads, else forwarded to the leader). Every
//! wait is bounded: no leader within `--leader-wait-ms` gives `-CLUSTERDOWN`, no commit or
//! read index within `--request-timeout-ms` gives `-TRYAGAIN`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use raft_node::{ForwardError, NodeError, NodeHandle, Transport};
use resp::{Command, Kind, Protocol, Reply};
use slog::Logger;
use tokio::time::{sleep, timeout};

use crate::config::Config;
use crate::session::{Conn, Outcome, Pending};
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
    pub last_cmd: &'static str,
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
            last_cmd: "NULL",
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
    pub errors: AtomicU64,
}

/// Everything a session needs, shared.
pub struct Server {
    pub cfg: Config,
    pub node: NodeHandle<Reply>,
    pub reader: store::Reader,
    pub transport: Arc<Transport>,
    pub logger: Logger,
    pub clients: Mutex<BTreeMap<u64, ClientInfo>>,
    pub next_client_id: AtomicU64,
    pub stats: Stats,
    pub started: Instant,
    pub run_id: String,
}

/// Wall-clock milliseconds.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn clusterdown() -> Reply {
    Reply::err("CLUSTERDOWN The cluster is down: no Raft leader is known, try again later")
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

    /// Time used to judge expiry on reads: never behind the last applied stamped time.
    pub fn read_time_ms(&self) -> i64 {
        wall_ms().max(self.node.status.last_time_ms.load(Ordering::Acquire))
    }

    /// Routes one request.
    pub fn dispatch(self: &Arc<Self>, conn: &mut Conn, argv: Vec<Bytes>) -> Pending {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let cmd = match Command::parse(&argv) {
            Ok(c) => c,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                return Pending::Ready(e);
            }
        };
        if let Some(c) = self.clients_lock().get_mut(&conn.id) {
            c.last_cmd = cmd.name();
        }
        match cmd.kind() {
            Kind::Local => Pending::Ready(self.local(conn, cmd)),
            Kind::Read => {
                let me = self.clone();
                Pending::Later(Box::pin(async move { Outcome::Reply(me.read(cmd).await) }))
            }
            Kind::Write => {
                let me = self.clone();
                let resp3 = conn.proto == Protocol::Resp3;
                Pending::Later(Box::pin(async move { me.write(argv, resp3).await }))
            }
        }
    }

    /// Waits until a leader is known; false after `--leader-wait-ms`.
    async fn await_leader(&self) -> bool {
        let deadline = Instant::now() + self.cfg.leader_wait();
        while self.node.status.leader() == 0 {
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// A linearizable read: ReadIndex barrier, then the local store.
    pub async fn read(&self, cmd: Command) -> Reply {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.cfg.request_timeout();
        loop {
            if !self.await_leader().await {
                return clusterdown();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Bound one attempt so a leader change is noticed and the read re-issued.
            let attempt = left.min(self.cfg.leader_wait().max(Duration::from_millis(500)));
            match timeout(attempt, self.node.read_barrier()).await {
                Ok(Ok(Ok(()))) => break,
                Ok(Ok(Err(NodeError::Stopped))) | Ok(Err(_)) => {
                    return Reply::err("TRYAGAIN node is shutting down");
                }
                Ok(Ok(Err(_))) | Err(_) => {
                    if Instant::now() >= deadline {
                        return Reply::err("TRYAGAIN read timed out waiting for the Raft read index");
                    }
                }
            }
        }
        let (reply, expired) = self.reader.read(&cmd, self.read_time_ms());
        if !expired.is_empty() && self.node.status.is_leader() {
            // Lazy expiry: delete through Raft; nobody waits for it.
            let _ = self
                .node
                .propose(encode_argv(&Command::del_if_expired_argv(&expired)));
        }
        reply
    }

    /// A write: propose here if leader, else forward to the leader; retried while it is
    /// certain nothing was proposed.
    pub async fn write(&self, argv: Vec<Bytes>, resp3: bool) -> Outcome {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.cfg.request_timeout();
        let data = encode_argv(&argv);
        loop {
            if Instant::now() >= deadline {
                return Outcome::Reply(Reply::err("TRYAGAIN write timed out waiting for a leader"));
            }
            if !self.await_leader().await {
                return Outcome::Reply(clusterdown());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.node.status.is_leader() {
                match timeout(left, self.node.propose(data.clone())).await {
                    Ok(Ok(Ok(reply))) => return Outcome::Reply(reply),
                    Ok(Ok(Err(NodeError::NotLeader(_)))) | Ok(Ok(Err(NodeError::Dropped))) => {
                        // Not proposed, or overwritten before commit: safe to retry.
                        sleep(Duration::from_millis(5)).await;
                    }
                    Ok(Ok(Err(NodeError::Stopped))) | Ok(Err(_)) => {
                        return Outcome::Reply(Reply::err("TRYAGAIN node is shutting down"));
                    }
                    Err(_) => {
                        return Outcome::Reply(Reply::err(
                            "TRYAGAIN write timed out before commit; it may or may not take effect",
                        ))
                    }
                }
            } else {
                let leader = self.node.status.leader();
                if leader == 0 || leader == self.cfg.id {
                    sleep(Duration::from_millis(5)).await;
                    continue;
                }
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                match timeout(left, self.transport.forward(leader, resp3, data.clone())).await {
                    Ok(Ok(raw)) => return Outcome::Raw(raw),
                    Ok(Err(ForwardError::NotLeader)) | Ok(Err(ForwardError::Connect(_))) => {
                        sleep(Duration::from_millis(10)).await;
                    }
                    Ok(Err(ForwardError::UnknownPeer(_))) => {
                        sleep(Duration::from_millis(10)).await;
                    }
                    Ok(Err(ForwardError::Lost)) => {
                        return Outcome::Reply(Reply::err(
                            "TRYAGAIN connection to the leader was lost; the write may or may not take effect",
                        ))
                    }
                    Err(_) => {
                        return Outcome::Reply(Reply::err(
                            "TRYAGAIN write timed out before commit; it may or may not take effect",
                        ))
                    }
                }
            }
        }
    }

    /// Serves a write forwarded by a follower: only proposes if this node leads.
    pub async fn serve_forwarded(&self, resp3: bool, data: Vec<u8>) -> Option<Vec<u8>> {
        let proto = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
        let encode = |r: Reply| {
            let mut out = bytes::BytesMut::new();
            resp::encode::encode(&r, proto, &mut out);
            Some(out.to_vec())
        };
        let Some(argv) = crate::sm::decode_argv(&data) else {
            return encode(Reply::err("ERR malformed forwarded request"));
        };
        match Command::parse(&argv) {
            Ok(c) if c.kind() == Kind::Write => {}
            Ok(_) => return encode(Reply::err("ERR only writes are forwarded")),
            Err(e) => return encode(e),
        }
        if !self.node.status.is_leader() {
            return None;
        }
        match timeout(self.cfg.request_timeout(), self.node.propose(data)).await {
            Ok(Ok(Ok(reply))) => encode(reply),
            Ok(Ok(Err(NodeError::NotLeader(_)))) | Ok(Ok(Err(NodeError::Dropped))) => None,
            Ok(Ok(Err(NodeError::Stopped))) | Ok(Err(_)) => encode(Reply::err("TRYAGAIN node is shutting down")),
            Err(_) => encode(Reply::err(
                "TRYAGAIN write timed out before commit; it may or may not take effect",
            )),
        }
    }

    /// The leader's periodic sweep of expired keys, proposed through Raft.
    pub async fn sweep_loop(self: Arc<Self>) {
        let every = Duration::from_millis(self.cfg.expire_sweep_ms.max(10));
        loop {
            sleep(every).await;
            if !self.node.status.is_leader() {
                continue;
            }
            if !self.reader.has_expired(self.read_time_ms()) {
                continue;
            }
            let rx = self.node.propose(encode_argv(&Command::sweep_argv(1000)));
            let _ = timeout(self.cfg.request_timeout(), rx).await;
        }
    }
}
