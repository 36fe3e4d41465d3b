//! The receiving side of a peer connection: the handshake (nothing is read past the hello
//! until the peer has proved the cluster secret), then by kind: a raft connection's
//! batches (each message checked for sender and addressee; an oversized frame skipped and
//! counted, so the link stays up and the cause shows), forwarded client requests (served
//! with the authenticated sender's id, replies multiplexed back), or a snapshot stream.
//! Idle connections are closed: a raft connection without a frame for twice the idle base
//! (leaders send heartbeats far more often; the sender closes its idle connections
//! sooner), a forwarding one without a request for ten times (the forwarding side closes
//! its own idle ones first).

use std::sync::atomic::Ordering;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use slog::{debug, warn};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::auth::{self, KIND_FORWARD, KIND_PUBLISH, KIND_RAFT, KIND_SNAPSHOT};
use super::frame::{invalid, read_frame, read_frame_max, skip, within, write_frame, MAX_FRAME};
use super::{ForwardHandler, OnMessage, Transport};
use crate::proto::{ForwardRequest, ForwardResponse, PeerBatch, SnapshotDone};

impl Transport {
    /// Serves one inbound connection until it closes.
    pub(super) async fn inbound(
        self: &std::sync::Arc<Self>,
        sock: TcpStream,
        slot: super::handshake::Slot,
        on_message: OnMessage,
        forward: ForwardHandler,
    ) -> std::io::Result<()> {
        let (mut r, mut w) = sock.into_split();
        let handshake = tokio::select! {
            h = auth::respond(&mut r, &mut w, self.cfg.id, &self.cfg.secret) => h,
            _ = slot.evicted.notified() => Err(auth::HandshakeError::Io(invalid("evicted by a newer connection still in its handshake"))),
        };
        drop(slot);
        let hello = match handshake {
            Ok(h) => h,
            Err(e) => {
                self.stats
                    .handshakes_refused
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(n) = self.stats.log_limit.check() {
                    let addr = r.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                    warn!(self.logger, "refused peer connection"; "addr" => addr, "err" => %e, "suppressed" => n);
                }
                return Err(invalid("handshake failed"));
            }
        };
        // Only authenticated connections count toward the cap of inbound connections.
        let Ok(_permit) = self.inbound_permits.clone().try_acquire_owned() else {
            self.stats.conns_refused.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = self.stats.log_limit.check() {
                warn!(self.logger, "too many peer connections, closing a new one"; "from" => hello.from, "suppressed" => n);
            }
            return Err(invalid("too many peer connections"));
        };
        let from = hello.from;
        if self.route_addr(from).is_none() && !hello.addr.is_empty() {
            // An authenticated member this node has not heard of (it joined recently, or
            // this node is new).
            self.set_route(from, Some(hello.addr.clone()));
        }
        match hello.kind {
            KIND_RAFT => self.receive_raft(from, &mut r, &on_message).await,
            KIND_FORWARD => self.serve_forwards(from, r, w, forward).await,
            KIND_PUBLISH => self.receive_publish(from, &mut r).await,
            KIND_SNAPSHOT => {
                let result = self
                    .receive_snapshot(from, &mut r, &mut w, &on_message)
                    .await;
                let done = SnapshotDone {
                    ok: result.is_ok(),
                    error: result
                        .as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    ..Default::default()
                };
                let counter = if result.is_ok() {
                    &self.snap_stats.recvs_ok
                } else {
                    &self.snap_stats.recvs_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Ok(b) = done.write_to_bytes() {
                    let _ = write_frame(&mut w, &b).await;
                    let _ = w.flush().await;
                }
                result
            }
            k => Err(invalid(format!("unknown connection kind {k}"))),
        }
    }

    /// Reads raft batches from authenticated peer `from` and hands on each message that
    /// is really from it and for this node.
    async fn receive_raft(
        &self,
        from: u64,
        r: &mut OwnedReadHalf,
        on_message: &OnMessage,
    ) -> std::io::Result<()> {
        loop {
            let idle = self.cfg.idle() * 2;
            let frame = match within(idle, read_frame_max(r, MAX_FRAME)).await? {
                Ok(f) => f,
                Err(super::frame::Oversized(len)) => {
                    self.stats.recv_oversized.fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = self.stats.log_limit.check() {
                        warn!(self.logger, "skipping a raft frame larger than MAX_FRAME: the sender's link is wedged"; "from" => from, "bytes" => len, "max_frame" => MAX_FRAME, "suppressed" => n);
                    }
                    skip(r, len).await?;
                    continue;
                }
            };
            let batch = match PeerBatch::parse_from_bytes(&frame) {
                Ok(b) if b.groups.is_empty() || b.groups.len() == b.msgs.len() => b,
                Ok(_) => {
                    self.malformed(from, "batch with a group count unlike its message count");
                    continue;
                }
                Err(e) => {
                    self.malformed(from, &format!("undecodable batch: {e}"));
                    continue;
                }
            };
            let groups = batch.groups;
            for (i, raw) in batch.msgs.into_iter().enumerate() {
                let group = groups.get(i).copied().unwrap_or(batch.group_id);
                match Message::parse_from_bytes(&raw) {
                    Ok(m) if m.get_msg_type() == MessageType::MsgSnapshot => {
                        self.malformed(from, "snapshot message outside a snapshot stream")
                    }
                    Ok(m) if m.from == from && m.to == self.cfg.id => on_message(group, m),
                    Ok(m) => self.malformed(
                        from,
                        &format!("misaddressed raft message (from {} to {})", m.from, m.to),
                    ),
                    Err(e) => self.malformed(from, &format!("undecodable raft message: {e}")),
                }
            }
        }
    }

    pub(super) fn malformed(&self, from: u64, what: &str) {
        self.stats.recv_malformed.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = self.stats.log_limit.check() {
            warn!(self.logger, "dropping peer input"; "from" => from, "what" => what, "suppressed" => n);
        }
    }

    /// Serves forwarded requests from authenticated peer `from`; replies go back on a
    /// writer task, in completion order, matched by id.
    async fn serve_forwards(
        &self,
        from: u64,
        mut r: OwnedReadHalf,
        w: OwnedWriteHalf,
        forward: ForwardHandler,
    ) -> std::io::Result<()> {
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
            let idle = self.cfg.idle() * 10;
            let frame = match within(idle, read_frame(&mut r, MAX_FRAME)).await {
                Ok(f) => f,
                Err(e) => break Err(e),
            };
            let req = match ForwardRequest::parse_from_bytes(&frame) {
                Ok(req) => req,
                Err(e) => break Err(invalid(e)),
            };
            let fut = forward(from, req.group, req.resp3, req.argvs.into_vec());
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
        debug!(self.logger, "forwarding connection closed"; "from" => from);
        result
    }
}
