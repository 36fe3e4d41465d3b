//! Unit tests of keyspace notifications at apply time: Redis's event names and classes per
//! command, `del` when a write empties or deletes a key, nothing for a write that changed
//! nothing, `expired` from lazy and swept expiry, only the wanted classes, and no events at
//! all while notifications are off.

use std::sync::{Arc, Mutex};

use crate::notify as n;
use crate::testgroup::{open_db, G, NOW};

type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn group(flags: u32) -> (tempfile::TempDir, G, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let g = G::open(&db, 1, "0-16383");
    let seen: Seen = Arc::default();
    let s = seen.clone();
    g.reader
        .set_push_listener(Arc::new(move |applied: crate::Applied<'_>| {
            if let crate::Applied::Events(evs) = applied {
                let mut s = s.lock().unwrap();
                for e in evs {
                    s.push((
                        e.name.to_string(),
                        String::from_utf8_lossy(&e.key).into_owned(),
                    ));
                }
            }
        }));
    g.reader.set_notify_flags(flags);
    (dir, g, seen)
}

fn take(seen: &Seen) -> Vec<(String, String)> {
    std::mem::take(&mut *seen.lock().unwrap())
}

fn ev(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn string_and_generic_writes_raise_redis_events() {
    let (_d, mut g, seen) = group(n::KEYEVENT | n::ALL);
    g.w("SET k v EX 100");
    assert_eq!(take(&seen), ev(&[("set", "k"), ("expire", "k")]));
    g.w("SET k v NX");
    assert_eq!(take(&seen), ev(&[]));
    g.w("INCRBY n 2");
    g.w("APPEND k x");
    g.w("RENAME k k2");
    assert_eq!(
        take(&seen),
        ev(&[
            ("incrby", "n"),
            ("append", "k"),
            ("rename_from", "k"),
            ("rename_to", "k2")
        ])
    );
    g.w("DEL k2 missing n");
    assert_eq!(take(&seen), ev(&[("del", "k2"), ("del", "n")]));
    g.w("SET t v");
    take(&seen);
    g.w("EXPIRE t -1");
    assert_eq!(take(&seen), ev(&[("del", "t")]));
}

#[test]
fn collection_writes_raise_their_events_and_del_when_emptied() {
    let (_d, mut g, seen) = group(n::KEYSPACE | n::ALL);
    g.w("RPUSH l a b");
    g.w("LPOP l");
    g.w("LMOVE l m LEFT RIGHT");
    assert_eq!(
        take(&seen),
        ev(&[
            ("rpush", "l"),
            ("lpop", "l"),
            ("lpop", "l"),
            ("rpush", "m"),
            ("del", "l")
        ])
    );
    g.w("HSET h f v");
    g.w("HSET h f w");
    g.w("HDEL h f");
    assert_eq!(
        take(&seen),
        ev(&[("hset", "h"), ("hset", "h"), ("hdel", "h"), ("del", "h")])
    );
    g.w("SADD s a");
    g.w("SADD s a");
    g.w("ZADD z 1 a");
    g.w("ZINCRBY z 1 a");
    g.w("ZREM z a");
    assert_eq!(
        take(&seen),
        ev(&[
            ("sadd", "s"),
            ("zadd", "z"),
            ("zincr", "z"),
            ("zrem", "z"),
            ("del", "z")
        ])
    );
}

#[test]
fn bitmap_hll_sort_and_restore_writes_raise_their_events() {
    let (_d, mut g, seen) = group(n::KEYEVENT | n::ALL);
    g.w("SETBIT b 7 1");
    g.w("BITOP OR d b");
    g.w("PFADD p a");
    g.w("PFADD p a");
    g.w("RPUSH l 2 1");
    g.w("SORT l STORE s");
    assert_eq!(
        take(&seen),
        ev(&[
            ("setbit", "b"),
            ("set", "d"),
            ("pfadd", "p"),
            ("rpush", "l"),
            ("sortstore", "s")
        ])
    );
    g.w("SETBIT b 6 1");
    g.w("PFMERGE q p");
    g.w("SORT l STORE s");
    assert_eq!(
        take(&seen),
        ev(&[("setbit", "b"), ("pfadd", "q"), ("sortstore", "s")])
    );
}

#[test]
fn only_wanted_classes_and_nothing_when_off() {
    let (_d, mut g, seen) = group(n::KEYEVENT | n::LIST);
    g.w("SET k v");
    g.w("LPUSH l a");
    assert_eq!(take(&seen), ev(&[("lpush", "l")]));
    // Without K or E nothing is raised, whatever the classes.
    g.reader.set_notify_flags(n::ALL);
    g.w("LPUSH l b");
    g.reader.set_notify_flags(0);
    g.w("LPUSH l c");
    assert_eq!(take(&seen), ev(&[]));
}

#[test]
fn expiry_raises_expired() {
    let (_d, mut g, seen) = group(n::KEYEVENT | n::EXPIRED);
    g.w("SET a v PX 10");
    g.w("SET b v PX 10");
    assert_eq!(take(&seen), ev(&[]));
    // Lazy expiry by name (what the leader proposes), after the stamped time passed.
    let later = NOW + 100;
    let mut wb = rocksdb::WriteBatch::default();
    let del = crate::testgroup::cmd("RAFTKV.DELIFEXPIRED a");
    g.store.apply(&mut wb, &del, later);
    let sweep = crate::testgroup::cmd("RAFTKV.SWEEP 10");
    g.store.apply(&mut wb, &sweep, later);
    g.db.write(wb).unwrap();
    g.store.batch_written();
    assert_eq!(take(&seen), ev(&[("expired", "a"), ("expired", "b")]));
}
