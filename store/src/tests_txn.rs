//! Unit tests of transactions in the store: WATCH versions through modifications, deletes,
//! expiry and FLUSHALL; EXEC's body applied in order with runtime errors in the array; the
//! check seeing earlier entries of the same batch; the epoch surviving a reopen.

use std::sync::Arc;

use bytes::Bytes;
use resp::{Command, Reply, WatchedKey};
use rocksdb::{WriteBatch, DB};

use crate::{column_family_descriptors, tune_db_options, Store};

struct T {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    store: Store,
    index: u64,
}

fn open_db(path: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    tune_db_options(&mut opts);
    Arc::new(DB::open_cf_descriptors(&opts, path, column_family_descriptors()).unwrap())
}

fn argv(s: &str) -> Vec<Bytes> {
    s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
}

fn cmd(s: &str) -> Command {
    Command::parse_replicated(&argv(s)).unwrap()
}

fn exec(watches: &[WatchedKey], body: &[&str]) -> Command {
    let body: Vec<Vec<Bytes>> = body.iter().map(|c| argv(c)).collect();
    Command::parse_replicated(&Command::exec_argv(watches, &body)).unwrap()
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::from(s.to_string()))
}

impl T {
    fn new() -> T {
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

    /// Applies each command as its own entry, all in one batch, at time `now`.
    fn batch(&mut self, cmds: &[Command], now: i64) -> Vec<Reply> {
        let mut wb = WriteBatch::default();
        let mut out = Vec::new();
        for c in cmds {
            self.index += 1;
            self.store.begin_entry_at(self.index);
            out.push(self.store.apply(&mut wb, c, now));
        }
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
        out
    }

    fn w(&mut self, c: &str, now: i64) -> Reply {
        self.batch(&[cmd(c)], now).remove(0)
    }

    fn watch(&self, keys: &str, now: i64) -> Vec<WatchedKey> {
        self.store
            .reader()
            .watch_versions(&argv(keys), now)
            .unwrap()
    }

    fn get(&self, k: &str) -> Reply {
        self.store
            .reader()
            .read(&Command::Get(argv(k).remove(0)), 0)
            .0
    }
}

#[test]
fn exec_runs_the_body_in_order_when_nothing_changed() {
    let mut t = T::new();
    t.w("SET a 1", 10);
    let w = t.watch("a nosuch", 10);
    assert!(w[0].live && !w[1].live);
    // Other keys changing does not matter.
    t.w("SET other 1", 10);
    let r = t.batch(
        &[exec(
            &w,
            &[
                "SET a 2",
                "GET a",
                "HSET-LIKE",
                "INCR a",
                "SET b x",
                "INCR b",
            ],
        )],
        10,
    );
    let Reply::Array(rs) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(rs[0], Reply::ok());
    assert_eq!(rs[1], bulk("2"));
    // A command the body cannot parse, and a runtime error, do not stop the rest.
    assert!(matches!(&rs[2], Reply::Error(e) if e.starts_with("ERR unknown command")));
    assert_eq!(rs[3], Reply::Int(3));
    assert_eq!(rs[4], Reply::ok());
    assert_eq!(
        rs[5],
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.get("b"), bulk("x"));
}

#[test]
fn any_modification_after_watch_aborts_and_nothing_runs() {
    let mut t = T::new();
    t.w("SET a 1", 10);
    for change in [
        "SET a 1",
        "DEL a",
        "EXPIRE a 100",
        "APPEND a x",
        "RENAME a z",
    ] {
        t.w("SET a 1", 10);
        let w = t.watch("a", 10);
        t.w(change, 10);
        let r = t.batch(&[exec(&w, &["SET done yes"])], 10);
        assert_eq!(r, vec![Reply::NilArray], "{change}");
        assert_eq!(t.get("done"), Reply::Nil, "{change}");
    }
    // Commands that change nothing do not abort (a failed NX, a read, TOUCH).
    t.w("SET a 1", 10);
    let w = t.watch("a", 10);
    t.batch(&[cmd("SET a 2 NX"), cmd("GET a"), cmd("TOUCH a")], 10);
    let r = t.batch(&[exec(&w, &["GET a"])], 10);
    assert_eq!(r, vec![Reply::Array(vec![bulk("1")])]);
}

#[test]
fn a_key_created_and_deleted_again_after_watch_aborts() {
    let mut t = T::new();
    let w = t.watch("x", 10);
    assert!(!w[0].live);
    t.w("SET x 1", 10);
    t.w("DEL x", 10);
    assert_eq!(t.batch(&[exec(&w, &["PING"])], 10)[0], Reply::NilArray);
}

#[test]
fn expiry_after_watch_aborts_but_deleting_an_already_expired_key_does_not() {
    let mut t = T::new();
    t.w("SET k v PX 100", 1000);
    let w = t.watch("k", 1000);
    // Expired by time alone, not deleted yet.
    assert_eq!(t.batch(&[exec(&w, &["PING"])], 2000)[0], Reply::NilArray);
    // Created with a TTL after WATCH, expired and deleted by lazy expiry before EXEC.
    let w = t.watch("j", 3000);
    t.w("SET j v PX 100", 3000);
    assert_eq!(t.w("RAFTKV.DELIFEXPIRED j", 3600), Reply::Int(1));
    assert_eq!(t.batch(&[exec(&w, &["PING"])], 3700)[0], Reply::NilArray);
    // Expired at WATCH, then deleted by lazy expiry: logically no change (Redis 7.0).
    t.w("SET i v PX 100", 5000);
    let w = t.watch("i", 5500);
    assert!(!w[0].live);
    assert_eq!(t.w("RAFTKV.DELIFEXPIRED i", 5600), Reply::Int(1));
    let r = t.batch(&[exec(&w, &["GET i"])], 5700);
    assert_eq!(r[0], Reply::Array(vec![Reply::Nil]));
}

#[test]
fn records_are_kept_for_keys_deleted_after_expiry_only() {
    let mut t = T::new();
    for i in 0..200 {
        t.w(&format!("SET k{i} v"), 10);
        t.w(&format!("DEL k{i}"), 10);
    }
    // A present key's version is its record's stamp; one deleted after it expired keeps
    // its stamp as a `kver` record (written again: the stamp is the version once more).
    t.w("SET kept v", 10);
    t.w("SET gone v PX 5", 10);
    assert_eq!(t.w("RAFTKV.DELIFEXPIRED gone", 20), Reply::Int(1));
    t.w("SET back v PX 5", 20);
    assert_eq!(t.w("RAFTKV.DELIFEXPIRED back", 30), Reply::Int(1));
    let w = t.watch("back", 30);
    t.w("SET back v2", 30);
    assert_ne!(t.watch("back", 30), w);
    let (mut keys, mut slots) = (0, 0);
    {
        let cf = t.db.cf_handle(super::CF_KVER).unwrap();
        // The family's memtable is hashed: only a total-order iterator sees every key.
        let mut it = t.db.raw_iterator_cf_opt(cf, crate::total_order());
        it.seek_to_first();
        while let Some(k) = it.key() {
            if k[0] == 0xfe {
                slots += 1;
            } else {
                keys += 1;
            }
            it.next();
        }
    }
    assert_eq!(keys, 2, "gone and back");
    assert!(slots > 0 && slots <= 200, "{slots}");
    // A deletion in another slot leaves an absent key's version alone; one in its own slot
    // moves it (a spurious but safe abort).
    let w = t.watch("nosuch", 10);
    let same_slot = (0..100_000)
        .map(|i| format!("x{i}"))
        .find(|k| crate::key_slot(k.as_bytes()) == crate::key_slot(b"nosuch"))
        .unwrap();
    let other = (0..100)
        .map(|i| format!("y{i}"))
        .find(|k| crate::key_slot(k.as_bytes()) != crate::key_slot(b"nosuch"))
        .unwrap();
    t.w(&format!("SET {other} 1"), 10);
    t.w(&format!("DEL {other}"), 10);
    assert_eq!(t.watch("nosuch", 10), w);
    t.w(&format!("SET {same_slot} 1"), 10);
    t.w(&format!("DEL {same_slot}"), 10);
    assert_ne!(t.watch("nosuch", 10), w);
}

#[test]
fn flushall_changes_every_version_and_the_epoch_survives_a_reopen() {
    let mut t = T::new();
    t.w("SET a 1", 10);
    let w = t.watch("a never", 10);
    t.w("FLUSHALL", 10);
    let flushed_at = t.index;
    assert_eq!(t.batch(&[exec(&w[..1], &["PING"])], 10)[0], Reply::NilArray);
    assert_eq!(t.batch(&[exec(&w[1..], &["PING"])], 10)[0], Reply::NilArray);
    // After the flush, a watch sees the epoch and nothing changed since.
    let w = t.watch("a", 10);
    let epoch = w[0].version;
    assert_eq!(
        epoch,
        super::tagged(1, flushed_at),
        "the index, tagged with the group"
    );
    let store = Store::open(t.db.clone(), 1, crate::SlotSet::all()).unwrap();
    assert_eq!(
        store.reader().watch_versions(&argv("a"), 10).unwrap()[0].version,
        epoch
    );
    drop(store);
    let r = t.batch(&[exec(&w, &["SET a 2"])], 10);
    assert_eq!(r[0], Reply::Array(vec![Reply::ok()]));
}

#[test]
fn the_check_sees_earlier_entries_of_the_same_batch() {
    let mut t = T::new();
    t.w("SET a 1", 10);
    let w = t.watch("a", 10);
    // Another client's SET, then the EXEC, in one batch: the EXEC aborts.
    let r = t.batch(&[cmd("SET a 1"), exec(&w, &["SET b 1"])], 10);
    assert_eq!(r[1], Reply::NilArray);
    assert_eq!(t.get("b"), Reply::Nil);
    // EXEC first, then the SET: the EXEC runs, and its own writes abort a later watcher.
    let w = t.watch("a", 10);
    let r = t.batch(&[exec(&w, &["SET a 2"]), exec(&w, &["SET a 3"])], 10);
    assert_eq!(r[0], Reply::Array(vec![Reply::ok()]));
    assert_eq!(r[1], Reply::NilArray);
    assert_eq!(t.get("a"), bulk("2"));
    // A FLUSHALL earlier in the batch aborts too.
    let w = t.watch("a", 10);
    let r = t.batch(&[cmd("FLUSHALL"), exec(&w, &["GET a"])], 10);
    assert_eq!(r[1], Reply::NilArray);
}
