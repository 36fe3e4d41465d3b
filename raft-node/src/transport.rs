//! Peer transport over tokio TCP: raft message batches and forwarded client requests.
//!
//! Every connection starts with a `PeerHello` frame naming sender, receiver, kind and the
//! cluster secret; frames are a 4-byte big-endian length and a protobuf message. Raft
//! messages to one peer travel on one outbound connection, and whatever is queued when the
//! writer wakes goes out as one `PeerBatch` (one write, one flush). Followers forward client
//! writes to the leader on a second, multiplexed connection kind. Anything malformed or from
//! an unknown sender is logged and dropped; it never reaches the Raft loop.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use slog::{debug, info, warn, Logger};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::node::MessageSink;
use crate::proto::{ForwardRequest, ForwardResponse, PeerBatch, PeerHello};

const MAGIC: u32 = 0x524b_5631; // "RKV1"
const KIND_RAFT: u32 = 1;
const KIND_FORWARD: u32 = 2;
/// Largest frame accepted from a peer.
pub const MAX_FRAME: usize = 64 << 20;
/// Most bytes put in one raft message batch.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Called with each valid raft message from a peer.
pub type OnMessage = Arc<dyn Fn(Message) + Send + Sync>;
/// Called when a peer cannot be reached.
pub type OnUnreachable = Arc<dyn Fn(u64) + Send + Sync>;
/// Serves one forwarded request; resolves to the RESP-encoded reply, or `None` when this
/// node is not the leader and proposed nothing (the sender may retry elsewhere).
pub type ForwardHandler = Arc<
    dyn Fn(bool, Vec<Vec<u8>>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>
        + Send
        + Sync,
>;

/// Why a forwarded request got no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    #[error("unknown peer {0}")]
    UnknownPeer(u64),
    #[error("connection to peer failed: {0}")]
    Connect(String),
    #[error("connection to peer lost")]
    Lost,
    /// The peer is not the leader; nothing was proposed.
    #[error("peer is not the leader")]
    NotLeader,
}

/// Static facts about the cluster the transport needs.
#[derive(Clone)]
pub struct TransportConfig {
    pub id: u64,
    pub group_id: u64,
    /// Raft address of every member, this node included.
    pub peers: HashMap<u64, String>,
    /// Shared secret peers must present (empty: none).
    pub secret: Vec<u8>,
}

/// The peer transport of one node.
pub struct Transport {
    cfg: TransportConfig,
    logger: Logger,
    raft_tx: HashMap<u64, mpsc::UnboundedSender<Message>>,
    forwarders: Mutex<HashMap<u64, Arc<Forwarder>>>,
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(body).await
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds limit"),
        ));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Compares secrets in time independent of where they differ.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl Transport {
    /// Creates the transport and starts one outbound task per peer. Must run inside a
    /// tokio runtime.
    pub fn start(
        cfg: TransportConfig,
        on_unreachable: OnUnreachable,
        logger: &Logger,
    ) -> Arc<Self> {
        let mut raft_tx = HashMap::new();
        for (&pid, addr) in &cfg.peers {
            if pid == cfg.id {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            raft_tx.insert(pid, tx);
            let hello = PeerHello {
                magic: MAGIC,
                from: cfg.id,
                to: pid,
                kind: KIND_RAFT,
                secret: cfg.secret.clone(),
                ..Default::default()
            };
            tokio::spawn(outbound(
                pid,
                addr.clone(),
                hello,
                cfg.group_id,
                rx,
                on_unreachable.clone(),
                logger.new(slog::o!("peer" => pid)),
            ));
        }
        Arc::new(Transport {
            cfg,
            logger: logger.clone(),
            raft_tx,
            forwarders: Mutex::new(HashMap::new()),
        })
    }

    /// A sink for the Raft loop's outgoing messages.
    pub fn sink(self: &Arc<Self>) -> PeerSink {
        PeerSink(self.clone())
    }

    /// Accepts peer connections on `listener` forever.
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
            let _ = sock.set_nodelay(true);
            let me = self.clone();
            let on_message = on_message.clone();
            let forward = forward.clone();
            tokio::spawn(async move {
                if let Err(e) = me.inbound(sock, on_message, forward).await {
                    debug!(me.logger, "peer connection closed"; "addr" => %addr, "err" => %e);
                }
            });
        }
    }

    async fn inbound(
        &self,
        sock: TcpStream,
        on_message: OnMessage,
        forward: ForwardHandler,
    ) -> std::io::Result<()> {
        let (mut r, w) = sock.into_split();
        let hello = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut r))
            .await
            .map_err(invalid)??;
        let hello = PeerHello::parse_from_bytes(&hello).map_err(invalid)?;
        if hello.magic != MAGIC
            || hello.to != self.cfg.id
            || !self.cfg.peers.contains_key(&hello.from)
            || !secret_eq(&hello.secret, &self.cfg.secret)
        {
            warn!(self.logger, "rejected peer connection"; "from" => hello.from, "to" => hello.to);
            return Err(invalid("bad hello"));
        }
        let from = hello.from;
        match hello.kind {
            KIND_RAFT => loop {
                let frame = read_frame(&mut r).await?;
                let batch = match PeerBatch::parse_from_bytes(&frame) {
                    Ok(b) if b.group_id == self.cfg.group_id => b,
                    Ok(b) => {
                        warn!(self.logger, "dropping batch for unknown group"; "from" => from, "group" => b.group_id);
                        continue;
                    }
                    Err(e) => {
                        warn!(self.logger, "dropping malformed peer batch"; "from" => from, "err" => %e);
                        continue;
                    }
                };
                for raw in batch.msgs {
                    match Message::parse_from_bytes(&raw) {
                        Ok(m) if m.from == from && m.to == self.cfg.id => on_message(m),
                        Ok(m) => {
                            warn!(self.logger, "dropping misaddressed raft message"; "from" => m.from, "to" => m.to, "conn_from" => from)
                        }
                        Err(e) => {
                            warn!(self.logger, "dropping malformed raft message"; "from" => from, "err" => %e)
                        }
                    }
                }
            },
            KIND_FORWARD => {
                let (tx, mut rx) = mpsc::unbounded_channel::<ForwardResponse>();
                let writer = tokio::spawn(async move {
                    let mut w = BufWriter::new(w);
                    while let Some(resp) = rx.recv().await {
                        let mut batch = vec![resp];
                        while let Ok(more) = rx.try_recv() {
                            batch.push(more);
                            if batch.len() >= 1024 {
                                break;
                            }
                        }
                        for resp in batch {
                            let Ok(bytes) = resp.write_to_bytes() else {
                                continue;
                            };
                            if write_frame(&mut w, &bytes).await.is_err() {
                                return;
                            }
                        }
                        if w.flush().await.is_err() {
                            return;
                        }
                    }
                });
                let result = loop {
                    let frame = match read_frame(&mut r).await {
                        Ok(f) => f,
                        Err(e) => break Err(e),
                    };
                    let req = match ForwardRequest::parse_from_bytes(&frame) {
                        Ok(req) => req,
                        Err(e) => break Err(invalid(e)),
                    };
                    let fut = forward(req.resp3, req.argvs.into_vec());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let reply = fut.await;
                        let _ = tx.send(ForwardResponse {
                            id: req.id,
                            not_leader: reply.is_none(),
                            reply: reply.unwrap_or_default(),
                            ..Default::default()
                        });
                    });
                };
                drop(tx);
                let _ = writer.await;
                result
            }
            k => Err(invalid(format!("unknown connection kind {k}"))),
        }
    }

    /// Forwards encoded `Argv`s to peer `to`; returns their RESP-encoded replies.
    pub async fn forward(
        &self,
        to: u64,
        resp3: bool,
        argvs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, ForwardError> {
        let fwd = {
            let mut map = self.forwarders.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = map.get(&to).filter(|f| !f.is_closed()) {
                f.clone()
            } else {
                let addr = self
                    .cfg
                    .peers
                    .get(&to)
                    .ok_or(ForwardError::UnknownPeer(to))?
                    .clone();
                let f = Arc::new(Forwarder::new(
                    addr,
                    PeerHello {
                        magic: MAGIC,
                        from: self.cfg.id,
                        to,
                        kind: KIND_FORWARD,
                        secret: self.cfg.secret.clone(),
                        ..Default::default()
                    },
                ));
                map.insert(to, f.clone());
                f
            }
        };
        fwd.call(resp3, argvs).await
    }
}

/// Hands the Raft loop's messages to the per-peer writer tasks.
#[derive(Clone)]
pub struct PeerSink(Arc<Transport>);

impl MessageSink for PeerSink {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            match self.0.raft_tx.get(&m.to) {
                Some(tx) => {
                    let _ = tx.send(m);
                }
                None => debug!(self.0.logger, "no route to peer"; "to" => m.to),
            }
        }
    }
}

async fn outbound(
    pid: u64,
    addr: String,
    hello: PeerHello,
    group_id: u64,
    mut rx: mpsc::UnboundedReceiver<Message>,
    on_unreachable: OnUnreachable,
    logger: Logger,
) {
    let hello = match hello.write_to_bytes() {
        Ok(h) => h,
        Err(_) => return,
    };
    let mut backoff = Duration::from_millis(20);
    let mut was_connected = true;
    loop {
        // Wait for something to send before (re)connecting.
        let Some(first) = rx.recv().await else { return };
        let conn = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await;
        let sock = match conn {
            Ok(Ok(s)) => s,
            _ => {
                if was_connected {
                    info!(logger, "peer unreachable"; "addr" => &addr);
                    was_connected = false;
                }
                on_unreachable(pid);
                // Drop what is queued: raft retransmits.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        if !was_connected {
            info!(logger, "peer reconnected"; "addr" => &addr);
        }
        was_connected = true;
        backoff = Duration::from_millis(20);
        let mut w = BufWriter::with_capacity(256 << 10, sock);
        if write_frame(&mut w, &hello).await.is_err() {
            on_unreachable(pid);
            continue;
        }
        let mut pending = Some(first);
        let res: std::io::Result<()> = async {
            loop {
                let m = match pending.take() {
                    Some(m) => m,
                    None => match rx.recv().await {
                        Some(m) => m,
                        None => return Ok(()),
                    },
                };
                let mut batch = PeerBatch {
                    group_id,
                    ..Default::default()
                };
                let mut size = 0;
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    let bytes = m.write_to_bytes().map_err(invalid)?;
                    size += bytes.len();
                    batch.msgs.push(bytes);
                    if size < MAX_BATCH_BYTES {
                        next = rx.try_recv().ok();
                    }
                }
                write_frame(&mut w, &batch.write_to_bytes().map_err(invalid)?).await?;
                w.flush().await?;
            }
        }
        .await;
        match res {
            Ok(()) => return,
            Err(e) => {
                debug!(logger, "peer connection lost"; "err" => %e);
                on_unreachable(pid);
            }
        }
    }
}

/// A multiplexed connection for forwarded requests to one peer.
struct Forwarder {
    tx: mpsc::UnboundedSender<(ForwardRequest, FwdReply)>,
    next_id: AtomicU64,
}

/// Reply slot of one forwarded request: `Err` only when it was certainly never sent.
type FwdReply = oneshot::Sender<Result<Option<Vec<u8>>, ForwardError>>;
type Waiters = Arc<Mutex<HashMap<u64, FwdReply>>>;

impl Forwarder {
    fn new(addr: String, hello: PeerHello) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_conn(addr, hello, rx));
        Forwarder {
            tx,
            next_id: AtomicU64::new(1),
        }
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn call(&self, resp3: bool, argvs: Vec<Vec<u8>>) -> Result<Vec<u8>, ForwardError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let req = ForwardRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            resp3,
            argvs: argvs.into(),
            ..Default::default()
        };
        self.tx
            .send((req, reply_tx))
            .map_err(|_| ForwardError::Connect("connection closed".into()))?;
        reply_rx
            .await
            .map_err(|_| ForwardError::Lost)??
            .ok_or(ForwardError::NotLeader)
    }
}

/// Fails every queued request of a connection that never came up: none was sent.
fn refuse(rx: &mut mpsc::UnboundedReceiver<(ForwardRequest, FwdReply)>, why: String) {
    rx.close();
    while let Ok((_, reply)) = rx.try_recv() {
        let _ = reply.send(Err(ForwardError::Connect(why.clone())));
    }
}

/// Runs one forwarding connection; ends (failing its waiters) when the connection breaks.
async fn forward_conn(
    addr: String,
    hello: PeerHello,
    mut rx: mpsc::UnboundedReceiver<(ForwardRequest, FwdReply)>,
) {
    let sock = match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await {
        Ok(Ok(sock)) => sock,
        Ok(Err(e)) => return refuse(&mut rx, e.to_string()),
        Err(_) => return refuse(&mut rx, "connect timed out".into()),
    };
    let _ = sock.set_nodelay(true);
    let (mut r, w) = sock.into_split();
    let mut w = BufWriter::new(w);
    let hello = match hello.write_to_bytes() {
        Ok(h) => h,
        Err(e) => return refuse(&mut rx, e.to_string()),
    };
    if let Err(e) = write_frame(&mut w, &hello).await {
        return refuse(&mut rx, e.to_string());
    }
    let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
    let reader_waiters = waiters.clone();
    let mut reader = tokio::spawn(async move {
        while let Ok(frame) = read_frame(&mut r).await {
            let Ok(resp) = ForwardResponse::parse_from_bytes(&frame) else {
                return;
            };
            let w = reader_waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&resp.id);
            if let Some(w) = w {
                let _ = w.send(Ok((!resp.not_leader).then_some(resp.reply)));
            }
        }
    });
    loop {
        tokio::select! {
            _ = &mut reader => break,
            m = rx.recv() => {
                let Some((req, reply)) = m else { break };
                let mut batch = vec![(req, reply)];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 1024 { break; }
                }
                let mut ok = true;
                for (req, reply) in batch {
                    let Ok(bytes) = req.write_to_bytes() else { continue };
                    waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(req.id, reply);
                    if write_frame(&mut w, &bytes).await.is_err() { ok = false; break; }
                }
                if !ok || w.flush().await.is_err() { break; }
            }
        }
    }
    reader.abort();
    // Dropping the waiters fails their calls with `Lost`: they may have been sent.
    waiters.lock().unwrap_or_else(|p| p.into_inner()).clear();
}
