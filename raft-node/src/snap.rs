//! Snapshot files on disk: where a node keeps the snapshots it generated or received, and
//! the descriptor (file names, sizes, CRC-32s, address book) that travels in a raft
//! `MsgSnapshot` in place of the data itself; the data is streamed separately by the
//! transport in chunks.
//!
//! Layout under the node's snapshot directory:
//! - `snap-<term>-<index>/`: a complete snapshot (generated here, or received and verified);
//! - `tmp-<term>-<index>/`: a snapshot being generated;
//! - `recv-<from>-<term>-<index>/`: a snapshot being received (kept across broken
//!   connections and restarts so the transfer resumes where it stopped).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::proto::{PeerAddr, SnapshotDescriptor, SnapshotFile};

/// Name of a complete snapshot's directory.
pub fn done_name(term: u64, index: u64) -> String {
    format!("snap-{term}-{index}")
}

/// Name of a snapshot's directory while it is generated.
pub fn tmp_name(term: u64, index: u64) -> String {
    format!("tmp-{term}-{index}")
}

/// Name of a snapshot's directory while it is received from `from`.
pub fn recv_name(from: u64, term: u64, index: u64) -> String {
    format!("recv-{from}-{term}-{index}")
}

/// CRC-32 of a whole file.
pub fn file_crc(path: &Path) -> std::io::Result<u32> {
    let mut f = std::fs::File::open(path)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Describes the files of the snapshot in `dir` (fsyncing them and the directory).
pub fn describe(
    dir: &Path,
    index: u64,
    term: u64,
    peers: &[(u64, String)],
) -> std::io::Result<SnapshotDescriptor> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut desc = SnapshotDescriptor {
        index,
        term,
        ..Default::default()
    };
    for name in names {
        let path = dir.join(&name);
        std::fs::File::open(&path)?.sync_all()?;
        desc.files.push(SnapshotFile {
            size: std::fs::metadata(&path)?.len(),
            crc32: file_crc(&path)?,
            name,
            ..Default::default()
        });
    }
    sync_dir(dir)?;
    for (id, addr) in peers {
        desc.peers.push(PeerAddr {
            id: *id,
            addr: addr.clone(),
            ..Default::default()
        });
    }
    Ok(desc)
}

/// Total bytes of a snapshot's files.
pub fn total_bytes(desc: &SnapshotDescriptor) -> u64 {
    desc.files.iter().map(|f| f.size).sum()
}

/// fsyncs a directory (so renames and new files in it are durable).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A file name from a peer is used only if it is a plain name (no path separators).
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// Index of a snapshot directory from its name (`snap-<term>-<index>` and the like).
fn name_index(name: &str) -> Option<u64> {
    name.rsplit('-').next()?.parse().ok()
}

/// Checks every file of a snapshot in `dir` against its descriptor (size and whole-file
/// CRC-32): run when a transfer ends and again right before a restore.
pub fn verify(dir: &Path, desc: &SnapshotDescriptor) -> std::io::Result<()> {
    for f in &desc.files {
        let path = dir.join(&f.name);
        let bad = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("snapshot file {} {what}", f.name),
            )
        };
        if std::fs::metadata(&path)?.len() != f.size {
            return Err(bad("has the wrong size"));
        }
        if file_crc(&path)? != f.crc32 {
            let _ = std::fs::remove_file(&path);
            return Err(bad("fails its checksum"));
        }
    }
    Ok(())
}

/// fsyncs every file of a snapshot directory, the directory and its parent.
pub fn sync_snapshot(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::File::open(e.path())?.sync_all()?;
        }
    }
    sync_dir(dir)?;
    match dir.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Prunes `root` (see [`remove_stale`]) only once the snapshot that supersedes the pruned
/// ones, `root/newest`, is durable (files, directory and `root` fsynced): a crash right
/// after pruning must never leave a node without any complete snapshot. Then fsyncs
/// `root` so the removals are durable too.
pub fn prune(
    root: &Path,
    newest: &str,
    keep: &[String],
    newer_than: u64,
    keep_tmp: bool,
) -> std::io::Result<()> {
    sync_snapshot(&root.join(newest))?;
    remove_stale(root, keep, newer_than, keep_tmp);
    sync_dir(root)
}

/// Removes every snapshot directory under `root` except those named in `keep`, complete
/// ones newer than `newer_than` (received, waiting for the Raft loop to install them),
/// those being received (a transfer may resume) and, with `keep_tmp`, those being
/// generated.
pub fn remove_stale(root: &Path, keep: &[String], newer_than: u64, keep_tmp: bool) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pending =
            name.starts_with("snap-") && name_index(&name).is_some_and(|i| i > newer_than);
        if keep.contains(&name)
            || pending
            || name.starts_with("recv-")
            || (keep_tmp && name.starts_with("tmp-"))
        {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// Removes partial receives of snapshots at or below `index`: they can no longer be used.
pub fn remove_old_receives(root: &Path, index: u64) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("recv-") else {
            continue;
        };
        let old = name_index(rest).is_none_or(|i| i <= index);
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The directory of a snapshot under `root`.
pub fn path(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(root: &Path, name: &str, data: &[u8]) -> SnapshotDescriptor {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data.sst"), data).unwrap();
        describe(&dir, 5, 1, &[]).unwrap()
    }

    #[test]
    fn verify_catches_a_file_changed_after_the_transfer() {
        let root = tempfile::tempdir().unwrap();
        let desc = snapshot(root.path(), "snap-1-5", b"0123456789");
        let dir = root.path().join("snap-1-5");
        verify(&dir, &desc).unwrap();
        std::fs::write(dir.join("data.sst"), b"0123456780").unwrap();
        let e = verify(&dir, &desc).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        std::fs::write(dir.join("data.sst"), b"012").unwrap();
        assert!(verify(&dir, &desc).is_err(), "short file accepted");
    }

    #[test]
    fn prune_keeps_everything_when_the_newest_snapshot_is_not_there() {
        let root = tempfile::tempdir().unwrap();
        snapshot(root.path(), "snap-1-5", b"old");
        let keep = vec!["snap-1-9".to_string()];
        assert!(prune(root.path(), "snap-1-9", &keep, 9, false).is_err());
        assert!(root.path().join("snap-1-5").is_dir(), "old snapshot pruned");
        snapshot(root.path(), "snap-1-9", b"new");
        prune(root.path(), "snap-1-9", &keep, 9, false).unwrap();
        assert!(!root.path().join("snap-1-5").exists());
        assert!(root.path().join("snap-1-9").is_dir());
    }
}
