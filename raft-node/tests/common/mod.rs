//! Shared pieces of the in-process raft-node tests: the nodes' handles and a message sink
//! that hands each Raft message straight to its addressee's handle, and polling helpers.
// Each test crate including this module uses only some of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft_node::node::MessageSink;
use raft_node::raft::eraftpb::Message;
use raft_node::{Msg, NodeHandle};

/// The nodes' handles by id - 1 (`None`: not running).
pub type Handles = Arc<Mutex<Vec<Option<NodeHandle<u64>>>>>;

/// Delivers each message (keepalives left out) to its addressee's handle.
#[derive(Clone)]
pub struct Sink(pub Handles);

impl MessageSink for Sink {
    fn send(&self, msgs: Vec<(u64, Message)>) {
        let hs = self.0.lock().unwrap();
        for (g, m) in msgs {
            if g == raft_node::driver::KEEPALIVE_GROUP {
                continue;
            }
            if let Some(Some(h)) = hs.get(m.to as usize - 1) {
                h.send(Msg::Raft(Box::new(m)));
            }
        }
    }
}

/// Polls `f` until it holds; fails the test after a minute.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The value `rx` resolves to (polled: the tests run no async runtime).
pub fn block<T>(mut rx: tokio::sync::oneshot::Receiver<T>) -> T {
    let mut out = None;
    wait_until("a reply", || match rx.try_recv() {
        Ok(v) => {
            out = Some(v);
            true
        }
        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => false,
        Err(e) => panic!("reply channel closed: {e}"),
    });
    out.expect("a reply")
}

/// Copies the files of snapshot message `m` from the sender's snapshot directory `from`
/// to the receiver's `to`, as the transport fetches them before it delivers `m`.
pub fn fetch_snapshot_files(m: &Message, from: &std::path::Path, to: &std::path::Path) {
    let meta = m.get_snapshot().get_metadata();
    let name = raft_node::snap::done_name(meta.term, meta.index);
    let (src, dst) = (from.join(&name), to.join(&name));
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}
