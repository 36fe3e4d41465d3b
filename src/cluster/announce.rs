//! Records this node's client address in the replicated cluster state, so every node can
//! answer CLUSTER SLOTS / NODES and `-MOVED` with it: once a leader is known and the
//! recorded address differs from `--announce-addr`, the node proposes the internal
//! `RAFTKV.NODEADDR <id> <addr>` (on the leader) or forwards it to the leader, which accepts
//! it from a member only for that member's own id. Never accepted from clients.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use resp::{Command, Protocol, Reply};
use slog::{debug, info};
use tokio::time::{sleep, timeout};

use crate::server::Server;
use crate::sm::{decode_argv, encode_argv};

/// The internal command's name.
const NODEADDR: &[u8] = b"RAFTKV.NODEADDR";

/// How often the recorded address is compared with this node's.
const CHECK_EVERY: Duration = Duration::from_millis(200);

fn record_argv(id: u64, addr: &str) -> Vec<Bytes> {
    vec![
        Bytes::from_static(NODEADDR),
        Bytes::from(id.to_string()),
        Bytes::from(addr.to_string()),
    ]
}

impl Server {
    /// Keeps this node's client address recorded (runs for the life of the node).
    pub async fn announce_loop(self: Arc<Self>) {
        let addr = self.cfg.announce_addr();
        let id = self.cfg.id;
        loop {
            sleep(CHECK_EVERY).await;
            let leader = self.node.status.leader();
            if leader == 0 || self.reader.node_addrs().get(&id) == Some(&addr) {
                continue;
            }
            let data = vec![encode_argv(&record_argv(id, &addr))];
            let wait = self.cfg.request_timeout();
            if leader == id {
                let r = timeout(wait, self.node.propose(data)).await;
                debug!(self.logger, "recording this node's client address"; "addr" => &addr, "ok" => matches!(r, Ok(Ok(Ok(_)))));
            } else {
                let r = timeout(
                    wait,
                    self.transport
                        .forward(leader, self.groups.home().id, false, data),
                )
                .await;
                debug!(self.logger, "asking the leader to record this node's client address"; "addr" => &addr, "leader" => leader, "ok" => matches!(r, Ok(Ok(_))));
            }
            if self.reader.node_addrs().get(&id) == Some(&addr) {
                info!(self.logger, "client address recorded"; "addr" => &addr);
            }
        }
    }

    /// Serves a forwarded `RAFTKV.NODEADDR` from member `from`: `None` when `data` is not
    /// one, else the forwarded reply (`Some(None)`: this node does not lead).
    pub async fn serve_forwarded_announce(
        &self,
        from: u64,
        data: &[Vec<u8>],
    ) -> Option<Option<Vec<u8>>> {
        let [one] = data else { return None };
        let argv = decode_argv(one)?;
        if !argv.first()?.eq_ignore_ascii_case(NODEADDR) {
            return None;
        }
        let reply = match Command::parse_replicated(&argv) {
            Ok(Command::NodeAddr { id, .. }) if id == from => {
                if !self.node.status.is_leader() {
                    return Some(None);
                }
                match timeout(
                    self.cfg.request_timeout(),
                    self.node.propose(vec![one.clone()]),
                )
                .await
                {
                    Ok(Ok(Ok(mut rs))) if !rs.is_empty() => rs.remove(0),
                    Ok(Ok(Err(raft_node::NodeError::NotLeader(_)))) => return Some(None),
                    _ => Reply::err("TRYAGAIN the address was not recorded"),
                }
            }
            Ok(_) => Reply::err("ERR a node may record only its own address"),
            Err(e) => e,
        };
        let mut out = bytes::BytesMut::new();
        resp::encode::encode(&reply, Protocol::Resp2, &mut out);
        Some(Some(out.to_vec()))
    }
}
