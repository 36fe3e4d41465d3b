//! Unit tests of the collection wiring in the store: one overlay for strings and
//! collections within a batch, key counters, WRONGTYPE both ways, TYPE / SCAN TYPE, RENAME
//! of a collection, FLUSHALL of every family, SPOP seeded by the entry, the cleaner.

use super::*;
use crate::types::Cf;
use bytes::Bytes;

pub(crate) struct T {
    _dir: tempfile::TempDir,
    pub(crate) db: Arc<DB>,
    pub(crate) store: Store,
    index: u64,
}

fn open_db(path: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    tune_db_options(&mut opts);
    Arc::new(DB::open_cf_descriptors(&opts, path, column_family_descriptors()).unwrap())
}

pub(crate) fn cmd(s: &str) -> Command {
    let argv: Vec<Bytes> = s.split(' ').map(|w| Bytes::from(w.to_string())).collect();
    Command::parse_replicated(&argv).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

pub(crate) fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::from(s.to_string()))
}

impl T {
    pub(crate) fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        T {
            _dir: dir,
            db,
            store,
            index: 0,
        }
    }

    /// Applies commands as one entry of one batch at time 1000.
    pub(crate) fn batch(&mut self, cmds: &[&str]) -> Vec<Reply> {
        let mut wb = WriteBatch::default();
        self.index += 1;
        self.store.begin_entry_at(self.index);
        self.store.set_entry_index(self.index);
        let out = cmds
            .iter()
            .map(|c| self.store.apply(&mut wb, &cmd(c), 1000))
            .collect();
        self.finish(wb);
        out
    }

    /// Applies one parsed command as its own entry at time 1000.
    pub(crate) fn apply(&mut self, c: &Command) -> Reply {
        let mut wb = WriteBatch::default();
        self.index += 1;
        self.store.begin_entry_at(self.index);
        self.store.set_entry_index(self.index);
        let out = self.store.apply(&mut wb, c, 1000);
        self.finish(wb);
        out
    }

    fn finish(&mut self, mut wb: WriteBatch) {
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
    }

    pub(crate) fn w(&mut self, c: &str) -> Reply {
        self.batch(&[c]).remove(0)
    }

    pub(crate) fn r(&self, c: &str) -> Reply {
        self.store.reader().read(&cmd(c), 1000).0
    }

    fn count(&self, cf: &str) -> usize {
        let h = self.db.cf_handle(cf).unwrap();
        self.db.iterator_cf(h, rocksdb::IteratorMode::Start).count()
    }
}

pub(crate) const WRONGTYPE_ERR: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn strings_and_collections_share_one_overlay_in_a_batch() {
    let mut t = T::new();
    let out = t.batch(&[
        "SET k v",
        "HSET k f 1",
        "DEL k",
        "HSET k f 2",
        "HGET k f",
        "GET k",
    ]);
    assert_eq!(out[1], Reply::err(WRONGTYPE_ERR));
    assert_eq!(out[3], Reply::Int(1));
    assert_eq!(out[4], bulk("2"));
    assert_eq!(out[5], Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.r("DBSIZE"), Reply::Int(1));
    t.w("RPUSH l a b c");
    t.w("SADD s x");
    t.w("ZADD z 1.5 m");
    assert_eq!(t.r("DBSIZE"), Reply::Int(4));
    assert_eq!(t.w("DEL l s"), Reply::Int(2));
    assert_eq!(t.r("DBSIZE"), Reply::Int(2));
}

#[test]
fn wrongtype_both_ways_and_type_names() {
    let mut t = T::new();
    t.batch(&[
        "SET str v",
        "HSET h f v",
        "RPUSH l a",
        "SADD s m",
        "ZADD z 1 m",
    ]);
    for (k, ty) in [
        ("str", "string"),
        ("h", "hash"),
        ("l", "list"),
        ("s", "set"),
        ("z", "zset"),
    ] {
        assert_eq!(t.r(&format!("TYPE {k}")), Reply::Status(ty.into()));
    }
    assert_eq!(t.r("TYPE nope"), Reply::Status("none".into()));
    for c in [
        "INCR l",
        "APPEND h x",
        "GET s",
        "SETRANGE z 0 x",
        "INCRBYFLOAT h 1",
    ] {
        assert_eq!(t.w(c), Reply::err(WRONGTYPE_ERR), "{c}");
    }
    for c in [
        "HSET str f v",
        "LPUSH h x",
        "SADD l x",
        "ZADD s 1 x",
        "HGET z f",
        "LLEN str",
    ] {
        let r = if cmd(c).kind() == resp::Kind::Read {
            t.r(c)
        } else {
            t.w(c)
        };
        assert_eq!(r, Reply::err(WRONGTYPE_ERR), "{c}");
    }
    let Reply::Array(scan) = t.r("SCAN 0 COUNT 100 TYPE zset") else {
        panic!()
    };
    assert_eq!(scan[1], Reply::Array(vec![bulk("z")]));
}

#[test]
fn rename_moves_a_collections_elements() {
    let mut t = T::new();
    t.w("HSET src a 1 b 2");
    t.w("SET dst old");
    assert_eq!(t.w("RENAME src dst"), Reply::ok());
    assert_eq!(t.r("HLEN src"), Reply::Int(0));
    assert_eq!(t.r("HGET dst b"), bulk("2"));
    assert_eq!(t.r("TYPE dst"), Reply::Status("hash".into()));
    assert_eq!(t.r("DBSIZE"), Reply::Int(1));
}

#[test]
fn flushall_empties_every_family() {
    let mut t = T::new();
    t.batch(&["HSET h a 1", "ZADD z 1 m", "SET s v"]);
    assert!(t.count(types::CF_SUB) > 0 && t.count(types::CF_ZSCORE) > 0);
    let out = t.batch(&["FLUSHALL", "HLEN h", "ZCARD z"]);
    assert_eq!(&out[1..], &[Reply::Int(0), Reply::Int(0)]);
    assert_eq!((t.count(types::CF_SUB), t.count(types::CF_ZSCORE)), (0, 0));
    assert_eq!(t.r("DBSIZE"), Reply::Int(0));
}

#[test]
fn spop_is_seeded_by_the_entry() {
    let members = "SADD s a b c d e f g h i j k l m n o p";
    let popped = |_: ()| {
        let mut t = T::new();
        t.w(members);
        (0..3).map(|_| t.w("SPOP s")).collect::<Vec<_>>()
    };
    // Two stores applying the same entries pop the same members.
    assert_eq!(popped(()), popped(()));
}

#[test]
fn the_cleaner_removes_stale_versions() {
    let mut t = T::new();
    t.w("HSET h a 1 b 2 c 3");
    t.w("ZADD z 1 x 2 y");
    t.w("DEL h z");
    assert_eq!(t.count(types::CF_SUB), 5);
    let mut cursor = String::new();
    for _ in 0..10 {
        let Reply::Array(parts) = t.w(&format!("RAFTKV.CLEAN {cursor} 1")) else {
            panic!()
        };
        let Reply::Bulk(next) = &parts[0] else {
            panic!()
        };
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!((t.count(types::CF_SUB), t.count(types::CF_ZSCORE)), (0, 0));
    let _ = Cf::Sub;
}

#[test]
fn scan_cursors_are_integers_and_cover_everything() {
    let mut t = T::new();
    let fields: Vec<String> = (0..50).map(|i| format!("f{i} v")).collect();
    t.w(&format!("HSET h {}", fields.join(" ")));
    let (mut cursor, mut seen) = (0u64, std::collections::BTreeSet::new());
    loop {
        let Reply::Array(parts) = t.r(&format!("HSCAN h {cursor} COUNT 7")) else {
            panic!()
        };
        let (Reply::Bulk(c), Reply::Array(items)) = (&parts[0], &parts[1]) else {
            panic!()
        };
        for pair in items.chunks(2) {
            seen.insert(format!("{:?}", pair[0]));
        }
        cursor = std::str::from_utf8(c).unwrap().parse().unwrap();
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 50);
}

#[test]
fn collections_expire_and_persist_like_strings() {
    let mut t = T::new();
    t.w("HSET h a 1");
    assert_eq!(t.w("PEXPIRE h 500"), Reply::Int(1));
    assert_eq!(t.r("PTTL h"), Reply::Int(500));
    assert_eq!(t.r("HGET h a"), bulk("1"));
    assert_eq!(t.w("PERSIST h"), Reply::Int(1));
    assert_eq!(t.r("TTL h"), Reply::Int(-1));
    t.w("PEXPIRE h 10");
    // Expired at a later stamped time: gone for reads and for writes.
    assert_eq!(t.store.reader().read(&cmd("HLEN h"), 2000).0, Reply::Int(0));
    let mut wb = WriteBatch::default();
    assert_eq!(
        t.store.apply(&mut wb, &cmd("HSET h b 2"), 2000),
        Reply::Int(1)
    );
    assert_eq!(
        t.store.apply(&mut wb, &cmd("HGETALL h"), 2000),
        Reply::Map(vec![(bulk("b"), bulk("2"))])
    );
}

#[test]
fn reads_applied_with_writes_are_charged_to_the_entry() {
    let mut t = T::new();
    let big = "x".repeat(1 << 20);
    let mut wb = WriteBatch::default();
    t.store.begin_entry();
    assert_eq!(
        t.store
            .apply(&mut wb, &cmd(&format!("HSET h f {big}")), 1000),
        Reply::Int(1)
    );
    let mut refused = false;
    for _ in 0..600 {
        if t.store.apply(&mut wb, &cmd("HGETALL h"), 1000).is_error() {
            refused = true;
            break;
        }
    }
    assert!(refused, "512 MiB of replies in one entry must be refused");
}

#[test]
fn redis_checks_the_key_before_some_arguments() {
    let mut t = T::new();
    t.w("SET str v");
    // SMOVE from a missing set: 0, whatever the destination holds.
    assert_eq!(t.w("SMOVE nope str m"), Reply::Int(0));
    t.w("SADD s m");
    assert_eq!(t.w("SMOVE s str m"), Reply::err(WRONGTYPE_ERR));
    // LINDEX / LSET look the key up before they parse the index.
    assert_eq!(t.r("LINDEX nope x"), Reply::Nil);
    assert_eq!(t.r("LINDEX str x"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.w("LSET nope x v"), Reply::err("ERR no such key"));
    t.w("RPUSH l a");
    assert_eq!(
        t.r("LINDEX l x"),
        Reply::err("ERR value is not an integer or out of range")
    );
}

/// Records inserted into a family's memtable so far (duplicates too).
fn inserts(t: &T, cf: &str) -> u64 {
    let cf = t.db.cf_handle(cf).unwrap();
    t.db.property_int_value_cf(cf, "rocksdb.num-entries-active-mem-table")
        .unwrap()
        .unwrap()
}

#[test]
fn a_collection_write_stamps_its_watch_version_once_in_its_own_record() {
    let mut t = T::new();
    // The second HSET and LSET leave the metadata alone: their version is a rewrite of it.
    for c in [
        "HSET h f v",
        "HSET h f w",
        "ZADD z 1 m",
        "RPUSH l a",
        "LSET l 0 b",
    ] {
        let (data, kver) = (
            inserts(&t, crate::CF_DATA),
            inserts(&t, crate::txn::CF_KVER),
        );
        assert!(!t.w(c).is_error(), "{c}");
        assert_eq!(inserts(&t, crate::CF_DATA) - data, 1, "{c}");
        assert_eq!(inserts(&t, crate::txn::CF_KVER) - kver, 0, "{c}");
    }
}
