//! Snapshot export and restore of one group's state machine, as RocksDB SST files.
//!
//! Many groups share the database, so a group's snapshot holds only what is its own
//! ([`group_ranges`]): the records of its slot ranges in every slot-keyed column family
//! (`data`, `sub`, `zscore`, and in `kver` the key records, the slot epochs and the group's
//! flush epoch), and its own prefix of `meta` and of the expiry index. [`export`] captures
//! them at one instant (a RocksDB snapshot taken while the caller, the Raft Ready loop,
//! waits: it is the only writer of the group, so the capture is exactly its applied index)
//! and then writes them, without blocking anyone, into one SST file per non-empty column
//! family, plus a manifest ([`MANIFEST`]: the group and its slot set). [`restore`] replaces
//! exactly those ranges of the manifest's group and slots with the files: a range delete of
//! each, then an ingest (copying the files, so a restore interrupted by a crash can be
//! redone from the same files). Other groups' records are never touched; records of slots
//! the restoring group owned but the snapshot's set does not are left alone too (another
//! group may own them on this node by now: a later clean-up removes stale copies).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    IngestExternalFileOptions, Options, ReadOptions, SstFileWriter, WriteBatch, WriteOptions, DB,
};

use crate::slots::{slot_start, visit_ranges, SlotSet};
use crate::types::meta::prefix_end;
use crate::{column_families, txn, CF_EXPIRE, CF_META};

/// The manifest's file name: `group <id>` and `slots <set>` lines.
pub const MANIFEST: &str = "scope.txt";

/// The file name a column family's export is written to.
pub fn file_name(cf: &str) -> String {
    format!("{cf}.sst")
}

/// The key ranges `[lo, hi)` of `cf` that belong to `group` owning `slots`, in key order.
pub fn group_ranges(cf: &str, group: u64, slots: &SlotSet) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefix = group.to_be_bytes();
    match cf {
        CF_META | CF_EXPIRE | crate::scripting::CF_SCRIPTS => {
            vec![(prefix.to_vec(), prefix_end(&prefix))]
        }
        txn::CF_KVER => {
            let epoch = txn::epoch_key(group);
            let mut v = txn::kver_ranges(slots);
            v.push((epoch.to_vec(), prefix_end(&epoch)));
            v
        }
        _ => slots
            .ranges()
            .map(|(lo, hi)| {
                let (a, b) = (slot_start(lo.into()), slot_start(u32::from(hi) + 1));
                (a.to_vec(), b.to_vec())
            })
            .collect(),
    }
}

/// A started export: the state is captured; [`Export::finish`] waits for the files.
pub struct Export {
    thread: std::thread::JoinHandle<Result<Vec<PathBuf>, String>>,
}

impl Export {
    /// Blocks until every file is written; returns their paths.
    pub fn finish(self) -> Result<Vec<PathBuf>, String> {
        self.thread
            .join()
            .map_err(|_| "snapshot export thread panicked".to_string())?
    }
}

/// Captures `group` now and writes it into `dir` (which must exist) on a new thread. The
/// slot ranges exported are those of the slot set in the captured `meta`.
pub fn export(db: Arc<DB>, dir: PathBuf, group: u64) -> Result<Export, String> {
    let (taken_tx, taken_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("snapshot-export".into())
        .spawn(move || {
            let snap = db.snapshot();
            let _ = taken_tx.send(());
            let slots = captured_slots(&db, &snap, group)?;
            write_files(
                &dir,
                group,
                &slots,
                |cf, ro| snap.raw_iterator_cf_opt(cf, ro),
                &db,
            )
        })
        .map_err(|e| e.to_string())?;
    taken_rx
        .recv()
        .map_err(|_| "snapshot export thread failed before capturing".to_string())?;
    Ok(Export { thread })
}

/// Writes the manifest and one SST file per non-empty column family of `group`'s ranges
/// into `dir`, reading through `iter` (a RocksDB snapshot's or a checkpoint's iterators
/// of `db`'s families). Returns the paths written.
pub(crate) fn write_files<'a>(
    dir: &Path,
    group: u64,
    slots: &SlotSet,
    iter: impl Fn(&rocksdb::ColumnFamily, ReadOptions) -> rocksdb::DBRawIterator<'a>,
    db: &DB,
) -> Result<Vec<PathBuf>, String> {
    let manifest = dir.join(MANIFEST);
    std::fs::write(&manifest, format!("group {group}\nslots {slots}\n"))
        .map_err(|e| format!("writing {}: {e}", manifest.display()))?;
    let mut files = vec![manifest];
    let opts = Options::default();
    for cf_name in column_families() {
        let cf = db
            .cf_handle(cf_name)
            .ok_or_else(|| format!("missing column family {cf_name}"))?;
        let path = dir.join(file_name(cf_name));
        let mut w: Option<SstFileWriter> = None;
        let mut failed = None;
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        ro.fill_cache(false);
        let mut it = iter(cf, ro);
        let ranges = group_ranges(cf_name, group, slots);
        let ranges = ranges.iter().map(|(a, b)| (&a[..], &b[..]));
        visit_ranges(&mut it, ranges, |k, v| {
            let put = match w.as_mut() {
                Some(w) => w.put(k, v),
                None => {
                    let mut writer = SstFileWriter::create(&opts);
                    let opened = writer.open(&path).and_then(|()| writer.put(k, v));
                    w = Some(writer);
                    opened
                }
            };
            failed = put.err();
            failed.is_none()
        })
        .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(format!("writing {}: {e}", path.display()));
        }
        if let Some(mut w) = w {
            w.finish().map_err(|e| e.to_string())?;
            files.push(path);
        }
    }
    Ok(files)
}

/// The slot set of `group` in the captured state.
fn captured_slots(db: &DB, snap: &rocksdb::Snapshot<'_>, group: u64) -> Result<SlotSet, String> {
    let meta = db.cf_handle(CF_META).ok_or("missing meta column family")?;
    let raw = snap
        .get_cf(meta, crate::scope::slots_key(group))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("group {group} has no slot set"))?;
    SlotSet::decode(&raw).ok_or_else(|| format!("group {group}: corrupt slot set"))
}

/// The group and slot set of the snapshot in `dir` (its [`MANIFEST`]).
pub fn read_manifest(dir: &Path) -> Result<(u64, SlotSet), String> {
    let path = dir.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| format!("{}: no {name} line", path.display()))
    };
    let group = field("group")?
        .parse::<u64>()
        .map_err(|e| format!("{}: bad group: {e}", path.display()))?;
    let slots = SlotSet::parse(field("slots")?)?;
    Ok((group, slots))
}

/// Replaces `group`'s records with the SST files in `dir` (as written by [`export`] for
/// that group; a column family without a file ends up with none of the group's records).
/// Idempotent.
pub fn restore(db: &DB, dir: &Path, group: u64) -> Result<(), String> {
    let (of, slots) = read_manifest(dir)?;
    if of != group {
        return Err(format!("snapshot of group {of} offered to group {group}"));
    }
    // Every range delete in one synced batch (a scattered slot set has thousands).
    let mut wb = WriteBatch::default();
    for cf_name in column_families() {
        let cf = db
            .cf_handle(cf_name)
            .ok_or_else(|| format!("missing column family {cf_name}"))?;
        for (lo, hi) in group_ranges(cf_name, group, &slots) {
            wb.delete_range_cf(cf, lo, hi);
        }
    }
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(wb, &wo).map_err(|e| e.to_string())?;
    for cf_name in column_families() {
        let cf = db
            .cf_handle(cf_name)
            .ok_or_else(|| format!("missing column family {cf_name}"))?;
        let path = dir.join(file_name(cf_name));
        if path.exists() {
            // Copy, not move: ingesting may rewrite the file (its global sequence number),
            // and the snapshot's own file must stay intact for a redo or for sending on.
            let mut io = IngestExternalFileOptions::default();
            io.set_move_files(false);
            db.ingest_external_file_cf_opts(cf, &io, vec![path])
                .map_err(|e| e.to_string())?;
        }
    }
    db.flush_wal(true).map_err(|e| e.to_string())
}
