//! Slow applies must not cost a healthy leader its leadership: three in-process nodes
//! whose followers apply every command slowly (as a burst of heavy commands, e.g. ZPOPMINs,
//! would) keep their leader and term while they work through a burst of proposals, because
//! each driver round applies within a budget and goes on serving ticks and heartbeats.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_node::{Msg, NodeConfig, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

use common::{wait_until, Handles, Sink};

/// Counts commands (replying with the count); sleeps `slow` µs per command.
struct SlowSm {
    applied: u64,
    len: u64,
    slow: Arc<AtomicU64>,
}

impl StateMachine for SlowSm {
    type Output = u64;
    fn apply(&mut self, wb: &mut WriteBatch, _: u64, _: i64, commands: &[Vec<u8>]) -> Vec<u64> {
        let slow = self.slow.load(Ordering::Relaxed);
        commands
            .iter()
            .map(|c| {
                if slow > 0 {
                    std::thread::sleep(Duration::from_micros(slow));
                }
                self.len += 1;
                wb.put(format!("item{:08}", self.len), c);
                self.len
            })
            .collect()
    }
    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.applied = index;
        wb.put(b"applied", index.to_be_bytes());
    }
    fn batch_written(&mut self) {}
    fn applied_index(&self) -> u64 {
        self.applied
    }
    fn last_time_ms(&self) -> i64 {
        0
    }
    fn snapshot_export(&mut self, _: std::path::PathBuf) -> Result<raft_node::SnapshotJob, String> {
        Err("snapshots are not used by this test".into())
    }
    fn snapshot_restore(&mut self, _: &std::path::Path) -> Result<(), String> {
        Err("snapshots are not used by this test".into())
    }
}

fn start(
    id: u64,
    dir: &std::path::Path,
    handles: &Handles,
    slow: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let path = dir.join(format!("n{id}"));
    let db = Arc::new(DB::open_cf(&opts, path, ["default", raft_node::CF_RAFT]).unwrap());
    let sm = SlowSm {
        applied: 0,
        len: 0,
        slow,
    };
    let cfg = NodeConfig {
        id,
        voters: vec![1, 2, 3],
        tick: Duration::from_millis(10),
        // 200 ms: a follower descheduled on a loaded machine is not taken for a slow round.
        election_tick: 20,
        heartbeat_tick: 2,
        snap_dir: dir.join(format!("n{id}-snap")),
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (h, th) = raft_node::start(cfg, db, sm, Sink(handles.clone()), &logger).unwrap();
    handles.lock().unwrap()[id as usize - 1] = Some(h);
    th
}

#[test]
fn slow_follower_applies_do_not_depose_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let handles: Handles = Arc::new(Mutex::new(vec![None, None, None]));
    let slow: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let threads: Vec<_> = (1..=3)
        .map(|id| start(id, dir.path(), &handles, slow[id as usize - 1].clone()))
        .collect();
    let all: Vec<NodeHandle<u64>> = {
        let mut found = Vec::new();
        wait_until("a leader", || {
            let hs = handles.lock().unwrap();
            found = hs.iter().flatten().cloned().collect();
            found.iter().any(|h| h.status.is_leader())
        });
        found
    };
    let l = all.iter().find(|h| h.status.is_leader()).unwrap().clone();
    let term = l.status.term.load(Ordering::Acquire);
    // Followers now take 0.5 ms per command: the burst below is ~1 s of applying each,
    // five election timeouts (200 ms).
    for h in all.iter().filter(|h| h.status.id != l.status.id) {
        slow[h.status.id as usize - 1].store(500, Ordering::Relaxed);
    }
    const N: usize = 2000;
    let mut rxs: Vec<_> = (0..N)
        .map(|i| l.propose(vec![format!("cmd{i}").into_bytes()]))
        .collect();
    let mut outs = Vec::with_capacity(N);
    let mut max_backlog = 0;
    let mut deposed = None;
    wait_until("every reply and the followers' applies", || {
        if deposed.is_none()
            && (!l.status.is_leader() || l.status.term.load(Ordering::Acquire) != term)
        {
            deposed = Some(outs.len());
        }
        for h in &all {
            max_backlog = max_backlog.max(h.status.apply_backlog.load(Ordering::Relaxed));
        }
        while let Some(rx) = rxs.first_mut() {
            match rx.try_recv() {
                Ok(r) => {
                    outs.push(r);
                    rxs.remove(0);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                Err(e) => panic!("reply channel closed: {e}"),
            }
        }
        let commit = l.status.commit.load(Ordering::Acquire);
        rxs.is_empty()
            && all
                .iter()
                .all(|h| h.status.applied.load(Ordering::Acquire) >= commit)
    });
    assert_eq!(
        deposed, None,
        "the leader lost its leadership or term after this many replies"
    );
    let outs: Vec<u64> = outs.into_iter().flat_map(|r| r.unwrap()).collect();
    assert_eq!(outs, (1..=N as u64).collect::<Vec<_>>());
    assert!(
        max_backlog > 0,
        "the followers never deferred applies to a later round"
    );
    for h in handles.lock().unwrap().iter_mut() {
        h.take().unwrap().send(Msg::Stop);
    }
    for t in threads {
        t.join().unwrap();
    }
}
