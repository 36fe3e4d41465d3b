//! Unit tests of a migration's data copy between nodes (`crate::ingest`): a target on a
//! node without a source replica takes the slots fresh (an older owner's records there
//! are gone), waits for no source, and gets the source's records of every type with their
//! TTLs and counters from exported chunks (a repeated chunk changes nothing); the source's
//! DROP collects the slots' records on a node not hosting the target and nowhere else; a
//! FLUSHALL share applies only where its group serves the layout's slots, never mid-copy;
//! a KEYS or DBSIZE share reads exactly those slots, where its group serves them all; a walk
//! of the keyspace (an export, KEYS, SCAN, RANDOMKEY) flushes a big hashed memtable first.

use resp::{Command, Reply};

use crate::claims::Claims;
use crate::testgroup::*;
use crate::CF_DATA;

/// Records of slot `slot` in `db`'s data column family.
fn records(db: &rocksdb::DB, slot: u16) -> usize {
    let cf = db.cf_handle(CF_DATA).unwrap();
    let mut it = db.raw_iterator_cf_opt(cf, crate::total_order());
    it.seek(slot.to_be_bytes());
    let mut n = 0;
    while it.key().is_some_and(|k| k.starts_with(&slot.to_be_bytes())) {
        n += 1;
        it.next();
    }
    n
}

/// Copies group `src`'s records of slot 100 into `dst` in small chunks (as the coordinator
/// does); the number of chunks.
fn copy(src: &G, dst: &mut G, fence: u64) -> usize {
    let mut at = Vec::new();
    let mut chunks = 0;
    loop {
        let (records, next) = src
            .reader
            .export_slots(&[(100, 100)], &at, (40, 40))
            .unwrap();
        chunks += 1;
        let r = dst.batch_of(&[Command::SlotsIngest { fence, records }]);
        assert!(matches!(r[0], Reply::Int(_)), "{r:?}");
        match next {
            Some(n) => at = n,
            None => return chunks,
        }
    }
}

#[test]
fn a_target_without_a_source_replica_gets_the_records_by_copy() {
    // Node A: group 1 with every slot. Node B: group 2, which owned slot 100 once.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_a, db_b) = (open_db(dir_a.path()), open_db(dir_b.path()));
    let mut a = G::open(&db_a, 1, "0-16383");
    let mut b = G::open(&db_b, 2, "100");
    let k = keys_in(&set("100"), "k", 5);
    b.w(&format!("SET {} stale", k[0]));
    b.w(&format!("SET {} old", k[4]));
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 1 100"), Reply::Int(1));
    a.w(&format!("SET {} v0", k[0]));
    a.w(&format!("SET {} v1 PX 5000", k[1]));
    a.w(&format!("RPUSH {} x y", k[2]));
    a.w(&format!("ZADD {} 1 m1 2 m2", k[3]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 2 100"), Reply::Int(1));
    // No replica of group 1 on node B: the ADD waits for none and starts empty.
    assert!(!b.store.must_wait_for(&[(100, 100)], 2, 1));
    assert!(!b.store.stale_in(&[(100, 100)], 2, 1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 2 FROM 1 100"), Reply::Int(1));
    assert_eq!(b.counts(), (0, 0));
    assert_eq!(
        b.r(&format!("GET {}", k[4])),
        refused(&k[4]),
        "not served before the migration's SEAL"
    );
    assert!(copy(&a, &mut b, 2) > 1, "several chunks");
    assert_eq!(b.counts(), (4, 1));
    // A coordinator's retry copies again: nothing changes.
    copy(&a, &mut b, 2);
    assert_eq!(b.counts(), (4, 1));
    b.seal(2, "100");
    assert_eq!(
        b.r(&format!("GET {}", k[4])),
        Reply::Nil,
        "an older owner's record"
    );
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("v0"));
    assert_eq!(b.due(NOW + 10_000), vec![k[1].clone()]);
    assert_eq!(
        b.r(&format!("LRANGE {} 0 -1", k[2])),
        Reply::Array(vec![bulk("x"), bulk("y")])
    );
    assert_eq!(
        b.r(&format!("ZRANGE {} 0 -1", k[3])),
        Reply::Array(vec![bulk("m1"), bulk("m2")])
    );
    // An older migration's chunk is stale.
    let stale = b.batch_of(&[Command::SlotsIngest {
        fence: 1,
        records: vec![],
    }]);
    assert_eq!(stale[0], Reply::Int(0));
    // The source's DROP collects the records on node A, which does not host group 2.
    assert!(records(&db_a, 100) > 0);
    assert_eq!(a.w("RAFTKV.SLOTS.DROP FENCE 2 TO 2 100"), Reply::Int(1));
    assert_eq!(records(&db_a, 100), 0);
    assert_eq!(records(&db_b, 100), 4);
}

#[test]
fn a_drop_leaves_the_records_where_the_target_is_hosted() {
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("100"), "k", 1);
    a.w(&format!("SET {} v", k[0]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 100"), Reply::Int(1));
    // Group 1 is hosted here: the ADD adopts (a lagging source would be waited for).
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 FROM 1 100"), Reply::Int(1));
    assert_eq!(b.counts(), (1, 0));
    assert_eq!(a.w("RAFTKV.SLOTS.DROP FENCE 1 TO 2 100"), Reply::Int(0));
    b.seal(1, "100");
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("v"));
}

/// Every chunk of group `src`'s records of slot 100, exported `max` bytes at a time.
fn chunks(src: &G, max: usize) -> Vec<Vec<(Bytes, Bytes, Bytes)>> {
    let (mut at, mut out) = (Vec::new(), Vec::new());
    loop {
        let (records, next) = src
            .reader
            .export_slots(&[(100, 100)], &at, (max, max))
            .unwrap();
        out.push(records);
        match next {
            Some(n) => at = n,
            None => return out,
        }
    }
}

fn ingest(fence: u64, records: &[(Bytes, Bytes, Bytes)]) -> Command {
    Command::SlotsIngest {
        fence,
        records: records.to_vec(),
    }
}

/// Staged pieces of `group` in `db` (see `crate::pieces`).
fn staged(db: &rocksdb::DB, group: u64) -> usize {
    let cf = db.cf_handle(crate::CF_META).unwrap();
    let mut prefix = group.to_be_bytes().to_vec();
    prefix.push(b'P');
    let mut it = db.raw_iterator_cf_opt(cf, crate::total_order());
    it.seek(&prefix);
    let mut n = 0;
    while it.key().is_some_and(|k| k.starts_with(&prefix)) {
        n += 1;
        it.next();
    }
    n
}

/// `len` bytes of text that differ along the way (a misplaced piece shows).
fn text(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| char::from(b'a' + ((i / 7 + usize::from(seed)) % 26) as u8))
        .collect()
}

/// Node A's group 1 holds a 3000-byte string, a hash with a 2500-byte field and a small
/// string in slot 100; slot 100 is moving to group 2 on node B (fence 1).
fn big_records(db_a: &Arc<DB>, db_b: &Arc<DB>) -> (G, G, Vec<String>) {
    let mut a = G::open(db_a, 1, "0-16383");
    let mut b = G::open(db_b, 2, "");
    let k = keys_in(&set("100"), "k", 3);
    a.w(&format!("SET {} {}", k[0], text(3000, 0)));
    a.w(&format!("HSET {} f {} g small", k[1], text(2500, 3)));
    a.w(&format!("SET {} small PX 5000", k[2]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 100"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 FROM 1 100"), Reply::Int(1));
    (a, b, k)
}

fn assert_copied(b: &G, k: &[String]) {
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk(&text(3000, 0)));
    assert_eq!(b.r(&format!("HGET {} f", k[1])), bulk(&text(2500, 3)));
    assert_eq!(b.r(&format!("HGET {} g", k[1])), bulk("small"));
    assert_eq!(b.r(&format!("GET {}", k[2])), bulk("small"));
    assert_eq!(b.counts(), (3, 1));
}

use std::sync::Arc;

use bytes::Bytes;
use rocksdb::DB;

#[test]
fn records_bigger_than_a_chunk_travel_in_pieces_whatever_the_batching() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_a, db_b) = (open_db(dir_a.path()), open_db(dir_b.path()));
    let (a, mut b, k) = big_records(&db_a, &db_b);
    let cs = chunks(&a, 256);
    assert!(
        cs.len() > 20,
        "the big records went in pieces: {} chunks",
        cs.len()
    );
    for c in &cs {
        let bytes: usize = c.iter().map(|(_, k, v)| k.len() + v.len()).sum();
        assert!(bytes <= 512, "a chunk of {bytes} bytes");
    }
    // The first half one entry per batch, the rest in one batch: the last pieces find
    // the pieces staged by their own batch.
    let (first, rest) = cs.split_at(cs.len() / 2);
    for c in first {
        assert!(matches!(b.batch_of(&[ingest(1, c)])[0], Reply::Int(_)));
    }
    let cmds: Vec<Command> = rest.iter().map(|c| ingest(1, c)).collect();
    for r in b.batch_of(&cmds) {
        assert!(matches!(r, Reply::Int(_)), "{r:?}");
    }
    assert_eq!(staged(&db_b, 2), 0, "no piece is left staged");
    // A coordinator's retry copies everything again: nothing changes.
    for c in &cs {
        b.batch_of(&[ingest(1, c)]);
    }
    b.seal(1, "100");
    assert_copied(&b, &k);
}

#[test]
fn a_copy_restarted_inside_a_record_or_given_up_leaves_nothing_behind() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_a, db_b) = (open_db(dir_a.path()), open_db(dir_b.path()));
    let (a, mut b, k) = big_records(&db_a, &db_b);
    let cs = chunks(&a, 256);
    // A coordinator dies four pieces into the first record; its successor starts over.
    for c in &cs[..4] {
        b.batch_of(&[ingest(1, c)]);
    }
    assert!(staged(&db_b, 2) >= 3, "pieces staged");
    for c in &cs {
        b.batch_of(&[ingest(1, c)]);
    }
    assert_eq!(b.counts(), (3, 1));
    // A last piece whose chain has a hole is refused, and writes nothing.
    let hole = cs
        .iter()
        .position(|c| c[0].0.starts_with(b"data:0:"))
        .unwrap();
    let last = (hole..cs.len())
        .find(|&i| {
            let w = std::str::from_utf8(&cs[i][0].0).unwrap().to_string();
            w.starts_with("data:") && !w.starts_with("data:0:") && {
                let p: Vec<u64> = w[5..].split(':').map(|x| x.parse().unwrap()).collect();
                p[0] + cs[i][0].2.len() as u64 == p[1]
            }
        })
        .unwrap();
    b.batch_of(&[ingest(1, &cs[hole])]);
    let r = b.batch_of(&[ingest(1, &cs[last])]);
    assert!(
        matches!(&r[0], Reply::Error(e) if e.contains("piece missing")),
        "{r:?}"
    );
    b.seal(1, "100");
    assert_copied(&b, &k);
    // A copy given up half way: the next migration's slot command clears its pieces.
    assert!(staged(&db_b, 2) > 0);
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 2 100"), Reply::Int(1));
    assert_eq!(staged(&db_b, 2), 0);
}

/// A replica catching up applies a fresh ADD, the copy and the first commands on the
/// copied keys in one batch: those commands must see the copied records (the ingested
/// list elements and scores too, not only the keys' metadata) and not the older owner's
/// records the ADD deleted. Chaos seed 202 (session 11): an LPOP in the batch of its
/// list's INGEST found the metadata but no element and stopped the node ("list element
/// missing"), at every restart.
#[test]
fn commands_in_the_batch_of_a_copy_see_the_copied_records_only() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_a, db_b) = (open_db(dir_a.path()), open_db(dir_b.path()));
    let mut a = G::open(&db_a, 1, "0-16383");
    let mut b = G::open(&db_b, 2, "100");
    let k = keys_in(&set("100"), "k", 3);
    b.w(&format!("SET {} stale", k[2]));
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 1 100"), Reply::Int(1));
    a.w(&format!("RPUSH {} x y z", k[0]));
    a.w(&format!("ZADD {} 1 m1 2 m2", k[1]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 2 100"), Reply::Int(1));
    let (records, next) = a
        .reader
        .export_slots(&[(100, 100)], &[], (1 << 20, 1 << 20))
        .unwrap();
    assert!(next.is_none());
    let r = b.batch_of(&[
        cmd("RAFTKV.SLOTS.ADD FENCE 2 FROM 1 100"),
        Command::SlotsIngest { fence: 2, records },
        cmd("RAFTKV.SLOTS.SEAL FENCE 2 100"),
        cmd(&format!("LPOP {}", k[0])),
        cmd(&format!("ZREM {} m1", k[1])),
        cmd(&format!("APPEND {} n", k[2])),
    ]);
    assert_eq!(r[0], Reply::Int(1));
    assert_eq!(r[3..], [bulk("x"), Reply::Int(1), Reply::Int(1)], "{r:?}");
    assert_eq!(
        b.r(&format!("LRANGE {} 0 -1", k[0])),
        Reply::Array(vec![bulk("y"), bulk("z")])
    );
    assert_eq!(
        b.r(&format!("ZRANGE {} 0 -1", k[1])),
        Reply::Array(vec![bulk("m2")])
    );
    assert_eq!(b.r(&format!("GET {}", k[2])), bulk("n"));
    assert_eq!(b.counts(), (3, 0));
}

/// A copy repeated after the cut-over (a deposed coordinator, or a run from a lagging
/// view) must not put the source's frozen records over the target's newer writes: the
/// SEAL before the cut-over refuses the migration's later chunks, across a reopen.
#[test]
fn a_sealed_migration_takes_no_more_copied_records() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (db_a, db_b) = (open_db(dir_a.path()), open_db(dir_b.path()));
    let mut a = G::open(&db_a, 1, "0-16383");
    let mut b = G::open(&db_b, 2, "");
    let k = keys_in(&set("100"), "k", 1);
    a.w(&format!("SET {} 55", k[0]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 3 100"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 3 FROM 1 100"), Reply::Int(1));
    let cs = chunks(&a, 1 << 20);
    for c in &cs {
        b.batch_of(&[ingest(3, c)]);
    }
    assert_eq!(b.w("RAFTKV.SLOTS.SEAL FENCE 3 100"), Reply::Int(1));
    assert_eq!(
        b.w("RAFTKV.SLOTS.SEAL FENCE 3 100"),
        Reply::Int(0),
        "a repeat"
    );
    // The cut-over; a client's write to the target.
    assert_eq!(b.w(&format!("INCR {}", k[0])), Reply::Int(56));
    for c in &cs {
        assert_eq!(b.batch_of(&[ingest(3, c)])[0], Reply::Int(0), "refused");
    }
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("56"));
    drop(b);
    let mut b = G::open(&db_b, 2, "");
    assert_eq!(
        b.batch_of(&[ingest(3, &cs[0])])[0],
        Reply::Int(0),
        "after a reopen"
    );
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("56"));
    // A later migration into the group copies as before.
    assert_eq!(a.w(&format!("SET {} x", k[0])), refused(&k[0]));
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 4 100"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 5 FROM 1 100"), Reply::Int(1));
    assert!(matches!(b.batch_of(&[ingest(5, &cs[0])])[0], Reply::Int(1)));
}

/// A node that catches up applies a group's REMOVE of a slot and its fresh ADD of the same
/// slot back (it moved to a group this node does not host, and back) in one batch. The
/// REMOVE's release takes effect once the batch is written, after the ADD took the slot:
/// it must not release the slot the ADD took back, or the group's later writes to it
/// would be skipped here as another group's slot once any snapshot took slots by force
/// (chaos seed 1209: node 2 served a counter's value from before the moves while its
/// increments applied elsewhere).
#[test]
fn a_slot_removed_and_taken_back_fresh_in_one_batch_stays_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let claims = Claims::new();
    let mut c = G::open(&db, 3, "0-16383");
    c.store.set_claims(claims.clone()).unwrap();
    let k = keys_in(&set("100"), "k", 1);
    c.w(&format!("SET {} 325", k[0]));
    // Group 101 (not hosted here) took slot 100 by migration 1 and gave it back by 2.
    let r = c.batch(&[
        "RAFTKV.SLOTS.REMOVE FENCE 1 100",
        "RAFTKV.SLOTS.DROP FENCE 1 TO 101 100",
        "RAFTKV.SLOTS.ADD FENCE 2 FROM 101 100",
    ]);
    assert_eq!(r[2], Reply::Int(1), "{r:?}");
    assert_eq!(
        claims.owner(100),
        3,
        "the slot is group 3's again on this node"
    );
    // Some snapshot took slots by force on this node since: writes check their claims.
    claims.force_for_test();
    c.batch_of(&[Command::SlotsIngest {
        fence: 2,
        records: vec![],
    }]);
    c.seal(2, "100");
    c.w(&format!("SET {} 326", k[0]));
    assert_eq!(c.r(&format!("GET {}", k[0])), bulk("326"));
}

/// A node whose view of the layout is older than the migration (it catches its metadata
/// replica up, replaying earlier layouts) may route a request for a moving slot to the
/// target between its ADD and its SEAL: a write taken then would be overwritten by the
/// copy, and a read could miss records, so the target refuses both (`-TRYAGAIN`) until
/// the SEAL, also after a reopen (chaos seed 1223: an INCR sent by a node that had just
/// joined applied at the target before the copy, which then put the source's value back:
/// two INCRs answered 90).
#[test]
fn a_target_serves_the_moving_slots_only_from_the_seal_on() {
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("100"), "k", 1);
    a.w(&format!("SET {} 89", k[0]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 4 100"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 4 FROM 1 100"), Reply::Int(1));
    assert_eq!(b.w(&format!("INCR {}", k[0])), refused(&k[0]));
    assert_eq!(b.r(&format!("GET {}", k[0])), refused(&k[0]));
    // Reopened (a restart): still not served.
    drop(b);
    let mut b = G::open(&a.db, 2, "");
    assert_eq!(b.r(&format!("GET {}", k[0])), refused(&k[0]));
    let (records, _) = a
        .reader
        .export_slots(&[(100, 100)], &[], (1 << 20, 1 << 20))
        .unwrap();
    let r = b.batch_of(&[Command::SlotsIngest { fence: 4, records }]);
    assert!(matches!(r[0], Reply::Int(_)), "the copy goes in: {r:?}");
    b.seal(4, "100");
    assert_eq!(b.w(&format!("INCR {}", k[0])), Reply::Int(90));
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("90"));
    // Its other slots were served all along; an unfenced ADD serves at once.
    assert_eq!(b.w("RAFTKV.SLOTS.ADD 200"), Reply::Int(1));
    let j = keys_in(&set("200"), "j", 1);
    assert_eq!(b.w(&format!("SET {} x", j[0])), Reply::ok());
}

/// Entries of `db`'s data family's memtables.
fn memtable_entries(db: &rocksdb::DB) -> u64 {
    let cf = db.cf_handle(CF_DATA).unwrap();
    let n = |p: &str| db.property_int_value_cf(cf, p).unwrap().unwrap();
    n("rocksdb.num-entries-active-mem-table") + n("rocksdb.num-entries-imm-mem-tables")
}

#[test]
fn an_export_flushes_a_full_hashed_memtable_first_and_reads_the_same_records() {
    // Every chunk's iterator sorts the hashed memtable's entries: an export from a big
    // memtable flushes it once, then reads the same records from the table file.
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut a = G::open(&db, 1, "0-16383");
    let n = crate::ingest::EXPORT_FLUSH_ENTRIES as usize + 100;
    let k = keys_in(&set("100"), "k", 10);
    for (i, key) in k.iter().enumerate() {
        a.w(&format!("SET {key} v{i}"));
    }
    let others: Vec<Command> = (0..n).map(|i| cmd(&format!("SET other:{i} x"))).collect();
    a.batch_of(&others);
    assert!(memtable_entries(&db) > crate::ingest::EXPORT_FLUSH_ENTRIES);
    let before = dump_group(&db, 1, &set("100"));
    let got: Vec<_> = chunks(&a, 1 << 20).into_iter().flatten().collect();
    assert!(memtable_entries(&db) <= crate::ingest::EXPORT_FLUSH_ENTRIES);
    assert_eq!(got.len(), 10);
    let data: Vec<(Vec<u8>, Vec<u8>)> = got
        .iter()
        .map(|(_, k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = before
        .into_iter()
        .filter(|(cf, _, _)| cf == CF_DATA)
        .map(|(_, k, v)| (k, v))
        .collect();
    assert_eq!(data, want);
}

/// Slot 100 moves from group `a` to group `b` (fence 4): removed at the source, its records
/// copied (one chunk), not sealed yet.
fn slot_100_copied_not_sealed(a: &mut G, b: &mut G) {
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 4 100"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 4 FROM 1 100"), Reply::Int(1));
    let (records, _) = a
        .reader
        .export_slots(&[(100, 100)], &[], (1 << 20, 1 << 20))
        .unwrap();
    b.batch_of(&[Command::SlotsIngest { fence: 4, records }]);
}

#[test]
fn a_flushall_share_applies_only_where_its_group_serves_the_layouts_slots() {
    let (_dir, mut a, mut b) = two_groups();
    let (k, j) = (keys_in(&set("100"), "k", 1), keys_in(&set("200"), "j", 1));
    a.w(&format!("SET {} old", k[0]));
    a.w(&format!("SET {} old", j[0]));
    slot_100_copied_not_sealed(&mut a, &mut b);
    let share = |g: &mut G, ranges: Vec<(u16, u16)>| g.batch_of(&[Command::FlushSlots(ranges)]);
    let moving = |r: &[Reply]| matches!(&r[0], Reply::Error(e) if e.starts_with("TRYAGAIN"));
    // The layout before the cut-over gives slot 100 to group 1, which no longer serves it;
    // the target refuses any flush while the copy runs (a later chunk would bring keys
    // older than the flush back).
    assert!(moving(&share(&mut a, vec![(0, 16383)])));
    assert!(moving(&share(&mut b, vec![])));
    assert!(moving(&b.batch(&["FLUSHALL"])));
    assert_eq!(
        a.r(&format!("GET {}", j[0])),
        bulk("old"),
        "nothing flushed"
    );
    b.seal(4, "100");
    // The layout after the cut-over: each group serves its share, and flushes it.
    assert!(moving(&share(&mut b, vec![])), "a stale layout is refused");
    assert_eq!(share(&mut a, vec![(0, 99), (101, 16383)]), [Reply::ok()]);
    assert_eq!(share(&mut b, vec![(100, 100)]), [Reply::ok()]);
    assert_eq!(a.r(&format!("GET {}", j[0])), Reply::Nil);
    assert_eq!(b.r(&format!("GET {}", k[0])), Reply::Nil);
}

#[test]
fn a_keys_or_dbsize_share_reads_exactly_the_layouts_slots_of_a_serving_group() {
    let (_dir, mut a, mut b) = two_groups();
    let (k, j) = (keys_in(&set("100"), "k", 5), keys_in(&set("200"), "j", 3));
    for key in k.iter().chain(&j) {
        a.w(&format!("SET {key} v"));
    }
    slot_100_copied_not_sealed(&mut a, &mut b);
    let moving = |r: &Reply| matches!(r, Reply::Error(e) if e.starts_with("TRYAGAIN"));
    let low_high = "0-99,101-16383";
    // The target counts the copied keys it does not serve yet: plain DBSIZE over-counts.
    assert_eq!(b.r("DBSIZE"), Reply::Int(5));
    // Mid-copy, neither layout's share of slot 100 is served: refused, on the snapshot
    // path and on the apply path (a forwarded read) alike.
    assert!(moving(&a.r("RAFTKV.READSLOTS 0-16383 DBSIZE")));
    assert!(moving(&b.r("RAFTKV.READSLOTS 100 KEYS *")));
    assert!(moving(&b.batch(&["RAFTKV.READSLOTS 100 DBSIZE"])[0]));
    assert_eq!(
        a.r(&format!("RAFTKV.READSLOTS {low_high} DBSIZE")),
        Reply::Int(3)
    );
    assert_eq!(b.r("RAFTKV.READSLOTS  DBSIZE"), Reply::Int(0));
    assert_eq!(b.batch(&["RAFTKV.READSLOTS  DBSIZE"]), [Reply::Int(0)]);
    // The apply path's reads do not serve the copied slots either.
    assert_eq!(b.batch(&["KEYS *"]), [Reply::Array(vec![])]);
    b.seal(4, "100");
    let keys = |r: &Reply| sorted_keys(r);
    let mut want_k = k.clone();
    want_k.sort();
    assert_eq!(b.r("RAFTKV.READSLOTS 100 DBSIZE"), Reply::Int(5));
    assert_eq!(keys(&b.r("RAFTKV.READSLOTS 100 KEYS *")), want_k);
    assert_eq!(keys(&b.batch(&["RAFTKV.READSLOTS 100 KEYS *"])[0]), want_k);
    assert!(
        moving(&a.r("RAFTKV.READSLOTS 0-16383 KEYS *")),
        "a stale layout"
    );
    // A group serving more than its share counts only the share, one key at a time.
    assert_eq!(a.r("RAFTKV.READSLOTS 200 DBSIZE"), Reply::Int(3));
    assert_eq!(a.r("RAFTKV.READSLOTS 300 DBSIZE"), Reply::Int(0));
    assert_eq!(keys(&a.r("RAFTKV.READSLOTS 200 KEYS j*")).len(), 3);
}

#[test]
fn keys_scan_and_randomkey_flush_a_full_hashed_memtable_first() {
    // A total-order iterator sorts the hashed memtable's entries each time one is created:
    // a walk of the keyspace flushes a big memtable first, and answers the same.
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut a = G::open(&db, 1, "0-16383");
    let most = crate::reader::WALK_FLUSH_ENTRIES;
    let sets: Vec<Command> = (0..most + 100)
        .map(|i| cmd(&format!("SET k:{i} x")))
        .collect();
    a.batch_of(&sets);
    // DBSIZE (its share over the group's slots) reads the key counter: no flush.
    assert_eq!(
        a.r("RAFTKV.READSLOTS 0-16383 DBSIZE"),
        Reply::Int(most as i64 + 100)
    );
    assert!(memtable_entries(&db) > most, "DBSIZE flushed");
    for read in ["KEYS k:1*", "SCAN 0 COUNT 5", "RANDOMKEY"] {
        assert!(memtable_entries(&db) > most, "{read}");
        let got = a.r(read);
        assert!(memtable_entries(&db) <= most, "{read}: not flushed");
        assert!(!matches!(got, Reply::Error(_)), "{read}: {got:?}");
        if read.starts_with("KEYS") {
            let want = (0..most + 100)
                .filter(|i| i.to_string().starts_with('1'))
                .count();
            assert_eq!(sorted_keys(&got).len(), want);
        }
        a.batch_of(&sets);
    }
}
