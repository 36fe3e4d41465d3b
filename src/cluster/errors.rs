//! The one mapping from a request's failure to the error reply clients see, with the error
//! words Redis Cluster clients act on. `-TRYAGAIN`, `-CLUSTERDOWN`, `-MOVED`, `-ASK` and
//! `-LOADING` make cluster clients (redis-py's `RedisCluster`, the `redis` crate's cluster
//! client, redis-cli -c) retry or redirect, so they are used only when the request certainly
//! was not and will not be applied. A write whose fate the node cannot know (it was proposed
//! or sent to the leader, and then the reply was lost, timed out, was overtaken by a snapshot
//! or the node stopped) answers `-UNCERTAIN`, a word no client library retries (redis-py
//! turns an unknown word into a plain `ResponseError`, the redis crate into an
//! `ExtensionError` with `RetryMethod::NoRetry`), so one INCR never applies twice behind the
//! application's back.

use raft_node::NodeError;
use resp::Reply;

/// The error word of an unknown outcome.
pub const UNCERTAIN: &str = "UNCERTAIN";

/// Why a write (or an administration command) could not be answered with its result.
#[derive(Debug)]
pub enum Failure {
    /// raft-node's answer to the proposal.
    Node(NodeError),
    /// The node's reply channel closed after the proposal was handed to it (it stopped).
    Gone,
    /// No reply within `--request-timeout-ms` after the request was proposed or forwarded.
    TimedOut,
    /// The forwarding connection broke after the request may have reached the leader.
    ForwardLost,
    /// No leader took the request before the deadline; nothing was proposed.
    NoLeaderInTime,
    /// No leader is known within `--leader-wait-ms`; nothing was proposed or read.
    NoLeader,
    /// A read found no read index within `--request-timeout-ms` (reads change nothing).
    ReadTimedOut,
    /// A read was pending when the node stopped.
    ReadStopped,
}

/// `-UNCERTAIN <why>; it may or may not have taken effect`.
pub fn uncertain(why: &str) -> Reply {
    Reply::err(format!(
        "{UNCERTAIN} {why}; it may or may not have taken effect"
    ))
}

/// The reply to `f` (the only place failures become client-visible errors).
pub fn reply(f: Failure) -> Reply {
    match f {
        Failure::Node(NodeError::Refused(text)) => Reply::err(format!("ERR {text}")),
        Failure::Node(NodeError::Unknown(text)) => uncertain(&text),
        // The Ready loop stopped with the proposal possibly in the log: a new leader may
        // still commit it.
        Failure::Node(NodeError::Stopped) | Failure::Gone => {
            uncertain("the node stopped while the request was pending")
        }
        Failure::Node(NodeError::NotLeader(_)) => Reply::err(
            "TRYAGAIN leadership moved before the request was proposed; it was not applied",
        ),
        Failure::Node(NodeError::Dropped) => Reply::err(
            "TRYAGAIN the Raft leader refused the write (replication is behind: its uncommitted log is full, or leadership is moving); it was not applied",
        ),
        Failure::TimedOut => uncertain("timed out waiting for the Raft commit"),
        Failure::ForwardLost => uncertain("the connection to the Raft leader was lost"),
        Failure::NoLeaderInTime => {
            Reply::err("TRYAGAIN write timed out waiting for a leader; it was not applied")
        }
        Failure::NoLeader => Reply::err(
            "CLUSTERDOWN The cluster is down: no Raft leader is known, try again later",
        ),
        Failure::ReadTimedOut => {
            Reply::err("TRYAGAIN read timed out waiting for the Raft read index")
        }
        Failure::ReadStopped => Reply::err("TRYAGAIN node is shutting down"),
    }
}

/// Whether an error reply means "certainly not applied" (the words clients retry on).
#[cfg(test)]
fn certainly_not_applied(text: &str) -> bool {
    let word = text.split(' ').next().unwrap_or("");
    ["TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "LOADING"].contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Reply) -> String {
        match r {
            Reply::Error(t) => t,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn every_unknown_outcome_is_uncertain_and_never_a_retry_word() {
        let unknown = [
            Failure::Node(NodeError::Unknown("overtaken by a snapshot".into())),
            Failure::Node(NodeError::Stopped),
            Failure::Gone,
            Failure::TimedOut,
            Failure::ForwardLost,
        ];
        for f in unknown {
            let t = text(reply(f));
            assert!(t.starts_with("UNCERTAIN "), "{t}");
            assert!(t.ends_with("may or may not have taken effect"), "{t}");
            assert!(!certainly_not_applied(&t));
        }
        let certain = [
            Failure::NoLeader,
            Failure::Node(NodeError::NotLeader(None)),
            Failure::Node(NodeError::Dropped),
            Failure::NoLeaderInTime,
            Failure::ReadTimedOut,
            Failure::ReadStopped,
        ];
        for f in certain {
            let t = text(reply(f));
            assert!(certainly_not_applied(&t), "{t}");
        }
        assert!(text(reply(Failure::Node(NodeError::Refused("x".into())))).starts_with("ERR "));
    }
}
