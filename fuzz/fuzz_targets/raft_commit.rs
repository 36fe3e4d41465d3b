//! Fuzzes the apply path's decoding: a committed entry's payload as a `RaftCommit`, each
//! of its commands as an `Argv`, then `Command::parse_replicated` on the argument vector,
//! as `src/sm.rs` does on every replica. The same bytes are also decoded as a raft-rs
//! `Entry` (what the Raft log stores) whose data goes through the same path. Decoding
//! and parsing must not panic, and a decoded message must re-encode and decode to itself.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::Entry;
use raft_node::proto::{Argv, RaftCommit};
use resp::Command;

fn apply_payload(data: &[u8]) {
    let Ok(commit) = RaftCommit::parse_from_bytes(data) else {
        return;
    };
    let again = commit.write_to_bytes().expect("re-encode RaftCommit");
    assert_eq!(
        RaftCommit::parse_from_bytes(&again).expect("decode re-encoded"),
        commit
    );
    for c in &commit.commands {
        let Ok(argv) = Argv::parse_from_bytes(c) else {
            continue;
        };
        let args: Vec<Bytes> = argv.args.into_iter().map(Bytes::from).collect();
        if let Ok(cmd) = Command::parse_replicated(&args) {
            let _ = (cmd.kind(), cmd.name());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    apply_payload(data);
    if let Ok(e) = Entry::parse_from_bytes(data) {
        apply_payload(&e.data);
    }
});
