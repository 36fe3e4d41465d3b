//! Snapshots captured by RocksDB checkpoint, for large groups: the capture is a checkpoint
//! of the whole database (hard links of its table files, after a flush of the memtables;
//! nothing of the data is re-written), taken while the caller (the Raft Ready loop, the
//! group's only writer) waits, so it holds exactly the group's applied state. The files a
//! receiver needs (the group's ranges as SST files, as [`crate::snapshot::export`] writes
//! them) are made later from the checkpoint by [`materialize`], only when a follower needs
//! the snapshot, and the checkpoint is then dropped; [`crate::snapshot::restore`] takes the
//! files unchanged.
//!
//! Costs: the capture flushes every memtable and links every table file of the database
//! (other groups' too) while the Ready loop waits: its time grows with the memtables, not
//! with the group's data. The checkpoint keeps the table files it links on disk until the
//! snapshot's files are made or its directory is pruned, although compaction replaced them
//! in the live database (at most the database's size again per pending snapshot).

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::slots::SlotSet;
use crate::snapshot::{read_manifest, write_files, MANIFEST};
use crate::{column_family_descriptors, CF_DATA};

/// The checkpoint's directory inside a snapshot directory (not one of the snapshot's
/// files: a directory, which the snapshot's descriptor leaves out).
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// Where a checkpoint goes once the snapshot's files are made, to be removed (a removal
/// interrupted by a crash never leaves a half checkpoint under [`CHECKPOINT_DIR`]).
const DROPPED_DIR: &str = "checkpoint.dropped";

/// Estimated bytes of live data in `db`'s data column family (RocksDB's estimate: table
/// files plus memtables; the whole database, every group).
pub fn data_bytes(db: &DB) -> u64 {
    let Some(cf) = db.cf_handle(CF_DATA) else {
        return 0;
    };
    let prop = |name: &str| db.property_int_value_cf(cf, name).ok().flatten();
    prop("rocksdb.estimate-live-data-size").unwrap_or(0)
        + prop("rocksdb.cur-size-all-mem-tables").unwrap_or(0)
}

/// Captures `group` now: a checkpoint of `db` in `dir/`[`CHECKPOINT_DIR`] and the
/// manifest (group and slot set) in `dir` (which must exist). Returns when both are
/// durable.
pub fn capture(db: &DB, dir: &Path, group: u64) -> Result<(), String> {
    let slots = crate::scope::load_slots(db, group)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("group {group} has no slot set"))?;
    let cp = rocksdb::checkpoint::Checkpoint::new(db).map_err(|e| e.to_string())?;
    let at = dir.join(CHECKPOINT_DIR);
    cp.create_checkpoint(&at)
        .map_err(|e| format!("checkpoint into {}: {e}", at.display()))?;
    let manifest = dir.join(MANIFEST);
    std::fs::write(&manifest, format!("group {group}\nslots {slots}\n"))
        .map_err(|e| format!("writing {}: {e}", manifest.display()))?;
    std::fs::File::open(&manifest)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::File::open(dir))
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing {}: {e}", dir.display()))
}

/// True when `dir` holds a capture whose SST files [`materialize`] has still to make.
pub fn captured_only(dir: &Path) -> bool {
    dir.join(CHECKPOINT_DIR).is_dir()
}

/// Writes the SST files of the snapshot captured in `dir` (by [`capture`]) from its
/// checkpoint, opened read-only; once they are durable, removes the checkpoint (it would
/// keep table files the live database compacted away). Idempotent: a redo after a crash
/// re-writes every file, or finds them made and the checkpoint gone.
pub fn materialize(dir: &Path) -> Result<(), String> {
    let at = dir.join(CHECKPOINT_DIR);
    let dropped = dir.join(DROPPED_DIR);
    if !at.is_dir() {
        // Made before a crash: the checkpoint is dropped (renamed away, then removed) only
        // after the files are synced.
        let _ = std::fs::remove_dir_all(&dropped);
        return read_manifest(dir).map(|_| ());
    }
    let (group, slots) = read_manifest(dir)?;
    let db = open_checkpoint(&at)?;
    remove_old_files(dir)?;
    let files = write_files(
        dir,
        group,
        &slots,
        |cf, ro| db.raw_iterator_cf_opt(cf, ro),
        &db,
    )?;
    check_slots(&db, group, &slots)?;
    drop(db);
    let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    for f in &files {
        sync(f).map_err(|e| format!("syncing {}: {e}", f.display()))?;
    }
    sync(dir).map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    std::fs::rename(&at, &dropped).map_err(|e| format!("renaming {}: {e}", at.display()))?;
    sync(dir).map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    std::fs::remove_dir_all(&dropped).map_err(|e| format!("removing {}: {e}", dropped.display()))
}

/// Opens a checkpoint read-only with every column family it has (the store's with the
/// store's options: the data family's memtable needs its prefix extractor for the WAL the
/// checkpoint may hold).
fn open_checkpoint(path: &Path) -> Result<DB, String> {
    let opts = Options::default();
    let names = DB::list_cf(&opts, path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cfs: Vec<ColumnFamilyDescriptor> = column_family_descriptors();
    for name in names {
        if !cfs.iter().any(|d| d.name() == name) {
            cfs.push(ColumnFamilyDescriptor::new(name, Options::default()));
        }
    }
    let mut opts = Options::default();
    crate::tune_db_options(&mut opts);
    DB::open_cf_descriptors_read_only(&opts, path, cfs, false)
        .map_err(|e| format!("opening checkpoint {}: {e}", path.display()))
}

/// Removes SST files a materialization interrupted by a crash left in `dir`.
fn remove_old_files(dir: &Path) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd.flatten() {
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && e.file_name().to_string_lossy().ends_with(".sst") {
            std::fs::remove_file(e.path()).map_err(|err| format!("{err}"))?;
        }
    }
    Ok(())
}

/// The checkpoint's slot set of `group` must be the manifest's (written at the capture).
fn check_slots(db: &DB, group: u64, slots: &SlotSet) -> Result<(), String> {
    match crate::scope::load_slots(db, group).map_err(|e| e.to_string())? {
        Some(s) if &s == slots => Ok(()),
        _ => Err(format!(
            "checkpoint of group {group}: its slot set is not the manifest's"
        )),
    }
}
