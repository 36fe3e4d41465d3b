//! The session side of Pub/Sub: a connection's subscriptions, RESP2 subscribe mode, and the
//! Pub/Sub commands (`resp::cmd::pubsub`), answered with Redis 7.0's replies.
//!
//! The session calls [`Server::pubsub_intercept`] for every parsed command. Subscribe and
//! unsubscribe confirmations are computed at once (their counts follow the connection's own
//! view) but the hub learns of the change only when the session's writer reaches the reply
//! ([`Pending::Later`]): every reply before it is out by then, so no message can overtake
//! the confirmation of its subscription, and none arrives after an unsubscribe's.
//!
//! In RESP2 a connection with any subscription is in subscribe mode: only (P|S)SUBSCRIBE,
//! (P|S)UNSUBSCRIBE, PING (answered `["pong", msg]`) and QUIT are served. RESP3 connections
//! get messages as push frames and may send anything.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, Protocol, PubSubCmd, PubSubOp, Reply};
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::pubsub::{hub, Kind, Sub};
use crate::server::Server;
use crate::session::{Item, Outcome, Pending};

/// A connection's subscriptions.
pub struct ConnSubs {
    /// What a [`Sub`] is made of; the weak sender keeps no connection open.
    tx: mpsc::WeakSender<Item>,
    kill: Arc<Notify>,
    writer: AbortHandle,
    handle: Option<Arc<Sub>>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl ConnSubs {
    pub fn new(tx: &mpsc::Sender<Item>, kill: Arc<Notify>, writer: AbortHandle) -> Self {
        ConnSubs {
            tx: tx.downgrade(),
            kill,
            writer,
            handle: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard: BTreeSet::new(),
        }
    }

    /// In RESP2 subscribe mode (Redis counts shard channels too).
    pub fn subscribed(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }

    fn set(&mut self, k: Kind) -> &mut BTreeSet<Bytes> {
        match k {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a confirmation reports: channels and patterns, or shard channels.
    fn count(&self, k: Kind) -> i64 {
        match k {
            Kind::Shard => self.shard.len() as i64,
            _ => (self.channels.len() + self.patterns.len()) as i64,
        }
    }

    /// Publishes the connection's counts for CLIENT LIST.
    fn report(&self, id: u64) {
        let counts = [self.channels.len(), self.patterns.len(), self.shard.len()];
        hub().set_client_counts(id, counts);
    }

    /// Keeps the connection's protocol for its messages (after HELLO).
    pub fn sync_proto(&self, p: Protocol) {
        if let Some(h) = &self.handle {
            h.set_proto(p);
        }
    }

    fn handle(&mut self, id: u64, proto: Protocol) -> Option<Arc<Sub>> {
        if self.handle.is_none() {
            let tx = self.tx.upgrade()?;
            let sub = Sub::new(id, tx.downgrade(), self.kill.clone(), self.writer.clone());
            self.handle = Some(Arc::new(sub));
        }
        let h = self.handle.clone()?;
        h.set_proto(proto);
        Some(h)
    }

    /// The connection closed: its subscriptions leave the hub.
    pub fn close(&mut self, id: u64) {
        let hub = hub();
        for k in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(self.set(k)) {
                hub.remove(k, &name, id);
            }
        }
        self.handle = None;
        self.report(id);
    }
}

const SUBSCRIBE_MODE: &str =
    "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context";

fn words(k: Kind) -> (&'static str, &'static str) {
    match k {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

impl Server {
    /// Answers Pub/Sub commands and enforces RESP2 subscribe mode; `None` for every other
    /// command (the session goes on as usual).
    pub fn pubsub_intercept(
        &self,
        conn: &mut crate::session::Conn,
        cmd: &Command,
    ) -> Option<Pending> {
        let c = match cmd {
            Command::PubSub(c) => c,
            Command::Ping(msg) if conn.proto == Protocol::Resp2 && conn.pubsub.subscribed() => {
                let m = msg.clone().unwrap_or_default();
                let r = Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(m)]);
                return Some(Pending::Ready(r));
            }
            Command::Quit => return None,
            _ if conn.proto == Protocol::Resp2 && conn.pubsub.subscribed() => {
                let name = cmd.name().to_ascii_lowercase();
                let e = format!("ERR Can't execute '{name}': {SUBSCRIBE_MODE}");
                return Some(Pending::Ready(Reply::err(e)));
            }
            _ => return None,
        };
        let resp2_subscribed = conn.proto == Protocol::Resp2 && conn.pubsub.subscribed();
        let ready = |r| Some(Pending::Ready(r));
        match &c.op {
            PubSubOp::Subscribe => self.subscribe(conn, Kind::Channel, &c.args),
            PubSubOp::PSubscribe => self.subscribe(conn, Kind::Pattern, &c.args),
            PubSubOp::SSubscribe => self.subscribe(conn, Kind::Shard, &c.args),
            PubSubOp::Unsubscribe => unsubscribe(conn, Kind::Channel, &c.args),
            PubSubOp::PUnsubscribe => unsubscribe(conn, Kind::Pattern, &c.args),
            PubSubOp::SUnsubscribe => unsubscribe(conn, Kind::Shard, &c.args),
            PubSubOp::Reset => Some(self.reset(conn)),
            _ if resp2_subscribed => {
                let name = c.spec.name.to_ascii_lowercase();
                ready(Reply::err(format!(
                    "ERR Can't execute '{name}': {SUBSCRIBE_MODE}"
                )))
            }
            _ => ready(self.pubsub_reply(c)),
        }
    }

    /// The reply of a Pub/Sub command that changes no subscription (PUBLISH, SPUBLISH,
    /// PUBSUB ...), also inside MULTI. (P|S)(UN)SUBSCRIBE inside MULTI are refused.
    pub fn pubsub_reply(&self, c: &PubSubCmd) -> Reply {
        match &c.op {
            PubSubOp::Publish { shard } => self.publish(c, *shard),
            PubSubOp::Channels { shard } => {
                let list = hub().channels(*shard, c.args.first().map(|p| &p[..]));
                Reply::Array(list.into_iter().map(Reply::Bulk).collect())
            }
            // A flat array in RESP3 too, as Redis 7.0.
            PubSubOp::NumSub { shard } => Reply::Array(
                c.args
                    .iter()
                    .flat_map(|ch| {
                        let n = hub().numsub(*shard, ch) as i64;
                        [Reply::Bulk(ch.clone()), Reply::Int(n)]
                    })
                    .collect(),
            ),
            PubSubOp::NumPat => Reply::Int(hub().numpat() as i64),
            PubSubOp::Help => resp::cmd::pubsub::help(),
            _ => Reply::err(format!("ERR {} inside MULTI is not supported", c.spec.name)),
        }
    }

    /// RESET: leaves MULTI (and drops the watches), subscribe mode and every subscription,
    /// returns to RESP2 and READWRITE, and to unauthenticated when a password is required.
    fn reset(&self, conn: &mut crate::session::Conn) -> Pending {
        conn.multi = None;
        conn.proto = Protocol::Resp2;
        conn.cluster = Default::default();
        if self.cfg.requirepass.is_some() {
            conn.authenticated = false;
        }
        let mut removed = Vec::new();
        for k in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            removed.extend(
                std::mem::take(conn.pubsub.set(k))
                    .into_iter()
                    .map(|n| (k, n)),
            );
        }
        conn.pubsub.handle = None;
        let id = conn.id;
        conn.pubsub.report(id);
        let clear = crate::multi::clear_then(conn, Reply::Status("RESET".into()));
        Pending::Later(Box::pin(async move {
            for (k, n) in &removed {
                hub().remove(*k, n, id);
            }
            match clear {
                Pending::Later(f) => f.await,
                Pending::Ready(r) => Outcome::Replies(vec![r]),
            }
        }))
    }

    /// PUBLISH / SPUBLISH: delivered here and sent to every other node; the reply counts
    /// this node's receivers (as Redis Cluster).
    fn publish(&self, c: &PubSubCmd, shard: bool) -> Reply {
        let (ch, msg) = (&c.args[0], &c.args[1]);
        let n = hub().deliver(ch, msg, shard);
        self.transport.publish(ch, msg, shard);
        Reply::Int(n as i64)
    }

    fn subscribe(
        &self,
        conn: &mut crate::session::Conn,
        k: Kind,
        names: &[Bytes],
    ) -> Option<Pending> {
        if k == Kind::Shard && !same_slot(names) {
            let e = Reply::err(crate::cluster::route::CROSSSLOT);
            return Some(Pending::Ready(e));
        }
        let Some(sub) = conn.pubsub.handle(conn.id, conn.proto) else {
            return Some(Pending::Ready(Reply::err("ERR connection is closing")));
        };
        let (word, _) = words(k);
        let mut replies = Vec::with_capacity(names.len());
        let mut added = Vec::new();
        for n in names {
            if conn.pubsub.set(k).insert(n.clone()) {
                added.push(n.clone());
            }
            let count = conn.pubsub.count(k);
            replies.push(Reply::Push(vec![
                Reply::bulk(word),
                Reply::Bulk(n.clone()),
                Reply::Int(count),
            ]));
        }
        conn.pubsub.report(conn.id);
        Some(Pending::Later(Box::pin(async move {
            for n in &added {
                hub().add(k, n, &sub);
            }
            Outcome::Replies(replies)
        })))
    }
}

/// UNSUBSCRIBE and its kin: the named subscriptions, or all of the kind when none is named.
fn unsubscribe(conn: &mut crate::session::Conn, k: Kind, names: &[Bytes]) -> Option<Pending> {
    if k == Kind::Shard && !same_slot(names) {
        return Some(Pending::Ready(Reply::err(crate::cluster::route::CROSSSLOT)));
    }
    let (_, word) = words(k);
    let names: Vec<Bytes> = if names.is_empty() {
        conn.pubsub.set(k).iter().cloned().collect()
    } else {
        names.to_vec()
    };
    let id = conn.id;
    let mut replies = Vec::with_capacity(names.len().max(1));
    let mut removed = Vec::new();
    for n in names {
        if conn.pubsub.set(k).remove(&n) {
            removed.push(n.clone());
        }
        let count = conn.pubsub.count(k);
        replies.push(Reply::Push(vec![
            Reply::bulk(word),
            Reply::Bulk(n),
            Reply::Int(count),
        ]));
    }
    if replies.is_empty() {
        let count = conn.pubsub.count(k);
        replies.push(Reply::Push(vec![
            Reply::bulk(word),
            Reply::Nil,
            Reply::Int(count),
        ]));
    }
    conn.pubsub.report(id);
    Some(Pending::Later(Box::pin(async move {
        for n in &removed {
            hub().remove(k, n, id);
        }
        Outcome::Replies(replies)
    })))
}

/// Shard channels of one command must hash to one slot (Redis Cluster's CROSSSLOT rule).
fn same_slot(names: &[Bytes]) -> bool {
    let mut slots = names.iter().map(|n| resp::slot::key_slot(n));
    let first = slots.next();
    slots.all(|s| Some(s) == first)
}
