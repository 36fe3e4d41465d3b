//! A data record's value as the string commands see it: `[type u8][expire_at_ms i64 BE,
//! 0 = none][stamp u64 BE][payload]` (collections keep the same 17-byte header, see
//! `types::meta`), and small parsing helpers of the string commands. Moved out of `lib.rs`
//! to keep it small.
//!
//! The **stamp** is the key's WATCH version (the group-tagged index of the Raft entry that
//! last wrote the record, see `txn`): the store's one write path (`Store::put_encoded`) sets
//! it, so a write needs no second record for WATCH. Encoders leave it zero; a decoded
//! [`Value`] does not carry it (its payload starts after it).

use bytes::Bytes;

use crate::{types, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// Bytes of an encoded value before its payload (type, expiry, stamp).
pub(crate) const HEADER: usize = 17;

/// Where the stamp sits in an encoded value.
const STAMP: std::ops::Range<usize> = 9..17;

/// The stamp of an encoded value (`None`: too short to be one).
pub(crate) fn stamp_of(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.get(STAMP)?.try_into().ok()?))
}

/// Sets the stamp of an encoded value (at least [`HEADER`] bytes long: every encoder here
/// and every record `Value::header` accepts is).
pub(crate) fn set_stamp(enc: &mut [u8], stamp: u64) {
    if let Some(b) = enc.get_mut(STAMP) {
        b.copy_from_slice(&stamp.to_be_bytes());
    }
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub(crate) typ: u8,
    pub(crate) expire: i64,
    pub(crate) payload: Vec<u8>,
}

impl Value {
    pub(crate) fn string(payload: Vec<u8>, expire: i64) -> Value {
        Value {
            typ: TYPE_STRING,
            expire,
            payload,
        }
    }

    pub(crate) fn decode(raw: &[u8]) -> Option<Value> {
        let (typ, expire) = Value::header(raw)?;
        Some(Value {
            typ,
            expire,
            payload: raw[HEADER..].to_vec(),
        })
    }

    /// Type byte and expiry without copying the payload (`None`: shorter than a header).
    pub(crate) fn header(raw: &[u8]) -> Option<(u8, i64)> {
        crate::types::meta::header(raw)
    }

    /// The encoding of `Value::string(payload, expire)` without building the value first.
    pub(crate) fn encode_string(payload: &[u8], expire: i64) -> Vec<u8> {
        let mut v = Vec::with_capacity(payload.len() + HEADER);
        v.push(TYPE_STRING);
        v.extend_from_slice(&expire.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.payload.len() + HEADER);
        v.push(self.typ);
        v.extend_from_slice(&self.expire.to_be_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&self.payload);
        v
    }

    /// An encoded string of `len` zero bytes to fill in at `[HEADER..]`. Zeroed memory
    /// comes from the allocator untouched, so a sparse SETRANGE costs only the pages written.
    pub(crate) fn zeroed_string(len: usize, expire: i64) -> Vec<u8> {
        let mut v = vec![0u8; HEADER + len];
        v[0] = TYPE_STRING;
        v[1..9].copy_from_slice(&expire.to_be_bytes());
        v
    }

    pub(crate) fn expired(&self, now: i64) -> bool {
        self.expire != 0 && self.expire <= now
    }
}

/// The type byte a SCAN TYPE name selects (`None`: no such type, nothing matches).
pub(crate) fn type_by_name(name: &[u8]) -> Option<u8> {
    [TYPE_STRING, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_ZSET]
        .into_iter()
        .find(|&t| name.eq_ignore_ascii_case(types::meta::type_name(t).as_bytes()))
}

/// Bytes of the values of MSET / MSETNX.
pub(crate) fn pairs_len(pairs: &[(Bytes, Bytes)]) -> usize {
    pairs
        .iter()
        .map(|(_, v)| v.len())
        .fold(0, usize::saturating_add)
}

pub(crate) fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let canonical = matches!(
        s.as_bytes(),
        [b'0'] | [b'-', b'1'..=b'9', ..] | [b'1'..=b'9', ..]
    );
    if !canonical || s.len() > 20 {
        return None;
    }
    s.parse().ok()
}
