//! Test harness for slot ownership: group stores on one shared database, commands written
//! as text, keys picked by slot, and a byte dump of what belongs to one group (computed
//! independently of the snapshot code's ranges, so tests can check those).

use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, Reply};
use rocksdb::{WriteBatch, DB};

use crate::slots::{slot_of, SlotSet};
use crate::{column_families, column_family_descriptors, key_slot, tune_db_options};
use crate::{txn, Reader, Store, CF_EXPIRE, CF_META};

/// The stamped time every command of these tests applies at.
pub(crate) const NOW: i64 = 1_000_000;

pub(crate) fn open_db(path: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    tune_db_options(&mut opts);
    Arc::new(DB::open_cf_descriptors(&opts, path, column_family_descriptors()).unwrap())
}

pub(crate) fn argv(s: &str) -> Vec<Bytes> {
    s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
}

/// A replicated command from its text (words split on single spaces).
pub(crate) fn cmd(s: &str) -> Command {
    Command::parse_replicated(&argv(s)).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

pub(crate) fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::from(s.to_string()))
}

pub(crate) fn set(text: &str) -> SlotSet {
    SlotSet::parse(text).unwrap()
}

/// The reply for a key of another group's slot.
pub(crate) fn refused(key: &str) -> Reply {
    crate::slots::tryagain(key_slot(key.as_bytes()))
}

/// `n` keys `<prefix><i>` whose slots are in `slots`.
pub(crate) fn keys_in(slots: &SlotSet, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| slots.contains(key_slot(k.as_bytes())))
        .take(n)
        .collect()
}

/// Sorted bulk strings of a reply array (KEYS, a SCAN page's keys).
pub(crate) fn sorted_keys(r: &Reply) -> Vec<String> {
    let Reply::Array(items) = r else {
        panic!("not an array: {r:?}");
    };
    let mut out: Vec<String> = items
        .iter()
        .map(|i| match i {
            Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect();
    out.sort();
    out
}

/// SCAN's reply as (next cursor, keys).
pub(crate) fn scan_page(r: &Reply) -> (u64, Vec<String>) {
    match r {
        Reply::Array(parts) => match parts.as_slice() {
            [Reply::Bulk(c), keys] => (
                std::str::from_utf8(c).unwrap().parse().unwrap(),
                sorted_keys(keys),
            ),
            _ => panic!("bad SCAN reply {r:?}"),
        },
        _ => panic!("bad SCAN reply {r:?}"),
    }
}

/// Every record of `db` that is `group`'s when it owns `slots`: the slot-keyed families'
/// records of those slots, `group`'s flush epoch, its `meta` and expiry-index prefixes.
pub(crate) fn dump_group(db: &DB, group: u64, slots: &SlotSet) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let prefix = group.to_be_bytes();
    let mut out = Vec::new();
    for name in column_families() {
        let cf = db.cf_handle(name).unwrap();
        let mut it = db.raw_iterator_cf_opt(cf, crate::total_order());
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (k, v) = (k.to_vec(), v.to_vec());
            it.next();
            let mine = match name {
                CF_META | CF_EXPIRE => k.starts_with(&prefix),
                txn::CF_KVER => match &k[..] {
                    [0xff, rest @ ..] => rest == prefix,
                    [0xfe, rest @ ..] => slots.contains(slot_of(rest)),
                    _ => slots.contains(slot_of(&k)),
                },
                _ => slots.contains(slot_of(&k)),
            };
            if mine {
                out.push((name.to_string(), k, v));
            }
        }
    }
    out
}

/// One group's store on a shared database.
pub(crate) struct G {
    pub db: Arc<DB>,
    pub store: Store,
    pub reader: Reader,
    pub index: u64,
}

impl G {
    /// Opens group `group` on `db` with `initial` slots (text form).
    pub fn open(db: &Arc<DB>, group: u64, initial: &str) -> G {
        let store = Store::open(db.clone(), group, set(initial)).unwrap();
        G {
            db: db.clone(),
            reader: store.reader(),
            store,
            index: 0,
        }
    }

    /// Applies each command as its own entry, all in one batch, at [`NOW`].
    pub fn batch_of(&mut self, cmds: &[Command]) -> Vec<Reply> {
        let mut wb = WriteBatch::default();
        let mut out = Vec::new();
        for c in cmds {
            self.index += 1;
            self.store.begin_entry_at(self.index);
            self.store.set_entry_index(self.index);
            out.push(self.store.apply(&mut wb, c, NOW));
        }
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
        out
    }

    /// [`G::batch_of`] of commands as text.
    pub fn batch(&mut self, cmds: &[&str]) -> Vec<Reply> {
        let cmds: Vec<Command> = cmds.iter().map(|c| cmd(c)).collect();
        self.batch_of(&cmds)
    }

    /// The migration's `RAFTKV.SLOTS.SEAL` (the target serves `slots` from then on).
    pub fn seal(&mut self, fence: u64, slots: &str) {
        let r = self.w(&format!("RAFTKV.SLOTS.SEAL FENCE {fence} {slots}"));
        assert!(matches!(r, Reply::Int(_)), "{r:?}");
    }

    pub fn w(&mut self, c: &str) -> Reply {
        self.batch(&[c]).remove(0)
    }

    /// A read at `now`.
    pub fn r_at(&self, c: &str, now: i64) -> Reply {
        self.reader.read(&cmd(c), now).0
    }

    pub fn r(&self, c: &str) -> Reply {
        self.r_at(c, NOW)
    }

    /// (keys, keys with a TTL) as the readers' counters say.
    pub fn counts(&self) -> (u64, u64) {
        (self.reader.key_count(), self.reader.expires_count())
    }

    /// The due keys at `now`, sorted.
    pub fn due(&self, now: i64) -> Vec<String> {
        let mut v: Vec<String> = self
            .reader
            .due_keys(now, 100_000)
            .iter()
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        v.sort();
        v
    }
}

/// Groups 1 (all slots) and 2 (none) on one database and one claims registry.
pub(crate) fn two_groups() -> (tempfile::TempDir, G, G) {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let claims = crate::claims::Claims::new();
    let mut a = G::open(&db, 1, "0-16383");
    let mut b = G::open(&db, 2, "");
    a.store.set_claims(claims.clone()).unwrap();
    b.store.set_claims(claims).unwrap();
    (dir, a, b)
}
