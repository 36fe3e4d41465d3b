//! Unit tests of the raft log storage: the `raft::Storage` contract, appends and
//! truncation, reopening, snapshots, and reads past the bounded entry cache.

use super::*;
use raft::Storage;

fn open_db(dir: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    Arc::new(DB::open_cf(&opts, dir, [CF_RAFT]).unwrap())
}

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("e{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn append(s: &mut RocksStorage, ents: &[Entry]) {
    let mut wb = WriteBatch::default();
    s.stage_append(&mut wb, ents).unwrap();
    s.db.write(wb).unwrap();
    s.commit_staged();
}

#[test]
fn empty_log_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStorage::open(open_db(dir.path()), 1, &[]).unwrap();
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 0);
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(matches!(
        s.term(1),
        Err(raft::Error::Store(StorageError::Unavailable))
    ));
    let st = s.initial_state().unwrap();
    assert!(st.conf_state.voters.is_empty());
    assert_eq!(st.hard_state, HardState::default());
    assert!(matches!(
        s.snapshot(0, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    assert!(s.take_snapshot_wanted());
}

#[test]
fn founding_members_start_from_index_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let s = RocksStorage::open(db.clone(), 1, &[1, 2, 3]).unwrap();
    assert_eq!(s.first_index().unwrap(), 2);
    assert_eq!(s.last_index().unwrap(), 1);
    assert_eq!(s.term(1).unwrap(), 1);
    let st = s.initial_state().unwrap();
    assert_eq!(st.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(st.hard_state.commit, 1);
    drop(s);
    let s = RocksStorage::open(db, 1, &[1, 2, 3]).unwrap();
    assert_eq!(s.first_index().unwrap(), 2);
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 1);
}

#[test]
fn append_truncate_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 7, &[]).unwrap();
    append(&mut s, &[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.term(3).unwrap(), 2);
    let got = s
        .entries(2, 5, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(got, vec![ent(2, 1), ent(3, 2), ent(4, 2)]);
    // max_size keeps at least one entry
    let one = s
        .entries(2, 5, Some(0), GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(one.len(), 1);
    // conflicting append at 3 replaces the suffix
    append(&mut s, &[ent(3, 3)]);
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(s.term(3).unwrap(), 3);
    assert!(s
        .entries(1, 5, None, GetEntriesContext::empty(false))
        .is_err());
    let mut wb = WriteBatch::default();
    let hs = HardState {
        term: 3,
        vote: 2,
        commit: 2,
        ..Default::default()
    };
    s.stage_hard_state(&mut wb, hs.clone());
    db.write(wb).unwrap();
    drop(s);
    let s2 = RocksStorage::open(db, 7, &[]).unwrap();
    assert_eq!(s2.last_index().unwrap(), 3);
    assert_eq!(s2.term(3).unwrap(), 3);
    assert_eq!(s2.initial_state().unwrap().hard_state, hs);
    assert_eq!(
        s2.entries(1, 4, None, GetEntriesContext::empty(false))
            .unwrap(),
        vec![ent(1, 1), ent(2, 1), ent(3, 3)]
    );
}

#[test]
fn groups_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut a = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    append(&mut a, &[ent(1, 1), ent(2, 1)]);
    let b = RocksStorage::open(db, 2, &[]).unwrap();
    assert_eq!(b.last_index().unwrap(), 0);
}

#[test]
fn reads_beyond_cache_hit_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    let ents: Vec<Entry> = (1..=(crate::entry_cache::MAX_ENTRIES as u64 + 100))
        .map(|i| ent(i, 1))
        .collect();
    append(&mut s, &ents);
    assert_eq!(
        s.entries(1, 3, None, GetEntriesContext::empty(false))
            .unwrap(),
        ents[0..2]
    );
    assert_eq!(s.term(50).unwrap(), 1);
}

#[test]
fn reopen_warms_only_a_bounded_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    // 64 entries of 1 MiB: four times the warm-up budget.
    let big = |i: u64| Entry {
        data: vec![i as u8; 1 << 20].into(),
        ..ent(i, 1)
    };
    let ents: Vec<Entry> = (1..=64).map(big).collect();
    append(&mut s, &ents);
    drop(s);
    let s = RocksStorage::open(db, 1, &[]).unwrap();
    let cached = s.cache.bytes();
    assert!(
        cached <= crate::entry_cache::WARM_BYTES,
        "{cached} bytes cached"
    );
    assert!(!s.cache.is_empty());
    assert_eq!(s.cache.last_index(), Some(64));
    // Every entry is still readable, from the cache or from disk.
    let all = s
        .entries(1, 65, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(all, ents);
    assert_eq!(s.last_index().unwrap(), 64);
}

#[test]
fn large_entries_are_cached_within_the_byte_bound_and_read_from_disk_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    // A 1 MiB bound and 64 KiB entries: 16 fit (less the entries' own overhead).
    let budget = CacheBudget::new(1 << 20, 4 << 20);
    let mut s = RocksStorage::open_cached(db.clone(), 1, &[], budget.clone()).unwrap();
    let big = |i: u64| Entry {
        data: vec![i as u8; 64 << 10].into(),
        ..ent(i, 1)
    };
    let ents: Vec<Entry> = (1..=100).map(big).collect();
    for chunk in ents.chunks(7) {
        append(&mut s, chunk);
    }
    assert!(s.cache.bytes() <= 1 << 20, "{} bytes", s.cache.bytes());
    assert_eq!(budget.used(), s.cache.bytes());
    assert_eq!(s.cache.len(), 15);
    assert_eq!(s.cache.last_index(), Some(100));
    let all = s
        .entries(1, 101, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(all, ents);
    assert_eq!(s.term(3).unwrap(), 1);
    // Reopening warms within the same bound.
    drop(s);
    assert_eq!(budget.used(), 0);
    let s = RocksStorage::open_cached(db, 1, &[], budget.clone()).unwrap();
    assert_eq!(s.cache.len(), 15);
    assert_eq!(budget.used(), s.cache.bytes());
}

fn snap_at(index: u64, term: u64, voters: &[u64]) -> Snapshot {
    let mut s = Snapshot {
        data: b"descriptor".to_vec().into(),
        ..Default::default()
    };
    s.mut_metadata().index = index;
    s.mut_metadata().term = term;
    s.mut_metadata().mut_conf_state().voters = voters.to_vec();
    s
}

#[test]
fn local_snapshot_compacts_and_serves_members_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    let ents: Vec<Entry> = (1..=20).map(|i| ent(i, 1)).collect();
    append(&mut s, &ents);
    let mut wb = WriteBatch::default();
    s.stage_local_snapshot(&mut wb, snap_at(10, 1, &[1, 2]))
        .unwrap();
    db.write(wb).unwrap();
    assert_eq!(s.first_index().unwrap(), 11);
    assert_eq!(s.term(10).unwrap(), 1);
    assert!(matches!(
        s.entries(5, 12, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(
        s.entries(11, 13, None, GetEntriesContext::empty(false))
            .unwrap(),
        vec![ent(11, 1), ent(12, 1)]
    );
    assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 10);
    // Node 3 is not in the snapshot's configuration: a new one must be made.
    assert!(s.snapshot(0, 3).is_err());
    assert!(s.take_snapshot_wanted());
    assert!(s.snapshot(11, 2).is_err());
    drop(s);
    let s = RocksStorage::open(db, 1, &[]).unwrap();
    assert_eq!(s.first_index().unwrap(), 11);
    assert_eq!(s.last_index().unwrap(), 20);
    assert_eq!(s.local_snapshot().unwrap().get_metadata().index, 10);
}

#[test]
fn received_snapshot_replaces_the_log_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    append(&mut s, &[ent(1, 1), ent(2, 1)]);
    let mut wb = WriteBatch::default();
    s.stage_received_snapshot(&mut wb, snap_at(50, 3, &[1, 2, 4]), "snap-3-50")
        .unwrap();
    s.stage_peer(&mut wb, 4, "127.0.0.1:4000");
    db.write(wb).unwrap();
    assert_eq!(s.first_index().unwrap(), 51);
    assert_eq!(s.last_index().unwrap(), 50);
    assert_eq!(s.term(50).unwrap(), 3);
    assert_eq!(s.restoring(), Some("snap-3-50"));
    drop(s);
    // A crash before the store was restored: the marker is still there.
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    assert_eq!(s.restoring(), Some("snap-3-50"));
    assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 4]);
    assert_eq!(s.initial_state().unwrap().hard_state.commit, 50);
    assert_eq!(
        s.peers().get(&4).map(String::as_str),
        Some("127.0.0.1:4000")
    );
    let mut wb = WriteBatch::default();
    s.stage_restored(&mut wb);
    db.write(wb).unwrap();
    drop(s);
    let s = RocksStorage::open(db, 1, &[]).unwrap();
    assert_eq!(s.restoring(), None);
    append_check(&s);
}

fn append_check(s: &RocksStorage) {
    assert_eq!(s.first_index().unwrap(), 51);
}

#[test]
fn a_pending_local_snapshot_is_served_only_once_its_files_are_recorded() {
    use crate::proto::SnapshotDescriptor;
    let with_desc = |pending: bool| {
        let mut s = snap_at(10, 1, &[1, 2]);
        let desc = SnapshotDescriptor {
            index: 10,
            term: 1,
            pending,
            ..Default::default()
        };
        s.data = desc.write_to_bytes().unwrap().into();
        s
    };
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    append(&mut s, &(1..=20).map(|i| ent(i, 1)).collect::<Vec<_>>());
    let mut wb = WriteBatch::default();
    s.stage_local_snapshot(&mut wb, with_desc(true)).unwrap();
    db.write(wb).unwrap();
    // Captured only: raft must wait, and the Ready loop is asked to make the files (not
    // a new snapshot).
    assert!(matches!(
        s.snapshot(0, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
    assert!(s.take_files_wanted());
    assert!(!s.take_snapshot_wanted());
    // Still pending after a restart.
    drop(s);
    let mut s = RocksStorage::open(db.clone(), 1, &[]).unwrap();
    assert!(s.snapshot(0, 2).is_err() && s.take_files_wanted());
    // The files of another snapshot do not replace this one's record.
    let mut other = with_desc(false);
    other.mut_metadata().index = 9;
    let mut wb = WriteBatch::default();
    assert!(!s.stage_snapshot_files(&mut wb, other).unwrap());
    let mut wb = WriteBatch::default();
    assert!(s.stage_snapshot_files(&mut wb, with_desc(false)).unwrap());
    db.write(wb).unwrap();
    assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 10);
    drop(s);
    let s = RocksStorage::open(db, 1, &[]).unwrap();
    assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 10);
    assert!(!s.take_files_wanted());
}
