//! Peer transport over tokio TCP: raft message batches and forwarded client requests.
//!
//! Every connection starts with a `PeerHello` frame naming sender, receiver, kind and the
//! cluster secret; frames are a 4-byte big-endian length and a protobuf message. Raft
//! messages to one peer travel on one outbound connection, and whatever is queued when the
//! writer wakes goes out as one `PeerBatch` (one write, one flush). Followers forward client
//! writes to the leader on a second, multiplexed connection kind. Anything malformed or from
//! an unknown sender is logged and dropped; it never reaches the Raft loop.
//!
//! Snapshots travel on a third kind: a raft `MsgSnapshot` carries only a descriptor; the
//! sender offers it on a new connection, the receiver answers how much of each file it
//! already holds (a broken transfer resumes there), and the files follow in 1 MiB chunks,
//! each with a CRC-32; whole-file CRCs are checked at the end. Only then is the message
//! handed to the receiver's Raft loop, and the sender's loop told the outcome.
//!
//! Peers are dynamic: membership changes add and remove routes, and a hello carries the
//! sender's address so a new member can answer a leader it has not heard of.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use slog::{debug, info, warn, Logger};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::node::MessageSink;
use crate::proto::{
    ForwardRequest, ForwardResponse, PeerBatch, PeerHello, SnapshotChunk, SnapshotDescriptor,
    SnapshotDone, SnapshotOffer, SnapshotResume,
};
use crate::snap;

const MAGIC: u32 = 0x524b_5631; // "RKV1"
const KIND_RAFT: u32 = 1;
const KIND_FORWARD: u32 = 2;
const KIND_SNAPSHOT: u32 = 3;
/// A leader telling a member it was removed from the group (the hello is the whole message).
const KIND_REMOVED: u32 = 4;
/// Most files one snapshot may have.
const MAX_SNAPSHOT_FILES: usize = 64;
/// Largest frame accepted from a peer.
pub const MAX_FRAME: usize = 64 << 20;
/// Most bytes put in one raft message batch.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Called with each valid raft message from a peer.
pub type OnMessage = Arc<dyn Fn(Message) + Send + Sync>;
/// Called when a peer cannot be reached.
pub type OnUnreachable = Arc<dyn Fn(u64) + Send + Sync>;
/// Called when sending a snapshot to a peer ended (true: delivered).
pub type OnSnapshotStatus = Arc<dyn Fn(u64, bool) + Send + Sync>;
/// Called when peer `from` says this node was removed from the group.
pub type OnRemoved = Arc<dyn Fn(u64) + Send + Sync>;
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
    /// Where snapshot files live (see [`crate::snap`]).
    pub snap_dir: PathBuf,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk: usize,
    /// Snapshot send rate limit in bytes per second (0 = none).
    pub snapshot_rate: u64,
}

/// Snapshot transfer progress, for INFO.
#[derive(Debug, Default)]
pub struct SnapStats {
    pub send_bytes: AtomicU64,
    pub send_total: AtomicU64,
    pub sends_ok: AtomicU64,
    pub sends_failed: AtomicU64,
    pub recv_bytes: AtomicU64,
    pub recv_total: AtomicU64,
    pub recvs_ok: AtomicU64,
    pub recvs_failed: AtomicU64,
}

/// An outbound route to a peer.
struct Route {
    addr: String,
    tx: mpsc::UnboundedSender<Message>,
}

/// The peer transport of one node.
pub struct Transport {
    cfg: TransportConfig,
    logger: Logger,
    routes: Mutex<HashMap<u64, Route>>,
    forwarders: Mutex<HashMap<u64, Arc<Forwarder>>>,
    on_unreachable: OnUnreachable,
    on_snapshot_status: OnSnapshotStatus,
    on_removed: Mutex<Option<OnRemoved>>,
    rt: tokio::runtime::Handle,
    /// Snapshot transfer progress.
    pub snap_stats: SnapStats,
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
        on_snapshot_status: OnSnapshotStatus,
        logger: &Logger,
    ) -> Arc<Self> {
        let t = Arc::new(Transport {
            cfg: cfg.clone(),
            logger: logger.clone(),
            routes: Mutex::new(HashMap::new()),
            forwarders: Mutex::new(HashMap::new()),
            on_unreachable,
            on_snapshot_status,
            on_removed: Mutex::new(None),
            rt: tokio::runtime::Handle::current(),
            snap_stats: SnapStats::default(),
        });
        for (&pid, addr) in &cfg.peers {
            t.set_route(pid, Some(addr.clone()));
        }
        t
    }

    fn hello(&self, to: u64, kind: u32) -> PeerHello {
        PeerHello {
            magic: MAGIC,
            from: self.cfg.id,
            to,
            kind,
            secret: self.cfg.secret.clone(),
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
    pub fn set_route(&self, pid: u64, addr: Option<String>) {
        if pid == self.cfg.id {
            return;
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match addr {
            None => {
                if routes.remove(&pid).is_some() {
                    info!(self.logger, "peer route removed"; "peer" => pid);
                }
                self.forwarders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&pid);
            }
            Some(addr) => {
                if routes.get(&pid).is_some_and(|r| r.addr == addr) {
                    return;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let _guard = self.rt.enter();
                self.rt.spawn(outbound(
                    pid,
                    addr.clone(),
                    self.hello(pid, KIND_RAFT),
                    self.cfg.group_id,
                    rx,
                    self.on_unreachable.clone(),
                    self.logger.new(slog::o!("peer" => pid)),
                ));
                info!(self.logger, "peer route set"; "peer" => pid, "addr" => &addr);
                routes.insert(pid, Route { addr, tx });
                self.forwarders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&pid);
            }
        }
    }

    /// Sets what happens when a leader says this node was removed.
    pub fn on_removed(&self, f: OnRemoved) {
        *self.on_removed.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Tells `pid` (best effort) that it was removed from the group.
    fn notify_removed(&self, pid: u64) {
        let Some(addr) = self.route_addr(pid) else {
            return;
        };
        let Ok(hello) = self.hello(pid, KIND_REMOVED).write_to_bytes() else {
            return;
        };
        let logger = self.logger.clone();
        self.rt.spawn(async move {
            let sent = async {
                let mut sock =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr))
                        .await
                        .map_err(invalid)??;
                write_frame(&mut sock, &hello).await?;
                sock.flush().await
            };
            match sent.await {
                Ok(()) => info!(logger, "told removed member"; "peer" => pid),
                Err(e) => {
                    debug!(logger, "could not tell removed member"; "peer" => pid, "err" => %e)
                }
            }
        });
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
        let known = self.route_addr(hello.from).is_some();
        if hello.magic != MAGIC
            || hello.to != self.cfg.id
            || hello.from == self.cfg.id
            || hello.from == 0
            || (!known && hello.addr.is_empty())
            || !secret_eq(&hello.secret, &self.cfg.secret)
        {
            warn!(self.logger, "rejected peer connection"; "from" => hello.from, "to" => hello.to);
            return Err(invalid("bad hello"));
        }
        let from = hello.from;
        if !known {
            // A member this node has not heard of (it joined recently, or this node is new).
            self.set_route(from, Some(hello.addr.clone()));
        }
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
                        Ok(m) if m.get_msg_type() == MessageType::MsgSnapshot => {
                            warn!(self.logger, "dropping snapshot message outside a snapshot stream"; "from" => from)
                        }
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
            KIND_SNAPSHOT => {
                let mut w = w;
                let result = self
                    .receive_snapshot(from, &mut r, &mut w, &on_message)
                    .await;
                let done = match &result {
                    Ok(()) => SnapshotDone {
                        ok: true,
                        ..Default::default()
                    },
                    Err(e) => SnapshotDone {
                        ok: false,
                        error: e.to_string(),
                        ..Default::default()
                    },
                };
                if result.is_ok() {
                    self.snap_stats.recvs_ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.snap_stats.recvs_failed.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(b) = done.write_to_bytes() {
                    let _ = write_frame(&mut w, &b).await;
                    let _ = w.flush().await;
                }
                result
            }
            KIND_REMOVED => {
                warn!(self.logger, "peer says this node was removed from the group"; "from" => from);
                let f = self
                    .on_removed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(f) = f {
                    f(from);
                }
                Ok(())
            }
            k => Err(invalid(format!("unknown connection kind {k}"))),
        }
    }

    /// Receives one snapshot stream: resumes where a previous attempt stopped, checks
    /// every chunk and then every whole file, and only then hands the raft message on.
    async fn receive_snapshot<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        from: u64,
        r: &mut R,
        w: &mut W,
        on_message: &OnMessage,
    ) -> std::io::Result<()> {
        let offer = tokio::time::timeout(Duration::from_secs(10), read_frame(r))
            .await
            .map_err(invalid)??;
        let offer = SnapshotOffer::parse_from_bytes(&offer).map_err(invalid)?;
        let m = Message::parse_from_bytes(&offer.msg).map_err(invalid)?;
        if m.get_msg_type() != MessageType::MsgSnapshot || m.from != from || m.to != self.cfg.id {
            return Err(invalid(
                "snapshot offer is not a snapshot message for this node",
            ));
        }
        let meta = m.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let desc = SnapshotDescriptor::parse_from_bytes(&m.get_snapshot().data).map_err(invalid)?;
        if desc.files.len() > MAX_SNAPSHOT_FILES
            || desc.files.iter().any(|f| !snap::safe_name(&f.name))
            || desc.index != index
            || desc.term != term
        {
            return Err(invalid("malformed snapshot descriptor"));
        }
        let total = snap::total_bytes(&desc);
        let root = self.cfg.snap_dir.clone();
        let dir = root.join(snap::recv_name(from, term, index));
        tokio::fs::create_dir_all(&dir).await?;
        let mut have = Vec::with_capacity(desc.files.len());
        for f in &desc.files {
            let path = dir.join(&f.name);
            let len = match tokio::fs::metadata(&path).await {
                Ok(md) if md.len() <= f.size => md.len(),
                Ok(_) => {
                    tokio::fs::remove_file(&path).await?;
                    0
                }
                Err(_) => 0,
            };
            have.push(len);
        }
        let held: u64 = have.iter().sum();
        if held > 0 {
            info!(self.logger, "resuming snapshot receive"; "from" => from, "index" => index, "have" => held, "total" => total);
        } else {
            info!(self.logger, "receiving snapshot"; "from" => from, "index" => index, "total" => total);
        }
        self.snap_stats.recv_total.store(total, Ordering::Relaxed);
        self.snap_stats.recv_bytes.store(held, Ordering::Relaxed);
        let resume = SnapshotResume {
            offsets: have.clone(),
            ..Default::default()
        };
        write_frame(w, &resume.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await?;
        let mut files: Vec<Option<tokio::fs::File>> = (0..desc.files.len()).map(|_| None).collect();
        let started = Instant::now();
        while have.iter().zip(&desc.files).any(|(h, f)| *h < f.size) {
            let frame = tokio::time::timeout(Duration::from_secs(30), read_frame(r))
                .await
                .map_err(invalid)??;
            let c = SnapshotChunk::parse_from_bytes(&frame).map_err(invalid)?;
            let i = c.file as usize;
            let Some(f) = desc.files.get(i) else {
                return Err(invalid("chunk of an unknown file"));
            };
            if c.offset != have[i] || c.offset + c.data.len() as u64 > f.size {
                return Err(invalid("chunk out of order"));
            }
            if crc32fast::hash(&c.data) != c.crc32 {
                return Err(invalid("chunk checksum mismatch"));
            }
            if files[i].is_none() {
                files[i] = Some(
                    tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(&f.name))
                        .await?,
                );
            }
            if let Some(file) = files[i].as_mut() {
                file.write_all(&c.data).await?;
            }
            have[i] += c.data.len() as u64;
            self.snap_stats
                .recv_bytes
                .fetch_add(c.data.len() as u64, Ordering::Relaxed);
        }
        for file in files.into_iter().flatten() {
            file.sync_all().await?;
        }
        // Whole-file checks (also covers bytes written before a resume).
        for f in &desc.files {
            let path = dir.join(&f.name);
            let crc = tokio::task::spawn_blocking({
                let path = path.clone();
                move || snap::file_crc(&path)
            })
            .await
            .map_err(invalid)??;
            if crc != f.crc32 {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(invalid(format!("file {} checksum mismatch", f.name)));
            }
        }
        let done = root.join(snap::done_name(term, index));
        if tokio::fs::metadata(&done).await.is_ok() {
            tokio::fs::remove_dir_all(&dir).await?;
        } else {
            tokio::fs::rename(&dir, &done).await?;
            snap::sync_dir(&root)?;
        }
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        info!(self.logger, "snapshot received"; "from" => from, "index" => index, "bytes" => total, "mb_per_s" => format!("{:.1}", (total - held) as f64 / secs / 1e6));
        on_message(m);
        Ok(())
    }

    /// Streams the snapshot of `m` (a `MsgSnapshot`) to its receiver.
    async fn send_snapshot(self: Arc<Self>, m: Message) {
        let to = m.to;
        let ok = match self.try_send_snapshot(&m).await {
            Ok(()) => {
                self.snap_stats.sends_ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                warn!(self.logger, "snapshot send failed"; "to" => to, "err" => %e);
                self.snap_stats.sends_failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        (self.on_snapshot_status)(to, ok);
    }

    async fn try_send_snapshot(&self, m: &Message) -> std::io::Result<()> {
        let to = m.to;
        let meta = m.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let desc = SnapshotDescriptor::parse_from_bytes(&m.get_snapshot().data).map_err(invalid)?;
        let dir = self.cfg.snap_dir.join(snap::done_name(term, index));
        let addr = self
            .route_addr(to)
            .ok_or_else(|| invalid(format!("no address for peer {to}")))?;
        let sock = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr))
            .await
            .map_err(invalid)??;
        let _ = sock.set_nodelay(true);
        let (mut r, w) = sock.into_split();
        let mut w = BufWriter::with_capacity(self.cfg.snapshot_chunk + 64, w);
        write_frame(
            &mut w,
            &self
                .hello(to, KIND_SNAPSHOT)
                .write_to_bytes()
                .map_err(invalid)?,
        )
        .await?;
        let offer = SnapshotOffer {
            msg: m.write_to_bytes().map_err(invalid)?,
            ..Default::default()
        };
        write_frame(&mut w, &offer.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await?;
        let resume = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut r))
            .await
            .map_err(invalid)??;
        let resume = SnapshotResume::parse_from_bytes(&resume).map_err(invalid)?;
        let total = snap::total_bytes(&desc);
        let held: u64 = resume.offsets.iter().sum();
        info!(self.logger, "sending snapshot"; "to" => to, "index" => index, "total" => total, "resume_at" => held);
        self.snap_stats.send_total.store(total, Ordering::Relaxed);
        self.snap_stats.send_bytes.store(held, Ordering::Relaxed);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut next_log = total / 10;
        let mut buf = vec![0u8; self.cfg.snapshot_chunk.max(4096)];
        for (i, f) in desc.files.iter().enumerate() {
            let mut offset = resume.offsets.get(i).copied().unwrap_or(0).min(f.size);
            if offset >= f.size {
                continue;
            }
            let mut file = tokio::fs::File::open(dir.join(&f.name)).await?;
            tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
            while offset < f.size {
                let want = buf.len().min((f.size - offset) as usize);
                file.read_exact(&mut buf[..want]).await?;
                let chunk = SnapshotChunk {
                    file: i as u32,
                    offset,
                    crc32: crc32fast::hash(&buf[..want]),
                    data: buf[..want].to_vec(),
                    ..Default::default()
                };
                write_frame(&mut w, &chunk.write_to_bytes().map_err(invalid)?).await?;
                offset += want as u64;
                sent += want as u64;
                self.snap_stats
                    .send_bytes
                    .fetch_add(want as u64, Ordering::Relaxed);
                if sent >= next_log && total > 0 {
                    info!(self.logger, "snapshot send progress"; "to" => to, "sent" => held + sent, "total" => total);
                    next_log += (total / 10).max(1);
                }
                if self.cfg.snapshot_rate > 0 {
                    let due = Duration::from_secs_f64(sent as f64 / self.cfg.snapshot_rate as f64);
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        w.flush().await?;
                        tokio::time::sleep(due - elapsed).await;
                    }
                }
            }
        }
        w.flush().await?;
        let done = tokio::time::timeout(Duration::from_secs(300), read_frame(&mut r))
            .await
            .map_err(invalid)??;
        let done = SnapshotDone::parse_from_bytes(&done).map_err(invalid)?;
        if !done.ok {
            return Err(invalid(format!(
                "receiver refused the snapshot: {}",
                done.error
            )));
        }
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        info!(self.logger, "snapshot sent"; "to" => to, "index" => index, "bytes" => sent, "mb_per_s" => format!("{:.1}", sent as f64 / secs / 1e6));
        Ok(())
    }

    /// Forwards encoded `Argv`s to peer `to`; returns their RESP-encoded replies.
    pub async fn forward(
        &self,
        to: u64,
        resp3: bool,
        argvs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, ForwardError> {
        // Look the route up first: `set_route` takes the routes lock before the forwarders'.
        let addr = self.route_addr(to);
        let fwd = {
            let mut map = self.forwarders.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = map.get(&to).filter(|f| !f.is_closed()) {
                f.clone()
            } else {
                let addr = addr.ok_or(ForwardError::UnknownPeer(to))?;
                let f = Arc::new(Forwarder::new(addr, self.hello(to, KIND_FORWARD)));
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
        let routes = self.0.routes.lock().unwrap_or_else(|p| p.into_inner());
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.0.rt.spawn(self.0.clone().send_snapshot(m));
                continue;
            }
            match routes.get(&m.to) {
                Some(r) => {
                    let _ = r.tx.send(m);
                }
                None => debug!(self.0.logger, "no route to peer"; "to" => m.to),
            }
        }
    }

    fn set_peer(&self, id: u64, addr: Option<String>) {
        self.0.set_route(id, addr);
    }

    fn notify_removed(&self, id: u64) {
        self.0.notify_removed(id);
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
