//! KEYS and SCAN over the group's owned slots (see the `reader.rs` module doc for
//! SCAN's cursor contract): KEYS visits every run of owned slots, one seek per run; SCAN
//! visits whole slots of the one run its cursor is in. Moved out of `reader.rs`.
//! Also a fanned-out KEYS or DBSIZE's share of one group (`RAFTKV.READSLOTS`).

use bytes::Bytes;
use resp::Reply;

use crate::reader::{Reader, Source};
use crate::slots::{slot_of, slot_start, tryagain, SlotSet};
use crate::{glob_match, slot, type_by_name, Value};

fn bulk(v: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(v))
}

impl Source<'_> {
    /// Visits the data records `(key, value)` of owned slots with keys `>= from`, in key
    /// order, until `f` returns false (then `Ok(false)`). One seek per run of owned slots.
    pub(crate) fn visit_owned(
        &self,
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let mut it = self.data_iter()?;
        let first = u32::from(slot_of(from));
        let mut at = first;
        while let Some(lo) = self.slots.next_owned(at) {
            let end = self.slots.next_unowned(u32::from(lo));
            let start = slot_start(lo.into());
            it.seek(if u32::from(lo) == first && from > &start[..] {
                from
            } else {
                &start[..]
            });
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if u32::from(slot_of(k)) >= end {
                    break;
                }
                if !f(k, v)? {
                    return Ok(false);
                }
                it.next();
            }
            it.status().map_err(|e| e.to_string())?;
            at = end;
        }
        Ok(true)
    }
}

impl Reader {
    /// KEYS pattern: the live keys of owned slots matching it, in key order.
    pub(crate) fn keys(src: &Source<'_>, pattern: &Bytes, now: i64) -> Result<Reply, String> {
        let mut out = Vec::new();
        let all = pattern.as_ref() == b"*";
        src.visit_owned(&[], |k, v| {
            let (_, expire) = Value::header(v).ok_or("corrupt value")?;
            let user = k.get(2..).ok_or("corrupt data key")?;
            if (expire == 0 || expire > now) && (all || glob_match(pattern, user, false)) {
                out.push(bulk(user.to_vec()));
            }
            Ok(true)
        })?;
        Ok(Reply::Array(out))
    }

    /// `RAFTKV.READSLOTS`: KEYS or DBSIZE over exactly the slots `expect` (the slots the
    /// entry node's layout gives this group), or `-TRYAGAIN` unless the group serves them
    /// all. So a fan-out over one layout counts every slot once, even while a migration
    /// moves slots (from the source's REMOVE to the target's SEAL no group serves them;
    /// a copy's target owns keys it does not serve yet). DBSIZE is the key counter when it
    /// counts exactly these slots; otherwise the slots' keys are counted one by one.
    pub(crate) fn read_slots(
        &self,
        src: &Source<'_>,
        expect: &[(u16, u16)],
        read: &resp::Command,
        now: i64,
    ) -> Result<Reply, String> {
        let want = match SlotSet::from_ranges(expect.iter().copied()) {
            Ok(w) => w,
            Err(e) => return Ok(Reply::err(e)),
        };
        if !want.difference(src.slots).is_empty() {
            return Ok(Reply::err(
                "TRYAGAIN slots are moving between groups: read not served here, retry",
            ));
        }
        let sub = Source {
            slots: &want,
            ..*src
        };
        match read {
            resp::Command::Keys(pattern) => Self::keys(&sub, pattern, now),
            resp::Command::DbSize => {
                if &want == src.slots && !src.copying {
                    let n = self.key_count();
                    // Cleared before and after reading the counter: no copied key in it.
                    if !self.copying() {
                        return Ok(Reply::Int(n as i64));
                    }
                }
                let mut n = 0i64;
                sub.visit_owned(&[], |_, _| {
                    n += 1;
                    Ok(true)
                })?;
                Ok(Reply::Int(n))
            }
            other => Ok(Reply::err(format!(
                "ERR '{}' is not a per-slot read",
                other.name()
            ))),
        }
    }

    /// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: `[next cursor, keys]`, or
    /// `-TRYAGAIN` when the group does not own the cursor's slot.
    pub(crate) fn scan(
        src: &Source<'_>,
        cursor: u64,
        pattern: Option<&Bytes>,
        count: u64,
        type_: Option<&Bytes>,
        now: i64,
    ) -> Result<Reply, String> {
        let mut keys = Vec::new();
        // TYPE filter: a name that is no type matches nothing (Redis 7.0 behaviour).
        let want: Option<Option<u8>> = type_.map(|t| type_by_name(t));
        let pattern = pattern.filter(|p| p.as_ref() != b"*");
        let next = Self::scan_slots(src, cursor, count, now, |k, typ| {
            let type_ok = want.is_none_or(|w| w == Some(typ));
            if type_ok && pattern.is_none_or(|p| glob_match(p, k, false)) {
                keys.push(bulk(k.to_vec()));
            }
        })?;
        let Ok(next) = next else {
            return Ok(tryagain(cursor as u16));
        };
        Ok(Reply::Array(vec![
            bulk(next.to_string().into_bytes()),
            Reply::Array(keys),
        ]))
    }

    /// Visits live keys (user key, type byte) of slots `from..=last` in key order; once at
    /// least `limit` keys (live or expired) were examined it finishes the current slot and
    /// returns the next non-empty slot, or `None` when the range is exhausted. Empty slots
    /// cost nothing: the iterator only lands on existing keys.
    fn scan_range(
        src: &Source<'_>,
        (from, last): (u16, u16),
        limit: u64,
        now: i64,
        mut f: impl FnMut(&[u8], u8),
    ) -> Result<Option<u16>, String> {
        let limit = limit.max(1);
        let mut it = src.data_iter()?;
        it.seek(from.to_be_bytes());
        let mut examined = 0u64;
        let mut last_slot = None;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if k.len() < 2 {
                return Err("corrupt data key".into());
            }
            let slot = u16::from_be_bytes([k[0], k[1]]);
            if slot > last {
                break;
            }
            if examined >= limit && last_slot != Some(slot) {
                return Ok(Some(slot));
            }
            last_slot = Some(slot);
            examined += 1;
            let (typ, expire) = Value::header(v).ok_or("corrupt value")?;
            if expire == 0 || expire > now {
                f(&k[2..], typ);
            }
            it.next();
        }
        it.status().map_err(|e| e.to_string())?;
        Ok(None)
    }

    /// SCAN: whole slots of the owned run from `cursor` until `count` keys were examined.
    /// The next cursor (0: end of keyspace; see the module doc), or `Err(())` when the
    /// group does not own slot `cursor`.
    fn scan_slots(
        src: &Source<'_>,
        cursor: u64,
        count: u64,
        now: i64,
        f: impl FnMut(&[u8], u8),
    ) -> Result<Result<u64, ()>, String> {
        if cursor >= slot::SLOTS as u64 {
            return Ok(Ok(0));
        }
        let from = cursor as u16;
        let Some(last) = src.slots.run_end(from) else {
            return Ok(Err(()));
        };
        Ok(Ok(
            match Self::scan_range(src, (from, last), count, now, f)? {
                Some(next) => u64::from(next),
                // The run is done: the next slot is another group's (or the end).
                None => (u64::from(last) + 1) % slot::SLOTS as u64,
            },
        ))
    }
}
