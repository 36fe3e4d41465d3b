//! Counters of the peer transport, shown in INFO's raft section: per peer (messages sent,
//! dropped, oversized, send errors, whether the link is up and since when) and for the
//! node as a whole (inbound frames skipped as oversized, messages with no route,
//! handshakes and connections refused), plus snapshot transfer progress. A wedged link
//! (an entry that can never fit a frame, a peer refusing the handshake) shows here and in
//! the rate-limited log instead of failing silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::ratelimit::RateLimit;

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

/// The outbound raft link to one peer.
#[derive(Debug)]
pub struct PeerStats {
    /// Raft messages written to the peer's connection.
    pub sent: AtomicU64,
    /// Messages discarded because the peer could not be reached or the connection broke
    /// (raft retransmits what matters).
    pub dropped: AtomicU64,
    /// Messages that can never fit one frame (`MAX_FRAME`): never sent.
    pub oversized: AtomicU64,
    /// Failed connects, handshakes and writes.
    pub send_errors: AtomicU64,
    pub connected: AtomicBool,
    /// When `connected` last changed (ms since the transport started).
    pub since_ms: AtomicU64,
    /// Rate limit of this link's warnings.
    pub log_limit: RateLimit,
}

impl PeerStats {
    fn new(epoch: Instant) -> Self {
        PeerStats {
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            since_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            log_limit: RateLimit::default(),
        }
    }

    /// Records the link going up or down (from `epoch`, the transport's start).
    pub fn set_connected(&self, up: bool, epoch: Instant) {
        if self.connected.swap(up, Ordering::AcqRel) != up {
            self.since_ms
                .store(epoch.elapsed().as_millis() as u64, Ordering::Release);
        }
    }
}

/// Every counter of one node's transport.
#[derive(Debug)]
pub struct TransportStats {
    pub epoch: Instant,
    pub peers: Mutex<BTreeMap<u64, Arc<PeerStats>>>,
    /// Inbound raft frames over `MAX_FRAME`, skipped.
    pub recv_oversized: AtomicU64,
    /// Inbound frames or raft messages that did not decode or were misaddressed.
    pub recv_malformed: AtomicU64,
    /// Outgoing messages to a peer with no route.
    pub no_route: AtomicU64,
    /// Inbound connections whose handshake failed (wrong secret, replay, bad hello).
    pub handshakes_refused: AtomicU64,
    /// Inbound connections closed at once because too many were open.
    pub conns_refused: AtomicU64,
    /// Connections still in their handshake closed to make room for a newer one.
    pub handshakes_evicted: AtomicU64,
    /// Snapshot streams cut off because a newer stream of the same snapshot started.
    pub snap_streams_superseded: AtomicU64,
    /// Rate limit of node-wide transport warnings.
    pub log_limit: RateLimit,
}

impl Default for TransportStats {
    fn default() -> Self {
        TransportStats {
            epoch: Instant::now(),
            peers: Mutex::new(BTreeMap::new()),
            recv_oversized: AtomicU64::new(0),
            recv_malformed: AtomicU64::new(0),
            no_route: AtomicU64::new(0),
            handshakes_refused: AtomicU64::new(0),
            conns_refused: AtomicU64::new(0),
            handshakes_evicted: AtomicU64::new(0),
            snap_streams_superseded: AtomicU64::new(0),
            log_limit: RateLimit::default(),
        }
    }
}

impl TransportStats {
    /// The counters of the link to `pid` (created on first use).
    pub fn peer(&self, pid: u64) -> Arc<PeerStats> {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pid)
            .or_insert_with(|| Arc::new(PeerStats::new(self.epoch)))
            .clone()
    }

    /// Forgets a peer that left the group.
    pub fn forget(&self, pid: u64) {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// INFO lines (`name:value\r\n`): one `raft_peer_<id>` line per peer, then the totals.
    pub fn info_lines(&self, addrs: &BTreeMap<u64, String>) -> String {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut out = String::new();
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (id, p) in peers {
            let r = Ordering::Relaxed;
            let _ = write!(
                out,
                "raft_peer_{id}:addr={},connected={},since_s={},sent={},dropped={},oversized={},send_errors={}\r\n",
                addrs.get(&id).map_or("?", String::as_str),
                u8::from(p.connected.load(r)),
                now.saturating_sub(p.since_ms.load(r)) / 1000,
                p.sent.load(r),
                p.dropped.load(r),
                p.oversized.load(r),
                p.send_errors.load(r),
            );
        }
        let r = Ordering::Relaxed;
        let _ = write!(
            out,
            "raft_peer_recv_oversized:{}\r\nraft_peer_recv_malformed:{}\r\nraft_peer_no_route:{}\r\nraft_peer_handshakes_refused:{}\r\nraft_peer_conns_refused:{}\r\nraft_peer_handshakes_evicted:{}\r\nraft_snapshot_streams_superseded:{}\r\n",
            self.recv_oversized.load(r),
            self.recv_malformed.load(r),
            self.no_route.load(r),
            self.handshakes_refused.load(r),
            self.conns_refused.load(r),
            self.handshakes_evicted.load(r),
            self.snap_streams_superseded.load(r),
        );
        out
    }
}
