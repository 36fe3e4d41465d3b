//! A snapshot restore inside a driver round lands after everything the round staged before
//! it. Node 1 hosts group 1 (a "source" group applying a backlog, one slow entry per round)
//! and group 2 (a "target" group catching up by snapshot). In the round where group 2
//! restores, group 1 has already staged a write of a key the snapshot also holds (as a
//! lagging source group's write to a slot that moved to the target group); afterwards the
//! key must hold the restored record, not the source's staged write landed on top of it.
//!
//! The round is arranged, not hoped for: group 1's backlog is parked (its first entry
//! waits, [`StateMachine::must_wait`]) until all of it is committed, and its first slow
//! apply hands node 1 the snapshot message held back until then, so the message is
//! stepped in the next round, in which group 1 (served first: lower id) still applies.

mod common;

use common::{block, wait_until};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_node::node::MessageSink;
use raft_node::raft::eraftpb::{Message, MessageType};
use raft_node::{CacheBudget, DriverConfig, Msg, NodeConfig, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

/// The group applying a backlog on node 1 only.
const SOURCE: u64 = 1;
/// The group of nodes 1-3 whose member on node 1 catches up by snapshot.
const TARGET: u64 = 2;
/// The key both groups write: the source by applying, the target by restoring.
const KEY: &[u8] = b"slot-record";
const RESTORED: &[u8] = b"from the target's snapshot";
/// The source's entry that waits while [`Shared::hold`] is set.
const HOLD: &[u8] = b"HOLD";
/// A source command writing [`KEY`] (until the target restored).
const WRITE: &[u8] = b"WRITE";
/// Source entries behind the held one.
const WRITES: u64 = 8;
const TICK: Duration = Duration::from_millis(10);
/// One source apply: over the round's apply budget (a quarter tick), so each round applies
/// one entry and the rest stays in the backlog for the next rounds.
const SLOW_APPLY: Duration = Duration::from_millis(5);

/// What node 1's two state machines (and the test) share.
#[derive(Default)]
struct Shared {
    /// The source's HOLD entry must wait.
    hold: AtomicBool,
    /// The target restored its snapshot: the source no longer writes [`KEY`] (the slot is
    /// the target's now).
    restored: AtomicBool,
    /// The source staged a write of [`KEY`] that its batch has not been written for yet.
    source_staged: AtomicBool,
    /// `source_staged` when the target's restore ran (1 = true, 2 = false, 0 = no restore).
    staged_at_restore: AtomicU64,
    /// The held snapshot message and node 1's handle: the source's next apply hands it over.
    release: Mutex<Option<(NodeHandle<u64>, Message)>>,
}

struct TestSm {
    group: u64,
    db: Arc<DB>,
    applied: u64,
    shared: Arc<Shared>,
}

impl TestSm {
    fn applied_key(&self) -> String {
        format!("applied-{}", self.group)
    }

    fn apply_source(&mut self, wb: &mut WriteBatch, index: u64, cmd: &[u8]) {
        if cmd != WRITE {
            return;
        }
        if !self.shared.restored.load(Ordering::Acquire) {
            wb.put(KEY, format!("source entry {index}"));
            self.shared.source_staged.store(true, Ordering::Release);
        }
        if let Some((h, m)) = self.shared.release.lock().unwrap().take() {
            h.deliver(TARGET, m);
        }
        std::thread::sleep(SLOW_APPLY);
    }
}

impl StateMachine for TestSm {
    type Output = u64;
    fn apply(&mut self, wb: &mut WriteBatch, index: u64, _: i64, commands: &[Vec<u8>]) -> Vec<u64> {
        for c in commands {
            if self.group == SOURCE {
                self.apply_source(wb, index, c);
            }
        }
        commands.iter().map(|_| index).collect()
    }
    fn may_wait(cmd: &[u8]) -> bool {
        cmd == HOLD
    }
    fn must_wait(&self, _: &[Vec<u8>]) -> bool {
        self.shared.hold.load(Ordering::Acquire)
    }
    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.applied = index;
        wb.put(self.applied_key(), index.to_be_bytes());
    }
    fn batch_written(&mut self) {
        if self.group == SOURCE {
            self.shared.source_staged.store(false, Ordering::Release);
        }
    }
    fn applied_index(&self) -> u64 {
        self.applied
    }
    fn last_time_ms(&self) -> i64 {
        0
    }
    fn snapshot_export(&mut self, dir: PathBuf) -> Result<raft_node::SnapshotJob, String> {
        let applied = self.applied;
        Ok(Box::new(move || {
            std::fs::write(dir.join("state"), applied.to_be_bytes()).map_err(|e| e.to_string())
        }))
    }
    fn snapshot_restore(&mut self, dir: &Path) -> Result<(), String> {
        let data = std::fs::read(dir.join("state")).map_err(|e| e.to_string())?;
        let applied = u64::from_be_bytes(data[..].try_into().map_err(|_| "bad state file")?);
        let staged = self.shared.source_staged.load(Ordering::Acquire);
        self.shared
            .staged_at_restore
            .store(if staged { 1 } else { 2 }, Ordering::Release);
        let mut wb = WriteBatch::default();
        wb.put(KEY, RESTORED);
        wb.put(self.applied_key(), applied.to_be_bytes());
        self.db.write(wb).map_err(|e| e.to_string())?;
        self.applied = applied;
        self.shared.restored.store(true, Ordering::Release);
        Ok(())
    }
}

/// Delivers every message to its node (one handle per node), except the target group's
/// traffic of node 1 while `cut`, and a snapshot for node 1's target member, which it
/// keeps in `held` (its files copied over, as the transport would have fetched them).
#[derive(Clone)]
struct Net {
    handles: Arc<Mutex<Vec<Option<NodeHandle<u64>>>>>,
    cut: Arc<AtomicBool>,
    held: Arc<Mutex<Option<Message>>>,
    root: PathBuf,
}

impl MessageSink for Net {
    fn send(&self, msgs: Vec<(u64, Message)>) {
        for (g, m) in msgs {
            if g == raft_node::driver::KEEPALIVE_GROUP {
                continue;
            }
            if g == TARGET && (m.to == 1 || m.from == 1) {
                if self.cut.load(Ordering::Acquire) {
                    continue;
                }
                if m.to == 1 && m.get_msg_type() == MessageType::MsgSnapshot {
                    self.fetch_files(&m);
                    *self.held.lock().unwrap() = Some(m);
                    continue;
                }
            }
            if let Some(Some(h)) = self.handles.lock().unwrap().get(m.to as usize - 1) {
                h.deliver(g, m);
            }
        }
    }
}

impl Net {
    fn fetch_files(&self, m: &Message) {
        let from = snap_dir(&self.root, m.from, TARGET);
        common::fetch_snapshot_files(m, &from, &snap_dir(&self.root, 1, TARGET));
    }
}

fn snap_dir(root: &Path, id: u64, group: u64) -> PathBuf {
    root.join(format!("n{id}-snap-g{group}"))
}

/// Starts node `id` (node 1: both groups; nodes 2 and 3: the target group).
fn start(
    id: u64,
    root: &Path,
    net: &Net,
    shared: &Arc<Shared>,
) -> (Arc<DB>, Vec<NodeHandle<u64>>, std::thread::JoinHandle<()>) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let path = root.join(format!("n{id}"));
    let db = Arc::new(DB::open_cf(&opts, path, ["default", raft_node::CF_RAFT]).unwrap());
    let group = |g: u64, voters: Vec<u64>| {
        let cfg = NodeConfig {
            id,
            group_id: g,
            voters,
            tick: TICK,
            election_tick: 20,
            heartbeat_tick: 2,
            // Every proposal its own entry (entries are the unit of the apply budget).
            max_entry_bytes: 1,
            snap_dir: snap_dir(root, id, g),
            ..Default::default()
        };
        let sm = TestSm {
            group: g,
            db: db.clone(),
            applied: 0,
            shared: shared.clone(),
        };
        (cfg, sm)
    };
    let mut groups = vec![group(TARGET, vec![1, 2, 3])];
    if id == 1 {
        groups.insert(0, group(SOURCE, vec![1]));
    }
    let driver = DriverConfig {
        id,
        tick: TICK,
        log_cache: CacheBudget::default_bounds(),
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (hs, th) =
        raft_node::start_groups(driver, groups, db.clone(), net.clone(), &logger).unwrap();
    net.handles.lock().unwrap()[id as usize - 1] = Some(hs[0].clone());
    (db, hs, th)
}

#[test]
fn restore_lands_after_the_writes_staged_before_it_in_the_round() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net {
        handles: Arc::new(Mutex::new(vec![None, None, None])),
        cut: Arc::new(AtomicBool::new(true)),
        held: Arc::default(),
        root: dir.path().to_path_buf(),
    };
    let shared = Arc::new(Shared::default());
    let nodes: Vec<_> = (1..=3)
        .map(|id| start(id, dir.path(), &net, &shared))
        .collect();
    let (db1, source, target1) = (&nodes[0].0, &nodes[0].1[0], &nodes[0].1[1]);
    // The target group commits and compacts its log without node 1 ...
    let targets: Vec<NodeHandle<u64>> = nodes[1..].iter().map(|n| n.1[0].clone()).collect();
    wait_until("a leader of the source group", || source.status.is_leader());
    for i in 0..20 {
        // To whichever of nodes 2 and 3 leads (a loaded machine may move leadership).
        let mut done = false;
        wait_until("a target write committed", || {
            let Some(l) = targets.iter().find(|h| h.status.is_leader()) else {
                return false;
            };
            done = block(l.propose(vec![format!("t{i}").into_bytes()])).is_ok();
            done
        });
        assert!(done);
    }
    // Both compact (whichever leads sends the snapshot).
    let commit = targets[0].status.commit.load(Ordering::Acquire);
    wait_until("nodes 2 and 3 applied every write", || {
        targets
            .iter()
            .all(|h| h.status.applied.load(Ordering::Acquire) >= commit)
    });
    for h in &targets {
        let snapshot = block(h.snapshot()).unwrap();
        assert!(snapshot > 20, "snapshot at {snapshot}");
    }
    // ... and, healed, sends node 1 a snapshot (held back for now).
    net.cut.store(false, Ordering::Release);
    wait_until("the target's snapshot for node 1", || {
        net.held.lock().unwrap().is_some()
    });
    // The source's backlog: a held entry and slow writes behind it, all committed.
    shared.hold.store(true, Ordering::Release);
    let mut replies = vec![source.propose(vec![HOLD.to_vec()])];
    replies.extend((0..WRITES).map(|_| source.propose(vec![WRITE.to_vec()])));
    wait_until("the source's backlog committed", || {
        source.status.apply_backlog.load(Ordering::Acquire) == WRITES + 1
    });
    // Released: the first write's apply hands node 1 the snapshot.
    let m = net.held.lock().unwrap().take().unwrap();
    *shared.release.lock().unwrap() = Some((target1.clone(), m));
    shared.hold.store(false, Ordering::Release);
    for rx in replies {
        block(rx).unwrap();
    }
    wait_until("the target's restore", || {
        target1.status.snapshots_restored.load(Ordering::Acquire) >= 1
    });
    assert_eq!(
        shared.staged_at_restore.load(Ordering::Acquire),
        1,
        "the source had no staged write when the target restored: the round was not arranged"
    );
    let record = db1.get(KEY).unwrap().unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&record),
        String::from_utf8_lossy(RESTORED),
        "a write the source staged before the restore landed on top of the restored record"
    );
    for (_, hs, _) in &nodes {
        hs[0].send(Msg::Stop);
    }
    for (_, _, th) in nodes {
        th.join().unwrap();
    }
}
