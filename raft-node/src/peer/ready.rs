//! One peer's part of a driver round, in raft-rs's required order:
//! [`Peer::collect_ready`] stages the Ready into the round's ONE `WriteBatch` (applies of
//! committed entries, applied index, hard state, new entries) and queues the messages that
//! may go out at once; after the driver wrote the batch, [`Peer::finish_ready`] answers the
//! proposers and hands the Ready's durability to the driver (whose ONE WAL fsync per round
//! covers every group; the messages that needed it go out after it), or, when nothing
//! needs an fsync, advances at once and stages the light Ready's applies into the round's
//! second batch, finished by [`Peer::finish_light`].

use std::sync::atomic::Ordering;

use raft::{Ready, StateRole};
use rocksdb::WriteBatch;
use slog::{crit, info};

use super::{Deliveries, Peer, PersistJob};
use crate::node::{die, StateMachine};
use crate::status::{ROLE_CANDIDATE, ROLE_FOLLOWER, ROLE_LEADER, ROLE_PRECANDIDATE};

/// A Ready staged into the round's batch, waiting for the batch to be written.
pub struct InFlight<O> {
    /// `None`: the round only applied backlog (raft-rs had no Ready).
    rd: Option<Ready>,
    out: Deliveries<O>,
    /// A snapshot was restored: everything is made durable now, synchronously.
    sync_now: bool,
}

/// Replies of a light Ready's applies, staged into the round's second batch.
pub struct LightApplied<O>(Deliveries<O>);

impl<S: StateMachine> Peer<S> {
    /// True when raft-rs has a Ready for this peer, or committed entries wait in the
    /// apply backlog.
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready() || self.has_backlog()
    }

    /// Stages this peer's Ready into `wb` (or, without one, applies from the backlog);
    /// `None` when there is nothing to do. A Ready with a snapshot first writes `wb` (what
    /// earlier peers of the round staged) and leaves it empty.
    pub fn collect_ready(&mut self, wb: &mut WriteBatch) -> Option<InFlight<S::Output>> {
        if !self.raw.has_ready() {
            let mut out = Vec::new();
            if !self.apply_entries(wb, Vec::new(), &mut out) {
                return None;
            }
            self.sm.stage_applied(wb, self.applied);
            return Some(InFlight {
                rd: None,
                out,
                sync_now: false,
            });
        }
        self.status.readies.fetch_add(1, Ordering::Relaxed);
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let role = match ss.raft_state {
                StateRole::Leader => ROLE_LEADER,
                StateRole::Candidate => ROLE_CANDIDATE,
                StateRole::PreCandidate => ROLE_PRECANDIDATE,
                StateRole::Follower => ROLE_FOLLOWER,
            };
            self.status.role.store(role, Ordering::Release);
            self.status.leader.store(ss.leader_id, Ordering::Release);
            info!(self.logger, "role changed"; "role" => self.status.role_name(), "leader" => ss.leader_id, "term" => self.raw.raft.term);
            if role == ROLE_LEADER {
                self.on_leadership();
            }
        }
        if !rd.messages().is_empty() {
            self.fx.send.extend(rd.take_messages());
        }
        // A snapshot is handled synchronously and made durable with everything written
        // before it (one WAL sync), so this Ready is then finished synchronously too.
        let sync_now = !rd.snapshot().is_empty();
        if sync_now {
            // What earlier peers staged into the round's batch goes first (without sync:
            // the restore's WAL sync covers it): written after the restore, a lagging
            // source group's applies would land on top of the records it just ingested
            // for the slots' new owner. Later peers stage into the emptied batch.
            self.write(std::mem::take(wb));
            let s = rd.snapshot().clone();
            self.restore_snapshot(&s);
        }
        let states = rd.take_read_states();
        self.take_read_states(states);
        // The applies of committed entries (already durable: raft-rs hands out only
        // persisted ones), the applied index, the hard state and the new entries.
        let mut out = Vec::new();
        let committed = rd.take_committed_entries();
        if self.apply_entries(wb, committed, &mut out) {
            self.sm.stage_applied(wb, self.applied);
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().stage_hard_state(wb, hs.clone());
        }
        if let Err(e) = self.raw.mut_store().stage_append(wb, rd.entries()) {
            crit!(self.logger, "staging raft log failed"; "err" => %e);
            die();
        }
        Some(InFlight {
            rd: Some(rd),
            out,
            sync_now,
        })
    }

    /// After the round's batch (holding `f`) was written: answers the proposers of its
    /// applied entries, then either hands the Ready's durability to the driver
    /// ([`super::Effects::persist`]) or advances at once, staging the light Ready's
    /// applies into `wb2` (then [`Peer::finish_light`] after `wb2` is written).
    pub fn finish_ready(
        &mut self,
        f: InFlight<S::Output>,
        wb2: &mut WriteBatch,
    ) -> Option<LightApplied<S::Output>> {
        let InFlight { rd, out, sync_now } = f;
        self.raw.mut_store().commit_staged();
        let cached = self.raw.store().cache().bytes() as u64;
        self.status.log_cache_bytes.store(cached, Ordering::Relaxed);
        self.sm.batch_written();
        self.after_apply(out);
        let Some(mut rd) = rd else {
            self.advance_applied();
            return None;
        };
        if !sync_now && (rd.must_sync() || self.unpersisted > 0) {
            self.fx.persist.push(PersistJob {
                number: rd.number(),
                sync: rd.must_sync(),
                msgs: rd.take_persisted_messages(),
            });
            self.raw.advance_append_async(rd);
            self.unpersisted += 1;
            self.advance_applied();
            return None;
        }
        // Nothing to make durable and nothing outstanding (or a snapshot: make all of it
        // durable now): finish synchronously.
        if sync_now {
            self.sync_wal();
        }
        if !rd.persisted_messages().is_empty() {
            self.fx.send.extend(rd.take_persisted_messages());
        }
        let mut light = self.raw.advance_append(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().stage_commit(wb2, commit);
        }
        if !light.messages().is_empty() {
            self.fx.send.extend(light.take_messages());
        }
        let committed = light.take_committed_entries();
        let mut out = Vec::new();
        if self.apply_entries(wb2, committed, &mut out) {
            self.sm.stage_applied(wb2, self.applied);
        }
        Some(LightApplied(out))
    }

    /// After the round's second batch (holding `l`) was written.
    pub fn finish_light(&mut self, l: LightApplied<S::Output>) {
        self.sm.batch_written();
        self.after_apply(l.0);
        self.advance_applied();
    }

    fn advance_applied(&mut self) {
        self.raw.advance_apply_to(self.applied);
        self.publish();
    }

    fn after_apply(&mut self, out: Deliveries<S::Output>) {
        self.status.applied.store(self.applied, Ordering::Release);
        self.clock.publish(&self.status);
        self.deliver(out);
        self.resolve_reads();
        self.check_guard();
    }
}
