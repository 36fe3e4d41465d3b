//! Making the files of a pending local snapshot (captured only, e.g. by checkpoint: see
//! `StateMachine::snapshot_capture`) when raft first needs to send it to a follower, off
//! the driver, and recording its full descriptor in place of the pending one.

use std::sync::atomic::Ordering;

use protobuf::Message as _;
use raft::eraftpb::Snapshot;
use rocksdb::WriteBatch;
use slog::{crit, info, warn};

use super::Peer;
use crate::node::{die, StateMachine};
use crate::proto::SnapshotDescriptor;
use crate::snap;
use crate::storage::pending::is_pending;

impl<S: StateMachine> Peer<S> {
    /// Starts making the files of the latest local snapshot, if it is pending.
    pub(super) fn make_snapshot_files(&mut self) {
        let Some(s) = self.raw.store().local_snapshot().cloned() else {
            return;
        };
        if !is_pending(&s) {
            return;
        }
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let dir = self.cfg.snap_dir.join(snap::done_name(term, index));
        let job = match self.sm.snapshot_materialize(dir.clone()) {
            Ok(j) => j,
            Err(e) => {
                crit!(self.logger, "cannot make the snapshot's files, stopping"; "index" => index, "err" => e);
                die();
            }
        };
        info!(self.logger, "making the snapshot's files"; "index" => index, "term" => term);
        self.generating = Some((index, self.now));
        self.making_files = true;
        self.status.snapshot_running.store(true, Ordering::Release);
        self.fx.snapshot = Some(Box::new(move || {
            job().and_then(|()| {
                let old =
                    SnapshotDescriptor::parse_from_bytes(&s.data).map_err(|e| e.to_string())?;
                let mut desc = snap::describe(&dir, index, term, &[]).map_err(|e| e.to_string())?;
                desc.peers = old.peers.clone();
                if old.has_identity() {
                    desc.set_identity(old.get_identity().clone());
                }
                let mut s = s;
                s.data = desc.write_to_bytes().map_err(|e| e.to_string())?.into();
                Ok(s)
            })
        }));
    }

    /// The files of the pending snapshot are made (or failed): records its full
    /// descriptor, so raft can send it from now on.
    pub(super) fn on_snapshot_files(&mut self, r: Result<Snapshot, String>) {
        let started = self.generating.take();
        self.status.snapshot_running.store(false, Ordering::Release);
        let index = started.map_or(0, |(i, _)| i);
        let ms = started.map_or(0, |(_, t)| {
            self.now.saturating_duration_since(t).as_millis() as u64
        });
        let current = self
            .raw
            .store()
            .local_snapshot()
            .map(|s| s.get_metadata().index);
        let s = match r {
            Ok(s) => s,
            Err(e) if current == Some(index) => {
                crit!(self.logger, "making the snapshot's files failed, stopping"; "index" => index, "err" => e);
                die();
            }
            Err(e) => {
                // Another snapshot replaced it meanwhile (its directory may be gone).
                warn!(self.logger, "making the files of a replaced snapshot failed"; "index" => index, "err" => e);
                return;
            }
        };
        let bytes = SnapshotDescriptor::parse_from_bytes(&s.data)
            .map(|d| snap::total_bytes(&d))
            .unwrap_or(0);
        let mut wb = WriteBatch::default();
        match self.raw.mut_store().stage_snapshot_files(&mut wb, s) {
            Ok(true) => {
                self.write(wb);
                info!(self.logger, "snapshot files made"; "index" => index, "bytes" => bytes, "ms" => ms);
            }
            Ok(false) => {
                info!(self.logger, "snapshot files made for a replaced snapshot"; "index" => index)
            }
            Err(e) => {
                crit!(self.logger, "recording the snapshot's files failed, stopping"; "err" => %e);
                die();
            }
        }
    }
}
