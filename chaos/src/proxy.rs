//! Harness-owned TCP proxies, one per directed peer link i→j: node i dials the proxy instead
//! of node j, so the harness can cut a single direction of the network and heal it again.
//!
//! A link is `Open` (bytes flow), `Reset` (existing connections are closed, new ones are
//! accepted and closed at once) or `Blackhole` (connections stay up but everything sent is
//! silently dropped, like a partition where packets vanish). Connections that lived through
//! a blackhole are closed when the link heals, since their byte streams lost data.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// State of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Reset,
    Blackhole,
}

/// A running proxy for one directed link.
pub struct Proxy {
    pub listen: SocketAddr,
    state: watch::Sender<LinkState>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on `listener` forwarding to `target`.
    pub fn start(listener: TcpListener, target: SocketAddr) -> std::io::Result<Proxy> {
        let listen = listener.local_addr()?;
        let (state, rx) = watch::channel(LinkState::Open);
        let accept = tokio::spawn(accept_loop(listener, target, rx));
        Ok(Proxy {
            listen,
            state,
            accept,
        })
    }

    /// Cuts the link (`Reset` or `Blackhole`).
    pub fn cut(&self, how: LinkState) {
        self.state.send_replace(how);
    }

    /// Lets bytes flow again.
    pub fn heal(&self) {
        self.state.send_replace(LinkState::Open);
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closing the channel ends every connection task.
        self.state.send_replace(LinkState::Reset);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: watch::Receiver<LinkState>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = inbound.set_nodelay(true);
        tokio::spawn(connection(inbound, target, state.clone()));
    }
}

/// Relays one connection until either side closes or the link state says to drop it.
async fn connection(inbound: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    let now = *state.borrow_and_update();
    match now {
        LinkState::Reset => return,
        LinkState::Blackhole => return swallow(inbound, state).await,
        LinkState::Open => {}
    }
    let outbound =
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            _ => return,
        };
    let _ = outbound.set_nodelay(true);
    let (mut ar, mut aw) = inbound.into_split();
    let (mut br, mut bw) = outbound.into_split();
    let mut a_buf = vec![0u8; 64 << 10];
    let mut b_buf = vec![0u8; 64 << 10];
    let mut tainted = false;
    // One task, both directions: a blocked write only stalls while the peer does not
    // read, and the raft transport always reads its sockets.
    loop {
        tokio::select! {
            r = ar.read(&mut a_buf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let open = !tainted && *state.borrow() == LinkState::Open;
                if open && bw.write_all(&a_buf[..n]).await.is_err() {
                    return;
                }
            }
            r = br.read(&mut b_buf) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                let open = !tainted && *state.borrow() == LinkState::Open;
                if open && aw.write_all(&b_buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                match *state.borrow_and_update() {
                    LinkState::Reset => return,
                    LinkState::Blackhole => tainted = true,
                    LinkState::Open if tainted => return,
                    LinkState::Open => {}
                }
            }
        }
    }
}

/// Holds a connection accepted while blackholed, discarding what it sends, until the link
/// heals or resets (then closes it).
async fn swallow(mut inbound: TcpStream, mut state: watch::Receiver<LinkState>) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        tokio::select! {
            r = inbound.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() || *state.borrow_and_update() != LinkState::Blackhole {
                    return;
                }
            }
        }
    }
}

/// Every directed link of an `n`-node cluster, `links[i][j]` for i ≠ j.
pub struct Links {
    pub links: Vec<Vec<Option<Arc<Proxy>>>>,
}

impl Links {
    pub fn get(&self, from: usize, to: usize) -> Option<&Arc<Proxy>> {
        self.links.get(from)?.get(to)?.as_ref()
    }

    /// Cuts the directed links `(from, to)` in `set`.
    pub fn cut(&self, set: &[(usize, usize)], how: LinkState) {
        for &(a, b) in set {
            if let Some(p) = self.get(a, b) {
                p.cut(how);
            }
        }
    }

    /// Heals the directed links `(from, to)` in `set`.
    pub fn heal(&self, set: &[(usize, usize)]) {
        for &(a, b) in set {
            if let Some(p) = self.get(a, b) {
                p.heal();
            }
        }
    }

    pub fn heal_all(&self) {
        for p in self.links.iter().flatten().flatten() {
            p.heal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut got))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        Ok(got)
    }

    #[tokio::test]
    async fn cut_and_heal() {
        let target = echo_server().await;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy::start(l, target).unwrap();
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(roundtrip(&mut c, b"hi").await.unwrap(), b"hi");

        // Blackhole: the connection stays but nothing comes back.
        p.cut(LinkState::Blackhole);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(roundtrip(&mut c, b"lost").await.is_err());
        // Healing closes the tainted connection; a new one works.
        p.heal();
        let mut buf = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(roundtrip(&mut c, b"again").await.unwrap(), b"again");

        // Reset: existing connection closed, new ones closed at once.
        p.cut(LinkState::Reset);
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        p.heal();
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(roundtrip(&mut c, b"ok").await.unwrap(), b"ok");
    }
}
