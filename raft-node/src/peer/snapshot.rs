//! Snapshots of one peer: when to take one (log long enough, a lagging follower, an
//! operator), capturing the state machine at the applied index (an instant) and writing
//! its files off the driver, recording it and compacting the log; restoring a snapshot
//! received from the leader; pruning old snapshot directories.

use std::sync::atomic::Ordering;
use std::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::Snapshot;
use rocksdb::WriteBatch;
use slog::{crit, info, warn};

use super::Peer;
use crate::node::{die, NodeError, StateMachine};
use crate::proto::SnapshotDescriptor;
use crate::snap;

impl<S: StateMachine> Peer<S> {
    /// Starts a snapshot when the log since the last one is long enough, raft needs one
    /// for a follower, or an operator asked; never two at once.
    pub fn maybe_snapshot(&mut self) {
        if self.members_dirty {
            self.publish_members();
        }
        if self.generating.is_some() {
            return;
        }
        if self.raw.store().take_files_wanted() {
            self.make_snapshot_files();
            return;
        }
        let wanted = self.raw.store().take_snapshot_wanted();
        let trunc = self.raw.store().truncated_index();
        let long = (self.cfg.snapshot_entries > 0
            && self.applied >= trunc + self.cfg.snapshot_entries)
            || (self.cfg.snapshot_bytes > 0
                && self.bytes_since_snapshot >= self.cfg.snapshot_bytes);
        if !(wanted || long || !self.snap_waiters.is_empty()) {
            return;
        }
        let index = self.applied;
        let have = self
            .raw
            .store()
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        if index <= have {
            // Nothing new since the last snapshot (which has the current configuration:
            // it was taken at the applied index).
            for w in self.snap_waiters.drain(..) {
                let _ = w.send(Ok(have));
            }
            return;
        }
        if index <= 1 {
            return;
        }
        let term = match self.raw.raft.raft_log.term(index) {
            Ok(t) => t,
            Err(e) => {
                warn!(self.logger, "cannot snapshot: no term for applied index"; "index" => index, "err" => %e);
                return;
            }
        };
        let conf = self.raw.store().conf_state().clone();
        let mut peers: Vec<(u64, String)> = self
            .raw
            .store()
            .peers()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if !self.cfg.addr.is_empty() {
            peers.retain(|(id, _)| *id != self.cfg.id);
            peers.push((self.cfg.id, self.cfg.addr.clone()));
        }
        let ident = self.identity.known().cloned();
        let root = self.cfg.snap_dir.clone();
        let tmp = root.join(snap::tmp_name(term, index));
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            crit!(self.logger, "cannot create snapshot directory, stopping"; "err" => %e);
            die();
        }
        let (job, pending) = match self.sm.snapshot_capture(tmp.clone()) {
            Ok(j) => j,
            Err(e) => {
                crit!(self.logger, "snapshot capture failed, stopping"; "err" => e);
                die();
            }
        };
        info!(self.logger, "snapshot started"; "index" => index, "term" => term);
        self.generating = Some((index, self.now));
        self.status.snapshot_running.store(true, Ordering::Release);
        self.fx.snapshot = Some(Box::new(move || {
            job().and_then(|()| {
                let mut desc =
                    snap::describe(&tmp, index, term, &peers).map_err(|e| e.to_string())?;
                if let Some(ident) = ident {
                    desc.set_identity(ident);
                }
                desc.pending = pending;
                let done = root.join(snap::done_name(term, index));
                let _ = std::fs::remove_dir_all(&done);
                std::fs::rename(&tmp, &done).map_err(|e| e.to_string())?;
                snap::sync_dir(&root).map_err(|e| e.to_string())?;
                let mut s = Snapshot {
                    data: desc.write_to_bytes().map_err(|e| e.to_string())?.into(),
                    ..Default::default()
                };
                let m = s.mut_metadata();
                m.index = index;
                m.term = term;
                m.set_conf_state(conf);
                Ok(s)
            })
        }));
    }

    pub(super) fn on_snapshot_generated(&mut self, r: Result<Snapshot, String>) {
        if std::mem::take(&mut self.making_files) {
            return self.on_snapshot_files(r);
        }
        let started = self.generating.take().map(|(_, t)| t);
        self.status.snapshot_running.store(false, Ordering::Release);
        let s = match r {
            Ok(s) => s,
            Err(e) => {
                // Writing snapshot files failed: a storage error, fail-stop.
                crit!(self.logger, "snapshot generation failed, stopping"; "err" => e);
                die();
            }
        };
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let ms = started.map_or(0, |t| {
            self.now.saturating_duration_since(t).as_millis() as u64
        });
        let current = self.raw.store().local_snapshot_name();
        if index <= self.raw.store().truncated_index() {
            // A received snapshot overtook this one.
            let name = snap::done_name(term, index);
            if current.as_deref() != Some(name.as_str()) {
                let _ = std::fs::remove_dir_all(self.cfg.snap_dir.join(name));
            }
        } else {
            let bytes = SnapshotDescriptor::parse_from_bytes(&s.data)
                .map(|d| snap::total_bytes(&d))
                .unwrap_or(0);
            let prev = current;
            let mut wb = WriteBatch::default();
            if let Err(e) = self.raw.mut_store().stage_local_snapshot(&mut wb, s) {
                crit!(self.logger, "recording snapshot failed, stopping"; "err" => %e);
                die();
            }
            self.write(wb);
            self.bytes_since_snapshot = 0;
            self.prune_snapshots(snap::done_name(term, index), prev);
            self.status.snapshot_index.store(index, Ordering::Release);
            self.status.snapshot_last_ms.store(ms, Ordering::Release);
            self.status.snapshots_taken.fetch_add(1, Ordering::Relaxed);
            info!(self.logger, "snapshot taken, log compacted"; "index" => index, "term" => term, "bytes" => bytes, "ms" => ms);
            self.publish();
        }
        let have = self
            .raw
            .store()
            .local_snapshot()
            .map_or(0, |s| s.get_metadata().index);
        for w in self.snap_waiters.drain(..) {
            let _ = w.send(Ok(have));
        }
    }

    /// Replaces log and store with a snapshot received from the leader (its files were
    /// fetched and verified by the transport). Durable before it returns.
    pub(super) fn restore_snapshot(&mut self, s: &Snapshot) {
        let (index, term) = (s.get_metadata().index, s.get_metadata().term);
        let name = snap::done_name(term, index);
        let dir = self.cfg.snap_dir.join(&name);
        let desc = match SnapshotDescriptor::parse_from_bytes(&s.data) {
            Ok(d) if dir.is_dir() => d,
            Ok(_) => {
                crit!(self.logger, "snapshot files missing, stopping"; "dir" => %dir.display());
                die();
            }
            Err(e) => {
                crit!(self.logger, "undecodable snapshot descriptor, stopping"; "err" => %e);
                die();
            }
        };
        if let Err(e) = snap::verify(&dir, &desc) {
            // Nothing is recorded yet: after a restart the node is where it was before the
            // snapshot, and the leader sends it again (the bad file is gone).
            crit!(self.logger, "received snapshot fails its checks right before restore, stopping"; "dir" => %dir.display(), "err" => %e);
            let _ = std::fs::remove_dir_all(&dir);
            die();
        }
        info!(self.logger, "restoring snapshot"; "index" => index, "term" => term, "bytes" => snap::total_bytes(&desc));
        let started = Instant::now();
        let prev = self.raw.store().local_snapshot_name();
        let mut wb = WriteBatch::default();
        if let Err(e) = self
            .raw
            .mut_store()
            .stage_received_snapshot(&mut wb, s.clone(), &name)
        {
            crit!(self.logger, "staging snapshot failed, stopping"; "err" => %e);
            die();
        }
        for p in &desc.peers {
            // Addresses this node already knows (its command line) stay as they are.
            if p.id != 0 && !p.addr.is_empty() && !self.raw.store().peers().contains_key(&p.id) {
                self.raw.mut_store().stage_peer(&mut wb, p.id, &p.addr);
                if p.id != self.cfg.id {
                    self.fx.peers.push((p.id, Some(p.addr.clone())));
                }
            }
        }
        self.write(wb);
        self.sync_wal();
        if let Err(e) = self.sm.snapshot_restore(&dir) {
            crit!(self.logger, "restoring snapshot into the store failed, stopping"; "err" => e);
            die();
        }
        let mut wb = WriteBatch::default();
        self.raw.mut_store().stage_restored(&mut wb);
        if desc.has_identity() {
            self.merge_identity(&mut wb, desc.get_identity().clone());
        }
        self.write(wb);
        self.applied = index;
        // Committed entries not applied yet are covered by the snapshot.
        self.backlog_restored(index);
        self.clock.observe(self.sm.last_time_ms());
        self.bytes_since_snapshot = 0;
        // A proposal at or below the snapshot's index may or may not have been committed:
        // the snapshot does not say, so its proposer must not retry it as if it had been
        // dropped (a retried INCR would apply twice). Proposals above it stay pending:
        // applying the leader's entry at their index settles them (same term: ours).
        let above = self.pending.split_off(&(index + 1));
        for (_, p) in std::mem::replace(&mut self.pending, above) {
            for (_, w) in p.waiters {
                let _ = w.send(Err(NodeError::Unknown(
                    "the node caught up by snapshot before learning whether the write committed"
                        .into(),
                )));
            }
        }
        if let Some((_, _, w)) = self.pending_conf.take() {
            let _ = w.send(Err(NodeError::Refused(
                "the membership change was overtaken by a snapshot; check RAFT.NODES and retry"
                    .into(),
            )));
        }
        self.prune_snapshots(name, prev);
        snap::remove_old_receives(&self.cfg.snap_dir, index);
        self.status.snapshot_index.store(index, Ordering::Release);
        self.status
            .snapshots_restored
            .fetch_add(1, Ordering::Relaxed);
        self.members_dirty = true;
        info!(self.logger, "snapshot restored"; "index" => index, "ms" => started.elapsed().as_millis() as u64);
    }

    /// Removes snapshot directories no longer needed: all but the newest and the one before
    /// it (a transfer of that may be under way), and those being generated or waiting to be
    /// installed. The newest is made durable first (files, directory, parent); if that fails nothing
    /// is pruned.
    fn prune_snapshots(&self, newest: String, previous: Option<String>) {
        let mut keep = vec![newest.clone()];
        keep.extend(previous);
        let trunc = self.raw.store().truncated_index();
        if let Err(e) = snap::prune(&self.cfg.snap_dir, &newest, &keep, trunc, true) {
            warn!(self.logger, "not pruning old snapshots: the newest is not durable"; "snapshot" => &newest, "err" => %e);
        }
    }
}
