//! What a run reports: its counters ([`Stats`], summed over a batch of seeds) and, when an
//! invariant breaks or the code under test panics, a [`Failure`] with the seed, the step,
//! the virtual time, the seed's parameters, the last events and the command that replays
//! it.

use std::fmt;

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub steps: u64,
    pub rounds: u64,
    pub virtual_ms: u64,
    pub messages: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub proposals: u64,
    pub acked: u64,
    pub refused: u64,
    pub unknown: u64,
    pub reads: u64,
    pub reads_ok: u64,
    pub committed: u64,
    pub leader_terms: u64,
    pub compactions: u64,
    pub snapshots_sent: u64,
    pub snapshots_restored: u64,
    pub restore_crashes: u64,
    pub power_losses: u64,
    pub added: u64,
    pub removed: u64,
    pub transfers: u64,
    /// Slot migrations completed, writes refused for their slot, reads refused for their
    /// slot, serves checked by the slot invariant.
    pub migrations: u64,
    pub slot_refused: u64,
    pub reads_refused: u64,
    pub serves: u64,
    /// Entries stamped earlier than the entry before them, and the most they went back
    /// (ms). Not replayed exactly: the peers' stamping clock reads the real monotonic
    /// clock (`raft_node::clock`), not the simulation's.
    pub stamp_regressions: u64,
    pub max_stamp_back_ms: i64,
    /// Digest of the run's whole event trace (same seed, same digest).
    pub trace_digest: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        let pairs = [
            (&mut self.steps, o.steps),
            (&mut self.rounds, o.rounds),
            (&mut self.virtual_ms, o.virtual_ms),
            (&mut self.messages, o.messages),
            (&mut self.dropped, o.dropped),
            (&mut self.duplicated, o.duplicated),
            (&mut self.crashes, o.crashes),
            (&mut self.partitions, o.partitions),
            (&mut self.proposals, o.proposals),
            (&mut self.acked, o.acked),
            (&mut self.refused, o.refused),
            (&mut self.unknown, o.unknown),
            (&mut self.reads, o.reads),
            (&mut self.reads_ok, o.reads_ok),
            (&mut self.committed, o.committed),
            (&mut self.leader_terms, o.leader_terms),
            (&mut self.compactions, o.compactions),
            (&mut self.snapshots_sent, o.snapshots_sent),
            (&mut self.snapshots_restored, o.snapshots_restored),
            (&mut self.restore_crashes, o.restore_crashes),
            (&mut self.power_losses, o.power_losses),
            (&mut self.added, o.added),
            (&mut self.removed, o.removed),
            (&mut self.transfers, o.transfers),
            (&mut self.migrations, o.migrations),
            (&mut self.slot_refused, o.slot_refused),
            (&mut self.reads_refused, o.reads_refused),
            (&mut self.serves, o.serves),
        ];
        for (a, b) in pairs {
            *a += b;
        }
        self.stamp_regressions += o.stamp_regressions;
        self.max_stamp_back_ms = self.max_stamp_back_ms.max(o.max_stamp_back_ms);
        // Of a batch: an order-independent fingerprint of all its runs.
        self.trace_digest ^= o.trace_digest;
    }
}

/// A violated invariant (or a panic) with what led to it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub now: u64,
    pub what: String,
    pub params: String,
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "SIMULATION FAILURE seed {} at step {} (t={} ms): {}",
            self.seed, self.step, self.now, self.what
        )?;
        writeln!(f, "  params: {}", self.params)?;
        writeln!(f, "  last events:")?;
        for l in &self.trace {
            writeln!(f, "    {l}")?;
        }
        write!(
            f,
            "  reproduce: SIM_SEED={} SIM_TRACE=1 cargo test -p raft-node --test sim -- --nocapture",
            self.seed
        )
    }
}
