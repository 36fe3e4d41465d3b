//! Collection metadata (the per-key record in `data`), key encodings of the `sub` and
//! `zscore` families, and the deterministic version counter.
//!
//! A collection's data record keeps strings' 17-byte header (`[type u8][expire_at_ms i64 BE]
//! [stamp u64 BE]`, the stamp being the key's WATCH version, see `value`), so TYPE, TTL,
//! EXPIRE, the expiry index, the sweep and WATCH treat every type alike, followed by
//! `[version u64 BE][size u64 BE]` and, for lists, `[head u64 BE][tail u64 BE]` (elements sit at
//! sequences `head..tail`). A key whose last element goes is deleted, as in Redis.
//! Sorted sets may add their live-range hints ([`Meta::lo`], [`Meta::hi`]) as
//! `[lo len u8][lo][hi len u8][hi]` after the size (absent = no hints, as records written
//! before the hints existed).

use rocksdb::{WriteBatch, DB};

use super::{Cf, Error, Read, Result, Write};
use crate::{key_slot, CF_META, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// A new list's head and tail sequence: the middle of the range, so both ends can grow.
pub const LIST_START: u64 = 1 << 63;

/// Tag of the version counter's record in `meta` (`[group u64 BE][tag]`, beside the store's
/// applied index `a`, time `t` and counters `k`, `e`).
pub const VERSION_TAG: u8 = b'v';

/// `[slot u16 BE][user key]`: where strings and collection metadata live in `data`.
pub fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 2);
    k.extend_from_slice(&key_slot(user_key).to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// `[group u64 BE][expire_at_ms u64 BE][data key]`: the expiry index's key (the store's
/// format). Each group's entries are one prefix, so its due-key lookup never walks another
/// group's entries.
pub fn expire_key(group: u64, at: i64, dkey: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(dkey.len() + 16);
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    k.extend_from_slice(dkey);
    k
}

/// Bytes of an expiry index key before its data key (group, time).
pub const EXPIRE_KEY_HEAD: usize = 16;

/// `[slot u16 BE][key len u32 BE][user key][version u64 BE]`: the common prefix of one
/// collection's sub and score records. The length keeps `a` and `ab` apart.
pub fn sub_prefix(user_key: &[u8], version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(user_key.len() + 14);
    k.extend_from_slice(&key_slot(user_key).to_be_bytes());
    k.extend_from_slice(&(user_key.len() as u32).to_be_bytes());
    k.extend_from_slice(user_key);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `prefix` followed by `parts`.
pub fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len = prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.extend_from_slice(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The smallest key greater than every key that starts with `prefix` (store prefixes start
/// with a slot < 16384, so some byte can always be incremented).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Splits a sub or score key into (data key of its collection, version, sub key).
pub fn split_sub_key(k: &[u8]) -> Option<(Vec<u8>, u64, &[u8])> {
    let len = u32::from_be_bytes(k.get(2..6)?.try_into().ok()?) as usize;
    let key_end = 6usize.checked_add(len)?;
    let user = k.get(6..key_end)?;
    let version = u64::from_be_bytes(k.get(key_end..key_end + 8)?.try_into().ok()?);
    let mut dkey = Vec::with_capacity(len + 2);
    dkey.extend_from_slice(&k[..2]);
    dkey.extend_from_slice(user);
    Some((dkey, version, &k[key_end + 8..]))
}

/// A collection's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `TYPE_HASH`, `TYPE_LIST`, `TYPE_SET` or `TYPE_ZSET`.
    pub typ: u8,
    /// Expiry time (ms), 0 = none.
    pub expire: i64,
    /// Identifies this incarnation of the key: the prefix of its sub records.
    pub version: u64,
    /// Number of fields / elements / members.
    pub size: u64,
    /// Lists: sequence of the first element.
    pub head: u64,
    /// Lists: sequence after the last element.
    pub tail: u64,
    /// Sorted sets: no live score index record of this version has a suffix (the key after
    /// the prefix) below `lo` (empty: no hint). ZPOPMIN and range removals raise it past the
    /// records they delete, so later scans seek past their tombstones instead of walking
    /// them (RocksDB keeps deleted keys until compaction). At most [`HINT_LEN`] bytes.
    /// Sets: no live member has a hash (u64 BE, [`super::random::name_hash`]) below `lo`
    /// (8 bytes, or empty: no hint); SPOP raises it past the members it pops.
    pub lo: Vec<u8>,
    /// Sorted sets: every live score index suffix is below `hi` (empty: no hint); ZPOPMAX's
    /// counterpart of `lo`.
    pub hi: Vec<u8>,
}

/// Most bytes of a sorted set's range hint (a score's 8 bytes and 32 of the member).
pub const HINT_LEN: usize = 40;

impl Meta {
    /// An empty collection of `typ` with a fresh `version`.
    pub fn new(typ: u8, version: u64) -> Meta {
        Meta {
            typ,
            expire: 0,
            version,
            size: 0,
            head: LIST_START,
            tail: LIST_START,
            lo: Vec::new(),
            hi: Vec::new(),
        }
    }

    /// The data record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(crate::HEADER + 32);
        v.push(self.typ);
        v.extend_from_slice(&self.expire.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        if self.typ == TYPE_LIST {
            v.extend_from_slice(&self.head.to_be_bytes());
            v.extend_from_slice(&self.tail.to_be_bytes());
        }
        if has_hints(self.typ) && !(self.lo.is_empty() && self.hi.is_empty()) {
            for hint in [&self.lo, &self.hi] {
                // A longer hint is never made; dropping one (no hint) is always correct.
                let hint: &[u8] = if hint.len() <= HINT_LEN { hint } else { &[] };
                v.push(hint.len() as u8);
                v.extend_from_slice(hint);
            }
        }
        v
    }

    /// Decodes a collection's data record (not a string's).
    pub fn decode(raw: &[u8]) -> Result<Meta> {
        let corrupt = || Error::Storage("corrupt collection metadata".into());
        let word = |at: usize| -> Result<u64> {
            let b = raw.get(at..at + 8).ok_or_else(corrupt)?;
            Ok(u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?))
        };
        let typ = *raw.first().ok_or_else(corrupt)?;
        if !is_collection(typ) {
            return Err(corrupt());
        }
        // After the header: version, size, then a list's head and tail or a set's hints.
        const H: usize = crate::HEADER;
        let (head, tail) = if typ == TYPE_LIST {
            (word(H + 16)?, word(H + 24)?)
        } else {
            (LIST_START, LIST_START)
        };
        let (lo, hi) = if has_hints(typ) && raw.len() > H + 16 {
            decode_hints(&raw[H + 16..]).ok_or_else(corrupt)?
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Meta {
            typ,
            expire: word(1)? as i64,
            version: word(H)?,
            size: word(H + 8)?,
            head,
            tail,
            lo,
            hi,
        })
    }

    /// The prefix of this collection's sub and score records.
    pub fn prefix(&self, user_key: &[u8]) -> Vec<u8> {
        sub_prefix(user_key, self.version)
    }
}

/// Sorted sets and sets may carry range hints.
fn has_hints(typ: u8) -> bool {
    typ == TYPE_ZSET || typ == TYPE_SET
}

/// A sorted set's (or set's) `[lo len][lo][hi len][hi]`.
fn decode_hints(b: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (&n, rest) = b.split_first()?;
    let lo = rest.get(..n as usize)?;
    let (&m, rest) = rest.get(n as usize..)?.split_first()?;
    let hi = rest.get(..m as usize)?;
    Some((lo.to_vec(), hi.to_vec()))
}

/// True for the type bytes this module stores.
pub fn is_collection(typ: u8) -> bool {
    matches!(typ, TYPE_HASH | TYPE_LIST | TYPE_SET | TYPE_ZSET)
}

/// The type name TYPE answers for a type byte.
pub fn type_name(typ: u8) -> &'static str {
    match typ {
        TYPE_STRING => "string",
        TYPE_HASH => "hash",
        TYPE_LIST => "list",
        TYPE_SET => "set",
        TYPE_ZSET => "zset",
        _ => "unknown",
    }
}

/// Type byte and expiry of a data record (strings and collections alike); `None` when it
/// is shorter than the header.
pub fn header(raw: &[u8]) -> Option<(u8, i64)> {
    let h = raw.get(..crate::HEADER)?;
    let expire = i64::from_be_bytes(h.get(1..9)?.try_into().ok()?);
    Some((h[0], expire))
}

fn expired(expire: i64, now: i64) -> bool {
    expire != 0 && expire <= now
}

/// `key`'s live collection of type `typ`: `None` when absent or expired, `WrongType` when the
/// key holds another type (a string included).
pub fn load<R: Read + ?Sized>(r: &R, key: &[u8], typ: u8) -> Result<Option<Meta>> {
    let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
        return Ok(None);
    };
    let (t, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    if expired(expire, r.now()) {
        return Ok(None);
    }
    if t != typ {
        return Err(Error::WrongType);
    }
    Meta::decode(&raw).map(Some)
}

/// `key`'s live collection of type `typ`, or a new empty one with a fresh version (not
/// stored until [`save`]). The flag says whether it existed.
pub fn load_or_new<W: Write + ?Sized>(w: &mut W, key: &[u8], typ: u8) -> Result<(Meta, bool)> {
    match load(w, key, typ)? {
        Some(m) => Ok((m, true)),
        None => Ok((Meta::new(typ, w.next_version()), false)),
    }
}

/// Stores `meta` after an operation: deletes the key when it became empty, writes nothing
/// for a collection that never got an element.
pub fn save<W: Write + ?Sized>(w: &mut W, key: &[u8], meta: &Meta, existed: bool) -> Result<()> {
    match (meta.size, existed) {
        (0, false) => Ok(()),
        (0, true) => w.del_data(key),
        _ => w.put_data(key, meta.encode()),
    }
}

/// The version counter: every collection created gets a version above every earlier one of
/// this store, so a key deleted and created again never sees its old records. Deterministic:
/// it moves only when an applied command creates a collection, and is raised to at least the
/// leader-stamped time × 2^16, so versions also grow across groups (a slot imported from
/// another group must still [`Versions::raise_to`] its highest version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    last: u64,
}

impl Versions {
    /// The `meta` key the counter is kept at.
    pub fn meta_key(group: u64) -> Vec<u8> {
        let mut k = group.to_be_bytes().to_vec();
        k.push(VERSION_TAG);
        k
    }

    /// Loads the persisted counter of `group`.
    pub fn load(db: &DB, group: u64) -> Result<Versions> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| Error::Storage("missing meta column family".into()))?;
        let last = match db.get_cf(cf, Self::meta_key(group))? {
            None => 0,
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| Error::Storage("corrupt version counter".into()))?,
            ),
        };
        Ok(Versions { last })
    }

    /// The last version handed out.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// A new version for a collection created at stamped time `now_ms`.
    pub fn next(&mut self, now_ms: i64) -> u64 {
        let floor = (now_ms.max(0) as u64).saturating_mul(1 << 16);
        self.last = self.last.saturating_add(1).max(floor);
        self.last
    }

    /// Makes every later version exceed `version` (after ingesting records made elsewhere).
    pub fn raise_to(&mut self, version: u64) {
        self.last = self.last.max(version);
    }

    /// Stages the counter into `wb` (with the batch that used it).
    pub fn stage(&self, db: &DB, wb: &mut WriteBatch, group: u64) -> Result<()> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| Error::Storage("missing meta column family".into()))?;
        wb.put_cf(cf, Self::meta_key(group), self.last.to_be_bytes());
        Ok(())
    }
}
