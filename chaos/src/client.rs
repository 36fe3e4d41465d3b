//! Redis client helpers with bounded waits: connect, PING, INFO raft, and one recorded
//! operation turned into an [`Outcome`].

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use crate::history::{Call, Outcome};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens a connection to `127.0.0.1:port`, or `None` if that fails within a second
/// (then no command was sent).
pub async fn connect(port: u16, response_timeout: Duration) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(response_timeout);
    tokio::time::timeout(
        CONNECT_TIMEOUT * 2,
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    .ok()?
    .ok()
}

/// Whether the node on `port` answers PING within a second.
pub async fn ping(port: u16) -> bool {
    let Some(mut c) = connect(port, Duration::from_secs(1)).await else {
        return false;
    };
    matches!(
        redis::cmd("PING").query_async::<String>(&mut c).await,
        Ok(s) if s == "PONG"
    )
}

/// The `INFO raft` fields of the node on `port`.
pub async fn info_raft(port: u16) -> Option<HashMap<String, String>> {
    info_section(port, "raft").await
}

/// The fields of INFO section `section` of the node on `port`.
pub async fn info_section(port: u16, section: &str) -> Option<HashMap<String, String>> {
    let mut c = connect(port, Duration::from_secs(1)).await?;
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// Builds the command for `call` on `key`.
pub fn command(key: &str, call: &Call) -> redis::Cmd {
    match call {
        Call::Set { value } => redis::cmd("SET")
            .arg(key)
            .arg(crate::batch::wire_value(value))
            .to_owned(),
        Call::Get => redis::cmd("GET").arg(key).to_owned(),
        Call::Del => redis::cmd("DEL").arg(key).to_owned(),
        Call::Incr => redis::cmd("INCR").arg(key).to_owned(),
        Call::RPush { value } => redis::cmd("RPUSH").arg(key).arg(value).to_owned(),
        Call::LPop => redis::cmd("LPOP").arg(key).to_owned(),
        Call::LRange => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).to_owned(),
        Call::HSet { field, value } => redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(crate::batch::wire_value(value))
            .to_owned(),
        Call::HGet { field } => redis::cmd("HGET").arg(key).arg(field).to_owned(),
        Call::HDel { field } => redis::cmd("HDEL").arg(key).arg(field).to_owned(),
    }
}

/// Whether a server error reply says the command certainly had no effect: raftkv keeps
/// the words cluster clients retry on (`-TRYAGAIN`, `-CLUSTERDOWN`, `-MOVED`, `-ASK`,
/// `-LOADING`) for requests that certainly were not and will not be applied, and answers
/// `-UNCERTAIN` when a write's fate is unknown. Everything else (`-UNCERTAIN`, other
/// errors, lost connections, timeouts) may or may not have taken effect.
pub fn certainly_not_applied(err: &redis::RedisError) -> bool {
    matches!(
        err.code(),
        Some("TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK" | "LOADING")
    )
}

/// Turns a reply to `call` into an outcome; a reply of the wrong shape is kept as an
/// unknown outcome with the reply in its text (the checker then treats it as
/// indeterminate, and the history shows it).
pub fn outcome(call: &Call, reply: Value) -> Outcome {
    match (call, reply) {
        (Call::Set { .. }, Value::Okay) => Outcome::Ok,
        (Call::Set { .. }, Value::SimpleString(s)) if s == "OK" => Outcome::Ok,
        (Call::Get | Call::LPop | Call::HGet { .. }, Value::Nil) => Outcome::Value(None),
        (Call::Get | Call::LPop | Call::HGet { .. }, Value::BulkString(b)) => {
            Outcome::Value(Some(crate::batch::read_value(&b)))
        }
        (Call::Get, Value::SimpleString(s)) => Outcome::Value(Some(s)),
        (
            Call::Del | Call::Incr | Call::RPush { .. } | Call::HSet { .. } | Call::HDel { .. },
            Value::Int(n),
        ) => Outcome::Int(n),
        (Call::LRange, Value::Array(items)) => list(items),
        (_, other) => Outcome::Unknown(format!("unexpected reply {other:?}")),
    }
}

/// An LRANGE reply: every element a bulk string, else an unknown outcome.
fn list(items: Vec<Value>) -> Outcome {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::BulkString(b) => out.push(crate::batch::read_value(&b)),
            other => return Outcome::Unknown(format!("unexpected reply element {other:?}")),
        }
    }
    Outcome::List(out)
}
