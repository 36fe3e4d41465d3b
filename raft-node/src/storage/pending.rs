//! Local snapshots whose files are still to be made (captured by checkpoint, see
//! `StateMachine::snapshot_capture`): raft cannot send one until the Ready loop has made
//! its files and recorded the full descriptor in its place.

use protobuf::Message as _;
use raft::eraftpb::Snapshot;
use rocksdb::WriteBatch;

use super::{meta_key, storage_err, RocksStorage, TAG_SNAP};
use crate::proto::SnapshotDescriptor;

/// True when `s`'s files are not made yet (its descriptor says so).
pub fn is_pending(s: &Snapshot) -> bool {
    SnapshotDescriptor::parse_from_bytes(&s.data).is_ok_and(|d| d.pending)
}

impl RocksStorage {
    /// True (once) when raft asked for the latest local snapshot while it was pending.
    pub fn take_files_wanted(&self) -> bool {
        self.want_files.replace(false)
    }

    /// Replaces the record of the latest local snapshot by `snap`, the same snapshot with
    /// its files made. False (nothing staged) when the latest local snapshot is another
    /// one by now.
    pub fn stage_snapshot_files(
        &mut self,
        wb: &mut WriteBatch,
        snap: Snapshot,
    ) -> Result<bool, raft::Error> {
        let same = self.snap.as_ref().is_some_and(|cur| {
            cur.get_metadata().index == snap.get_metadata().index
                && cur.get_metadata().term == snap.get_metadata().term
        });
        if !same {
            return Ok(false);
        }
        let cf = self.cf()?;
        wb.put_cf(
            cf,
            meta_key(TAG_SNAP, self.group),
            snap.write_to_bytes().map_err(storage_err)?,
        );
        self.snap = Some(snap);
        Ok(true)
    }
}
