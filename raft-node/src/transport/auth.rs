//! The peer handshake: every peer connection starts with a challenge-response that proves
//! to each side that the other holds the cluster secret, without sending it.
//!
//! 1. initiator → responder: `PeerHello` (magic, from, to, kind, address, a fresh 32-byte
//!    nonce);
//! 2. responder → initiator: `PeerChallenge` (its own fresh nonce, and
//!    `HMAC(secret, RESPONDER | len(hello) | hello | nonce_r)`);
//! 3. initiator → responder: `PeerProof` (`HMAC(secret, INITIATOR | len(hello) | hello |
//!    nonce_r)`).
//!
//! The MACs cover the hello's exact bytes, so the connection kind, both node ids, the
//! sender's address and the initiator's nonce are bound to the proof; the responder's
//! fresh nonce makes a recorded hello and proof useless on any later connection (replay),
//! and the two labels keep one side's MAC from serving as the other's (reflection). With
//! no secret configured the key is empty: the handshake still runs, but proves nothing.
//!
//! What it does not give: confidentiality or integrity of the frames after the handshake
//! (an attacker on the path could hijack an authenticated connection; use a private
//! network or a tunnel, as for Redis's own replication without TLS).

use std::time::Duration;

use hmac::{Hmac, Mac};
use protobuf::Message as _;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::frame::{invalid, read_frame, within, write_frame, MAX_HELLO};
use crate::proto::{PeerChallenge, PeerHello, PeerProof};

/// Protocol magic of the handshake ("RKV2").
pub const MAGIC: u32 = 0x524b_5632;
/// Connection kinds.
pub const KIND_RAFT: u32 = 1;
pub const KIND_FORWARD: u32 = 2;
pub const KIND_SNAPSHOT: u32 = 3;
/// Pub/Sub messages. Not 4: that was the removal notice of old versions, still refused.
pub const KIND_PUBLISH: u32 = 5;
/// Bytes of each side's nonce.
pub const NONCE_LEN: usize = 32;
/// How long the whole handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

const RESPONDER: &[u8] = b"raftkv-peer-v2 responder";
const INITIATOR: &[u8] = b"raftkv-peer-v2 initiator";
const DERIVE_LABEL: &[u8] = b"raftkv cluster secret from requirepass v1";

type HmacSha256 = Hmac<Sha256>;

/// Which side computes a MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Initiator,
    Responder,
}

fn keyed(secret: &[u8], side: Side, hello: &[u8], nonce: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (the empty one included): `new_from_slice` cannot fail.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(match side {
        Side::Initiator => INITIATOR,
        Side::Responder => RESPONDER,
    });
    m.update(&(hello.len() as u64).to_be_bytes());
    m.update(hello);
    m.update(nonce);
    m
}

/// The MAC one side sends for the encoded `hello` and the responder's `nonce`.
pub fn mac(secret: &[u8], side: Side, hello: &[u8], nonce: &[u8]) -> Vec<u8> {
    keyed(secret, side, hello, nonce)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks a MAC in constant time.
pub fn verify(secret: &[u8], side: Side, hello: &[u8], nonce: &[u8], got: &[u8]) -> bool {
    keyed(secret, side, hello, nonce).verify_slice(got).is_ok()
}

/// The cluster secret of a node given only a client password: HMAC-SHA256 of a fixed
/// label keyed by the password, so every node with the same `--requirepass` derives the
/// same secret and the password itself never travels.
pub fn derive_secret(password: &[u8]) -> Vec<u8> {
    let mut m = match HmacSha256::new_from_slice(password) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(DERIVE_LABEL);
    m.finalize().into_bytes().to_vec()
}

/// Compares secrets in time independent of where they differ.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fresh random bytes from the OS.
pub fn nonce() -> std::io::Result<Vec<u8>> {
    let mut n = vec![0u8; NONCE_LEN];
    getrandom::getrandom(&mut n).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(n)
}

/// Why a handshake failed (for the rate-limited log; never contains secrets).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad hello: {0}")]
    BadHello(&'static str),
    #[error("wrong cluster secret (MAC mismatch)")]
    BadMac,
}

/// Initiator side: sends `hello` (its nonce is filled in here) and completes the
/// handshake; an error means the peer did not prove it holds the secret.
pub async fn initiate<R, W>(
    r: &mut R,
    w: &mut W,
    mut hello: PeerHello,
    secret: &[u8],
) -> Result<(), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    hello.magic = MAGIC;
    hello.nonce = nonce()?;
    let hb = hello.write_to_bytes().map_err(invalid)?;
    within(HANDSHAKE_TIMEOUT, async {
        write_frame(w, &hb).await?;
        w.flush().await
    })
    .await?;
    let ch = within(HANDSHAKE_TIMEOUT, read_frame(r, MAX_HELLO)).await?;
    let ch = PeerChallenge::parse_from_bytes(&ch).map_err(invalid)?;
    if ch.nonce.len() != NONCE_LEN {
        return Err(HandshakeError::BadHello(
            "challenge nonce has the wrong length",
        ));
    }
    if !verify(secret, Side::Responder, &hb, &ch.nonce, &ch.mac) {
        return Err(HandshakeError::BadMac);
    }
    let proof = PeerProof {
        mac: mac(secret, Side::Initiator, &hb, &ch.nonce),
        ..Default::default()
    };
    within(HANDSHAKE_TIMEOUT, async {
        write_frame(w, &proof.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await
    })
    .await?;
    Ok(())
}

/// Responder side: reads the hello, checks it is addressed to `me`, challenges the
/// initiator and checks its proof. Returns the hello once the peer proved the secret.
pub async fn respond<R, W>(
    r: &mut R,
    w: &mut W,
    me: u64,
    secret: &[u8],
) -> Result<PeerHello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    within_hs(HANDSHAKE_TIMEOUT, async {
        let hb = read_frame(r, MAX_HELLO).await?;
        let hello = PeerHello::parse_from_bytes(&hb).map_err(invalid)?;
        check_hello(&hello, me)?;
        let nonce_r = nonce()?;
        let ch = PeerChallenge {
            mac: mac(secret, Side::Responder, &hb, &nonce_r),
            nonce: nonce_r.clone(),
            ..Default::default()
        };
        write_frame(w, &ch.write_to_bytes().map_err(invalid)?).await?;
        w.flush().await?;
        let proof = read_frame(r, MAX_HELLO).await?;
        let proof = PeerProof::parse_from_bytes(&proof).map_err(invalid)?;
        if !verify(secret, Side::Initiator, &hb, &nonce_r, &proof.mac) {
            return Err(HandshakeError::BadMac);
        }
        Ok(hello)
    })
    .await
}

fn check_hello(h: &PeerHello, me: u64) -> Result<(), HandshakeError> {
    if h.magic != MAGIC {
        return Err(HandshakeError::BadHello(
            "wrong magic (another protocol version?)",
        ));
    }
    if h.to != me {
        return Err(HandshakeError::BadHello("addressed to another node"));
    }
    if h.from == 0 || h.from == me {
        return Err(HandshakeError::BadHello("invalid sender id"));
    }
    if !matches!(
        h.kind,
        KIND_RAFT | KIND_FORWARD | KIND_SNAPSHOT | KIND_PUBLISH
    ) {
        return Err(HandshakeError::BadHello("unknown connection kind"));
    }
    if h.nonce.len() != NONCE_LEN {
        return Err(HandshakeError::BadHello("nonce has the wrong length"));
    }
    Ok(())
}

/// `within` for handshake futures that return `HandshakeError`.
async fn within_hs<T>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(d, f).await.map_err(|_| {
        HandshakeError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "handshake timed out",
        ))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(from: u64, to: u64, kind: u32) -> PeerHello {
        PeerHello {
            from,
            to,
            kind,
            addr: "127.0.0.1:1".into(),
            ..Default::default()
        }
    }

    async fn run(init_secret: &[u8], resp_secret: &[u8]) -> (bool, bool) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let is = init_secret.to_vec();
        let init = tokio::spawn(async move {
            initiate(&mut ar, &mut aw, hello(2, 1, KIND_RAFT), &is)
                .await
                .is_ok()
        });
        let resp = respond(&mut br, &mut bw, 1, resp_secret).await.is_ok();
        drop((br, bw));
        (init.await.unwrap(), resp)
    }

    #[tokio::test]
    async fn same_secret_both_sides_accept() {
        assert_eq!(run(b"k", b"k").await, (true, true));
        assert_eq!(run(b"", b"").await, (true, true));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_both_sides() {
        // The initiator sees the responder cannot prove the secret and stops; the
        // responder never gets a valid proof.
        assert_eq!(run(b"wrong", b"k").await, (false, false));
        assert_eq!(run(b"", b"k").await, (false, false));
    }

    #[test]
    fn macs_bind_side_hello_and_nonce() {
        let h = b"hello bytes";
        let n = [1u8; NONCE_LEN];
        let m = mac(b"k", Side::Initiator, h, &n);
        assert!(verify(b"k", Side::Initiator, h, &n, &m));
        assert!(!verify(b"k", Side::Responder, h, &n, &m), "reflection");
        assert!(!verify(b"k", Side::Initiator, b"hello bytez", &n, &m));
        assert!(
            !verify(b"k", Side::Initiator, h, &[2u8; NONCE_LEN], &m),
            "replay"
        );
        assert!(!verify(b"j", Side::Initiator, h, &n, &m));
    }

    #[test]
    fn derived_secret_is_stable_and_not_the_password() {
        assert_eq!(derive_secret(b"pw"), derive_secret(b"pw"));
        assert_ne!(derive_secret(b"pw"), derive_secret(b"px"));
        assert_ne!(derive_secret(b"pw"), b"pw".to_vec());
    }
}
