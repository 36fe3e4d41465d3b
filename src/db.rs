//! Opens the node's one RocksDB: the store's column families and the raft log's, sharing
//! one WAL, with the WAL bounded by `max_total_wal_size` (see [`MAX_TOTAL_WAL`]).

use std::path::Path;
use std::sync::Arc;

/// Bound of the live WAL files. Several column families share one WAL: a family written
/// rarely (meta, scripts, the collection families) would keep every WAL file since its
/// last write alive, and make a restart replay all of them. Past this size RocksDB
/// flushes the families holding the oldest WAL file, which is then deleted; the WAL
/// exceeds it only by what is written while that flush runs (measured in
/// docs/benchmarks.md, session 7: 128 MiB bound, at most 141 MB seen).
pub const MAX_TOTAL_WAL: u64 = 128 << 20;

/// The database options, with `max_wal` as the WAL bound.
fn options(max_wal: u64) -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_enable_pipelined_write(true);
    opts.set_max_total_wal_size(max_wal);
    store::tune_db_options(&mut opts);
    opts
}

/// Opens (creating if needed) the database in `dir` with `max_wal` as the WAL bound.
fn open_with(dir: &Path, max_wal: u64) -> Result<Arc<rocksdb::DB>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cfs = store::column_family_descriptors();
    cfs.push(rocksdb::ColumnFamilyDescriptor::new(
        raft_node::CF_RAFT,
        rocksdb::Options::default(),
    ));
    rocksdb::DB::open_cf_descriptors(&options(max_wal), dir, cfs)
        .map(Arc::new)
        .map_err(|e| format!("cannot open RocksDB at {}: {e}", dir.display()))
}

/// Key in the raft column family naming the data format the node's records are in.
const FORMAT_KEY: &[u8] = b"raftkv/format";

/// The data format this build reads and writes. 2: a data record's header carries the
/// key's WATCH stamp (`[type][expire][stamp]`, 17 bytes; session 9). Format 1 (9-byte
/// headers, versions in `kver`) was never marked: a database with raft state but no
/// marker is format 1.
pub const DATA_FORMAT: u64 = 2;

/// Refuses a database written in another data format (reading its records with this
/// build's layout would serve wrong data); marks a new one with [`DATA_FORMAT`].
fn check_format(db: &rocksdb::DB) -> Result<(), String> {
    let cf = db
        .cf_handle(raft_node::CF_RAFT)
        .ok_or("missing raft column family")?;
    let refuse = |had: String| {
        Err(format!(
            "this data dir holds data format {had}, this build reads format {DATA_FORMAT} only; start it with the raftkv that wrote it, or start this build on an empty data dir (and add the node back with --join)"
        ))
    };
    match db.get_cf(cf, FORMAT_KEY).map_err(|e| e.to_string())? {
        Some(v) => match <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes) {
            Ok(DATA_FORMAT) => Ok(()),
            Ok(other) => refuse(other.to_string()),
            Err(_) => refuse("(unreadable marker)".into()),
        },
        None => {
            let mut it = db.raw_iterator_cf(cf);
            it.seek_to_first();
            if it.valid() {
                return refuse("1".into());
            }
            it.status().map_err(|e| e.to_string())?;
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(cf, FORMAT_KEY, DATA_FORMAT.to_be_bytes(), &opts)
                .map_err(|e| e.to_string())
        }
    }
}

/// Opens the node's database in `dir` (refused when it holds another data format).
pub fn open(dir: &Path) -> Result<Arc<rocksdb::DB>, String> {
    let db = open_with(dir, MAX_TOTAL_WAL)?;
    check_format(&db)?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Bytes of the live WAL files (`NNNNNN.log`) in `dir`.
    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    #[test]
    fn a_data_dir_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).expect("a new dir is marked"));
        drop(open(dir.path()).expect("its own format reopens"));
        {
            let db = open_with(dir.path(), MAX_TOTAL_WAL).unwrap();
            let cf = db.cf_handle(raft_node::CF_RAFT).unwrap();
            db.put_cf(cf, FORMAT_KEY, 3u64.to_be_bytes()).unwrap();
        }
        let Err(e) = open(dir.path()) else {
            panic!("format 3 opened")
        };
        assert!(e.contains("data format 3"), "{e}");
        // An unmarked dir with raft state is format 1 (written before the marker).
        let old = tempfile::tempdir().unwrap();
        {
            let db = open_with(old.path(), MAX_TOTAL_WAL).unwrap();
            let cf = db.cf_handle(raft_node::CF_RAFT).unwrap();
            db.put_cf(cf, b"raftkv/layout/groups", 3u64.to_be_bytes())
                .unwrap();
        }
        let Err(e) = open(old.path()) else {
            panic!("format 1 opened")
        };
        assert!(e.contains("data format 1"), "{e}");
    }

    /// The text of the newest file in `dir` whose name starts with `prefix`.
    fn newest(dir: &Path, prefix: &str) -> String {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix) && !n.ends_with(".dbtmp"))
            .collect();
        // OPTIONS-<number>: the highest number is the newest (the width may differ).
        names.sort_by_key(|n| (n.len(), n.clone()));
        std::fs::read_to_string(dir.join(names.last().expect(prefix))).unwrap()
    }

    /// The info LOG runs at INFO whatever the library's default (DEBUG in a build without
    /// `NDEBUG`, which logs a line per WAL sync): the node's WAL syncs write no line.
    #[test]
    fn the_info_log_is_at_info_level_and_wal_syncs_do_not_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).unwrap();
        let cf = db.cf_handle(raft_node::CF_RAFT).unwrap();
        for i in 0u32..20 {
            db.put_cf(cf, i.to_be_bytes(), b"x").unwrap();
            db.flush_wal(true).unwrap();
        }
        let options = newest(dir.path(), "OPTIONS-");
        assert!(
            options.contains("info_log_level=INFO_LEVEL"),
            "{}",
            options
                .lines()
                .find(|l| l.contains("info_log_level"))
                .unwrap_or("no level")
        );
        drop(db);
        let log = std::fs::read_to_string(dir.path().join("LOG")).unwrap();
        assert!(!log.contains("[DEBUG]"), "DEBUG lines in the LOG");
    }

    /// Every family compresses its table files with Snappy, as the data dirs (and snapshot
    /// files) written with Debian's librocksdb do: a build without Snappy could not read them.
    #[test]
    fn table_files_are_snappy_compressed_as_before() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        let options = newest(dir.path(), "OPTIONS-");
        let levels: Vec<&str> = options
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("compression="))
            .collect();
        assert_eq!(
            levels.len(),
            store::column_families().len() + 2,
            "{levels:?}"
        );
        assert!(
            levels
                .iter()
                .all(|l| *l == "compression=kSnappyCompression"),
            "{levels:?}"
        );
    }

    #[test]
    fn a_rarely_written_family_does_not_keep_the_wal_growing() {
        let dir = tempfile::tempdir().unwrap();
        const LIMIT: u64 = 4 << 20;
        let db = open_with(dir.path(), LIMIT).unwrap();
        // Every store family written once, then never again: each pins the first WAL file
        // until it is flushed.
        for name in store::column_families() {
            let cf = db.cf_handle(name).unwrap();
            db.put_cf(cf, b"once", b"x").unwrap();
        }
        // 48 MiB through the two busy families, as the node writes them (the raft log and
        // the data), less than either family's memtable so neither fills on its own.
        let raft = db.cf_handle(raft_node::CF_RAFT).unwrap();
        let data = db.cf_handle(store::CF_DATA).unwrap();
        let value = vec![7u8; 256 << 10];
        for i in 0u32..96 {
            let mut wb = rocksdb::WriteBatch::default();
            wb.put_cf(raft, i.to_be_bytes(), &value);
            wb.put_cf(data, i.to_be_bytes(), &value);
            db.write(wb).unwrap();
        }
        // RocksDB checks the bound on each write and flushes in the background, while
        // the writes go on into a new WAL file: the burst above went mostly into that file
        // (the overshoot). The node keeps writing (hard states, heartbeats' commits, the
        // next requests): with small writes going on, the WAL comes back within the bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut i = 0u32;
        loop {
            let live = wal_bytes(dir.path());
            if live <= 2 * LIMIT {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{live} bytes of WAL after writing 48 MiB, bound {LIMIT}"
            );
            i += 1;
            db.put_cf(raft, [b"small".as_slice(), &i.to_be_bytes()].concat(), b"x")
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        // Nothing was lost by the flushes.
        assert_eq!(db.get_cf(data, 95u32.to_be_bytes()).unwrap(), Some(value));
        let meta = db.cf_handle(store::column_families()[2]).unwrap();
        assert_eq!(db.get_cf(meta, b"once").unwrap(), Some(b"x".to_vec()));
    }
}
