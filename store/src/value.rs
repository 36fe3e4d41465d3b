//! A data record's value as the string commands see it: `[type u8][expire_at_ms i64 BE,
//! 0 = none][payload]` (collections keep the same 9-byte header, see `types::meta`), and
//! small parsing helpers of the string commands. Moved out of `lib.rs` to keep it small.

use bytes::Bytes;

use crate::{types, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// Bytes of an encoded value before its payload (type, expiry).
pub(crate) const HEADER: usize = 9;

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
        if raw.len() < 9 {
            return None;
        }
        Some(Value {
            typ: raw[0],
            expire: i64::from_be_bytes(raw[1..9].try_into().ok()?),
            payload: raw[9..].to_vec(),
        })
    }

    /// Type byte and expiry without copying the payload.
    pub(crate) fn header(raw: &[u8]) -> Option<(u8, i64)> {
        let expire = i64::from_be_bytes(raw.get(1..9)?.try_into().ok()?);
        Some((raw[0], expire))
    }

    /// The encoding of `Value::string(payload, expire)` without building the value first.
    pub(crate) fn encode_string(payload: &[u8], expire: i64) -> Vec<u8> {
        let mut v = Vec::with_capacity(payload.len() + HEADER);
        v.push(TYPE_STRING);
        v.extend_from_slice(&expire.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.payload.len() + 9);
        v.push(self.typ);
        v.extend_from_slice(&self.expire.to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// An encoded string of `len` zero bytes to fill in at `[HEADER..]`. Zeroed memory
    /// comes from the allocator untouched, so a sparse SETRANGE costs only the pages written.
    pub(crate) fn zeroed_string(len: usize, expire: i64) -> Vec<u8> {
        let mut v = vec![0u8; HEADER + len];
        v[0] = TYPE_STRING;
        v[1..HEADER].copy_from_slice(&expire.to_be_bytes());
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
