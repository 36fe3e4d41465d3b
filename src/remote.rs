//! Requests for a data group this node does not host (a group created by
//! `RAFT.SHARDGROUP JOIN` on other nodes): forwarded to the group's members as the
//! metadata records them (the default mode), or answered `-MOVED` with a member's address
//! (`--redirect moved`, see `cluster::build::routing_view`).
//!
//! The node knows no Raft state of such a group, so it tries the member it last saw lead
//! the group first, then the others in turn: a member that does not lead answers "not
//! leader" (certainly not proposed), so the next one is tried, until
//! `--request-timeout-ms`. Reads go the same way and are proposed by the leader like
//! writes (linearizable: they run at apply time in the group's log order).

use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_node::ForwardError;
use resp::{Command, Reply};
use tokio::time::{sleep, timeout};

use crate::cluster::errors::{self, Failure};
use crate::server::Server;
use crate::session::Outcome;
use crate::sm::encode_argv;

/// Pause after every member of a group refused a request (none leads it yet).
const ROUND_PAUSE: Duration = Duration::from_millis(20);

impl Server {
    /// The nodes to try for group `gid` (not hosted here): the last leader seen first,
    /// then the members by id; never this node.
    pub fn remote_targets(&self, gid: u64) -> Vec<u64> {
        let m = self.groups.meta_state().members_of(gid);
        let hint = self.groups.hint(gid);
        let mut out: Vec<u64> = Vec::new();
        if hint != 0 && m.voters.contains(&hint) {
            out.push(hint);
        }
        for &id in &m.voters {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out.retain(|&id| id != self.cfg.id);
        out
    }

    /// A batch of group `gid`, which this node does not host, run by the group's leader.
    pub async fn remote_call(&self, gid: u64, argvs: Vec<Vec<Bytes>>, resp3: bool) -> Outcome {
        let data: Vec<Vec<u8>> = argvs.iter().map(|a| encode_argv(a)).collect();
        self.remote_call_encoded(gid, data, resp3).await
    }

    /// [`Server::remote_call`] of requests already encoded (see `crate::sm::encode_argv`).
    pub async fn remote_call_encoded(&self, gid: u64, data: Vec<Vec<u8>>, resp3: bool) -> Outcome {
        let n = data.len();
        let fail = |f: Failure| Outcome::Replies(vec![errors::reply(f); n]);
        let targets = self.remote_targets(gid);
        if targets.is_empty() {
            let r = Reply::err("CLUSTERDOWN Hash slot not served");
            return Outcome::Replies(vec![r; n]);
        }
        self.stats
            .forwarded
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + self.cfg.request_timeout();
        let mut i = 0usize;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return fail(Failure::NoLeaderInTime);
            }
            let to = targets[i % targets.len()];
            let call = self.transport.forward(to, gid, resp3, data.clone());
            match timeout(left, call).await {
                Ok(Ok(raw)) => {
                    self.groups.set_hint(gid, to);
                    return Outcome::Raw(raw);
                }
                // Certainly not proposed: the next member.
                Ok(Err(
                    ForwardError::NotLeader
                    | ForwardError::Connect(_)
                    | ForwardError::UnknownPeer(_),
                )) => {
                    i += 1;
                    if i.is_multiple_of(targets.len()) {
                        sleep(ROUND_PAUSE).await;
                    }
                }
                Ok(Err(ForwardError::Lost)) => return fail(Failure::ForwardLost),
                Err(_) => return fail(Failure::TimedOut),
            }
        }
    }

    /// One read of group `gid`: here after a barrier when hosted, else by its leader.
    pub async fn read_one(&self, gid: u64, argv: Vec<Bytes>, cmd: Command) -> Reply {
        if self.groups.hosts(gid) {
            return self
                .read_in(gid, vec![cmd])
                .await
                .pop()
                .unwrap_or(Reply::Nil);
        }
        match self.remote_call(gid, vec![argv], false).await {
            Outcome::Replies(mut rs) => rs.pop().unwrap_or(Reply::Nil),
            Outcome::Raw(raw) => decode_reply(&raw),
            Outcome::Overflow(_) => Reply::err("ERR reply too large"),
        }
    }
}

/// Decodes one relayed RESP2 value (`+ - : $ *`, nested arrays included): a remote
/// group's reply to a read whose value a fan-out combines (MGET, KEYS, SCAN, DBSIZE).
/// Bytes that are not one whole value decode as an error reply.
pub fn decode_reply(raw: &[u8]) -> Reply {
    match decode_at(raw, 0, 0) {
        Some((r, end)) if end == raw.len() => r,
        _ => Reply::err("ERR undecodable relayed reply"),
    }
}

fn decode_at(b: &[u8], at: usize, depth: usize) -> Option<(Reply, usize)> {
    use resp::relayed::{line, value_end};
    if depth > 16 {
        return None;
    }
    match *b.get(at)? {
        b'*' => {
            let (n, mut next) = line(b, at)?;
            if n < 0 {
                return Some((Reply::NilArray, next));
            }
            let mut items = Vec::with_capacity(usize::try_from(n).ok()?.min(1024));
            for _ in 0..n {
                let (r, end) = decode_at(b, next, depth + 1)?;
                items.push(r);
                next = end;
            }
            Some((Reply::Array(items), next))
        }
        _ => {
            let end = value_end(b, at)?;
            Some((resp::relayed::simple_reply(&b[at..end]), end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_arrays_decode_whole() {
        let raw = b"*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n$-1\r\n:5\r\n";
        let want = Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"0")),
            Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"a")),
                Reply::Nil,
                Reply::Int(5),
            ]),
        ]);
        assert_eq!(decode_reply(raw), want);
        assert!(matches!(decode_reply(b"*2\r\n:1\r\n"), Reply::Error(_)));
        assert_eq!(decode_reply(b"-ERR x\r\n"), Reply::err("ERR x"));
    }
}
