//! Unit tests of MSET / MSETNX's batched path (one multi-get for the old values, see
//! `prefetch`): duplicate keys, keys with a TTL or expired, keys of other types, keys the
//! batch staged or flushed already, the key and TTL counters and the expiry index after,
//! WATCH versions, and MSET inside transactions and scripts (also rolled back).

use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, Reply, WatchedKey};
use rocksdb::{WriteBatch, DB};

use crate::testgroup::{argv, bulk, cmd, open_db};
use crate::{data_key, Reader, Store};

struct T {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    store: Store,
    reader: Reader,
    index: u64,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        T {
            _dir: dir,
            reader: store.reader(),
            db,
            store,
            index: 0,
        }
    }

    /// Applies each command (as text) as its own entry, all in one batch, at time `now`.
    fn batch(&mut self, cmds: &[&str], now: i64) -> Vec<Reply> {
        let cmds: Vec<Command> = cmds.iter().map(|c| cmd(c)).collect();
        self.batch_of(&cmds, now)
    }

    fn batch_of(&mut self, cmds: &[Command], now: i64) -> Vec<Reply> {
        let mut wb = WriteBatch::default();
        let mut out = Vec::new();
        for c in cmds {
            self.index += 1;
            self.store.begin_entry_at(self.index);
            self.store.set_entry_index(self.index);
            out.push(self.store.apply(&mut wb, c, now));
        }
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
        out
    }

    fn w(&mut self, c: &str, now: i64) -> Reply {
        self.batch(&[c], now).remove(0)
    }

    fn r(&self, c: &str, now: i64) -> Reply {
        self.reader.read(&cmd(c), now).0
    }

    /// (keys, keys with a TTL) as the readers' counters say.
    fn counts(&self) -> (u64, u64) {
        (self.reader.key_count(), self.reader.expires_count())
    }

    /// Keys due by `now` in the expiry index, sorted.
    fn due(&self, now: i64) -> Vec<String> {
        let mut v: Vec<String> = (self.reader.due_keys(now, 1000).iter())
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        v.sort();
        v
    }

    fn watch(&self, keys: &str, now: i64) -> Vec<WatchedKey> {
        self.reader.watch_versions(&argv(keys), now).unwrap()
    }
}

fn exec(watches: &[WatchedKey], body: &[&str]) -> Command {
    let body: Vec<Vec<Bytes>> = body.iter().map(|c| argv(c)).collect();
    Command::parse_replicated(&Command::exec_argv(watches, &body)).unwrap()
}

#[test]
fn mset_with_a_key_twice_keeps_the_last_value_and_counts_it_once() {
    let mut t = T::new();
    assert_eq!(t.w("MSET a 1 b 2 a 3", 10), Reply::ok());
    assert_eq!(
        t.r("MGET a b", 10),
        Reply::Array(vec![bulk("3"), bulk("2")])
    );
    assert_eq!(t.counts(), (2, 0));
    assert_eq!(t.r("DBSIZE", 10), Reply::Int(2));
    // Twice again, over present keys.
    assert_eq!(t.w("MSET a 4 a 5 c 6 c 7", 10), Reply::ok());
    assert_eq!(
        t.r("MGET a c", 10),
        Reply::Array(vec![bulk("5"), bulk("7")])
    );
    assert_eq!(t.counts(), (3, 0));
}

#[test]
fn mset_clears_ttls_and_their_index_entries_and_counts_expired_keys_once() {
    let mut t = T::new();
    t.batch(
        &["SET t v PX 1000", "SET e v PX 5", "SET keep v PX 1000"],
        10,
    );
    assert_eq!(t.counts(), (3, 3));
    // At 100 `e` has expired but is still present: it is overwritten, not created.
    assert_eq!(t.w("MSET t x e y n z", 100), Reply::ok());
    assert_eq!(t.counts(), (4, 1));
    assert_eq!(t.r("PTTL t", 100), Reply::Int(-1));
    assert_eq!(t.r("PTTL e", 100), Reply::Int(-1));
    assert_eq!(
        t.r("MGET t e n", 100),
        Reply::Array(vec![bulk("x"), bulk("y"), bulk("z")])
    );
    assert_eq!(t.due(i64::MAX), vec!["keep".to_string()]);
    // MSETNX treats the expired key as absent, and its TTL goes too.
    t.w("SET f v PX 5", 100);
    assert_eq!(t.counts(), (5, 2));
    assert_eq!(t.w("MSETNX f 1 g 2", 200), Reply::Int(1));
    assert_eq!(t.counts(), (6, 1));
    assert_eq!(t.r("PTTL f", 200), Reply::Int(-1));
    assert_eq!(t.due(i64::MAX), vec!["keep".to_string()]);
}

#[test]
fn mset_overwrites_keys_of_other_types() {
    let mut t = T::new();
    t.batch(&["HSET h f v", "RPUSH l a b", "SADD s m", "ZADD z 1 m"], 10);
    assert_eq!(t.counts(), (4, 0));
    assert_eq!(t.w("MSET h 1 l 2 s 3 z 4", 10), Reply::ok());
    assert_eq!(t.counts(), (4, 0));
    for (k, v) in [("h", "1"), ("l", "2"), ("s", "3"), ("z", "4")] {
        assert_eq!(
            t.r(&format!("TYPE {k}"), 10),
            Reply::Status("string".into())
        );
        assert_eq!(t.r(&format!("GET {k}"), 10), bulk(v));
    }
    // The old collections are gone for their readers.
    assert_eq!(t.r("HGET h f", 10), Reply::err(crate::WRONGTYPE));
    assert_eq!(t.w("HSET h2 f v", 10), Reply::Int(1));
    assert_eq!(t.w("MSETNX h2 1 new 2", 10), Reply::Int(0));
    assert_eq!(t.r("TYPE h2", 10), Reply::Status("hash".into()));
    assert_eq!(t.r("EXISTS new", 10), Reply::Int(0));
}

#[test]
fn mset_sees_the_batch_s_earlier_writes_and_flushes() {
    let mut t = T::new();
    t.batch(&["SET old v"], 10);
    let r = t.batch(
        &[
            "SET a x PX 1000",
            "DEL old",
            "MSET a 1 old 2 b 3",
            "MSETNX b 9 c 9",
            "MGET a old b c",
        ],
        10,
    );
    assert_eq!(r[2], Reply::ok());
    assert_eq!(r[3], Reply::Int(0));
    assert_eq!(
        r[4],
        Reply::Array(vec![bulk("1"), bulk("2"), bulk("3"), Reply::Nil])
    );
    assert_eq!(t.counts(), (3, 0));
    assert!(t.due(i64::MAX).is_empty());
    // Values read for one MSET, then a FLUSHALL, then MSET again in the same batch.
    let r = t.batch(
        &["MSET a 1 d 2", "FLUSHALL", "MSET a 3 e 4", "MSETNX d 5 f 6"],
        10,
    );
    assert_eq!(r[3], Reply::Int(1));
    assert_eq!(t.counts(), (4, 0));
    assert_eq!(
        t.r("MGET a d e f b", 10),
        Reply::Array(vec![bulk("3"), bulk("5"), bulk("4"), bulk("6"), Reply::Nil])
    );
}

#[test]
fn mset_reads_its_old_values_in_one_multi_get() {
    let mut t = T::new();
    t.batch(&["SET a 1", "SET b 2"], 10);
    let mut wb = WriteBatch::default();
    t.store.begin_entry_at(100);
    t.store.apply(&mut wb, &cmd("SET c 3"), 10);
    let dkeys: Vec<Vec<u8>> = ["a", "b", "c", "d", "a"]
        .iter()
        .map(|k| data_key(k.as_bytes()))
        .collect();
    t.store.prefetch(&dkeys);
    // `a` once; `c` only by the SET's own lookup (before it was staged).
    let cache = t.store.read_cache.borrow();
    let mut read: Vec<&[u8]> = cache.keys().map(|k| &k[2..]).collect();
    read.sort();
    assert_eq!(read, vec![&b"a"[..], b"b", b"c", b"d"]);
    assert_eq!(cache[&data_key(b"c")], None);
    assert_eq!(cache[&data_key(b"d")], None);
    assert_eq!(
        cache[&data_key(b"a")]
            .as_deref()
            .map(|v| &v[crate::HEADER..]),
        Some(&b"1"[..])
    );
}

#[test]
fn mset_gives_each_key_the_entry_s_version_and_aborts_watchers() {
    let mut t = T::new();
    t.batch(&["SET a 1", "SET b 1"], 10);
    let w = t.watch("a b c", 10);
    t.w("MSET a 1 c 1 a 2", 10);
    let mset_index = t.index;
    let now = t.watch("a b c", 10);
    // Versions as WATCH reports them: the entry index tagged with the group (see txn).
    let tagged = |i: u64| crate::txn::tagged(1, i);
    assert_eq!(now[0].version, tagged(mset_index));
    assert_eq!(now[1].version, w[1].version);
    assert_eq!(now[2].version, tagged(mset_index));
    assert!(now.iter().all(|k| k.live));
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        let r = t.batch_of(&[exec(&w[i..=i], &["SET done yes"])], 10);
        let aborted = r == vec![Reply::NilArray];
        assert_eq!(aborted, *k != "b", "{k}");
    }
    // A failed MSETNX changes no version.
    let w = t.watch("a x", 10);
    assert_eq!(t.w("MSETNX a 9 x 9", 10), Reply::Int(0));
    assert_eq!(t.watch("a x", 10), w);
}

/// Records inserted into a family's memtable so far (duplicates too).
fn inserts(t: &T, cf: &str) -> u64 {
    let cf = t.db.cf_handle(cf).unwrap();
    t.db.property_int_value_cf(cf, "rocksdb.num-entries-active-mem-table")
        .unwrap()
        .unwrap()
}

#[test]
fn mset_stamps_each_record_with_its_version_and_writes_no_version_record() {
    let mut t = T::new();
    t.batch(
        &[
            "SET s 1",
            "SET t 1 PX 50",
            "SET e 1 PX 5",
            "HSET h f v",
            "RPUSH l a",
        ],
        10,
    );
    assert_eq!(t.counts(), (5, 2));
    let w = t.watch("s t e h l n u", 20);
    let (data, kver) = (
        inserts(&t, crate::CF_DATA),
        inserts(&t, crate::txn::CF_KVER),
    );
    t.w("MSET s 2 t 2 e 2 h 2 l 2 n 2", 20);
    let index = t.index;
    // One data record per key (and the expiry index entries it drops), no version record.
    assert_eq!(inserts(&t, crate::CF_DATA) - data, 6);
    assert_eq!(inserts(&t, crate::txn::CF_KVER) - kver, 0);
    assert_eq!(t.counts(), (6, 0));
    for k in ["s", "t", "e", "h", "l", "n"] {
        let raw = t.db.get_cf(
            t.db.cf_handle(crate::CF_DATA).unwrap(),
            data_key(k.as_bytes()),
        );
        let raw = raw.unwrap().unwrap();
        assert_eq!(
            crate::value::stamp_of(&raw),
            Some(crate::txn::tagged(1, index)),
            "{k}"
        );
        assert_eq!(&raw[crate::HEADER..], b"2", "{k}");
        assert_eq!(
            t.r(&format!("TYPE {k}"), 20),
            Reply::Status("string".into())
        );
    }
    let now = t.watch("s t e h l n u", 20);
    for (i, k) in ["s", "t", "e", "h", "l", "n", "u"].iter().enumerate() {
        assert_eq!(now[i].version == w[i].version, *k == "u", "{k}");
        let r = t.batch_of(&[exec(&w[i..=i], &["SET done yes"])], 20);
        assert_eq!(r == vec![Reply::NilArray], *k != "u", "{k}");
    }
}

#[test]
fn mset_in_a_transaction_and_in_scripts_also_rolled_back() {
    let mut t = T::new();
    t.batch(&["SET k old PX 1000"], 10);
    let r = t.batch_of(&[exec(&[], &["MSET k 1 {k}2 2 k 3", "MGET k {k}2"])], 10);
    assert_eq!(
        r,
        vec![Reply::Array(vec![
            Reply::ok(),
            Reply::Array(vec![bulk("3"), bulk("2")])
        ])]
    );
    assert_eq!(t.counts(), (2, 0));
    let script = "return redis.call('mset', KEYS[1], 'a', KEYS[2], 'b', KEYS[1], 'c')";
    assert_eq!(
        t.batch_of(&[eval(script, &["k", "{k}3"])], 10),
        vec![Reply::ok()]
    );
    assert_eq!(t.counts(), (3, 0));
    assert_eq!(
        t.r("MGET k {k}3", 10),
        Reply::Array(vec![bulk("c"), bulk("b")])
    );
    // A runaway script's MSET is rolled back with it; the batch's next MSET sees the
    // values from before it.
    let runaway = "redis.call('mset', KEYS[1], 'x', KEYS[2], 'y') while true do end";
    let r = t.batch_of(
        &[eval(runaway, &["k", "{k}4"]), cmd("MSET {k}4 z {k}5 w")],
        10,
    );
    assert!(
        matches!(&r[0], Reply::Error(e) if e.contains("Lua instructions")),
        "{r:?}"
    );
    assert_eq!(r[1], Reply::ok());
    assert_eq!(t.counts(), (5, 0));
    assert_eq!(
        t.r("MGET k {k}4 {k}5", 10),
        Reply::Array(vec![bulk("c"), bulk("z"), bulk("w")])
    );
}

fn eval(script: &str, keys: &[&str]) -> Command {
    let mut a = vec![
        Bytes::from("EVAL"),
        Bytes::from(script.to_string()),
        Bytes::from(keys.len().to_string()),
    ];
    a.extend(keys.iter().map(|k| Bytes::from(k.to_string())));
    Command::parse(&a).unwrap()
}

#[test]
fn mset_raises_set_per_pair_with_notifications_on_and_counts_alike() {
    use std::sync::Mutex;
    let mut t = T::new();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    t.reader
        .set_push_listener(Arc::new(move |applied: crate::Applied<'_>| {
            if let crate::Applied::Events(evs) = applied {
                let mut s = s.lock().unwrap();
                s.extend(
                    evs.iter()
                        .map(|e| format!("{} {}", e.name, String::from_utf8_lossy(&e.key))),
                );
            }
        }));
    t.reader
        .set_notify_flags(crate::notify::KEYEVENT | crate::notify::ALL);
    t.batch(&["SET t v PX 1000", "HSET h f v"], 10);
    seen.lock().unwrap().clear();
    // The lookups before and after the write (one multi-get) do not change what it does.
    assert_eq!(t.w("MSET t 1 h 2 t 3 n 4", 10), Reply::ok());
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["set t", "set h", "set t", "set n"]
    );
    assert_eq!(t.counts(), (3, 0));
    assert_eq!(
        t.r("MGET t h n", 10),
        Reply::Array(vec![bulk("3"), bulk("2"), bulk("4")])
    );
    assert!(t.due(i64::MAX).is_empty());
    assert_eq!(t.w("DEL t h missing", 10), Reply::Int(2));
    assert_eq!(seen.lock().unwrap()[4..], ["del t", "del h"]);
}
