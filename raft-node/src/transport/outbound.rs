//! The raft sender of one peer link: connects (and authenticates) when there is something
//! to send, writes whatever is queued as one `PeerBatch` frame per wake-up, split so no
//! frame passes `MAX_FRAME`, and closes the connection after a while without traffic.
//! Nothing is dropped without a count: a message that can never fit one frame is counted
//! as oversized and logged (rate-limited); messages lost to a broken or unreachable link
//! are counted as dropped (raft retransmits what matters).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use slog::{debug, info, warn};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::frame::{self, invalid, write_frame, FRAME_OVERHEAD, MAX_FRAME};
use super::stats::PeerStats;
use super::{auth, Transport};
use crate::node::GroupMessage;
use crate::proto::PeerBatch;

/// Most bytes put in one raft message batch (a single larger message still goes alone).
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Connects to `addr` and completes the handshake for a connection of `kind`.
pub async fn connect(
    t: &Transport,
    pid: u64,
    addr: &str,
    kind: u32,
    timeout: Duration,
) -> std::io::Result<(tokio::net::tcp::OwnedReadHalf, OwnedWriteHalf)> {
    let sock = frame::connect(addr, timeout).await?;
    let (mut r, mut w) = sock.into_split();
    auth::initiate(&mut r, &mut w, t.hello(pid, kind), &t.cfg.secret)
        .await
        .map_err(|e| std::io::Error::other(format!("handshake with peer {pid}: {e}")))?;
    Ok((r, w))
}

/// Encoded messages of one frame, and the message that did not fit (next frame's first).
struct Batch {
    msgs: Vec<Vec<u8>>,
    groups: Vec<u64>,
    carry: Option<(u64, Vec<u8>)>,
}

/// Encodes `first` and what else is queued into one batch. Messages that can never fit a
/// frame are counted, logged and skipped.
fn next_batch(
    t: &Transport,
    pid: u64,
    stats: &PeerStats,
    first: (u64, Vec<u8>),
    rx: &mut mpsc::UnboundedReceiver<GroupMessage>,
) -> Batch {
    let mut msgs = Vec::new();
    let mut groups = Vec::new();
    let mut size = FRAME_OVERHEAD;
    let mut next = Some(first);
    while let Some((group, bytes)) = next.take() {
        // Each message costs its bytes, their field header and its group's varint.
        if bytes.len() + size + GROUP_OVERHEAD > MAX_FRAME {
            return Batch {
                msgs,
                groups,
                carry: Some((group, bytes)),
            };
        }
        size += bytes.len() + FRAME_OVERHEAD + GROUP_OVERHEAD;
        msgs.push(bytes);
        groups.push(group);
        if size >= MAX_BATCH_BYTES {
            break;
        }
        while let Ok((g, m)) = rx.try_recv() {
            if let Some(b) = encode(t, pid, stats, &m) {
                next = Some((g, b));
                break;
            }
        }
    }
    Batch {
        msgs,
        groups,
        carry: None,
    }
}

/// Upper bound of the bytes one message's group id adds to a batch (a packed varint).
const GROUP_OVERHEAD: usize = 10;

/// Encodes one message; `None` (counted, logged) when it can never fit one frame.
fn encode(t: &Transport, pid: u64, stats: &PeerStats, m: &Message) -> Option<Vec<u8>> {
    let bytes = match m.write_to_bytes() {
        Ok(b) => b,
        Err(e) => {
            warn!(t.logger, "cannot encode raft message"; "to" => pid, "err" => %e);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    if bytes.len() + 2 * FRAME_OVERHEAD > MAX_FRAME {
        stats.oversized.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = stats.log_limit.check() {
            warn!(t.logger, "raft message larger than a peer frame can carry, not sent: the link to this peer is wedged until the entry is compacted away";
                "to" => pid, "type" => ?m.get_msg_type(), "bytes" => bytes.len(), "max_frame" => MAX_FRAME, "suppressed" => n);
        }
        return None;
    }
    Some(bytes)
}

/// Sends one raft message on a connection of its own (a removed member's notice).
pub async fn send_once(
    t: &Transport,
    pid: u64,
    addr: &str,
    group: u64,
    m: Message,
) -> std::io::Result<()> {
    let (_r, w) = connect(t, pid, addr, auth::KIND_RAFT, Duration::from_secs(2)).await?;
    let mut w = BufWriter::new(w);
    let batch = PeerBatch {
        group_id: group,
        msgs: vec![m.write_to_bytes().map_err(invalid)?].into(),
        ..Default::default()
    };
    write_frame(&mut w, &batch.write_to_bytes().map_err(invalid)?).await?;
    w.flush().await?;
    w.into_inner().shutdown().await
}

/// Runs the link to `pid` until its route is removed (the channel closes).
pub async fn run(
    t: Arc<Transport>,
    pid: u64,
    addr: String,
    mut rx: mpsc::UnboundedReceiver<GroupMessage>,
) {
    let stats = t.stats.peer(pid);
    let logger = t.logger.new(slog::o!("peer" => pid));
    let mut backoff = Duration::from_millis(20);
    let mut carry: Option<(u64, Vec<u8>)> = None;
    loop {
        // Wait for something to send before (re)connecting.
        let first = match carry.take() {
            Some(b) => b,
            None => {
                let Some((g, m)) = rx.recv().await else {
                    return;
                };
                match encode(&t, pid, &stats, &m) {
                    Some(b) => (g, b),
                    None => continue,
                }
            }
        };
        let w = match connect(&t, pid, &addr, auth::KIND_RAFT, Duration::from_secs(1)).await {
            Ok((_r, w)) => w,
            Err(e) => {
                if stats.connected.load(Ordering::Acquire) || stats.log_limit.check().is_some() {
                    info!(logger, "peer unreachable"; "addr" => &addr, "err" => %e);
                }
                stats.set_connected(false, t.stats.epoch);
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                (t.on_unreachable)(pid);
                // Drop what is queued: raft retransmits.
                let mut n = 1;
                while rx.try_recv().is_ok() {
                    n += 1;
                }
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        if !stats.connected.load(Ordering::Acquire) {
            info!(logger, "peer connected"; "addr" => &addr);
        }
        stats.set_connected(true, t.stats.epoch);
        backoff = Duration::from_millis(20);
        let mut w = BufWriter::with_capacity(256 << 10, w);
        match write_loop(&t, pid, &stats, &mut w, first, &mut rx).await {
            Ok(Some(next)) => carry = Some(next),
            Ok(None) => {
                // Idle (or the route is gone): close; the next message reconnects.
                if rx.is_closed() {
                    return;
                }
                debug!(logger, "idle peer connection closed");
                stats.set_connected(false, t.stats.epoch);
            }
            Err(e) => {
                debug!(logger, "peer connection lost"; "err" => %e);
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                stats.set_connected(false, t.stats.epoch);
                (t.on_unreachable)(pid);
            }
        }
    }
}

/// Writes batches until the link idles (`Ok(None)`), the route closes (`Ok(None)`), or a
/// write fails (`Err`, the unsent batch counted as dropped).
async fn write_loop(
    t: &Transport,
    pid: u64,
    stats: &PeerStats,
    w: &mut BufWriter<OwnedWriteHalf>,
    first: (u64, Vec<u8>),
    rx: &mut mpsc::UnboundedReceiver<GroupMessage>,
) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let mut next = Some(first);
    loop {
        let first = match next.take() {
            Some(b) => b,
            None => match tokio::time::timeout(t.cfg.idle(), rx.recv()).await {
                Err(_) | Ok(None) => return Ok(None),
                Ok(Some((g, m))) => match encode(t, pid, stats, &m) {
                    Some(b) => (g, b),
                    None => continue,
                },
            },
        };
        let batch = next_batch(t, pid, stats, first, rx);
        next = batch.carry;
        let n = batch.msgs.len() as u64;
        if n == 0 {
            continue;
        }
        let frame = PeerBatch {
            msgs: batch.msgs.into(),
            groups: batch.groups,
            ..Default::default()
        };
        let written = async {
            write_frame(w, &frame.write_to_bytes().map_err(invalid)?).await?;
            w.flush().await
        }
        .await;
        if let Err(e) = written {
            stats
                .dropped
                .fetch_add(n + u64::from(next.is_some()), Ordering::Relaxed);
            return Err(e);
        }
        stats.sent.fetch_add(n, Ordering::Relaxed);
    }
}
