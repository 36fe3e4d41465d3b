//! The simulation's replicated state machine, a real `raft_node::StateMachine`: one
//! append-only list of commands per group, persisted in the node's RocksDB (default column
//! family, keys prefixed by the group id) in the same batches as the raft state, with a
//! running digest of (index, stamp, command) so two nodes' states compare in O(1) at any
//! applied index. A snapshot is one file holding the whole list.
//!
//! What it applies is also reported on a side channel ([`SmEvents`]) for the checker:
//! index, stamp, commands, position in the list and the digest after the entry; and every
//! restore from a snapshot. [`Hooks::crash_in_restore`] makes the next restore stop dead
//! (a [`CrashPoint`] panic) right where the real peer has written and synced the received
//! snapshot's raft state but not yet replaced the store: the simulated process dies there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use raft_node::{SnapshotJob, StateMachine};
use rocksdb::{WriteBatch, DB};

/// The file a snapshot of the list is written to.
const SNAP_FILE: &str = "list.bin";

/// What one command's apply returns to its proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Out {
    /// Index of the entry that carried it.
    pub index: u64,
    /// Its position in the list.
    pub pos: u64,
}

/// One thing a state machine did, for the checker.
#[derive(Debug, Clone)]
pub enum SmEvent {
    /// The commands of the entry at `index` were applied.
    Applied {
        index: u64,
        time_ms: i64,
        cmds: Vec<Vec<u8>>,
        digest: u64,
    },
    /// The whole state was replaced by a snapshot's, taken at `index`.
    Restored { index: u64, digest: u64 },
}

/// The side channel a state machine reports on (drained by the simulation).
pub type SmEvents = Arc<Mutex<Vec<SmEvent>>>;

/// Switches the simulation flips on a node's state machines.
#[derive(Debug, Default)]
pub struct Hooks {
    /// The next snapshot restore crashes the node before touching the store.
    pub crash_in_restore: AtomicBool,
}

/// The payload of the panic that stands for a crash inside a restore.
#[derive(Debug)]
pub struct CrashPoint;

/// The replicated state: what nodes compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListState {
    /// Raft index of the last applied entry (as persisted with the state).
    pub applied: u64,
    /// Digest of every command applied so far (with its index and stamp).
    pub digest: u64,
    /// Stamp of the last entry applied.
    pub last_time: i64,
    /// The commands, in apply order.
    pub items: Vec<Vec<u8>>,
}

/// The list state machine of one group on one node.
pub struct ListSm {
    group: u64,
    db: Arc<DB>,
    state: ListState,
    events: SmEvents,
    hooks: Arc<Hooks>,
}

/// Mixes one applied command into the running digest.
fn mix(digest: u64, index: u64, time_ms: i64, data: &[u8]) -> u64 {
    let mut h = digest ^ 0x9e37_79b9_7f4a_7c15;
    let head = index.to_le_bytes().into_iter().chain(time_ms.to_le_bytes());
    for x in head.chain(data.iter().copied()) {
        h = (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche so that similar histories give very different digests.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn prefix(group: u64) -> Vec<u8> {
    let mut k = b"L".to_vec();
    k.extend_from_slice(&group.to_be_bytes());
    k
}

fn meta_key(group: u64) -> Vec<u8> {
    let mut k = prefix(group);
    k.push(b'm');
    k
}

fn item_key(group: u64, n: u64) -> Vec<u8> {
    let mut k = prefix(group);
    k.push(b'i');
    k.extend_from_slice(&n.to_be_bytes());
    k
}

impl ListState {
    /// Encodes the whole state (a snapshot's file, and the head of it as the meta record).
    fn encode(&self, with_items: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.applied.to_be_bytes());
        out.extend_from_slice(&self.digest.to_be_bytes());
        out.extend_from_slice(&self.last_time.to_be_bytes());
        out.extend_from_slice(&(self.items.len() as u64).to_be_bytes());
        if with_items {
            for it in &self.items {
                out.extend_from_slice(&(it.len() as u32).to_be_bytes());
                out.extend_from_slice(it);
            }
        }
        out
    }

    /// Decodes [`ListState::encode`]'s output; `items` false reads only the head and
    /// returns the item count.
    fn decode(mut b: &[u8], items: bool) -> Result<(Self, u64), String> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if b.len() < n {
                return Err("truncated list state".into());
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Ok(h)
        }
        let u64_of = |s: &[u8]| u64::from_be_bytes(s.try_into().expect("8 bytes"));
        let mut st = ListState {
            applied: u64_of(take(&mut b, 8)?),
            digest: u64_of(take(&mut b, 8)?),
            last_time: u64_of(take(&mut b, 8)?) as i64,
            items: Vec::new(),
        };
        let len = u64_of(take(&mut b, 8)?);
        if items {
            for _ in 0..len {
                let n = u32::from_be_bytes(take(&mut b, 4)?.try_into().expect("4 bytes"));
                st.items.push(take(&mut b, n as usize)?.to_vec());
            }
        }
        if !b.is_empty() {
            return Err("trailing bytes in list state".into());
        }
        Ok((st, len))
    }
}

impl ListSm {
    /// Loads group `group`'s persisted state from `db` (empty for a new database).
    pub fn load(db: Arc<DB>, group: u64, events: SmEvents, hooks: Arc<Hooks>) -> Self {
        let state = match db.get(meta_key(group)).expect("state machine read") {
            None => ListState::default(),
            Some(v) => {
                let (mut st, len) = ListState::decode(&v, false).expect("state machine meta");
                st.items = (0..len)
                    .map(|n| {
                        db.get(item_key(group, n))
                            .expect("state machine read")
                            .expect("persisted item is missing")
                    })
                    .collect();
                st
            }
        };
        ListSm {
            group,
            db,
            state,
            events,
            hooks,
        }
    }

    /// The current state.
    pub fn state(&self) -> &ListState {
        &self.state
    }

    fn report(&self, ev: SmEvent) {
        self.events.lock().expect("events lock").push(ev);
    }
}

impl StateMachine for ListSm {
    type Output = Out;

    fn apply(
        &mut self,
        wb: &mut WriteBatch,
        index: u64,
        time_ms: i64,
        commands: &[Vec<u8>],
    ) -> Vec<Out> {
        let mut outs = Vec::with_capacity(commands.len());
        for c in commands {
            let pos = self.state.items.len() as u64;
            wb.put(item_key(self.group, pos), c);
            self.state.items.push(c.clone());
            self.state.digest = mix(self.state.digest, index, time_ms, c);
            outs.push(Out { index, pos });
        }
        self.state.last_time = time_ms;
        self.report(SmEvent::Applied {
            index,
            time_ms,
            cmds: commands.to_vec(),
            digest: self.state.digest,
        });
        outs
    }

    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.state.applied = index;
        wb.put(meta_key(self.group), self.state.encode(false));
    }

    fn batch_written(&mut self) {}

    fn applied_index(&self) -> u64 {
        self.state.applied
    }

    fn last_time_ms(&self) -> i64 {
        self.state.last_time
    }

    fn snapshot_export(&mut self, dir: PathBuf) -> Result<SnapshotJob, String> {
        // Captured now; written later, off the driver (as the real store does).
        let data = self.state.encode(true);
        Ok(Box::new(move || {
            std::fs::write(dir.join(SNAP_FILE), data).map_err(|e| e.to_string())
        }))
    }

    fn snapshot_restore(&mut self, dir: &Path) -> Result<(), String> {
        if self.hooks.crash_in_restore.swap(false, Ordering::Relaxed) {
            std::panic::panic_any(CrashPoint);
        }
        let data = std::fs::read(dir.join(SNAP_FILE)).map_err(|e| e.to_string())?;
        let (from, _) = ListState::decode(&data, true)?;
        let mut wb = WriteBatch::default();
        wb.delete_range(item_key(self.group, 0), item_key(self.group, u64::MAX));
        for (n, it) in from.items.iter().enumerate() {
            wb.put(item_key(self.group, n as u64), it);
        }
        wb.put(meta_key(self.group), from.encode(false));
        self.db.write(wb).map_err(|e| e.to_string())?;
        self.state = from;
        self.report(SmEvent::Restored {
            index: self.state.applied,
            digest: self.state.digest,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip() {
        let st = ListState {
            applied: 9,
            digest: 77,
            last_time: -5,
            items: vec![b"a".to_vec(), Vec::new(), b"ccc".to_vec()],
        };
        let (back, len) = ListState::decode(&st.encode(true), true).unwrap();
        assert_eq!((back, len), (st.clone(), 3));
        assert!(ListState::decode(&st.encode(true)[..20], true).is_err());
        let (head, len) = ListState::decode(&st.encode(false), false).unwrap();
        assert_eq!(
            (head.applied, head.digest, head.last_time, len),
            (9, 77, -5, 3)
        );
    }
}
