//! Snapshot export and restore of the state machine, as RocksDB SST files.
//!
//! [`export`] captures the store's column families at one instant (a RocksDB snapshot taken
//! while the caller, the Raft Ready loop, waits: it is the only writer, so the capture is
//! exactly its applied index) and then writes them, without blocking anyone, into one SST
//! file per non-empty column family. [`restore`] replaces the store's column families with
//! such files: a range delete of everything, then an ingest (copying the files, so a restore
//! interrupted by a crash can be redone from the same files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{IngestExternalFileOptions, Options, ReadOptions, SstFileWriter, WriteOptions, DB};

use crate::column_families;

/// Upper bound used for range deletes: every store key sorts below it.
const KEY_CEILING: [u8; 64] = [0xff; 64];

/// The file name a column family's export is written to.
pub fn file_name(cf: &str) -> String {
    format!("{cf}.sst")
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

/// Captures the store now and writes it into `dir` (which must exist) on a new thread.
pub fn export(db: Arc<DB>, dir: PathBuf) -> Result<Export, String> {
    let (taken_tx, taken_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("snapshot-export".into())
        .spawn(move || {
            let snap = db.snapshot();
            let _ = taken_tx.send(());
            let mut files = Vec::new();
            for cf_name in column_families() {
                let cf = db
                    .cf_handle(cf_name)
                    .ok_or_else(|| format!("missing column family {cf_name}"))?;
                let mut ro = ReadOptions::default();
                ro.set_total_order_seek(true);
                ro.fill_cache(false);
                let mut it = snap.raw_iterator_cf_opt(cf, ro);
                it.seek_to_first();
                if !it.valid() {
                    it.status().map_err(|e| e.to_string())?;
                    continue;
                }
                let opts = Options::default();
                let mut w = SstFileWriter::create(&opts);
                let path = dir.join(file_name(cf_name));
                w.open(&path).map_err(|e| e.to_string())?;
                while it.valid() {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    w.put(k, v).map_err(|e| e.to_string())?;
                    it.next();
                }
                it.status().map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())?;
                files.push(path);
            }
            Ok(files)
        })
        .map_err(|e| e.to_string())?;
    taken_rx
        .recv()
        .map_err(|_| "snapshot export thread failed before capturing".to_string())?;
    Ok(Export { thread })
}

/// Replaces every store column family with the SST files in `dir` (as written by
/// [`export`]; a column family without a file ends up empty). Idempotent.
pub fn restore(db: &DB, dir: &Path) -> Result<(), String> {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    for cf_name in column_families() {
        let cf = db
            .cf_handle(cf_name)
            .ok_or_else(|| format!("missing column family {cf_name}"))?;
        db.delete_range_cf_opt(cf, &[][..], &KEY_CEILING[..], &wo)
            .map_err(|e| e.to_string())?;
        let path = dir.join(file_name(cf_name));
        if path.exists() {
            // Copy, not move: ingesting may rewrite the file (its global sequence number),
            // and the snapshot's own file must stay intact for a redo or for sending on.
            let mut io = IngestExternalFileOptions::default();
            io.set_move_files(false);
            let source = path;
            db.ingest_external_file_cf_opts(cf, &io, vec![source])
                .map_err(|e| e.to_string())?;
        }
    }
    db.flush_wal(true).map_err(|e| e.to_string())
}
