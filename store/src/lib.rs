//! The raftkv state machine on RocksDB.
//!
//! Layout (column families of the node's one database, shared with the raft log):
//! - `data`:   `[slot u16 BE][user key]` → `[type u8][expire_at_ms i64 BE, 0 = none][payload]`,
//!   so one hash slot is one contiguous key range;
//! - `expire`: `[expire_at_ms u64 BE][slot u16 BE][user key]` → empty, an index for the
//!   leader's sweep (entries may be stale; always verified against the value);
//! - `meta`:   per group: applied index, last stamped time, key and TTL counters;
//! - `kver`:   `[slot u16 BE][user key]` → index of the key's last write, and per-slot
//!   deletion epochs, for WATCH (see [`txn`]).
//!
//! The apply path ([`Store::apply`]) never writes the database itself: it stages into the
//! Ready loop's `WriteBatch` (which also holds the raft log append) and keeps an overlay so
//! later commands of the same batch see earlier ones. Every time comes from the leader's
//! stamp, so replicas agree. Reads ([`Reader`]) run on any thread, each group on one RocksDB
//! snapshot taken after the last written batch.

mod applier;
mod apply_coll;
pub mod budget;
mod cmd_common;
mod cmd_hash;
mod cmd_list;
mod cmd_set;
mod cmd_zset;
pub mod functions;
pub mod glob;
mod nodes;
mod reader;
mod reader_coll;
mod savepoint;
mod script_host;
pub mod scripting;
pub mod slot;
pub mod snapshot;
pub mod txn;
pub mod types;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, ExpireAt, ExpireCondition, GetExAction, Reply, SetCondition};
use rocksdb::{WriteBatch, DB};

pub use apply_coll::{hex, unhex};
pub use glob::glob_match;
pub use reader::Reader;
pub use slot::key_slot;

/// User data.
pub const CF_DATA: &str = "data";
/// Expiry index.
pub const CF_EXPIRE: &str = "expire";
/// Applied index, stamped time, counters.
pub const CF_META: &str = "meta";

/// Type byte of strings.
pub const TYPE_STRING: u8 = 0;
/// Type bytes of collections (metadata records, see [`types`]).
pub const TYPE_HASH: u8 = 1;
pub const TYPE_LIST: u8 = 2;
pub const TYPE_SET: u8 = 3;
pub const TYPE_ZSET: u8 = 4;
use budget::Budget;
pub use budget::{ENTRY_WRITE_BUDGET, MAX_STRING};

/// Returns the refusal from `apply` when the entry's budget has no room for `$cost` bytes.
macro_rules! charge {
    ($store:expr, $cost:expr) => {
        if let Err(refused) = $store.budget.charge($cost) {
            return refused;
        }
    };
}

// After the macro, which it uses.
mod cmd_keyspace;
mod sized;
mod sweep;
pub use cmd_keyspace::object_help;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Column families the store needs.
pub fn column_families() -> Vec<&'static str> {
    vec![
        CF_DATA,
        CF_EXPIRE,
        CF_META,
        types::CF_SUB,
        types::CF_ZSCORE,
        txn::CF_KVER,
        scripting::CF_SCRIPTS,
    ]
}

/// The column families with the options the store wants. The data family keeps its
/// memtable as a hash of whole keys (point lookups and inserts, the hot path of every
/// command, touch one small bucket instead of searching one large skiplist: 1.6x the
/// pipelined SET rate measured here). The price: iterating it in key order (KEYS, SCAN)
/// first sorts the memtable's entries, ~0.5 s per call with a full 32 MiB memtable.
pub fn column_family_descriptors() -> Vec<rocksdb::ColumnFamilyDescriptor> {
    column_families()
        .into_iter()
        .map(|name| {
            let mut cf = rocksdb::Options::default();
            cf.set_write_buffer_size(if name == CF_DATA { 32 << 20 } else { 64 << 20 });
            if name == CF_DATA {
                cf.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
                cf.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
                    bucket_count: 1 << 20,
                    height: 8,
                    branching_factor: 4,
                });
                cf.set_memtable_whole_key_filtering(true);
                cf.set_memtable_prefix_bloom_ratio(0.1);
            }
            rocksdb::ColumnFamilyDescriptor::new(name, cf)
        })
        .collect()
}

/// Database-wide options the store's column families need (the hashed memtable cannot
/// take concurrent memtable writes).
pub fn tune_db_options(opts: &mut rocksdb::Options) {
    opts.set_allow_concurrent_memtable_write(false);
}

/// Read options for iterating the data family across slots.
fn total_order() -> rocksdb::ReadOptions {
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_total_order_seek(true);
    ro
}

/// Storage failure (fatal to the node).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("missing column family {0}")]
    MissingCf(&'static str),
    #[error("corrupt value: {0}")]
    Corrupt(String),
}

fn data_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 2);
    k.extend_from_slice(&key_slot(key).to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn expire_key(at: i64, dkey: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(dkey.len() + 8);
    k.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    k.extend_from_slice(dkey);
    k
}

fn meta_key(group: u64, tag: u8) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.push(tag);
    k
}

/// Bytes of an encoded value before its payload (type, expiry).
const HEADER: usize = 9;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
struct Value {
    typ: u8,
    expire: i64,
    payload: Vec<u8>,
}

impl Value {
    fn string(payload: Vec<u8>, expire: i64) -> Value {
        Value {
            typ: TYPE_STRING,
            expire,
            payload,
        }
    }

    fn decode(raw: &[u8]) -> Option<Value> {
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
    fn header(raw: &[u8]) -> Option<(u8, i64)> {
        let expire = i64::from_be_bytes(raw.get(1..9)?.try_into().ok()?);
        Some((raw[0], expire))
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.payload.len() + 9);
        v.push(self.typ);
        v.extend_from_slice(&self.expire.to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// An encoded string of `len` zero bytes to fill in at `[HEADER..]`. Zeroed memory
    /// comes from the allocator untouched, so a sparse SETRANGE costs only the pages written.
    fn zeroed_string(len: usize, expire: i64) -> Vec<u8> {
        let mut v = vec![0u8; HEADER + len];
        v[0] = TYPE_STRING;
        v[1..HEADER].copy_from_slice(&expire.to_be_bytes());
        v
    }

    fn expired(&self, now: i64) -> bool {
        self.expire != 0 && self.expire <= now
    }
}

/// The type byte a SCAN TYPE name selects (`None`: no such type, nothing matches).
fn type_by_name(name: &[u8]) -> Option<u8> {
    [TYPE_STRING, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_ZSET]
        .into_iter()
        .find(|&t| name.eq_ignore_ascii_case(types::meta::type_name(t).as_bytes()))
}

/// Fail-stop on a storage error in the apply path. Replies must be identical on every
/// replica, so a replica that cannot read (or decode) its own state must not guess or
/// answer differently: it stops, and recovers from its log or a snapshot on restart.
fn fail_stop(what: &str, e: impl std::fmt::Display) -> ! {
    // A replica that cannot read or decode its own state must stop rather than diverge.
    eprintln!("raftkv store: fatal storage error while {what}: {e}");
    std::process::abort();
}

/// Bytes of the values of MSET / MSETNX.
fn pairs_len(pairs: &[(Bytes, Bytes)]) -> usize {
    pairs
        .iter()
        .map(|(_, v)| v.len())
        .fold(0, usize::saturating_add)
}

fn parse_i64(b: &[u8]) -> Option<i64> {
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

#[derive(Default)]
struct Counters {
    keys: AtomicU64,
    expires: AtomicU64,
    /// The restore gate: a snapshot restore holds it for writing, readers take their
    /// RocksDB snapshot under its read side (see [`reader`]).
    restore: std::sync::RwLock<()>,
    /// Client addresses of the nodes (see [`nodes`]).
    node_addrs: nodes::Addrs,
    /// Called with each list or sorted-set key a written batch changed (blocking pops).
    push_listener: std::sync::Mutex<Option<PushListener>>,
    /// Function libraries as of the last written batch (see [`functions`]).
    libraries: std::sync::RwLock<Arc<functions::Libraries>>,
    /// Script engines idle between read-only scripts.
    engines: std::sync::Mutex<Vec<script::Engine>>,
}

/// What [`Reader::set_push_listener`] registers: called on the apply thread, once the batch
/// is written, with each list or sorted-set key it gave elements (`None`: any key may have
/// changed, after a snapshot restore).
pub type PushListener = Arc<dyn Fn(Option<&[u8]>) + Send + Sync>;

/// The state machine, owned by the Raft thread.
///
/// Counters: `keys` counts keys physically present in `data` (live or expired but not yet
/// deleted), `expires` those of them with a TTL. They change only when a key is physically
/// created (a put where no value was present, expired or not) or physically deleted (DEL,
/// GETDEL, RENAME's source, a due expiry, the sweep, DELIFEXPIRED; DEL of an expired but
/// present key replies 0 yet still deletes and decrements). Overwriting an expired key
/// keeps the count. FLUSHALL resets both to 0. Both are staged into `meta` with the
/// applied index, so they survive restarts, and published to readers in `batch_written`.
pub struct Store {
    db: Arc<DB>,
    group: u64,
    applied: u64,
    last_time: i64,
    keys: i64,
    expires: i64,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Database values read during this batch (a command usually reads its key twice).
    read_cache: RefCell<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    flushed: bool,
    shared: Arc<Counters>,
    /// What the entry being applied has written so far.
    budget: Budget,
    /// Per-key modification versions for WATCH (see [`txn`]).
    watch_versions: txn::Versions,
    /// Staged sub (0) and score (1) records of this batch (see [`applier`]).
    coll: [types::view::OverlayMap; 2],
    /// The collection version counter (persisted in `meta`).
    versions: types::Versions,
    /// Index of the entry being applied and the position of its command: the seed of
    /// random choices of writes.
    seed_index: u64,
    seed_pos: u64,
    /// List and sorted-set keys this batch wrote (for the push listener).
    pushed: Vec<Vec<u8>>,
    /// The open savepoint of a running script (see [`savepoint`]).
    undo: Option<Box<savepoint::Undo>>,
    /// The script engine of the apply path (taken while a script runs).
    engine: Option<script::Engine>,
    /// Script records staged in this batch.
    scripts: scripting::Staged,
    /// Function libraries as of this batch, and whether readers have yet to see them.
    libs: functions::Libraries,
    libs_changed: bool,
}

impl Store {
    /// Opens the group's state machine, restoring its applied index and counters.
    pub fn open(db: Arc<DB>, group_id: u64) -> Result<Store, StoreError> {
        for cf in column_families() {
            if db.cf_handle(cf).is_none() {
                return Err(StoreError::MissingCf(cf));
            }
        }
        let (applied, last_time, keys, expires) = Self::load_meta(&db, group_id)?;
        let watch_versions = txn::Versions::load(&db)?;
        let versions =
            types::Versions::load(&db, group_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let shared = Arc::new(Counters::default());
        nodes::publish(&shared.node_addrs, nodes::load(&db));
        shared.keys.store(keys.max(0) as u64, Ordering::Release);
        shared
            .expires
            .store(expires.max(0) as u64, Ordering::Release);
        let mut store = Store {
            db,
            group: group_id,
            applied,
            last_time,
            keys,
            expires,
            overlay: HashMap::new(),
            read_cache: RefCell::new(HashMap::new()),
            flushed: false,
            shared,
            budget: Budget::default(),
            watch_versions,
            coll: Default::default(),
            versions,
            seed_index: 0,
            seed_pos: 0,
            pushed: Vec::new(),
            undo: None,
            engine: None,
            scripts: Default::default(),
            libs: Default::default(),
            libs_changed: false,
        };
        store.reload_libraries();
        Ok(store)
    }

    /// Reads the persisted applied index, last time and counters.
    fn load_meta(db: &DB, group_id: u64) -> Result<(u64, i64, i64, i64), StoreError> {
        let meta = db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        let get = |tag: u8| -> Result<i64, StoreError> {
            match db.get_cf(meta, meta_key(group_id, tag))? {
                Some(v) => Ok(i64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("meta value".into()))?,
                )),
                None => Ok(0),
            }
        };
        Ok((get(b'a')? as u64, get(b't')?, get(b'k')?, get(b'e')?))
    }

    /// Starts exporting the store as it is now into `dir` (see [`snapshot::export`]).
    pub fn export_snapshot(&self, dir: std::path::PathBuf) -> Result<snapshot::Export, String> {
        snapshot::export(self.db.clone(), dir)
    }

    /// Replaces the whole store with a snapshot's files and reloads the applied index and
    /// counters from it.
    /// Exclusive with readers (the restore gate): a read sees the whole state before the
    /// restore or the whole state after it, never a half-ingested one.
    pub fn restore_snapshot(&mut self, dir: &std::path::Path) -> Result<(), String> {
        let shared = self.shared.clone();
        let _exclusive = shared.restore.write().unwrap_or_else(|p| p.into_inner());
        snapshot::restore(&self.db, dir)?;
        let (applied, last_time, keys, expires) =
            Self::load_meta(&self.db, self.group).map_err(|e| e.to_string())?;
        self.applied = applied;
        self.last_time = last_time;
        self.keys = keys;
        self.expires = expires;
        self.reload_node_addrs();
        self.reload_versions()?;
        self.versions = types::Versions::load(&self.db, self.group).map_err(|e| e.to_string())?;
        self.reload_libraries();
        self.batch_written();
        self.notify_restored();
        Ok(())
    }

    /// Index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Latest stamped time applied.
    pub fn last_time_ms(&self) -> i64 {
        self.last_time
    }

    /// A handle for reads from other threads.
    pub fn reader(&self) -> Reader {
        Reader {
            db: self.db.clone(),
            counters: self.shared.clone(),
        }
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| fail_stop("opening a column family", name))
    }

    /// Calls `f` with the encoded value of a data key as of this batch (expired or not),
    /// without copying it.
    fn with_raw<R>(&self, dkey: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        if let Some(v) = self.overlay.get(dkey) {
            return f(v.as_deref());
        }
        if self.flushed {
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
    fn raw(&self, dkey: &[u8]) -> Option<Value> {
        self.with_raw(dkey, |b| {
            b.map(|b| {
                Value::decode(b).unwrap_or_else(|| fail_stop("decoding a value", "short value"))
            })
        })
    }

    /// Type, expiry and payload length of a data key as of this batch, without copying it.
    fn raw_header(&self, dkey: &[u8]) -> Option<(u8, i64, usize)> {
        self.with_raw(dkey, |b| {
            b.map(|b| match Value::header(b) {
                Some((typ, expire)) => (typ, expire, b.len() - HEADER),
                None => fail_stop("decoding a value", "short value"),
            })
        })
    }

    /// Payload length of a live key (0 if absent or expired).
    fn live_len(&self, dkey: &[u8], now: i64) -> usize {
        match self.raw_header(dkey) {
            Some((_, expire, len)) if expire == 0 || expire > now => len,
            _ => 0,
        }
    }

    fn live(&self, dkey: &[u8], now: i64) -> Option<Value> {
        self.raw(dkey).filter(|v| !v.expired(now))
    }

    fn put(&mut self, wb: &mut WriteBatch, dkey: Vec<u8>, v: Value) {
        self.put_encoded(wb, dkey, v.encode());
    }

    /// Writes an encoded value (see [`Value::encode`]); it is kept once, in the overlay,
    /// besides the write batch's copy.
    fn put_encoded(&mut self, wb: &mut WriteBatch, dkey: Vec<u8>, enc: Vec<u8>) {
        let expire = Value::header(&enc).map_or(0, |(_, e)| e);
        match self.raw_header(&dkey) {
            None => self.keys += 1,
            Some((_, old, _)) if old != 0 => {
                self.expires -= 1;
                if old != expire {
                    wb.delete_cf(self.cf(CF_EXPIRE), expire_key(old, &dkey));
                }
            }
            Some(_) => {}
        }
        if expire != 0 {
            self.expires += 1;
            wb.put_cf(self.cf(CF_EXPIRE), expire_key(expire, &dkey), []);
        }
        wb.put_cf(self.cf(CF_DATA), &dkey, &enc);
        self.touch(wb, &dkey);
        self.overlay_set(dkey, Some(enc));
    }

    fn del(&mut self, wb: &mut WriteBatch, dkey: &[u8]) -> bool {
        let Some((_, expire, _)) = self.raw_header(dkey) else {
            return false;
        };
        self.keys -= 1;
        if expire != 0 {
            self.expires -= 1;
            wb.delete_cf(self.cf(CF_EXPIRE), expire_key(expire, dkey));
        }
        // Deleting an already expired key changes no version (see `txn`).
        if expire == 0 || expire > self.last_time {
            self.untouch(wb, dkey);
        }
        wb.delete_cf(self.cf(CF_DATA), dkey);
        self.overlay_set(dkey.to_vec(), None);
        true
    }

    fn resolve(at: ExpireAt, now: i64) -> i64 {
        match at {
            ExpireAt::RelativeMs(ms) => now.saturating_add(ms),
            ExpireAt::AbsoluteMs(t) => t,
        }
    }

    /// Writes a string (or deletes it when its expiry is already due).
    fn set_string(
        &mut self,
        wb: &mut WriteBatch,
        dkey: Vec<u8>,
        payload: Vec<u8>,
        expire: i64,
        now: i64,
    ) {
        if expire != 0 && expire <= now {
            self.del(wb, &dkey);
        } else {
            self.put(wb, dkey, Value::string(payload, expire));
        }
    }

    /// Applies one replicated write at the leader-stamped time `now_ms`.
    pub fn apply(&mut self, wb: &mut WriteBatch, cmd: &Command, now_ms: i64) -> Reply {
        let now = now_ms.max(self.last_time);
        self.last_time = now;
        match cmd {
            Command::Set { key, value, opts } => {
                let dkey = data_key(key);
                let old = self.live(&dkey, now);
                if opts.get && old.as_ref().is_some_and(|o| o.typ != TYPE_STRING) {
                    return Reply::err(WRONGTYPE);
                }
                let old_reply = || match &old {
                    Some(o) => Reply::Bulk(Bytes::from(o.payload.clone())),
                    None => Reply::Nil,
                };
                let blocked = match opts.condition {
                    Some(SetCondition::Nx) => old.is_some(),
                    Some(SetCondition::Xx) => old.is_none(),
                    None => false,
                };
                if blocked {
                    return if opts.get { old_reply() } else { Reply::Nil };
                }
                let expire = match (opts.expire, opts.keep_ttl) {
                    (Some(at), _) => Self::resolve(at, now).max(1),
                    (None, true) => old.as_ref().map_or(0, |o| o.expire),
                    (None, false) => 0,
                };
                charge!(self, value.len());
                let reply = if opts.get { old_reply() } else { Reply::ok() };
                self.set_string(wb, dkey, value.to_vec(), expire, now);
                reply
            }
            Command::SetNx { key, value } => {
                let dkey = data_key(key);
                if self.live(&dkey, now).is_some() {
                    return Reply::Int(0);
                }
                charge!(self, value.len());
                self.put(wb, dkey, Value::string(value.to_vec(), 0));
                Reply::Int(1)
            }
            Command::GetDel(key) => {
                let dkey = data_key(key);
                match self.live(&dkey, now) {
                    None => Reply::Nil,
                    Some(v) if v.typ != TYPE_STRING => Reply::err(WRONGTYPE),
                    Some(v) => {
                        self.del(wb, &dkey);
                        Reply::Bulk(Bytes::from(v.payload))
                    }
                }
            }
            Command::GetEx { key, action } => {
                let dkey = data_key(key);
                match self.live(&dkey, now) {
                    None => Reply::Nil,
                    Some(v) if v.typ != TYPE_STRING => Reply::err(WRONGTYPE),
                    Some(v) => {
                        if action.is_some() {
                            // Persist or a new expiry rewrites the whole value.
                            charge!(self, v.payload.len());
                        }
                        let reply = Reply::Bulk(Bytes::from(v.payload.clone()));
                        match action {
                            None => {}
                            Some(GetExAction::Persist) if v.expire != 0 => {
                                self.put(wb, dkey, Value { expire: 0, ..v });
                            }
                            Some(GetExAction::Persist) => {}
                            Some(GetExAction::Expire(at)) => {
                                let at = Self::resolve(*at, now).max(1);
                                self.set_string(wb, dkey, v.payload, at, now);
                            }
                        }
                        reply
                    }
                }
            }
            Command::MSet(pairs) => {
                charge!(self, pairs_len(pairs));
                for (k, v) in pairs {
                    self.put(wb, data_key(k), Value::string(v.to_vec(), 0));
                }
                Reply::ok()
            }
            Command::MSetNx(pairs) => {
                if pairs
                    .iter()
                    .any(|(k, _)| self.live(&data_key(k), now).is_some())
                {
                    return Reply::Int(0);
                }
                charge!(self, pairs_len(pairs));
                for (k, v) in pairs {
                    self.put(wb, data_key(k), Value::string(v.to_vec(), 0));
                }
                Reply::Int(1)
            }
            Command::Del(keys) => {
                let mut n = 0;
                for k in keys {
                    let dkey = data_key(k);
                    let was_live = self.live(&dkey, now).is_some();
                    if self.del(wb, &dkey) && was_live {
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Command::IncrBy { key, delta } => {
                let dkey = data_key(key);
                let old = self.live(&dkey, now);
                let (cur, expire) = match &old {
                    None => (0, 0),
                    Some(v) if v.typ != TYPE_STRING => return Reply::err(WRONGTYPE),
                    Some(v) => match parse_i64(&v.payload) {
                        Some(n) => (n, v.expire),
                        None => return Reply::err("ERR value is not an integer or out of range"),
                    },
                };
                let Some(new) = cur.checked_add(*delta) else {
                    return Reply::err("ERR increment or decrement would overflow");
                };
                charge!(self, 20);
                self.put(
                    wb,
                    dkey,
                    Value::string(new.to_string().into_bytes(), expire),
                );
                Reply::Int(new)
            }
            Command::IncrByFloat { key, delta } => {
                let dkey = data_key(key);
                let (cur, expire) = match self.live(&dkey, now) {
                    None => (0.0, 0),
                    Some(v) if v.typ != TYPE_STRING => return Reply::err(WRONGTYPE),
                    Some(v) => match resp::parse_float(&v.payload) {
                        Some(f) => (f, v.expire),
                        None => return Reply::err("ERR value is not a valid float"),
                    },
                };
                let new = cur + delta;
                if !new.is_finite() {
                    return Reply::err("ERR increment would produce NaN or Infinity");
                }
                let text = resp::encode::format_double(new);
                charge!(self, text.len());
                self.put(wb, dkey, Value::string(text.clone().into_bytes(), expire));
                Reply::Bulk(Bytes::from(text))
            }
            Command::Append { key, value } => self.append(wb, key, value, now),
            Command::SetRange { key, offset, value } => {
                self.set_range(wb, key, (*offset).max(0) as usize, value, now)
            }
            Command::Rename { src, dst, nx } => {
                let skey = data_key(src);
                let Some(v) = self.live(&skey, now) else {
                    return Reply::err("ERR no such key");
                };
                let ok = || if *nx { Reply::Int(1) } else { Reply::ok() };
                if src == dst {
                    return if *nx { Reply::Int(0) } else { ok() };
                }
                let dkey = data_key(dst);
                if *nx && self.live(&dkey, now).is_some() {
                    return Reply::Int(0);
                }
                if v.typ != TYPE_STRING {
                    let done = self.rename_collection(wb, src, dst, now);
                    return if done.is_error() { done } else { ok() };
                }
                charge!(self, v.payload.len());
                self.del(wb, &skey);
                self.put(wb, dkey, v);
                ok()
            }
            Command::Copy { src, dst, replace } => self.apply_copy(wb, src, dst, *replace, now),
            Command::Expire { key, at, condition } => {
                let dkey = data_key(key);
                let Some(v) = self.live(&dkey, now) else {
                    return Reply::Int(0);
                };
                let new = Self::resolve(*at, now);
                let allowed = match condition {
                    None => true,
                    Some(ExpireCondition::Nx) => v.expire == 0,
                    Some(ExpireCondition::Xx) => v.expire != 0,
                    Some(ExpireCondition::Gt) => v.expire != 0 && new > v.expire,
                    Some(ExpireCondition::Lt) => v.expire == 0 || new < v.expire,
                };
                if !allowed {
                    return Reply::Int(0);
                }
                if new > now {
                    // A new expiry rewrites the whole value.
                    charge!(self, v.payload.len());
                }
                if new <= now {
                    self.del(wb, &dkey);
                } else {
                    self.put(wb, dkey, Value { expire: new, ..v });
                }
                Reply::Int(1)
            }
            Command::Persist(key) => {
                let dkey = data_key(key);
                match self.live(&dkey, now) {
                    Some(v) if v.expire != 0 => {
                        charge!(self, v.payload.len());
                        self.put(wb, dkey, Value { expire: 0, ..v });
                        Reply::Int(1)
                    }
                    _ => Reply::Int(0),
                }
            }
            Command::FlushAll => {
                self.undo_whole();
                wb.delete_range_cf(self.cf(CF_DATA), Vec::<u8>::new(), vec![0xff; 3]);
                wb.delete_range_cf(self.cf(CF_EXPIRE), Vec::<u8>::new(), vec![0xff; 9]);
                self.flush_versions(wb);
                for cf in [types::CF_SUB, types::CF_ZSCORE] {
                    wb.delete_range_cf(self.cf(cf), Vec::<u8>::new(), vec![0xff; 9]);
                }
                self.coll = Default::default();
                self.overlay.clear();
                self.flushed = true;
                self.keys = 0;
                self.expires = 0;
                Reply::ok()
            }
            Command::SweepExpired { limit } => Reply::Int(self.sweep(wb, now, *limit)),
            Command::NodeAddr { id, addr } => self.record_node_addr(wb, *id, addr),
            Command::DelIfExpired(keys) => {
                let mut n = 0;
                for k in keys {
                    let dkey = data_key(k);
                    if self.raw(&dkey).is_some_and(|v| v.expired(now)) && self.del(wb, &dkey) {
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Command::DbSize => Reply::Int(self.keys.max(0)),
            Command::Transaction { watches, body } => {
                self.apply_transaction(wb, watches, body, now)
            }
            Command::Hash(_) | Command::List(_) | Command::Sets(_) | Command::ZSet(_) => {
                self.apply_collection(wb, cmd, now)
            }
            Command::CleanStale { cursor, limit } => self.apply_clean(wb, cursor, *limit, now),
            Command::Script(c) => self.apply_script(wb, c, now),
            Command::ScriptAdmin(s) => self.apply_script_admin(wb, s),
            Command::Function(f) => self.apply_function(wb, f),
            // Reads replicated with writes (one pipeline segment) run in order at apply
            // time, seeing the batch's earlier commands.
            read if read.kind() == resp::Kind::Read => {
                // Every replica computes the reply, so it is charged like a write, before
                // the values are copied into it.
                charge!(self, self.reply_cost(read, now));
                let reader = self.reader();
                let mut expired = Vec::new();
                reader
                    .read_inner(&|k| Ok(self.raw(&data_key(k))), read, now, &mut expired)
                    .unwrap_or_else(|e| fail_stop("reading during apply", e))
            }
            other => Reply::err(format!("ERR '{}' is not a replicated write", other.name())),
        }
    }

    /// Stages the applied index, time and counters (once per batch, after its applies).
    pub fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.applied = index;
        let meta = self.cf(CF_META);
        wb.put_cf(
            meta,
            meta_key(self.group, b'a'),
            (index as i64).to_be_bytes(),
        );
        wb.put_cf(
            meta,
            meta_key(self.group, b't'),
            self.last_time.to_be_bytes(),
        );
        wb.put_cf(meta, meta_key(self.group, b'k'), self.keys.to_be_bytes());
        wb.put_cf(meta, meta_key(self.group, b'e'), self.expires.to_be_bytes());
    }

    /// A new Raft entry is about to be applied: its commands share a fresh write budget
    /// (see [`budget`]).
    pub fn begin_entry(&mut self) {
        self.budget.reset();
    }

    /// The batch is written: drop the overlay, publish counters.
    pub fn batch_written(&mut self) {
        self.budget.reset();
        self.overlay.clear();
        self.coll = Default::default();
        self.read_cache.get_mut().clear();
        self.watch_versions.batch_written();
        self.scripts_written();
        self.flushed = false;
        self.shared
            .keys
            .store(self.keys.max(0) as u64, Ordering::Release);
        self.shared
            .expires
            .store(self.expires.max(0) as u64, Ordering::Release);
        self.notify_pushed();
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_coll;
#[cfg(test)]
mod tests_script;
