//! Micro-benchmarks of the per-command work every node does: parsing a pipelined request
//! buffer into typed commands, and applying SETs to the store in one batch (as a Ready does).
//! End-to-end throughput is measured by scripts/bench.sh, not here.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resp::request::{parse_request, Limits};
use resp::{Command, SetOptions};

fn parse_pipeline(c: &mut Criterion) {
    let mut input = BytesMut::new();
    for i in 0..1000 {
        let key = format!("key:{i:012}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxxx\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    let input = input.freeze();
    let limits = Limits::default();
    let mut g = c.benchmark_group("resp");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("parse 1000 pipelined SETs", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some(argv)) = parse_request(&mut buf, &limits) {
                if Command::parse(&argv).is_ok() {
                    n += 1;
                }
            }
            assert_eq!(n, 1000);
        })
    });
    g.finish();
}

fn apply_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    store::tune_db_options(&mut opts);
    let db = Arc::new(
        rocksdb::DB::open_cf_descriptors(&opts, dir.path(), store::column_family_descriptors())
            .expect("open db"),
    );
    let mut st = store::Store::open(db.clone(), 1, store::SlotSet::all()).expect("open store");
    let cmds: Vec<Command> = (0..1000)
        .map(|i| Command::Set {
            key: Bytes::from(format!("key:{:012}", i * 7919 % 100_000)),
            value: Bytes::from_static(b"xxx"),
            opts: SetOptions::default(),
        })
        .collect();
    let mut index = 0;
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("apply 1000 SETs in one batch", |b| {
        b.iter(|| {
            let mut wb = rocksdb::WriteBatch::default();
            for cmd in &cmds {
                st.apply(&mut wb, cmd, 1_000_000);
            }
            index += 1;
            st.stage_applied(&mut wb, index);
            db.write(wb).expect("write");
            st.batch_written();
        })
    });
    g.finish();
}

criterion_group!(benches, parse_pipeline, apply_batch);
criterion_main!(benches);
