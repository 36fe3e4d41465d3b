//! Fuzzes what a node decodes from its peers. The input is read as peer frames (4-byte
//! big-endian length, then a protobuf body, as `raft-node/src/transport.rs` reads them,
//! with its `MAX_FRAME` limit): the first as a `PeerHello`, the rest as `PeerBatch` (each
//! message an `eraftpb::Message`), `ForwardRequest` (each argv decoded and parsed as the
//! leader does before proposing) and `ForwardResponse`. The whole input is also decoded as
//! each message type. Every decoded raft message that passes `raft_node::filter::check`
//! (the check the Ready loop runs before `step`) is stepped into a real `RawNode` (a
//! follower with a short log, then a leader of three voters): raft-rs `fatal!`s
//! (panics) on some messages, so a crash here is a message the filter lets through that
//! would kill a node. Nothing may panic.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode};
use raft_node::proto::{
    Argv, ForwardRequest, ForwardResponse, PeerBatch, PeerChallenge, PeerHello, PeerProof,
};
use raft_node::transport::MAX_FRAME;
use resp::Command;

/// Node 1 of voters {1, 2, 3} with entries 1..=5 of term 2 (commit 3): a follower, or
/// (campaigned and elected) the leader.
fn node(leader: bool) -> RawNode<MemStorage> {
    let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
    let ents: Vec<Entry> = (1..=5)
        .map(|i| {
            let mut e = Entry::default();
            e.index = i;
            e.term = 2;
            e
        })
        .collect();
    let _ = store.wl().append(&ents);
    let mut hs = HardState::default();
    hs.term = 2;
    hs.commit = 3;
    store.wl().set_hardstate(hs);
    let cfg = Config {
        id: 1,
        applied: 0,
        ..Default::default()
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let Ok(mut raw) = RawNode::new(&cfg, store, &log) else {
        panic!("cannot build the fuzz node");
    };
    if leader {
        raw.raft.become_candidate();
        raw.raft.become_leader();
    }
    raw
}

/// Steps `msgs` (as the Ready loop does: filter first) into a follower and a leader.
fn step_all(msgs: &[Message]) {
    for leader in [false, true] {
        let mut raw = node(leader);
        for m in msgs {
            let mut m = m.clone();
            m.to = 1;
            if raft_node::filter::check(&raw.raft, &m).is_ok() {
                let _ = raw.step(m);
            }
        }
        if raw.has_ready() {
            // Persist and apply as a real node would, so the next checks see real state.
            let rd = raw.ready();
            if !rd.snapshot().is_empty() {
                let _ = raw.mut_store().wl().apply_snapshot(rd.snapshot().clone());
            }
            let _ = raw.mut_store().wl().append(rd.entries());
            if let Some(hs) = rd.hs() {
                raw.mut_store().wl().set_hardstate(hs.clone());
            }
            let light = raw.advance(rd);
            if let Some(c) = light.commit_index() {
                raw.mut_store().wl().mut_hard_state().commit = c;
            }
            raw.advance_apply();
        }
    }
}

fn body(frame: &[u8]) {
    if let Ok(batch) = PeerBatch::parse_from_bytes(frame) {
        let msgs: Vec<Message> = batch
            .msgs
            .iter()
            .take(16)
            .filter_map(|m| Message::parse_from_bytes(m).ok())
            .collect();
        step_all(&msgs);
    }
    let _ = (
        PeerChallenge::parse_from_bytes(frame),
        PeerProof::parse_from_bytes(frame),
    );
    if let Ok(req) = ForwardRequest::parse_from_bytes(frame) {
        for a in &req.argvs {
            if let Ok(argv) = Argv::parse_from_bytes(a) {
                let args: Vec<Bytes> = argv.args.into_iter().map(Bytes::from).collect();
                if let Ok(cmd) = Command::parse(&args) {
                    let _ = cmd.kind();
                }
            }
        }
    }
    let _ = ForwardResponse::parse_from_bytes(frame);
    if let Ok(m) = Message::parse_from_bytes(frame) {
        step_all(&[m]);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = PeerHello::parse_from_bytes(data);
    body(data);
    let mut rest = data;
    let mut first = true;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_FRAME || rest.len() - 4 < len {
            break;
        }
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        if first {
            if let Ok(h) = PeerHello::parse_from_bytes(frame) {
                let _ = (h.magic, h.from, h.to, h.kind, h.nonce.len());
            }
            first = false;
        } else {
            body(frame);
        }
    }
});
