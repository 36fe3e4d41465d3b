//! DUMP (a read) and RESTORE (a replicated write) on [`crate::types::dump`]'s payloads.
//! RESTORE checks in Redis's order: the key (`BUSYKEY Target key name already exists.`
//! without REPLACE), the TTL (`ERR Invalid TTL value, must be >= 0`), the payload; an
//! expiry already due creates nothing (the key is still replaced). The TTL is relative to
//! the entry's stamped time, or absolute with ABSTTL.

use bytes::Bytes;
use resp::{DumpCmd, DumpOp, Reply};

use crate::cmd_common::int_arg;
use crate::types::dump::{self, Value};
use crate::types::keyspace::{collection, type_of};
use crate::types::list::{lrange, push, End};
use crate::types::meta::{self, data_key, header};
use crate::types::zrange::{zrange, RangeBy};
use crate::types::zset::{zadd, ZAddFlags};
use crate::types::{hash, set, Cf, Error, Read, Result, Write};
use crate::{HEADER, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// The live value at `key` (`None`: absent or expired).
fn value<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Value>> {
    let Some(m) = collection(r, key)? else {
        let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
            return Ok(None);
        };
        let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short record".into()))?;
        if typ != TYPE_STRING || (expire != 0 && expire <= r.now()) {
            return Ok(None);
        }
        return Ok(Some(Value::String(raw[HEADER..].to_vec())));
    };
    Ok(Some(match m.typ {
        TYPE_HASH => Value::Hash(hash::hgetall(r, key)?),
        TYPE_LIST => Value::List(lrange(r, key, 0, -1)?),
        TYPE_SET => Value::Set(set::smembers(r, key)?),
        TYPE_ZSET => Value::ZSet(zrange(r, key, &RangeBy::Rank(0, -1), false, None)?),
        _ => return Ok(None),
    }))
}

/// DUMP: the payload, or nil for a missing key.
pub(crate) fn read(r: &dyn Read, c: &DumpCmd) -> Result<Reply> {
    Ok(match value(r, c.key())? {
        Some(v) => Reply::Bulk(Bytes::from(dump::encode(&v)?)),
        None => Reply::Nil,
    })
}

/// Creates `key` holding `v` with expiry `expire` (0: none); `key` holds nothing live.
fn create<W: Write + ?Sized>(w: &mut W, key: &[u8], v: &Value, expire: i64) -> Result<()> {
    let typ = match v {
        Value::String(s) => {
            let mut enc = Vec::with_capacity(HEADER + s.len());
            enc.push(TYPE_STRING);
            enc.extend_from_slice(&expire.to_be_bytes());
            enc.extend_from_slice(&[0; 8]);
            enc.extend_from_slice(s);
            return w.put_data(key, enc);
        }
        Value::Hash(f) => {
            hash::hset(w, key, f)?;
            TYPE_HASH
        }
        Value::List(items) => {
            push(w, key, End::Right, items, false)?;
            TYPE_LIST
        }
        Value::Set(items) => {
            set::sadd(w, key, items)?;
            TYPE_SET
        }
        Value::ZSet(members) => {
            let pairs: Vec<(f64, &[u8])> = members.iter().map(|(m, s)| (*s, &m[..])).collect();
            zadd(w, key, ZAddFlags::default(), &pairs)?;
            TYPE_ZSET
        }
    };
    if expire != 0 {
        if let Some(mut m) = meta::load(w, key, typ)? {
            m.expire = expire;
            w.put_data(key, m.encode())?;
        }
    }
    Ok(())
}

/// RESTORE.
pub(crate) fn write(w: &mut dyn Write, c: &DumpCmd) -> Result<Reply> {
    let DumpOp::Restore {
        ttl,
        payload,
        replace,
        absttl,
    } = &c.op
    else {
        return read(w, c);
    };
    let key = c.key();
    if !replace && type_of(w, key)? != "none" {
        return Err(Error::Client(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let ttl = int_arg(ttl)?;
    if ttl < 0 {
        return Err(Error::Client("ERR Invalid TTL value, must be >= 0".into()));
    }
    let v = dump::decode(payload)?;
    if *replace {
        w.del_data(key)?;
    }
    let now = w.now();
    let expire = match (ttl, absttl) {
        (0, _) => 0,
        (t, true) => t,
        (t, false) => now.saturating_add(t),
    };
    if expire == 0 || expire > now {
        create(w, key, &v, expire)?;
    }
    Ok(Reply::ok())
}
