//! Reads of the store from any thread (the session tasks and the read pool).
//!
//! A group of reads runs on ONE RocksDB snapshot ([`Reader::read_all`]), so a multi-key
//! read (MGET, EXISTS k1 k2 ...) or a pipelined read group never mixes the state before and
//! after an apply batch. A snapshot restore ([`crate::Store::restore_snapshot`]: a range
//! delete, then an ingest) holds the restore gate for writing; readers take their snapshot
//! under the gate's read side, so no read ever sees a half-restored store: it sees the whole
//! state before the restore or the whole state after it.
//!
//! Reads serve only the group's slots: a command with a key elsewhere answers `-TRYAGAIN`,
//! and KEYS, SCAN, RANDOMKEY, DBSIZE and the sweep's due keys cover the owned slots only.
//! A read group serves a slot only when the set published before its snapshot and the one
//! after both own it (a removal is published before its batch is written, an addition
//! after: see `scope.rs`), so ownership and the snapshot agree.
//!
//! **SCAN's cursor** is a slot number. A SCAN with cursor `c` must go to the group owning
//! slot `c` (else `-TRYAGAIN slot c ...`); it scans the run of consecutive slots the group
//! owns from `c` on, whole slots at a time until about COUNT keys were examined. The
//! returned cursor is 0 at the end of the keyspace; otherwise every slot below it has been
//! scanned, and it is the next slot to scan, which another group may own (the caller sends
//! the next SCAN to that slot's owner). One group owning every slot: as Redis's SCAN.

use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, Reply, TimeUnit};
use rocksdb::DB;

use crate::scope::foreign_slot;
use crate::slots::{key_ranges, slot_of, tryagain, visit_ranges, SlotSet};
use crate::types::meta::EXPIRE_KEY_HEAD;
use crate::{data_key, total_order, Counters, Value, CF_DATA, CF_EXPIRE, TYPE_STRING, WRONGTYPE};

/// Memtable entries of the data family above which a KEYS, SCAN or RANDOMKEY flushes it
/// before walking it (see `columns::flush_if_big`): sorting a full 32 MiB hashed memtable
/// took about 0.1 s per SCAN page (docs/benchmarks.md, session 14).
pub const WALK_FLUSH_ENTRIES: u64 = 2048;

/// Read access to the store from any thread.
#[derive(Clone)]
pub struct Reader {
    pub(crate) db: Arc<DB>,
    pub(crate) group: u64,
    pub(crate) counters: Arc<Counters>,
}

/// Looks a user key's raw value up (a snapshot, or the apply path's overlay).
pub(crate) type RawFn<'a> = &'a dyn Fn(&[u8]) -> Result<Option<Value>, String>;

/// What a read iterates: the live database (the apply path, which is its only writer) or
/// one snapshot of it (every read outside the apply path).
pub(crate) struct Source<'a> {
    pub(crate) db: &'a DB,
    pub(crate) snap: Option<&'a rocksdb::Snapshot<'a>>,
    /// The slots this read serves.
    pub(crate) slots: &'a SlotSet,
    /// True when the group may own slots beyond `slots` (a copy into it runs): the key
    /// counter is not the count of the served slots' keys.
    pub(crate) copying: bool,
}

impl Source<'_> {
    /// The collection operations' view of this source at `now`.
    pub(crate) fn view(&self, now: i64) -> crate::types::view::DbView<'_> {
        match self.snap {
            Some(s) => crate::types::view::DbView::at_snapshot(self.db, s, now),
            None => crate::types::view::DbView::new(self.db, now),
        }
    }

    /// A record of column family `cf` in this source.
    pub(crate) fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let h = self
            .db
            .cf_handle(cf)
            .ok_or_else(|| format!("missing {cf} column family"))?;
        match self.snap {
            Some(s) => s.get_cf(h, key),
            None => self.db.get_cf(h, key),
        }
        .map_err(|e| e.to_string())
    }

    pub(crate) fn data_iter(&self) -> Result<rocksdb::DBRawIterator<'_>, String> {
        let cf = self
            .db
            .cf_handle(CF_DATA)
            .ok_or("missing data column family")?;
        Ok(match self.snap {
            None => self.db.raw_iterator_cf_opt(cf, total_order()),
            Some(s) => s.raw_iterator_cf_opt(cf, total_order()),
        })
    }
}

fn bulk(v: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(v))
}

fn decode(b: Option<Vec<u8>>) -> Result<Option<Value>, String> {
    match b {
        None => Ok(None),
        Some(b) => Value::decode(&b)
            .map(Some)
            .ok_or_else(|| "corrupt value".to_string()),
    }
}

impl Reader {
    pub(crate) fn cf(&self, name: &'static str) -> Option<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name)
    }

    /// An integer RocksDB property summed over the column families (e.g.
    /// `rocksdb.total-sst-files-size`), for the metrics endpoint. The database is the node's,
    /// shared by its groups.
    pub fn db_property(&self, name: &str) -> u64 {
        crate::column_families()
            .into_iter()
            .filter_map(|cf| self.cf(cf))
            .filter_map(|cf| self.db.property_int_value_cf(cf, name).ok().flatten())
            .sum()
    }

    /// Keys in the database (physically present, so expired keys not yet swept count).
    pub fn key_count(&self) -> u64 {
        self.counters
            .keys
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keys with a TTL (physically present).
    pub fn expires_count(&self) -> u64 {
        self.counters
            .expires
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// True when the group may own slots it does not serve (see `Counters::copying`).
    pub(crate) fn copying(&self) -> bool {
        self.counters
            .copying
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The group this reader reads.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The slots the group serves, as published to readers.
    pub fn slots(&self) -> Arc<SlotSet> {
        self.counters
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Up to `limit` of the group's keys whose expiry index entry is due at `now`, oldest
    /// first: what the leader's sweep proposes to delete, by name (`RAFTKV.DELIFEXPIRED`),
    /// so every replica deletes exactly these keys whatever its write batch holds. Walks
    /// only the group's prefix of the index: other groups' entries cost nothing.
    pub fn due_keys(&self, now: i64, limit: usize) -> Vec<Bytes> {
        let Some(cf) = self.cf(CF_EXPIRE) else {
            return Vec::new();
        };
        let prefix = self.group.to_be_bytes();
        let slots = self.slots();
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(prefix);
        while out.len() < limit {
            let Some(entry) = it.key().and_then(|k| k.strip_prefix(&prefix[..])) else {
                break;
            };
            let at = entry
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(i64::MAX, |b: [u8; 8]| u64::from_be_bytes(b) as i64);
            if at > now {
                break;
            }
            // `[group u64][expire at u64][slot u16][user key]`.
            let dkey = entry.get(EXPIRE_KEY_HEAD - 8..).unwrap_or_default();
            if let Some(key) = dkey.get(2..).filter(|_| slots.contains(slot_of(dkey))) {
                out.push(Bytes::copy_from_slice(key));
            }
            it.next();
        }
        out
    }

    /// Registers the function the apply thread calls with what each written batch changed
    /// (pushed keys, keyspace events; replacing any earlier one).
    pub fn set_push_listener(&self, f: crate::PushListener) {
        *self
            .counters
            .push_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// True when the sub or score family holds any record in the group's slots (the
    /// cleaner may have work).
    pub fn has_collection_records(&self) -> bool {
        let ranges = key_ranges(&self.slots());
        [crate::types::CF_SUB, crate::types::CF_ZSCORE]
            .into_iter()
            .filter_map(|name| self.cf(name))
            .any(|cf| {
                let mut it = self.db.raw_iterator_cf_opt(cf, total_order());
                let mut found = false;
                let ranges = ranges.iter().map(|(a, b)| (&a[..], &b[..]));
                let _ = visit_ranges(&mut it, ranges, |_, _| {
                    found = true;
                    false
                });
                found
            })
    }

    /// Runs one read command at `now` on a snapshot of its own. Returns the reply and the
    /// keys found expired but still present (to be deleted through Raft).
    pub fn read(&self, cmd: &Command, now: i64) -> (Reply, Vec<Bytes>) {
        let (mut replies, expired) = self.read_all(std::slice::from_ref(cmd), now);
        (replies.pop().unwrap_or(Reply::Nil), expired)
    }

    /// Runs a group of read commands at `now`, all on ONE snapshot of the store (taken
    /// under the restore gate). Returns one reply per command and the expired keys seen.
    pub fn read_all(&self, cmds: &[Command], now: i64) -> (Vec<Reply>, Vec<Bytes>) {
        // A key-order walk of the data family (KEYS, SCAN, RANDOMKEY) would first sort a
        // big hashed memtable, every page again: flush it instead (see `flush_if_big`).
        // Not for a DBSIZE share: it reads the key counter, outside a migration's copy.
        let walks = cmds.iter().any(|c| match c {
            Command::Keys(_) | Command::Scan { .. } | Command::RandomKey => true,
            Command::ReadSlots { read, .. } => matches!(**read, Command::Keys(_)),
            _ => false,
        });
        if walks {
            let flushed = crate::columns::flush_if_big(&self.db, CF_DATA, WALK_FLUSH_ENTRIES);
            if let Err(e) = flushed {
                let e = Reply::err(format!("ERR storage error: {e}"));
                return (vec![e; cmds.len()], Vec::new());
            }
        }
        // The copying flag before the slot sets: seen clear, the sets are those without
        // any copied slots (see `Store::publish_slots`).
        let copying = self.copying();
        let (snap, before, after) = {
            let _gate = self
                .counters
                .restore
                .read()
                .unwrap_or_else(|p| p.into_inner());
            let before = self.slots();
            let snap = self.db.snapshot();
            (snap, before, self.slots())
        };
        // Served: slots owned both before and after the snapshot (see the module doc).
        let slots = if Arc::ptr_eq(&before, &after) {
            before
        } else {
            Arc::new(before.intersection(&after))
        };
        let Some(cf) = self.cf(CF_DATA) else {
            let e = Reply::err("ERR storage error: missing data column family");
            return (vec![e; cmds.len()], Vec::new());
        };
        let raw = |k: &[u8]| decode(snap.get_cf(cf, data_key(k)).map_err(|e| e.to_string())?);
        let src = Source {
            db: &self.db,
            snap: Some(&snap),
            slots: &slots,
            copying,
        };
        let mut expired = Vec::new();
        let replies = cmds
            .iter()
            .map(|c| {
                self.read_on(&src, &raw, c, now, &mut expired)
                    .unwrap_or_else(|e| Reply::err(format!("ERR storage error: {e}")))
            })
            .collect();
        (replies, expired)
    }

    pub(crate) fn live(
        raw: RawFn<'_>,
        key: &Bytes,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Option<Value>, String> {
        Ok(match raw(key)? {
            Some(v) if v.expired(now) => {
                expired.push(key.clone());
                None
            }
            other => other,
        })
    }

    fn string(
        raw: RawFn<'_>,
        key: &Bytes,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Result<Option<Vec<u8>>, Reply>, String> {
        Ok(match Self::live(raw, key, now, expired)? {
            None => Ok(None),
            Some(v) if v.typ != TYPE_STRING => Err(Reply::err(WRONGTYPE)),
            Some(v) => Ok(Some(v.payload)),
        })
    }

    /// A read run by the apply path (reads replicated with writes): keys through `raw`
    /// (the batch's overlay), scans on the live database (the apply path is its only
    /// writer), over the applied slot set `slots`.
    pub(crate) fn read_inner(
        &self,
        raw: RawFn<'_>,
        cmd: &Command,
        now: i64,
        expired: &mut Vec<Bytes>,
        slots: &SlotSet,
    ) -> Result<Reply, String> {
        let src = Source {
            db: &self.db,
            snap: None,
            slots,
            copying: self.copying(),
        };
        self.read_on(&src, raw, cmd, now, expired)
    }

    pub(crate) fn read_on(
        &self,
        src: &Source<'_>,
        raw: RawFn<'_>,
        cmd: &Command,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Reply, String> {
        if let Some(slot) = foreign_slot(src.slots, cmd) {
            return Ok(tryagain(slot));
        }
        Ok(match cmd {
            Command::Get(k) => match Self::string(raw, k, now, expired)? {
                Ok(Some(v)) => bulk(v),
                Ok(None) => Reply::Nil,
                Err(e) => e,
            },
            Command::MGet(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(match Self::string(raw, k, now, expired)? {
                        Ok(Some(v)) => bulk(v),
                        _ => Reply::Nil,
                    });
                }
                Reply::Array(out)
            }
            Command::Exists(keys) | Command::Touch(keys) => {
                let mut n = 0;
                for k in keys {
                    if Self::live(raw, k, now, expired)?.is_some() {
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Command::StrLen(k) => match Self::string(raw, k, now, expired)? {
                Ok(v) => Reply::Int(v.map_or(0, |v| v.len() as i64)),
                Err(e) => e,
            },
            Command::GetRange { key, start, end } => match Self::string(raw, key, now, expired)? {
                Err(e) => e,
                // Redis answers this shape once the key is known to be a string (or absent).
                Ok(_) if *start < 0 && *end < 0 && start > end => bulk(Vec::new()),
                Ok(v) => {
                    let v = v.unwrap_or_default();
                    let len = v.len() as i64;
                    let (mut s, mut e) = (*start, *end);
                    if s < 0 {
                        s += len;
                    }
                    if e < 0 {
                        e += len;
                    }
                    s = s.max(0);
                    e = e.max(0);
                    if e >= len {
                        e = len - 1;
                    }
                    if len == 0 || s > e {
                        bulk(Vec::new())
                    } else {
                        bulk(v[s as usize..=e as usize].to_vec())
                    }
                }
            },
            Command::Type(k) => match Self::live(raw, k, now, expired)? {
                Some(v) => Reply::Status(crate::types::meta::type_name(v.typ).into()),
                None => Reply::Status("none".into()),
            },
            Command::Ttl { key, unit } => match Self::live(raw, key, now, expired)? {
                None => Reply::Int(-2),
                Some(v) if v.expire == 0 => Reply::Int(-1),
                Some(v) => {
                    let ms = v.expire - now;
                    Reply::Int(match unit {
                        TimeUnit::Milliseconds => ms,
                        TimeUnit::Seconds => (ms + 500) / 1000,
                    })
                }
            },
            Command::ExpireTime { key, unit } => match Self::live(raw, key, now, expired)? {
                None => Reply::Int(-2),
                Some(v) if v.expire == 0 => Reply::Int(-1),
                // Seconds are rounded like TTL's ((ms + 500) / 1000), as Redis does.
                Some(v) => Reply::Int(match unit {
                    TimeUnit::Milliseconds => v.expire,
                    TimeUnit::Seconds => v.expire.saturating_add(500) / 1000,
                }),
            },
            Command::DbSize => Reply::Int(self.key_count() as i64),
            Command::RandomKey => Self::random_key(src, now, expired)?,
            Command::Object(o) => Self::object(src, raw, o, now, expired)?,
            Command::Keys(pattern) => Self::keys(src, pattern, now)?,
            Command::ReadSlots { expect, read } => self.read_slots(src, expect, read, now)?,
            Command::Scan {
                cursor,
                pattern,
                count,
                type_,
            } => Self::scan(src, *cursor, pattern.as_ref(), *count, type_.as_ref(), now)?,
            Command::Hash(_)
            | Command::List(_)
            | Command::Sets(_)
            | Command::ZSet(_)
            | Command::Geo(_)
            | Command::Sort(_)
            | Command::Dump(_)
            | Command::Bitmap(_)
            | Command::Hll(_)
            | Command::Lcs(_) => crate::reader_coll::read(&src.view(now), cmd),
            Command::Script(c) => self.read_script(src, raw, c, now, expired)?,
            Command::ScriptAdmin(resp::ScriptAdmin::Exists(shas)) => {
                self.script_exists(src, shas)?
            }
            Command::Function(f) => self.function_read(f),
            other => Reply::err(format!("ERR '{}' is not a read", other.name())),
        })
    }
}
