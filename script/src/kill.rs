//! SCRIPT KILL and FUNCTION KILL: read-only runs on this node register a kill flag while
//! they run; a kill request sets the flags of the runs of its kind, and each run's
//! instruction hook stops it at its next check. Only read-only runs are killable: a write
//! script runs inside one Raft entry at apply time on every replica, where a node-local
//! kill would make replicas differ (the deterministic instruction budget bounds those).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Which kill command reaches a run: SCRIPT KILL stops EVAL_RO / EVALSHA_RO runs,
/// FUNCTION KILL stops FCALL_RO runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Script,
    Function,
}

/// What a kill request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    /// At least one run of the kind was told to stop.
    Some,
    /// No killable run of that kind is in progress.
    None,
}

struct Entry {
    id: u64,
    kind: RunKind,
    flag: Arc<AtomicBool>,
}

static RUNNING: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered run: its kill flag, unregistered when dropped.
pub(crate) struct Registration {
    id: u64,
    pub(crate) flag: Arc<AtomicBool>,
}

/// Registers a killable run of `kind`.
pub(crate) fn register(kind: RunKind) -> Registration {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let flag = Arc::new(AtomicBool::new(false));
    let entry = Entry {
        id,
        kind,
        flag: flag.clone(),
    };
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(entry);
    Registration { id, flag }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|e| e.id != self.id);
    }
}

/// Tells every read-only run of `kind` in progress to stop.
pub fn kill(kind: RunKind) -> Killed {
    let running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let mut found = Killed::None;
    for e in running.iter().filter(|e| e.kind == kind) {
        e.flag.store(true, Ordering::Relaxed);
        found = Killed::Some;
    }
    found
}
