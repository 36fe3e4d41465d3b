//! One tokio task pair per client connection: the reader parses pipelined requests and
//! dispatches each at once (so thousands can be in flight), the writer awaits the replies in
//! request order and writes whatever is ready in one syscall.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use resp::request::{parse_request, Limits};
use resp::{Protocol, Reply};
use slog::debug;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::server::{ClientInfo, Server};

/// A reply that may not be computed yet.
pub enum Pending {
    /// Known now.
    Ready(Reply),
    /// Computed later (a read or write in flight).
    Later(Pin<Box<dyn Future<Output = Outcome> + Send>>),
}

/// What a finished request produces.
pub enum Outcome {
    Reply(Reply),
    /// Already encoded for this connection (a reply relayed from the leader).
    Raw(Vec<u8>),
}

/// Per-connection state the commands can change.
pub struct Conn {
    pub id: u64,
    pub proto: Protocol,
    /// Set by QUIT: close after this reply.
    pub closing: bool,
}

/// Most requests in flight on one connection before the reader waits.
const MAX_IN_FLIGHT: usize = 16384;

/// Serves one client connection until it closes.
pub async fn serve(server: Arc<Server>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
    let addr = sock.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    server.register_client(ClientInfo::new(id, addr.clone()));
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<(Protocol, Pending, bool)>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::with_capacity(16 * 1024);
        while let Some(first) = rx.recv().await {
            let mut item = Some(first);
            let mut close = false;
            while let Some((proto, pending, last)) = item.take() {
                match pending {
                    Pending::Ready(r) => resp::encode::encode(&r, proto, &mut out),
                    Pending::Later(f) => match f.await {
                        Outcome::Reply(r) => resp::encode::encode(&r, proto, &mut out),
                        Outcome::Raw(b) => out.extend_from_slice(&b),
                    },
                }
                if last {
                    close = true;
                    break;
                }
                if out.len() < 1 << 20 {
                    item = rx.try_recv().ok();
                }
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if close {
                let _ = wr.shutdown().await;
                return;
            }
        }
    });

    let limits = Limits {
        max_bulk_len: server.cfg.proto_max_bulk_len,
        ..Default::default()
    };
    let mut conn = Conn {
        id,
        proto: Protocol::Resp2,
        closing: false,
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    'conn: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match parse_request(&mut buf, &limits) {
                Ok(Some(argv)) => {
                    if argv.is_empty() {
                        continue;
                    }
                    let pending = server.dispatch(&mut conn, argv);
                    if tx.send((conn.proto, pending, conn.closing)).await.is_err() {
                        break 'conn;
                    }
                    if conn.closing {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(server.logger, "protocol error, closing"; "client" => id, "err" => %e);
                    let _ = tx.send((conn.proto, Pending::Ready(e.to_reply()), true)).await;
                    break 'conn;
                }
            }
        }
        // Reclaim space: keep the buffer from growing without bound across requests.
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
    drop(tx);
    let _ = writer.await;
    server.unregister_client(id);
}
