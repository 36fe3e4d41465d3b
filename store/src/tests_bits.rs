//! Unit tests of the bitmap, HyperLogLog and LCS commands through the store: replies as
//! Redis 7.0 gives them (checks in Redis's order, deferred range errors), WRONGTYPE against
//! collections, TTLs kept or dropped, nothing written when nothing changes, reads in the
//! apply path seeing the batch, and the entry's budget.

use super::*;
use crate::budget::over_budget;
use bytes::Bytes;

struct T {
    _dir: tempfile::TempDir,
    db: Arc<DB>,
    store: Store,
    index: u64,
}

fn argv(words: &[&[u8]]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w)).collect()
}

fn cmd(s: &str) -> Command {
    let words: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
    Command::parse_replicated(&argv(&words)).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

fn ints(v: &[i64]) -> Reply {
    Reply::Array(v.iter().map(|&n| Reply::Int(n)).collect())
}

const WRONGTYPE_ERR: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        tune_db_options(&mut opts);
        let db = Arc::new(
            DB::open_cf_descriptors(&opts, dir.path(), column_family_descriptors()).unwrap(),
        );
        let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        T {
            _dir: dir,
            db,
            store,
            index: 0,
        }
    }

    /// Applies commands as one entry of one batch at time 1000; also returns whether the
    /// batch wrote anything but the applied index.
    fn batch_cmds(&mut self, cmds: &[Command]) -> (Vec<Reply>, usize) {
        let mut wb = WriteBatch::default();
        self.index += 1;
        self.store.begin_entry();
        self.store.set_entry_index(self.index);
        let out = cmds
            .iter()
            .map(|c| self.store.apply(&mut wb, c, 1000))
            .collect();
        let staged = wb.len();
        self.store.stage_applied(&mut wb, self.index);
        self.db.write(wb).unwrap();
        self.store.batch_written();
        (out, staged)
    }

    fn batch(&mut self, cmds: &[&str]) -> Vec<Reply> {
        let cmds: Vec<Command> = cmds.iter().map(|c| cmd(c)).collect();
        self.batch_cmds(&cmds).0
    }

    fn w(&mut self, c: &str) -> Reply {
        self.batch(&[c]).remove(0)
    }

    /// A write of binary arguments.
    fn wb(&mut self, words: &[&[u8]]) -> Reply {
        let c = Command::parse_replicated(&argv(words)).unwrap();
        self.batch_cmds(&[c]).0.remove(0)
    }

    fn r(&self, c: &str) -> Reply {
        self.store.reader().read(&cmd(c), 1000).0
    }

    fn get(&self, key: &str) -> Reply {
        self.r(&format!("GET {key}"))
    }
}

#[test]
fn setbit_getbit_create_grow_and_keep_the_ttl() {
    let mut t = T::new();
    assert_eq!(t.w("SETBIT k 7 1"), Reply::Int(0));
    assert_eq!(t.w("SETBIT k 7 0"), Reply::Int(1));
    assert_eq!(t.get("k"), bulk(b"\x00"));
    assert_eq!(t.w("SETBIT k 17 1"), Reply::Int(0));
    assert_eq!(t.get("k"), bulk(b"\x00\x00\x40"));
    assert_eq!(t.r("GETBIT k 17"), Reply::Int(1));
    assert_eq!(t.r("GETBIT k 1000"), Reply::Int(0));
    assert_eq!(t.r("GETBIT nokey 3"), Reply::Int(0));
    // SETBIT to 0 on a missing key still creates it, as Redis.
    assert_eq!(t.w("SETBIT z 20 0"), Reply::Int(0));
    assert_eq!(t.get("z"), bulk(b"\x00\x00\x00"));
    assert_eq!(t.w("EXPIRE k 100"), Reply::Int(1));
    assert_eq!(t.w("SETBIT k 0 1"), Reply::Int(0));
    assert_eq!(t.r("TTL k"), Reply::Int(100));
    assert_eq!(t.r("TYPE k"), Reply::Status("string".into()));
}

#[test]
fn a_setbit_that_changes_nothing_writes_nothing() {
    let mut t = T::new();
    t.w("SETBIT k 3 1");
    let (out, staged) = t.batch_cmds(&[cmd("SETBIT k 3 1"), cmd("SETBIT k 2 0")]);
    assert_eq!(out, [Reply::Int(1), Reply::Int(0)]);
    assert_eq!(staged, 0);
    let (_, staged) = t.batch_cmds(&[cmd("SETBIT k 9 0")]);
    assert!(staged > 0, "growing the string writes it");
}

#[test]
fn bitcount_and_bitpos_check_the_key_before_the_range() {
    let mut t = T::new();
    t.w("SET s foobar");
    t.w("RPUSH l a");
    assert_eq!(t.r("BITCOUNT s"), Reply::Int(26));
    assert_eq!(t.r("BITCOUNT s 1 1"), Reply::Int(6));
    assert_eq!(t.r("BITCOUNT s 5 30 BIT"), Reply::Int(17));
    assert_eq!(t.r("BITCOUNT s -2 -1 byte"), Reply::Int(7));
    // Redis 7.0: a missing key answers 0 whatever the range; a wrong type answers first.
    assert_eq!(t.r("BITCOUNT nokey 0 x"), Reply::Int(0));
    assert_eq!(t.r("BITCOUNT nokey 1"), Reply::Int(0));
    assert_eq!(t.r("BITCOUNT l 0 x"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(
        t.r("BITCOUNT s 0 x"),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.r("BITCOUNT s 1"), Reply::err("ERR syntax error"));
    assert_eq!(t.r("BITCOUNT s 0 1 nope"), Reply::err("ERR syntax error"));
    assert_eq!(t.r("BITCOUNT s -1 -2 nope"), Reply::Int(0));
    assert_eq!(t.r("BITPOS nokey 1 x"), Reply::Int(-1));
    assert_eq!(t.r("BITPOS nokey 0 x"), Reply::Int(0));
    assert_eq!(t.r("BITPOS l 0"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(
        t.r("BITPOS s 1 x"),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.r("BITPOS s 1 2"), Reply::Int(17));
    assert_eq!(t.r("BITPOS s 0 0 -1 bit"), Reply::Int(0));
    t.wb(&[b"SET", b"ones", b"\xff\xff"]);
    assert_eq!(t.r("BITPOS ones 0"), Reply::Int(16));
    assert_eq!(t.r("BITPOS ones 0 0 -1"), Reply::Int(-1));
    assert_eq!(t.r("GETBIT l 0"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.w("SETBIT l 0 1"), Reply::err(WRONGTYPE_ERR));
}

#[test]
fn bitop_stores_drops_the_ttl_and_deletes_an_empty_result() {
    let mut t = T::new();
    t.w("SET key1 foobar");
    t.w("SET key2 abcdef");
    t.w("SET dest old");
    t.w("EXPIRE dest 100");
    assert_eq!(t.w("BITOP AND dest key1 key2"), Reply::Int(6));
    assert_eq!(t.get("dest"), bulk(b"`bc`ab"));
    assert_eq!(t.r("TTL dest"), Reply::Int(-1));
    assert_eq!(t.w("BITOP NOT n key1"), Reply::Int(6));
    assert_eq!(t.w("BITOP OR o key1 nokey"), Reply::Int(6));
    assert_eq!(t.get("o"), bulk(b"foobar"));
    // Only missing sources: the destination is deleted, whatever it held.
    t.w("HSET h f v");
    assert_eq!(t.w("BITOP XOR h nokey other"), Reply::Int(0));
    assert_eq!(t.r("EXISTS h"), Reply::Int(0));
    assert_eq!(t.w("BITOP XOR gone nokey"), Reply::Int(0));
    assert_eq!(t.r("EXISTS gone"), Reply::Int(0));
    // A wrong-typed source refuses before anything is written.
    t.w("RPUSH l a");
    assert_eq!(t.w("BITOP OR dest key1 l"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.get("dest"), bulk(b"`bc`ab"));
    // The destination may be a source.
    assert_eq!(t.w("BITOP XOR key1 key1 key1"), Reply::Int(6));
    assert_eq!(t.get("key1"), bulk(&[0u8; 6]));
}

#[test]
fn bitfield_writes_grow_first_and_bitfield_ro_only_reads() {
    let mut t = T::new();
    assert_eq!(t.w("BITFIELD k INCRBY i5 100 1 GET u4 0"), ints(&[1, 0]));
    assert_eq!(t.r("STRLEN k"), Reply::Int(14));
    assert_eq!(t.w("BITFIELD k SET u8 #0 255 GET u8 0"), ints(&[0, 255]));
    assert_eq!(
        t.w("BITFIELD k OVERFLOW FAIL INCRBY u8 0 1 OVERFLOW SAT INCRBY u8 0 1"),
        Reply::Array(vec![Reply::Nil, Reply::Int(255)])
    );
    assert_eq!(
        t.r("BITFIELD_RO k GET u8 0 GET i8 0 GET u8 #100"),
        ints(&[255, -1, 0])
    );
    // Only GETs: a missing key stays missing.
    assert_eq!(t.w("BITFIELD nokey GET i16 3"), ints(&[0]));
    assert_eq!(t.r("EXISTS nokey"), Reply::Int(0));
    assert_eq!(t.w("BITFIELD nokey"), ints(&[]));
    // Every write failing still creates the (grown) string, as Redis.
    assert_eq!(
        t.w("BITFIELD f OVERFLOW FAIL SET u2 8 9"),
        Reply::Array(vec![Reply::Nil])
    );
    assert_eq!(t.get("f"), bulk(b"\x00\x00"));
    // A field may start below the 512 MiB limit but not end past it (Redis allows 8 bytes).
    assert_eq!(
        t.w("BITFIELD big SET u8 4294967290 5"),
        Reply::err(crate::budget::STRING_TOO_BIG)
    );
    assert_eq!(t.r("EXISTS big"), Reply::Int(0));
    t.w("SADD s m");
    assert_eq!(t.w("BITFIELD s GET u8 0"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(
        t.w("BITFIELD s SET u8 4294967290 5"),
        Reply::err(WRONGTYPE_ERR)
    );
    assert_eq!(t.r("BITFIELD_RO s GET u8 0"), Reply::err(WRONGTYPE_ERR));
}

#[test]
fn lcs_replies_in_redis_shapes() {
    let mut t = T::new();
    t.w("SET key1 ohmytext");
    t.w("SET key2 mynewtext");
    assert_eq!(t.r("LCS key1 key2"), bulk(b"mytext"));
    assert_eq!(t.r("LCS key1 key2 LEN"), Reply::Int(6));
    let range = |a: (i64, i64), b: (i64, i64), len: Option<i64>| {
        let mut v = vec![ints(&[a.0, a.1]), ints(&[b.0, b.1])];
        v.extend(len.map(Reply::Int));
        Reply::Array(v)
    };
    let idx = |matches: Vec<Reply>| {
        Reply::Map(vec![
            (bulk(b"matches"), Reply::Array(matches)),
            (bulk(b"len"), Reply::Int(6)),
        ])
    };
    assert_eq!(
        t.r("LCS key1 key2 IDX"),
        idx(vec![
            range((4, 7), (5, 8), None),
            range((2, 3), (0, 1), None)
        ])
    );
    assert_eq!(
        t.r("LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN"),
        idx(vec![range((4, 7), (5, 8), Some(4))])
    );
    assert_eq!(t.r("LCS key1 nokey"), bulk(b""));
    t.w("RPUSH l a");
    let not_str = Reply::err("ERR The specified keys must contain string values");
    assert_eq!(t.r("LCS nokey l"), not_str);
    // The keys' types are checked before the options.
    assert_eq!(t.r("LCS l key1 FOO"), not_str);
    assert_eq!(t.r("LCS key1 key2 FOO"), Reply::err("ERR syntax error"));
    assert_eq!(
        t.r("LCS key1 key2 LEN IDX"),
        Reply::err("ERR If you want both the length and indexes, please just use IDX.")
    );
    // A table past 512 MiB is refused before it is allocated.
    t.w("SETRANGE big1 12000 x");
    t.w("SETRANGE big2 12000 y");
    let too_big = Reply::err(crate::types::lcs::TOO_BIG);
    assert_eq!(t.r("LCS big1 big2 LEN"), too_big);
}

#[test]
fn hyperloglog_add_count_merge() {
    let mut t = T::new();
    assert_eq!(t.w("PFADD h"), Reply::Int(1));
    assert_eq!(t.w("PFADD h"), Reply::Int(0));
    assert_eq!(t.r("PFCOUNT h"), Reply::Int(0));
    assert_eq!(t.w("PFADD h a b c d e f g"), Reply::Int(1));
    assert_eq!(t.w("PFADD h a b"), Reply::Int(0));
    assert_eq!(t.r("PFCOUNT h"), Reply::Int(7));
    assert_eq!(t.r("TYPE h"), Reply::Status("string".into()));
    let Reply::Bulk(v) = t.get("h") else { panic!() };
    assert_eq!(
        (&v[..4], v.len()),
        (&b"HYLL"[..], crate::types::hll::DENSE_SIZE)
    );
    assert_eq!(t.w("PFADD h2 e f g x y z"), Reply::Int(1));
    assert_eq!(t.r("PFCOUNT h h2"), Reply::Int(10));
    assert_eq!(t.r("PFCOUNT h nokey"), Reply::Int(7));
    assert_eq!(t.r("PFCOUNT nokey"), Reply::Int(0));
    assert_eq!(t.w("EXPIRE h 100"), Reply::Int(1));
    assert_eq!(t.w("PFMERGE h h2"), Reply::ok());
    assert_eq!(t.r("PFCOUNT h"), Reply::Int(10));
    assert_eq!(t.r("TTL h"), Reply::Int(100));
    assert_eq!(t.w("PFMERGE new"), Reply::ok());
    assert_eq!(t.r("PFCOUNT new"), Reply::Int(0));
    // A PFADD that grows no register writes nothing.
    let (_, staged) = t.batch_cmds(&[cmd("PFADD h a")]);
    assert_eq!(staged, 0);
}

#[test]
fn hyperloglog_refuses_other_values() {
    let mut t = T::new();
    t.w("SET s hello");
    t.w("LPUSH l a");
    t.w("PFADD h a");
    assert_eq!(t.w("PFADD s a"), Reply::err(NOT_HLL));
    assert_eq!(t.r("PFCOUNT s"), Reply::err(NOT_HLL));
    assert_eq!(t.r("PFCOUNT h s"), Reply::err(NOT_HLL));
    assert_eq!(t.w("PFMERGE h s"), Reply::err(NOT_HLL));
    assert_eq!(t.w("PFMERGE s h"), Reply::err(NOT_HLL));
    assert_eq!(t.w("PFADD l a"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.r("PFCOUNT l"), Reply::err(WRONGTYPE_ERR));
    assert_eq!(t.get("s"), bulk(b"hello"));
    // A corrupt sparse sketch.
    t.wb(&[b"SET", b"bad", b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x3f"]);
    let corrupt = Reply::err("INVALIDOBJ Corrupted HLL object detected");
    assert_eq!(t.r("PFCOUNT bad"), corrupt);
    assert_eq!(t.w("PFADD bad x"), corrupt);
    // Redis's sparse sketch of a..g with its cached count: read, then rewritten dense.
    let sparse = crate::unhex(
        b"48594c4c010000000700000000000000466d80560c80443c84388050b184498c80426d80425a",
    )
    .unwrap();
    t.wb(&[b"SET", b"r", &sparse]);
    assert_eq!(t.r("PFCOUNT r"), Reply::Int(7));
    assert_eq!(t.w("PFADD r h"), Reply::Int(1));
    assert_eq!(t.r("PFCOUNT r"), Reply::Int(8));
}

#[test]
fn reads_in_a_batch_see_its_writes_and_are_charged() {
    let mut t = T::new();
    let out = t.batch(&[
        "SETBIT k 0 1",
        "BITCOUNT k",
        "PFADD h a",
        "PFCOUNT h",
        "GETBIT k 0",
    ]);
    assert_eq!(
        out,
        [
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(1)
        ]
    );
    // One SETBIT far out takes half the budget; a second string as long does not fit.
    let half = MAX_STRING / 2 * 8;
    let out = t.batch(&[
        &format!("SETBIT a {half} 1"),
        &format!("SETBIT b {half} 1"),
        "SETBIT c 0 1",
    ]);
    assert_eq!(out, [Reply::Int(0), over_budget(), Reply::Int(0)]);
    assert_eq!(t.r("EXISTS b"), Reply::Int(0));
    // The next entry has a fresh budget; growing `a` by one bit rewrites it whole.
    let out = t.batch(&[&format!("SETBIT a {} 1", half + 8), "SETBIT a 1 1"]);
    assert_eq!(out, [Reply::Int(0), over_budget()]);
}
