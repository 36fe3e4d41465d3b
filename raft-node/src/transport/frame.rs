//! Peer frames: a 4-byte big-endian length and a protobuf body. Readers take the largest
//! length they accept (a hello is tiny, a raft batch may be large), so a peer cannot make
//! a node allocate more than that; an oversized frame on an authenticated raft connection
//! can be skipped (read and discarded in small pieces) instead of breaking the link.
//! Also the socket options every peer connection gets (no delay, TCP keepalive).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest frame accepted from a peer.
pub const MAX_FRAME: usize = 64 << 20;
/// Largest handshake frame (hello, challenge, proof): they hold ids, an address and nonces.
pub const MAX_HELLO: usize = 4 << 10;
/// Bytes a frame adds around one message of a `PeerBatch` (tag, length varint, group id).
pub const FRAME_OVERHEAD: usize = 32;

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| invalid("frame too large to encode"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await
}

/// A frame's length was over the limit; its body is still unread.
#[derive(Debug)]
pub struct Oversized(pub usize);

/// Reads one frame of at most `max` bytes. `Ok(Err(Oversized))` leaves the body unread
/// (the caller closes the connection or calls [`skip`]).
pub async fn read_frame_max<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Result<Vec<u8>, Oversized>> {
    let len = r.read_u32().await? as usize;
    if len > max {
        return Ok(Err(Oversized(len)));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await?;
    Ok(Ok(buf))
}

/// Reads one frame of at most `max` bytes; a larger one is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Vec<u8>> {
    read_frame_max(r, max).await?.map_err(|Oversized(len)| {
        invalid(format!("frame of {len} bytes exceeds the limit of {max}"))
    })
}

/// Reads and discards `len` bytes (the body of an oversized frame) with a small buffer.
pub async fn skip<R: AsyncRead + Unpin>(r: &mut R, mut len: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    while len > 0 {
        let want = len.min(buf.len());
        r.read_exact(&mut buf[..want]).await?;
        len -= want;
    }
    Ok(())
}

/// An `InvalidData` error with a message.
pub fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// `TimedOut` after `d`, else the future's own result.
pub async fn within<T>(
    d: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}

/// TCP keepalive on peer sockets: a peer that vanished (power off, cable, half-open NAT
/// state) is noticed in about 25 s instead of the OS default of two hours.
pub fn tune(sock: &TcpStream) {
    let _ = sock.set_nodelay(true);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let _ = socket2::SockRef::from(sock).set_tcp_keepalive(&ka);
}

/// Connects to a peer within `d`, with the peer socket options set.
pub async fn connect(addr: &str, d: Duration) -> std::io::Result<TcpStream> {
    let sock = within(d, TcpStream::connect(addr)).await?;
    tune(&sock);
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_without_reading_its_body() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&(100u32 << 20).to_be_bytes()).await.unwrap();
        let got = read_frame_max(&mut b, MAX_HELLO).await.unwrap();
        assert!(matches!(got, Err(Oversized(n)) if n == 100 << 20));
    }

    #[tokio::test]
    async fn an_oversized_frame_can_be_skipped_and_the_next_one_read() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            write_frame(&mut a, &vec![7u8; 300_000]).await.unwrap();
            write_frame(&mut a, b"next").await.unwrap();
        });
        let Err(Oversized(n)) = read_frame_max(&mut b, 1000).await.unwrap() else {
            panic!("not refused");
        };
        skip(&mut b, n).await.unwrap();
        assert_eq!(read_frame(&mut b, 1000).await.unwrap(), b"next");
    }
}
