//! Tests of what all types share: the cleaner's bounded passes, its cursor, the persisted
//! version counter, the expiry index kept in step, and snapshots carrying collections.

use super::clean::{clean, Cursor};
use super::meta::data_key;
use super::testutil::{bs, Db, NOW};
use super::view::{DbView, Overlay, Staged};
use super::{hash, list, set, zset, Cf, Read, Versions, Write};

fn fill(db: &mut Db, n: usize) {
    for i in 0..n {
        let k = format!("k{i}").into_bytes();
        db.w(|st| match i % 4 {
            0 => drop(hash::hset(st, &k, &[(b"f", b"v"), (b"g", b"w")]).unwrap()),
            1 => drop(list::push(st, &k, list::End::Right, &bs(&["a", "b"]), false).unwrap()),
            2 => drop(set::sadd(st, &k, &bs(&["a", "b"])).unwrap()),
            _ => drop(zset::zadd(st, &k, Default::default(), &[(1.0, b"a"), (2.0, b"b")]).unwrap()),
        });
    }
}

/// Records the live collections hold: (sub, score).
fn live_records(db: &Db, n: usize) -> (usize, usize) {
    db.r(|v| {
        let (mut sub, mut score) = (0, 0);
        for i in 0..n {
            let k = format!("k{i}").into_bytes();
            let len = match i % 4 {
                0 => hash::hlen(v, &k),
                1 => list::llen(v, &k),
                2 => set::scard(v, &k),
                _ => zset::zcard(v, &k),
            };
            let len = len.unwrap() as usize;
            sub += len;
            score += if i % 4 == 3 { len } else { 0 };
        }
        (sub, score)
    })
}

#[test]
fn the_cleaner_removes_only_stale_versions_in_bounded_calls() {
    let mut db = Db::new();
    fill(&mut db, 40);
    for i in (0..40).step_by(3) {
        db.del(format!("k{i}").as_bytes());
    }
    // Some of them re-created: new versions beside the stale records.
    fill(&mut db, 10);
    let before = (db.count(Cf::Sub), db.count(Cf::Score));
    let live = live_records(&db, 40);
    assert!(
        before.0 > live.0 && before.1 > live.1,
        "{before:?} {live:?}"
    );
    let mut cursor = Cursor::default();
    let mut calls = 0;
    loop {
        calls += 1;
        let rep = db.w(|st| {
            let rep = clean(st, &cursor, 7, crate::SlotSet::all_ref()).unwrap();
            // One seek and one metadata lookup per collection examined, one range delete
            // per stale one: bounded by the limit, whatever the collections hold.
            assert!(st.stats().reads() <= 2 * 7 + 1 && st.stats().writes() <= 7);
            rep
        });
        assert!(rep.examined <= 7);
        match rep.next {
            Some(c) => cursor = Cursor::decode(&c.encode()).unwrap(),
            None => break,
        }
    }
    assert!(calls <= 12, "{calls} calls");
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), live);
    assert_eq!(live_records(&db, 40), live, "live collections untouched");
    db.r(|v| {
        assert_eq!(hash::hlen(v, b"k0").unwrap(), 2, "re-created");
        assert_eq!(list::lrange(v, b"k13", 0, -1).unwrap(), bs(&["a", "b"]));
        assert_eq!(set::scard(v, b"k18").unwrap(), 0, "deleted, not re-created");
        assert_eq!(
            zset::zcard(v, b"k15").unwrap(),
            0,
            "deleted, not re-created"
        );
        assert_eq!(zset::zcard(v, b"k7").unwrap(), 2);
    });
    assert_eq!(db.clean_all(100), 1, "a second pass finds nothing to do");
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), live);
}

#[test]
fn expired_collections_are_stale_for_the_cleaner() {
    let mut db = Db::new();
    db.w(|st| set::sadd(st, b"s", &bs(&["a", "b", "c"])).unwrap());
    db.expire_at(b"s", NOW + 1);
    db.clean_all(10);
    assert_eq!(db.count(Cf::Sub), 3, "not yet expired at NOW");
    db.batch(NOW + 1, |st| {
        clean(st, &Cursor::default(), 10, crate::SlotSet::all_ref()).unwrap()
    });
    assert_eq!(db.count(Cf::Sub), 0);
}

#[test]
fn cursors_round_trip_and_refuse_foreign_bytes() {
    let c = Cursor {
        in_score: true,
        from: b"\x00\x01abc".to_vec(),
    };
    assert_eq!(Cursor::decode(&c.encode()), Some(c));
    assert_eq!(Cursor::decode(b""), None);
    assert_eq!(Cursor::decode(b"\x07x"), None);
}

#[test]
fn versions_grow_persist_and_never_repeat() {
    let mut db = Db::new();
    db.w(|st| hash::hset(st, b"a", &[(b"f", b"v")]).unwrap());
    let first = db.versions.last();
    assert!(first >= (NOW as u64) << 16, "floored by the stamped time");
    db.del(b"a");
    db.w(|st| hash::hset(st, b"a", &[(b"f", b"v")]).unwrap());
    assert!(db.versions.last() > first);
    let loaded = Versions::load(&db.db, 1).unwrap();
    assert_eq!(loaded, db.versions, "the counter is staged with the batch");
    // A stamped time going backwards (never happens: the store clamps it) still moves on.
    let mut v = loaded.clone();
    assert!(v.next(0) > loaded.last());
    v.raise_to(u64::MAX - 1);
    assert_eq!(v.next(NOW), u64::MAX);
}

fn expire_entries(db: &Db) -> usize {
    let cf = db.db.cf_handle(crate::CF_EXPIRE).unwrap();
    db.db.iterator_cf(cf, rocksdb::IteratorMode::Start).count()
}

#[test]
fn the_expiry_index_and_key_count_follow_collections() {
    let mut db = Db::new();
    db.w(|st| list::push(st, b"l", list::End::Left, &bs(&["a"]), false).unwrap());
    db.expire_at(b"l", NOW + 50);
    assert_eq!((db.keys, expire_entries(&db)), (1, 1));
    db.w(|st| list::push(st, b"l", list::End::Left, &bs(&["b"]), false).unwrap());
    assert_eq!(expire_entries(&db), 1, "a push keeps the TTL");
    db.r(|v| {
        assert_eq!(
            super::meta::load(v, b"l", crate::TYPE_LIST)
                .unwrap()
                .unwrap()
                .expire,
            NOW + 50
        )
    });
    db.w(|st| list::pop(st, b"l", list::End::Left, 5).unwrap());
    assert_eq!(
        (db.keys, expire_entries(&db)),
        (0, 0),
        "the emptied list takes its TTL along"
    );
}

#[test]
fn a_snapshot_carries_every_collection_family() {
    let mut src = Db::new();
    fill(&mut src, 4);
    let dir = tempfile::tempdir().unwrap();
    // A group's snapshot covers the slots recorded for it (a `Store` records them at open).
    crate::scope::load_or_init_slots(&src.db, 1, crate::SlotSet::all()).unwrap();
    crate::snapshot::export(src.db.clone(), dir.path().to_path_buf(), 1)
        .unwrap()
        .finish()
        .unwrap();
    let mut dst = Db::new();
    dst.w(|st| hash::hset(st, b"gone", &[(b"f", b"v")]).unwrap());
    crate::snapshot::restore(&dst.db, dir.path(), 1).unwrap();
    dst.versions = Versions::load(&dst.db, 1).unwrap();
    assert_eq!(dst.versions, src.versions);
    dst.r(|v| {
        assert_eq!(hash::hgetall(v, b"k0").unwrap().len(), 2);
        assert_eq!(list::lrange(v, b"k1", 0, -1).unwrap(), bs(&["a", "b"]));
        assert!(set::sismember(v, b"k2", b"b").unwrap());
        assert_eq!(zset::zscore(v, b"k3", b"b").unwrap(), Some(2.0));
        assert_eq!(hash::hlen(v, b"gone").unwrap(), 0);
    });
    assert_eq!(dst.count(Cf::Score), 2);
}

#[test]
fn a_staged_view_reads_a_rocksdb_snapshot_unchanged_by_later_writes() {
    let mut db = Db::new();
    db.w(|st| hash::hset(st, b"h", &[(b"a", b"1")]).unwrap());
    let handle = db.db.clone();
    let snap = handle.snapshot();
    db.w(|st| hash::hset(st, b"h", &[(b"b", b"2")]).unwrap());
    let view = DbView::at_snapshot(&handle, &snap, NOW);
    assert_eq!(hash::hkeys(&view, b"h").unwrap(), bs(&["a"]));
    // Several commands staged into one WriteBatch through separate views share the overlay.
    let mut wb = rocksdb::WriteBatch::default();
    let mut ov = Overlay::default();
    let mut versions = db.versions.clone();
    for f in [&b"x"[..], b"y"] {
        let mut st = Staged::new(&db.db, &mut wb, &mut ov, &mut versions, 1, NOW).unwrap();
        hash::hset(&mut st, b"h", &[(f, b"v")]).unwrap();
    }
    let st = Staged::new(&db.db, &mut wb, &mut ov, &mut versions, 1, NOW).unwrap();
    assert_eq!(hash::hlen(&st, b"h").unwrap(), 4);
    assert!(ov.bytes() > 0 && !ov.is_empty());
}

#[test]
fn flush_all_hides_everything_before_it_in_the_batch_and_deletes_it() {
    let mut db = Db::new();
    fill(&mut db, 8);
    db.set_string(b"str", b"v");
    let seen = db.w(|st| {
        st.flush_all();
        let gone = (
            hash::hlen(st, b"k0").unwrap(),
            zset::zcard(st, b"k3").unwrap(),
        );
        list::push(st, b"k1", list::End::Left, &bs(&["new"]), false).unwrap();
        (
            gone,
            list::lrange(st, b"k1", 0, -1).unwrap(),
            st.get(Cf::Data, &data_key(b"str")).unwrap(),
        )
    });
    assert_eq!(seen, ((0, 0), bs(&["new"]), None));
    assert_eq!((db.count(Cf::Data), db.keys), (1, 1));
    assert_eq!((db.count(Cf::Sub), db.count(Cf::Score)), (1, 0));
    assert_eq!(expire_entries(&db), 0);
    assert_eq!(db.r(|v| list::lrange(v, b"k1", 0, -1)), Ok(bs(&["new"])));
}

/// Scans through the staged view against a model: random committed records, random staged
/// puts and deletes over them, random bounds, both directions, stopping early.
#[test]
fn staged_scans_merge_the_overlay_like_a_model() {
    use std::collections::BTreeMap;
    let db = Db::new();
    let mut rng = super::Rng::new(11);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let key = |rng: &mut super::Rng| vec![0, (rng.next_u64() % 40) as u8];
    for round in 0..20u8 {
        let mut wb = rocksdb::WriteBatch::default();
        let mut ov = Overlay::default();
        let mut versions = Versions::default();
        let mut st = Staged::new(&db.db, &mut wb, &mut ov, &mut versions, 1, NOW).unwrap();
        for _ in 0..15 {
            let k = key(&mut rng);
            if rng.next_u64().is_multiple_of(3) {
                st.delete(Cf::Sub, &k);
                model.remove(&k);
            } else {
                st.put(Cf::Sub, &k, &[round]);
                model.insert(k, vec![round]);
            }
        }
        for _ in 0..30 {
            let (a, b) = (key(&mut rng), key(&mut rng));
            let (lo, hi) = (a.clone().min(b.clone()), a.max(b));
            let reverse = rng.next_u64().is_multiple_of(2);
            let stop_after = (rng.next_u64() % 12) as usize;
            let mut got = Vec::new();
            st.scan(Cf::Sub, &lo, &hi, reverse, &mut |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                got.len() < stop_after
            })
            .unwrap();
            let range = model.range(lo.clone()..hi.clone());
            let want: Vec<(Vec<u8>, Vec<u8>)> = if reverse {
                range
                    .rev()
                    .take(stop_after.max(1))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                range
                    .take(stop_after.max(1))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            assert_eq!(got, want, "round {round} {lo:?}..{hi:?} rev={reverse}");
            for probe in [&lo, &hi] {
                assert_eq!(st.get(Cf::Sub, probe).unwrap().as_ref(), model.get(probe));
            }
        }
        db.db.write(wb).unwrap();
    }
}

/// Every record of every family, as bytes.
fn dump(db: &Db) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for name in [
        crate::CF_DATA,
        crate::CF_EXPIRE,
        crate::CF_META,
        super::CF_SUB,
        super::CF_ZSCORE,
    ] {
        let cf = db.db.cf_handle(name).unwrap();
        for kv in db.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = kv.unwrap();
            out.push((name.to_string(), k.to_vec(), v.to_vec()));
        }
    }
    out
}

/// A mixed workload (SPOP seeded from the "entry"), applied to two stores: replicas that
/// apply the same entries hold the same bytes.
fn workload(db: &mut Db, seed: u64) {
    let mut rng = super::Rng::new(seed);
    for step in 0..300i64 {
        let k = format!("k{}", rng.next_u64() % 12).into_bytes();
        let m = format!("m{}", rng.next_u64() % 20).into_bytes();
        let entry_seed = rng.next_u64();
        let op = rng.next_u64() % 8;
        db.batch(NOW + step, |st| {
            let _ = match op {
                0 => hash::hset(st, &k, &[(&m, &m)]).map(drop),
                1 => list::push(st, &k, list::End::Left, &[&m], false).map(drop),
                2 => set::sadd(st, &k, &[&m]).map(drop),
                3 => set::spop(st, &k, 2, entry_seed).map(drop),
                4 => zset::zadd(st, &k, Default::default(), &[(step as f64, &m)]).map(drop),
                5 => zset::zpop(st, &k, true, 1).map(drop),
                6 => st.del_data(&k),
                _ => clean(st, &Cursor::default(), 3, crate::SlotSet::all_ref()).map(drop),
            };
        });
    }
}

#[test]
fn replicas_applying_the_same_entries_hold_the_same_bytes() {
    let (mut a, mut b) = (Db::new(), Db::new());
    workload(&mut a, 77);
    workload(&mut b, 77);
    let (da, db_) = (dump(&a), dump(&b));
    assert!(da.len() > 20, "the workload left data: {}", da.len());
    assert_eq!(da, db_);
}

#[test]
fn scans_after_a_partial_flush_skip_exactly_the_flushed_slots() {
    use super::view::live_pieces;
    let gone = crate::SlotSet::parse("1-2,5").unwrap();
    let k = |slot: u16, rest: &[u8]| [&slot.to_be_bytes()[..], rest].concat();
    let pieces = live_pieces(&k(0, b"m"), &[0xff; 8], Some(&gone));
    assert_eq!(
        pieces,
        vec![
            (k(0, b"m"), k(1, b"")),
            (k(3, b""), k(5, b"")),
            (k(6, b""), vec![0xff; 8]),
        ]
    );
    // A range inside one slot: kept whole, or dropped when the slot is gone.
    let one = (k(7, b"a"), k(7, b"b"));
    assert_eq!(live_pieces(&one.0, &one.1, Some(&gone)), vec![one.clone()]);
    assert!(live_pieces(&k(2, b"a"), &k(2, b"b"), Some(&gone)).is_empty());
    assert_eq!(live_pieces(&one.0, &one.1, None), vec![one.clone()]);
    assert!(live_pieces(&[], &[0xff; 8], Some(&crate::SlotSet::all())).is_empty());
    // A range that starts in a gone slot and ends inside a kept one.
    assert_eq!(
        live_pieces(&k(5, b"x"), &k(6, b"q"), Some(&gone)),
        vec![(k(6, b""), k(6, b"q"))]
    );
}
