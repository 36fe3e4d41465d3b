//! Shared pieces of the in-process raft-node tests: the nodes' handles and a message sink
//! that hands each Raft message straight to its addressee's handle.

use std::sync::{Arc, Mutex};

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
