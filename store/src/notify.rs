//! Keyspace notifications at apply time: which events (Redis's names and classes) an
//! applied write raised, collected per batch (rolled back with a script's savepoint) and
//! handed to the store's one listener of applied changes, the push listener of blocking
//! pops, once the batch is written ([`crate::Applied::Events`]). Every replica applies every
//! write, so every node hosting a group raises its events.
//!
//! The node sets the classes it wants (`notify-keyspace-events`, node-local as in Redis);
//! while they are none, [`Store::apply`] costs one atomic load more than the write itself.
//! Otherwise it looks up the command's keys before and after the write: a key that was
//! live and is gone raised `del` (or `expired`), the command itself its own event.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use resp::{Command, ListOp, Reply, SetCondition};
use rocksdb::WriteBatch;

use crate::{data_key, Store};

/// Redis's notification classes (`server.h`'s `NOTIFY_*`), by their flag letters.
pub const KEYSPACE: u32 = 1 << 0; // K
pub const KEYEVENT: u32 = 1 << 1; // E
pub const GENERIC: u32 = 1 << 2; // g
pub const STRING: u32 = 1 << 3; // $
pub const LIST: u32 = 1 << 4; // l
pub const SET: u32 = 1 << 5; // s
pub const HASH: u32 = 1 << 6; // h
pub const ZSET: u32 = 1 << 7; // z
pub const EXPIRED: u32 = 1 << 8; // x
pub const EVICTED: u32 = 1 << 9; // e
pub const STREAM: u32 = 1 << 10; // t
pub const KEY_MISS: u32 = 1 << 11; // m
pub const MODULE: u32 = 1 << 12; // d
pub const NEW: u32 = 1 << 13; // n
/// `A`: every class but key-miss and new.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// One raised event: its class, Redis's event name and the key (without its slot prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub class: u32,
    pub name: &'static str,
    pub key: Bytes,
}

/// The node's setting, shared by the store and its readers (events go to the store's
/// push listener, as [`crate::Applied::Events`]).
#[derive(Default)]
pub(crate) struct Hook {
    flags: AtomicU32,
}

impl crate::Reader {
    /// Sets the classes raised (the `notify-keyspace-events` flags; 0: none).
    pub fn set_notify_flags(&self, flags: u32) {
        self.counters.events.flags.store(flags, Ordering::Release);
    }
}

/// Whether `flags` ask for events of `class` at all.
fn wanted(flags: u32, class: u32) -> bool {
    flags & (KEYSPACE | KEYEVENT) != 0 && flags & class != 0
}

impl Store {
    /// Applies one replicated write at the leader-stamped time `now_ms`, raising its
    /// keyspace events when notifications are on.
    pub fn apply(&mut self, wb: &mut WriteBatch, cmd: &Command, now_ms: i64) -> Reply {
        let flags = self.shared.events.flags.load(Ordering::Acquire);
        if flags == 0 || matches!(cmd, Command::Transaction { .. } | Command::Script(_)) {
            // Transactions and scripts raise the events of their commands (applied
            // through here one by one).
            return self.apply_cmd(wb, cmd, now_ms);
        }
        let now = now_ms.max(self.last_time);
        let keys: Vec<Bytes> = cmd.keys().into_iter().cloned().collect();
        let expiring = matches!(cmd, Command::DelIfExpired(_));
        // One multi-get for the keys' old values (MSET, DEL of many keys); the command's
        // own lookups then hit the batch's read cache.
        self.prefetch(&keys.iter().map(|k| data_key(k)).collect::<Vec<_>>());
        let before: Vec<bool> = keys
            .iter()
            .map(|k| self.present(k, now, expiring))
            .collect();
        let reply = self.apply_cmd(wb, cmd, now_ms);
        if reply.is_error() {
            return reply;
        }
        let mut raised = Vec::new();
        command_events(cmd, &reply, &before, &mut raised);
        for (k, was) in keys.iter().zip(&before) {
            let renamed = matches!(cmd, Command::Rename { src, .. } if src == k);
            if *was && !renamed && self.live_key(k, now).is_none() {
                // EXPIRE with a time in the past deletes: Redis says `del` only.
                raised.retain(|e| !(e.name == "expire" && e.key == *k));
                let (class, name) = if expiring {
                    (EXPIRED, "expired")
                } else {
                    (GENERIC, "del")
                };
                raised.push(Event {
                    class,
                    name,
                    key: k.clone(),
                });
            }
        }
        self.events
            .extend(raised.into_iter().filter(|e| wanted(flags, e.class)));
        reply
    }

    fn live_key(&self, key: &[u8], now: i64) -> Option<crate::Value> {
        self.raw(&data_key(key)).filter(|v| !v.expired(now))
    }

    /// Live (or, `expired`, present and expired) before the write.
    fn present(&self, key: &[u8], now: i64, expired: bool) -> bool {
        match self.raw(&data_key(key)) {
            Some(v) => v.expired(now) == expired,
            None => false,
        }
    }

    /// The sweep deleted an expired key (`dkey` with its slot prefix).
    pub(crate) fn note_expired(&mut self, dkey: &[u8]) {
        let flags = self.shared.events.flags.load(Ordering::Acquire);
        if wanted(flags, EXPIRED) {
            let key = Bytes::copy_from_slice(dkey.get(2..).unwrap_or_default());
            self.events.push(Event {
                class: EXPIRED,
                name: "expired",
                key,
            });
        }
    }

    /// Hands the written batch's events to the listener.
    pub(crate) fn notify_events(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let listener = self
            .shared
            .push_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(f) = listener {
            f(crate::Applied::Events(&events));
        }
    }
}

/// The command's own events (Redis's names), when it changed something.
fn command_events(cmd: &Command, reply: &Reply, before: &[bool], out: &mut Vec<Event>) {
    let mut ev = |class, name, key: &Bytes| {
        out.push(Event {
            class,
            name,
            key: key.clone(),
        })
    };
    let was = |i: usize| before.get(i).copied().unwrap_or(false);
    let one = matches!(reply, Reply::Int(1));
    match cmd {
        Command::Set { key, opts, .. } => {
            let applied = match opts.condition {
                None => true,
                Some(SetCondition::Nx) => !was(0),
                Some(SetCondition::Xx) => was(0),
            };
            if applied {
                ev(STRING, "set", key);
                if opts.expire.is_some() {
                    ev(GENERIC, "expire", key);
                }
            }
        }
        Command::SetNx { key, .. } if one => ev(STRING, "set", key),
        Command::MSet(pairs) => pairs.iter().for_each(|(k, _)| ev(STRING, "set", k)),
        Command::MSetNx(pairs) if one => pairs.iter().for_each(|(k, _)| ev(STRING, "set", k)),
        Command::GetEx {
            key,
            action: Some(a),
        } if *reply != Reply::Nil => match a {
            resp::GetExAction::Persist => ev(GENERIC, "persist", key),
            resp::GetExAction::Expire(_) => ev(GENERIC, "expire", key),
        },
        Command::IncrBy { key, .. } => ev(STRING, "incrby", key),
        Command::IncrByFloat { key, .. } => ev(STRING, "incrbyfloat", key),
        Command::Append { key, .. } => ev(STRING, "append", key),
        Command::SetRange { key, .. } => ev(STRING, "setrange", key),
        Command::Rename { src, dst, nx } if !*nx || one => {
            ev(GENERIC, "rename_from", src);
            ev(GENERIC, "rename_to", dst);
        }
        Command::Copy { dst, .. } if one => ev(GENERIC, "copy_to", dst),
        Command::Expire { key, .. } if one => ev(GENERIC, "expire", key),
        Command::Persist(key) if one => ev(GENERIC, "persist", key),
        Command::Hash(c) => collection(c.spec.name, &c.args, None, reply, &mut ev),
        Command::Sets(c) => collection(c.spec.name, &c.args, None, reply, &mut ev),
        Command::ZSet(c) => collection(c.spec.name, &c.args, None, reply, &mut ev),
        Command::Geo(c) => collection(c.spec.name, &c.args, None, reply, &mut ev),
        Command::List(c) => collection(c.spec.name, &c.args, Some(&c.op), reply, &mut ev),
        Command::Bitmap(c) => string_family(c.spec.name, &c.args, reply, &mut ev),
        Command::Hll(c) => string_family(c.spec.name, &c.args, reply, &mut ev),
        Command::Dump(c) if c.spec.name == "RESTORE" => {
            if let Some(k) = c.args.first() {
                ev(GENERIC, "restore", k);
            }
        }
        Command::Sort(c) if matches!(reply, Reply::Int(n) if *n > 0) => {
            let store = c.args.iter().position(|a| a.eq_ignore_ascii_case(b"STORE"));
            if let Some(dst) = store.and_then(|i| c.args.get(i + 1)) {
                ev(LIST, "sortstore", dst);
            }
        }
        _ => {}
    }
}

/// The events of the string-encoded families (bitmaps, HyperLogLogs), by entry name.
fn string_family(
    name: &str,
    args: &[Bytes],
    reply: &Reply,
    ev: &mut impl FnMut(u32, &'static str, &Bytes),
) {
    let has = |w: &[u8]| args.iter().any(|a| a.eq_ignore_ascii_case(w));
    let (event, key) = match name {
        "SETBIT" => ("setbit", args.first()),
        "BITFIELD" if has(b"SET") || has(b"INCRBY") => ("setbit", args.first()),
        "BITOP" if matches!(reply, Reply::Int(n) if *n > 0) => ("set", args.get(1)),
        "PFADD" if matches!(reply, Reply::Int(1)) => ("pfadd", args.first()),
        "PFMERGE" => ("pfadd", args.first()),
        _ => return,
    };
    if let Some(k) = key {
        ev(STRING, event, k);
    }
}

/// The events of a collection write, by its entry's name.
fn collection(
    name: &str,
    args: &[Bytes],
    list: Option<&ListOp>,
    reply: &Reply,
    ev: &mut impl FnMut(u32, &'static str, &Bytes),
) {
    let changed = !matches!(
        reply,
        Reply::Error(_) | Reply::Nil | Reply::NilArray | Reply::Int(0)
    );
    let Some(first) = args.first() else { return };
    // A command of several keys that popped from one names it first in its reply.
    let popped = match reply {
        Reply::Array(r) => match r.first() {
            Some(Reply::Bulk(k)) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    };
    let has = |w: &str| args.iter().any(|a| a.eq_ignore_ascii_case(w.as_bytes()));
    let (class, event) = match name {
        // HSET of existing fields and ZADD updates answer 0 yet change the key.
        "HSET" | "HMSET" if !reply.is_error() => (HASH, "hset"),
        "ZADD" if !matches!(reply, Reply::Error(_) | Reply::Nil) => {
            (ZSET, if has("INCR") { "zincr" } else { "zadd" })
        }
        "GEOADD" if !matches!(reply, Reply::Error(_) | Reply::Int(0)) => (ZSET, "zadd"),
        _ if !changed => return,
        "HSETNX" => (HASH, "hset"),
        "HDEL" => (HASH, "hdel"),
        "HINCRBY" => (HASH, "hincrby"),
        "HINCRBYFLOAT" => (HASH, "hincrbyfloat"),
        "SADD" => (SET, "sadd"),
        "SREM" => (SET, "srem"),
        "SPOP" => (SET, "spop"),
        "SMOVE" => {
            ev(SET, "srem", first);
            if let Some(dst) = args.get(1) {
                ev(SET, "sadd", dst);
            }
            return;
        }
        "SINTERSTORE" => (SET, "sinterstore"),
        "SUNIONSTORE" => (SET, "sunionstore"),
        "SDIFFSTORE" => (SET, "sdiffstore"),
        "ZINCRBY" => (ZSET, "zincr"),
        "ZREM" => (ZSET, "zrem"),
        "ZPOPMIN" => (ZSET, "zpopmin"),
        "ZPOPMAX" => (ZSET, "zpopmax"),
        "BZPOPMIN" | "BZPOPMAX" | "ZMPOP" | "BZMPOP" => {
            let max = name == "BZPOPMAX" || has("MAX");
            if let Some(k) = popped {
                ev(ZSET, if max { "zpopmax" } else { "zpopmin" }, &k);
            }
            return;
        }
        "ZREMRANGEBYSCORE" => (ZSET, "zremrangebyscore"),
        "ZREMRANGEBYRANK" => (ZSET, "zremrangebyrank"),
        "ZREMRANGEBYLEX" => (ZSET, "zremrangebylex"),
        "ZUNIONSTORE" => (ZSET, "zunionstore"),
        "ZINTERSTORE" => (ZSET, "zinterstore"),
        "ZDIFFSTORE" => (ZSET, "zdiffstore"),
        "ZRANGESTORE" => (ZSET, "zrangestore"),
        _ => return list_events(list, first, popped, ev),
    };
    ev(class, event, first);
}

/// The events of a list write.
fn list_events(
    list: Option<&ListOp>,
    key: &Bytes,
    popped: Option<Bytes>,
    ev: &mut impl FnMut(u32, &'static str, &Bytes),
) {
    let side = |left: bool, l: &'static str, r: &'static str| if left { l } else { r };
    match list {
        Some(ListOp::Push { left, .. }) => ev(LIST, side(*left, "lpush", "rpush"), key),
        Some(ListOp::Pop { left, .. }) => ev(LIST, side(*left, "lpop", "rpop"), key),
        Some(ListOp::Set(..)) => ev(LIST, "lset", key),
        Some(ListOp::Insert { .. }) => ev(LIST, "linsert", key),
        Some(ListOp::Rem(..)) => ev(LIST, "lrem", key),
        Some(ListOp::Trim(..)) => ev(LIST, "ltrim", key),
        Some(ListOp::Move {
            dst,
            from_left,
            to_left,
            ..
        }) => {
            ev(LIST, side(*from_left, "lpop", "rpop"), key);
            ev(LIST, side(*to_left, "lpush", "rpush"), dst);
        }
        Some(ListOp::MPop { left, .. }) => {
            if let Some(k) = popped {
                ev(LIST, side(*left, "lpop", "rpop"), &k);
            }
        }
        _ => {}
    }
}
