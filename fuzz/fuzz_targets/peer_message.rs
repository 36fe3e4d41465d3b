//! Fuzzes what a node decodes from its peers. The input is read as peer frames (4-byte
//! big-endian length, then a protobuf body, as `raft-node/src/transport.rs` reads them,
//! with its `MAX_FRAME` limit): the first as a `PeerHello`, the rest as `PeerBatch` (each
//! message an `eraftpb::Message`), `ForwardRequest` (each argv decoded and parsed as the
//! leader does before proposing) and `ForwardResponse`. The whole input is also decoded as
//! each message type. Nothing may panic.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::Message;
use raft_node::proto::{Argv, ForwardRequest, ForwardResponse, PeerBatch, PeerHello};
use raft_node::transport::MAX_FRAME;
use resp::Command;

fn body(frame: &[u8]) {
    if let Ok(batch) = PeerBatch::parse_from_bytes(frame) {
        for m in &batch.msgs {
            if let Ok(m) = Message::parse_from_bytes(m) {
                let _ = (m.get_msg_type(), m.entries.len(), m.get_snapshot());
            }
        }
    }
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
    let _ = Message::parse_from_bytes(frame);
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
                let _ = (h.magic, h.from, h.to, h.kind, h.secret.len());
            }
            first = false;
        } else {
            body(frame);
        }
    }
});
