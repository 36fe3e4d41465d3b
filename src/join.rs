//! Joining and leaving from the node's side: a `--join` node asks a member to add it
//! until every group it hosts holds it, a node removed from every group shuts down, and
//! the small one-shot Redis-protocol client both (and the metadata bootstrap) use to talk
//! to another node before the peer transport knows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft_node::Members;
use slog::{info, warn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{sleep, timeout};

use crate::server::Server;

impl Server {
    /// A node started with `--join` asks a member to add it until it sees itself in the
    /// configuration of every group it hosts, the metadata group and each data group
    /// (each arrives with that group's leader's snapshot). `RAFT.NODE ADD` runs group after
    /// group and may stop part way (a group whose new leader has not yet applied its
    /// predecessor's conf changes refuses with "a membership change is already in
    /// progress"); it is idempotent, so it is asked again until every group has the node
    /// (chaos seed 203: a joiner in the metadata group and two data groups, never in the
    /// third, whose reads never succeeded).
    pub async fn join_cluster(self: Arc<Self>, target: String, my_addr: String) {
        let id = self.cfg.id;
        let mut last_ask: Option<Instant> = None;
        loop {
            let members = self
                .groups
                .every()
                .into_iter()
                .map(|g| (g.id, g.node.status.members()));
            let missing = groups_without(members, id);
            if missing.is_empty() {
                let voter = self
                    .groups
                    .home()
                    .node
                    .status
                    .members()
                    .voters
                    .contains(&id);
                info!(self.logger, "member of the cluster"; "voter" => voter);
                return;
            }
            if last_ask.is_none_or(|t| t.elapsed() >= JOIN_ASK_AGAIN) {
                let args = ["RAFT.NODE", "ADD", &id.to_string(), &my_addr];
                match raw_command(&target, self.cfg.requirepass.as_deref(), &args).await {
                    Ok(line) if line.starts_with('+') => {
                        info!(self.logger, "join accepted; waiting for the leaders' snapshots"; "via" => &target, "groups_missing" => ?missing);
                        last_ask = Some(Instant::now());
                    }
                    Ok(line) => {
                        warn!(self.logger, "join refused, retrying"; "via" => &target, "reply" => line)
                    }
                    Err(e) => {
                        warn!(self.logger, "join request failed, retrying"; "via" => &target, "err" => %e)
                    }
                }
            }
            let wait = if last_ask.is_some() { 100 } else { 1000 };
            sleep(Duration::from_millis(wait)).await;
        }
    }

    /// A node that applied its own removal from every group shuts down.
    pub async fn watch_removal(self: Arc<Self>) {
        loop {
            sleep(Duration::from_millis(100)).await;
            // Removed from every group (RAFT.NODE REMOVE runs group after group).
            let removed = self.groups.every().iter().all(|g| {
                g.node
                    .status
                    .removed
                    .load(std::sync::atomic::Ordering::Acquire)
            });
            if removed {
                warn!(self.logger, "removed from the cluster: shutting down");
                self.shutdown.notify_one();
                return;
            }
        }
    }
}

/// After an accepted join, how long the joiner waits for every group to show it before
/// it asks again.
const JOIN_ASK_AGAIN: Duration = Duration::from_secs(5);

/// The groups among `members` (each hosted group's id and configuration as this node
/// knows it) that do not hold member `id`.
fn groups_without(members: impl Iterator<Item = (u64, Members)>, id: u64) -> Vec<u64> {
    members
        .filter(|(_, m)| !(m.voters.contains(&id) || m.learners.contains(&id)))
        .map(|(gid, _)| gid)
        .collect()
}

/// Sends one command to a Redis-protocol server (after AUTH when a password is given) and
/// returns its one-line reply.
async fn raw_command(addr: &str, pass: Option<&str>, args: &[&str]) -> std::io::Result<String> {
    raw_request(addr, pass, args, false).await
}

/// As [`raw_command`], for a command answering a bulk string: returns its text (or the
/// one-line reply when it is not a bulk string).
pub async fn raw_bulk(addr: &str, pass: Option<&str>, args: &[&str]) -> std::io::Result<String> {
    raw_request(addr, pass, args, true).await
}

async fn raw_request(
    addr: &str,
    pass: Option<&str>,
    args: &[&str],
    bulk: bool,
) -> std::io::Result<String> {
    let io_err = |e: String| std::io::Error::other(e);
    let sock = timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| io_err("connect timed out".into()))??;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let encode = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        out
    };
    let mut line = String::new();
    if let Some(p) = pass {
        w.write_all(encode(&["AUTH", p]).as_bytes()).await?;
        timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .map_err(|_| io_err("AUTH timed out".into()))??;
        if !line.starts_with('+') {
            return Ok(line.trim_end().to_string());
        }
        line.clear();
    }
    w.write_all(encode(args).as_bytes()).await?;
    timeout(Duration::from_secs(30), r.read_line(&mut line))
        .await
        .map_err(|_| io_err("reply timed out".into()))??;
    let len = line
        .strip_prefix('$')
        .and_then(|n| n.trim_end().parse::<usize>().ok());
    match len {
        Some(n) if bulk && n <= 1 << 20 => {
            let mut body = vec![0u8; n + 2];
            timeout(Duration::from_secs(30), r.read_exact(&mut body))
                .await
                .map_err(|_| io_err("reply timed out".into()))??;
            body.truncate(n);
            String::from_utf8(body).map_err(|_| io_err("reply is not text".into()))
        }
        _ => Ok(line.trim_end().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(voters: &[u64], learners: &[u64]) -> Members {
        Members {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            ..Default::default()
        }
    }

    /// A joiner is done only once every hosted group holds it: the metadata group alone
    /// (where `RAFT.NODE ADD` starts) is not enough (chaos seed 203).
    #[test]
    fn a_join_waits_for_every_group() {
        let meta = 1 << 32;
        let partial = [
            (1, members(&[1, 3], &[4])),
            (2, members(&[1, 3, 4], &[])),
            (3, members(&[1, 3], &[])),
            (meta, members(&[1, 3, 4], &[])),
        ];
        assert_eq!(groups_without(partial.into_iter(), 4), vec![3]);
        let whole = [
            (3, members(&[1, 3], &[4])),
            (meta, members(&[1, 3, 4], &[])),
        ];
        assert!(groups_without(whole.into_iter(), 4).is_empty());
    }
}
