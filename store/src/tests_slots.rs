//! Unit tests of one group's slot ownership: refusals of foreign keys (whole commands, at
//! apply time and on read), RAFTKV.SLOTS.ADD / REMOVE with the counters and the expiry
//! index following, the persisted set winning over the initial one, SCAN's cursor contract
//! within one group, and replies and bytes independent of how entries are batched.

use bytes::Bytes;
use resp::{Command, Reply};

use crate::testgroup::*;

const HALF: &str = "0-8191";

/// A group owning `slots` in its own database.
fn group(slots: &str) -> (tempfile::TempDir, G) {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let g = G::open(&db, 1, slots);
    (dir, g)
}

#[test]
fn foreign_keys_are_refused_whole_at_apply_and_on_read() {
    let (_dir, mut g) = group(HALF);
    let mine = keys_in(&set(HALF), "m", 3);
    let theirs = keys_in(&set("8192-16383"), "t", 2);
    let (m, t) = (&mine[0], &theirs[0]);
    assert_eq!(g.w(&format!("SET {m} 1")), Reply::ok());
    for c in [
        format!("SET {t} 1"),
        format!("MSET {m} 2 {t} 2"),
        format!("DEL {m} {t}"),
        format!("RENAME {m} {t}"),
        format!("COPY {m} {t}"),
        format!("HSET {t} f v"),
        format!("SUNIONSTORE {m} {m} {t}"),
        format!("RAFTKV.DELIFEXPIRED {m} {t}"),
        format!("GET {t}"),
    ] {
        assert_eq!(g.w(&c), refused(t), "{c}");
    }
    assert_eq!(g.r(&format!("GET {m}")), bulk("1"), "nothing applied");
    assert_eq!(g.counts(), (1, 0));
    // Reads: the whole command is refused; the others of a read group are served.
    let (replies, _) = g.reader.read_all(
        &[
            cmd(&format!("MGET {m} {t}")),
            cmd(&format!("EXISTS {m}")),
            cmd(&format!("OBJECT ENCODING {t}")),
        ],
        NOW,
    );
    assert_eq!(replies, vec![refused(t), Reply::Int(1), refused(t)]);
    // A transaction with any foreign key, watched or in its body, is refused whole.
    let body = vec![
        argv(&format!("SET {} x", mine[1])),
        argv(&format!("SET {t} x")),
    ];
    let exec = Command::Transaction {
        watches: vec![],
        body,
    };
    assert_eq!(g.batch_of(&[exec]), vec![refused(t)]);
    let w = g
        .reader
        .watch_versions(&[Bytes::from(m.clone())], NOW)
        .unwrap();
    let foreign = resp::WatchedKey {
        key: Bytes::from(t.clone()),
        ..w[0].clone()
    };
    let exec = Command::Transaction {
        watches: vec![w[0].clone(), foreign],
        body: vec![argv(&format!("SET {} x", mine[1]))],
    };
    assert_eq!(g.batch_of(&[exec]), vec![refused(t)]);
    assert_eq!(g.r(&format!("EXISTS {}", mine[1])), Reply::Int(0));
    let e = g.reader.watch_versions(&[Bytes::from(t.clone())], NOW);
    assert_eq!(
        e,
        Err(format!(
            "TRYAGAIN slot {} is not served by this group",
            crate::key_slot(t.as_bytes())
        ))
    );
    // Keyless commands still run, over the owned slots.
    assert_eq!(g.w("DBSIZE"), Reply::Int(1));
    let slot = crate::key_slot(t.as_bytes());
    assert_eq!(g.reader.count_keys_in_slot(slot, NOW), Reply::Int(0));
}

#[test]
fn slot_commands_move_ownership_counters_and_the_expiry_index() {
    let (_dir, mut g) = group("0-16383");
    let a = keys_in(&set("100"), "a", 3);
    let b = keys_in(&set("200"), "b", 2);
    g.w(&format!("SET {} 1", a[0]));
    g.w(&format!("SET {} 1 PX 50", a[1]));
    g.w(&format!("RPUSH {} x y", a[2]));
    g.w(&format!("SET {} 1 PX 50", b[0]));
    g.w(&format!("SET {} 1", b[1]));
    assert_eq!(g.counts(), (5, 2));
    assert_eq!(g.w("RAFTKV.SLOTS.REMOVE 100 5000-5001"), Reply::Int(3));
    assert_eq!(g.store.slots().to_string(), "0-99,101-4999,5002-16383");
    assert_eq!(g.reader.slots().to_string(), "0-99,101-4999,5002-16383");
    assert_eq!(g.counts(), (2, 1));
    assert_eq!(g.w("DBSIZE"), Reply::Int(2));
    assert_eq!(g.due(NOW + 100), vec![b[0].clone()]);
    assert_eq!(g.r(&format!("GET {}", a[0])), refused(&a[0]));
    assert_eq!(g.r(&format!("LRANGE {} 0 -1", a[2])), refused(&a[2]));
    assert_eq!(sorted_keys(&g.r("KEYS *")), {
        let mut v = b.clone();
        v.sort();
        v
    });
    for _ in 0..20 {
        assert_ne!(g.r("RANDOMKEY"), bulk(&a[0]));
    }
    // Removing again changes nothing; the data stayed, so adding back finds it.
    assert_eq!(g.w("RAFTKV.SLOTS.REMOVE 100"), Reply::Int(0));
    assert_eq!(g.w("RAFTKV.SLOTS.ADD 90-110"), Reply::Int(1));
    assert_eq!(g.counts(), (5, 2));
    assert_eq!(g.r(&format!("GET {}", a[0])), bulk("1"));
    assert_eq!(g.due(NOW + 100).len(), 2);
    assert_eq!(
        g.r(&format!("LRANGE {} 0 -1", a[2])),
        Reply::Array(vec![bulk("x"), bulk("y")])
    );
}

#[test]
fn the_persisted_slot_set_wins_over_the_initial_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut g = G::open(&db, 7, "0-10");
    assert_eq!(g.w("RAFTKV.SLOTS.REMOVE 5"), Reply::Int(1));
    drop(g);
    let g = G::open(&db, 7, "0-16383");
    assert_eq!(g.store.slots().to_string(), "0-4,6-10");
    assert_eq!(g.reader.slots().to_string(), "0-4,6-10");
    // Another group on the same database starts from its own initial set.
    let other = G::open(&db, 8, "11-20");
    assert_eq!(other.store.slots().to_string(), "11-20");
}

#[test]
fn removals_reach_readers_at_once_and_additions_once_written() {
    let (_dir, mut g) = group("0-99");
    let mut wb = rocksdb::WriteBatch::default();
    g.store.apply(&mut wb, &cmd("RAFTKV.SLOTS.REMOVE 0-9"), NOW);
    assert_eq!(
        g.reader.slots().to_string(),
        "10-99",
        "before the batch is written"
    );
    g.store.apply(&mut wb, &cmd("RAFTKV.SLOTS.ADD 200"), NOW);
    g.store.apply(&mut wb, &cmd("RAFTKV.SLOTS.REMOVE 10"), NOW);
    assert_eq!(g.reader.slots().to_string(), "11-99", "the addition waits");
    g.db.write(wb).unwrap();
    g.store.batch_written();
    assert_eq!(g.reader.slots().to_string(), "11-99,200");
}

#[test]
fn scan_walks_the_owned_run_from_its_cursor_and_hands_over_at_its_end() {
    let (_dir, mut g) = group("0-99,200-299,16000-16383");
    for (slots, p) in [("0-99", "x"), ("200-299", "y"), ("100-199", "z")] {
        if p == "z" {
            // Keys of a slot the group gave away: physically present, never scanned.
            g.w("RAFTKV.SLOTS.ADD 100-199");
        }
        for k in keys_in(&set(slots), p, 20) {
            g.w(&format!("SET {k} v"));
        }
    }
    g.w("RAFTKV.SLOTS.REMOVE 100-199");
    let (next, keys) = scan_page(&g.r("SCAN 0 COUNT 1000"));
    assert_eq!((next, keys.len()), (100, 20));
    assert!(keys.iter().all(|k| k.starts_with('x')));
    assert_eq!(g.r("SCAN 100"), crate::slots::tryagain(100));
    assert_eq!(g.r("SCAN 199"), crate::slots::tryagain(199));
    let (next, keys) = scan_page(&g.r("SCAN 200 COUNT 1000"));
    assert_eq!((next, keys.len()), (300, 20));
    assert_eq!(scan_page(&g.r("SCAN 16000")), (0, vec![]));
    // A small COUNT stops inside the run, at the next slot holding keys.
    let (next, keys) = scan_page(&g.r("SCAN 0 COUNT 1"));
    assert!(
        next > 0 && next < 100 && !keys.is_empty(),
        "{next} {keys:?}"
    );
    // KEYS sees the 40 keys of owned slots only.
    assert_eq!(sorted_keys(&g.r("KEYS *")).len(), 40);
    assert_eq!(g.counts().0, 40);
}

/// Slot commands, FLUSHALL and writes interleaved: the script every replica applies.
fn script() -> Vec<String> {
    let a = keys_in(&set("100"), "a", 2);
    let b = keys_in(&set("200"), "b", 2);
    vec![
        format!("SET {} 1 PX 50000", a[0]),
        format!("HSET {} f v", b[0]),
        "RAFTKV.SLOTS.REMOVE 200".into(),
        format!("SET {} 1", a[1]),
        format!("HSET {} f v", b[1]),
        "FLUSHALL".into(),
        "RAFTKV.SLOTS.ADD 200".into(),
        format!("HGETALL {}", b[0]),
        format!("SET {} 2 PX 50000", a[0]),
        "RAFTKV.SLOTS.REMOVE 100".into(),
        "DBSIZE".into(),
        "RAFTKV.SLOTS.ADD 100".into(),
        "DBSIZE".into(),
        "RAFTKV.CLEAN  100".into(),
    ]
}

#[test]
fn replies_and_bytes_do_not_depend_on_how_entries_are_batched() {
    let run = |split: usize| {
        let (dir, mut g) = group("0-16383");
        let lines = script();
        let cmds: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut replies = Vec::new();
        for chunk in cmds.chunks(split) {
            replies.extend(g.batch(chunk));
        }
        let dump: Vec<_> = dump_group(&g.db, 1, &crate::SlotSet::all())
            .into_iter()
            .filter(|(cf, k, _)| !(cf == "meta" && k.last() == Some(&b'a')))
            .collect();
        (replies, dump, g.counts(), g.store.slots().clone(), dir)
    };
    let one = run(1);
    assert_eq!(
        one.0[7],
        Reply::Map(vec![(bulk("f"), bulk("v"))]),
        "the slot kept its data through the FLUSHALL"
    );
    assert_eq!(one.0[10], Reply::Int(1));
    assert_eq!(one.0[12], Reply::Int(2));
    assert_eq!(one.2, (2, 1));
    for split in [2, 3, 5, 14] {
        let other = run(split);
        assert_eq!(one.0, other.0, "replies, batches of {split}");
        assert_eq!(one.1, other.1, "bytes, batches of {split}");
        assert_eq!((one.2, &one.3), (other.2, &other.3), "batches of {split}");
    }
}
