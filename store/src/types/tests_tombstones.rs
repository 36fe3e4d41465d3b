//! Tests that pops and range removals do not leave later operations stepping over the
//! tombstones of what they deleted (RocksDB keeps a deleted key until compaction, and an
//! iterator skips each one it meets): counted with RocksDB's perf context
//! (`internal_delete_skipped_count`), not timed. Also checks that the sorted sets'
//! live-range hints stay correct when members below or above them are added again.

use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};

use super::meta::{self, Meta};
use super::testutil::Db;
use super::zset::*;
use super::{list, set};
use crate::TYPE_ZSET;

const N: usize = 2000;
const POPPED: usize = 1000;

/// Runs `f` and returns what it returned and the deleted keys its iterators skipped.
fn skipped<T>(f: impl FnOnce() -> T) -> (T, u64) {
    set_perf_stats(PerfStatsLevel::EnableCount);
    let mut ctx = PerfContext::default();
    ctx.reset();
    let out = f();
    let n = ctx.metric(PerfMetric::InternalDeleteSkippedCount);
    set_perf_stats(PerfStatsLevel::Disable);
    (out, n)
}

fn member(i: usize) -> Vec<u8> {
    format!("element:{i:06}").into_bytes()
}

/// A sorted set of N members, all of score 0 (as redis-benchmark's), one batch per pop of
/// POPPED members from the `max` end.
fn popped_zset(max: bool) -> Db {
    let mut db = Db::new();
    let pairs: Vec<(f64, Vec<u8>)> = (0..N).map(|i| (0.0, member(i))).collect();
    db.w(|st| zadd(st, b"z", ZAddFlags::default(), &pairs).unwrap());
    for _ in 0..POPPED {
        assert_eq!(db.w(|st| zpop(st, b"z", max, 1).unwrap()).len(), 1);
    }
    db
}

#[test]
fn zpopmin_and_reads_seek_past_earlier_pops() {
    let mut db = popped_zset(false);
    let (out, n) = skipped(|| db.w(|st| zpop(st, b"z", false, 1).unwrap()));
    assert_eq!(out, vec![(member(POPPED), 0.0)]);
    assert!(n <= 2, "ZPOPMIN skipped {n} tombstones");
    let first = RangeBy::Rank(0, 0);
    let (out, n) = skipped(|| db.r(|v| zrange(v, b"z", &first, false, None).unwrap()));
    assert_eq!(out, vec![(member(POPPED + 1), 0.0)]);
    assert!(n <= 2, "ZRANGE 0 0 skipped {n} tombstones");
    let all = RangeBy::Score(
        ScoreBound::Inclusive(f64::NEG_INFINITY),
        ScoreBound::Inclusive(0.0),
    );
    let (out, n) = skipped(|| db.r(|v| zrange(v, b"z", &all, false, Some((0, 1))).unwrap()));
    assert_eq!(out, vec![(member(POPPED + 1), 0.0)]);
    assert!(n <= 2, "ZRANGEBYSCORE skipped {n} tombstones");
    let (rank, n) = skipped(|| db.r(|v| zrank(v, b"z", &member(POPPED + 3), false).unwrap()));
    assert_eq!(rank, Some(2));
    assert!(n <= 2, "ZRANK skipped {n} tombstones");
}

#[test]
fn zpopmax_seeks_past_earlier_pops() {
    let mut db = popped_zset(true);
    let (out, n) = skipped(|| db.w(|st| zpop(st, b"z", true, 1).unwrap()));
    assert_eq!(out, vec![(member(N - POPPED - 1), 0.0)]);
    assert!(n <= 2, "ZPOPMAX skipped {n} tombstones");
    let last = RangeBy::Rank(-1, -1);
    let (out, n) = skipped(|| db.r(|v| zrange(v, b"z", &last, false, None).unwrap()));
    assert_eq!(out, vec![(member(N - POPPED - 2), 0.0)]);
    assert!(n <= 2, "ZRANGE -1 -1 skipped {n} tombstones");
}

#[test]
fn zremrange_from_an_end_moves_the_hints() {
    let mut db = Db::new();
    let pairs: Vec<(f64, Vec<u8>)> = (0..N).map(|i| (i as f64, member(i))).collect();
    db.w(|st| zadd(st, b"z", ZAddFlags::default(), &pairs).unwrap());
    let head = RangeBy::Score(
        ScoreBound::Inclusive(f64::NEG_INFINITY),
        ScoreBound::Exclusive(POPPED as f64),
    );
    assert_eq!(
        db.w(|st| zremrange(st, b"z", &head).unwrap()),
        POPPED as u64
    );
    let tail = RangeBy::Rank(-10, -1);
    assert_eq!(db.w(|st| zremrange(st, b"z", &tail).unwrap()), 10);
    let (out, n) = skipped(|| db.w(|st| zpop(st, b"z", false, 1).unwrap()));
    assert_eq!(out, vec![(member(POPPED), POPPED as f64)]);
    assert!(
        n <= 2,
        "ZPOPMIN after ZREMRANGEBYSCORE skipped {n} tombstones"
    );
    let (out, n) = skipped(|| db.w(|st| zpop(st, b"z", true, 1).unwrap()));
    assert_eq!(out, vec![(member(N - 11), (N - 11) as f64)]);
    assert!(
        n <= 2,
        "ZPOPMAX after ZREMRANGEBYRANK skipped {n} tombstones"
    );
}

#[test]
fn members_added_beyond_the_hints_are_seen() {
    for max in [false, true] {
        let mut db = popped_zset(max);
        // Below / above every remaining member: the hint must move back over them.
        let again = if max { member(N - 1) } else { member(0) };
        let pairs = [
            (0.0, again.clone()),
            (if max { 1e9 } else { -1e9 }, b"far".to_vec()),
        ];
        db.w(|st| zadd(st, b"z", ZAddFlags::default(), &pairs).unwrap());
        let got = db.w(|st| zpop(st, b"z", max, 2).unwrap());
        let far = if max { 1e9 } else { -1e9 };
        assert_eq!(got, vec![(b"far".to_vec(), far), (again, 0.0)], "max={max}");
        // A score update (ZINCRBY) past the end is seen too.
        // A member still there (the pops took the upper or lower half).
        let mid = member(if max { N / 4 } else { 3 * N / 4 });
        let delta = if max { 5.0 } else { -5.0 };
        db.w(|st| zincrby(st, b"z", delta, &mid).unwrap());
        let first = RangeBy::Rank(0, 0);
        let got = db.r(|v| zrange(v, b"z", &first, max, None).unwrap());
        assert_eq!(got, vec![(mid, delta)], "max={max}");
        assert_eq!(db.r(|v| zcard(v, b"z").unwrap()), (N - POPPED) as u64);
    }
}

#[test]
fn hints_survive_the_metadata_encoding() {
    let mut m = Meta::new(TYPE_ZSET, 7);
    m.size = 3;
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    m.lo = vec![1, 2, 3];
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    m.hi = vec![9; meta::HINT_LEN];
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
    m.lo.clear();
    assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
}

#[test]
fn list_pops_and_spop_do_not_walk_tombstones() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..N).map(member).collect();
    db.w(|st| list::push(st, b"l", list::End::Right, &items, false).unwrap());
    for _ in 0..POPPED / 2 {
        db.w(|st| list::pop(st, b"l", list::End::Left, 1).unwrap());
        db.w(|st| list::pop(st, b"l", list::End::Right, 1).unwrap());
    }
    for end in [list::End::Left, list::End::Right] {
        let (out, n) = skipped(|| db.w(|st| list::pop(st, b"l", end, 1).unwrap()));
        assert_eq!(out.map(|v| v.len()), Some(1));
        assert_eq!(n, 0, "{end:?} pop skipped {n} tombstones");
    }
    let (out, n) = skipped(|| db.r(|v| list::lrange(v, b"l", 0, 9).unwrap()));
    assert_eq!(out.len(), 10);
    assert_eq!(n, 0, "LRANGE skipped {n} tombstones");
    db.w(|st| set::sadd(st, b"s", &items).unwrap());
    let mut worst = 0;
    for seed in 0..POPPED as u64 {
        let (out, n) = skipped(|| db.w(|st| set::spop(st, b"s", 1, seed).unwrap()));
        assert_eq!(out.map(|v| v.len()), Some(1));
        worst = worst.max(n);
    }
    // Pops seek to the set's low hint: only tombstones inside the pop window are met.
    assert_eq!(worst, 0, "SPOP skipped up to {worst} tombstones");
}

#[test]
fn spop_to_the_last_member_does_not_walk_earlier_pops() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..N).map(member).collect();
    db.w(|st| set::sadd(st, b"s", &items).unwrap());
    let (mut total, mut worst) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    for seed in 0..N as u64 {
        let (out, n) = skipped(|| db.w(|st| set::spop(st, b"s", 1, seed).unwrap()));
        let out = out.unwrap();
        assert_eq!(out.len(), 1);
        assert!(seen.insert(out[0].clone()), "popped twice: {:?}", out[0]);
        total += n;
        worst = worst.max(n);
    }
    assert_eq!(seen.len(), N);
    assert_eq!(db.r(|v| set::scard(v, b"s").unwrap()), 0);
    // A random start stepped over about N ln N (~15000 here) tombstones in all, and
    // hundreds per pop near the end.
    assert_eq!(
        (worst, total),
        (0, 0),
        "SPOPs skipped tombstones (worst, in all)"
    );
}

#[test]
fn spop_sees_members_added_below_its_hint_and_counts() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..N).map(member).collect();
    db.w(|st| set::sadd(st, b"s", &items).unwrap());
    let popped = db.w(|st| set::spop(st, b"s", 500, 7).unwrap()).unwrap();
    assert_eq!(popped.len(), 500);
    // Add the popped members back (most hash below the raised hint): all must be poppable.
    db.w(|st| set::sadd(st, b"s", &popped).unwrap());
    let all = db
        .w(|st| set::spop(st, b"s", N as u64 + 5, 9).unwrap())
        .unwrap();
    let mut all: Vec<Vec<u8>> = all;
    all.sort();
    assert_eq!(all, items);
    assert_eq!(db.w(|st| set::spop(st, b"s", 1, 1).unwrap()), None);
}

#[test]
fn spop_order_is_the_hash_order_not_the_insertion_order() {
    let mut db = Db::new();
    let items: Vec<Vec<u8>> = (0..100).map(member).collect();
    db.w(|st| set::sadd(st, b"s", &items).unwrap());
    let members = db.r(|v| set::smembers(v, b"s").unwrap());
    let popped: Vec<Vec<u8>> = (0..100u64)
        .flat_map(|i| db.w(|st| set::spop(st, b"s", 1, i).unwrap()).unwrap())
        .collect();
    assert_eq!(popped, members);
    assert_ne!(popped, items);
}
