//! The apply path's commands whose memory cost depends on the data, not on the entry:
//! APPEND and SETRANGE (which build the new value in place) and the replies of reads
//! applied with an entry. Each is charged to the entry's write budget ([`crate::budget`])
//! before it allocates.

use bytes::Bytes;
use resp::{Command, Reply};
use rocksdb::WriteBatch;

use crate::budget::STRING_TOO_BIG;
use crate::{data_key, Store, Value, HEADER, MAX_STRING, TYPE_STRING, WRONGTYPE};

impl Store {
    /// APPEND: the value is rewritten whole, so the new length is charged.
    pub(crate) fn append(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        value: &[u8],
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        let (mut enc, expire) = match self.live(&dkey, now) {
            None => (Value::zeroed_string(0, 0), 0),
            Some(v) if v.typ != TYPE_STRING => return Reply::err(WRONGTYPE),
            Some(v) => {
                let expire = v.expire;
                (Value::string(v.payload, expire).encode(), expire)
            }
        };
        let len = enc.len() - HEADER + value.len();
        if len > MAX_STRING {
            return Reply::err(STRING_TOO_BIG);
        }
        charge!(self, len);
        enc.reserve_exact(value.len());
        enc.extend_from_slice(value);
        debug_assert_eq!(Value::header(&enc).map(|h| h.1), Some(expire));
        self.put_encoded(wb, dkey, enc);
        Reply::Int(len as i64)
    }

    /// SETRANGE: builds the new value in place (untouched zero pages for a sparse one).
    pub(crate) fn set_range(
        &mut self,
        wb: &mut WriteBatch,
        key: &Bytes,
        offset: usize,
        value: &[u8],
        now: i64,
    ) -> Reply {
        let dkey = data_key(key);
        let old = self.live(&dkey, now);
        if old.as_ref().is_some_and(|v| v.typ != TYPE_STRING) {
            return Reply::err(WRONGTYPE);
        }
        if value.is_empty() {
            return Reply::Int(old.map_or(0, |v| v.payload.len() as i64));
        }
        if offset.saturating_add(value.len()) > MAX_STRING {
            return Reply::err(STRING_TOO_BIG);
        }
        let (payload, expire) = old.map_or((Vec::new(), 0), |v| (v.payload, v.expire));
        let len = payload.len().max(offset + value.len());
        charge!(self, len);
        let mut enc = Value::zeroed_string(len, expire);
        enc[HEADER..HEADER + payload.len()].copy_from_slice(&payload);
        drop(payload);
        enc[HEADER + offset..HEADER + offset + value.len()].copy_from_slice(value);
        self.put_encoded(wb, dkey, enc);
        Reply::Int(len as i64)
    }

    /// Bytes of values a read applied with an entry copies into its reply.
    pub(crate) fn reply_cost(&self, cmd: &Command, now: i64) -> usize {
        match cmd {
            Command::Get(k) | Command::GetRange { key: k, .. } => self.live_len(&data_key(k), now),
            Command::MGet(keys) => keys
                .iter()
                .map(|k| self.live_len(&data_key(k), now) + 16)
                .fold(0, usize::saturating_add),
            _ => 0,
        }
    }
}
