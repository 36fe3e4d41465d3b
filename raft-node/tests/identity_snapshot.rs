//! A founder that starts for the first time with an empty data dir after the others formed
//! the group, whose apply then waits (as a group's ADD waits for another group of its node)
//! while it acknowledges the leader's appends, and which is then caught up by a snapshot
//! taken past its guard's target, goes on as a member. The leader lists it as a
//! participant once it acknowledged (an identity entry above its target); the snapshot
//! carries that listing, and deciding from it the node refused to start as if it had lost
//! its data (chaos seed 1205: a node opening a freshly joined group, killed before the
//! group elected, then restarted, exited at every start from then on).

mod common;

use common::{block, wait_until};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_node::node::MessageSink;
use raft_node::raft::eraftpb::{Message, MessageType};
use raft_node::{CacheBudget, DriverConfig, Msg, NodeConfig, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

const GROUP: u64 = 1;
/// The entry node 3's apply waits at until it restored a snapshot.
const HOLD: &[u8] = b"HOLD";
const TICK: Duration = Duration::from_millis(10);

/// What node 3's state machine and the test share.
#[derive(Default)]
struct Shared {
    /// Node 3's apply waits at [`HOLD`] (until its restore).
    hold: AtomicBool,
    /// Node 3's waiting apply asks for a snapshot.
    want_snapshot: AtomicBool,
}

struct TestSm {
    applied: u64,
    /// Node 3's (nodes 1 and 2 never wait).
    shared: Option<Arc<Shared>>,
}

impl StateMachine for TestSm {
    type Output = u64;
    fn apply(&mut self, _: &mut WriteBatch, index: u64, _: i64, commands: &[Vec<u8>]) -> Vec<u64> {
        commands.iter().map(|_| index).collect()
    }
    fn may_wait(cmd: &[u8]) -> bool {
        cmd == HOLD
    }
    fn must_wait(&self, _: &[Vec<u8>]) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.hold.load(Ordering::Acquire))
    }
    fn needs_snapshot(&self, _: &[Vec<u8>]) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.want_snapshot.load(Ordering::Acquire))
    }
    fn stage_applied(&mut self, _: &mut WriteBatch, index: u64) {
        self.applied = index;
    }
    fn batch_written(&mut self) {}
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
        self.applied = u64::from_be_bytes(data[..].try_into().map_err(|_| "bad state file")?);
        if let Some(s) = &self.shared {
            s.hold.store(false, Ordering::Release);
        }
        Ok(())
    }
}

/// Delivers every message to its node; a snapshot's files are copied over first, as the
/// transport would have fetched them, and its sender is told it was sent.
#[derive(Clone)]
struct Net {
    handles: Arc<Mutex<Vec<Option<NodeHandle<u64>>>>>,
    root: PathBuf,
}

impl MessageSink for Net {
    fn send(&self, msgs: Vec<(u64, Message)>) {
        for (g, m) in msgs {
            if g == raft_node::driver::KEEPALIVE_GROUP {
                continue;
            }
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let (from, to) = (snap_dir(&self.root, m.from), snap_dir(&self.root, m.to));
                common::fetch_snapshot_files(&m, &from, &to);
            }
            let hs = self.handles.lock().unwrap();
            let (to, from, snap) = (m.to, m.from, m.get_msg_type() == MessageType::MsgSnapshot);
            if let Some(Some(h)) = hs.get(to as usize - 1) {
                h.send(Msg::Raft(Box::new(m)));
            }
            if let (true, Some(Some(h))) = (snap, hs.get(from as usize - 1)) {
                // As the transport reports a snapshot sent.
                h.send(Msg::SnapshotStatus { to, ok: true });
            }
        }
    }
}

fn snap_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("n{id}-snap"))
}

/// Starts node `id` of the group on an empty database.
fn start(
    id: u64,
    root: &Path,
    net: &Net,
    shared: Option<Arc<Shared>>,
) -> (NodeHandle<u64>, std::thread::JoinHandle<()>) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let db = Arc::new(
        DB::open_cf(
            &opts,
            root.join(format!("n{id}")),
            ["default", raft_node::CF_RAFT],
        )
        .unwrap(),
    );
    let cfg = NodeConfig {
        id,
        group_id: GROUP,
        voters: vec![1, 2, 3],
        tick: TICK,
        election_tick: 20,
        heartbeat_tick: 2,
        snap_dir: snap_dir(root, id),
        ..Default::default()
    };
    let sm = TestSm { applied: 0, shared };
    let driver = DriverConfig {
        id,
        tick: TICK,
        log_cache: CacheBudget::default_bounds(),
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (hs, th) =
        raft_node::start_groups(driver, vec![(cfg, sm)], db, net.clone(), &logger).unwrap();
    net.handles.lock().unwrap()[id as usize - 1] = Some(hs[0].clone());
    (hs[0].clone(), th)
}

/// Proposes `cmd` to whichever of `hs` leads until it is applied.
fn write(hs: &[NodeHandle<u64>], cmd: &[u8]) {
    wait_until("a write committed", || {
        let Some(l) = hs.iter().find(|h| h.status.is_leader()) else {
            return false;
        };
        block(l.propose(vec![cmd.to_vec()])).is_ok()
    });
}

fn leader(hs: &[NodeHandle<u64>]) -> NodeHandle<u64> {
    let mut out = None;
    wait_until("a leader", || {
        out = hs.iter().find(|h| h.status.is_leader()).cloned();
        out.is_some()
    });
    out.unwrap()
}

#[test]
fn a_late_founder_caught_up_by_a_snapshot_past_its_target_goes_on() {
    // A refusal (or any fail-stop) ends node 3's driver thread instead of the test process.
    raft_node::node::die_panics();
    let dir = tempfile::tempdir().unwrap();
    let net = Net {
        handles: Arc::new(Mutex::new(vec![None, None, None])),
        root: dir.path().to_path_buf(),
    };
    let mut nodes: Vec<_> = (1..=2)
        .map(|id| start(id, dir.path(), &net, None))
        .collect();
    let first: Vec<NodeHandle<u64>> = nodes.iter().map(|n| n.0.clone()).collect();
    for i in 0..10 {
        write(&first, format!("a{i}").as_bytes());
    }
    write(&first, HOLD);
    for i in 0..10 {
        write(&first, format!("b{i}").as_bytes());
    }
    // Node 3 starts empty: guarded, its target the commit index of its first append
    // (past the HOLD entry, where its apply stops).
    let shared = Arc::new(Shared::default());
    shared.hold.store(true, Ordering::Release);
    nodes.push(start(3, dir.path(), &net, Some(shared.clone())));
    let third = nodes[2].0.clone();
    let l = leader(&first);
    let before = l.status.last_index.load(Ordering::Acquire);
    // It acknowledges the leader's log, so the leader lists it as a participant by an
    // identity entry above `before` (the only proposals from now on are the leader's own).
    wait_until("node 3 listed as a participant", || {
        let last = l.status.last_index.load(Ordering::Acquire);
        let matched = l.status.members.lock().unwrap().matched.get(&3).copied();
        last > before && matched >= Some(last) && l.status.applied.load(Ordering::Acquire) >= last
    });
    assert!(
        third.status.applied.load(Ordering::Acquire) < before,
        "node 3's apply went past its target: the case was not arranged"
    );
    // The leader snapshots past that entry; node 3's waiting apply asks for a snapshot.
    let at = block(l.snapshot()).unwrap();
    assert!(at > before, "snapshot at {at}");
    shared.want_snapshot.store(true, Ordering::Release);
    wait_until("node 3 restored the snapshot", || {
        third.status.snapshots_restored.load(Ordering::Acquire) >= 1
    });
    // Node 3 goes on: it applies a later write (a refusal would have stopped it).
    let all: Vec<NodeHandle<u64>> = nodes.iter().map(|n| n.0.clone()).collect();
    write(&all, b"after");
    let commit = leader(&all).status.commit.load(Ordering::Acquire);
    wait_until("node 3 applied the write after the snapshot", || {
        third.status.applied.load(Ordering::Acquire) >= commit
    });
    for (h, _) in &nodes {
        h.send(Msg::Stop);
    }
    for (_, th) in nodes {
        th.join().expect("no node stopped by a fail-stop");
    }
}
