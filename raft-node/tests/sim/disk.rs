//! A simulated node's disk: its RocksDB (one per node, shared by all its groups, as in
//! production) and snapshot directories, and the power-loss model. A WAL fsync
//! (`flush_wal(true)`) is modelled by recording the sizes of the WAL files at that moment;
//! a power loss cuts every WAL file back to its recorded size (newer files to nothing), so
//! every write after the last completed sync is lost. SST files and snapshot files are
//! taken as durable (RocksDB syncs them, and so does `raft_node::snap`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use raft_node::CF_RAFT;
use rocksdb::DB;

/// WAL file sizes: name → bytes.
pub type WalSizes = BTreeMap<String, u64>;

/// A node's storage directories and its WAL sizes at the last completed log sync.
#[derive(Clone)]
pub struct Disk {
    dir: PathBuf,
    synced: Rc<RefCell<WalSizes>>,
}

impl Disk {
    pub fn new(dir: &Path) -> Self {
        Disk {
            dir: dir.to_path_buf(),
            synced: Rc::default(),
        }
    }

    /// The RocksDB directory.
    pub fn db_dir(&self) -> PathBuf {
        self.dir.join("db")
    }

    /// The root of the node's snapshot directories (one per group below it).
    pub fn snap_root(&self) -> PathBuf {
        self.dir.join("snap")
    }

    /// The WAL file sizes now.
    pub fn wal_sizes(&self) -> WalSizes {
        let mut m = WalSizes::new();
        for e in std::fs::read_dir(self.db_dir()).expect("read database directory") {
            let e = e.expect("directory entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") {
                m.insert(name, e.metadata().expect("metadata").len());
            }
        }
        m
    }

    /// A log sync completed that covered the WAL as it was at `sizes`.
    pub fn synced(&self, sizes: WalSizes) {
        *self.synced.borrow_mut() = sizes;
    }

    /// A log sync of everything written so far (one inside the peer's code).
    pub fn sync_now(&self) {
        self.synced(self.wal_sizes());
    }

    /// Simulates a power loss on the closed database: every WAL write after the last
    /// completed sync is lost. Returns the bytes lost.
    pub fn lose_unsynced(&self) -> u64 {
        let m = self.synced.borrow();
        let mut lost = 0;
        for (name, len) in self.wal_sizes() {
            let keep = m.get(&name).copied().unwrap_or(0).min(len);
            if keep < len {
                lost += len - keep;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.db_dir().join(&name))
                    .expect("open WAL");
                f.set_len(keep).expect("truncate WAL");
            }
        }
        lost
    }

    /// Opens (or creates) the node's database.
    pub fn open_db(&self) -> Arc<DB> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(1);
        opts.set_write_buffer_size(1 << 20);
        opts.set_log_level(rocksdb::LogLevel::Error);
        opts.set_keep_log_file_num(1);
        opts.set_stats_dump_period_sec(0);
        // Preallocation is the main cost of opening a database: keep files small.
        opts.set_manifest_preallocation_size(64 << 10);
        // Column families get their own options (a large default write buffer would make
        // the WAL preallocate tens of MB on every open).
        let cfs = [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, CF_RAFT]
            .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, opts.clone()));
        Arc::new(
            DB::open_cf_descriptors(&opts, self.db_dir(), cfs)
                .expect("open simulated node database"),
        )
    }
}

/// Where the nodes' directories live: `SIM_DIR`, else tmpfs when there is one.
pub fn data_root() -> PathBuf {
    if let Some(d) = std::env::var_os("SIM_DIR") {
        return d.into();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The transport's part of a snapshot transfer: copies the complete snapshot directory
/// `name` from `from_root` into `to_root` (through a `recv-` directory renamed into place;
/// kept as it is when the receiver already has it). False when the sender no longer has
/// it (pruned): the transfer fails.
pub fn copy_snapshot(from_root: &Path, to_root: &Path, name: &str, from: u64) -> bool {
    let src = from_root.join(name);
    let Ok(rd) = std::fs::read_dir(&src) else {
        return false;
    };
    let done = to_root.join(name);
    if done.is_dir() {
        return true;
    }
    let recv = to_root.join(format!("recv-{from}-{}", name.trim_start_matches("snap-")));
    let _ = std::fs::remove_dir_all(&recv);
    std::fs::create_dir_all(&recv).expect("create receive directory");
    for e in rd {
        let e = e.expect("snapshot entry");
        // The stream sends the descriptor's files: the directory's plain files only (what
        // a capture keeps aside in a subdirectory stays with the sender).
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if std::fs::copy(e.path(), recv.join(e.file_name())).is_err() {
            let _ = std::fs::remove_dir_all(&recv);
            return false;
        }
    }
    std::fs::rename(&recv, &done).expect("move received snapshot into place");
    true
}
