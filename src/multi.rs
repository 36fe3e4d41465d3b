//! MULTI / EXEC / DISCARD / WATCH / UNWATCH for one connection (Redis 7.0 semantics).
//!
//! While in MULTI, the session queues each command (answering `+QUEUED`) instead of
//! grouping it. An unknown command, unknown subcommand or wrong arity is answered at once
//! and makes EXEC fail with EXECABORT, as do commands not allowed in a transaction (the
//! `no_multi` ones and the `RAFT.*` administration) and KEYS / SCAN (raftkv: at apply time
//! they would read the database without the entry's staged writes); other parse errors are
//! queued and appear in EXEC's reply, as in Redis. EXEC sends the data commands (reads and writes) and
//! the watched keys' versions as ONE `RAFTKV.EXEC` proposal (forwarded to the leader from a
//! follower like any write), which every replica applies atomically: a nil array if a
//! watched key changed, else the body's replies. Connection commands queued in the
//! transaction (PING, ECHO, CLIENT ...) are answered by the session when EXEC is dispatched
//! and spliced into the reply at their positions (so one with an effect, CLIENT SETNAME,
//! takes effect even if WATCH then aborts the transaction).
//!
//! WATCH is a linearizable read (one ReadIndex barrier) of the keys' versions. Watches live
//! in a cell shared with the futures the session's writer runs in order, so a pipelined
//! `WATCH k` / `MULTI` / ... / `EXEC` sees the versions the WATCH read, and UNWATCH, DISCARD
//! and EXEC clear them in the connection's order; they go with the connection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use resp::{relayed, Command, Kind, Protocol, Reply, WatchedKey};

use crate::server::{too_large, Server};
use crate::session::{Conn, Outcome, Pending};
use crate::sm::encoded_len;

/// Most commands one transaction may queue (each is applied in the one entry EXEC
/// proposes; the entry's bytes are bounded by `--max-write-bytes` too).
pub const MAX_QUEUED: usize = 100_000;

/// A command queued by MULTI.
enum Queued {
    /// A read or write: part of the `RAFTKV.EXEC` proposal.
    Data(Vec<Bytes>),
    /// Answered by the session at EXEC.
    Local(Command),
    /// A parse error Redis reports only at EXEC (inside its reply).
    Failed(Reply),
}

/// The state of a connection inside MULTI.
#[derive(Default)]
pub struct Multi {
    queued: Vec<Queued>,
    /// Encoded bytes of the queued commands.
    bytes: usize,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    dirty: bool,
    /// The slot of the queued commands' keys (a sharded cluster runs a transaction in one
    /// slot, as Redis Cluster does).
    slot: Option<u16>,
}

/// The keys a connection watches, as WATCH read them.
#[derive(Default)]
pub struct Watches {
    keys: Vec<WatchedKey>,
    seen: HashSet<Bytes>,
    bytes: usize,
}

/// Shared between the connection and the futures its writer runs in order.
pub type SharedWatches = Arc<Mutex<Watches>>;

fn lock(w: &SharedWatches) -> MutexGuard<'_, Watches> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

fn ready(r: Reply) -> Pending {
    Pending::Ready(r)
}

fn queued() -> Reply {
    Reply::Status("QUEUED".into())
}

impl Watches {
    /// Adds keys not watched yet (the first WATCH of a key keeps its version, as Redis);
    /// refused past `max` bytes of watched keys.
    fn add(&mut self, keys: Vec<WatchedKey>, max: usize) -> Result<(), Reply> {
        let more: usize = keys.iter().map(|w| w.key.len() + 24).sum();
        if self.bytes.saturating_add(more) > max {
            return Err(Reply::err(format!(
                "ERR watched keys would take more than {max} bytes (--max-write-bytes); UNWATCH first"
            )));
        }
        for w in keys {
            if self.seen.insert(w.key.clone()) {
                self.bytes += w.key.len() + 24;
                self.keys.push(w);
            }
        }
        Ok(())
    }
}

impl Server {
    /// A request that failed to parse while the connection is in MULTI: Redis's queue-time
    /// errors are answered now and abort the transaction; others are queued.
    pub fn queue_failed(&self, conn: &mut Conn, argv: &[Bytes], err: Reply) -> Pending {
        let Some(m) = conn.multi.as_mut() else {
            return ready(err);
        };
        if resp::cmd::queue_error(argv).is_some() {
            m.dirty = true;
            return ready(err);
        }
        m.queued.push(Queued::Failed(err));
        ready(queued())
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH, and every command while in MULTI.
    pub fn transaction(
        self: &Arc<Self>,
        conn: &mut Conn,
        argv: Vec<Bytes>,
        cmd: Command,
    ) -> Pending {
        let in_multi = conn.multi.is_some();
        match cmd {
            Command::Multi if in_multi => ready(Reply::err("ERR MULTI calls can not be nested")),
            Command::Multi => {
                conn.multi = Some(Multi::default());
                ready(Reply::ok())
            }
            Command::Exec => match conn.multi.take() {
                None => ready(Reply::err("ERR EXEC without MULTI")),
                Some(m) => self.exec(conn, m),
            },
            Command::Discard => match conn.multi.take() {
                None => ready(Reply::err("ERR DISCARD without MULTI")),
                Some(_) => clear_then(conn, Reply::ok()),
            },
            Command::Watch(_) if in_multi => {
                ready(Reply::err("ERR WATCH inside MULTI is not allowed"))
            }
            Command::Watch(keys) => self.watch(conn, keys),
            Command::Unwatch if !in_multi => clear_then(conn, Reply::ok()),
            Command::Quit => ready(self.local(conn, cmd)),
            cmd => self.queue(conn, argv, cmd),
        }
    }

    fn queue(&self, conn: &mut Conn, argv: Vec<Bytes>, cmd: Command) -> Pending {
        let limit = self.cfg.write_limit();
        let size = encoded_len(&argv);
        let Some(m) = conn.multi.as_mut() else {
            return ready(Reply::err("ERR EXEC without MULTI"));
        };
        if cmd.kind() == Kind::Admin || cmd.spec().has_flag("no_multi") {
            m.dirty = true;
            return ready(Reply::err("ERR Command not allowed inside a transaction"));
        }
        if matches!(cmd, Command::Keys(_) | Command::Scan { .. }) {
            // They read the database, not the entry's staged writes (which is why they
            // always form a read group of their own outside MULTI).
            m.dirty = true;
            return ready(Reply::err(format!(
                "ERR {} is not supported inside MULTI (it would not see the transaction's own writes)",
                cmd.name()
            )));
        }
        if let Some(e) = self.same_slot(&mut m.slot, &cmd.keys()) {
            m.dirty = true;
            return ready(e);
        }
        if m.queued.len() >= MAX_QUEUED {
            m.dirty = true;
            return ready(Reply::err(format!(
                "ERR a transaction queues at most {MAX_QUEUED} commands"
            )));
        }
        if m.bytes.saturating_add(size) > limit {
            m.dirty = true;
            return ready(too_large(
                "transaction",
                m.bytes.saturating_add(size),
                limit,
            ));
        }
        m.bytes += size;
        m.queued.push(match cmd.kind() {
            Kind::Read | Kind::Write => Queued::Data(argv),
            _ => Queued::Local(cmd),
        });
        ready(queued())
    }

    /// In a sharded cluster, `-CROSSSLOT` when `keys` leave the slot `slot` holds (or
    /// holds now, from the first key).
    fn same_slot<K: AsRef<[u8]>>(&self, slot: &mut Option<u16>, keys: &[K]) -> Option<Reply> {
        if self.groups.len() < 2 {
            return None;
        }
        for k in keys {
            let s = store::slot::key_slot(k.as_ref());
            if *slot.get_or_insert(s) != s {
                return Some(Reply::err(crate::cluster::route::CROSSSLOT));
            }
        }
        None
    }

    /// WATCH: read the keys' versions behind one ReadIndex barrier and remember them.
    fn watch(self: &Arc<Self>, conn: &mut Conn, keys: Vec<Bytes>) -> Pending {
        let me = self.clone();
        let watches = conn.watches.clone();
        let mut slot = lock(&watches)
            .keys
            .first()
            .map(|w| store::slot::key_slot(&w.key));
        if let Some(e) = self.same_slot(&mut slot, &keys) {
            return ready(e);
        }
        let gid = keys
            .first()
            .map_or_else(|| self.groups.home_id(), |k| self.groups.key_group(k));
        if !self.groups.hosts(gid) {
            // The versions live in the group's store, which this node does not have.
            return ready(Reply::err(format!(
                "ERR WATCH of a key of group {gid}, which this node does not host: send it to a node of that group"
            )));
        }
        Pending::Later(Box::pin(async move {
            me.stats
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let g = me.group(gid);
            if let Err(e) = me.read_barrier_in(&g).await {
                return Outcome::Replies(vec![e]);
            }
            let now = Server::read_time_in(&g);
            let reply = match g.reader.watch_versions(&keys, now) {
                Ok(ws) => match lock(&watches).add(ws, me.cfg.write_limit()) {
                    Ok(()) => Reply::ok(),
                    Err(e) => e,
                },
                // A slot this group does not serve (it moved): certainly not watched.
                Err(e) if e.starts_with("TRYAGAIN") => Reply::err(e),
                Err(e) => Reply::err(format!("ERR storage error: {e}")),
            };
            Outcome::Replies(vec![reply])
        }))
    }

    /// EXEC: EXECABORT if queueing failed; else local commands now, the data commands and
    /// the watches as one proposal, the replies spliced back in queue order.
    fn exec(self: &Arc<Self>, conn: &mut Conn, m: Multi) -> Pending {
        if m.dirty {
            return clear_then(
                conn,
                Reply::err("EXECABORT Transaction discarded because of previous errors."),
            );
        }
        let m_slot = m.slot;
        let mut slots: Vec<Option<Reply>> = Vec::with_capacity(m.queued.len());
        let mut data = Vec::new();
        for q in m.queued {
            slots.push(match q {
                Queued::Data(argv) => {
                    data.push(argv);
                    None
                }
                // EXEC clears the watches anyway.
                Queued::Local(Command::Unwatch) => Some(Reply::ok()),
                Queued::Local(Command::PubSub(c)) => Some(self.pubsub_reply(&c)),
                Queued::Local(cmd) => Some(self.local(conn, cmd)),
                Queued::Failed(e) => Some(e),
            });
        }
        let me = self.clone();
        let watches = conn.watches.clone();
        let proto = conn.proto;
        Pending::Later(Box::pin(async move {
            let watched = std::mem::take(&mut *lock(&watches)).keys;
            let mut slot = m_slot;
            let wkeys: Vec<Bytes> = watched.iter().map(|w| w.key.clone()).collect();
            if let Some(e) = me.same_slot(&mut slot, &wkeys) {
                return Outcome::Replies(vec![e]);
            }
            let gid = slot.map_or_else(|| me.groups.home_id(), |s| me.groups.slot_group(s));
            if data.is_empty() && watched.is_empty() {
                return Outcome::Replies(vec![Reply::Array(slots.into_iter().flatten().collect())]);
            }
            let argv = Command::exec_argv(&watched, &data);
            let size = encoded_len(&argv);
            if size > me.cfg.write_limit() {
                return Outcome::Replies(vec![too_large(
                    "transaction",
                    size,
                    me.cfg.write_limit(),
                )]);
            }
            let outcome = me.write_in(gid, vec![argv], proto == Protocol::Resp3).await;
            splice(outcome, slots, proto)
        }))
    }
}

/// Clears the watches in the connection's order, then answers `reply`.
pub(crate) fn clear_then(conn: &Conn, reply: Reply) -> Pending {
    let watches = conn.watches.clone();
    Pending::Later(Box::pin(async move {
        *lock(&watches) = Watches::default();
        Outcome::Replies(vec![reply])
    }))
}

/// Puts the session's replies (`Some`) and the proposal's (`None`, in order) together into
/// EXEC's array; a nil array or an error from the proposal is EXEC's reply as is.
fn splice(outcome: Outcome, slots: Vec<Option<Reply>>, proto: Protocol) -> Outcome {
    if slots.iter().all(Option::is_none) {
        return outcome;
    }
    match outcome {
        Outcome::Replies(mut rs) => match rs.pop() {
            Some(Reply::Array(data)) => {
                let mut data = data.into_iter();
                let all = slots
                    .into_iter()
                    .map(|s| s.or_else(|| data.next()).unwrap_or_else(missing))
                    .collect();
                Outcome::Replies(vec![Reply::Array(all)])
            }
            other => Outcome::Replies(other.into_iter().collect()),
        },
        Outcome::Raw(raw) => Outcome::Raw(splice_raw(&raw, slots, proto).unwrap_or(raw)),
        o @ Outcome::Overflow(_) => o,
    }
}

fn missing() -> Reply {
    Reply::err("ERR the transaction's reply is missing a command's reply")
}

/// [`splice`] on replies the leader relayed already encoded: `None` when `raw` is not an
/// array (a nil array, an error), which is then EXEC's reply as is.
fn splice_raw(raw: &[u8], slots: Vec<Option<Reply>>, proto: Protocol) -> Option<Vec<u8>> {
    let (n, mut at) = relayed::header(raw, 0, b'*')?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let end = relayed::value_end(raw, at)?;
        parts.push(&raw[at..end]);
        at = end;
    }
    let mut parts = parts.into_iter();
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("*{}\r\n", slots.len()).as_bytes());
    for s in slots {
        match s.ok_or_else(|| parts.next()) {
            Ok(r) => resp::encode::encode(&r, proto, &mut out),
            Err(Some(p)) => out.extend_from_slice(p),
            Err(None) => resp::encode::encode(&missing(), proto, &mut out),
        }
    }
    Some(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(rs: &[Reply], proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        for r in rs {
            resp::encode::encode(r, proto, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn raw_replies_are_spliced_in_queue_order() {
        let data = Reply::Array(vec![
            Reply::ok(),
            Reply::Map(vec![(Reply::Bulk("k".into()), Reply::Double(1.5))]),
            Reply::Array(vec![Reply::Nil, Reply::Int(-3), Reply::Bulk("".into())]),
            Reply::err("ERR x"),
        ]);
        let slots = || {
            vec![
                Some(Reply::Status("PONG".into())),
                None,
                None,
                Some(Reply::Bulk("echo".into())),
                None,
                None,
            ]
        };
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            let Reply::Array(items) = data.clone() else {
                unreachable!()
            };
            let mut it = items.into_iter();
            let want: Vec<Reply> = slots()
                .into_iter()
                .map(|s| s.or_else(|| it.next()).unwrap_or_else(missing))
                .collect();
            let raw = enc(std::slice::from_ref(&data), proto);
            let Outcome::Raw(got) = splice(Outcome::Raw(raw), slots(), proto) else {
                panic!("not raw")
            };
            assert_eq!(got, enc(&[Reply::Array(want.clone())], proto), "{proto:?}");
            let Outcome::Replies(got) =
                splice(Outcome::Replies(vec![data.clone()]), slots(), proto)
            else {
                panic!("not replies")
            };
            assert_eq!(got, vec![Reply::Array(want)]);
        }
    }

    #[test]
    fn nil_and_errors_pass_through_the_splice() {
        for r in [Reply::NilArray, Reply::err("TRYAGAIN x")] {
            for proto in [Protocol::Resp2, Protocol::Resp3] {
                let raw = enc(std::slice::from_ref(&r), proto);
                let slots = vec![Some(Reply::ok()), None];
                let Outcome::Raw(got) = splice(Outcome::Raw(raw.clone()), slots.clone(), proto)
                else {
                    panic!()
                };
                assert_eq!(got, raw);
                let Outcome::Replies(got) = splice(Outcome::Replies(vec![r.clone()]), slots, proto)
                else {
                    panic!()
                };
                assert_eq!(got, vec![r.clone()]);
            }
        }
        assert_eq!(resp::relayed::value_end(b"$5\r\nab", 0), None);
        assert_eq!(resp::relayed::value_end(b"*2\r\n:1\r\n", 0), None);
    }

    #[test]
    fn watches_keep_the_first_version_and_are_bounded() {
        let w = |k: &str, v| WatchedKey {
            key: Bytes::from(k.to_string()),
            version: v,
            live: true,
        };
        let mut ws = Watches::default();
        ws.add(vec![w("a", 1), w("b", 2)], 1000).unwrap();
        ws.add(vec![w("a", 9)], 1000).unwrap();
        assert_eq!(ws.keys, vec![w("a", 1), w("b", 2)]);
        assert!(ws.add(vec![w(&"x".repeat(2000), 1)], 1000).is_err());
        assert_eq!(ws.keys.len(), 2);
    }
}
