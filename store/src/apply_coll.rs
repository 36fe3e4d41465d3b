//! The store's apply path for collections: the hash, list, set and sorted-set families,
//! geo, SORT and DUMP / RESTORE (through [`Applier`], one overlay with the strings), RENAME of a collection, and the
//! background cleaner's `RAFTKV.CLEAN` (see [`crate::types::clean`]). Kept out of `lib.rs`.

use resp::{Command, DumpOp, GeoOp, Kind, ListOp, Reply, ZSetOp};
use rocksdb::WriteBatch;

use crate::applier::{apply_error, Applier};
use crate::cmd_common::reply_size;
use crate::types::clean::{self, Cursor};
use crate::types::{keyspace, Read, Rng, Write};
use crate::{cmd_dump, cmd_geo, cmd_hash, cmd_list, cmd_set, cmd_sort, cmd_zset, Store};

/// The list or sorted-set keys a write may have given elements (what wakes blocked pops;
/// pops and removals never do).
fn added_to(cmd: &Command) -> Vec<&[u8]> {
    let found = match cmd {
        Command::List(c) => match &c.op {
            ListOp::Push { .. } | ListOp::Insert { .. } => c.args.first(),
            ListOp::Move { dst, .. } => Some(dst),
            _ => None,
        },
        Command::ZSet(c) => match &c.op {
            ZSetOp::Add { .. } | ZSetOp::IncrBy(..) => c.args.first(),
            ZSetOp::Range { store: Some(d), .. } | ZSetOp::Algebra { store: Some(d), .. } => {
                Some(d)
            }
            _ => None,
        },
        Command::Geo(c) => match &c.op {
            GeoOp::Add { .. } => c.args.first(),
            GeoOp::Search { q, .. } => q.store.as_ref(),
            _ => None,
        },
        Command::Sort(c) => c.op.store.as_ref(),
        Command::Dump(c) => match c.op {
            DumpOp::Restore { .. } => c.args.first(),
            DumpOp::Dump => None,
        },
        _ => None,
    };
    found.map(|k| &k[..]).into_iter().collect()
}

/// Hex text of bytes (the cleaner's cursor travels as text in the log).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of hex text; `None` if it is not hex.
pub fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

impl Store {
    /// The Raft entry about to be applied (its index seeds the entry's random choices).
    pub fn set_entry_index(&mut self, index: u64) {
        self.seed_index = index;
        self.seed_pos = 0;
    }

    /// A seed for one command's random choices (SPOP): the entry index and the command's
    /// position in it, the same on every replica.
    pub(crate) fn next_seed(&mut self) -> u64 {
        self.seed_pos += 1;
        Rng::new(self.seed_index.rotate_left(20) ^ self.seed_pos).next_u64()
    }

    /// Applies a collection command (a write, or a read replicated with writes).
    pub(crate) fn apply_collection(
        &mut self,
        wb: &mut WriteBatch,
        cmd: &Command,
        now: i64,
    ) -> Reply {
        let seed = self.next_seed();
        let read = cmd.kind() == Kind::Read;
        if !read {
            // The values a write names (its arguments) before it stages them.
            let (_, args) = cmd.entry();
            let cost = (1..args.argc())
                .filter_map(|i| args.get(i))
                .map(|a| a.len())
                .fold(0, usize::saturating_add);
            if let Err(refused) = self.budget.charge(cost) {
                return refused;
            }
        }
        let mut a = Applier::new(self, wb, now);
        let r = match cmd {
            Command::Hash(c) if read => cmd_hash::read(&a, c),
            Command::Hash(c) => cmd_hash::write(&mut a, c),
            Command::List(c) if read => cmd_list::read(&a, c),
            Command::List(c) => cmd_list::write(&mut a, c),
            Command::Sets(c) if read => cmd_set::read(&a, c),
            Command::Sets(c) => cmd_set::write(&mut a, c, seed),
            Command::ZSet(c) if read => cmd_zset::read(&a, c),
            Command::ZSet(c) => cmd_zset::write(&mut a, c),
            Command::Geo(c) if read => cmd_geo::read(&a, c),
            Command::Geo(c) => cmd_geo::write(&mut a, c),
            Command::Sort(c) if read => cmd_sort::read(&a, c),
            Command::Sort(c) => cmd_sort::write(&mut a, c),
            Command::Dump(c) if read => cmd_dump::read(&a, c),
            Command::Dump(c) => cmd_dump::write(&mut a, c),
            other => {
                return Reply::err(format!(
                    "ERR '{}' is not a collection command",
                    other.name()
                ))
            }
        };
        let reply = r.unwrap_or_else(apply_error);
        if !read && !reply.is_error() {
            // WATCH sees every change of a collection, also one that rewrote only element
            // records (HSET of an existing field, LSET, a ZADD score update): the key's
            // version moves whenever a write to it succeeded and it still exists.
            for key in cmd.keys() {
                let dkey = crate::data_key(key);
                if !self.touched_now(&dkey) && self.raw_header(&dkey).is_some() {
                    self.touch(wb, &dkey);
                }
            }
        }
        if !matches!(
            reply,
            Reply::Error(_) | Reply::Nil | Reply::NilArray | Reply::Int(0)
        ) {
            self.pushed
                .extend(added_to(cmd).into_iter().map(<[u8]>::to_vec));
        }
        if read {
            // Every replica computes a read applied with writes: its reply is charged.
            if let Err(refused) = self.budget.charge(reply_size(&reply)) {
                return refused;
            }
        }
        reply
    }

    /// Tells the push listener (if any) which list and sorted-set keys the written batch
    /// changed, each once.
    pub(crate) fn notify_pushed(&mut self) {
        if self.pushed.is_empty() {
            return;
        }
        let mut keys = std::mem::take(&mut self.pushed);
        keys.sort();
        keys.dedup();
        let listener = self
            .shared
            .push_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(f) = listener {
            keys.iter().for_each(|k| f(crate::Applied::Pushed(k)));
        }
    }

    /// After a snapshot restore any key may hold new elements: the listener hears so.
    pub(crate) fn notify_restored(&self) {
        let listener = self.shared.push_listener.lock();
        if let Some(f) = listener.unwrap_or_else(|p| p.into_inner()).clone() {
            f(crate::Applied::Restored);
        }
    }

    /// RENAME of a live collection: its records are copied under a new version (O(n), as
    /// kvrocks), then the source's metadata is deleted (its records go to the cleaner).
    pub(crate) fn rename_collection(
        &mut self,
        wb: &mut WriteBatch,
        src: &[u8],
        dst: &[u8],
        now: i64,
    ) -> Reply {
        self.pushed.push(dst.to_vec());
        let mut a = Applier::new(self, wb, now);
        match keyspace::copy(&mut a, src, dst).and_then(|_| a.del_data(src)) {
            Ok(()) => Reply::ok(),
            Err(e) => apply_error(e),
        }
    }

    /// `RAFTKV.CLEAN cursor limit`: one bounded step of the cleaner. Replies
    /// `[next cursor (hex, empty when the pass is done), records deleted]`.
    pub(crate) fn apply_clean(
        &mut self,
        wb: &mut WriteBatch,
        cursor: &[u8],
        limit: u64,
        now: i64,
    ) -> Reply {
        let cursor = match unhex(cursor) {
            Some(b) if b.is_empty() => Cursor::default(),
            Some(b) => match Cursor::decode(&b) {
                Some(c) => c,
                None => return Reply::err("ERR invalid cleaner cursor"),
            },
            None => return Reply::err("ERR invalid cleaner cursor"),
        };
        let slots = self.slots.clone();
        let mut a = Applier::new(self, wb, now);
        debug_assert!(a.now() == now);
        match clean::clean(&mut a, &cursor, limit.min(10_000), &slots) {
            Ok(rep) => Reply::Array(vec![
                Reply::bulk(rep.next.map(|c| hex(&c.encode())).unwrap_or_default()),
                Reply::Int(i64::try_from(rep.deleted).unwrap_or(i64::MAX)),
            ]),
            Err(e) => apply_error(e),
        }
    }
}
