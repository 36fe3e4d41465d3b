//! A group whose apply waits (its next entry must wait for another group) while its log goes
//! on committing keeps the waiting entries in bounded memory: three in-process nodes whose
//! state machines hold the group's first entry back commit ~24 MiB of entries behind it;
//! every replica's in-memory backlog stays within `BACKLOG_MAX_BYTES` (the rest is read
//! from the log again), the leader keeps its leadership and term throughout, and once the
//! wait ends every entry applies, in order, on every replica.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft_node::peer::{BACKLOG_MAX_BYTES, BACKLOG_MAX_ENTRIES};
use raft_node::{Msg, NodeConfig, NodeHandle, StateMachine};
use rocksdb::{WriteBatch, DB};

use common::{wait_until, Handles, Sink};

/// The entry that waits while [`Shared::hold`] is set.
const HOLD: &[u8] = b"HOLD";
/// Entries committed behind it: more than the window holds, in count and in bytes.
const N: u64 = 1500;
const PAYLOAD: usize = 16 << 10;

#[derive(Default)]
struct Shared {
    hold: AtomicBool,
    /// Commands applied out of order, on any replica.
    out_of_order: Mutex<Vec<String>>,
}

/// Checks that the numbered commands apply in order; replies with each one's number.
struct OrderSm {
    id: u64,
    applied: u64,
    next: u64,
    shared: Arc<Shared>,
}

impl StateMachine for OrderSm {
    type Output = u64;
    fn apply(&mut self, _: &mut WriteBatch, index: u64, _: i64, commands: &[Vec<u8>]) -> Vec<u64> {
        commands
            .iter()
            .map(|c| {
                if c[..] == *HOLD {
                    return 0;
                }
                let n = c[..8].try_into().map(u64::from_be_bytes).unwrap_or(0);
                if n != self.next + 1 {
                    let why = format!(
                        "node {} entry {index}: command {n} after {}",
                        self.id, self.next
                    );
                    self.shared.out_of_order.lock().unwrap().push(why);
                }
                self.next = n;
                n
            })
            .collect()
    }
    fn may_wait(cmd: &[u8]) -> bool {
        cmd == HOLD
    }
    fn must_wait(&self, _: &[Vec<u8>]) -> bool {
        self.shared.hold.load(Ordering::Acquire)
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
    shared: &Arc<Shared>,
) -> std::thread::JoinHandle<()> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let path = dir.join(format!("n{id}"));
    let db = Arc::new(DB::open_cf(&opts, path, ["default", raft_node::CF_RAFT]).unwrap());
    let sm = OrderSm {
        id,
        applied: 0,
        next: 0,
        shared: shared.clone(),
    };
    let cfg = NodeConfig {
        id,
        voters: vec![1, 2, 3],
        tick: Duration::from_millis(10),
        election_tick: 20,
        heartbeat_tick: 2,
        // Every proposal its own entry.
        max_entry_bytes: 1,
        snap_dir: dir.join(format!("n{id}-snap")),
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let (h, th) = raft_node::start(cfg, db, sm, Sink(handles.clone()), &logger).unwrap();
    handles.lock().unwrap()[id as usize - 1] = Some(h);
    th
}

fn all_handles(handles: &Handles) -> Vec<NodeHandle<u64>> {
    handles.lock().unwrap().iter().flatten().cloned().collect()
}

#[test]
fn a_waiting_apply_keeps_its_committed_backlog_bounded_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let handles: Handles = Arc::new(Mutex::new(vec![None, None, None]));
    let shared = Arc::new(Shared::default());
    let threads: Vec<_> = (1..=3)
        .map(|id| start(id, dir.path(), &handles, &shared))
        .collect();
    wait_until("a leader", || {
        all_handles(&handles).iter().any(|h| h.status.is_leader())
    });
    let all = all_handles(&handles);
    let l = all.iter().find(|h| h.status.is_leader()).unwrap().clone();
    let term = l.status.term.load(Ordering::Acquire);
    shared.hold.store(true, Ordering::Release);
    let mut rxs = vec![l.propose(vec![HOLD.to_vec()])];
    for n in 1..=N {
        let mut cmd = n.to_be_bytes().to_vec();
        cmd.resize(PAYLOAD, b'x');
        rxs.push(l.propose(vec![cmd]));
    }
    // Everything commits on every replica while the first entry waits.
    let max_bytes = AtomicU64::new(0);
    let observe = || {
        for h in &all {
            let b = h.status.apply_backlog_bytes.load(Ordering::Relaxed);
            max_bytes.fetch_max(b, Ordering::Relaxed);
        }
    };
    wait_until("every entry committed and waiting on every replica", || {
        observe();
        all.iter()
            .all(|h| h.status.apply_backlog.load(Ordering::Acquire) > N)
    });
    // A few more rounds of ticks and heartbeats with the apply still waiting.
    let ticks = Instant::now();
    wait_until("a while of waiting", || {
        observe();
        ticks.elapsed() > Duration::from_millis(300)
    });
    // The waiting entry is the last committed but N.
    let held_at = l.status.commit.load(Ordering::Acquire) - N;
    assert!(
        all.iter()
            .all(|h| h.status.applied.load(Ordering::Acquire) < held_at),
        "an entry applied past the waiting one"
    );
    let bound = (BACKLOG_MAX_BYTES + PAYLOAD + 64) as u64;
    let seen = max_bytes.load(Ordering::Relaxed);
    assert!(
        seen <= bound,
        "{seen} bytes of waiting entries in memory (bound {bound}; {} MiB committed behind the wait)",
        (N as usize * PAYLOAD) >> 20
    );
    assert!(N as usize > BACKLOG_MAX_ENTRIES && N as usize * PAYLOAD > 2 * BACKLOG_MAX_BYTES);
    // The wait ends: everything applies, in order, everywhere; the leader kept its term.
    shared.hold.store(false, Ordering::Release);
    let mut outs = Vec::new();
    for mut rx in rxs.split_off(1) {
        wait_until("a reply", || match rx.try_recv() {
            Ok(r) => {
                outs.extend(r.unwrap());
                true
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => false,
            Err(e) => panic!("reply channel closed: {e}"),
        });
    }
    assert_eq!(outs, (1..=N).collect::<Vec<_>>());
    let mut hold = rxs.pop().unwrap();
    assert_eq!(hold.try_recv().unwrap().unwrap(), vec![0]);
    let commit = l.status.commit.load(Ordering::Acquire);
    wait_until("every replica applied everything", || {
        all.iter()
            .all(|h| h.status.applied.load(Ordering::Acquire) >= commit)
    });
    assert_eq!(*shared.out_of_order.lock().unwrap(), Vec::<String>::new());
    for h in &all {
        assert!(
            h.status.apply_refills.load(Ordering::Relaxed) > 0,
            "node {} never read waiting entries back from the log",
            h.status.id
        );
        assert_eq!(h.status.apply_backlog_bytes.load(Ordering::Relaxed), 0);
    }
    assert!(l.status.is_leader() && l.status.term.load(Ordering::Acquire) == term);
    for h in handles.lock().unwrap().iter_mut() {
        h.take().unwrap().send(Msg::Stop);
    }
    for t in threads {
        t.join().unwrap();
    }
}
