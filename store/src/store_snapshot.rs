//! The store's snapshot entry points: export, capture by checkpoint, restore (the files'
//! format and the work are in `snapshot` and `snapshot_checkpoint`).

use crate::{scope, snapshot, snapshot_checkpoint, types, Store};

impl Store {
    /// Starts exporting the group as it is now into `dir`: its slot ranges and its own
    /// `meta` and expiry-index records (see [`snapshot::export`]).
    pub fn export_snapshot(&self, dir: std::path::PathBuf) -> Result<snapshot::Export, String> {
        snapshot::export(self.db.clone(), dir, self.group)
    }

    /// True when a snapshot of the group is better captured by checkpoint
    /// ([`Store::capture_snapshot`]) than written at once: the database's data is larger
    /// than `min_bytes` (see [`snapshot_checkpoint::data_bytes`]).
    pub fn snapshot_by_checkpoint(&self, min_bytes: u64) -> bool {
        snapshot_checkpoint::data_bytes(&self.db) >= min_bytes
    }

    /// Captures the group as it is now by checkpoint into `dir` (see
    /// [`snapshot_checkpoint::capture`]); its SST files are made later by
    /// [`snapshot_checkpoint::materialize`].
    pub fn capture_snapshot(&self, dir: &std::path::Path) -> Result<(), String> {
        snapshot_checkpoint::capture(&self.db, dir, self.group)
    }

    /// Replaces the group's state with a snapshot's files (its slot ranges and its own
    /// `meta` and expiry-index records; other groups' records stay) and reloads the applied
    /// index, counters and slot set from it.
    /// Exclusive with readers (the restore gate): a read sees the whole state before the
    /// restore or the whole state after it, never a half-ingested one.
    pub fn restore_snapshot(&mut self, dir: &std::path::Path) -> Result<(), String> {
        let shared = self.shared.clone();
        let _exclusive = shared.restore.write().unwrap_or_else(|p| p.into_inner());
        let (_, incoming) = snapshot::read_manifest(dir)?;
        let saved = self.save_claimed(&incoming).map_err(|e| e.to_string())?;
        let old_fence = self.before_restore().map_err(|e| e.to_string())?;
        snapshot::restore(&self.db, dir, self.group)?;
        let before = std::mem::replace(
            &mut self.slots,
            scope::load_slots(&self.db, self.group)
                .map_err(|e| e.to_string())?
                .ok_or("the snapshot holds no slot set of the group")?,
        );
        self.fence = scope::load_fence(&self.db, self.group).map_err(|e| e.to_string())?;
        self.sealed = scope::load_sealed(&self.db, self.group).map_err(|e| e.to_string())?;
        self.incoming = scope::load_incoming(&self.db, self.group).map_err(|e| e.to_string())?;
        self.note_copying();
        let kept = self.put_back(saved).map_err(|e| e.to_string())?;
        self.claim_restored(&before, &kept, old_fence)
            .map_err(|e| e.to_string())?;
        self.slots_changed = true;
        let (applied, last_time, keys, expires) =
            Self::load_meta(&self.db, self.group).map_err(|e| e.to_string())?;
        self.applied = applied;
        self.last_time = last_time;
        self.keys = keys;
        self.expires = expires;
        self.reload_node_addrs();
        self.reload_versions()?;
        self.versions = types::Versions::load(&self.db, self.group).map_err(|e| e.to_string())?;
        self.reload_libraries();
        self.batch_written();
        self.notify_restored();
        Ok(())
    }
}
