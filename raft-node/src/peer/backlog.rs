//! One peer's apply backlog: the committed entries raft-rs handed out that are not applied
//! yet (over the round's apply budget, or parked behind an entry that must wait for another
//! group), kept in bounded memory.
//!
//! At most [`BACKLOG_MAX_BYTES`] / [`BACKLOG_MAX_ENTRIES`] of them are held, a window starting at the next
//! entry to apply (at least that one, however large). Entries handed out beyond the window
//! are not kept: they are committed and persisted, and the log is never compacted above the
//! applied index, so they are read from the log again when the window drains. raft-rs
//! (0.7) hands every committed entry out only once — `RawNode` keeps its own cursor and
//! does not restart it from the applied index — so leaving them in the log is how taking
//! more is stopped; while the window is full raft-rs is also asked for as few as it allows
//! (one entry per Ready), otherwise for at most [`READY_MAX_COMMITTED_BYTES`] per Ready, so no Ready
//! loads a long committed tail at once. Ticks, heartbeats, appends and reads go on as
//! usual: only applying waits.

use std::sync::atomic::Ordering;

use raft::eraftpb::Entry;
use slog::crit;

use super::Peer;
use crate::node::{die, StateMachine};

/// Most bytes of committed entries one peer keeps in memory waiting to apply.
pub const BACKLOG_MAX_BYTES: usize = 8 << 20;
/// Most committed entries one peer keeps in memory waiting to apply.
pub const BACKLOG_MAX_ENTRIES: usize = 1024;
/// Most bytes of committed entries one Ready hands out (raft-rs
/// `max_committed_size_per_ready`; at least one entry).
pub(super) const READY_MAX_COMMITTED_BYTES: u64 = 8 << 20;

/// Bytes an entry is counted for.
fn entry_bytes(e: &Entry) -> usize {
    e.data.len() + e.context.len() + 32
}

impl<S: StateMachine> Peer<S> {
    /// Takes the committed entries raft-rs handed out (in order, each once), keeping in
    /// memory those that extend a window with room.
    pub(super) fn take_committed(&mut self, ents: Vec<Entry>) {
        for e in ents {
            let window_end = self.backlog.back().map_or(self.applied, |b| b.index);
            let contiguous = window_end == self.handed;
            self.handed = e.index;
            if contiguous && (self.backlog.is_empty() || !self.window_full()) {
                self.backlog_bytes += entry_bytes(&e);
                self.backlog.push_back(e);
            }
        }
    }

    /// Committed entries were handed out and are not applied yet.
    pub(super) fn backlog_pending(&self) -> bool {
        self.handed > self.applied
    }

    /// raft-rs holds committed (and persisted) entries it has not handed out yet.
    pub(super) fn raft_holds_committed(&self) -> bool {
        let log = &self.raw.raft.raft_log;
        log.committed.min(log.persisted) > self.handed
    }

    /// The next committed entry to apply (read from the log when the window drained).
    pub(super) fn next_committed(&mut self) -> Option<Entry> {
        if self.backlog.is_empty() && self.backlog_pending() {
            self.refill();
        }
        let e = self.backlog.pop_front()?;
        self.backlog_bytes -= entry_bytes(&e);
        Some(e)
    }

    /// Puts back the entry [`Peer::next_committed`] gave, which must wait.
    pub(super) fn put_back(&mut self, e: Entry) {
        self.backlog_bytes += entry_bytes(&e);
        self.backlog.push_front(e);
    }

    /// A received snapshot covers every committed entry up to `index` (raft-rs restarts
    /// its hand-out after it).
    pub(super) fn backlog_restored(&mut self, index: u64) {
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.handed = index;
        self.backlog_changed();
    }

    /// Publishes the backlog and tells raft-rs how much to hand out in the next Ready.
    pub(super) fn backlog_changed(&mut self) {
        let window_end = self.backlog.back().map_or(self.applied, |b| b.index);
        let room = window_end == self.handed && !self.window_full();
        self.raw.raft.set_max_committed_size_per_ready(if room {
            READY_MAX_COMMITTED_BYTES
        } else {
            0
        });
        let log = &self.raw.raft.raft_log;
        let committed = log.committed.min(log.persisted).max(self.handed);
        let pending = committed.saturating_sub(self.applied);
        self.status.apply_backlog.store(pending, Ordering::Relaxed);
        self.status
            .apply_backlog_bytes
            .store(self.backlog_bytes as u64, Ordering::Relaxed);
    }

    fn window_full(&self) -> bool {
        self.backlog_bytes >= BACKLOG_MAX_BYTES || self.backlog.len() >= BACKLOG_MAX_ENTRIES
    }

    /// Reads the next window of handed-out entries from the log.
    fn refill(&mut self) {
        let lo = self.applied + 1;
        let hi = (self.handed + 1).min(lo + BACKLOG_MAX_ENTRIES as u64);
        let ctx = raft::GetEntriesContext::empty(false);
        match self
            .raw
            .raft
            .raft_log
            .slice(lo, hi, Some(BACKLOG_MAX_BYTES as u64), ctx)
        {
            Ok(es) => {
                self.status.apply_refills.fetch_add(1, Ordering::Relaxed);
                for e in es {
                    self.backlog_bytes += entry_bytes(&e);
                    self.backlog.push_back(e);
                }
            }
            Err(e) => {
                crit!(self.logger, "reading committed entries from the log failed"; "from" => lo, "to" => hi, "err" => %e);
                die();
            }
        }
    }
}
