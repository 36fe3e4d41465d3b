//! Authentication: `--requirepass` gates clients (AUTH, HELLO AUTH, -NOAUTH, -WRONGPASS) and
//! `--cluster-secret` gates peers (challenge-response, see tests/peer_auth.rs for the
//! whole matrix); the cluster keeps replicating with both set.

mod common;
mod peer_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{try_client, Cluster};
use protobuf::Message as _;
use raft_node::proto::PeerHello;
use redis::Commands;

fn raw(port: u16, req: &[u8], want_bytes: usize) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(req).expect("write");
    let mut got = vec![0u8; want_bytes];
    let mut n = 0;
    while n < want_bytes {
        match s.read(&mut got[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    String::from_utf8_lossy(&got[..n]).into_owned()
}

#[test]
fn clients_must_authenticate() {
    let cl = Cluster::start_with(
        3,
        &["--requirepass", "s3cret", "--cluster-secret", "peer-secret"],
    );
    cl.wait_leader();
    let port = cl.port(1);
    let mut anon = try_client(port).expect("connect without password");
    let e = anon.get::<_, Option<String>>("k").unwrap_err();
    assert_eq!(e.code(), Some("NOAUTH"), "{e}");
    let e = redis::cmd("AUTH")
        .arg("nope")
        .query::<String>(&mut anon)
        .unwrap_err();
    assert_eq!(e.code(), Some("WRONGPASS"), "{e}");
    let e = redis::cmd("AUTH")
        .arg("someone")
        .arg("s3cret")
        .query::<String>(&mut anon)
        .unwrap_err();
    assert_eq!(e.code(), Some("WRONGPASS"), "{e}");
    // Unknown commands are reported before the auth check, as Redis does.
    let e = redis::cmd("NOSUCH").query::<String>(&mut anon).unwrap_err();
    assert!(e.to_string().contains("unknown command"), "{e}");
    let ok: String = redis::cmd("AUTH")
        .arg("s3cret")
        .query(&mut anon)
        .expect("AUTH");
    assert_eq!(ok, "OK");
    let _: () = anon.set("k", "v").expect("SET after AUTH");
    // Writes through a follower reach every node: peers share the cluster secret.
    for i in 0..3 {
        let mut c = cl.client(i);
        assert_eq!(
            c.get::<_, Option<String>>("k").expect("GET"),
            Some("v".into())
        );
    }
    // HELLO without AUTH is refused before authentication; HELLO AUTH authenticates.
    let refused = raw(port, b"HELLO 3\r\n", 7);
    assert!(refused.starts_with("-NOAUTH"), "{refused}");
    let hello = raw(port, b"HELLO 3 AUTH default s3cret\r\nGET k\r\n", 1);
    assert_eq!(hello, "%");
    // Neither secret appears in the logs, not even after failed attempts.
    for n in &cl.nodes {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        assert!(!log.is_empty(), "node {} wrote no log", n.id);
        for secret in ["s3cret", "peer-secret", "nope"] {
            assert!(!log.contains(secret), "node {} logged {secret:?}", n.id);
        }
    }
}

#[test]
fn peers_without_the_cluster_secret_are_refused() {
    let cl = Cluster::start_with(3, &["--cluster-secret", "peer-secret"]);
    cl.wait_leader();
    let raft_port = cl.nodes[0].raft_port;
    // The secret is never sent: a peer proves it with a MAC over the node's fresh nonce.
    // Without it (or with the wrong one) the node closes the connection after the proof.
    for secret in [&b"wrong"[..], b""] {
        for kind in [
            peer_common::KIND_RAFT,
            peer_common::KIND_FORWARD,
            peer_common::KIND_SNAPSHOT,
        ] {
            let got = peer_common::handshake(raft_port, 2, 1, kind, secret);
            assert!(got.is_err(), "kind {kind} accepted without the secret");
        }
    }
    // The old protocol, which sent the secret in clear, is refused too.
    let v1 = PeerHello {
        magic: 0x524b_5631,
        from: 2,
        to: 1,
        kind: 1,
        ..Default::default()
    };
    let mut s = peer_common::connect(raft_port);
    peer_common::write_frame(&mut s, &v1.write_to_bytes().expect("encode hello")).expect("write");
    assert!(peer_common::closed_by_peer(&mut s));
    // With it, the handshake completes.
    assert!(
        peer_common::handshake(raft_port, 2, 1, peer_common::KIND_RAFT, b"peer-secret").is_ok()
    );
    // The secret never appears in the logs.
    let mut c = cl.client(0);
    let _: () = c.set("x", "1").expect("SET");
    for n in &cl.nodes {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        assert!(
            !log.contains("peer-secret"),
            "secret logged by node {}",
            n.id
        );
    }
}
