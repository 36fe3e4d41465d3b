//! Tests of the sorted-set algebra (ZUNION, ZINTER, ZDIFF, STORE forms) and ZSCAN.

use super::testutil::{bs, Db};
use super::zsetops::*;
use super::{set, zset, Error};

fn setup(db: &mut Db) {
    db.w(|st| {
        let flags = zset::ZAddFlags::default();
        zset::zadd(st, b"z1", flags, &[(1.0, b"a"), (2.0, b"b"), (3.0, b"c")]).unwrap();
        zset::zadd(
            st,
            b"z2",
            flags,
            &[(10.0, b"b"), (20.0, b"c"), (f64::INFINITY, b"d")],
        )
        .unwrap();
        set::sadd(st, b"s", &bs(&["c", "d", "e"])).unwrap();
    });
    db.set_string(b"str", b"v");
}

fn p(items: &[(&str, f64)]) -> Vec<(Vec<u8>, f64)> {
    items
        .iter()
        .map(|(m, s)| (m.as_bytes().to_vec(), *s))
        .collect()
}

#[test]
fn zunion_weights_and_aggregates() {
    let mut db = Db::new();
    setup(&mut db);
    db.r(|v| {
        let sum = zunion(v, &bs(&["z1", "z2", "nokey"]), None, Aggregate::Sum).unwrap();
        assert_eq!(
            sum,
            p(&[("a", 1.0), ("b", 12.0), ("c", 23.0), ("d", f64::INFINITY)])
        );
        let max = zunion(v, &bs(&["z1", "s"]), Some(&[2.0, 5.0]), Aggregate::Max).unwrap();
        assert_eq!(
            max,
            p(&[("a", 2.0), ("b", 4.0), ("d", 5.0), ("e", 5.0), ("c", 6.0)])
        );
        // 0 × inf is 0, as Redis.
        let zeroed = zunion(v, &bs(&["z2"]), Some(&[0.0]), Aggregate::Min).unwrap();
        assert_eq!(zeroed, p(&[("b", 0.0), ("c", 0.0), ("d", 0.0)]));
        assert_eq!(
            zunion(v, &bs(&["z1", "str"]), None, Aggregate::Sum),
            Err(Error::WrongType)
        );
    });
}

#[test]
fn zinter_and_zdiff_mix_sets_and_sorted_sets() {
    let mut db = Db::new();
    setup(&mut db);
    db.r(|v| {
        let inter = zinter(v, &bs(&["z1", "z2", "s"]), None, Aggregate::Sum, 0).unwrap();
        assert_eq!(inter, p(&[("c", 24.0)]));
        let min = zinter(v, &bs(&["z1", "z2"]), None, Aggregate::Min, 0).unwrap();
        assert_eq!(min, p(&[("b", 2.0), ("c", 3.0)]));
        assert_eq!(
            zinter(v, &bs(&["z1", "z2"]), None, Aggregate::Sum, 1)
                .unwrap()
                .len(),
            1
        );
        assert!(zinter(v, &bs(&["z1", "nokey"]), None, Aggregate::Sum, 0)
            .unwrap()
            .is_empty());
        assert_eq!(zdiff(v, &bs(&["z1", "z2"])).unwrap(), p(&[("a", 1.0)]));
        assert_eq!(zdiff(v, &bs(&["s", "z2"])).unwrap(), p(&[("e", 1.0)]));
        assert_eq!(zdiff(v, &bs(&["nokey", "z1"])).unwrap(), vec![]);
        assert_eq!(zdiff(v, &bs(&["z1", "str"])), Err(Error::WrongType));
    });
    let union = db.r(|v| zunion(v, &bs(&["z1", "s"]), None, Aggregate::Sum).unwrap());
    assert_eq!(db.w(|st| store(st, b"str", &union)), Ok(5));
    assert_eq!(db.r(|v| zset::zscore(v, b"str", b"c")), Ok(Some(4.0)));
    assert_eq!(db.w(|st| store(st, b"z1", &[])), Ok(0));
    assert_eq!(db.r(|v| zset::zcard(v, b"z1")), Ok(0));
}

#[test]
fn zscan_pages_members_with_scores() {
    let mut db = Db::new();
    let names: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    let pairs: Vec<(f64, &[u8])> = names
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64, m.as_bytes()))
        .collect();
    db.w(|st| zset::zadd(st, b"z", zset::ZAddFlags::default(), &pairs).unwrap());
    let (mut seen, mut after) = (Vec::new(), None::<Vec<u8>>);
    loop {
        let page = db.r(|v| zset::zscan(v, b"z", after.as_deref(), 7, None).unwrap());
        seen.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    seen.sort_by(|a, b| a.1.total_cmp(&b.1));
    let want: Vec<(Vec<u8>, f64)> = pairs.iter().map(|(s, m)| (m.to_vec(), *s)).collect();
    assert_eq!(seen, want);
    let m2 = db.r(|v| zset::zscan(v, b"z", None, 100, Some(b"m2*")).unwrap());
    assert_eq!(m2.items.len(), 11);
}
