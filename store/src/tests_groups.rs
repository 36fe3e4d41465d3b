//! Two groups on one database (the multi-raft layout): groups 1 and 2 own interleaved,
//! disjoint slot sets; each serves, counts, sweeps, scans, flushes and snapshots only its
//! own slots, and never touches the other's records.

use std::collections::BTreeSet;

use resp::Reply;

use crate::testgroup::*;
use crate::SlotSet;

const S1: &str = "0-4095,8192-12287";
const S2: &str = "4096-8191,12288-16383";

/// Both groups on one database, each with 30 plain keys, 10 keys with a 50 ms TTL, a hash
/// and a sorted set.
struct Two {
    _dir: tempfile::TempDir,
    g1: G,
    g2: G,
    keys1: Vec<String>,
    keys2: Vec<String>,
}

impl Two {
    /// Group 2's first key without a TTL or a collection.
    fn plain2(&self) -> String {
        self.keys2
            .iter()
            .find(|k| k.contains("-plain"))
            .unwrap()
            .clone()
    }

    fn new() -> Two {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let (mut g1, mut g2) = (G::open(&db, 1, S1), G::open(&db, 2, S2));
        let keys1 = Self::fill(&mut g1, "a");
        let keys2 = Self::fill(&mut g2, "b");
        Two {
            _dir: dir,
            g1,
            g2,
            keys1,
            keys2,
        }
    }

    /// Writes the group's keys (prefix `p`); returns them all, sorted.
    fn fill(g: &mut G, p: &str) -> Vec<String> {
        let owned = g.store.slots().clone();
        let plain = keys_in(&owned, &format!("{p}-plain"), 30);
        let ttl = keys_in(&owned, &format!("{p}-ttl"), 10);
        let hash = keys_in(&owned, &format!("{p}-hash"), 1).remove(0);
        let zset = keys_in(&owned, &format!("{p}-zset"), 1).remove(0);
        let mset: Vec<String> = plain.iter().map(|k| format!("{k} v-{k}")).collect();
        assert_eq!(g.w(&format!("MSET {}", mset.join(" "))), Reply::ok());
        for k in &ttl {
            assert_eq!(g.w(&format!("SET {k} t PX 50")), Reply::ok());
        }
        assert_eq!(g.w(&format!("HSET {hash} f1 v1 f2 v2")), Reply::Int(2));
        assert_eq!(g.w(&format!("ZADD {zset} 1 m1 2 m2")), Reply::Int(2));
        let mut all: Vec<String> = plain.into_iter().chain(ttl).collect();
        all.extend([hash, zset]);
        all.sort();
        all
    }

    fn ttl_keys(keys: &[String]) -> Vec<String> {
        keys.iter()
            .filter(|k| k.contains("-ttl"))
            .cloned()
            .collect()
    }

    /// The group owning `slot`.
    fn owner(&self, slot: u16) -> &G {
        if set(S1).contains(slot) {
            &self.g1
        } else {
            &self.g2
        }
    }
}

#[test]
fn two_groups_on_one_db_keep_keys_counters_and_due_keys_apart() {
    let mut t = Two::new();
    assert_eq!(t.g1.counts(), (42, 10));
    assert_eq!(t.g2.counts(), (42, 10));
    assert_eq!(t.g1.r("DBSIZE"), Reply::Int(42));
    assert_eq!(sorted_keys(&t.g1.r("KEYS *")), t.keys1);
    assert_eq!(sorted_keys(&t.g2.r("KEYS *")), t.keys2);
    // Each group refuses the other's keys, on write and on read.
    let other = &t.keys2[t.keys2.len() - 1];
    assert!(other.contains("-zset"));
    assert_eq!(t.g1.w(&format!("SET {other} x")), refused(other));
    assert_eq!(t.g1.r(&format!("GET {other}")), refused(other));
    assert_eq!(t.g2.r(&format!("ZSCORE {other} m2")), Reply::Double(2.0));
    // Due keys: each group's own, never the other's.
    let later = NOW + 1_000;
    assert_eq!(t.g1.due(later), Two::ttl_keys(&t.keys1));
    assert_eq!(t.g2.due(later), Two::ttl_keys(&t.keys2));
    assert!(t.g1.due(NOW).is_empty());
    // The sweep of one group deletes only its own due keys.
    let due1 = t.g1.due(later).join(" ");
    assert_eq!(
        t.g1.reader.read(&cmd("DBSIZE"), later).0,
        Reply::Int(42),
        "expired keys count until deleted"
    );
    let mut wb = rocksdb::WriteBatch::default();
    let n = t.g1.store.apply(&mut wb, &cmd("RAFTKV.SWEEP 1000"), later);
    t.g1.store.stage_applied(&mut wb, 100);
    t.g1.db.write(wb).unwrap();
    t.g1.store.batch_written();
    assert_eq!(n, Reply::Int(10), "{due1}");
    assert_eq!(t.g1.counts(), (32, 0));
    assert_eq!(t.g2.counts(), (42, 10));
    assert_eq!(t.g2.due(later), Two::ttl_keys(&t.keys2));
    // RANDOMKEY answers the group's own keys only.
    for _ in 0..30 {
        let Reply::Bulk(k) = t.g2.r("RANDOMKEY") else {
            panic!("no key");
        };
        assert!(t.keys2.contains(&String::from_utf8(k.to_vec()).unwrap()));
    }
}

#[test]
fn scan_across_groups_by_the_cursor_contract_covers_every_key_once() {
    let t = Two::new();
    let (mut cursor, mut seen, mut cursors) = (0u64, Vec::new(), BTreeSet::new());
    for call in 0.. {
        assert!(call < 10_000, "SCAN does not end");
        let g = t.owner(cursor as u16);
        let (next, keys) = scan_page(&g.r(&format!("SCAN {cursor} COUNT 7")));
        seen.extend(keys);
        if next == 0 {
            break;
        }
        assert!(
            next > cursor,
            "the cursor moves forward: {cursor} -> {next}"
        );
        cursors.insert(next);
        cursor = next;
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "no key twice");
    let mut all = [t.keys1.clone(), t.keys2.clone()].concat();
    all.sort();
    assert_eq!(seen, all, "every key once");
    // The hand-overs between groups are at the run boundaries.
    for boundary in [4096, 8192, 12288] {
        assert!(cursors.contains(&boundary), "{boundary} in {cursors:?}");
    }
    // A SCAN sent to a group that does not own the cursor's slot is refused.
    let e = crate::slots::tryagain(4096);
    assert_eq!(t.g1.r("SCAN 4096"), e);
    // One group's last run ends the keyspace: its cursor after slot 16383 is 0.
    assert_eq!(scan_page(&t.g2.r("SCAN 12288 COUNT 100000")).0, 0);
    assert_eq!(scan_page(&t.g1.r("SCAN 8192 COUNT 100000")).0, 12288);
}

#[test]
fn flushall_of_one_group_leaves_the_other_intact() {
    let mut t = Two::new();
    let s2 = set(S2);
    let before = dump_group(&t.g2.db, 2, &s2);
    let keys2: Vec<bytes::Bytes> = t
        .keys2
        .iter()
        .map(|k| bytes::Bytes::from(k.clone()))
        .collect();
    let watched = t.g2.reader.watch_versions(&keys2, NOW).unwrap();
    assert!(t.g1.reader.has_collection_records());
    assert_eq!(t.g1.w("FLUSHALL"), Reply::ok());
    // Group 1 is empty: keys, counters, due keys, collection records.
    assert_eq!(t.g1.counts(), (0, 0));
    assert_eq!(t.g1.r("KEYS *"), Reply::Array(vec![]));
    assert!(t.g1.due(NOW + 1_000).is_empty());
    assert!(!t.g1.reader.has_collection_records());
    let left: Vec<_> = dump_group(&t.g1.db, 1, &set(S1))
        .into_iter()
        .filter(|(cf, _, _)| cf != "meta" && cf != "kver")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Group 2 is byte for byte what it was, and WATCH sees no change in it.
    assert_eq!(dump_group(&t.g2.db, 2, &s2), before);
    assert_eq!(t.g2.counts(), (42, 10));
    assert_eq!(sorted_keys(&t.g2.r("KEYS *")), t.keys2);
    assert_eq!(t.g2.due(NOW + 1_000), Two::ttl_keys(&t.keys2));
    assert!(t.g2.reader.has_collection_records());
    assert_eq!(t.g2.reader.watch_versions(&keys2, NOW).unwrap(), watched);
    // A key written after the FLUSHALL in the same batch is there.
    let k = &t.keys1[1];
    let r = t.g1.batch(&["FLUSHALL", &format!("SET {k} again")]);
    assert_eq!(r, vec![Reply::ok(), Reply::ok()]);
    assert_eq!(t.g1.r(&format!("GET {k}")), bulk("again"));
    assert_eq!(t.g1.counts(), (1, 0));
}

#[test]
fn a_group_snapshot_restores_into_a_fresh_db_and_into_the_shared_one() {
    let mut t = Two::new();
    let s1 = set(S1);
    let at_export = dump_group(&t.g1.db, 1, &s1);
    let dir = tempfile::tempdir().unwrap();
    let export =
        t.g1.store
            .export_snapshot(dir.path().to_path_buf())
            .unwrap();
    // Writes after the capture are not in the snapshot.
    let plain: Vec<&String> = t.keys1.iter().filter(|k| k.contains("-plain")).collect();
    let (k0, k1) = (plain[0].clone(), plain[1].clone());
    t.g1.w(&format!("DEL {k0}"));
    t.g1.w(&format!("SET {k1} changed"));
    export.finish().unwrap();

    // Into a fresh database, over a group 1 that served every slot.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = open_db(fresh_dir.path());
    let mut f1 = G::open(&fresh, 1, "0-16383");
    let inside = keys_in(&s1, "stale", 1).remove(0);
    let outside = keys_in(&set(S2), "stale", 1).remove(0);
    f1.w(&format!("SET {inside} x"));
    f1.w(&format!("SET {outside} x"));
    f1.store.restore_snapshot(dir.path()).unwrap();
    assert_eq!(dump_group(&fresh, 1, &s1), at_export, "byte for byte");
    assert_eq!(f1.store.slots(), &s1);
    assert_eq!(*f1.reader.slots(), s1);
    assert_eq!(f1.counts(), (42, 10));
    assert_eq!(sorted_keys(&f1.r("KEYS *")), t.keys1);
    assert_eq!(f1.r(&format!("GET {k0}")), bulk(&format!("v-{k0}")));
    assert_eq!(f1.r(&format!("GET {inside}")), Reply::Nil);
    assert_eq!(f1.r(&format!("GET {outside}")), refused(&outside));
    assert_eq!(f1.due(NOW + 1_000), Two::ttl_keys(&t.keys1));

    // Into the shared database: group 1 goes back to the snapshot, group 2 is untouched.
    let b0 = t.plain2();
    t.g2.w(&format!("SET {b0} g2-new"));
    let s2 = set(S2);
    let g2_before = dump_group(&t.g2.db, 2, &s2);
    t.g1.store.restore_snapshot(dir.path()).unwrap();
    assert_eq!(dump_group(&t.g1.db, 1, &s1), at_export);
    assert_eq!(t.g1.r(&format!("GET {k1}")), bulk(&format!("v-{k1}")));
    assert_eq!(t.g1.counts(), (42, 10));
    assert_eq!(dump_group(&t.g2.db, 2, &s2), g2_before);
    assert_eq!(t.g2.counts(), (42, 10));
    assert_eq!(t.g2.r(&format!("GET {b0}")), bulk("g2-new"));
    // A group never takes another group's snapshot.
    let e = t.g2.store.restore_snapshot(dir.path()).unwrap_err();
    assert!(e.contains("snapshot of group 1 offered to group 2"), "{e}");
    assert_eq!(dump_group(&t.g2.db, 2, &s2), g2_before);
}

#[test]
fn a_checkpoint_snapshot_materializes_the_captured_group_and_restores_only_it() {
    let mut t = Two::new();
    let (s1, s2) = (set(S1), set(S2));
    // Part of the state in the memtables, part in table files: the capture holds both.
    t.g1.db.flush().unwrap();
    let plain: Vec<String> = t
        .keys1
        .iter()
        .filter(|k| k.contains("-plain"))
        .cloned()
        .collect();
    let (k0, k1) = (&plain[0], &plain[1]);
    t.g1.w(&format!("SET {k0} in-memtable"));
    let at_capture = dump_group(&t.g1.db, 1, &s1);
    let snap = tempfile::tempdir().unwrap();
    t.g1.store.capture_snapshot(snap.path()).unwrap();
    assert!(crate::snapshot_checkpoint::captured_only(snap.path()));
    // Writes after the capture, of both groups, are not in the snapshot.
    t.g1.w(&format!("SET {k0} after"));
    t.g1.w(&format!("DEL {k1}"));
    let b0 = t.plain2();
    t.g2.w(&format!("SET {b0} g2-new"));
    t.g1.db.flush().unwrap();
    // A crash during a first materialization left a partial file: the redo replaces it.
    std::fs::write(snap.path().join("data.sst"), b"torn").unwrap();
    crate::snapshot_checkpoint::materialize(snap.path()).unwrap();
    assert!(!crate::snapshot_checkpoint::captured_only(snap.path()));
    let data = std::fs::read(snap.path().join("data.sst")).unwrap();
    assert_ne!(data, b"torn");
    // A redo after a crash that followed the checkpoint's removal finds the files made.
    crate::snapshot_checkpoint::materialize(snap.path()).unwrap();
    assert_eq!(std::fs::read(snap.path().join("data.sst")).unwrap(), data);

    // Into a fresh database: exactly the captured records of group 1.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = open_db(fresh_dir.path());
    let mut f1 = G::open(&fresh, 1, "0-16383");
    f1.store.restore_snapshot(snap.path()).unwrap();
    assert_eq!(dump_group(&fresh, 1, &s1), at_capture, "byte for byte");
    assert_eq!(f1.r(&format!("GET {k0}")), bulk("in-memtable"));
    assert_eq!(f1.counts(), (42, 10));
    assert!(
        dump_group(&fresh, 2, &s2).is_empty(),
        "no record of group 2"
    );

    // Into the shared database: group 1 goes back to the capture, group 2 is untouched.
    let g2_before = dump_group(&t.g2.db, 2, &s2);
    t.g1.store.restore_snapshot(snap.path()).unwrap();
    assert_eq!(dump_group(&t.g1.db, 1, &s1), at_capture);
    assert_eq!(t.g1.r(&format!("GET {k1}")), bulk(&format!("v-{k1}")));
    assert_eq!(t.g1.r(&format!("GET {k0}")), bulk("in-memtable"));
    assert_eq!(dump_group(&t.g2.db, 2, &s2), g2_before);
    assert_eq!(t.g2.r(&format!("GET {b0}")), bulk("g2-new"));
}

#[test]
fn the_cleaner_of_one_group_leaves_the_other_alone() {
    let mut t = Two::new();
    let sub_records = |t: &Two, slots: &SlotSet| {
        dump_group(&t.g1.db, 0, slots)
            .iter()
            .filter(|(cf, _, _)| cf == "sub")
            .count()
    };
    let (s1, s2) = (set(S1), set(S2));
    let (h1, h2) = (&t.keys1[0], &t.keys2[0]);
    assert!(h1.contains("hash") && h2.contains("hash"));
    t.g1.w(&format!("DEL {h1}"));
    t.g2.w(&format!("DEL {h2}"));
    // Each group has its live zset's 2 members plus the deleted hash's 2 stale fields.
    assert_eq!((sub_records(&t, &s1), sub_records(&t, &s2)), (4, 4));
    let step = t.g1.w("RAFTKV.CLEAN  1000");
    assert_eq!(step, Reply::Array(vec![bulk(""), Reply::Int(1)]));
    assert_eq!((sub_records(&t, &s1), sub_records(&t, &s2)), (2, 4));
    t.g2.w("RAFTKV.CLEAN  1000");
    assert_eq!((sub_records(&t, &s1), sub_records(&t, &s2)), (2, 2));
}

#[test]
fn scattered_slot_sets_scan_snapshot_and_restore_slot_by_slot() {
    // Slots below 1024 alternate between the groups, then one big run each (500+ runs).
    let (mut odd, mut even) = (set("1024-8191"), set("8192-16383"));
    for s in 0..1024 {
        let set = if s % 2 == 1 { &mut odd } else { &mut even };
        set.insert_range(s, s);
    }
    assert_eq!((odd.ranges().count(), even.ranges().count()), (512, 513));
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut g1 = G::open(&db, 1, &odd.to_string());
    let mut g2 = G::open(&db, 2, &even.to_string());
    let below = set("0-1023");
    let k1 = [
        keys_in(&odd.intersection(&below), "o", 100),
        keys_in(&odd, "p", 50),
    ]
    .concat();
    let k2 = [
        keys_in(&even.intersection(&below), "e", 100),
        keys_in(&even, "f", 50),
    ]
    .concat();
    let pairs = |ks: &[String]| ks.iter().map(|k| format!("{k} {k}")).collect::<Vec<_>>();
    g1.w(&format!("MSET {}", pairs(&k1).join(" ")));
    g2.w(&format!("MSET {}", pairs(&k2).join(" ")));
    // SCAN hands over at every slot below 1024 and still sees every key once.
    let (mut cursor, mut seen) = (0u64, Vec::new());
    loop {
        let g = if odd.contains(cursor as u16) {
            &g1
        } else {
            &g2
        };
        let (next, keys) = scan_page(&g.r(&format!("SCAN {cursor} COUNT 20")));
        seen.extend(keys);
        if next == 0 {
            break;
        }
        if cursor < 1023 {
            assert_eq!(next, cursor + 1, "one slot per call");
        }
        cursor = next;
    }
    seen.sort();
    let mut all = [k1.clone(), k2.clone()].concat();
    all.sort();
    assert_eq!(seen, all);
    // Snapshot group 1, change both, restore group 1: it is back, group 2 keeps its change.
    let at_export = dump_group(&db, 1, &odd);
    let snap = tempfile::tempdir().unwrap();
    let export = g1.store.export_snapshot(snap.path().to_path_buf()).unwrap();
    export.finish().unwrap();
    g1.w(&format!("DEL {}", k1[0]));
    g2.w(&format!("DEL {}", k2[0]));
    let g2_after = dump_group(&db, 2, &even);
    g1.store.restore_snapshot(snap.path()).unwrap();
    assert_eq!(dump_group(&db, 1, &odd), at_export);
    assert_eq!(dump_group(&db, 2, &even), g2_after);
    assert_eq!((g1.counts(), g2.counts()), ((150, 0), (149, 0)));
    // FLUSHALL of group 1's slots leaves every one of group 2's.
    g1.w("FLUSHALL");
    assert_eq!(g1.r("KEYS *"), Reply::Array(vec![]));
    assert_eq!(dump_group(&db, 2, &even), g2_after);
    assert_eq!(sorted_keys(&g2.r("KEYS *")).len(), 149);
}
