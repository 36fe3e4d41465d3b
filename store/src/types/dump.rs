//! DUMP / RESTORE payloads: raftkv's own format for every type (bitmaps and HyperLogLogs
//! are strings), versioned and checksummed. All integers little-endian:
//!
//! ```text
//! [type u8][encoding version u8][body][format version u16][CRC-64 u64]
//! ```
//!
//! - `type`: the store's type byte (0 string, 1 hash, 2 list, 3 set, 4 zset);
//! - `encoding version`: [`ENCODING_VERSION`] (1), the body's layout for that type;
//! - body of a string: its bytes; of a collection: `[count u64]` then per element
//!   `[len u32][bytes]` (list elements in order, set members), per hash field
//!   `[len u32][field][len u32][value]`, per sorted-set member `[len u32][member][score f64
//!   bits]` (in score order);
//! - `format version`: [`FORMAT_VERSION`] (1), the trailer Redis also puts its RDB
//!   version in;
//! - CRC-64 (Jones polynomial, reflected, as Redis's `crc64`) of every byte before it.
//!
//! A payload whose format or encoding version is not this one, or whose CRC does not
//! match, is refused with Redis's `ERR DUMP payload version or checksum are wrong`; a body
//! that does not parse (a short read, bytes left over, an empty collection, a duplicate
//! member or field, a NaN score) with `ERR Bad data format`. Decoding never trusts a count
//! for an allocation: everything read is bounded by the payload, which is bounded by the
//! Raft entry it arrived in (`--max-write-bytes`).

use std::collections::HashSet;

use super::Error;
use crate::{TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// The body layout version written and accepted.
pub const ENCODING_VERSION: u8 = 1;
/// The trailer's format version written and accepted.
pub const FORMAT_VERSION: u16 = 1;
/// Largest payload DUMP builds: Redis's largest bulk string (`proto-max-bulk-len`).
pub const MAX_PAYLOAD: usize = crate::MAX_STRING;

/// Redis's reply to a payload of another version or with a wrong checksum.
pub const BAD_VERSION: &str = "ERR DUMP payload version or checksum are wrong";
/// Redis's reply to a payload whose body does not decode.
pub const BAD_FORMAT: &str = "ERR Bad data format";

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Vec<u8>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    /// (member, score) in score order.
    ZSet(Vec<(Vec<u8>, f64)>),
}

const fn crc64_table() -> [u64; 256] {
    // Jones polynomial 0xad93d23594c935a9, reflected.
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC64: [u64; 256] = crc64_table();

/// Redis's CRC-64 (`crc64(0, ...)`): `crc64(b"123456789") == 0xe9c6d914c4b8d9ca`.
pub fn crc64(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |crc, &b| {
        CRC64[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Appends `[len u32][bytes]`; false when a piece is longer than a u32 can say.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> bool {
    let Ok(n) = u32::try_from(b.len()) else {
        return false;
    };
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(b);
    true
}

fn too_big() -> Error {
    Error::Client(format!(
        "ERR DUMP payload would exceed {MAX_PAYLOAD} bytes (proto-max-bulk-len)"
    ))
}

/// The payload of a value; refused past [`MAX_PAYLOAD`] bytes.
pub fn encode(v: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let typ = match v {
        Value::String(_) => TYPE_STRING,
        Value::Hash(_) => TYPE_HASH,
        Value::List(_) => TYPE_LIST,
        Value::Set(_) => TYPE_SET,
        Value::ZSet(_) => TYPE_ZSET,
    };
    out.extend_from_slice(&[typ, ENCODING_VERSION]);
    let count = |n: usize, out: &mut Vec<u8>| out.extend_from_slice(&(n as u64).to_le_bytes());
    let ok = match v {
        Value::String(s) => {
            out.extend_from_slice(s);
            true
        }
        Value::Hash(fields) => {
            count(fields.len(), &mut out);
            fields
                .iter()
                .all(|(f, x)| put_bytes(&mut out, f) && put_bytes(&mut out, x))
        }
        Value::List(items) | Value::Set(items) => {
            count(items.len(), &mut out);
            items.iter().all(|x| put_bytes(&mut out, x))
        }
        Value::ZSet(members) => {
            count(members.len(), &mut out);
            members.iter().all(|(m, s)| {
                let ok = put_bytes(&mut out, m);
                out.extend_from_slice(&s.to_bits().to_le_bytes());
                ok
            })
        }
    };
    if !ok || out.len() > MAX_PAYLOAD - 10 {
        return Err(too_big());
    }
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A cursor over a body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Client(BAD_FORMAT.into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| bad())?))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().map_err(|_| bad())?) as usize;
        Ok(self.take(n)?.to_vec())
    }
}

fn bad() -> Error {
    Error::Client(BAD_FORMAT.into())
}

/// Reads `count` elements with `one`, refusing an empty collection, a duplicate `name`
/// and bytes left over.
fn many<'b, T>(
    b: &mut Body<'b>,
    mut one: impl FnMut(&mut Body<'b>) -> Result<T, Error>,
    name: impl Fn(&T) -> Option<&[u8]>,
) -> Result<Vec<T>, Error> {
    let n = b.u64()?;
    if n == 0 {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for _ in 0..n {
        let x = one(b)?;
        if let Some(k) = name(&x) {
            if !seen.insert(k.to_vec()) {
                return Err(bad());
            }
        }
        out.push(x);
    }
    if !b.0.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Checks a payload's trailer and decodes its body.
pub fn decode(p: &[u8]) -> Result<Value, Error> {
    let version_err = || Error::Client(BAD_VERSION.into());
    if p.len() < 12 {
        return Err(version_err());
    }
    let (data, crc) = p.split_at(p.len() - 8);
    let crc = u64::from_le_bytes(crc.try_into().map_err(|_| version_err())?);
    let (head, ver) = data.split_at(data.len() - 2);
    let ver = u16::from_le_bytes(ver.try_into().map_err(|_| version_err())?);
    if ver != FORMAT_VERSION || crc64(data) != crc || head[1] != ENCODING_VERSION {
        return Err(version_err());
    }
    let mut b = Body(&head[2..]);
    Ok(match head[0] {
        TYPE_STRING => Value::String(head[2..].to_vec()),
        TYPE_HASH => Value::Hash(many(
            &mut b,
            |b| Ok((b.bytes()?, b.bytes()?)),
            |(f, _)| Some(f),
        )?),
        TYPE_LIST => Value::List(many(&mut b, Body::bytes, |_| None)?),
        TYPE_SET => Value::Set(many(&mut b, Body::bytes, |m| Some(m))?),
        TYPE_ZSET => Value::ZSet(many(
            &mut b,
            |b| {
                let m = b.bytes()?;
                let s = f64::from_bits(b.u64()?);
                if s.is_nan() {
                    return Err(bad());
                }
                Ok((m, s))
            },
            |(m, _)| Some(m),
        )?),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_crc64() {
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn every_type_round_trips() {
        let vals = [
            Value::String(b"hello".to_vec()),
            Value::String(Vec::new()),
            Value::Hash(vec![(b"f".to_vec(), b"v".to_vec())]),
            Value::List(vec![b"a".to_vec(), b"a".to_vec(), Vec::new()]),
            Value::Set(vec![b"x".to_vec(), b"y".to_vec()]),
            Value::ZSet(vec![(b"m".to_vec(), -1.5), (b"n".to_vec(), f64::INFINITY)]),
        ];
        for v in vals {
            let p = encode(&v).unwrap();
            assert_eq!(decode(&p), Ok(v));
        }
    }

    #[test]
    fn bad_payloads_get_redis_errors() {
        let p = encode(&Value::List(vec![b"a".to_vec()])).unwrap();
        let version = Err(Error::Client(BAD_VERSION.into()));
        let mut flipped = p.clone();
        flipped[3] ^= 1;
        assert_eq!(decode(&flipped), version);
        assert_eq!(decode(b"short"), version);
        let mut v2 = p[..p.len() - 10].to_vec();
        v2.extend_from_slice(&2u16.to_le_bytes());
        let crc = crc64(&v2);
        v2.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&v2), version);
        // A body that lies about its count, re-checksummed, is a format error.
        let mut body = vec![TYPE_SET, ENCODING_VERSION];
        body.extend_from_slice(&2u64.to_le_bytes());
        put_bytes(&mut body, b"x");
        put_bytes(&mut body, b"x");
        body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc64(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&body), Err(Error::Client(BAD_FORMAT.into())));
    }
}
