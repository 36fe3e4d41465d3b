//! Inbound connections still in their handshake. Strangers can open TCP connections to the
//! peer port and never finish the handshake; if those counted toward the cap of inbound
//! connections, a few hundred half-open sockets would lock every member out for as long as
//! the attacker keeps them open. So only authenticated connections take an inbound permit,
//! and connections in their handshake have slots of their own: at most
//! [`MAX_HANDSHAKES`], and a new one evicts the oldest. A real peer finishes its handshake
//! in one round trip, so a flood would have to outpace that to keep it out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Most connections in their handshake at once.
pub const MAX_HANDSHAKES: usize = 32;

/// The open handshakes, oldest first.
#[derive(Default)]
pub(super) struct Handshakes {
    next: u64,
    open: VecDeque<(u64, Arc<Notify>)>,
}

/// One connection's handshake slot; dropping it frees the slot.
pub(super) struct Slot {
    handshakes: Arc<Mutex<Handshakes>>,
    id: u64,
    /// Notified when a newer connection took this slot.
    pub evicted: Arc<Notify>,
}

/// Takes a slot for a new connection; returns it and whether an older one was evicted.
pub(super) fn begin(handshakes: &Arc<Mutex<Handshakes>>) -> (Slot, bool) {
    let mut hs = handshakes.lock().unwrap_or_else(|p| p.into_inner());
    let mut evicted = false;
    while hs.open.len() >= MAX_HANDSHAKES {
        if let Some((_, n)) = hs.open.pop_front() {
            // Stored as a permit if the task is not waiting yet.
            n.notify_one();
            evicted = true;
        }
    }
    let id = hs.next;
    hs.next += 1;
    let n = Arc::new(Notify::new());
    hs.open.push_back((id, n.clone()));
    let slot = Slot {
        handshakes: handshakes.clone(),
        id,
        evicted: n,
    };
    (slot, evicted)
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut hs = self.handshakes.lock().unwrap_or_else(|p| p.into_inner());
        hs.open.retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_handshake_is_evicted_when_slots_run_out() {
        let hs = Arc::new(Mutex::new(Handshakes::default()));
        let (first, evicted) = begin(&hs);
        assert!(!evicted);
        let mut rest: Vec<Slot> = (1..MAX_HANDSHAKES).map(|_| begin(&hs).0).collect();
        let (_newest, evicted) = begin(&hs);
        assert!(evicted);
        // The first one's task learns it lost its slot, even if it was not waiting yet.
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted.notified())
            .await
            .expect("oldest evicted");
        drop(first);
        rest.truncate(0);
        assert_eq!(hs.lock().unwrap().open.len(), 1, "dropped slots are freed");
    }
}
