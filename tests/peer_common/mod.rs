//! Speaks the peer protocol from tests, as a stranger or a misbehaving peer would: the
//! challenge-response handshake (with any secret, or replaying a recorded one) and raw
//! frames (raft batches, forwarded requests, snapshot offers) on plain blocking sockets.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use protobuf::Message as _;
use raft_node::proto::{
    Argv, ForwardRequest, ForwardResponse, PeerBatch, PeerChallenge, PeerHello, PeerProof,
};
use raft_node::raft::eraftpb::Message;
use raft_node::transport::auth::{self, Side};

#[allow(unused_imports)]
pub use raft_node::transport::auth::{KIND_FORWARD, KIND_PUBLISH, KIND_RAFT, KIND_SNAPSHOT};

pub fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    s.write_all(&(body.len() as u32).to_be_bytes())?;
    s.write_all(body)?;
    s.flush()
}

pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > 64 << 20 {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to peer port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// True when the node closed the connection (EOF or reset) instead of talking.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// A recorded handshake: the hello's bytes and the proof sent for them.
#[derive(Clone)]
pub struct Recorded {
    pub hello: Vec<u8>,
    pub proof: Vec<u8>,
}

/// Runs the initiator's side with `secret` as node `from`; `Ok` with the open stream and
/// the recorded frames when the node accepted, `Err` with why not.
pub fn handshake(
    port: u16,
    from: u64,
    to: u64,
    kind: u32,
    secret: &[u8],
) -> Result<(TcpStream, Recorded), String> {
    let mut s = connect(port);
    let hello = PeerHello {
        magic: auth::MAGIC,
        from,
        to,
        kind,
        addr: "127.0.0.1:1".into(),
        nonce: auth::nonce().map_err(|e| e.to_string())?,
        ..Default::default()
    };
    let hb = hello.write_to_bytes().map_err(|e| e.to_string())?;
    write_frame(&mut s, &hb).map_err(|e| e.to_string())?;
    let ch = read_frame(&mut s).map_err(|e| format!("no challenge: {e}"))?;
    let ch = PeerChallenge::parse_from_bytes(&ch).map_err(|e| e.to_string())?;
    // A stranger cannot check the node's MAC; it sends its proof regardless.
    let proof = PeerProof {
        mac: auth::mac(secret, Side::Initiator, &hb, &ch.nonce),
        ..Default::default()
    }
    .write_to_bytes()
    .map_err(|e| e.to_string())?;
    write_frame(&mut s, &proof).map_err(|e| e.to_string())?;
    let rec = Recorded { hello: hb, proof };
    // The node either goes on (nothing to read yet) or closes the connection.
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let mut probe = [0u8; 1];
    match s.peek(&mut probe) {
        Ok(0) => Err("closed after the proof".into()),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            Ok((s, rec))
        }
        Ok(_) => Ok((s, rec)),
        Err(e) => Err(format!("closed after the proof: {e}")),
    }
}

/// Replays a recorded hello and proof on a new connection.
pub fn replay(port: u16, rec: &Recorded) -> TcpStream {
    let mut s = connect(port);
    let _ = write_frame(&mut s, &rec.hello);
    let _ = read_frame(&mut s);
    let _ = write_frame(&mut s, &rec.proof);
    s
}

/// A raft batch frame of `msgs`.
pub fn raft_batch(msgs: &[Message]) -> Vec<u8> {
    PeerBatch {
        group_id: 1,
        msgs: msgs
            .iter()
            .map(|m| m.write_to_bytes().expect("encode"))
            .collect(),
        ..Default::default()
    }
    .write_to_bytes()
    .expect("encode batch")
}

/// A forwarded request frame of one command.
pub fn forward_request(id: u64, args: &[&str]) -> Vec<u8> {
    let argv = Argv {
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
    .write_to_bytes()
    .expect("encode argv");
    ForwardRequest {
        id,
        argvs: vec![argv].into(),
        group: 1,
        ..Default::default()
    }
    .write_to_bytes()
    .expect("encode request")
}

/// Reads one forwarded reply: the RESP text, or `None` for "not leader".
pub fn forward_reply(s: &mut TcpStream) -> std::io::Result<Option<String>> {
    let f = read_frame(s)?;
    let r = ForwardResponse::parse_from_bytes(&f).map_err(std::io::Error::other)?;
    Ok((!r.not_leader).then(|| String::from_utf8_lossy(&r.reply).into_owned()))
}
