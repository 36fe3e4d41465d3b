//! Requests other members forward to this node (see `raft_node::transport`'s forwarding):
//! a follower's writes and reads for a group this node leads, proposed here; an
//! administration command; a migration's slot commands, copied records and record
//! exports (the last served from this node's replica, never proposed).

use std::time::{Duration, Instant};

use resp::{Command, Kind, Protocol, Reply};
use tokio::time::{sleep, timeout};

use crate::cluster::errors::{self, Failure};
use crate::server::{gave_up_retrying, too_large, Server, RELAY_MAX};
use crate::session::fit_replies;
use raft_node::NodeError;

impl Server {
    /// Serves writes forwarded by a follower: only proposes if this node leads.
    pub async fn serve_forwarded(
        &self,
        gid: u64,
        resp3: bool,
        data: Vec<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        // A group not hosted (yet) here: as a non-leader, so the sender tries another
        // member (nothing was proposed).
        let g = self.groups.get(gid)?;
        let proto = if resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let encode = |mut rs: Vec<Reply>| {
            fit_replies(&mut rs, RELAY_MAX);
            let mut out = bytes::BytesMut::new();
            for r in &rs {
                resp::encode::encode(r, proto, &mut out);
            }
            Some(out.to_vec())
        };
        let n = data.len();
        if n == 1 {
            // A migration's read of this group's records (never proposed).
            let export = crate::sm::decode_argv(&data[0]).filter(|a| {
                a.first()
                    .is_some_and(|w| w.eq_ignore_ascii_case(crate::cluster::copy::EXPORT))
            });
            if let Some(argv) = export {
                return self
                    .serve_export(gid, &argv)
                    .await
                    .and_then(|r| encode(vec![r]));
            }
            let admin = crate::sm::decode_argv(&data[0])
                .and_then(|argv| Command::parse(&argv).ok())
                .filter(|c| c.kind() == Kind::Admin);
            if let Some(cmd) = admin {
                return self
                    .serve_forwarded_admin(gid, cmd)
                    .await
                    .and_then(|r| encode(vec![r]));
            }
        }
        for d in &data {
            // Client reads and writes, transactions (the internal RAFTKV.EXEC), a
            // migration's slot commands (from the metadata leader, a member) and a
            // FLUSHALL's, KEYS' or DBSIZE's share of a group (RAFTKV.FLUSHALL,
            // RAFTKV.READSLOTS, from its entry node).
            let ok = crate::sm::decode_argv(d).is_some_and(|argv| match Command::parse(&argv) {
                Ok(c) => matches!(c.kind(), Kind::Read | Kind::Write),
                Err(_) => matches!(
                    Command::parse_replicated(&argv),
                    Ok(Command::Transaction { .. }
                        | Command::Slots { .. }
                        | Command::SlotsIngest { .. }
                        | Command::FlushSlots(_)
                        | Command::ReadSlots { .. })
                ),
            });
            if !ok {
                return encode(vec![Reply::err("ERR malformed forwarded request"); n]);
            }
        }
        // A follower of another version or with a larger --max-write-bytes: the entry
        // must still fit a peer frame.
        let size: usize = data.iter().map(|d| crate::sm::field_len(d.len())).sum();
        if size > self.cfg.write_limit() {
            return encode(vec![
                too_large(
                    "forwarded write",
                    size,
                    self.cfg.write_limit()
                );
                n
            ]);
        }
        let deadline = Instant::now() + self.cfg.request_timeout();
        let mut dropped_since = None;
        loop {
            if !g.node.status.is_leader() {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match timeout(left, g.node.propose(data.clone())).await {
                Ok(Ok(Ok(replies))) => return encode(replies),
                Ok(Ok(Err(NodeError::NotLeader(_)))) => return None,
                Ok(Ok(Err(NodeError::Dropped))) if !gave_up_retrying(&mut dropped_since) => {
                    sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Ok(Ok(Err(e))) => Failure::Node(e),
                Ok(Err(_)) => Failure::Gone,
                Err(_) => Failure::TimedOut,
            };
            return encode(vec![errors::reply(failure); n]);
        }
    }
}
