//! Linearizable reads of one peer: reads queued in one round share ONE ReadIndex request;
//! each is released once the state machine has applied the read index.

use std::sync::atomic::Ordering;

use super::{Peer, ReadBatch};
use crate::node::StateMachine;

impl<S: StateMachine> Peer<S> {
    /// A ReadIndex context never used before by any node: `[node id][peer nonce][batch
    /// id][attempt]`. raft-rs keys pending reads by context alone and, on a quorum of
    /// heartbeat acks for one context, releases every read queued before it; so a context
    /// that is reused (a retry, or another node's counter of the same value) could be
    /// released by a stale ack from before a partition, and serve a stale read.
    pub(super) fn read_ctx(&mut self, batch: u64) -> Vec<u8> {
        self.read_attempt += 1;
        let mut ctx = Vec::with_capacity(32);
        ctx.extend_from_slice(&self.cfg.id.to_be_bytes());
        ctx.extend_from_slice(&self.read_nonce.to_be_bytes());
        ctx.extend_from_slice(&batch.to_be_bytes());
        ctx.extend_from_slice(&self.read_attempt.to_be_bytes());
        ctx
    }

    /// The batch a ReadIndex context of this peer names.
    pub(super) fn read_batch_of(&self, ctx: &[u8]) -> Option<u64> {
        if ctx.len() != 32
            || ctx[..8] != self.cfg.id.to_be_bytes()
            || ctx[8..16] != self.read_nonce.to_be_bytes()
        {
            return None;
        }
        Some(u64::from_be_bytes(ctx[16..24].try_into().ok()?))
    }

    pub(super) fn flush_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        let waiters = std::mem::take(&mut self.reads);
        self.status
            .reads
            .fetch_add(waiters.len() as u64, Ordering::Relaxed);
        self.read_batches.insert(
            id,
            ReadBatch {
                waiters,
                issued: self.now,
                index: None,
            },
        );
        let ctx = self.read_ctx(id);
        self.raw.read_index(ctx);
    }

    /// Re-issues reads that got no read index (raft-rs drops them while there is no leader
    /// or the leader has not yet committed in its term) and forgets abandoned ones.
    pub(super) fn retry_reads(&mut self) {
        let retry_after = self.cfg.tick * self.cfg.heartbeat_tick as u32 * 2;
        let now = self.now;
        let mut again = Vec::new();
        self.read_batches.retain(|id, b| {
            b.waiters.retain(|w| !w.is_closed());
            if b.waiters.is_empty() {
                return false;
            }
            if b.index.is_none() && now.saturating_duration_since(b.issued) >= retry_after {
                b.issued = now;
                again.push(*id);
            }
            true
        });
        for id in again {
            let ctx = self.read_ctx(id);
            self.raw.read_index(ctx);
        }
    }

    /// Records the read indexes raft-rs handed out.
    pub(super) fn take_read_states(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            let Some(id) = self.read_batch_of(&rs.request_ctx) else {
                continue;
            };
            if let Some(b) = self.read_batches.get_mut(&id) {
                // Any attempt's index will do: each was taken after the batch's reads
                // arrived. Keep the first.
                b.index.get_or_insert(rs.index);
            }
        }
    }

    pub(super) fn resolve_reads(&mut self) {
        let applied = self.applied;
        self.read_batches.retain(|_, b| match b.index {
            Some(i) if i <= applied => {
                for w in b.waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
                false
            }
            _ => true,
        });
    }
}
