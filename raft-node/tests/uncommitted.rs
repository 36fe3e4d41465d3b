//! A leader that cannot replicate (its appends are lost while heartbeats still pass, so it
//! stays leader) stops accepting proposals once `MAX_UNCOMMITTED_BYTES` of entries are
//! uncommitted: later proposals are answered `Dropped` at once (certainly not applied)
//! instead of growing its log and memory without bound; once the link heals, everything
//! accepted commits and new proposals are accepted again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft_node::node::{MessageSink, MAX_UNCOMMITTED_BYTES};
use raft_node::raft::eraftpb::{Message, MessageType};
use raft_node::{Msg, NodeConfig, NodeError, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

/// Counts applied commands (kept in memory: these nodes never restart).
#[derive(Default)]
struct CountSm {
    applied: u64,
    count: u64,
}

impl StateMachine for CountSm {
    type Output = u64;
    fn apply(&mut self, _: &mut WriteBatch, _: u64, _: i64, commands: &[Vec<u8>]) -> Vec<u64> {
        commands
            .iter()
            .map(|_| {
                self.count += 1;
                self.count
            })
            .collect()
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
    fn snapshot_export(&mut self, _: std::path::PathBuf) -> Result<raft_node::SnapshotJob, String> {
        Err("no snapshots in this test".into())
    }
    fn snapshot_restore(&mut self, _: &std::path::Path) -> Result<(), String> {
        Err("no snapshots in this test".into())
    }
}

type Handles = Arc<Mutex<Vec<Option<NodeHandle<u64>>>>>;

/// Delivers messages in memory; while `cut` is set, log appends are lost.
#[derive(Clone)]
struct Sink {
    handles: Handles,
    cut: Arc<AtomicBool>,
}

impl MessageSink for Sink {
    fn send(&self, msgs: Vec<(u64, Message)>) {
        let hs = self.handles.lock().unwrap();
        for (g, m) in msgs {
            if g == raft_node::driver::KEEPALIVE_GROUP {
                continue;
            }
            if self.cut.load(Ordering::Acquire) && m.get_msg_type() == MessageType::MsgAppend {
                continue;
            }
            if let Some(Some(h)) = hs.get(m.to as usize - 1) {
                h.send(Msg::Raft(Box::new(m)));
            }
        }
    }
}

fn start(id: u64, dir: &std::path::Path, sink: &Sink) -> std::thread::JoinHandle<()> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let path = dir.join(format!("n{id}"));
    let db = Arc::new(DB::open_cf(&opts, path, ["default", raft_node::CF_RAFT]).unwrap());
    let cfg = NodeConfig {
        id,
        voters: vec![1, 2, 3],
        // Slow ticks: writing 4 MiB entries on a loaded machine must not look like a
        // dead leader.
        tick: Duration::from_millis(50),
        // A 5-10 s election timeout: the leader must survive the cut (only appends are lost)
        // even when 128 MiB of entries stall it on a loaded 2-core machine (2-4 s flaked
        // once); a leader change would rightly answer the accepted proposals `Dropped` and
        // defeat the test.
        election_tick: 100,
        snap_dir: dir.join(format!("n{id}-snap")),
        ..Default::default()
    };
    let logger = if std::env::var_os("TEST_LOG").is_some() {
        let d = slog_term::PlainSyncDecorator::new(std::io::stderr());
        slog::Logger::root(
            slog::Fuse(slog_term::FullFormat::new(d).build()),
            slog::o!("node" => id),
        )
    } else {
        slog::Logger::root(slog::Discard, slog::o!())
    };
    let (h, th) = raft_node::start(cfg, db, CountSm::default(), sink.clone(), &logger).unwrap();
    sink.handles.lock().unwrap()[id as usize - 1] = Some(h);
    th
}

fn leader(handles: &Handles) -> NodeHandle<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = handles
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .find(|h| h.status.is_leader())
            .cloned();
        if let Some(h) = found {
            return h;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The reply, or `None` if there is none within `within`.
fn wait<T>(mut rx: tokio::sync::oneshot::Receiver<T>, within: Duration) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("reply channel closed: {e}"),
        }
    }
}

#[test]
fn leader_that_cannot_replicate_refuses_proposals_past_the_uncommitted_limit() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink {
        handles: Arc::new(Mutex::new(vec![None, None, None])),
        cut: Arc::new(AtomicBool::new(false)),
    };
    let threads: Vec<_> = (1..=3).map(|id| start(id, dir.path(), &sink)).collect();
    let l = leader(&sink.handles);
    assert_eq!(
        wait(
            l.propose(vec![b"warm-up".to_vec()]),
            Duration::from_secs(10)
        ),
        Some(Ok(vec![1]))
    );
    sink.cut.store(true, Ordering::Release);
    // 4 MiB proposals, one entry each: the first MAX_UNCOMMITTED_BYTES of them are taken
    // (and wait), then the leader refuses the rest at once.
    let chunk = vec![7u8; 4 << 20];
    let n = MAX_UNCOMMITTED_BYTES as usize / chunk.len() + 8;
    let mut rxs: Vec<_> = (0..n).map(|_| l.propose(vec![chunk.clone()])).collect();
    let last = rxs.pop().unwrap();
    assert_eq!(
        wait(last, Duration::from_secs(20)),
        Some(Err(NodeError::Dropped)),
        "the proposal past the limit is refused at once"
    );
    // Proposals are handled in order: every earlier one is now either refused or taken.
    let mut accepted = Vec::new();
    for mut rx in rxs {
        match rx.try_recv() {
            Ok(Err(NodeError::Dropped)) => {}
            Ok(other) => panic!("a proposal that cannot commit was answered {other:?}"),
            Err(_) => accepted.push(rx),
        }
    }
    assert!(!accepted.is_empty());
    assert!(
        accepted.len() * chunk.len() <= MAX_UNCOMMITTED_BYTES as usize,
        "{} proposals of 4 MiB accepted",
        accepted.len()
    );
    assert!(l.status.is_leader(), "the leader kept its leadership");
    // Healed: what was accepted commits, and the leader takes proposals again.
    sink.cut.store(false, Ordering::Release);
    for rx in accepted {
        let got = wait(rx, Duration::from_secs(30));
        assert!(
            matches!(got, Some(Ok(_))),
            "an accepted proposal after the heal: {got:?}"
        );
    }
    let l = leader(&sink.handles);
    assert!(matches!(
        wait(l.propose(vec![b"after".to_vec()]), Duration::from_secs(10)),
        Some(Ok(_))
    ));
    for h in sink.handles.lock().unwrap().iter_mut() {
        h.take().unwrap().send(Msg::Stop);
    }
    for t in threads {
        t.join().unwrap();
    }
}
