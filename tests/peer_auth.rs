//! The peer port matrix: connection kinds × no / wrong / right secret × a replayed
//! handshake, against a cluster started with only `--requirepass` (peers derive their
//! secret from it). Nothing a party without the secret sends is acted on; a holder of the
//! secret that is not a member cannot forward commands, vote or forge a removal (neither
//! the old removal-notice connection kind nor an append of a conf change is acted on); and afterwards the data, the membership and the term are as
//! before. One authenticated member connection is the control: it does get served.

mod common;
mod peer_common;

use std::time::Duration;

use common::{wait_for, Cluster};
use peer_common::{
    closed_by_peer, forward_reply, forward_request, handshake, raft_batch, replay, write_frame,
    KIND_FORWARD, KIND_PUBLISH, KIND_RAFT, KIND_SNAPSHOT,
};
use protobuf::Message as _;
use raft_node::proto::PeerHello;
use raft_node::raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, MessageType,
};
use raft_node::transport::derive_secret;
use redis::Commands;

const PASSWORD: &str = "client-pw";

fn vote(from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgRequestVote);
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = u64::MAX / 2;
    m.log_term = term;
    m
}

/// An append from `from` of an entry removing `to`, committing it.
fn removal(from: u64, to: u64, term: u64, last: u64) -> Message {
    let mut cc = ConfChangeV2::default();
    let mut ch = ConfChangeSingle {
        node_id: to,
        ..Default::default()
    };
    ch.set_change_type(ConfChangeType::RemoveNode);
    cc.mut_changes().push(ch);
    let mut e = Entry {
        index: last + 1,
        term,
        data: cc.write_to_bytes().expect("encode").into(),
        ..Default::default()
    };
    e.set_entry_type(EntryType::EntryConfChangeV2);
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = last;
    m.log_term = term;
    m.commit = last + 1;
    m.entries = vec![e].into();
    m
}

fn term_of(cl: &Cluster, i: usize) -> u64 {
    cl.info_field(i, "raft_term")
        .and_then(|t| t.parse().ok())
        .expect("raft_term")
}

#[test]
fn the_peer_port_acts_only_on_members_that_prove_the_secret() {
    let cl = Cluster::start_with(3, &["--requirepass", PASSWORD]);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    let (lid, fid) = (cl.nodes[leader].id, cl.nodes[follower].id);
    let other = cl.nodes[(leader + 2) % 3].id;
    let (lport, fport) = (cl.nodes[leader].raft_port, cl.nodes[follower].raft_port);
    let mut c = cl.client(leader);
    let _: () = c.set("keep", "1").expect("SET");
    let term = term_of(&cl, follower);
    let right = derive_secret(PASSWORD.as_bytes());

    // 1. No secret and a wrong one (the password itself is not the peer secret either):
    //    every kind is refused at the handshake, claiming to be a member.
    for secret in [&b""[..], b"wrong", PASSWORD.as_bytes()] {
        for kind in [KIND_RAFT, KIND_FORWARD, KIND_SNAPSHOT, KIND_PUBLISH] {
            let got = handshake(lport, other, lid, kind, secret);
            assert!(got.is_err(), "kind {kind} accepted with a bad secret");
        }
    }

    // 2. The old removal notice (connection kind 4) and an old-protocol hello are refused
    //    even with the right secret.
    assert!(
        handshake(fport, lid, fid, 4, &right).is_err(),
        "removal notice kind accepted"
    );
    let v1 = PeerHello {
        magic: 0x524b_5631,
        from: lid,
        to: fid,
        kind: KIND_RAFT,
        ..Default::default()
    };
    let mut s = peer_common::connect(fport);
    write_frame(&mut s, &v1.write_to_bytes().expect("encode")).expect("write");
    assert!(closed_by_peer(&mut s), "v1 hello accepted");

    // 3. Replay: a recorded handshake of a member is useless on a new connection.
    let (s, rec) = handshake(lport, other, lid, KIND_FORWARD, &right).expect("record");
    drop(s);
    let mut s = replay(lport, &rec);
    let _ = write_frame(&mut s, &forward_request(1, &["FLUSHALL"]));
    assert!(closed_by_peer(&mut s), "replayed handshake accepted");

    // 4. The right secret, but not a member (id 9): forwarded writes and admin commands
    //    are refused (certainly not applied), votes with a huge term are dropped.
    let (mut s, _) = handshake(lport, 9, lid, KIND_FORWARD, &right).expect("authenticated");
    for (id, args) in [
        (1, vec!["FLUSHALL"]),
        (2, vec!["SET", "evil", "1"]),
        (3, vec!["RAFT.NODE", "ADD", "9", "127.0.0.1:1"]),
    ] {
        write_frame(&mut s, &forward_request(id, &args)).expect("write");
        let reply = forward_reply(&mut s).expect("reply").unwrap_or_default();
        assert!(
            reply.contains("not a member"),
            "{args:?} from a non-member: {reply:?}"
        );
    }
    let (mut s, _) = handshake(fport, 9, fid, KIND_RAFT, &right).expect("authenticated");
    write_frame(&mut s, &raft_batch(&[vote(9, fid, term + 100)])).expect("write");
    // A forged "you were removed": an append of a conf change removing the follower,
    // committed at once, from a non-member.
    let last: u64 = cl
        .info_field(follower, "raft_last_log_index")
        .and_then(|n| n.parse().ok())
        .expect("last index");
    write_frame(&mut s, &raft_batch(&[removal(9, fid, term, last)])).expect("write");
    wait_for(Duration::from_secs(10), "the vote to be filtered", || {
        let n: u64 = cl
            .info_field(follower, "raft_msgs_filtered")?
            .parse()
            .ok()?;
        (n > 0).then_some(())
    });

    // 5. Control: a member proving the secret is served (so the refusals above are real).
    let (mut s, _) = handshake(lport, other, lid, KIND_FORWARD, &right).expect("member");
    write_frame(&mut s, &forward_request(7, &["SET", "control", "yes"])).expect("write");
    let reply = forward_reply(&mut s).expect("reply").unwrap_or_default();
    assert!(reply.starts_with("+OK"), "member's forward: {reply:?}");

    // Nothing else changed: data, membership, term; every node still serves.
    for i in 0..3 {
        let mut c = cl.client(i);
        assert_eq!(
            c.get::<_, Option<String>>("keep").expect("GET"),
            Some("1".into())
        );
        assert_eq!(c.get::<_, Option<String>>("evil").expect("GET"), None);
        assert_eq!(cl.raft_nodes(i).len(), 3, "membership of node {}", i + 1);
        assert!(
            term_of(&cl, i) < term + 100,
            "node {} took the stranger's term",
            i + 1
        );
    }
    let refused: u64 = cl
        .info_field(leader, "raft_peer_handshakes_refused")
        .and_then(|n| n.parse().ok())
        .expect("handshake counter");
    assert!(refused >= 10, "refused handshakes counted: {refused}");
    // The leader's INFO shows its link to each peer, up.
    let link = cl
        .info_field(leader, &format!("raft_peer_{fid}"))
        .expect("peer link line");
    assert!(
        link.contains("connected=1") && link.contains("sent="),
        "{link}"
    );
}

#[test]
fn a_cluster_secret_from_a_file_works_and_is_never_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.secret");
    std::fs::write(&file, "file-secret-1234\n").expect("write secret");
    let path = file.to_str().expect("utf8").to_string();
    let cl = Cluster::start_with(3, &["--cluster-secret-file", &path]);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    // Writes through a follower are forwarded over authenticated connections.
    let mut c = cl.client(follower);
    let _: () = c.set("k", "v").expect("SET through a follower");
    let lport = cl.nodes[leader].raft_port;
    let lid = cl.nodes[leader].id;
    let from = cl.nodes[follower].id;
    assert!(handshake(lport, from, lid, KIND_RAFT, b"file-secret-1234").is_ok());
    assert!(handshake(lport, from, lid, KIND_RAFT, b"file-secret-1234\n").is_err());
    for n in &cl.nodes {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        assert!(
            !log.contains("file-secret"),
            "node {} logged the secret",
            n.id
        );
    }
}

#[test]
fn an_open_peer_port_without_a_secret_is_warned_about_once() {
    let open = format!("0.0.0.0:{}", common::free_port());
    let cl = Cluster::start_with(1, &["--peer-bind", &open]);
    cl.wait_leader();
    let log = std::fs::read_to_string(&cl.nodes[0].log).unwrap_or_default();
    assert_eq!(
        log.matches("PEER PORT NOT AUTHENTICATED").count(),
        1,
        "{log}"
    );
    drop(cl);
    // With a password (so a derived peer secret) there is nothing to warn about.
    let cl = Cluster::start_with(1, &["--peer-bind", &open, "--requirepass", "pw"]);
    cl.wait_leader();
    let log = std::fs::read_to_string(&cl.nodes[0].log).unwrap_or_default();
    assert!(!log.contains("PEER PORT NOT AUTHENTICATED"), "{log}");
}
