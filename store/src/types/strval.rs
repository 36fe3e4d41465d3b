//! Strings through the typed operations' [`Read`] / [`Write`] views, for the families that
//! live inside string values (bitmaps, HyperLogLog, LCS): a live string's whole data record
//! (header then payload, so a write can change the payload in place and keep the TTL), and
//! new records. Writes go through [`Write::put_data`], which keeps the key counters, the
//! expiry index and WATCH versions as every string write does.

use super::meta::{data_key, header};
use super::{Cf, Error, Read, Result};
use crate::{HEADER, TYPE_STRING};

/// A live string's data record: `[type][expire_at_ms][stamp][payload]` (see `value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrRecord(pub Vec<u8>);

impl StrRecord {
    /// A new string of `len` zero bytes expiring at `expire` (0: never).
    pub fn zeroed(len: usize, expire: i64) -> StrRecord {
        let mut v = vec![0u8; HEADER + len];
        v[0] = TYPE_STRING;
        v[1..9].copy_from_slice(&expire.to_be_bytes());
        StrRecord(v)
    }

    /// A new string holding `payload`, without a TTL.
    pub fn from_payload(payload: &[u8]) -> StrRecord {
        let mut r = StrRecord::zeroed(0, 0);
        r.0.extend_from_slice(payload);
        r
    }

    pub fn payload(&self) -> &[u8] {
        &self.0[HEADER..]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.0[HEADER..]
    }

    /// Grows the payload with zero bytes to at least `len` bytes; true when it grew.
    pub fn grow_to(&mut self, len: usize) -> bool {
        let grew = HEADER + len > self.0.len();
        if grew {
            self.0.resize(HEADER + len, 0);
        }
        grew
    }

    /// Replaces the payload (the TTL stays).
    pub fn set_payload(&mut self, payload: &[u8]) {
        self.0.truncate(HEADER);
        self.0.extend_from_slice(payload);
    }
}

/// `key`'s live string: `None` when absent or expired, `WrongType` when it holds another type.
pub fn load<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<StrRecord>> {
    let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
        return Ok(None);
    };
    let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    if expire != 0 && expire <= r.now() {
        return Ok(None);
    }
    if typ != TYPE_STRING {
        return Err(Error::WrongType);
    }
    Ok(Some(StrRecord(raw)))
}
