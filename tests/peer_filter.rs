//! A peer that can authenticate but sends raft-rs a message it would panic on (a
//! heartbeat whose commit index lies beyond the receiver's log): the message is dropped
//! before `step` and the node keeps serving. And a panic in any thread stops the process
//! with a CRIT line and a non-zero exit status, instead of leaving a zombie.

mod common;
mod peer_common;

use std::time::Duration;

use common::{wait_for, Cluster};
use peer_common::{handshake, raft_batch, write_frame, KIND_RAFT};
use raft_node::raft::eraftpb::{Message, MessageType};
use redis::Commands;

const SECRET: &str = "filter-secret";

#[test]
fn a_heartbeat_committing_beyond_the_log_is_dropped_and_the_node_serves_on() {
    let cl = Cluster::start_with(3, &["--cluster-secret", SECRET]);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    let (lid, fid) = (cl.nodes[leader].id, cl.nodes[follower].id);
    let term: u64 = cl
        .info_field(follower, "raft_term")
        .and_then(|t| t.parse().ok())
        .expect("term");
    let last: u64 = cl
        .info_field(follower, "raft_last_log_index")
        .and_then(|t| t.parse().ok())
        .expect("last index");
    // A buggy (or compromised) member, here posing as the leader itself.
    let (mut s, _) = handshake(
        cl.nodes[follower].raft_port,
        lid,
        fid,
        KIND_RAFT,
        SECRET.as_bytes(),
    )
    .expect("authenticated");
    let mut hb = Message::default();
    hb.set_msg_type(MessageType::MsgHeartbeat);
    hb.from = lid;
    hb.to = fid;
    hb.term = term;
    hb.commit = last + 1_000_000;
    write_frame(&mut s, &raft_batch(&[hb])).expect("write");
    wait_for(
        Duration::from_secs(10),
        "the heartbeat to be filtered",
        || {
            let n: u64 = cl
                .info_field(follower, "raft_msgs_filtered")?
                .parse()
                .ok()?;
            (n > 0).then_some(())
        },
    );
    // The follower is alive and replicating: a write through it commits and it reads it.
    let mut c = cl.client(follower);
    let _: () = c.set("after", "ok").expect("SET through the follower");
    assert_eq!(
        c.get::<_, Option<String>>("after").expect("GET"),
        Some("ok".into())
    );
    let mut cl = cl;
    assert!(cl.try_wait(follower).is_none(), "the follower exited");
    let log = std::fs::read_to_string(&cl.nodes[follower].log).unwrap_or_default();
    assert!(
        log.contains("heartbeat commit beyond the log"),
        "drop not logged"
    );
}

#[test]
fn a_panicking_thread_stops_the_process_with_a_crit_line() {
    let mut cl = Cluster::start(1);
    cl.wait_leader();
    let trigger = cl.dir.path().join("panic-now");
    cl.nodes[0].env = vec![(
        "RAFTKV_FAILPOINT".into(),
        format!("panic-when-exists:{}", trigger.display()),
    )];
    cl.restart(0);
    cl.wait_leader();
    std::fs::write(&trigger, b"").expect("create trigger");
    let status = cl.wait_exit(0, Duration::from_secs(10));
    assert!(!status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(&cl.nodes[0].log).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains("panic, stopping the process"))
        .unwrap_or_else(|| panic!("no panic line in the log:\n{log}"));
    assert!(line.contains("CRIT"), "{line}");
    assert!(line.contains("failpoint"), "thread not named: {line}");
}
