//! Unit tests of a slot moving between two groups of one node (one database, one claims
//! registry): the source's REMOVE and the target's ADD hand the records over with their
//! counters, TTLs and fresh WATCH versions; the target's ADD waits while the source still
//! claims the slot; fences make stale slot commands no-ops; a snapshot-style forced take
//! makes the source's late writes to the slot unknown-outcome errors; a source snapshot
//! dropping a slot leaves its records stale until a target snapshot replaces them.

use bytes::Bytes;
use resp::{Command, Reply};

use crate::claims::Claims;
use crate::testgroup::*;

fn exec(watches: Vec<resp::WatchedKey>, body: &str) -> Command {
    Command::Transaction {
        watches,
        body: vec![argv(body)],
    }
}

#[test]
fn a_moved_slot_keeps_its_keys_ttls_and_counts_and_watches_across_it_abort() {
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("100"), "k", 3);
    a.w(&format!("SET {} v0", k[0]));
    a.w(&format!("SET {} v1 PX 5000", k[1]));
    a.w(&format!("RPUSH {} x y", k[2]));
    let watched = a
        .reader
        .watch_versions(&[Bytes::from(k[0].clone())], NOW)
        .unwrap();
    assert!(
        b.store.must_wait_for(&[(100, 100)], 1, 0),
        "group 1 still claims slot 100"
    );
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 100"), Reply::Int(1));
    assert!(!b.store.must_wait_for(&[(100, 100)], 1, 0));
    assert_eq!(a.counts(), (0, 0));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 100"), Reply::Int(1));
    b.seal(1, "100");
    assert_eq!(b.counts(), (3, 1));
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("v0"));
    assert_eq!(b.due(NOW + 10_000), vec![k[1].clone()]);
    assert_eq!(
        b.r(&format!("LRANGE {} 0 -1", k[2])),
        Reply::Array(vec![bulk("x"), bulk("y")])
    );
    assert_eq!(a.r(&format!("GET {}", k[0])), refused(&k[0]));
    // A WATCH taken in group 1 never matches in group 2, even with the key unchanged.
    assert_eq!(
        b.batch_of(&[exec(watched, &format!("SET {} v2", k[0]))])[0],
        Reply::NilArray
    );
    // One taken in group 2 works there.
    let w2 = b
        .reader
        .watch_versions(&[Bytes::from(k[0].clone())], NOW)
        .unwrap();
    assert_eq!(
        b.batch_of(&[exec(w2, &format!("SET {} v3", k[0]))])[0],
        Reply::Array(vec![Reply::ok()])
    );
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("v3"));
}

#[test]
fn a_stale_slot_command_changes_nothing() {
    let (_dir, mut a, mut b) = two_groups();
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 5 200"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 5 200"), Reply::Int(1));
    b.seal(5, "200");
    // The slot comes back (migration 6); a late retry of migration 5's REMOVE is stale.
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 6 200"), Reply::Int(1));
    assert_eq!(a.w("RAFTKV.SLOTS.ADD FENCE 6 200"), Reply::Int(1));
    a.seal(6, "200");
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 5 200"), Reply::Int(0));
    assert!(a.store.slots().contains(200));
    assert!(
        !b.store.must_wait_for(&[(200, 200)], 5, 0),
        "a stale ADD never waits"
    );
    // The fence survives a reopen.
    let db = a.db.clone();
    drop(a);
    let mut a = G::open(&db, 1, "");
    a.index = 100;
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 5 200"), Reply::Int(0));
}

#[test]
fn writes_of_a_slot_taken_by_force_are_unknown_outcomes() {
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("300"), "f", 1);
    a.w(&format!("SET {} 1", k[0]));
    // Group 2 restores a snapshot owning slot 300 while group 1 has not applied its REMOVE.
    let before = b.store.slots.clone();
    b.store.slots.insert_range(300, 300);
    b.store
        .claim_restored(&before, &crate::SlotSet::empty(), 0)
        .unwrap();
    match a.w(&format!("SET {} 2", k[0])) {
        Reply::Error(e) => assert!(e.starts_with("UNCERTAIN slot 300"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Group 1's persisted set lost the slot: a restart finds it claimed once.
    let db = a.db.clone();
    drop(a);
    let reopened = G::open(&db, 1, "");
    assert!(!reopened.store.slots().contains(300));
    assert!(reopened.store.slots().contains(301));
}

#[test]
fn a_source_snapshot_dropping_a_slot_leaves_it_stale_until_a_target_snapshot() {
    let (_dir, mut a, mut b) = two_groups();
    // Group 1 restores a snapshot past its REMOVE of slot 400 (it never applied it here).
    let before = a.store.slots.clone();
    a.store.slots.remove_range(400, 400);
    a.store
        .claim_restored(&before, &crate::SlotSet::empty(), 0)
        .unwrap();
    assert!(
        b.store.must_wait_for(&[(400, 400)], 1, 0),
        "stale records are never adopted"
    );
    assert!(b.store.stale_in(&[(400, 400)], 1, 0));
    assert!(!b.store.stale_in(&[(401, 401)], 1, 0));
    // The mark survives a restart of the node.
    let fresh = Claims::new();
    let db = b.db.clone();
    let mut c = G::open(&db, 3, "");
    c.store.set_claims(fresh).unwrap();
    assert!(c.store.stale_in(&[(400, 400)], 0, 0));
    // Group 2's snapshot owning the slot brings fresh records.
    let before = b.store.slots.clone();
    b.store.slots.insert_range(400, 400);
    b.store
        .claim_restored(&before, &crate::SlotSet::empty(), 0)
        .unwrap();
    assert!(!b.store.stale_in(&[(400, 400)], 1, 0));
    assert!(!b.store.must_wait_for(&[(400, 400)], 1, 0));
    let mut d = G::open(&db, 4, "");
    d.store.set_claims(Claims::new()).unwrap();
    assert!(
        !d.store.stale_in(&[(400, 400)], 0, 0),
        "cleared on disk too"
    );
}

#[test]
fn an_old_target_snapshot_does_not_overwrite_a_slot_a_group_holds_since() {
    let (dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("500"), "o", 1);
    // Migration 1: slot 500 to group 2, which writes it; its snapshot then.
    a.w("RAFTKV.SLOTS.REMOVE FENCE 1 500");
    b.w("RAFTKV.SLOTS.ADD FENCE 1 500");
    b.seal(1, "500");
    b.w(&format!("SET {} old", k[0]));
    let snap = dir.path().join("snap-b");
    std::fs::create_dir_all(&snap).unwrap();
    b.store
        .export_snapshot(snap.clone())
        .unwrap()
        .finish()
        .unwrap();
    // Migration 2: back to group 1, which writes it again.
    b.w("RAFTKV.SLOTS.REMOVE FENCE 2 500");
    a.w("RAFTKV.SLOTS.ADD FENCE 2 500");
    a.seal(2, "500");
    a.w(&format!("SET {} new", k[0]));
    // Group 2 restores its old snapshot (a lagging replica catching up): the slot stays
    // group 1's, with group 1's records.
    b.store.restore_snapshot(&snap).unwrap();
    assert_eq!(a.r(&format!("GET {}", k[0])), bulk("new"));
    assert_eq!(a.w(&format!("GET {}", k[0])), bulk("new"));
    assert!(
        b.store.must_wait_for(&[(500, 500)], 3, 0),
        "a later ADD waits for group 1"
    );
}

/// Groups 1 (all slots), 2 and 3 (none) on a fresh database with its own claims.
fn three_groups(dir: &std::path::Path) -> (G, G, G) {
    let db = open_db(dir);
    let claims = Claims::new();
    let mut gs = [(1, "0-16383"), (2, ""), (3, "")].map(|(g, slots)| G::open(&db, g, slots));
    for g in &mut gs {
        g.store.set_claims(claims.clone()).unwrap();
    }
    let [a, b, c] = gs;
    (a, b, c)
}

#[test]
fn a_snapshot_past_moves_this_node_never_saw_leaves_their_slots_stale() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys_in(&set("600"), "h", 1);
    // Node X applies everything: slot 600 goes 1 -> 2 (migration 13), is written, then
    // 2 -> 3 (migration 22); group 2's snapshot is taken there.
    let (mut xa, mut xb, mut xc) = three_groups(&dir.path().join("x"));
    xa.w(&format!("SET {} old", k[0]));
    xa.w("RAFTKV.SLOTS.REMOVE FENCE 13 600");
    xb.w("RAFTKV.SLOTS.ADD FENCE 13 600");
    xb.seal(13, "600");
    xb.w(&format!("SET {} new", k[0]));
    xb.w("RAFTKV.SLOTS.REMOVE FENCE 22 600");
    xc.w("RAFTKV.SLOTS.ADD FENCE 22 600");
    xc.seal(22, "600");
    let snap = dir.path().join("snap");
    std::fs::create_dir_all(&snap).unwrap();
    xb.store
        .export_snapshot(snap.clone())
        .unwrap()
        .finish()
        .unwrap();
    // Node Y saw group 1's write and REMOVE only; its group 2 catches up by the snapshot,
    // which does not own slot 600 and never did here.
    let (mut ya, mut yb, yc) = three_groups(&dir.path().join("y"));
    ya.w(&format!("SET {} old", k[0]));
    ya.w("RAFTKV.SLOTS.REMOVE FENCE 13 600");
    yb.store.restore_snapshot(&snap).unwrap();
    // Group 3's ADD must not adopt Y's records of the slot ("old"): they lack "new".
    assert!(yc.store.must_wait_for(&[(600, 600)], 22, 0));
    assert!(yc.store.stale_in(&[(600, 600)], 22, 0));
    assert!(!yc.store.stale_in(&[(601, 601)], 22, 0));
}

#[test]
fn a_snapshot_from_before_the_first_migration_does_not_overwrite_the_slot_it_moved() {
    // Chaos seed 929: group 1's snapshot, taken before any migration (fence 0), restored
    // on a node where group 2 already holds the slot migration 1 gave it: the slot stays
    // group 2's, with group 2's records.
    let (dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("700"), "z", 1);
    a.w(&format!("SET {} old", k[0]));
    let snap = dir.path().join("snap-a");
    std::fs::create_dir_all(&snap).unwrap();
    a.store
        .export_snapshot(snap.clone())
        .unwrap()
        .finish()
        .unwrap();
    a.w("RAFTKV.SLOTS.REMOVE FENCE 1 700");
    b.w("RAFTKV.SLOTS.ADD FENCE 1 700");
    b.seal(1, "700");
    b.w(&format!("SET {} new", k[0]));
    a.store.restore_snapshot(&snap).unwrap();
    assert_eq!(b.r(&format!("GET {}", k[0])), bulk("new"));
    assert!(
        a.store.must_wait_for(&[(700, 700)], 2, 0),
        "group 1's ADD of migration 2 waits for group 2's REMOVE"
    );
    // Group 1 replays its REMOVE of migration 1, then migration 2 moves the slot back.
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 700"), Reply::Int(1));
    b.w(&format!("SET {} newer", k[0]));
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 2 700"), Reply::Int(1));
    assert!(!a.store.must_wait_for(&[(700, 700)], 2, 0));
    assert_eq!(a.w("RAFTKV.SLOTS.ADD FENCE 2 700"), Reply::Int(1));
    a.seal(2, "700");
    assert_eq!(a.r(&format!("GET {}", k[0])), bulk("newer"));
}

#[test]
fn an_add_waits_for_the_slot_to_reach_and_leave_an_earlier_migrations_target() {
    // Chaos seed 929: slot 800 moves 1 -> 2 (migration 1) and back (migration 2). On this
    // node group 1 applies both of its commands while group 2 lags behind: between group
    // 1's REMOVE and group 2's ADD no group claims the slot, yet group 1's ADD of migration
    // 2 must wait for group 2's writes to it and its REMOVE.
    let (dir, mut a, b) = two_groups();
    let k = keys_in(&set("800"), "t", 1);
    a.w(&format!("SET {} old", k[0]));
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 800"), Reply::Int(1));
    assert!(!b.store.must_wait_for(&[(800, 800)], 1, 0));
    assert!(a.store.must_wait_for(&[(800, 800)], 2, 0));
    // A restart of the node keeps it (from the groups' slot histories).
    let db = a.db.clone();
    drop((a, b));
    let claims = Claims::new();
    let mut a = G::open(&db, 1, "");
    let mut b = G::open(&db, 2, "");
    a.index = 100;
    b.index = 100;
    a.store.set_claims(claims.clone()).unwrap();
    b.store.set_claims(claims).unwrap();
    assert!(a.store.must_wait_for(&[(800, 800)], 2, 0));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 800"), Reply::Int(1));
    b.seal(1, "800");
    b.w(&format!("SET {} new", k[0]));
    assert!(
        a.store.must_wait_for(&[(800, 800)], 2, 0),
        "group 2 claims it"
    );
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 2 800"), Reply::Int(1));
    assert!(!a.store.must_wait_for(&[(800, 800)], 2, 0));
    assert_eq!(a.w("RAFTKV.SLOTS.ADD FENCE 2 800"), Reply::Int(1));
    a.seal(2, "800");
    assert_eq!(a.r(&format!("GET {}", k[0])), bulk("new"));
    drop(dir);
}

#[test]
fn an_add_waits_until_the_batch_holding_the_remove_is_written() {
    // A node's groups share one batch per driver round: group 1's write to slot 900 and
    // its REMOVE are staged in it, not yet in the database. Group 2's ADD in the same round
    // would count and read the slot without that write (DBSIZE skew on a node catching up
    // after a pause, tests/migration.rs).
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("900"), "r", 2);
    a.w(&format!("SET {} 1", k[0]));
    let mut wb = rocksdb::WriteBatch::default();
    for (i, c) in [
        format!("SET {} v", k[1]),
        format!("INCR {}", k[0]),
        "RAFTKV.SLOTS.REMOVE FENCE 1 900".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let index = 10 + i as u64;
        a.store.begin_entry_at(index);
        a.store.set_entry_index(index);
        a.store.apply(&mut wb, &cmd(c), NOW);
    }
    assert!(
        b.store.must_wait_for(&[(900, 900)], 1, 0),
        "the REMOVE's batch is not written"
    );
    a.db.write(wb).unwrap();
    a.store.batch_written();
    assert!(!b.store.must_wait_for(&[(900, 900)], 1, 0));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 900"), Reply::Int(1));
    b.seal(1, "900");
    assert_eq!(b.counts(), (2, 0));
    assert_eq!(b.w(&format!("INCR {}", k[0])), Reply::Int(3));
}

#[test]
fn a_record_stamped_by_another_group_s_log_never_matches_a_version_of_this_one() {
    let (_dir, mut a, mut b) = two_groups();
    let k = keys_in(&set("120"), "s", 1).remove(0);
    a.index = 500;
    a.w(&format!("SET {k} v0"));
    let stamped_at = a.index;
    assert_eq!(a.w("RAFTKV.SLOTS.REMOVE FENCE 1 120"), Reply::Int(1));
    assert_eq!(b.w("RAFTKV.SLOTS.ADD FENCE 1 120"), Reply::Int(1));
    b.seal(1, "120");
    // Group 2 watches the key (its record still carries group 1's stamp), then writes it
    // at the very index group 1 stamped it with: the versions differ, the EXEC aborts.
    let w = b
        .reader
        .watch_versions(&[Bytes::from(k.clone())], NOW)
        .unwrap();
    b.index = stamped_at - 1;
    b.w(&format!("SET {k} v1"));
    assert_eq!(b.index, stamped_at);
    assert_eq!(
        b.batch_of(&[exec(w, &format!("SET {k} x"))])[0],
        Reply::NilArray
    );
    // The slot goes back: group 1 sees group 2's stamp as none of its own, and its own
    // later write changes the version it reports.
    assert_eq!(b.w("RAFTKV.SLOTS.REMOVE FENCE 2 120"), Reply::Int(1));
    assert_eq!(a.w("RAFTKV.SLOTS.ADD FENCE 2 120"), Reply::Int(1));
    a.seal(2, "120");
    let w = a
        .reader
        .watch_versions(&[Bytes::from(k.clone())], NOW)
        .unwrap();
    assert_eq!(a.r(&format!("GET {k}")), bulk("v1"));
    assert_eq!(
        a.batch_of(&[exec(w.clone(), &format!("SET {k} v1"))])[0],
        Reply::Array(vec![Reply::ok()])
    );
    a.w(&format!("SET {k} v2"));
    assert_eq!(
        a.batch_of(&[exec(w, &format!("SET {k} x"))])[0],
        Reply::NilArray
    );
}
