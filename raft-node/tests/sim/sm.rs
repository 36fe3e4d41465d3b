//! The simulation's replicated state machine, a real `raft_node::StateMachine`: one
//! append-only list of commands per group, persisted in the node's RocksDB (default column
//! family, keys prefixed by the group id) in the same batches as the raft state, with a
//! running digest of (index, stamp, command, outcome) so two nodes' states compare in O(1)
//! at any applied index. A snapshot is one file holding the whole state.
//!
//! The state also holds the group's slots (`sim/slots.rs`): the slots it owns, each with
//! the fence it got it at, and its last applied fence. A write of a slot it does not own
//! is applied as a refusal (not put in the list; its output says so), REMOVE and ADD change
//! the slots, and an entry with an ADD waits (`must_wait`) while another group of the node
//! still claims the slot.
//!
//! What it applies is also reported on a side channel ([`SmEvents`]) for the checker:
//! index, stamp, commands, position in the list and the digest after the entry; and every
//! restore from a snapshot. [`Hooks::crash_in_restore`] makes the next restore stop dead
//! (a [`CrashPoint`] panic) right where the real peer has written and synced the received
//! snapshot's raft state but not yet replaced the store: the simulated process dies there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use raft_node::{SnapshotJob, StateMachine};
use rocksdb::{WriteBatch, DB};

use super::slots::{is_add, Claims, Cmd};

/// The file a snapshot of the list is written to.
const SNAP_FILE: &str = "list.bin";
/// Where a snapshot captured only keeps its state until its file is made.
const CAPTURED_DIR: &str = "captured";

/// What one command's apply returns to its proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Out {
    /// Index of the entry that carried it.
    pub index: u64,
    /// Its position in the list (`u64::MAX` when not put in it).
    pub pos: u64,
    /// Applied (`false`: refused, its slot is not this group's; certainly not applied).
    pub served: bool,
    /// The fence this group got the write's slot at (0: initially, or no slot).
    pub fence: u64,
}

/// One thing a state machine did, for the checker.
#[derive(Debug, Clone)]
pub enum SmEvent {
    /// The commands of the entry at `index` were applied.
    Applied {
        index: u64,
        time_ms: i64,
        cmds: Vec<Vec<u8>>,
        /// Per command: applied (not refused).
        served: Vec<bool>,
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
    /// Mutant `slot-keep-serving`: a REMOVE leaves the slot owned (the source keeps
    /// serving it).
    pub keep_serving: bool,
    /// Mutant `slot-early-add`: an ADD never waits for the node's other groups.
    pub add_never_waits: bool,
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
    /// The fence of the last slot command applied.
    pub fence: u64,
    /// Owned slot → the fence it was got at.
    pub owned: BTreeMap<u16, u64>,
    /// The served commands, in apply order.
    pub items: Vec<Vec<u8>>,
}

/// The list state machine of one group on one node.
pub struct ListSm {
    group: u64,
    db: Arc<DB>,
    state: ListState,
    events: SmEvents,
    hooks: Arc<Hooks>,
    claims: Claims,
    /// The slots are claimed in `claims` (once the replica holds state).
    claimed: bool,
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
        out.extend_from_slice(&self.fence.to_be_bytes());
        out.extend_from_slice(&(self.owned.len() as u64).to_be_bytes());
        for (s, f) in &self.owned {
            out.extend_from_slice(&s.to_be_bytes());
            out.extend_from_slice(&f.to_be_bytes());
        }
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
            fence: u64_of(take(&mut b, 8)?),
            owned: BTreeMap::new(),
            items: Vec::new(),
        };
        for _ in 0..u64_of(take(&mut b, 8)?) {
            let s = u16::from_be_bytes(take(&mut b, 2)?.try_into().expect("2 bytes"));
            st.owned.insert(s, u64_of(take(&mut b, 8)?));
        }
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
    /// Loads group `group`'s persisted state from `db` (for a new database: no items and
    /// the `initial` slots), sharing the node's slot `claims`.
    pub fn load(
        db: Arc<DB>,
        group: u64,
        events: SmEvents,
        hooks: Arc<Hooks>,
        claims: Claims,
        initial: BTreeMap<u16, u64>,
    ) -> Self {
        let state = match db.get(meta_key(group)).expect("state machine read") {
            None => ListState {
                owned: initial,
                ..Default::default()
            },
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
        let mut sm = ListSm {
            group,
            db,
            state,
            events,
            hooks,
            claims,
            claimed: false,
        };
        if sm.state.applied > 0 {
            sm.claim();
        }
        sm
    }

    /// The current state.
    pub fn state(&self) -> &ListState {
        &self.state
    }

    fn report(&self, ev: SmEvent) {
        self.events.lock().expect("events lock").push(ev);
    }

    /// Claims the owned slots (and only those) in the node's registry.
    fn claim(&mut self) {
        let st = &self.state;
        self.claims
            .claim_all(self.group, st.owned.keys().copied(), st.fence);
        self.claimed = true;
    }

    /// Applies one command: (applied, the fence of its slot, its position in the list).
    fn apply_cmd(&mut self, wb: &mut WriteBatch, c: &[u8]) -> (bool, u64, u64) {
        let (g, fence_now) = (self.group, self.state.fence);
        match Cmd::decode(c) {
            Some(Cmd::Write { slot: Some(s), .. }) => match self.state.owned.get(&s) {
                Some(&f) => (true, f, self.push(wb, c)),
                None => (false, 0, u64::MAX),
            },
            Some(Cmd::Remove { slot, fence }) if fence >= fence_now => {
                if !self.hooks.keep_serving {
                    self.state.owned.remove(&slot);
                }
                self.state.fence = fence;
                self.claims.release(g, slot, fence);
                (true, 0, u64::MAX)
            }
            Some(Cmd::Add { slot, fence }) if fence >= fence_now => {
                self.state.owned.insert(slot, fence);
                self.state.fence = fence;
                self.claims.take(g, slot, fence);
                (true, fence, u64::MAX)
            }
            // A stale slot command changes nothing.
            Some(Cmd::Remove { .. } | Cmd::Add { .. }) => (true, 0, u64::MAX),
            // Slotless (no slot model), or anything else: put in the list.
            _ => (true, 0, self.push(wb, c)),
        }
    }

    /// Appends `c` to the list; returns its position.
    fn push(&mut self, wb: &mut WriteBatch, c: &[u8]) -> u64 {
        let pos = self.state.items.len() as u64;
        wb.put(item_key(self.group, pos), c);
        self.state.items.push(c.to_vec());
        pos
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
        if !self.claimed {
            self.claim();
        }
        let mut outs = Vec::with_capacity(commands.len());
        let mut served = Vec::with_capacity(commands.len());
        for c in commands {
            let (ok, fence, pos) = self.apply_cmd(wb, c);
            let mut tagged = c.clone();
            tagged.push(u8::from(ok));
            self.state.digest = mix(self.state.digest, index, time_ms, &tagged);
            outs.push(Out {
                index,
                pos,
                served: ok,
                fence,
            });
            served.push(ok);
        }
        self.state.last_time = time_ms;
        self.report(SmEvent::Applied {
            index,
            time_ms,
            cmds: commands.to_vec(),
            served,
            digest: self.state.digest,
        });
        outs
    }

    fn may_wait(cmd: &[u8]) -> bool {
        is_add(cmd)
    }

    /// An ADD waits while another group of this node claims its slot (and has not applied
    /// a later migration); a stale one never waits.
    fn must_wait(&self, commands: &[Vec<u8>]) -> bool {
        !self.hooks.add_never_waits
            && commands.iter().any(|c| match Cmd::decode(c) {
                Some(Cmd::Add { slot, fence }) if fence >= self.state.fence => {
                    self.claims.must_wait(self.group, slot, fence)
                }
                _ => false,
            })
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

    fn snapshot_capture(&mut self, dir: PathBuf) -> Result<(SnapshotJob, bool), String> {
        // Every other snapshot is captured only (as the real store's checkpoint): its file
        // is made when a follower first needs it, from what the capture kept aside.
        if self.state.applied.is_multiple_of(2) {
            return Ok((self.snapshot_export(dir)?, false));
        }
        let kept = dir.join(CAPTURED_DIR);
        std::fs::create_dir_all(&kept).map_err(|e| e.to_string())?;
        std::fs::write(kept.join(SNAP_FILE), self.state.encode(true)).map_err(|e| e.to_string())?;
        Ok((Box::new(|| Ok(())), true))
    }

    fn snapshot_materialize(&mut self, dir: PathBuf) -> Result<SnapshotJob, String> {
        Ok(Box::new(move || {
            std::fs::copy(dir.join(CAPTURED_DIR).join(SNAP_FILE), dir.join(SNAP_FILE))
                .map(|_| ())
                .map_err(|e| e.to_string())
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
        self.claim();
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
            fence: 4,
            owned: [(3, 0), (7, 4)].into_iter().collect(),
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
