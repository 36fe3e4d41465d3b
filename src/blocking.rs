//! Blocking pops (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP): a blocked
//! client waits on the node it is connected to. Its command is proposed through Raft like
//! any write; the store pops when an element is there and otherwise answers the timeout
//! reply (a null array, as Redis inside MULTI), and then the client waits for a list or
//! sorted-set write to one of its keys to be applied on this node (the store's push
//! listener), and proposes again (retrying when another client won the race). No polling:
//! the client sleeps until a write to its key or its timeout.
//!
//! FIFO among the clients blocked on one key on this node: only the first in line is woken
//! by a write; when it leaves (popped, timed out, gone) the next in line is woken to try.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use resp::{Command, ListOp, Reply, ZSetOp};
use tokio::sync::Notify;

use crate::server::Server;
use crate::session::Outcome;

/// The reply of a blocked pop released because its node shuts down.
pub const SHUTTING_DOWN: &str = "TRYAGAIN node is shutting down";

struct Waiter {
    id: u64,
    client: u64,
    notify: Arc<Notify>,
}

/// The clients blocked on this node, per key, in arrival order.
#[derive(Default)]
pub struct Blocked {
    queues: Mutex<HashMap<Bytes, VecDeque<Waiter>>>,
    next_id: AtomicU64,
    /// Clients whose connection closed while a reply was still pending: a blocked pop of
    /// theirs stops waiting (it must not pop for nobody later).
    gone: Mutex<HashSet<u64>>,
    /// The node is shutting down: every blocked pop is released with an error.
    closing: std::sync::atomic::AtomicBool,
}

/// The node's registry (one node per process).
pub fn blocked() -> &'static Blocked {
    static B: OnceLock<Blocked> = OnceLock::new();
    B.get_or_init(Blocked::default)
}

impl Blocked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, VecDeque<Waiter>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a waiter of `client` on `keys`; returns its id.
    pub fn register(&self, client: u64, keys: &[Bytes], notify: &Arc<Notify>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut q = self.lock();
        for k in keys {
            let w = Waiter {
                id,
                client,
                notify: notify.clone(),
            };
            q.entry(k.clone()).or_default().push_back(w);
        }
        id
    }

    /// How many distinct clients are blocked on this node (INFO `blocked_clients`).
    pub fn client_count(&self) -> usize {
        let q = self.lock();
        let ids: HashSet<u64> = q.values().flatten().map(|w| w.client).collect();
        ids.len()
    }

    /// True once `client`'s connection closed.
    pub fn is_gone(&self, client: u64) -> bool {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&client)
    }

    /// `client`'s connection closed: its blocked pops stop waiting.
    pub fn client_gone(&self, client: u64) {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client);
        for line in self.lock().values() {
            line.iter()
                .filter(|w| w.client == client)
                .for_each(|w| w.notify.notify_one());
        }
    }

    /// The node is shutting down: wakes every blocked client, whose pop then answers
    /// [`SHUTTING_DOWN`] (nothing was proposed for it, so it certainly did not pop).
    pub fn shut_down(&self) {
        self.closing.store(true, Ordering::Release);
        for line in self.lock().values() {
            line.iter().for_each(|w| w.notify.notify_one());
        }
    }

    /// Waits (bounded) until every released pop has left the registry, then a little more
    /// for their replies to be written, before the process goes on stopping.
    pub async fn drain(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// `client`'s session ended: forgets it.
    pub fn forget(&self, client: u64) {
        self.gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client);
    }

    /// Removes waiter `id`; where it was first in line, the next one is woken.
    pub fn unregister(&self, id: u64, keys: &[Bytes]) {
        let mut q = self.lock();
        for k in keys {
            let Some(line) = q.get_mut(k) else { continue };
            let was_first = line.front().is_some_and(|w| w.id == id);
            line.retain(|w| w.id != id);
            if was_first {
                if let Some(next) = line.front() {
                    next.notify.notify_one();
                }
            }
            if line.is_empty() {
                q.remove(k);
            }
        }
    }

    /// A write to `key` was applied: wakes the first client in line for it (`None`: for
    /// every key, after a snapshot restore).
    pub fn wake(&self, key: Option<&[u8]>) {
        let q = self.lock();
        match key {
            Some(k) => q
                .get(k)
                .and_then(|l| l.front())
                .into_iter()
                .for_each(|w| w.notify.notify_one()),
            None => q
                .values()
                .filter_map(|l| l.front())
                .for_each(|w| w.notify.notify_one()),
        }
    }
}

/// The keys a blocking command waits on, and its timeout (`None`: not a blocking form).
pub fn blocking_keys(cmd: &Command) -> Option<(Vec<Bytes>, f64)> {
    match cmd {
        Command::List(c) => match &c.op {
            ListOp::MPop {
                keys,
                timeout: Some(t),
                ..
            } => Some((keys.clone(), *t)),
            ListOp::Move {
                timeout: Some(t), ..
            } => Some((c.args.first().cloned().into_iter().collect(), *t)),
            _ => None,
        },
        Command::ZSet(c) => match &c.op {
            ZSetOp::MPop {
                keys,
                timeout: Some(t),
                ..
            } => Some((keys.clone(), *t)),
            _ => None,
        },
        _ => None,
    }
}

/// True for the store's "nothing to pop" (the null array; relayed from the leader it is
/// `*-1` in RESP2, `_` in RESP3): no other reply of a blocking pop is a null array.
fn found_nothing(o: &Outcome) -> bool {
    match o {
        Outcome::Replies(r) => matches!(r.as_slice(), [Reply::NilArray]),
        Outcome::Raw(raw) => raw == b"*-1\r\n" || raw == b"_\r\n",
        Outcome::Overflow(_) => false,
    }
}

impl Server {
    /// Runs a blocking pop for a client (see the module docs); the reply of a timeout is
    /// Redis's null array.
    pub async fn blocking(
        self: Arc<Self>,
        client: u64,
        argv: Vec<Bytes>,
        cmd: Command,
        resp3: bool,
    ) -> Outcome {
        let Some((keys, secs)) = blocking_keys(&cmd) else {
            return self.write(vec![argv], resp3).await;
        };
        let deadline = (secs > 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten()
            .map(|d| tokio::time::Instant::now() + d);
        let notify = Arc::new(Notify::new());
        // In line before the first try, so no write between the try and the wait is missed.
        let id = blocked().register(client, &keys, &notify);
        let out = loop {
            if blocked().is_gone(client) {
                break Outcome::Replies(vec![Reply::NilArray]);
            }
            if blocked().closing() {
                break Outcome::Replies(vec![Reply::err(SHUTTING_DOWN)]);
            }
            let o = self.write(vec![argv.clone()], resp3).await;
            if !found_nothing(&o) {
                break o;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break Outcome::Replies(vec![Reply::NilArray]);
            }
            let woken = match deadline {
                None => {
                    notify.notified().await;
                    true
                }
                Some(d) => tokio::time::timeout_at(d, notify.notified()).await.is_ok(),
            };
            if !woken {
                break Outcome::Replies(vec![Reply::NilArray]);
            }
        };
        blocked().unregister(id, &keys);
        out
    }

    /// Connects the store's push listener (once, at start): pushed keys wake the blocked
    /// clients, keyspace events go to this node's subscribers (`crate::notify`).
    pub fn watch_pushes(&self) {
        for g in self.groups.all().iter() {
            listen_pushes(&g.reader);
        }
    }
}

/// Wakes blocked clients and publishes keyspace events for one group's applies (every
/// group at start; a group opened at runtime when it opens).
pub fn listen_pushes(reader: &store::Reader) {
    reader.set_push_listener(Arc::new(|applied: store::Applied<'_>| match applied {
        store::Applied::Pushed(key) => blocked().wake(Some(key)),
        store::Applied::Restored => blocked().wake(None),
        store::Applied::Events(events) => crate::notify::publish_events(events),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_in_line_is_woken_and_leaving_passes_the_turn() {
        let b = Blocked::default();
        let (n1, n2) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let k = [Bytes::from_static(b"k")];
        let a = b.register(1, &k, &n1);
        let c = b.register(2, &k, &n2);
        b.wake(Some(b"k"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ready = |n: &Arc<Notify>| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), n.notified())
                    .await
                    .is_ok()
            })
        };
        assert!(ready(&n1));
        assert!(!ready(&n2));
        b.unregister(a, &k);
        assert!(ready(&n2));
        // After a snapshot restore every line's first client tries again.
        b.wake(None);
        assert!(ready(&n2));
        // A client whose connection closed is woken and seen gone.
        b.client_gone(2);
        assert!(ready(&n2) && b.is_gone(2));
        b.unregister(c, &k);
        assert!(b.lock().is_empty());
        b.forget(2);
        assert!(!b.is_gone(2));
    }
}
