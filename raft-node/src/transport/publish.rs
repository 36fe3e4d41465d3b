//! Pub/Sub between nodes: a message PUBLISHed on one node is sent to every other member on
//! a connection of its own kind ([`auth::KIND_PUBLISH`]), fire-and-forget as Redis
//! Cluster's bus does it, never through the Raft log. Nothing here waits for a peer: each
//! peer link has a bounded queue ([`MAX_QUEUED`] frames, [`MAX_QUEUED_BYTES`] bytes); when a
//! link is backed up (a slow or unreachable peer) the message is dropped for that peer and
//! counted, never queued without bound. A message too large for one frame is counted and
//! dropped. The receiving side hands each message to the handler the server registered
//! ([`Transport::set_publish_handler`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use protobuf::Message as _;
use slog::debug;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

use super::frame::{read_frame, within, write_frame, FRAME_OVERHEAD, MAX_FRAME};
use super::{auth, outbound, Transport};
use crate::proto::{PeerPublish, PeerPublishBatch};

/// Called with each Pub/Sub message a peer sent: `(channel, message, shard)`.
pub type OnPublish = Arc<dyn Fn(&[u8], &[u8], bool) + Send + Sync>;

/// Most messages queued for one peer before new ones are dropped for it.
pub const MAX_QUEUED: usize = 16 * 1024;
/// Most bytes queued for one peer before new messages are dropped for it.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Most bytes of messages put in one frame.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Counters for INFO.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Messages written to peer links (one per peer).
    pub sent: AtomicU64,
    /// Messages dropped for a peer: its link backed up or broken, or too large.
    pub dropped: AtomicU64,
    /// Messages received from peers.
    pub received: AtomicU64,
}

/// One peer's queue.
struct Link {
    tx: mpsc::Sender<PeerPublish>,
    queued: Arc<AtomicUsize>,
}

/// The node's Pub/Sub links, created on first use.
#[derive(Default)]
pub(super) struct Links {
    links: Mutex<HashMap<u64, Link>>,
    handler: OnceLock<OnPublish>,
    pub(super) stats: PublishStats,
}

impl Transport {
    /// Registers the function inbound Pub/Sub messages go to (once, at start).
    pub fn set_publish_handler(&self, f: OnPublish) {
        let _ = self.publish.handler.set(f);
    }

    /// Pub/Sub counters (INFO).
    pub fn publish_stats(&self) -> &PublishStats {
        &self.publish.stats
    }

    /// Sends a Pub/Sub message to every other member; never waits. Returns how many peers
    /// it was queued for.
    pub fn publish(self: &Arc<Self>, channel: &[u8], message: &[u8], shard: bool) -> usize {
        let size = channel.len() + message.len() + FRAME_OVERHEAD;
        let stats = &self.publish.stats;
        let peers: Vec<(u64, String)> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, r)| (*id, r.addr.clone()))
            .collect();
        if size + FRAME_OVERHEAD > MAX_FRAME {
            stats
                .dropped
                .fetch_add(peers.len() as u64, Ordering::Relaxed);
            return 0;
        }
        let mut links = self.publish.links.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|id, l| peers.iter().any(|(p, _)| p == id) && !l.tx.is_closed());
        let mut queued = 0;
        for (pid, addr) in peers {
            let link = links
                .entry(pid)
                .or_insert_with(|| self.open_link(pid, addr));
            if link.queued.load(Ordering::Acquire) + size > MAX_QUEUED_BYTES {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let m = PeerPublish {
                channel: channel.to_vec(),
                message: message.to_vec(),
                shard,
                ..Default::default()
            };
            match link.tx.try_send(m) {
                Ok(()) => {
                    link.queued.fetch_add(size, Ordering::AcqRel);
                    queued += 1;
                }
                Err(_) => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        queued
    }

    /// Starts the writer task of a new link to `pid`.
    fn open_link(self: &Arc<Self>, pid: u64, addr: String) -> Link {
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        let queued = Arc::new(AtomicUsize::new(0));
        let _guard = self.rt.enter();
        self.rt
            .spawn(run_link(self.clone(), pid, addr, rx, queued.clone()));
        Link { tx, queued }
    }

    /// Reads Pub/Sub frames from authenticated peer `from` and hands each message on.
    pub(super) async fn receive_publish(
        &self,
        from: u64,
        r: &mut OwnedReadHalf,
    ) -> std::io::Result<()> {
        loop {
            let frame = within(self.cfg.idle() * 2, read_frame(r, MAX_FRAME)).await?;
            let batch = match PeerPublishBatch::parse_from_bytes(&frame) {
                Ok(b) => b,
                Err(e) => {
                    self.malformed(from, &format!("undecodable publish frame: {e}"));
                    continue;
                }
            };
            self.publish
                .stats
                .received
                .fetch_add(batch.msgs.len() as u64, Ordering::Relaxed);
            if let Some(h) = self.publish.handler.get() {
                for m in &batch.msgs {
                    h(&m.channel, &m.message, m.shard);
                }
            }
        }
    }
}

/// Collects what is queued (up to [`MAX_BATCH_BYTES`]) behind `first` into one frame.
fn next_frame(
    first: PeerPublish,
    rx: &mut mpsc::Receiver<PeerPublish>,
    queued: &AtomicUsize,
) -> PeerPublishBatch {
    let cost = |m: &PeerPublish| m.channel.len() + m.message.len() + FRAME_OVERHEAD;
    let mut size = cost(&first);
    let mut msgs = vec![first];
    while size < MAX_BATCH_BYTES {
        match rx.try_recv() {
            Ok(m) => {
                size += cost(&m);
                msgs.push(m);
            }
            Err(_) => break,
        }
    }
    queued.fetch_sub(size.min(queued.load(Ordering::Acquire)), Ordering::AcqRel);
    PeerPublishBatch {
        msgs: msgs.into(),
        ..Default::default()
    }
}

/// Runs one peer's link until its queue closes: connects when there is something to send,
/// writes frames, drops (and counts) what is queued while the peer cannot be reached, and
/// closes the connection after the idle timeout.
async fn run_link(
    t: Arc<Transport>,
    pid: u64,
    addr: String,
    mut rx: mpsc::Receiver<PeerPublish>,
    queued: Arc<AtomicUsize>,
) {
    let stats = &t.publish.stats;
    while let Some(first) = rx.recv().await {
        let conn = outbound::connect(&t, pid, &addr, auth::KIND_PUBLISH, Duration::from_secs(1));
        let mut w = match conn.await {
            Ok((_r, w)) => BufWriter::with_capacity(256 << 10, w),
            Err(e) => {
                debug!(t.logger, "publish link unreachable"; "peer" => pid, "err" => %e);
                let mut n = next_frame(first, &mut rx, &queued).msgs.len() as u64;
                while rx.try_recv().is_ok() {
                    n += 1;
                }
                queued.store(0, Ordering::Release);
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut next = Some(first);
        loop {
            let first = match next.take() {
                Some(m) => m,
                None => match tokio::time::timeout(t.cfg.idle(), rx.recv()).await {
                    Ok(Some(m)) => m,
                    Err(_) | Ok(None) => break,
                },
            };
            let frame = next_frame(first, &mut rx, &queued);
            let n = frame.msgs.len() as u64;
            let written = async {
                let bytes = frame.write_to_bytes().map_err(super::frame::invalid)?;
                write_frame(&mut w, &bytes).await?;
                if rx.is_empty() {
                    w.flush().await?;
                }
                Ok::<(), std::io::Error>(())
            }
            .await;
            if let Err(e) = written {
                debug!(t.logger, "publish link lost"; "peer" => pid, "err" => %e);
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                break;
            }
            stats.sent.fetch_add(n, Ordering::Relaxed);
        }
        let _ = w.flush().await;
        let _ = w.into_inner().shutdown().await;
    }
}
