//! Peer transport over tokio TCP: raft message batches, forwarded client requests and
//! snapshot streams between the nodes of one cluster.
//!
//! Every connection starts with the challenge-response of [`auth`] (both sides prove they
//! hold the cluster secret; the hello names sender, receiver and kind, bound into the
//! MACs); nothing a peer sends is acted on before that. Frames ([`frame`]) are a 4-byte
//! big-endian length and a protobuf message. Raft messages to one peer travel on one
//! outbound connection ([`outbound`]): whatever is queued when the writer wakes goes out
//! as one `PeerBatch`, split so no frame passes `MAX_FRAME`; a message that can never fit
//! is counted and logged, never resent silently. Followers forward client writes to the
//! leader on a second, multiplexed kind ([`forward`]); the receiving side ([`inbound`])
//! hands each forwarded request to the server with the authenticated sender's id, so the
//! server serves only current members. Snapshots stream on a third kind ([`snapshot`]).
//! Inbound connections are capped; peer sockets have TCP keepalive and idle timeouts.
//!
//! Peers are dynamic: membership changes add and remove routes, and a hello carries the
//! sender's address so a new member can answer a leader it has not heard of.

pub mod auth;
mod forward;
pub mod frame;
mod handshake;
mod inbound;
mod outbound;
mod publish;
mod snapshot;
pub mod stats;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use slog::{debug, info, warn, Logger};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::node::{GroupMessage, MessageSink};
use crate::proto::PeerHello;

pub use auth::{derive_secret, secret_eq};
pub use forward::ForwardError;
pub use frame::MAX_FRAME;
pub use publish::{OnPublish, PublishStats};
pub use stats::{PeerStats, SnapStats, TransportStats};

use forward::Forwarder;
use snapshot::RecvSlots;

/// Default cap of simultaneous inbound peer connections (each member opens at most a
/// raft, a forward and a snapshot connection; the rest is headroom for reconnects).
pub const DEFAULT_MAX_INBOUND: usize = 256;

/// Called with each valid raft message from a peer, with its group.
pub type OnMessage = Arc<dyn Fn(u64, Message) + Send + Sync>;
/// Called when a peer cannot be reached.
pub type OnUnreachable = Arc<dyn Fn(u64) + Send + Sync>;
/// Called when sending a group's snapshot to a peer ended: (group, peer, delivered).
pub type OnSnapshotStatus = Arc<dyn Fn(u64, u64, bool) + Send + Sync>;
/// Serves one forwarded request `(from, group, resp3, argvs)` from authenticated peer
/// `from`; resolves to the RESP-encoded reply, or `None` when this node is not the group's
/// leader and proposed nothing (the sender may retry elsewhere).
pub type ForwardHandler = Arc<
    dyn Fn(u64, u64, bool, Vec<Vec<u8>>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>
        + Send
        + Sync,
>;

/// Static facts about the cluster the transport needs.
#[derive(Clone)]
pub struct TransportConfig {
    pub id: u64,
    /// Raft address of every member, this node included.
    pub peers: HashMap<u64, String>,
    /// Cluster secret both sides of every peer connection prove (empty: none, and the
    /// handshake proves nothing).
    pub secret: Vec<u8>,
    /// Root of the snapshot directories, one per group (see [`crate::node::group_snap_dir`]).
    pub snap_dir: PathBuf,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk: usize,
    /// Snapshot send rate limit in bytes per second (0 = none).
    pub snapshot_rate: u64,
    /// Most simultaneous inbound peer connections (0 = [`DEFAULT_MAX_INBOUND`]).
    pub max_inbound: usize,
    /// Base of the idle timeouts (zero = [`DEFAULT_IDLE`]): an outbound raft connection
    /// with nothing to send closes after it, an inbound raft one after twice that, a
    /// forwarding one after twice that on the forwarding side and ten times on the
    /// leader's.
    pub idle: Duration,
}

/// Default base of the idle timeouts.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

impl TransportConfig {
    /// The base idle timeout in effect.
    pub fn idle(&self) -> Duration {
        if self.idle.is_zero() {
            DEFAULT_IDLE
        } else {
            self.idle
        }
    }
}

/// An outbound route to a peer.
struct Route {
    addr: String,
    tx: mpsc::UnboundedSender<GroupMessage>,
}

/// The peer transport of one node.
pub struct Transport {
    cfg: TransportConfig,
    logger: Logger,
    routes: Mutex<HashMap<u64, Route>>,
    forwarders: Mutex<HashMap<u64, Arc<Forwarder>>>,
    on_unreachable: OnUnreachable,
    on_snapshot_status: OnSnapshotStatus,
    rt: tokio::runtime::Handle,
    inbound_permits: Arc<Semaphore>,
    /// Connections still in their handshake (see [`handshake`]).
    handshakes: Arc<Mutex<handshake::Handshakes>>,
    recv_slots: RecvSlots,
    /// Snapshot transfer progress.
    pub snap_stats: SnapStats,
    /// Link counters (INFO).
    pub stats: TransportStats,
    /// Pub/Sub links to the peers (see [`publish`]).
    publish: publish::Links,
}

impl Transport {
    /// Creates the transport and starts one outbound task per peer. Must run inside a
    /// tokio runtime.
    pub fn start(
        cfg: TransportConfig,
        on_unreachable: OnUnreachable,
        on_snapshot_status: OnSnapshotStatus,
        logger: &Logger,
    ) -> Arc<Self> {
        let max = if cfg.max_inbound == 0 {
            DEFAULT_MAX_INBOUND
        } else {
            cfg.max_inbound
        };
        let t = Arc::new(Transport {
            cfg: cfg.clone(),
            logger: logger.clone(),
            routes: Mutex::new(HashMap::new()),
            forwarders: Mutex::new(HashMap::new()),
            on_unreachable,
            on_snapshot_status,
            rt: tokio::runtime::Handle::current(),
            inbound_permits: Arc::new(Semaphore::new(max)),
            handshakes: Default::default(),
            recv_slots: RecvSlots::default(),
            snap_stats: SnapStats::default(),
            stats: TransportStats::default(),
            publish: publish::Links::default(),
        });
        for (&pid, addr) in &cfg.peers {
            t.set_route(pid, Some(addr.clone()));
        }
        t
    }

    /// The hello this node opens a connection of `kind` to `to` with.
    fn hello(&self, to: u64, kind: u32) -> PeerHello {
        PeerHello {
            from: self.cfg.id,
            to,
            kind,
            addr: self
                .cfg
                .peers
                .get(&self.cfg.id)
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Adds, changes (`Some`) or removes (`None`) the route to a peer.
    pub fn set_route(self: &Arc<Self>, pid: u64, addr: Option<String>) {
        if pid == self.cfg.id {
            return;
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match addr {
            None => {
                if routes.remove(&pid).is_some() {
                    info!(self.logger, "peer route removed"; "peer" => pid);
                }
                self.stats.forget(pid);
            }
            Some(addr) => {
                if routes.get(&pid).is_some_and(|r| r.addr == addr) {
                    return;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let _guard = self.rt.enter();
                self.rt
                    .spawn(outbound::run(self.clone(), pid, addr.clone(), rx));
                info!(self.logger, "peer route set"; "peer" => pid, "addr" => &addr);
                routes.insert(pid, Route { addr, tx });
            }
        }
        self.forwarders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    fn route_addr(&self, pid: u64) -> Option<String> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .map(|r| r.addr.clone())
    }

    /// This node's raft address.
    pub fn addr(&self) -> Option<&str> {
        self.cfg.peers.get(&self.cfg.id).map(String::as_str)
    }

    /// A sink for the Raft loop's outgoing messages.
    pub fn sink(self: &Arc<Self>) -> PeerSink {
        PeerSink(self.clone())
    }

    /// INFO lines about the peer links (see [`TransportStats::info_lines`]).
    pub fn info_lines(&self) -> String {
        let addrs: BTreeMap<u64, String> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, r)| (*id, r.addr.clone()))
            .collect();
        self.stats.info_lines(&addrs)
    }

    /// Accepts peer connections on `listener` forever: at most `max_inbound` authenticated
    /// ones at once, and at most [`handshake::MAX_HANDSHAKES`] still in their handshake.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        on_message: OnMessage,
        forward: ForwardHandler,
    ) {
        loop {
            let (sock, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(self.logger, "peer accept failed"; "err" => %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (slot, evicted) = handshake::begin(&self.handshakes);
            if evicted {
                self.stats
                    .handshakes_evicted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            frame::tune(&sock);
            let me = self.clone();
            let on_message = on_message.clone();
            let forward = forward.clone();
            tokio::spawn(async move {
                if let Err(e) = me.inbound(sock, slot, on_message, forward).await {
                    debug!(me.logger, "peer connection closed"; "addr" => %addr, "err" => %e);
                }
            });
        }
    }

    /// Tells `pid`, which just left the group, about its removal with a raft message it
    /// can step (`notice`: the entries up to its removal and a commit index covering them),
    /// so it applies its own removal and stops; it never stops on a bare word. Best
    /// effort, retried a few times: its route is gone, so it goes on a connection of its
    /// own.
    fn notify_removed(self: &Arc<Self>, group: u64, pid: u64, addr: String, notice: Message) {
        let me = self.clone();
        self.rt.spawn(async move {
            for attempt in 0..5u32 {
                match outbound::send_once(&me, pid, &addr, group, notice.clone()).await {
                    Ok(()) => {
                        info!(me.logger, "sent the removed member its removal"; "peer" => pid);
                        return;
                    }
                    Err(e) => {
                        debug!(me.logger, "could not reach removed member"; "peer" => pid, "attempt" => attempt, "err" => %e)
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            warn!(me.logger, "removed member unreachable: it will not learn of its removal until an operator stops it"; "peer" => pid);
        });
    }

    /// Forwards encoded `Argv`s to peer `to`; returns their RESP-encoded replies.
    pub async fn forward(
        &self,
        to: u64,
        group: u64,
        resp3: bool,
        argvs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, ForwardError> {
        for _ in 0..2 {
            // Look the route up first: `set_route` takes the routes lock before the
            // forwarders'.
            let addr = self.route_addr(to);
            let (fwd, fresh) = {
                let mut map = self.forwarders.lock().unwrap_or_else(|p| p.into_inner());
                match map.get(&to).filter(|f| !f.is_closed()) {
                    Some(f) => (f.clone(), false),
                    None => {
                        let addr = addr.ok_or(ForwardError::UnknownPeer(to))?;
                        let f = Arc::new(Forwarder::new(
                            addr,
                            self.hello(to, auth::KIND_FORWARD),
                            self.cfg.secret.clone(),
                            self.cfg.idle() * 2,
                        ));
                        map.insert(to, f.clone());
                        (f, true)
                    }
                }
            };
            match fwd.call(group, resp3, argvs.clone()).await {
                // A reused connection that closed (idle) before taking the request: it was
                // certainly not sent, so one retry on a fresh connection is safe.
                Err(ForwardError::Connect(_)) if !fresh => continue,
                r => return r,
            }
        }
        Err(ForwardError::Connect("connection closed".into()))
    }
}

/// Hands the Raft loop's messages to the per-peer writer tasks.
#[derive(Clone)]
pub struct PeerSink(Arc<Transport>);

impl MessageSink for PeerSink {
    fn send(&self, msgs: Vec<GroupMessage>) {
        let t = &self.0;
        let routes = t.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (group, m) in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                t.rt.spawn(t.clone().send_snapshot(group, m));
                continue;
            }
            match routes.get(&m.to) {
                Some(r) => {
                    if r.tx.send((group, m)).is_err() {
                        t.stats
                            .no_route
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                None => {
                    t.stats
                        .no_route
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    debug!(t.logger, "no route to peer"; "to" => m.to);
                }
            }
        }
    }

    fn set_peer(&self, id: u64, addr: Option<String>) {
        self.0.set_route(id, addr);
    }

    fn notify_removed(&self, group: u64, id: u64, notice: Message) {
        // Called before the route is dropped, so its address is still known.
        if let Some(addr) = self.0.route_addr(id) {
            self.0.notify_removed(group, id, addr, notice);
        }
    }
}
