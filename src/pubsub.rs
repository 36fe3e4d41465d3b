//! The node's Pub/Sub hub: who is subscribed to what on this node, and the delivery of
//! messages to them. A message PUBLISHed here is delivered to this node's subscribers and
//! sent to every other member over the peer transport (fire-and-forget, not the Raft
//! log); a message a peer sent is delivered to this node's subscribers only. Keyspace
//! notifications (`crate::notify`) are delivered here too, on the node that applied the
//! change, never sent to peers (every node applies every change of the groups it hosts).
//!
//! Delivery never waits: a message goes into the subscriber's session queue (the one its
//! replies go through, so messages and replies keep their order) with its share of the
//! subscriber's output budget (`client-output-buffer-limit pubsub`, 32 MiB by default).
//! A subscriber whose pending output would pass the limit, or whose queue is full, is
//! disconnected at once, as Redis's hard limit does, and what was queued for it is freed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use resp::{Protocol, Reply};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::session::{reply_bytes, Item, Pending};

/// Default of `client-output-buffer-limit pubsub` (hard limit, bytes), as Redis.
pub const DEFAULT_LIMIT: usize = 32 << 20;

/// Permits of a subscriber's output budget; pending output is `BUDGET - available`.
const BUDGET: usize = 1 << 40;

/// One subscribed connection, as publishers see it.
pub struct Sub {
    pub id: u64,
    /// The session's queue; weak, so a subscription never keeps a closed session open.
    tx: mpsc::WeakSender<Item>,
    resp3: AtomicBool,
    budget: Arc<Semaphore>,
    kill: Arc<Notify>,
    writer: AbortHandle,
    dead: AtomicBool,
}

impl Sub {
    pub fn new(
        id: u64,
        tx: mpsc::WeakSender<Item>,
        kill: Arc<Notify>,
        writer: AbortHandle,
    ) -> Self {
        Sub {
            id,
            tx,
            resp3: AtomicBool::new(false),
            budget: Arc::new(Semaphore::new(BUDGET)),
            kill,
            writer,
            dead: AtomicBool::new(false),
        }
    }

    /// Follows the connection's protocol (HELLO may change it while subscribed).
    pub fn set_proto(&self, p: Protocol) {
        self.resp3.store(p == Protocol::Resp3, Ordering::Relaxed);
    }

    /// Bytes queued for the connection and not yet written.
    pub fn pending(&self) -> usize {
        BUDGET - self.budget.available_permits()
    }

    /// Queues one push for the connection; disconnects it when that would pass the
    /// output limit or its queue is full.
    fn deliver(&self, msg: Reply) {
        if self.dead.load(Ordering::Acquire) {
            return;
        }
        let n = reply_bytes(&msg);
        let limit = hub().limit.load(Ordering::Relaxed);
        if limit > 0 && self.pending() + n > limit {
            return self.overflow();
        }
        let Some(permit) = u32::try_from(n)
            .ok()
            .and_then(|n| self.budget.clone().try_acquire_many_owned(n).ok())
        else {
            return self.overflow();
        };
        let proto = if self.resp3.load(Ordering::Relaxed) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let Some(tx) = self.tx.upgrade() else {
            return; // the connection is closing
        };
        match tx.try_send((proto, Pending::Ready(msg), false, Some(permit))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.overflow(),
            // The connection is closing.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Past the output limit: the writer is stopped (what it had queued is freed) and the
    /// session told to close.
    fn overflow(&self) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            hub().stats.disconnections.fetch_add(1, Ordering::Relaxed);
            self.writer.abort();
            self.kill.notify_one();
        }
    }
}

/// Subscribers of one channel (or pattern), by client id.
type Subs = HashMap<u64, Arc<Sub>>;

/// The three kinds of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

#[derive(Default)]
struct Maps {
    channels: HashMap<Bytes, Subs>,
    patterns: HashMap<Bytes, Subs>,
    shard: HashMap<Bytes, Subs>,
}

impl Maps {
    fn of(&mut self, k: Kind) -> &mut HashMap<Bytes, Subs> {
        match k {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    fn get(&self, k: Kind) -> &HashMap<Bytes, Subs> {
        match k {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }
}

/// Counters for INFO stats.
#[derive(Default)]
pub struct Stats {
    /// Subscribers disconnected for passing the output limit.
    pub disconnections: AtomicU64,
    /// Messages delivered to local subscribers.
    pub delivered: AtomicU64,
}

/// The node's subscriptions.
pub struct Hub {
    maps: RwLock<Maps>,
    /// Subscriptions per client (channels, patterns, shard channels), for CLIENT LIST.
    per_client: std::sync::Mutex<HashMap<u64, [usize; 3]>>,
    /// `client-output-buffer-limit pubsub` hard limit (0: none).
    pub limit: AtomicUsize,
    pub stats: Stats,
}

/// The node's hub (one node per process).
pub fn hub() -> &'static Hub {
    static H: OnceLock<Hub> = OnceLock::new();
    H.get_or_init(|| Hub {
        maps: RwLock::default(),
        per_client: Default::default(),
        limit: AtomicUsize::new(DEFAULT_LIMIT),
        stats: Stats::default(),
    })
}

fn push(parts: Vec<Reply>) -> Reply {
    Reply::Push(parts)
}

impl Hub {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, k: Kind, name: &Bytes, sub: &Arc<Sub>) {
        self.write()
            .of(k)
            .entry(name.clone())
            .or_default()
            .insert(sub.id, sub.clone());
    }

    pub fn remove(&self, k: Kind, name: &[u8], id: u64) {
        let mut m = self.write();
        let map = m.of(k);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Delivers a message to this node's subscribers; the number of receivers (channel
    /// subscribers and matching pattern subscriptions, or shard channel subscribers).
    pub fn deliver(&self, channel: &[u8], message: &[u8], shard: bool) -> usize {
        let m = self.read();
        // One copy of each, shared by every subscriber's reply.
        let (channel_b, message_b) = (
            Bytes::copy_from_slice(channel),
            Bytes::copy_from_slice(message),
        );
        let ch = || Reply::Bulk(channel_b.clone());
        let msg = || Reply::Bulk(message_b.clone());
        let mut n = 0;
        let (kind, word) = if shard {
            (Kind::Shard, "smessage")
        } else {
            (Kind::Channel, "message")
        };
        if let Some(subs) = m.get(kind).get(channel) {
            for s in subs.values() {
                s.deliver(push(vec![Reply::bulk(word), ch(), msg()]));
                n += 1;
            }
        }
        if !shard {
            for (pat, subs) in &m.patterns {
                if store::glob_match(pat, channel, false) {
                    for s in subs.values() {
                        let pm = Reply::Bulk(pat.clone());
                        s.deliver(push(vec![Reply::bulk("pmessage"), pm, ch(), msg()]));
                        n += 1;
                    }
                }
            }
        }
        self.stats.delivered.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Records a client's subscription counts (all zero: forgotten).
    pub fn set_client_counts(&self, id: u64, counts: [usize; 3]) {
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if counts == [0; 3] {
            m.remove(&id);
        } else {
            m.insert(id, counts);
        }
    }

    /// A client's (channels, patterns, shard channels) subscribed.
    pub fn client_counts(&self, id: u64) -> [usize; 3] {
        let m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&id).copied().unwrap_or_default()
    }

    /// True when nobody on this node subscribes to anything (keyspace events are then not
    /// even formatted).
    pub fn is_empty(&self) -> bool {
        let m = self.read();
        m.channels.is_empty() && m.patterns.is_empty()
    }

    /// Active channels (or shard channels) matching `pattern` (all when `None`).
    pub fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let m = self.read();
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        let mut out: Vec<Bytes> = m
            .get(kind)
            .keys()
            .filter(|c| pattern.is_none_or(|p| store::glob_match(p, c, false)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Subscribers of a channel (or shard channel) on this node.
    pub fn numsub(&self, shard: bool, channel: &[u8]) -> usize {
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        self.read().get(kind).get(channel).map_or(0, |s| s.len())
    }

    /// Distinct patterns subscribed on this node.
    pub fn numpat(&self) -> usize {
        self.read().patterns.len()
    }

    /// `pubsub_channels`, `pubsub_patterns`, `pubsubshard_channels`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let m = self.read();
        (m.channels.len(), m.patterns.len(), m.shard.len())
    }
}

/// The INFO stats lines of Pub/Sub (Redis's names, then raftkv's transport counters).
pub fn info_lines(t: &raft_node::Transport) -> String {
    let (c, p, s) = hub().counts();
    let ps = t.publish_stats();
    format!(
        "pubsub_channels:{c}\r\npubsub_patterns:{p}\r\npubsubshard_channels:{s}\r\nclient_output_buffer_limit_disconnections:{}\r\npubsub_messages_delivered:{}\r\npubsub_peer_messages_sent:{}\r\npubsub_peer_messages_dropped:{}\r\npubsub_peer_messages_received:{}\r\n",
        hub().stats.disconnections.load(Ordering::Relaxed),
        hub().stats.delivered.load(Ordering::Relaxed),
        ps.sent.load(Ordering::Relaxed),
        ps.dropped.load(Ordering::Relaxed),
        ps.received.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts = (
        Arc<Sub>,
        mpsc::Receiver<Item>,
        mpsc::Sender<Item>,
        tokio::runtime::Runtime,
    );

    fn sub(id: u64) -> Parts {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(4);
        let task = rt.spawn(async {});
        let kill = Arc::new(Notify::new());
        let s = Arc::new(Sub::new(id, tx.downgrade(), kill, task.abort_handle()));
        (s, rx, tx, rt)
    }

    #[test]
    fn a_full_queue_disconnects_and_later_messages_are_ignored() {
        let (s, mut rx, _tx, _rt) = sub(900);
        for i in 0..6 {
            s.deliver(Reply::Int(i));
        }
        assert!(s.dead.load(Ordering::Acquire));
        let mut got = 0;
        while rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 4);
    }

    #[test]
    fn pending_output_counts_until_the_message_is_taken() {
        let (s, mut rx, _tx, _rt) = sub(901);
        s.deliver(Reply::bulk("hello"));
        assert_eq!(s.pending(), reply_bytes(&Reply::bulk("hello")));
        drop(rx.try_recv());
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn channels_patterns_and_shard_channels_are_counted_apart() {
        let (s, _rx, _tx, _rt) = sub(902);
        let h = hub();
        h.add(Kind::Channel, &Bytes::from("t902"), &s);
        h.add(Kind::Pattern, &Bytes::from("t90*"), &s);
        h.add(Kind::Shard, &Bytes::from("t902"), &s);
        assert_eq!(h.numsub(false, b"t902"), 1);
        assert_eq!(h.numsub(true, b"t902"), 1);
        assert!(h
            .channels(false, Some(b"t9*"))
            .contains(&Bytes::from("t902")));
        // The channel subscriber and the pattern.
        assert_eq!(h.deliver(b"t902", b"m", false), 2);
        assert_eq!(h.deliver(b"t902", b"m", true), 1);
        h.remove(Kind::Channel, b"t902", 902);
        h.remove(Kind::Pattern, b"t90*", 902);
        h.remove(Kind::Shard, b"t902", 902);
        assert_eq!(h.numsub(false, b"t902"), 0);
    }
}
