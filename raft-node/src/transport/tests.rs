//! Transport tests over real loopback sockets: the handshake gates every kind, a replayed
//! hello is refused, the hello and connection caps hold, oversized messages are counted
//! on both sides without breaking the link, large batches are split, and a newer stream
//! of a snapshot cuts off an older one, Pub/Sub messages reach peers and a dead peer only
//! costs counted drops.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Entry, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::auth::{self, Side, KIND_RAFT, KIND_SNAPSHOT};
use super::frame::{read_frame, write_frame, MAX_FRAME, MAX_HELLO};
use super::{Transport, TransportConfig};
use crate::node::MessageSink;
use crate::proto::{
    PeerBatch, PeerChallenge, PeerHello, PeerProof, SnapshotChunk, SnapshotDescriptor,
    SnapshotFile, SnapshotOffer, SnapshotResume,
};

const SECRET: &[u8] = b"test-secret";

struct Node {
    t: Arc<Transport>,
    addr: String,
    rx: mpsc::UnboundedReceiver<Message>,
    _dir: tempfile::TempDir,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Node `id` listening on a free port, peers known by address.
async fn node(id: u64, peers: HashMap<u64, String>, max_inbound: usize) -> Node {
    node_idle(id, peers, max_inbound, Duration::ZERO).await
}

async fn node_idle(
    id: u64,
    peers: HashMap<u64, String>,
    max_inbound: usize,
    idle: Duration,
) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut peers = peers;
    peers.insert(id, addr.clone());
    let dir = tempfile::tempdir().unwrap();
    let t = Transport::start(
        TransportConfig {
            id,
            peers,
            secret: SECRET.to_vec(),
            snap_dir: dir.path().to_path_buf(),
            snapshot_chunk: 4096,
            snapshot_rate: 0,
            max_inbound,
            idle,
        },
        Arc::new(|_| {}),
        Arc::new(|_, _, _| {}),
        &logger(),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(t.clone().serve(
        listener,
        Arc::new(move |_group, m| {
            let _ = tx.send(m);
        }),
        Arc::new(|_, _, _, _| Box::pin(async { None })),
    ));
    Node {
        t,
        addr,
        rx,
        _dir: dir,
    }
}

fn heartbeat(from: u64, to: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = 1;
    m
}

fn append_with(from: u64, to: u64, bytes: usize) -> Message {
    let mut m = heartbeat(from, to);
    m.set_msg_type(MessageType::MsgAppend);
    let e = Entry {
        index: 1,
        term: 1,
        data: vec![1u8; bytes].into(),
        ..Default::default()
    };
    m.entries = vec![e].into();
    m
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Message>) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Whether the server closed `s` (EOF or reset) within a few seconds.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(8), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Raft batch frame holding `msgs`.
fn batch(msgs: &[Message]) -> Vec<u8> {
    PeerBatch {
        group_id: 1,
        msgs: msgs.iter().map(|m| m.write_to_bytes().unwrap()).collect(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

/// Opens an authenticated connection of `kind` to `addr` as node `from`.
async fn authenticated(addr: &str, from: u64, to: u64, kind: u32, secret: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let hello = PeerHello {
        from,
        to,
        kind,
        ..Default::default()
    };
    let (mut r, mut w) = s.split();
    auth::initiate(&mut r, &mut w, hello, secret).await.unwrap();
    s
}

#[tokio::test]
async fn messages_flow_between_nodes_with_the_same_secret() {
    let mut b = node(2, HashMap::new(), 0).await;
    let a = node(1, HashMap::from([(2, b.addr.clone())]), 0).await;
    a.t.sink().send(vec![(1, heartbeat(1, 2))]);
    let got = recv(&mut b.rx).await.expect("heartbeat delivered");
    assert_eq!(
        (got.from, got.get_msg_type()),
        (1, MessageType::MsgHeartbeat)
    );
    let p = a.t.stats.peer(2);
    assert_eq!(p.sent.load(Ordering::Relaxed), 1);
    assert!(p.connected.load(Ordering::Relaxed));
    assert!(a.t.info_lines().contains("raft_peer_2:addr="));
}

#[tokio::test]
async fn a_wrong_secret_or_a_replayed_hello_delivers_nothing() {
    let mut b = node(2, HashMap::new(), 0).await;
    // Wrong secret: the initiator sees the responder's MAC fail and gives up.
    let mut s = TcpStream::connect(&b.addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let hello = PeerHello {
        from: 1,
        to: 2,
        kind: KIND_RAFT,
        ..Default::default()
    };
    assert!(auth::initiate(&mut r, &mut w, hello.clone(), b"wrong")
        .await
        .is_err());
    // Record a valid handshake, then replay its hello and proof on a new connection.
    let mut hello = hello;
    hello.magic = auth::MAGIC;
    hello.nonce = auth::nonce().unwrap();
    let hb = hello.write_to_bytes().unwrap();
    let mut s1 = TcpStream::connect(&b.addr).await.unwrap();
    write_frame(&mut s1, &hb).await.unwrap();
    let ch =
        PeerChallenge::parse_from_bytes(&read_frame(&mut s1, MAX_HELLO).await.unwrap()).unwrap();
    let proof = PeerProof {
        mac: auth::mac(SECRET, Side::Initiator, &hb, &ch.nonce),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap();
    write_frame(&mut s1, &proof).await.unwrap();
    drop(s1);
    let mut s2 = TcpStream::connect(&b.addr).await.unwrap();
    write_frame(&mut s2, &hb).await.unwrap();
    let _ = read_frame(&mut s2, MAX_HELLO).await.unwrap();
    write_frame(&mut s2, &proof).await.unwrap();
    write_frame(&mut s2, &batch(&[heartbeat(1, 2)]))
        .await
        .unwrap();
    assert!(closed(&mut s2).await, "replayed handshake accepted");
    assert!(b.rx.try_recv().is_err(), "a message got through");
    assert!(b.t.stats.handshakes_refused.load(Ordering::Relaxed) >= 1);
    drop(s);
}

#[tokio::test]
async fn a_huge_hello_is_refused_without_reading_it() {
    let b = node(2, HashMap::new(), 0).await;
    let mut s = TcpStream::connect(&b.addr).await.unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await, "connection kept open");
    assert_eq!(b.t.stats.handshakes_refused.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn inbound_connections_are_capped() {
    let b = node(2, HashMap::new(), 2).await;
    let _s1 = authenticated(&b.addr, 1, 2, KIND_RAFT, SECRET).await;
    let _s2 = authenticated(&b.addr, 3, 2, KIND_RAFT, SECRET).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s3 = authenticated(&b.addr, 4, 2, KIND_RAFT, SECRET).await;
    assert!(closed(&mut s3).await, "third connection accepted");
    assert_eq!(b.t.stats.conns_refused.load(Ordering::Relaxed), 1);
}

/// Strangers holding many half-open connections (never finishing the handshake) cannot
/// lock a member out: they do not count toward the inbound cap, and beyond
/// `MAX_HANDSHAKES` the oldest is closed. Before, eight of them filled a cap of eight and
/// every member's connection was refused while they stayed open.
#[tokio::test]
async fn half_open_connections_cannot_lock_a_member_out() {
    let mut b = node(2, HashMap::new(), 8).await;
    let mut idle = Vec::new();
    for _ in 0..super::handshake::MAX_HANDSHAKES + 8 {
        idle.push(TcpStream::connect(&b.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.t.stats.handshakes_evicted.load(Ordering::Relaxed) >= 8);
    let mut s = authenticated(&b.addr, 1, 2, KIND_RAFT, SECRET).await;
    write_frame(&mut s, &batch(&[heartbeat(1, 2)]))
        .await
        .unwrap();
    let got = recv(&mut b.rx).await.expect("the member's message arrives");
    assert_eq!(got.get_msg_type(), MessageType::MsgHeartbeat);
    assert_eq!(b.t.stats.conns_refused.load(Ordering::Relaxed), 0);
    // The oldest half-open connections were closed to make room.
    assert!(
        closed(&mut idle[0]).await,
        "oldest half-open connection kept"
    );
}

#[tokio::test]
async fn an_oversized_message_is_counted_and_the_link_goes_on() {
    let mut b = node(2, HashMap::new(), 0).await;
    let a = node(1, HashMap::from([(2, b.addr.clone())]), 0).await;
    // Sender side: never sent, counted, and the next message still travels.
    a.t.sink().send(vec![
        (1, append_with(1, 2, MAX_FRAME)),
        (1, heartbeat(1, 2)),
    ]);
    let got = recv(&mut b.rx).await.expect("link still up");
    assert_eq!(got.get_msg_type(), MessageType::MsgHeartbeat);
    assert_eq!(a.t.stats.peer(2).oversized.load(Ordering::Relaxed), 1);
    // Receiver side: a frame over the limit is skipped and counted; the next one arrives.
    let mut s = authenticated(&b.addr, 3, 2, KIND_RAFT, SECRET).await;
    let big = MAX_FRAME + 1;
    tokio::spawn(async move {
        s.write_all(&(big as u32).to_be_bytes()).await.unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut left = big;
        while left > 0 {
            let n = left.min(zeros.len());
            s.write_all(&zeros[..n]).await.unwrap();
            left -= n;
        }
        write_frame(&mut s, &batch(&[heartbeat(3, 2)]))
            .await
            .unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    });
    let got = recv(&mut b.rx)
        .await
        .expect("frame after the oversized one");
    assert_eq!(got.from, 3);
    assert_eq!(b.t.stats.recv_oversized.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_batch_bigger_than_a_frame_is_split() {
    let mut b = node(2, HashMap::new(), 0).await;
    let a = node(1, HashMap::from([(2, b.addr.clone())]), 0).await;
    let each = MAX_FRAME / 3;
    a.t.sink()
        .send((0..4).map(|_| (1, append_with(1, 2, each))).collect());
    for i in 0..4 {
        assert!(recv(&mut b.rx).await.is_some(), "message {i} lost");
    }
    let p = a.t.stats.peer(2);
    assert_eq!(p.sent.load(Ordering::Relaxed), 4);
    assert_eq!(p.oversized.load(Ordering::Relaxed), 0);
}

/// An offer of a one-file snapshot of `data`.
fn offer(data: &[u8]) -> Vec<u8> {
    offer_from(1, data)
}

/// [`offer`] from node `from`.
fn offer_from(from: u64, data: &[u8]) -> Vec<u8> {
    let desc = SnapshotDescriptor {
        index: 7,
        term: 2,
        files: vec![SnapshotFile {
            name: "data.sst".into(),
            size: data.len() as u64,
            crc32: crc32fast::hash(data),
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    };
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = from;
    m.to = 2;
    m.term = 2;
    let s = m.mut_snapshot();
    s.data = desc.write_to_bytes().unwrap().into();
    s.mut_metadata().index = 7;
    s.mut_metadata().term = 2;
    SnapshotOffer {
        msg: m.write_to_bytes().unwrap(),
        group: 1,
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

fn chunk(offset: u64, data: &[u8]) -> Vec<u8> {
    SnapshotChunk {
        file: 0,
        offset,
        data: data.to_vec(),
        crc32: crc32fast::hash(data),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

#[tokio::test]
async fn a_newer_stream_of_a_snapshot_cuts_off_the_older_one() {
    let mut b = node(2, HashMap::new(), 0).await;
    let data: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    // Stream 1 sends the first half, then stalls.
    let mut s1 = authenticated(&b.addr, 1, 2, KIND_SNAPSHOT, SECRET).await;
    write_frame(&mut s1, &offer(&data)).await.unwrap();
    let _ = read_frame(&mut s1, MAX_FRAME).await.unwrap();
    write_frame(&mut s1, &chunk(0, &data[..4096]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Stream 2 resumes at the half and finishes.
    let mut s2 = authenticated(&b.addr, 1, 2, KIND_SNAPSHOT, SECRET).await;
    write_frame(&mut s2, &offer(&data)).await.unwrap();
    let resume = read_frame(&mut s2, MAX_FRAME).await.unwrap();
    let resume = SnapshotResume::parse_from_bytes(&resume).unwrap();
    assert_eq!(resume.offsets, vec![4096]);
    // The stale stream now tries to write what it had: it was cut off.
    let _ = write_frame(&mut s1, &chunk(4096, &data[4096..])).await;
    assert!(closed(&mut s1).await, "stale stream still open");
    write_frame(&mut s2, &chunk(4096, &data[4096..]))
        .await
        .unwrap();
    let got = recv(&mut b.rx).await.expect("snapshot handed to raft");
    assert_eq!(got.get_msg_type(), MessageType::MsgSnapshot);
    let file = crate::node::group_snap_dir(&b.t.cfg.snap_dir, 1)
        .join("snap-2-7")
        .join("data.sst");
    assert_eq!(std::fs::read(file).unwrap(), data);
    assert_eq!(b.t.stats.snap_streams_superseded.load(Ordering::Relaxed), 1);
}

/// Two leaders' snapshots at the same index and term hold different files: the one whose
/// message is handed on last must be the one in place (its restore checks its files).
#[tokio::test]
async fn a_different_snapshot_at_the_same_index_replaces_the_one_in_place() {
    let mut b = node(2, HashMap::new(), 0).await;
    let file = crate::node::group_snap_dir(&b.t.cfg.snap_dir, 1)
        .join("snap-2-7")
        .join("data.sst");
    for (from, fill) in [(1u64, 1u8), (3, 2), (3, 2)] {
        let data = vec![fill; 3000];
        let mut s = authenticated(&b.addr, from, 2, KIND_SNAPSHOT, SECRET).await;
        write_frame(&mut s, &offer_from(from, &data)).await.unwrap();
        let _ = read_frame(&mut s, MAX_FRAME).await.unwrap();
        write_frame(&mut s, &chunk(0, &data)).await.unwrap();
        let got = recv(&mut b.rx).await.expect("snapshot handed to raft");
        assert_eq!(got.from, from);
        assert_eq!(std::fs::read(&file).unwrap(), data, "from {from}");
    }
}

#[tokio::test]
async fn peer_sockets_get_tcp_keepalive() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let s = super::frame::connect(&addr, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(socket2::SockRef::from(&s).keepalive().unwrap());
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_link_comes_back() {
    let idle = Duration::from_millis(200);
    let mut b = node_idle(2, HashMap::new(), 0, idle).await;
    // The receiver closes an authenticated raft connection that stays silent.
    let mut s = authenticated(&b.addr, 3, 2, KIND_RAFT, SECRET).await;
    let started = std::time::Instant::now();
    assert!(closed(&mut s).await, "silent connection kept open");
    assert!(started.elapsed() >= idle, "closed before the idle timeout");
    // The sender closes its own idle link, and the next message reconnects.
    let a = node_idle(1, HashMap::from([(2, b.addr.clone())]), 0, idle).await;
    a.t.sink().send(vec![(1, heartbeat(1, 2))]);
    assert!(recv(&mut b.rx).await.is_some());
    let p = a.t.stats.peer(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.connected.load(Ordering::Relaxed) {
        assert!(
            std::time::Instant::now() < deadline,
            "idle link never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.t.sink().send(vec![(1, heartbeat(1, 2))]);
    assert!(recv(&mut b.rx).await.is_some(), "no reconnect after idling");
    assert_eq!(p.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn publish_messages_reach_peers_and_a_dead_peer_only_costs_drops() {
    let b = node(2, HashMap::new(), 0).await;
    let (tx, mut got) = mpsc::unbounded_channel();
    b.t.set_publish_handler(Arc::new(move |ch, msg, shard| {
        let _ = tx.send((ch.to_vec(), msg.to_vec(), shard));
    }));
    // Peer 3 is an address nobody listens on.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let peers = HashMap::from([(2, b.addr.clone()), (3, dead_addr)]);
    let a = node(1, peers, 0).await;
    assert_eq!(a.t.publish(b"ch", b"hello", false), 2);
    let m = tokio::time::timeout(Duration::from_secs(10), got.recv()).await;
    assert_eq!(
        m.ok().flatten(),
        Some((b"ch".to_vec(), b"hello".to_vec(), false))
    );
    // Far more than a link queues, at once: publish never waits, the dead peer's messages
    // (and any beyond the queue bound) are dropped and counted.
    for _ in 0..3 * super::publish::MAX_QUEUED {
        a.t.publish(b"ch", b"x", true);
    }
    let stats = a.t.publish_stats();
    let dropped = || stats.dropped.load(Ordering::Relaxed) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dropped() < 2 * super::publish::MAX_QUEUED && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dropped() >= 2 * super::publish::MAX_QUEUED,
        "dropped {}",
        dropped()
    );
    let m = tokio::time::timeout(Duration::from_secs(10), got.recv()).await;
    assert_eq!(m.ok().flatten().map(|m| m.2), Some(true));
}
