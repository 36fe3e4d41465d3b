//! Scripts in the apply path: writes staged with the entry, an aborted script rolled back
//! (data, counters, batch), EVALSHA after SCRIPT LOAD, functions, read-only checks.

use bytes::Bytes;
use resp::{Command, Reply};
use rocksdb::{WriteBatch, DB};
use std::sync::Arc;

use crate::{column_family_descriptors, tune_db_options, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    tune_db_options(&mut opts);
    let db = DB::open_cf_descriptors(&opts, dir.path(), column_family_descriptors()).unwrap();
    (
        dir,
        Store::open(Arc::new(db), 1, crate::SlotSet::all()).unwrap(),
    )
}

fn cmd(args: &[&str]) -> Command {
    let argv: Vec<Bytes> = args.iter().map(|a| Bytes::from(a.to_string())).collect();
    Command::parse(&argv).unwrap()
}

fn run(s: &mut Store, wb: &mut WriteBatch, args: &[&str]) -> Reply {
    s.begin_entry_at(7);
    s.set_entry_index(7);
    s.apply(wb, &cmd(args), 1_000)
}

#[test]
fn scripts_write_and_aborted_ones_leave_nothing() {
    let (_d, mut s) = store();
    let mut wb = WriteBatch::default();
    assert_eq!(run(&mut s, &mut wb, &["SET", "k", "v"]), Reply::ok());
    let release = "if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";
    assert_eq!(
        run(&mut s, &mut wb, &["EVAL", release, "1", "k", "x"]),
        Reply::Int(0)
    );
    let len = wb.data().len();
    let count = wb.len();
    let runaway =
        "redis.call('set', KEYS[1], 'changed') redis.call('set', '{k}2', 'new') while true do end";
    let r = run(&mut s, &mut wb, &["EVAL", runaway, "1", "k"]);
    assert!(
        matches!(&r, Reply::Error(e) if e.contains("Lua instructions")),
        "{r:?}"
    );
    // Only the script's body was staged (EVAL caches it, as Redis, before running it).
    assert_eq!(wb.len(), count + 1);
    assert!(wb.data().len() < len + runaway.len() + 64);
    assert_eq!(run(&mut s, &mut wb, &["GET", "k"]), Reply::bulk("v"));
    assert_eq!(run(&mut s, &mut wb, &["DBSIZE"]), Reply::Int(1));
    assert_eq!(
        run(&mut s, &mut wb, &["EVAL", release, "1", "k", "v"]),
        Reply::Int(1)
    );
    assert_eq!(run(&mut s, &mut wb, &["EXISTS", "k"]), Reply::Int(0));
    // A raised error keeps the writes before it (Redis).
    let r = run(
        &mut s,
        &mut wb,
        &["EVAL", "redis.call('set','a','1') error('x')", "0"],
    );
    assert!(r.is_error());
    assert_eq!(run(&mut s, &mut wb, &["GET", "a"]), Reply::bulk("1"));
    assert_eq!(
        run(
            &mut s,
            &mut wb,
            &["EVAL", "return redis.call('time')[1]", "0"]
        ),
        Reply::bulk("1")
    );
}

#[test]
fn evalsha_functions_and_checks() {
    let (_d, mut s) = store();
    let mut wb = WriteBatch::default();
    let sha = run(&mut s, &mut wb, &["SCRIPT", "LOAD", "return 'loaded'"]);
    assert_eq!(sha, Reply::bulk("b534286061d4b9e4026607613b95c06c06015ae8"));
    assert_eq!(
        run(
            &mut s,
            &mut wb,
            &["EVALSHA", "B534286061D4B9E4026607613B95C06C06015AE8", "0"]
        ),
        Reply::bulk("loaded")
    );
    assert_eq!(
        run(
            &mut s,
            &mut wb,
            &["EVALSHA", "ffd632c7d33e571e9f24556ebed26c3479a87130", "0"]
        ),
        Reply::err("NOSCRIPT No matching script. Please use EVAL.")
    );
    s.db.write(std::mem::take(&mut wb)).unwrap();
    s.batch_written();
    assert_eq!(
        run(
            &mut s,
            &mut wb,
            &[
                "SCRIPT",
                "EXISTS",
                "b534286061d4b9e4026607613b95c06c06015ae8",
                "x"
            ]
        ),
        Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
    );
    let lib = "#!lua name=lib\nredis.register_function('inc', function(keys) return redis.call('incr', keys[1]) end)";
    assert_eq!(
        run(&mut s, &mut wb, &["FUNCTION", "LOAD", lib]),
        Reply::bulk("lib")
    );
    assert_eq!(
        run(&mut s, &mut wb, &["FUNCTION", "LOAD", lib]),
        Reply::err("ERR Library 'lib' already exists")
    );
    assert_eq!(
        run(&mut s, &mut wb, &["FCALL", "inc", "1", "n"]),
        Reply::Int(1)
    );
    assert_eq!(
        run(&mut s, &mut wb, &["FCALL", "INC", "1", "n"]),
        Reply::Int(2)
    );
    let r = run(&mut s, &mut wb, &["FCALL_RO", "inc", "1", "n"]);
    assert_eq!(
        r,
        Reply::err("ERR Can not execute a script with write flag using *_ro command.")
    );
    let r = run(
        &mut s,
        &mut wb,
        &["EVAL_RO", "return redis.call('del', KEYS[1])", "1", "n"],
    );
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("ERR Write commands are not allowed from read-only scripts.")),
        "{r:?}"
    );
    assert_eq!(
        run(&mut s, &mut wb, &["EVAL", "return 1", "2", "a", "b"]),
        Reply::err("CROSSSLOT Keys in the request don't hash to the same slot")
    );
    let r = run(
        &mut s,
        &mut wb,
        &["EVAL", "return redis.call('get', 'other')", "1", "a"],
    );
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("ERR Script attempted to access keys that do not hash to the same slot")),
        "{r:?}"
    );
    let r = run(
        &mut s,
        &mut wb,
        &["EVAL", "return redis.call('multi')", "0"],
    );
    assert!(
        matches!(&r, Reply::Error(e) if e.starts_with("ERR This Redis command is not allowed from script")),
        "{r:?}"
    );
    let Reply::Bulk(dump) = run(&mut s, &mut wb, &["FUNCTION", "DUMP"]) else {
        panic!()
    };
    assert_eq!(run(&mut s, &mut wb, &["FUNCTION", "FLUSH"]), Reply::ok());
    assert_eq!(
        run(&mut s, &mut wb, &["FCALL", "inc", "1", "n"]),
        Reply::err("ERR Function not found")
    );
    let argv = vec![Bytes::from("FUNCTION"), Bytes::from("RESTORE"), dump];
    s.begin_entry_at(8);
    assert_eq!(
        s.apply(&mut wb, &Command::parse(&argv).unwrap(), 1_000),
        Reply::ok()
    );
    assert_eq!(
        run(&mut s, &mut wb, &["FCALL", "inc", "1", "n"]),
        Reply::Int(3)
    );
}

/// An aborted script that wrote collections and ran FLUSHALL leaves the batch's earlier
/// writes (strings, hashes, lists, versions) exactly as they were.
#[test]
fn rollback_undoes_collections_and_flushall() {
    let (_d, mut s) = store();
    let mut wb = WriteBatch::default();
    run(&mut s, &mut wb, &["SET", "{x}s", "1"]);
    run(&mut s, &mut wb, &["HSET", "{x}h", "f", "v"]);
    run(&mut s, &mut wb, &["RPUSH", "{x}l", "a", "b"]);
    let count = wb.len();
    let body = "redis.call('hset', '{x}h', 'f', 'changed', 'g', 'new') \
        redis.call('rpush', '{x}l', 'c') redis.call('del', '{x}s') \
        redis.call('flushall') redis.call('set', '{x}t', 'after') while true do end";
    let r = run(&mut s, &mut wb, &["EVAL", body, "0"]);
    assert!(r.is_error(), "{r:?}");
    assert_eq!(wb.len(), count + 1, "only the script's body stays staged");
    assert_eq!(run(&mut s, &mut wb, &["GET", "{x}s"]), Reply::bulk("1"));
    assert_eq!(
        run(&mut s, &mut wb, &["HGETALL", "{x}h"]),
        Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))])
    );
    assert_eq!(
        run(&mut s, &mut wb, &["LRANGE", "{x}l", "0", "-1"]),
        Reply::Array(vec![Reply::bulk("a"), Reply::bulk("b")])
    );
    assert_eq!(run(&mut s, &mut wb, &["EXISTS", "{x}t"]), Reply::Int(0));
    assert_eq!(run(&mut s, &mut wb, &["DBSIZE"]), Reply::Int(3));
    // The batch as staged still writes the same state.
    s.db.write(std::mem::take(&mut wb)).unwrap();
    s.batch_written();
    assert_eq!(
        run(&mut s, &mut wb, &["HGET", "{x}h", "f"]),
        Reply::bulk("v")
    );
    assert_eq!(run(&mut s, &mut wb, &["LLEN", "{x}l"]), Reply::Int(2));
    assert_eq!(run(&mut s, &mut wb, &["GET", "{x}s"]), Reply::bulk("1"));
}
