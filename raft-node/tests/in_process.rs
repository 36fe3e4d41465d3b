//! Three Ready loops in one process, wired by an in-memory message sink: proposals commit
//! and apply on every node, reads wait for the read index, a restarted node keeps its log.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft_node::{Msg, NodeConfig, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

use common::{block, Handles, Sink};

/// Appends every command to a list kept in RocksDB; replies with the list length.
struct ListSm {
    applied: u64,
    len: u64,
}

impl ListSm {
    fn open(db: &DB) -> Self {
        let get = |k: &[u8]| {
            db.get(k)
                .unwrap()
                .map(|v| u64::from_be_bytes(v[..8].try_into().unwrap()))
                .unwrap_or(0)
        };
        let applied = get(b"applied");
        let len = get(b"len");
        ListSm { applied, len }
    }
}

impl StateMachine for ListSm {
    type Output = u64;
    fn apply(
        &mut self,
        wb: &mut WriteBatch,
        _index: u64,
        _time: i64,
        commands: &[Vec<u8>],
    ) -> Vec<u64> {
        commands
            .iter()
            .map(|c| {
                self.len += 1;
                wb.put(format!("item{:08}", self.len), c);
                self.len
            })
            .collect()
    }
    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.applied = index;
        wb.put(b"applied", index.to_be_bytes());
        wb.put(b"len", self.len.to_be_bytes());
    }
    fn batch_written(&mut self) {}
    fn applied_index(&self) -> u64 {
        self.applied
    }
    fn last_time_ms(&self) -> i64 {
        0
    }
    // These tests never compact the log, so no snapshot is ever taken or installed.
    fn snapshot_export(
        &mut self,
        _dir: std::path::PathBuf,
    ) -> Result<raft_node::SnapshotJob, String> {
        Err("snapshots are not used by this test".into())
    }
    fn snapshot_restore(&mut self, _dir: &std::path::Path) -> Result<(), String> {
        Err("snapshots are not used by this test".into())
    }
}

fn open_db(path: &std::path::Path) -> Arc<DB> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    Arc::new(DB::open_cf(&opts, path, ["default", raft_node::CF_RAFT]).unwrap())
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn start(id: u64, dir: &std::path::Path, handles: &Handles) -> std::thread::JoinHandle<()> {
    let db = open_db(&dir.join(format!("n{id}")));
    let sm = ListSm::open(&db);
    let cfg = NodeConfig {
        id,
        voters: vec![1, 2, 3],
        tick: Duration::from_millis(10),
        snap_dir: dir.join(format!("n{id}-snap")),
        ..Default::default()
    };
    let (h, th) = raft_node::start(cfg, db, sm, Sink(handles.clone()), &logger()).unwrap();
    handles.lock().unwrap()[id as usize - 1] = Some(h);
    th
}

fn leader(handles: &Handles) -> NodeHandle<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(h) = handles
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .find(|h| h.status.is_leader())
        {
            return h.clone();
        }
        assert!(Instant::now() < deadline, "no leader elected");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn proposals_commit_everywhere_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let handles: Handles = Arc::new(Mutex::new(vec![None, None, None]));
    let threads: Vec<_> = (1..=3).map(|id| start(id, dir.path(), &handles)).collect();
    let l = leader(&handles);
    // Many proposals queued at once share entries; replies count up in order.
    let rxs: Vec<_> = (0..200)
        .map(|i| l.propose(vec![format!("cmd{i}").into_bytes()]))
        .collect();
    let outs: Vec<u64> = rxs.into_iter().flat_map(|rx| block(rx).unwrap()).collect();
    assert_eq!(outs, (1..=200).collect::<Vec<_>>());
    assert!(
        l.status
            .entries_proposed
            .load(std::sync::atomic::Ordering::Relaxed)
            < 200
    );
    // A follower's read barrier resolves once it has applied everything acknowledged.
    let follower = handles
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .find(|h| !h.status.is_leader())
        .unwrap()
        .clone();
    block(follower.read_barrier()).unwrap();
    assert!(
        follower
            .status
            .applied
            .load(std::sync::atomic::Ordering::Acquire)
            >= l.status.commit.load(std::sync::atomic::Ordering::Acquire) - 1
    );
    // Followers reject proposals with a leader hint.
    let err = block(follower.propose(vec![b"x".to_vec()])).unwrap_err();
    assert!(matches!(err, raft_node::NodeError::NotLeader(Some(_))));
    // Stop everything, restart, and the state is still there.
    for h in handles.lock().unwrap().iter_mut() {
        h.take().unwrap().send(Msg::Stop);
    }
    for t in threads {
        t.join().unwrap();
    }
    let threads: Vec<_> = (1..=3).map(|id| start(id, dir.path(), &handles)).collect();
    let l = leader(&handles);
    assert_eq!(
        block(l.propose(vec![b"a".to_vec(), b"b".to_vec()])).unwrap(),
        vec![201, 202]
    );
    for h in handles.lock().unwrap().iter_mut() {
        h.take().unwrap().send(Msg::Stop);
    }
    for t in threads {
        t.join().unwrap();
    }
}
