//! The forwarding side of follower → leader client requests: one multiplexed,
//! authenticated connection per leader; requests carry an id and replies come back in
//! any order. A connection idle (nothing in flight, no request) for its idle timeout is
//! closed (the leader's side closes idle ones later), so dead connections do not linger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use super::auth;
use super::frame::{self, read_frame, write_frame, MAX_FRAME};
use crate::proto::{ForwardRequest, ForwardResponse, PeerHello};

/// Why a forwarded request got no reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    #[error("unknown peer {0}")]
    UnknownPeer(u64),
    /// The request was certainly not sent.
    #[error("connection to peer failed: {0}")]
    Connect(String),
    /// The request may have been sent.
    #[error("connection to peer lost")]
    Lost,
    /// The peer is not the leader; nothing was proposed.
    #[error("peer is not the leader")]
    NotLeader,
}

/// A multiplexed connection for forwarded requests to one peer.
pub struct Forwarder {
    tx: mpsc::UnboundedSender<(ForwardRequest, FwdReply)>,
    next_id: AtomicU64,
}

/// Reply slot of one forwarded request: `Err` only when it was certainly never sent.
type FwdReply = oneshot::Sender<Result<Option<Vec<u8>>, ForwardError>>;
type Waiters = Arc<Mutex<HashMap<u64, FwdReply>>>;
type Queue = mpsc::UnboundedReceiver<(ForwardRequest, FwdReply)>;

impl Forwarder {
    pub fn new(addr: String, hello: PeerHello, secret: Vec<u8>, idle: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_conn(addr, hello, secret, idle, rx));
        Forwarder {
            tx,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub async fn call(
        &self,
        group: u64,
        resp3: bool,
        argvs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, ForwardError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let req = ForwardRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            resp3,
            group,
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

/// Fails every queued request of a connection that is not (or no longer) writing: none
/// of them was sent.
fn refuse(rx: &mut Queue, why: String) {
    rx.close();
    while let Ok((_, reply)) = rx.try_recv() {
        let _ = reply.send(Err(ForwardError::Connect(why.clone())));
    }
}

/// Runs one forwarding connection; ends (failing its waiters) when the connection breaks
/// or idles.
async fn forward_conn(
    addr: String,
    hello: PeerHello,
    secret: Vec<u8>,
    idle: Duration,
    mut rx: Queue,
) {
    let sock = match frame::connect(&addr, Duration::from_secs(1)).await {
        Ok(sock) => sock,
        Err(e) => return refuse(&mut rx, e.to_string()),
    };
    let (mut r, mut w) = sock.into_split();
    if let Err(e) = auth::initiate(&mut r, &mut w, hello, &secret).await {
        return refuse(&mut rx, format!("peer handshake failed: {e}"));
    }
    let mut w = BufWriter::new(w);
    let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
    let reader_waiters = waiters.clone();
    let mut reader = tokio::spawn(async move {
        while let Ok(frame) = read_frame(&mut r, MAX_FRAME).await {
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
            m = tokio::time::timeout(idle, rx.recv()) => {
                let Ok(m) = m else {
                    if waiters.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                        refuse(&mut rx, "idle connection closed".into());
                        break;
                    }
                    continue;
                };
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
    // Requests queued after the last write were not sent.
    refuse(&mut rx, "connection closed".into());
}
