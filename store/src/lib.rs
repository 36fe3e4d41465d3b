//! The raftkv state machine on RocksDB.
//!
//! Layout (column families of the node's one database, shared with the raft log):
//! - `data`:   `[slot u16 BE][user key]` → `[type u8][expire_at_ms i64 BE, 0 = none][stamp u64
//!   BE][payload]` (the stamp: the key's WATCH version, see [`txn`]), so one hash slot is one
//!   contiguous key range;
//! - `expire`: `[group u64 BE][expire_at_ms u64 BE][slot u16 BE][user key]` → empty, each
//!   group's index of its own keys with a TTL, for the leader's sweep (entries may be stale;
//!   always verified against the value);
//! - `meta`:   `[group u64 BE][tag]...`: applied index, last stamped time, key and TTL
//!   counters, the collection version counter, the group's slot set, node addresses;
//! - `kver`:   `[slot u16 BE][user key]` → index of the last write of a key deleted after it
//!   expired, per-slot deletion epochs and per-group FLUSHALL epochs, for WATCH (see [`txn`]).
//!
//! **Slot ownership.** One database holds many groups; a [`Store`] owns a [`SlotSet`] (kept
//! in its `meta`, changed only by the applied `RAFTKV.SLOTS.ADD` / `REMOVE`): it refuses
//! keys of other slots (`-TRYAGAIN`, at apply time and on read), and every operation on the
//! whole keyspace walks only its slot ranges (see [`slots`] and `scope.rs`).
//!
//! The apply path ([`Store::apply`]) never writes the database itself: it stages into the
//! Ready loop's `WriteBatch` (which also holds the raft log append) and keeps an overlay so
//! later commands of the same batch see earlier ones. Every time comes from the leader's
//! stamp, so replicas agree. Reads ([`Reader`]) run on any thread, each group on one RocksDB
//! snapshot taken after the last written batch.

mod applier;
mod apply_coll;
pub mod budget;
pub mod claims;
pub mod cluster_meta;
mod cmd_bitmap;
mod cmd_common;
mod cmd_dump;
mod cmd_geo;
mod cmd_hash;
mod cmd_hll;
mod cmd_list;
mod cmd_set;
mod cmd_sort;
mod cmd_zset;
mod columns;
pub mod functions;
pub mod glob;
pub mod ingest;
mod leader_prefs;
pub mod migrations;
mod nodes;
pub mod notify;
mod pieces;
mod prefetch;
mod raw_reads;
mod reader;
mod reader_coll;
mod reader_scan;
mod savepoint;
mod script_host;
pub mod scripting;
pub mod shard_groups;
pub mod slot;
pub mod slots;
pub mod snapshot;
pub mod snapshot_checkpoint;
mod store_snapshot;
pub mod txn;
pub mod types;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use resp::{Command, ExpireAt, Reply};
use rocksdb::{WriteBatch, DB};

pub use apply_coll::{hex, unhex};
pub use glob::glob_match;
pub use reader::Reader;
pub use slot::key_slot;
pub use slots::SlotSet;

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
pub use columns::{column_families, column_family_descriptors, tune_db_options};

/// Returns the refusal from `apply` when the entry's budget has no room for `$cost` bytes.
macro_rules! charge {
    ($store:expr, $cost:expr) => {
        if let Err(refused) = $store.budget.charge($cost) {
            return refused;
        }
    };
}

// After the macro, which it uses.
mod apply_bits;
mod cmd_keyspace;
mod cmd_string;
mod open;
mod scope;
mod sized;
mod sweep;
mod value;
pub use cmd_keyspace::object_help;
use value::{pairs_len, parse_i64, type_by_name, Value, HEADER};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

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

use types::meta::expire_key;

fn meta_key(group: u64, tag: u8) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.push(tag);
    k
}

/// Fail-stop on a storage error in the apply path. Replies must be identical on every
/// replica, so a replica that cannot read (or decode) its own state must not guess or
/// answer differently: it stops, and recovers from its log or a snapshot on restart.
fn fail_stop(what: &str, e: impl std::fmt::Display) -> ! {
    // A replica that cannot read or decode its own state must stop rather than diverge.
    eprintln!("raftkv store: fatal storage error while {what}: {e}");
    std::process::abort();
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
    /// The group's slots as readers see them (see `scope.rs` for when they change).
    slots: std::sync::RwLock<Arc<SlotSet>>,
    /// True while the group may own slots it does not serve (a migration's copy into it):
    /// the key counter then counts keys outside the served slots. Set as soon as such
    /// slots are taken, cleared once the set without them is published.
    copying: std::sync::atomic::AtomicBool,
    /// Told what each written batch changed (blocking pops, keyspace notifications).
    push_listener: std::sync::Mutex<Option<PushListener>>,
    /// Keyspace notifications: the classes wanted (see [`notify`]).
    events: notify::Hook,
    /// Function libraries as of the last written batch (see [`functions`]).
    libraries: std::sync::RwLock<Arc<functions::Libraries>>,
    /// Script engines idle between read-only scripts.
    engines: std::sync::Mutex<Vec<script::Engine>>,
}

/// What a written batch changed, as [`PushListener`] hears it.
#[derive(Debug, Clone, Copy)]
pub enum Applied<'a> {
    /// A list or sorted-set key got elements (each key once per batch).
    Pushed(&'a [u8]),
    /// A snapshot was restored: any key may have changed.
    Restored,
    /// The keyspace events the batch raised, in apply order (only while notifications
    /// are on; see [`notify`]).
    Events(&'a [notify::Event]),
}

/// What [`Reader::set_push_listener`] registers: called on the apply thread once the batch
/// is written, with what it changed (the one hook of blocking pops and keyspace
/// notifications).
pub type PushListener = Arc<dyn Fn(Applied<'_>) + Send + Sync>;

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
    /// Slots a FLUSHALL of this batch emptied: their database records are gone for the
    /// batch's later commands (see `scope.rs`).
    flushed: Option<Box<SlotSet>>,
    /// The slots the group owns (applied state; persisted in `meta`).
    slots: SlotSet,
    /// The slot set changed in this batch: readers get it once the batch is written.
    slots_changed: bool,
    shared: Arc<Counters>,
    /// What the entry being applied has written so far.
    budget: Budget,
    /// Per-key modification versions for WATCH (see [`txn`]).
    watch_versions: txn::Versions,
    /// Staged sub (0) and score (1) records of this batch (see [`applier`]).
    coll: [types::view::OverlayMap; 2],
    /// Migration pieces staged by this batch (see `pieces`).
    staged: pieces::Staged,
    /// The collection version counter (persisted in `meta`).
    versions: types::Versions,
    /// Index of the entry being applied and the position of its command: the seed of
    /// random choices of writes.
    seed_index: u64,
    seed_pos: u64,
    /// List and sorted-set keys this batch wrote (for the push listener).
    pushed: Vec<Vec<u8>>,
    /// Keyspace events this batch raised (see [`notify`]).
    events: Vec<notify::Event>,
    /// The open savepoint of a running script (see [`savepoint`]).
    undo: Option<Box<savepoint::Undo>>,
    /// The script engine of the apply path (taken while a script runs).
    engine: Option<script::Engine>,
    /// Script records staged in this batch.
    scripts: scripting::Staged,
    /// Function libraries as of this batch, and whether readers have yet to see them.
    libs: functions::Libraries,
    libs_changed: bool,
    /// The node's slot claims (see [`claims`]); a private registry until `set_claims`.
    claims: Arc<claims::Claims>,
    /// The fence of the last slot command applied (see `scope.rs`).
    fence: u64,
    /// The last migration sealed here: no copied records of it or older (see `scope.rs`).
    sealed: u64,
    /// Slots added by a migration not sealed yet: owned, not served (see `scope.rs`).
    incoming: SlotSet,
}

impl Store {
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
            group: self.group,
            counters: self.shared.clone(),
        }
    }

    /// The group this store is the state machine of.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The slots the group owns, as applied so far.
    pub fn slots(&self) -> &SlotSet {
        &self.slots
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| fail_stop("opening a column family", name))
    }

    fn put(&mut self, wb: &mut WriteBatch, dkey: Vec<u8>, v: Value) {
        self.put_encoded(wb, dkey, v.encode());
    }

    /// Writes an encoded value (see [`Value::encode`]); it is kept once, in the overlay,
    /// besides the write batch's copy.
    fn put_encoded(&mut self, wb: &mut WriteBatch, dkey: Vec<u8>, mut enc: Vec<u8>) {
        value::set_stamp(&mut enc, self.stamp_now());
        let expire = Value::header(&enc).map_or(0, |(_, e)| e);
        match self.raw_header(&dkey) {
            None => self.keys += 1,
            Some((_, old, _)) if old != 0 => {
                self.expires -= 1;
                if old != expire {
                    wb.delete_cf(self.cf(CF_EXPIRE), expire_key(self.group, old, &dkey));
                }
            }
            Some(_) => {}
        }
        if expire != 0 {
            self.expires += 1;
            wb.put_cf(
                self.cf(CF_EXPIRE),
                expire_key(self.group, expire, &dkey),
                [],
            );
        }
        wb.put_cf(self.cf(CF_DATA), &dkey, &enc);
        self.overlay_set(dkey, Some(enc));
    }

    fn del(&mut self, wb: &mut WriteBatch, dkey: &[u8]) -> bool {
        let Some((_, expire, _)) = self.raw_header(dkey) else {
            return false;
        };
        self.keys -= 1;
        if expire != 0 {
            self.expires -= 1;
            wb.delete_cf(self.cf(CF_EXPIRE), expire_key(self.group, expire, dkey));
        }
        // Deleting an already expired key changes no version (see `txn`).
        if expire == 0 || expire > self.last_time {
            self.untouch(wb, dkey);
        } else {
            self.keep_version(wb, dkey);
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

    /// Applies one replicated write at the leader-stamped time `now_ms` (through
    /// [`Store::apply`], which raises its keyspace events).
    fn apply_cmd(&mut self, wb: &mut WriteBatch, cmd: &Command, now_ms: i64) -> Reply {
        let now = now_ms.max(self.last_time);
        self.last_time = now;
        if let Some(refused) = self.refuse_foreign(cmd) {
            return refused;
        }
        match cmd {
            Command::Set { .. }
            | Command::SetNx { .. }
            | Command::GetDel(_)
            | Command::GetEx { .. }
            | Command::MSet(_)
            | Command::MSetNx(_)
            | Command::Del(_)
            | Command::IncrBy { .. }
            | Command::IncrByFloat { .. }
            | Command::Append { .. }
            | Command::SetRange { .. }
            | Command::Rename { .. }
            | Command::Copy { .. }
            | Command::Expire { .. }
            | Command::Persist(_)
            | Command::DelIfExpired(_) => self.apply_string(wb, cmd, now),
            Command::FlushAll => self.flush_owned(wb, None),
            Command::FlushSlots(expect) => self.flush_owned(wb, Some(expect)),
            Command::Slots {
                op,
                ranges,
                fence,
                peer,
            } => self.apply_slots(wb, *op, ranges, *fence, *peer),
            Command::SlotsIngest { fence, records } => self.apply_ingest(wb, *fence, records),
            Command::SweepExpired { limit } => Reply::Int(self.sweep(wb, now, *limit)),
            Command::NodeAddr { id, addr } => self.record_node_addr(wb, *id, addr),
            Command::DbSize => Reply::Int(self.keys.max(0)),
            Command::Transaction { watches, body } => {
                self.apply_transaction(wb, watches, body, now)
            }
            Command::Hash(_)
            | Command::List(_)
            | Command::Sets(_)
            | Command::ZSet(_)
            | Command::Geo(_)
            | Command::Sort(_)
            | Command::Dump(_) => self.apply_collection(wb, cmd, now),
            Command::Bitmap(_) | Command::Hll(_) | Command::Lcs(_) => self.apply_bits(wb, cmd, now),
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
                // Served: slots a copy is bringing in are owned, not served.
                let served =
                    (!self.incoming.is_empty()).then(|| self.slots.difference(&self.incoming));
                reader
                    .read_inner(
                        &|k| Ok(self.raw(&data_key(k))),
                        read,
                        now,
                        &mut expired,
                        served.as_ref().unwrap_or(&self.slots),
                    )
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
        self.claims_written();
        self.budget.reset();
        self.overlay.clear();
        self.coll = Default::default();
        self.pieces_written();
        self.read_cache.get_mut().clear();
        self.watch_versions.batch_written();
        self.scripts_written();
        self.flushed = None;
        self.publish_slots();
        self.shared
            .keys
            .store(self.keys.max(0) as u64, Ordering::Release);
        self.shared
            .expires
            .store(self.expires.max(0) as u64, Ordering::Release);
        self.notify_pushed();
        self.notify_events();
    }
}

#[cfg(test)]
mod testgroup;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bits;
#[cfg(test)]
mod tests_coll;
#[cfg(test)]
mod tests_geo;
#[cfg(test)]
mod tests_groups;
#[cfg(test)]
mod tests_ingest;
#[cfg(test)]
mod tests_migrate;
#[cfg(test)]
mod tests_mset;
#[cfg(test)]
mod tests_notify;
#[cfg(test)]
mod tests_scale;
#[cfg(test)]
mod tests_script;
#[cfg(test)]
mod tests_slots;
#[cfg(test)]
mod tests_sortdump;
