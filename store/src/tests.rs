//! Unit tests of the store: each command's semantics on a real RocksDB, batch visibility,
//! stamped-time expiry, sweep, flush, scan and restart.

use super::*;
use bytes::Bytes;
use resp::{ExpireCondition, GetExAction, SetCondition, SetOptions, TimeUnit};

struct T {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    store: Store,
    reader: Reader,
    index: u64,
}

fn open_db(path: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    tune_db_options(&mut opts);
    Arc::new(DB::open_cf_descriptors(&opts, path, column_family_descriptors()).unwrap())
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        let reader = store.reader();
        T {
            _dir: dir,
            db,
            store,
            reader,
            index: 0,
        }
    }

    /// Applies commands in one batch at time `now`.
    fn batch(&mut self, cmds: &[Command], now: i64) -> Vec<Reply> {
        let mut wb = WriteBatch::default();
        let out = cmds
            .iter()
            .map(|c| self.store.apply(&mut wb, c, now))
            .collect();
        self.index += 1;
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
        out
    }

    fn w(&mut self, c: Command, now: i64) -> Reply {
        self.batch(&[c], now).remove(0)
    }

    fn r(&self, c: Command, now: i64) -> Reply {
        self.reader.read(&c, now).0
    }

    fn get(&self, k: &str, now: i64) -> Reply {
        self.r(Command::Get(b(k)), now)
    }
}

fn set(k: &str, v: &str) -> Command {
    Command::Set {
        key: b(k),
        value: b(v),
        opts: SetOptions::default(),
    }
}

fn set_opts(k: &str, v: &str, opts: SetOptions) -> Command {
    Command::Set {
        key: b(k),
        value: b(v),
        opts,
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

const NOW: i64 = 1_000_000;

#[test]
fn set_get_conditions_and_get_option() {
    let mut t = T::new();
    assert_eq!(t.w(set("a", "1"), NOW), Reply::ok());
    assert_eq!(t.get("a", NOW), bulk("1"));
    let nx = SetOptions {
        condition: Some(SetCondition::Nx),
        ..Default::default()
    };
    assert_eq!(t.w(set_opts("a", "2", nx.clone()), NOW), Reply::Nil);
    assert_eq!(t.w(set_opts("b", "2", nx), NOW), Reply::ok());
    let xx = SetOptions {
        condition: Some(SetCondition::Xx),
        ..Default::default()
    };
    assert_eq!(t.w(set_opts("c", "2", xx), NOW), Reply::Nil);
    assert_eq!(t.get("c", NOW), Reply::Nil);
    let get = SetOptions {
        get: true,
        ..Default::default()
    };
    assert_eq!(t.w(set_opts("a", "3", get.clone()), NOW), bulk("1"));
    assert_eq!(t.w(set_opts("new", "3", get), NOW), Reply::Nil);
    assert_eq!(
        t.w(
            Command::SetNx {
                key: b("a"),
                value: b("x")
            },
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(
            Command::SetNx {
                key: b("z"),
                value: b("x")
            },
            NOW
        ),
        Reply::Int(1)
    );
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(4));
}

#[test]
fn same_batch_sees_earlier_commands() {
    let mut t = T::new();
    let out = t.batch(
        &[
            set("n", "10"),
            Command::IncrBy {
                key: b("n"),
                delta: 5,
            },
            Command::Append {
                key: b("n"),
                value: b("0"),
            },
            Command::IncrBy {
                key: b("n"),
                delta: 1,
            },
            Command::Del(vec![b("n"), b("n")]),
            Command::IncrBy {
                key: b("n"),
                delta: 1,
            },
        ],
        NOW,
    );
    assert_eq!(
        out,
        vec![
            Reply::ok(),
            Reply::Int(15),
            Reply::Int(3),
            Reply::Int(151),
            Reply::Int(1),
            Reply::Int(1)
        ]
    );
    assert_eq!(t.get("n", NOW), bulk("1"));
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(1));
}

#[test]
fn counters_and_errors() {
    let mut t = T::new();
    t.w(set("s", "abc"), NOW);
    assert_eq!(
        t.w(
            Command::IncrBy {
                key: b("s"),
                delta: 1
            },
            NOW
        ),
        Reply::err("ERR value is not an integer or out of range")
    );
    t.w(set("m", &i64::MAX.to_string()), NOW);
    assert_eq!(
        t.w(
            Command::IncrBy {
                key: b("m"),
                delta: 1
            },
            NOW
        ),
        Reply::err("ERR increment or decrement would overflow")
    );
    t.w(set("f", "10.5"), NOW);
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("f"),
                delta: 0.1
            },
            NOW
        ),
        bulk("10.6")
    );
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("g"),
                delta: 5000.0
            },
            NOW
        ),
        bulk("5000")
    );
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("s"),
                delta: 1.0
            },
            NOW
        ),
        Reply::err("ERR value is not a valid float")
    );
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("f"),
                delta: f64::MAX
            },
            NOW
        ),
        bulk(&resp::encode::format_double(10.6 + f64::MAX))
    );
}

#[test]
fn strings_ranges_and_rename() {
    let mut t = T::new();
    t.w(set("s", "Hello World"), NOW);
    let gr = |s, e| Command::GetRange {
        key: b("s"),
        start: s,
        end: e,
    };
    assert_eq!(t.r(gr(0, 4), NOW), bulk("Hello"));
    assert_eq!(t.r(gr(-5, -1), NOW), bulk("World"));
    assert_eq!(t.r(gr(5, 2), NOW), bulk(""));
    assert_eq!(t.r(gr(0, 100), NOW), bulk("Hello World"));
    assert_eq!(t.r(Command::StrLen(b("s")), NOW), Reply::Int(11));
    assert_eq!(
        t.w(
            Command::SetRange {
                key: b("s"),
                offset: 6,
                value: b("Redis")
            },
            NOW
        ),
        Reply::Int(11)
    );
    assert_eq!(t.get("s", NOW), bulk("Hello Redis"));
    assert_eq!(
        t.w(
            Command::SetRange {
                key: b("p"),
                offset: 3,
                value: b("x")
            },
            NOW
        ),
        Reply::Int(4)
    );
    assert_eq!(t.get("p", NOW), Reply::Bulk(Bytes::from_static(b"\0\0\0x")));
    assert_eq!(
        t.w(
            Command::SetRange {
                key: b("q"),
                offset: 3,
                value: b("")
            },
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(t.r(Command::Exists(vec![b("q")]), NOW), Reply::Int(0));
    assert_eq!(
        t.w(
            Command::SetRange {
                key: b("q"),
                offset: 536_870_911,
                value: b("ab")
            },
            NOW
        ),
        Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("nope"),
                dst: b("x"),
                nx: false
            },
            NOW
        ),
        Reply::err("ERR no such key")
    );
    t.w(
        Command::Expire {
            key: b("s"),
            at: ExpireAt::RelativeMs(5000),
            condition: None,
        },
        NOW,
    );
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("s"),
                dst: b("t"),
                nx: false
            },
            NOW
        ),
        Reply::ok()
    );
    assert_eq!(t.get("s", NOW), Reply::Nil);
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("t"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(5000)
    );
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("t"),
                dst: b("p"),
                nx: true
            },
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("t"),
                dst: b("t"),
                nx: true
            },
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(t.w(Command::GetDel(b("t")), NOW), bulk("Hello Redis"));
    assert_eq!(t.get("t", NOW), Reply::Nil);
    assert_eq!(
        t.r(Command::Exists(vec![b("p"), b("p"), b("zz")]), NOW),
        Reply::Int(2)
    );
    assert_eq!(
        t.r(Command::Type(b("p")), NOW),
        Reply::Status("string".into())
    );
    assert_eq!(
        t.r(Command::Type(b("zz")), NOW),
        Reply::Status("none".into())
    );
    t.w(
        Command::MSet(vec![(b("m1"), b("1")), (b("m2"), b("2"))]),
        NOW,
    );
    assert_eq!(
        t.r(Command::MGet(vec![b("m1"), b("zz"), b("m2")]), NOW),
        Reply::Array(vec![bulk("1"), Reply::Nil, bulk("2")])
    );
    assert_eq!(
        t.w(
            Command::MSetNx(vec![(b("m1"), b("x")), (b("m3"), b("3"))]),
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(t.get("m3", NOW), Reply::Nil);
    assert_eq!(
        t.w(
            Command::MSetNx(vec![(b("m4"), b("x")), (b("m3"), b("3"))]),
            NOW
        ),
        Reply::Int(1)
    );
}

#[test]
fn expiry_follows_stamped_time() {
    let mut t = T::new();
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(1000)),
        ..Default::default()
    };
    t.w(set_opts("k", "v", ex), NOW);
    let ttl = |t: &T, now| {
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Milliseconds,
            },
            now,
        )
    };
    assert_eq!(ttl(&t, NOW), Reply::Int(1000));
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Seconds
            },
            NOW + 400
        ),
        Reply::Int(1)
    );
    assert_eq!(
        t.r(
            Command::ExpireTime {
                key: b("k"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(NOW + 1000)
    );
    assert_eq!(t.get("k", NOW + 999), bulk("v"));
    let (r, expired) = t.reader.read(&Command::Get(b("k")), NOW + 1000);
    assert_eq!((r, expired), (Reply::Nil, vec![b("k")]));
    // An apply at a stamped time before expiry still sees the key (no local clock).
    assert_eq!(
        t.w(
            Command::IncrBy {
                key: b("k2"),
                delta: 1
            },
            NOW
        ),
        Reply::Int(1)
    );
    // Reads replicated with writes see the batch's earlier writes.
    let out = t.batch(
        &[
            set("r", "1"),
            Command::Get(b("r")),
            Command::DbSize,
            Command::Del(vec![b("r")]),
            Command::Exists(vec![b("r")]),
        ],
        NOW,
    );
    assert_eq!(
        out[1..],
        [bulk("1"), Reply::Int(3), Reply::Int(1), Reply::Int(0)]
    );
    // Expired keys are absent to writes too; DEL of an expired key counts 0 but removes it.
    assert_eq!(t.w(Command::Del(vec![b("k")]), NOW + 2000), Reply::Int(0));
    assert_eq!(t.r(Command::DbSize, NOW + 2000), Reply::Int(1));
    // Time never goes back: a later apply stamped earlier uses the last time.
    let px = SetOptions {
        expire: Some(ExpireAt::RelativeMs(10)),
        ..Default::default()
    };
    t.w(set_opts("x", "v", px), NOW);
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("x"),
                unit: TimeUnit::Milliseconds
            },
            NOW + 2000
        ),
        Reply::Int(10)
    );
}

#[test]
fn expire_conditions_persist_and_getex() {
    let mut t = T::new();
    t.w(set("k", "v"), NOW);
    let exp = |ms, c| Command::Expire {
        key: b("k"),
        at: ExpireAt::RelativeMs(ms),
        condition: c,
    };
    assert_eq!(
        t.w(exp(1000, Some(ExpireCondition::Xx)), NOW),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(exp(1000, Some(ExpireCondition::Gt)), NOW),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(exp(1000, Some(ExpireCondition::Lt)), NOW),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(exp(5000, Some(ExpireCondition::Nx)), NOW),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(exp(5000, Some(ExpireCondition::Gt)), NOW),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(exp(2000, Some(ExpireCondition::Lt)), NOW),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(exp(3000, Some(ExpireCondition::Lt)), NOW),
        Reply::Int(0)
    );
    assert_eq!(t.w(Command::Persist(b("k")), NOW), Reply::Int(1));
    assert_eq!(t.w(Command::Persist(b("k")), NOW), Reply::Int(0));
    assert_eq!(
        t.w(
            Command::Expire {
                key: b("nope"),
                at: ExpireAt::RelativeMs(1),
                condition: None
            },
            NOW
        ),
        Reply::Int(0)
    );
    let getex = |a| Command::GetEx {
        key: b("k"),
        action: a,
    };
    assert_eq!(
        t.w(
            getex(Some(GetExAction::Expire(ExpireAt::AbsoluteMs(NOW + 50)))),
            NOW
        ),
        bulk("v")
    );
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(50)
    );
    assert_eq!(t.w(getex(Some(GetExAction::Persist)), NOW), bulk("v"));
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(-1)
    );
    // A time already past deletes the key.
    assert_eq!(t.w(exp(-1, None), NOW), Reply::Int(1));
    assert_eq!(t.r(Command::Exists(vec![b("k")]), NOW), Reply::Int(0));
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    let keepttl = SetOptions {
        keep_ttl: true,
        ..Default::default()
    };
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(700)),
        ..Default::default()
    };
    t.w(set_opts("k", "v", ex), NOW);
    t.w(set_opts("k", "v2", keepttl), NOW);
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(700)
    );
    t.w(set("k", "v3"), NOW);
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Milliseconds
            },
            NOW
        ),
        Reply::Int(-1)
    );
}

#[test]
fn sweep_deletes_only_due_keys() {
    let mut t = T::new();
    for i in 0..10 {
        let ex = SetOptions {
            expire: Some(ExpireAt::RelativeMs(100 * (i + 1))),
            ..Default::default()
        };
        t.w(set_opts(&format!("k{i}"), "v", ex), NOW);
    }
    t.w(set("keep", "v"), NOW);
    // k0's TTL is removed: its index entry becomes stale and must not delete it.
    t.w(Command::Persist(b("k0")), NOW);
    assert!(t.reader.due_keys(NOW + 150, 1).is_empty());
    assert!(!t.reader.due_keys(NOW + 250, 1).is_empty());
    assert_eq!(t.reader.expires_count(), 9);
    assert_eq!(
        t.w(Command::SweepExpired { limit: 2 }, NOW + 550),
        Reply::Int(2)
    );
    assert_eq!(
        t.w(Command::SweepExpired { limit: 100 }, NOW + 550),
        Reply::Int(2)
    );
    assert_eq!(t.r(Command::DbSize, NOW + 550), Reply::Int(7));
    assert_eq!(
        t.w(Command::DelIfExpired(vec![b("k6"), b("k9")]), NOW + 700),
        Reply::Int(1)
    );
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(6));
    assert_eq!(t.get("k0", NOW + 10_000), bulk("v"));
}

#[test]
fn flush_scan_keys_and_reopen() {
    let mut t = T::new();
    let cmds: Vec<Command> = (0..500).map(|i| set(&format!("key:{i}"), "v")).collect();
    t.batch(&cmds, NOW);
    let mut keys = Vec::new();
    if let Reply::Array(all) = t.r(Command::Keys(b("key:1*")), NOW) {
        keys = all;
    }
    assert_eq!(keys.len(), 111);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    let mut calls = 0;
    loop {
        let r = t.r(
            Command::Scan {
                cursor,
                pattern: None,
                count: 10,
                type_: None,
            },
            NOW,
        );
        let Reply::Array(parts) = r else {
            panic!("scan reply")
        };
        let Reply::Bulk(c) = &parts[0] else {
            panic!("cursor")
        };
        let Reply::Array(ks) = &parts[1] else {
            panic!("keys")
        };
        for k in ks {
            let Reply::Bulk(k) = k else { panic!("key") };
            assert!(seen.insert(k.clone()), "duplicate {k:?}");
        }
        cursor = std::str::from_utf8(c).unwrap().parse().unwrap();
        calls += 1;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 500);
    assert!(calls > 10);
    let applied = t.store.applied_index();
    let (dir, db) = (t._dir, t.db);
    drop(t.store);
    let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
    assert_eq!(store.applied_index(), applied);
    assert_eq!(store.reader().key_count(), 500);
    let mut t = T {
        reader: store.reader(),
        store,
        db,
        _dir: dir,
        index: applied,
    };
    let out = t.batch(
        &[
            Command::FlushAll,
            set("after", "1"),
            Command::IncrBy {
                key: b("key:1"),
                delta: 1,
            },
        ],
        NOW,
    );
    assert_eq!(out, vec![Reply::ok(), Reply::ok(), Reply::Int(1)]);
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(2));
    assert_eq!(t.get("key:2", NOW), Reply::Nil);
    assert_eq!(t.get("key:1", NOW), bulk("1"));
}

#[test]
fn wrongtype_is_reported() {
    let mut t = T::new();
    // Only strings exist yet; plant another type byte to check the guards.
    let mut wb = WriteBatch::default();
    let cf = t.db.cf_handle(CF_DATA).unwrap();
    wb.put_cf(
        cf,
        data_key(b"h"),
        Value {
            typ: 9,
            expire: 0,
            payload: vec![],
        }
        .encode(),
    );
    t.db.write(wb).unwrap();
    let wt = Reply::err(WRONGTYPE);
    assert_eq!(t.get("h", NOW), wt);
    assert_eq!(
        t.w(
            Command::IncrBy {
                key: b("h"),
                delta: 1
            },
            NOW
        ),
        wt
    );
    assert_eq!(
        t.w(
            Command::Append {
                key: b("h"),
                value: b("x")
            },
            NOW
        ),
        wt
    );
    assert_eq!(
        t.w(
            set_opts(
                "h",
                "x",
                SetOptions {
                    get: true,
                    ..Default::default()
                }
            ),
            NOW
        ),
        wt
    );
    assert_eq!(t.w(set("h", "x"), NOW), Reply::ok());
}

fn ttl_ms(k: &str) -> Command {
    Command::Ttl {
        key: b(k),
        unit: TimeUnit::Milliseconds,
    }
}

fn incr(k: &str, delta: i64) -> Command {
    Command::IncrBy { key: b(k), delta }
}

fn scan(cursor: u64, pattern: Option<&str>, count: u64, type_: Option<&str>) -> Command {
    Command::Scan {
        cursor,
        pattern: pattern.map(b),
        count,
        type_: type_.map(b),
    }
}

/// Splits a SCAN reply into (next cursor, keys).
fn scan_reply(r: Reply) -> (u64, Vec<Bytes>) {
    let Reply::Array(mut parts) = r else {
        panic!("scan reply {r:?}")
    };
    let Reply::Array(ks) = parts.pop().unwrap() else {
        panic!("keys")
    };
    let Reply::Bulk(c) = parts.pop().unwrap() else {
        panic!("cursor")
    };
    let keys = ks
        .into_iter()
        .map(|k| match k {
            Reply::Bulk(k) => k,
            other => panic!("key {other:?}"),
        })
        .collect();
    (std::str::from_utf8(&c).unwrap().parse().unwrap(), keys)
}

#[test]
fn getrange_edges() {
    let mut t = T::new();
    t.w(set("s", "Hello"), NOW);
    let gr = |k: &str, s, e| Command::GetRange {
        key: b(k),
        start: s,
        end: e,
    };
    assert_eq!(t.r(gr("s", 0, -1), NOW), bulk("Hello"));
    assert_eq!(t.r(gr("s", -10, -1), NOW), bulk("Hello"));
    // Both negative and start > end: empty, even though both clamp to 0.
    assert_eq!(t.r(gr("s", -10, -20), NOW), bulk(""));
    assert_eq!(t.r(gr("s", -20, -10), NOW), bulk("H"));
    assert_eq!(t.r(gr("s", 10, 20), NOW), bulk(""));
    assert_eq!(t.r(gr("s", 4, 4), NOW), bulk("o"));
    assert_eq!(t.r(gr("missing", 0, -1), NOW), bulk(""));
    assert_eq!(t.r(Command::StrLen(b("missing")), NOW), Reply::Int(0));
}

#[test]
fn ttl_and_expiretime_rounding() {
    let mut t = T::new();
    let pxat = SetOptions {
        expire: Some(ExpireAt::AbsoluteMs(NOW + 500_600)),
        ..Default::default()
    };
    t.w(set_opts("k", "v", pxat), NOW);
    let et = |unit| Command::ExpireTime { key: b("k"), unit };
    assert_eq!(
        t.r(et(TimeUnit::Milliseconds), NOW),
        Reply::Int(NOW + 500_600)
    );
    assert_eq!(
        t.r(et(TimeUnit::Seconds), NOW),
        Reply::Int((NOW + 500_600 + 500) / 1000)
    );
    assert_eq!(
        t.r(
            Command::Ttl {
                key: b("k"),
                unit: TimeUnit::Seconds
            },
            NOW
        ),
        Reply::Int(501)
    );
    t.w(set("p", "v"), NOW);
    assert_eq!(
        t.r(
            Command::ExpireTime {
                key: b("p"),
                unit: TimeUnit::Seconds
            },
            NOW
        ),
        Reply::Int(-1)
    );
    assert_eq!(
        t.r(
            Command::ExpireTime {
                key: b("zz"),
                unit: TimeUnit::Seconds
            },
            NOW
        ),
        Reply::Int(-2)
    );
    assert_eq!(t.r(ttl_ms("zz"), NOW), Reply::Int(-2));
    assert_eq!(t.r(ttl_ms("p"), NOW), Reply::Int(-1));
}

#[test]
fn set_expiry_edge_cases_and_counts() {
    let mut t = T::new();
    // An absolute time already past: OK, but the key never becomes visible.
    let past = SetOptions {
        expire: Some(ExpireAt::AbsoluteMs(NOW - 1)),
        ..Default::default()
    };
    assert_eq!(t.w(set_opts("k", "v", past.clone()), NOW), Reply::ok());
    assert_eq!(t.get("k", NOW), Reply::Nil);
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    // ... and on an existing key it deletes it.
    t.w(set("k", "v"), NOW);
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(1));
    assert_eq!(t.w(set_opts("k", "v", past), NOW), Reply::ok());
    assert_eq!(t.r(Command::Exists(vec![b("k")]), NOW), Reply::Int(0));
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    // Overwriting an expired-but-present key keeps the count (it was physically there).
    let px = SetOptions {
        expire: Some(ExpireAt::RelativeMs(10)),
        ..Default::default()
    };
    t.w(set_opts("e", "v", px), NOW);
    assert_eq!(t.reader.expires_count(), 1);
    assert_eq!(t.get("e", NOW + 10), Reply::Nil);
    assert_eq!(t.r(Command::DbSize, NOW + 10), Reply::Int(1));
    // NX sees the expired key as absent.
    let nx = SetOptions {
        condition: Some(SetCondition::Nx),
        get: true,
        ..Default::default()
    };
    assert_eq!(t.w(set_opts("e", "w", nx.clone()), NOW + 10), Reply::Nil);
    assert_eq!(t.get("e", NOW + 10), bulk("w"));
    assert_eq!(t.r(Command::DbSize, NOW + 10), Reply::Int(1));
    assert_eq!(t.reader.expires_count(), 0);
    // NX + GET on an existing key: not set, old value returned.
    assert_eq!(t.w(set_opts("e", "x", nx), NOW + 10), bulk("w"));
    assert_eq!(t.get("e", NOW + 10), bulk("w"));
    // MSET with a repeated key: the last one wins, counted once.
    t.w(
        Command::MSet(vec![(b("m"), b("1")), (b("m"), b("2"))]),
        NOW + 10,
    );
    assert_eq!(t.get("m", NOW + 10), bulk("2"));
    assert_eq!(t.r(Command::DbSize, NOW + 10), Reply::Int(2));
    // Counters keep their TTL. (Stamped time never goes back: it is NOW + 10 now.)
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(5000)),
        ..Default::default()
    };
    t.w(set_opts("c", "1", ex), NOW + 10);
    assert_eq!(t.w(incr("c", 2), NOW + 10), Reply::Int(3));
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("c"),
                delta: 0.5
            },
            NOW + 10
        ),
        bulk("3.5")
    );
    assert_eq!(
        t.w(
            Command::Append {
                key: b("c"),
                value: b("0")
            },
            NOW + 10
        ),
        Reply::Int(4)
    );
    assert_eq!(t.r(ttl_ms("c"), NOW + 10), Reply::Int(5000));
    assert_eq!(
        t.w(
            Command::IncrByFloat {
                key: b("c"),
                delta: f64::INFINITY
            },
            NOW + 10
        ),
        Reply::err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(
        t.w(incr("c", i64::MAX), NOW + 10),
        Reply::err("ERR value is not an integer or out of range")
    );
    t.w(set("neg", &i64::MIN.to_string()), NOW + 10);
    assert_eq!(
        t.w(incr("neg", -1), NOW + 10),
        Reply::err("ERR increment or decrement would overflow")
    );
    for bad in [
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "-0",
        "1.0",
        "99999999999999999999",
    ] {
        t.w(set("bad", bad), NOW + 10);
        assert_eq!(
            t.w(incr("bad", 1), NOW + 10),
            Reply::err("ERR value is not an integer or out of range"),
            "{bad:?}"
        );
    }
}

#[test]
fn expire_edge_cases() {
    let mut t = T::new();
    t.w(set("k", "v"), NOW);
    let exp = |at, c| Command::Expire {
        key: b("k"),
        at,
        condition: c,
    };
    // GT on a key without TTL (infinite) fails; LT succeeds.
    assert_eq!(
        t.w(
            exp(ExpireAt::RelativeMs(10), Some(ExpireCondition::Gt)),
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(
            exp(ExpireAt::AbsoluteMs(NOW + 100), Some(ExpireCondition::Nx)),
            NOW
        ),
        Reply::Int(1)
    );
    assert_eq!(t.r(ttl_ms("k"), NOW), Reply::Int(100));
    assert_eq!(
        t.w(
            exp(ExpireAt::RelativeMs(50), Some(ExpireCondition::Xx)),
            NOW
        ),
        Reply::Int(1)
    );
    // Equal is neither greater nor less.
    assert_eq!(
        t.w(
            exp(ExpireAt::AbsoluteMs(NOW + 50), Some(ExpireCondition::Gt)),
            NOW
        ),
        Reply::Int(0)
    );
    assert_eq!(
        t.w(
            exp(ExpireAt::AbsoluteMs(NOW + 50), Some(ExpireCondition::Lt)),
            NOW
        ),
        Reply::Int(0)
    );
    // Exactly now counts as past: the key is deleted and the reply is 1.
    assert_eq!(
        t.w(exp(ExpireAt::AbsoluteMs(NOW), None), NOW),
        Reply::Int(1)
    );
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    assert_eq!(t.reader.expires_count(), 0);
    assert_eq!(t.w(exp(ExpireAt::RelativeMs(10), None), NOW), Reply::Int(0));
    assert_eq!(t.w(Command::Persist(b("k")), NOW), Reply::Int(0));
    // GETEX on missing keys, and a past time deleting the key.
    t.w(set("g", "v"), NOW);
    let getex = |k: &str, a| Command::GetEx {
        key: b(k),
        action: a,
    };
    assert_eq!(t.w(getex("nope", None), NOW), Reply::Nil);
    assert_eq!(
        t.w(
            getex(
                "g",
                Some(GetExAction::Expire(ExpireAt::AbsoluteMs(NOW - 5)))
            ),
            NOW
        ),
        bulk("v")
    );
    assert_eq!(t.get("g", NOW), Reply::Nil);
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    // RENAME onto a key with a TTL: the destination takes the source's (lack of) TTL.
    t.w(set("src", "1"), NOW);
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(100)),
        ..Default::default()
    };
    t.w(set_opts("dst", "2", ex), NOW);
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("src"),
                dst: b("dst"),
                nx: false
            },
            NOW
        ),
        Reply::ok()
    );
    assert_eq!(t.r(ttl_ms("dst"), NOW), Reply::Int(-1));
    assert_eq!(t.get("dst", NOW), bulk("1"));
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(1));
    assert_eq!(t.reader.expires_count(), 0);
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("dst"),
                dst: b("dst"),
                nx: false
            },
            NOW
        ),
        Reply::ok()
    );
    assert_eq!(
        t.w(
            Command::Rename {
                src: b("dst"),
                dst: b("fresh"),
                nx: true
            },
            NOW
        ),
        Reply::Int(1)
    );
    assert_eq!(t.get("fresh", NOW), bulk("1"));
    // The sweep finds nothing to do: every index entry was stale or removed.
    assert_eq!(
        t.w(Command::SweepExpired { limit: 100 }, NOW + 1000),
        Reply::Int(0)
    );
    assert_eq!(t.r(Command::DbSize, NOW + 1000), Reply::Int(1));
}

#[test]
fn wrong_kind_of_command_is_an_error_reply() {
    let mut t = T::new();
    let r = t.w(Command::Ping(None), NOW);
    assert!(r.is_error(), "{r:?}");
    let r = t.w(Command::Time, NOW);
    assert!(r.is_error(), "{r:?}");
    let (r, expired) = t.reader.read(&set("k", "v"), NOW);
    assert!(r.is_error(), "{r:?}");
    assert!(expired.is_empty());
    let (r, _) = t.reader.read(&Command::FlushAll, NOW);
    assert!(r.is_error(), "{r:?}");
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(0));
    // TOUCH replicated as a write counts existing keys (repeats included).
    t.w(set("a", "1"), NOW);
    assert_eq!(
        t.w(Command::Touch(vec![b("a"), b("a"), b("b")]), NOW),
        Reply::Int(2)
    );
}

#[test]
fn scan_type_pattern_and_odd_counts() {
    let mut t = T::new();
    let cmds: Vec<Command> = (0..200)
        .map(|i| {
            set(
                &format!("{}:{i}", if i % 2 == 0 { "even" } else { "odd" }),
                "v",
            )
        })
        .collect();
    t.batch(&cmds, NOW);
    // An expired key is examined but never returned.
    let px = SetOptions {
        expire: Some(ExpireAt::RelativeMs(1)),
        ..Default::default()
    };
    t.w(set_opts("even:gone", "v", px), NOW);
    let collect = |t: &T, pattern, count, type_| {
        let mut all = Vec::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let (next, keys) = scan_reply(t.r(scan(cursor, pattern, count, type_), NOW + 5));
            all.extend(keys);
            calls += 1;
            assert!(calls < 100_000, "scan does not terminate");
            if next == 0 {
                break;
            }
            assert!(next > cursor, "cursor must advance");
            cursor = next;
        }
        (all, calls)
    };
    let (evens, _) = collect(&t, Some("even:*"), 7, None);
    assert_eq!(evens.len(), 100);
    assert!(evens.iter().all(|k| k.starts_with(b"even:")));
    let (all, calls) = collect(&t, Some("*"), 0, Some("STRING"));
    assert_eq!(all.len(), 200);
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 200);
    assert!(calls >= 100);
    let (none, _) = collect(&t, None, 50, Some("hash"));
    assert!(none.is_empty());
    let (big, calls) = collect(&t, None, 10_000, None);
    assert_eq!((big.len(), calls), (200, 1));
    // A cursor past the last slot ends the iteration.
    assert_eq!(
        scan_reply(t.r(scan(16384, None, 10, None), NOW)),
        (0, vec![])
    );
    assert_eq!(
        scan_reply(t.r(scan(u64::MAX, None, 10, None), NOW)),
        (0, vec![])
    );
    // Keys of one hash tag share a slot, so one call returns them together.
    let tagged: Vec<Command> = (0..20).map(|i| set(&format!("{{tag}}:{i}"), "v")).collect();
    t.batch(&tagged, NOW);
    let slot = key_slot(b"{tag}") as u64;
    let (_, keys) = scan_reply(t.r(scan(slot, Some("{tag}*"), 1, None), NOW));
    assert_eq!(keys.len(), 20);
    // KEYS: `*` matches everything, including the empty key.
    t.w(set("", "empty"), NOW);
    let Reply::Array(all) = t.r(Command::Keys(b("*")), NOW + 5) else {
        panic!()
    };
    assert_eq!(all.len(), 221);
    let Reply::Array(some) = t.r(Command::Keys(b("odd:1?")), NOW + 5) else {
        panic!()
    };
    assert_eq!(some.len(), 5);
}

#[test]
fn flush_resets_the_batch_view() {
    let mut t = T::new();
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(10)),
        ..Default::default()
    };
    t.batch(&[set("a", "1"), set_opts("b", "2", ex)], NOW);
    let out = t.batch(
        &[
            set("c", "3"),
            Command::FlushAll,
            Command::Get(b("a")),
            Command::Exists(vec![b("a"), b("b"), b("c")]),
            Command::SweepExpired { limit: 10 },
            set("d", "4"),
            Command::DbSize,
        ],
        NOW + 100,
    );
    assert_eq!(
        out,
        vec![
            Reply::ok(),
            Reply::ok(),
            Reply::Nil,
            Reply::Int(0),
            Reply::Int(0),
            Reply::ok(),
            Reply::Int(1)
        ]
    );
    assert_eq!(t.r(Command::DbSize, NOW), Reply::Int(1));
    assert_eq!(t.reader.expires_count(), 0);
    assert_eq!(t.get("d", NOW), bulk("4"));
    assert_eq!(t.get("a", NOW), Reply::Nil);
    assert!(t.reader.due_keys(i64::MAX, 1).is_empty());
    let Reply::Array(keys) = t.r(Command::Keys(b("*")), NOW) else {
        panic!()
    };
    assert_eq!(keys, vec![bulk("d")]);
}

#[test]
fn nothing_is_visible_before_the_batch_is_written() {
    let mut t = T::new();
    let mut wb = WriteBatch::default();
    assert_eq!(t.store.apply(&mut wb, &set("k", "1"), NOW), Reply::ok());
    assert_eq!(t.store.apply(&mut wb, &incr("k", 41), NOW), Reply::Int(42));
    // The reader sees the database as of the last written batch.
    assert_eq!(t.get("k", NOW), Reply::Nil);
    t.store.stage_applied(&mut wb, 7);
    t.db.write(wb).unwrap();
    t.store.batch_written();
    assert_eq!(t.get("k", NOW), bulk("42"));
    assert_eq!(t.reader.key_count(), 1);
    assert_eq!(t.store.applied_index(), 7);
}

#[test]
fn reopen_restores_meta() {
    let mut t = T::new();
    let ex = SetOptions {
        expire: Some(ExpireAt::RelativeMs(10_000)),
        ..Default::default()
    };
    t.batch(&[set("a", "1"), set_opts("b", "2", ex), set("c", "3")], NOW);
    t.w(Command::Del(vec![b("c")]), NOW + 5000);
    let (dir, db, applied) = (t._dir, t.db, t.index);
    drop(t.store);
    let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
    assert_eq!(store.applied_index(), applied);
    assert_eq!(store.last_time_ms(), NOW + 5000);
    assert_eq!(store.reader().key_count(), 2);
    assert_eq!(store.reader().expires_count(), 1);
    // Another group on the same database has its own (empty) meta.
    let other = Store::open(db.clone(), 2, crate::SlotSet::all()).unwrap();
    assert_eq!((other.applied_index(), other.last_time_ms()), (0, 0));
    // Time never goes back across a restart either.
    let mut t = T {
        reader: store.reader(),
        store,
        db,
        _dir: dir,
        index: applied,
    };
    t.w(
        set_opts(
            "x",
            "v",
            SetOptions {
                expire: Some(ExpireAt::RelativeMs(100)),
                ..Default::default()
            },
        ),
        0,
    );
    assert_eq!(t.r(ttl_ms("x"), NOW + 5000), Reply::Int(100));
}

#[test]
fn corrupt_values_are_storage_errors_for_readers() {
    let t = T::new();
    let cf = t.db.cf_handle(CF_DATA).unwrap();
    t.db.put_cf(cf, data_key(b"bad"), b"x").unwrap();
    let (r, _) = t.reader.read(&Command::Get(b("bad")), NOW);
    assert_eq!(r, Reply::err("ERR storage error: corrupt value"));
    let (r, _) = t.reader.read(&Command::Keys(b("*")), NOW);
    assert!(matches!(&r, Reply::Error(e) if e.starts_with("ERR storage error")));
}

#[test]
fn reader_is_send_sync_and_store_is_send() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<Reader>();
    send::<Store>();
    assert_eq!(
        column_families(),
        vec![
            CF_DATA,
            CF_EXPIRE,
            CF_META,
            types::CF_SUB,
            types::CF_ZSCORE,
            txn::CF_KVER,
            crate::scripting::CF_SCRIPTS
        ]
    );
}

#[test]
fn snapshot_export_captures_one_instant_and_restore_replaces_everything() {
    let mut src = T::new();
    src.w(set("a", "1"), NOW);
    src.w(set("b", "2"), NOW);
    src.w(
        set_opts(
            "ttl",
            "t",
            SetOptions {
                expire: Some(ExpireAt::RelativeMs(60_000)),
                ..Default::default()
            },
        ),
        NOW,
    );
    let out = tempfile::tempdir().unwrap();
    let export = src.store.export_snapshot(out.path().to_path_buf()).unwrap();
    // Writes after the capture are not in the snapshot.
    src.w(set("late", "x"), NOW);
    let files = export.finish().unwrap();
    assert!(!files.is_empty());

    let mut dst = T::new();
    dst.w(set("stale", "gone"), NOW);
    dst.w(set("a", "old"), NOW);
    dst.store.restore_snapshot(out.path()).unwrap();
    assert_eq!(dst.store.applied_index(), 3);
    assert_eq!(dst.get("a", NOW), Reply::Bulk(b("1")));
    assert_eq!(dst.get("b", NOW), Reply::Bulk(b("2")));
    assert_eq!(dst.get("stale", NOW), Reply::Nil);
    assert_eq!(dst.get("late", NOW), Reply::Nil);
    assert_eq!(dst.reader.key_count(), 3);
    assert_eq!(dst.reader.expires_count(), 1);
    // The expiry index came along: the sweep finds the key once due.
    assert!(!dst.reader.due_keys(NOW + 120_000, 1).is_empty());
    // Restoring again is harmless (a crash may redo it).
    dst.store.restore_snapshot(out.path()).unwrap();
    assert_eq!(dst.reader.key_count(), 3);
}

#[test]
fn a_read_group_sees_one_snapshot_and_a_restore_is_exclusive_with_readers() {
    let mut t = T::new();
    t.w(set("a", "1"), NOW);
    t.w(set("b", "1"), NOW);
    let (replies, _) = t.reader.read_all(
        &[
            Command::MGet(vec![b("a"), b("b")]),
            Command::Exists(vec![b("a"), b("b"), b("c")]),
        ],
        NOW,
    );
    assert_eq!(
        replies,
        vec![
            Reply::Array(vec![Reply::Bulk(b("1")), Reply::Bulk(b("1"))]),
            Reply::Int(2)
        ]
    );
    // While a restore holds the gate, a reader cannot take its snapshot.
    let gate = t.reader.counters.clone();
    let held = gate.restore.write().unwrap();
    let reader = t.reader.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let th = std::thread::spawn(move || {
        let (r, _) = reader.read(&Command::Get(b("a")), NOW);
        tx.send(r).unwrap();
    });
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(200))
        .is_err());
    drop(held);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
        Reply::Bulk(b("1"))
    );
    th.join().unwrap();
}
