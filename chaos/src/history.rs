//! The recorded history of one schedule: every client operation with its invocation and
//! completion time and its result, as the checker reads it and as it is saved (JSON lines).

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Call {
    /// `SET key value` (registers).
    Set { value: String },
    /// `GET key` (registers and counters).
    Get,
    /// `DEL key` (registers).
    Del,
    /// `INCR key` (counters).
    Incr,
    /// `RPUSH key value` of a value pushed once only (queues).
    #[serde(rename = "rpush")]
    RPush { value: String },
    /// `LPOP key` (queues).
    #[serde(rename = "lpop")]
    LPop,
    /// `LRANGE key 0 -1` (queues; the final reads).
    #[serde(rename = "lrange")]
    LRange,
    /// `HSET key field value` (hashes).
    #[serde(rename = "hset")]
    HSet { field: String, value: String },
    /// `HGET key field` (hashes).
    #[serde(rename = "hget")]
    HGet { field: String },
    /// `HDEL key field` (hashes).
    #[serde(rename = "hdel")]
    HDel { field: String },
}

/// What the client got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "res", content = "val", rename_all = "lowercase")]
pub enum Outcome {
    /// `+OK` (SET).
    Ok,
    /// A bulk string or nil (GET).
    Value(Option<String>),
    /// An integer reply (DEL, INCR, RPUSH, HSET, HDEL).
    Int(i64),
    /// An array of bulk strings (LRANGE).
    List(Vec<String>),
    /// An error reply or a timeout: the operation may or may not have taken effect.
    Unknown(String),
    /// Certainly not executed (no connection, or `-CLUSTERDOWN`); ignored by the checker.
    Fail(String),
}

/// One operation of one client on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (unique per schedule).
    pub id: usize,
    /// Client that issued it (clients issue one operation at a time).
    pub client: usize,
    /// 1-based id of the node it was sent to.
    pub node: usize,
    pub key: String,
    pub call: Call,
    /// Microseconds since the schedule started, taken before the request was sent.
    pub invoke_us: u64,
    /// Microseconds since the schedule started, taken after the reply arrived; `None` when
    /// the outcome is unknown (the operation may take effect at any later time, or never).
    pub complete_us: Option<u64>,
    pub outcome: Outcome,
    /// One of the reads made after every fault was healed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub final_read: bool,
}

impl Op {
    /// Whether the result is unknown (error or timeout).
    pub fn indeterminate(&self) -> bool {
        matches!(self.outcome, Outcome::Unknown(_))
    }

    /// Whether this operation can change the key.
    pub fn is_write(&self) -> bool {
        !matches!(self.call, Call::Get | Call::LRange | Call::HGet { .. })
    }

    /// One readable line, times in milliseconds.
    pub fn describe(&self) -> String {
        let call = match &self.call {
            Call::Set { value } => format!("SET {} {value}", self.key),
            Call::Get => format!("GET {}", self.key),
            Call::Del => format!("DEL {}", self.key),
            Call::Incr => format!("INCR {}", self.key),
            Call::RPush { value } => format!("RPUSH {} {value}", self.key),
            Call::LPop => format!("LPOP {}", self.key),
            Call::LRange => format!("LRANGE {} 0 -1", self.key),
            Call::HSet { field, value } => format!("HSET {} {field} {value}", self.key),
            Call::HGet { field } => format!("HGET {} {field}", self.key),
            Call::HDel { field } => format!("HDEL {} {field}", self.key),
        };
        let out = match &self.outcome {
            Outcome::Ok => "OK".to_string(),
            Outcome::Value(None) => "(nil)".to_string(),
            Outcome::Value(Some(v)) => format!("{v:?}"),
            Outcome::Int(i) => format!("(integer) {i}"),
            Outcome::List(vs) if vs.len() > 8 => {
                format!("{:?} ... ({} in all)", &vs[..8], vs.len())
            }
            Outcome::List(vs) => format!("{vs:?}"),
            Outcome::Unknown(why) => format!("? ({why})"),
            Outcome::Fail(why) => format!("failed ({why})"),
        };
        let end = match self.complete_us {
            Some(t) => format!("{:>10.3}", t as f64 / 1000.0),
            None => format!("{:>10}", "never"),
        };
        format!(
            "#{:<6} [{:>10.3} .. {end}] ms  client {:<3} node {}  {call:<28} -> {out}{}",
            self.id,
            self.invoke_us as f64 / 1000.0,
            self.client,
            self.node,
            if self.final_read {
                "  (final read)"
            } else {
                ""
            }
        )
    }
}

/// Writes `ops` as JSON lines.
pub fn save(path: &Path, ops: &[Op]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in ops {
        serde_json::to_writer(&mut w, op)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Reads a history written by [`save`].
pub fn load(path: &Path) -> std::io::Result<Vec<Op>> {
    let r = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut ops = Vec::new();
    for line in r.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        ops.push(serde_json::from_str(&line)?);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_round_trip() {
        let ops = vec![
            Op {
                id: 0,
                client: 1,
                node: 2,
                key: "r0".into(),
                call: Call::Set { value: "a".into() },
                invoke_us: 5,
                complete_us: Some(9),
                outcome: Outcome::Ok,
                final_read: false,
            },
            Op {
                id: 1,
                client: 0,
                node: 3,
                key: "c0".into(),
                call: Call::Incr,
                invoke_us: 6,
                complete_us: None,
                outcome: Outcome::Unknown("timeout".into()),
                final_read: true,
            },
            Op {
                id: 2,
                client: 0,
                node: 1,
                key: "q0".into(),
                call: Call::LRange,
                invoke_us: 7,
                complete_us: Some(8),
                outcome: Outcome::List(vec!["a".into(), "b".into()]),
                final_read: true,
            },
            Op {
                id: 3,
                client: 2,
                node: 1,
                key: "h0".into(),
                call: Call::HSet {
                    field: "f0".into(),
                    value: "x".into(),
                },
                invoke_us: 8,
                complete_us: Some(9),
                outcome: Outcome::Int(1),
                final_read: false,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.jsonl");
        save(&p, &ops).unwrap();
        assert_eq!(load(&p).unwrap(), ops);
    }
}
