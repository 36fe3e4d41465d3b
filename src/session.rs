//! One tokio task pair per client connection: the reader parses pipelined requests and
//! dispatches them, the writer awaits the replies in request order and writes whatever is
//! ready in one syscall.
//!
//! Redis runs one connection's commands strictly in order. To keep that while pipelining,
//! consecutive data commands form a group: a run holding any write is ONE proposal (its
//! commands, reads included, applied in order in one log entry, like RedisRaft's reads
//! through the log), a run of only reads shares ONE ReadIndex barrier and then runs in
//! order. Each group starts only after the previous group finished, so a read always sees
//! the connection's earlier writes and a write never overtakes a read. Whole-keyspace reads
//! (KEYS, SCAN, DBSIZE) always form a read group of their own.
//!
//! While a group is in flight the reader keeps collecting the next one instead of queueing
//! many small ones, so a pipelining client (`redis-cli --pipe`) gets large proposals: the
//! group is handed over as soon as the writer is idle, or when it is full (1024 commands,
//! or `--max-write-bytes` encoded, so a proposal always fits one peer frame).
//!
//! A connection idle longer than `timeout` (CONFIG SET timeout, seconds) is closed, as
//! Redis does; one with a reply pending (a blocking command waiting) or with
//! subscriptions is never idle.
//!
//! Memory per connection is bounded: request bytes in flight by [`MAX_IN_FLIGHT_BYTES`]
//! (the reader stops reading), replies computed and not yet written by
//! `--client-output-buffer-limit` (the connection closes, as Redis's hard limit), and,
//! until AUTH, each request by Redis's unauthenticated limits (10 arguments, 16 KiB bulks).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use resp::request::{parse_request, Limits};
use resp::{Protocol, Reply};
use slog::{debug, info};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::server::{ClientInfo, Server};

/// A reply that may not be computed yet.
pub enum Pending {
    /// Known now.
    Ready(Reply),
    /// A group of reads or writes. The writer runs these in order, each after the one
    /// before it has finished: that is the per-connection order Redis gives.
    Later(Pin<Box<dyn Future<Output = Outcome> + Send>>),
}

/// What a finished group of requests produces.
pub enum Outcome {
    /// One reply per request of the group.
    Replies(Vec<Reply>),
    /// Already encoded for this connection (replies relayed from the leader).
    Raw(Vec<u8>),
    /// The replies passed `--client-output-buffer-limit` (this many bytes so far) and were
    /// dropped: the connection closes.
    Overflow(usize),
}

/// About the bytes `r` takes encoded (payload plus a few header bytes per value); what
/// `--client-output-buffer-limit` counts.
pub fn reply_bytes(r: &Reply) -> usize {
    const HEADER: usize = 16;
    HEADER
        + match r {
            Reply::Status(t)
            | Reply::Error(t)
            | Reply::Verbatim(t)
            | Reply::DoubleText(t)
            | Reply::BigNumber(t) => t.len(),
            Reply::Bulk(b) => b.len(),
            Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Double(_) | Reply::Bool(_) => 0,
            Reply::Array(rs) | Reply::Set(rs) | Reply::Push(rs) => rs.iter().map(reply_bytes).sum(),
            Reply::Map(kv) | Reply::Pairs(kv) => kv
                .iter()
                .map(|(k, v)| reply_bytes(k) + reply_bytes(v))
                .sum(),
        }
}

/// Data commands collected into the connection's current group.
pub enum Group {
    None,
    /// Only reads: one ReadIndex barrier, then each on the local store.
    Reads(Vec<(Vec<bytes::Bytes>, resp::Command)>),
    /// At least one write: every command (reads too) goes through Raft as one proposal
    /// and runs in order at apply time.
    Writes(Vec<Vec<bytes::Bytes>>),
}

/// Makes a group's replies fit in `max` bytes (one peer frame, for replies the leader
/// relays to a follower) by replacing the largest by an error saying so: the commands did
/// run, only their replies are too large to travel. Reads in a write group are the usual
/// cause (`SET a 1` then `MGET big1 big2` through a follower).
pub fn fit_replies(replies: &mut [Reply], max: usize) {
    let mut total: usize = replies.iter().map(reply_bytes).sum();
    if total <= max {
        return;
    }
    let mut by_size: Vec<(usize, usize)> = replies
        .iter()
        .map(reply_bytes)
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    by_size.sort_unstable_by(|a, b| b.cmp(a));
    for (n, i) in by_size {
        if total <= max {
            break;
        }
        replies[i] = Reply::err(format!(
            "ERR reply of {n} bytes is too large to relay from the Raft leader (the command ran; send large reads on their own)"
        ));
        total = total - n + reply_bytes(&replies[i]);
    }
}

/// Per-connection state the commands can change.
pub struct Conn {
    pub id: u64,
    pub proto: Protocol,
    /// Set by QUIT: reply OK and close once earlier replies are out.
    pub closing: bool,
    /// False until AUTH succeeds when `--requirepass` is set.
    pub authenticated: bool,
    /// The group being collected.
    pub group: Group,
    /// Encoded size of the group's commands (see `crate::sm::encoded_len`).
    pub group_bytes: usize,
    /// The Raft group of the commands being collected.
    pub raft_group: u64,
    /// Shared with this client's CLIENT LIST entry.
    pub last_cmd: std::sync::Arc<std::sync::Mutex<&'static str>>,
    /// READONLY / ASKING state (Redis Cluster).
    pub cluster: crate::cluster::ConnFlags,
    /// Inside MULTI: the queued commands (see `crate::multi`).
    pub multi: Option<crate::multi::Multi>,
    /// The keys WATCH read, shared with the futures the writer runs in order.
    pub watches: crate::multi::SharedWatches,
    /// Pub/Sub subscriptions (see `crate::pubsub_cmd`).
    pub pubsub: crate::pubsub_cmd::ConnSubs,
    /// Requests on their way to a reply, for INFO commandstats (see `crate::stats`).
    pub stats: crate::stats::Ledger,
}

/// Most requests in flight on one connection before the reader waits.
const MAX_IN_FLIGHT: usize = 16384;

/// Most request bytes in flight on one connection (parsed, reply not yet encoded) before
/// the reader stops reading. A client that pipelines without reading its replies is held
/// back by TCP instead of making the server buffer its requests without bound; one larger
/// request still passes, alone.
const MAX_IN_FLIGHT_BYTES: usize = 32 << 20;

/// One queued reply: protocol to encode it in, the reply, whether the connection closes
/// after it, and the share of the in-flight byte budget it holds until encoded.
pub(crate) type Item = (Protocol, Pending, bool, Option<OwnedSemaphorePermit>);

/// Takes budget for the request bytes parsed since the last queued reply (waits while the
/// connection has too many bytes in flight).
async fn take_budget(budget: &Arc<Semaphore>, unpaid: &mut usize) -> Option<OwnedSemaphorePermit> {
    let n = std::mem::take(unpaid).min(MAX_IN_FLIGHT_BYTES);
    if n == 0 {
        return None;
    }
    // n <= MAX_IN_FLIGHT_BYTES < u32::MAX; the semaphore is never closed.
    budget.clone().acquire_many_owned(n as u32).await.ok()
}

/// What the writer task needs from the session.
struct WriterCtx {
    rx: mpsc::Receiver<Item>,
    in_flight: Arc<AtomicUsize>,
    /// Wakes the reader when a group finished.
    idle: Arc<Notify>,
    /// Tells the reader to stop: the writer closed the connection.
    kill: Arc<Notify>,
    /// `--client-output-buffer-limit` (0 = none).
    limit: usize,
    client: u64,
    logger: slog::Logger,
}

/// Bytes a finished group's replies take, as the output buffer limit counts them.
fn outcome_bytes(o: &Outcome) -> usize {
    match o {
        Outcome::Replies(rs) => rs.iter().map(reply_bytes).sum(),
        Outcome::Raw(b) => b.len(),
        Outcome::Overflow(n) => *n,
    }
}

/// Writes what is encoded and empties the buffer (a buffer grown by a large reply is let
/// go). False when the client is gone: the reader is told to stop.
async fn flush_out(ctx: &WriterCtx, wr: &mut OwnedWriteHalf, out: &mut BytesMut) -> bool {
    if !out.is_empty() && wr.write_all(out).await.is_err() {
        ctx.kill.notify_one();
        return false;
    }
    out.clear();
    if out.capacity() > 4 << 20 {
        *out = BytesMut::with_capacity(16 * 1024);
    }
    true
}

/// Awaits one group and encodes its replies, or closes the connection when they pass the
/// output buffer limit (Redis's `client-output-buffer-limit` hard limit). Each reply is
/// freed once encoded, and large output goes out as it is encoded, so about one copy of
/// the replies exists at a time. False: the connection is done.
async fn write_group(
    ctx: &WriterCtx,
    wr: &mut OwnedWriteHalf,
    out: &mut BytesMut,
    proto: Protocol,
    group: Pin<Box<dyn Future<Output = Outcome> + Send>>,
) -> bool {
    // Replies already encoded go out before waiting on Raft.
    if !flush_out(ctx, wr, out).await {
        return false;
    }
    let outcome = group.await;
    ctx.in_flight.fetch_sub(1, Ordering::AcqRel);
    ctx.idle.notify_one();
    let bytes = outcome_bytes(&outcome);
    if ctx.limit > 0 && bytes > ctx.limit {
        info!(ctx.logger, "closing client: its replies passed the output buffer limit";
            "client" => ctx.client, "bytes" => bytes, "limit" => ctx.limit);
        ctx.kill.notify_one();
        return false;
    }
    match outcome {
        Outcome::Replies(rs) => {
            for r in rs {
                resp::encode::encode(&r, proto, out);
                if out.len() >= 1 << 20 && !flush_out(ctx, wr, out).await {
                    return false;
                }
            }
        }
        Outcome::Raw(b) => out.extend_from_slice(&b),
        Outcome::Overflow(_) => {}
    }
    true
}

/// The writer task: awaits the replies in request order and writes whatever is ready in
/// one syscall.
async fn write_replies(mut ctx: WriterCtx, mut wr: OwnedWriteHalf) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = ctx.rx.recv().await {
        let mut item = Some(first);
        let mut close = false;
        while let Some((proto, pending, last, _budget)) = item.take() {
            match pending {
                Pending::Ready(r) => resp::encode::encode(&r, proto, &mut out),
                Pending::Later(f) => {
                    if !write_group(&ctx, &mut wr, &mut out, proto, f).await {
                        return;
                    }
                }
            }
            if last {
                close = true;
                break;
            }
            if out.len() < 1 << 20 {
                item = ctx.rx.try_recv().ok();
            }
        }
        if !flush_out(&ctx, &mut wr, &mut out).await {
            return;
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Redis's `timeout`: when the client last sent something (or was found busy), and the
/// limit as CONFIG SET changes it. The timer is not reset per request: when it fires, the
/// connection closes only if it has really been idle for the limit, else it is re-armed.
struct IdleTimer {
    limit: tokio::sync::watch::Receiver<u64>,
    last: tokio::time::Instant,
}

impl IdleTimer {
    fn new() -> Self {
        IdleTimer {
            limit: crate::live::idle_timeout_watch(),
            last: tokio::time::Instant::now(),
        }
    }

    fn secs(&self) -> u64 {
        *self.limit.borrow()
    }

    /// A limit is set (0 = never close).
    fn armed(&self) -> bool {
        self.secs() > 0
    }

    fn seen(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    /// When the connection becomes idle for the limit (far away when there is none).
    fn deadline(&self) -> tokio::time::Instant {
        let secs = match self.secs() {
            0 => 86_400 * 365,
            s => s,
        };
        self.last + std::time::Duration::from_secs(secs)
    }

    fn expired(&self) -> bool {
        self.armed() && tokio::time::Instant::now() >= self.deadline()
    }
}

/// Serves one client connection until it closes.
pub async fn serve(server: Arc<Server>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
    let addr = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let info = ClientInfo::new(id, addr);
    let last_cmd = info.last_cmd.clone();
    let ledger = crate::stats::Ledger::new(id, &info.addr);
    server.register_client(info);
    let (mut rd, wr) = sock.into_split();
    let (tx, rx) = mpsc::channel::<Item>(MAX_IN_FLIGHT);
    let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES));
    let mut unpaid = 0usize;
    // Groups handed to the writer and not finished yet; `idle` wakes the reader when one is.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let idle = Arc::new(Notify::new());
    let kill = Arc::new(Notify::new());
    let writer = tokio::spawn(write_replies(
        WriterCtx {
            rx,
            in_flight: in_flight.clone(),
            idle: idle.clone(),
            kill: kill.clone(),
            limit: server.cfg.client_output_buffer_limit,
            client: id,
            logger: server.logger.clone(),
        },
        wr,
    ));

    let mut limits = Limits {
        max_bulk_len: server.cfg.proto_max_bulk_len,
        ..Default::default()
    };
    let mut conn = Conn {
        id,
        proto: Protocol::Resp2,
        closing: false,
        authenticated: server.cfg.requirepass.is_none(),
        group: Group::None,
        group_bytes: 0,
        raft_group: 0,
        last_cmd,
        cluster: Default::default(),
        multi: None,
        watches: Default::default(),
        pubsub: crate::pubsub_cmd::ConnSubs::new(&tx, kill.clone(), writer.abort_handle()),
        stats: ledger,
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Hands an item to the writer, counting groups in flight.
    let send = |item: (Protocol, Pending, bool), paid: Option<OwnedSemaphorePermit>| {
        if matches!(item.1, Pending::Later(_)) {
            in_flight.fetch_add(1, Ordering::AcqRel);
        }
        tx.send((item.0, item.1, item.2, paid))
    };
    let mut quiet = IdleTimer::new();
    let idle_timer = tokio::time::sleep_until(quiet.deadline());
    tokio::pin!(idle_timer);
    'conn: loop {
        let collecting = !matches!(conn.group, Group::None);
        let read = tokio::select! {
            _ = kill.notified() => break 'conn,
            r = rd.read_buf(&mut buf) => r,
            // CONFIG SET timeout: the new limit counts from the client's last request.
            Ok(()) = quiet.limit.changed() => {
                idle_timer.as_mut().reset(quiet.deadline());
                continue 'conn;
            }
            _ = &mut idle_timer, if quiet.armed() => {
                // Busy (a reply or a blocking command pending) or subscribed: not idle.
                if in_flight.load(Ordering::Acquire) > 0 || conn.pubsub.subscribed() {
                    quiet.seen();
                }
                if quiet.expired() {
                    debug!(server.logger, "closing idle client"; "client" => id);
                    break 'conn;
                }
                idle_timer.as_mut().reset(quiet.deadline());
                continue 'conn;
            }
            // A group is being collected while an earlier one is in flight: hand it over
            // when the writer gets idle, or add to it what the client sends meanwhile.
            _ = idle.notified(), if collecting => {
                if in_flight.load(Ordering::Acquire) == 0 {
                    if let Some(p) = server.flush_group(&mut conn) {
                        let paid = take_budget(&budget, &mut unpaid).await;
                        if send((conn.proto, p, false), paid).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                continue 'conn;
            }
        };
        match read {
            Ok(0) | Err(_) => {
                if let Some(p) = server.flush_group(&mut conn) {
                    let _ = send((conn.proto, p, false), None).await;
                }
                break;
            }
            Ok(_) => quiet.seen(),
        }
        loop {
            // Until AUTH, requests are held to Redis's small unauthenticated limits; AUTH
            // runs in `dispatch`, so it lifts them for the very next request.
            limits.unauthenticated = !conn.authenticated;
            let before_parse = buf.len();
            let parsed = parse_request(&mut buf, &limits);
            unpaid += before_parse - buf.len();
            match parsed {
                Ok(Some(argv)) => {
                    if argv.is_empty() {
                        continue;
                    }
                    let before = conn.proto;
                    conn.stats.begin(&argv);
                    let mut out = server.dispatch(&mut conn, argv);
                    conn.stats.dispatched(&mut out);
                    conn.pubsub.sync_proto(conn.proto);
                    let n = out.len();
                    for (i, pending) in out.into_iter().enumerate() {
                        // The command's own reply is the last item: HELLO answers in the
                        // protocol it selects, QUIT closes after its reply.
                        let proto = if i + 1 == n { conn.proto } else { before };
                        let last = conn.closing && i + 1 == n;
                        let paid = take_budget(&budget, &mut unpaid).await;
                        if send((proto, pending, last), paid).await.is_err() {
                            break 'conn;
                        }
                    }
                    if conn.closing {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(server.logger, "protocol error, closing"; "client" => id, "err" => %e);
                    if let Some(p) = server.flush_group(&mut conn) {
                        let _ = send((conn.proto, p, false), None).await;
                    }
                    let _ = send((conn.proto, Pending::Ready(e.to_reply()), true), None).await;
                    break 'conn;
                }
            }
        }
        // What was parsed goes to the writer now if it is idle; otherwise it keeps
        // collecting until the writer is (see above).
        if in_flight.load(Ordering::Acquire) == 0 {
            if let Some(p) = server.flush_group(&mut conn) {
                let paid = take_budget(&budget, &mut unpaid).await;
                if send((conn.proto, p, false), paid).await.is_err() {
                    break;
                }
            }
        }
        // Reclaim space: keep the buffer from growing without bound across requests.
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
    drop(tx);
    conn.pubsub.close(id);
    crate::blocking::blocked().client_gone(id);
    let _ = writer.await;
    crate::blocking::blocked().forget(id);
    server.unregister_client(id);
    server.open_conns.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_replies_drops_the_largest_first() {
        let big = |n: usize| Reply::Bulk(bytes::Bytes::from(vec![b'x'; n]));
        let mut rs = vec![Reply::ok(), big(600), big(300), big(500)];
        fit_replies(&mut rs, 1000);
        assert_eq!(rs[0], Reply::ok());
        assert!(matches!(&rs[1], Reply::Error(e) if e.contains("616 bytes")));
        assert_eq!(rs[2], big(300));
        assert_eq!(rs[3], big(500));
        let mut small = vec![big(10), Reply::Int(1)];
        fit_replies(&mut small, 1000);
        assert_eq!(small, vec![big(10), Reply::Int(1)]);
    }
}
