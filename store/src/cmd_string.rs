//! The apply side of the string commands and of the generic keyspace writes on any type
//! (DEL, RENAME, COPY, EXPIRE, PERSIST, lazy expiry): each stages into the batch's
//! `WriteBatch` through the store's overlay (`put` / `del` keep the key and TTL counters,
//! the expiry index and WATCH versions in step). Moved out of `lib.rs`, which dispatches here.

use bytes::Bytes;
use resp::{Command, ExpireAt, ExpireCondition, GetExAction, Reply, SetCondition, SetOptions};
use rocksdb::WriteBatch;

use crate::{data_key, pairs_len, parse_i64, Store, Value, TYPE_STRING, WRONGTYPE};

impl Store {
    /// Applies a string command or a generic keyspace write at the stamped time `now`.
    pub(crate) fn apply_string(&mut self, wb: &mut WriteBatch, cmd: &Command, now: i64) -> Reply {
        match cmd {
            Command::Set { key, value, opts } => self.apply_set(wb, key, value, opts, now),
            Command::SetNx { key, value } => {
                let dkey = data_key(key);
                if self.live(&dkey, now).is_some() {
                    return Reply::Int(0);
                }
                charge!(self, value.len());
                self.put(wb, dkey, Value::string(value.to_vec(), 0));
                Reply::Int(1)
            }
            Command::GetDel(key) => {
                let dkey = data_key(key);
                match self.live(&dkey, now) {
                    None => Reply::Nil,
                    Some(v) if v.typ != TYPE_STRING => Reply::err(WRONGTYPE),
                    Some(v) => {
                        self.del(wb, &dkey);
                        Reply::Bulk(Bytes::from(v.payload))
                    }
                }
            }
            Command::GetEx { key, action } => self.apply_getex(wb, key, action, now),
            Command::MSet(pairs) => {
                charge!(self, pairs_len(pairs));
                let dkeys = self.prefetched(pairs);
                self.put_pairs(wb, dkeys, pairs);
                Reply::ok()
            }
            Command::MSetNx(pairs) => {
                let dkeys = self.prefetched(pairs);
                let live = |k: &Vec<u8>| {
                    self.raw_header(k)
                        .is_some_and(|(_, expire, _)| expire == 0 || expire > now)
                };
                if dkeys.iter().any(live) {
                    return Reply::Int(0);
                }
                charge!(self, pairs_len(pairs));
                self.put_pairs(wb, dkeys, pairs);
                Reply::Int(1)
            }
            Command::Del(keys) => self.apply_del(wb, keys, now, false),
            Command::IncrBy { key, delta } => self.apply_incrby(wb, key, *delta, now),
            Command::IncrByFloat { key, delta } => self.apply_incrbyfloat(wb, key, *delta, now),
            Command::Append { key, value } => self.append(wb, key, value, now),
            Command::SetRange { key, offset, value } => {
                self.set_range(wb, key, (*offset).max(0) as usize, value, now)
            }
            Command::Rename { src, dst, nx } => self.apply_rename(wb, src, dst, *nx, now),
            Command::Copy { src, dst, replace } => self.apply_copy(wb, src, dst, *replace, now),
            Command::Expire { key, at, condition } => {
                self.apply_expire(wb, key, at, condition, now)
            }
            Command::Persist(key) => {
                let dkey = data_key(key);
                match self.live(&dkey, now) {
                    Some(v) if v.expire != 0 => {
                        charge!(self, v.payload.len());
                        self.put(wb, dkey, Value { expire: 0, ..v });
                        Reply::Int(1)
                    }
                    _ => Reply::Int(0),
                }
            }
            Command::DelIfExpired(keys) => self.apply_del(wb, keys, now, true),
            other => Reply::err(format!("ERR '{}' is not a string write", other.name())),
        }
    }

    /// The data keys of MSET's / MSETNX's pairs, their old values read in one multi-get
    /// (see `prefetch`).
    fn prefetched(&self, pairs: &[(Bytes, Bytes)]) -> Vec<Vec<u8>> {
        let dkeys: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| data_key(k)).collect();
        self.prefetch(&dkeys);
        dkeys
    }

    /// Writes each pair as a string without TTL, in order (a key given twice: the last
    /// value wins, and the second write sees the first, as one SET after another).
    fn put_pairs(&mut self, wb: &mut WriteBatch, dkeys: Vec<Vec<u8>>, pairs: &[(Bytes, Bytes)]) {
        for (dkey, (_, v)) in dkeys.into_iter().zip(pairs) {
            self.put_encoded(wb, dkey, Value::encode_string(v, 0));
        }
    }

    /// DEL (the number of live keys deleted; an expired one is deleted too, uncounted) or,
    /// `expired_only`, RAFTKV.DELIFEXPIRED (deletes only expired keys, counts them).
    fn apply_del(
        &mut self,
        wb: &mut WriteBatch,
        keys: &[Bytes],
        now: i64,
        expired_only: bool,
    ) -> Reply {
        let mut n = 0;
        for k in keys {
            let dkey = data_key(k);
            if expired_only {
                if self.raw(&dkey).is_some_and(|v| v.expired(now)) && self.del(wb, &dkey) {
                    n += 1;
                }
                continue;
            }
            let was_live = self.live(&dkey, now).is_some();
            if self.del(wb, &dkey) && was_live {
                n += 1;
            }
        }
        Reply::Int(n)
    }

    /// SET with its options (NX / XX, GET, EX / PX / EXAT / PXAT, KEEPTTL).
    fn apply_set(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        value: &Bytes,
        opts: &SetOptions,
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        if !opts.get && opts.condition.is_none() && (opts.expire.is_some() || !opts.keep_ttl) {
            // Plain SET (EX / PX allowed): nothing depends on the old value but the key
            // counters and the TTL index, which `put` reads without copying the value.
            let expire = opts.expire.map_or(0, |at| Self::resolve(at, now).max(1));
            charge!(self, value.len());
            self.set_string(wb, dkey, value.to_vec(), expire, now);
            return Reply::ok();
        }
        let old = self.live(&dkey, now);
        if opts.get && old.as_ref().is_some_and(|o| o.typ != TYPE_STRING) {
            return Reply::err(WRONGTYPE);
        }
        let old_reply = || match &old {
            Some(o) => Reply::Bulk(Bytes::from(o.payload.clone())),
            None => Reply::Nil,
        };
        let blocked = match opts.condition {
            Some(SetCondition::Nx) => old.is_some(),
            Some(SetCondition::Xx) => old.is_none(),
            None => false,
        };
        if blocked {
            return if opts.get { old_reply() } else { Reply::Nil };
        }
        let expire = match (opts.expire, opts.keep_ttl) {
            (Some(at), _) => Self::resolve(at, now).max(1),
            (None, true) => old.as_ref().map_or(0, |o| o.expire),
            (None, false) => 0,
        };
        charge!(self, value.len());
        let reply = if opts.get { old_reply() } else { Reply::ok() };
        self.set_string(wb, dkey, value.to_vec(), expire, now);
        reply
    }

    /// GETEX: the value, with its expiry changed or removed.
    fn apply_getex(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        action: &Option<GetExAction>,
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        match self.live(&dkey, now) {
            None => Reply::Nil,
            Some(v) if v.typ != TYPE_STRING => Reply::err(WRONGTYPE),
            Some(v) => {
                if action.is_some() {
                    // Persist or a new expiry rewrites the whole value.
                    charge!(self, v.payload.len());
                }
                let reply = Reply::Bulk(Bytes::from(v.payload.clone()));
                match action {
                    None => {}
                    Some(GetExAction::Persist) if v.expire != 0 => {
                        self.put(wb, dkey, Value { expire: 0, ..v });
                    }
                    Some(GetExAction::Persist) => {}
                    Some(GetExAction::Expire(at)) => {
                        let at = Self::resolve(*at, now).max(1);
                        self.set_string(wb, dkey, v.payload, at, now);
                    }
                }
                reply
            }
        }
    }

    /// INCRBY / DECRBY / INCR / DECR.
    fn apply_incrby(&mut self, wb: &mut WriteBatch, key: &Bytes, delta: i64, now: i64) -> Reply {
        let dkey = data_key(key);
        let old = self.live(&dkey, now);
        let (cur, expire) = match &old {
            None => (0, 0),
            Some(v) if v.typ != TYPE_STRING => return Reply::err(WRONGTYPE),
            Some(v) => match parse_i64(&v.payload) {
                Some(n) => (n, v.expire),
                None => return Reply::err("ERR value is not an integer or out of range"),
            },
        };
        let Some(new) = cur.checked_add(delta) else {
            return Reply::err("ERR increment or decrement would overflow");
        };
        charge!(self, 20);
        self.put(
            wb,
            dkey,
            Value::string(new.to_string().into_bytes(), expire),
        );
        Reply::Int(new)
    }

    /// INCRBYFLOAT.
    fn apply_incrbyfloat(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        delta: f64,
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        let (cur, expire) = match self.live(&dkey, now) {
            None => (0.0, 0),
            Some(v) if v.typ != TYPE_STRING => return Reply::err(WRONGTYPE),
            Some(v) => match resp::parse_float(&v.payload) {
                Some(f) => (f, v.expire),
                None => return Reply::err("ERR value is not a valid float"),
            },
        };
        let new = cur + delta;
        if !new.is_finite() {
            return Reply::err("ERR increment would produce NaN or Infinity");
        }
        let text = resp::encode::format_double(new);
        charge!(self, text.len());
        self.put(wb, dkey, Value::string(text.clone().into_bytes(), expire));
        Reply::Bulk(Bytes::from(text))
    }

    /// RENAME / RENAMENX of any type.
    fn apply_rename(
        &mut self,
        wb: &mut WriteBatch,
        src: &Bytes,
        dst: &Bytes,
        nx: bool,
        now: i64,
    ) -> Reply {
        let skey = data_key(src);
        let Some(v) = self.live(&skey, now) else {
            return Reply::err("ERR no such key");
        };
        let ok = || if nx { Reply::Int(1) } else { Reply::ok() };
        if src == dst {
            return if nx { Reply::Int(0) } else { ok() };
        }
        let dkey = data_key(dst);
        if nx && self.live(&dkey, now).is_some() {
            return Reply::Int(0);
        }
        if v.typ != TYPE_STRING {
            let done = self.rename_collection(wb, src, dst, now);
            return if done.is_error() { done } else { ok() };
        }
        charge!(self, v.payload.len());
        self.del(wb, &skey);
        self.put(wb, dkey, v);
        ok()
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with NX / XX / GT / LT.
    fn apply_expire(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        at: &ExpireAt,
        condition: &Option<ExpireCondition>,
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        let Some(v) = self.live(&dkey, now) else {
            return Reply::Int(0);
        };
        let new = Self::resolve(*at, now);
        let allowed = match condition {
            None => true,
            Some(ExpireCondition::Nx) => v.expire == 0,
            Some(ExpireCondition::Xx) => v.expire != 0,
            Some(ExpireCondition::Gt) => v.expire != 0 && new > v.expire,
            Some(ExpireCondition::Lt) => v.expire == 0 || new < v.expire,
        };
        if !allowed {
            return Reply::Int(0);
        }
        if new > now {
            // A new expiry rewrites the whole value.
            charge!(self, v.payload.len());
        }
        if new <= now {
            self.del(wb, &dkey);
        } else {
            self.put(wb, dkey, Value { expire: new, ..v });
        }
        Reply::Int(1)
    }
}
