//! The apply path's reads of a data key as of the batch being applied: the batch's
//! overlay, then the batch's read cache, then the database.

use crate::value::HEADER;
use crate::{fail_stop, Store, Value, CF_DATA};

impl Store {
    /// Calls `f` with the encoded value of a data key as of this batch (expired or not),
    /// without copying it.
    pub(crate) fn with_raw<R>(&self, dkey: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        if let Some(v) = self.overlay.get(dkey) {
            return f(v.as_deref());
        }
        if self.flushed_key(dkey) {
            return f(None);
        }
        let mut cache = self.read_cache.borrow_mut();
        if !cache.contains_key(dkey) {
            let v = match self.db.get_cf(self.cf(CF_DATA), dkey) {
                Ok(v) => v,
                Err(e) => fail_stop("reading a key", e),
            };
            cache.insert(dkey.to_vec(), v);
        }
        f(cache.get(dkey).and_then(|v| v.as_deref()))
    }

    /// The raw value of a data key as of this batch (expired or not).
    pub(crate) fn raw(&self, dkey: &[u8]) -> Option<Value> {
        self.with_raw(dkey, |b| {
            b.map(|b| {
                Value::decode(b).unwrap_or_else(|| fail_stop("decoding a value", "short value"))
            })
        })
    }

    /// Type, expiry and payload length of a data key as of this batch, without copying it.
    pub(crate) fn raw_header(&self, dkey: &[u8]) -> Option<(u8, i64, usize)> {
        self.with_raw(dkey, |b| {
            b.map(|b| match Value::header(b) {
                Some((typ, expire)) => (typ, expire, b.len() - HEADER),
                None => fail_stop("decoding a value", "short value"),
            })
        })
    }

    /// Payload length of a live key (0 if absent or expired).
    pub(crate) fn live_len(&self, dkey: &[u8], now: i64) -> usize {
        match self.raw_header(dkey) {
            Some((_, expire, len)) if expire == 0 || expire > now => len,
            _ => 0,
        }
    }

    pub(crate) fn live(&self, dkey: &[u8], now: i64) -> Option<Value> {
        self.raw(dkey).filter(|v| !v.expired(now))
    }
}
