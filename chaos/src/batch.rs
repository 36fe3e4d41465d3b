//! Multi-key and pipelined operations for the workload, and large values.
//!
//! A batch is one request (MSET or MGET over several register keys) or one pipeline of
//! single-key commands. Each of its parts is recorded as an operation of its own, with the
//! batch's invocation and completion times: every part took effect somewhere in between, so
//! the per-key checker checks them exactly as it checks single operations (linearizability is
//! local: checking each key on its own is sound).
//!
//! Large values keep the history small: the recorded value is a tag `<tag>/<pad>`, and what
//! travels is the tag, `#`, then `pad` bytes of filler. A read turns the stored bytes back
//! into the tag only if the filler is intact, so a torn or truncated large value shows up as
//! a value nobody wrote.

use redis::Value;

use crate::history::{Call, Outcome};

/// The shape of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `MSET k1 v1 k2 v2 ...`: every part is a `Set`.
    MSet,
    /// `MGET k1 k2 ...`: every part is a `Get`.
    MGet,
    /// Single-key commands sent back to back without waiting.
    Pipeline,
}

/// The bytes sent for a recorded value: the value itself, or for a tag `<tag>/<pad>` the tag,
/// `#` and `pad` filler bytes.
pub fn wire_value(value: &str) -> Vec<u8> {
    let mut out = value.as_bytes().to_vec();
    if let Some(pad) = pad_of(value) {
        out.push(b'#');
        out.extend(std::iter::repeat_n(filler(value), pad));
    }
    out
}

/// The recorded value of stored bytes: the inverse of [`wire_value`]. A large value whose
/// filler is damaged reads as a `corrupt:` value that no client wrote.
pub fn read_value(bytes: &[u8]) -> String {
    let Some(hash) = bytes.iter().position(|&b| b == b'#') else {
        return String::from_utf8_lossy(bytes).into_owned();
    };
    let tag = String::from_utf8_lossy(&bytes[..hash]).into_owned();
    let body = &bytes[hash + 1..];
    let intact = pad_of(&tag) == Some(body.len()) && body.iter().all(|&b| b == filler(&tag));
    if intact {
        tag
    } else {
        format!("corrupt:{tag}:{}", body.len())
    }
}

fn pad_of(value: &str) -> Option<usize> {
    value.rsplit_once('/').and_then(|(_, n)| n.parse().ok())
}

/// A filler byte that depends on the tag, so two large values of one size differ throughout.
fn filler(tag: &str) -> u8 {
    b'a' + (tag
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % 26) as u8
}

/// The request for a batch of `(key, call)` parts.
pub fn request(batch: Batch, parts: &[(String, Call)]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    match batch {
        Batch::MSet => {
            let mut cmd = redis::cmd("MSET");
            for (key, call) in parts {
                if let Call::Set { value } = call {
                    cmd.arg(key).arg(wire_value(value));
                }
            }
            pipe.add_command(cmd);
        }
        Batch::MGet => {
            let mut cmd = redis::cmd("MGET");
            for (key, _) in parts {
                cmd.arg(key);
            }
            pipe.add_command(cmd);
        }
        Batch::Pipeline => {
            for (key, call) in parts {
                pipe.add_command(crate::client::command(key, call));
            }
        }
    }
    pipe
}

/// The outcome of each part, from the batch's replies (one per command sent).
pub fn outcomes(batch: Batch, parts: &[(String, Call)], replies: Vec<Value>) -> Vec<Outcome> {
    let unexpected = |why: String| vec![Outcome::Unknown(why); parts.len()];
    match batch {
        Batch::MSet => match replies.as_slice() {
            [v] if is_ok(v) => vec![Outcome::Ok; parts.len()],
            other => unexpected(format!("unexpected MSET reply {other:?}")),
        },
        Batch::MGet => match replies.into_iter().next() {
            Some(Value::Array(vals)) if vals.len() == parts.len() => vals
                .into_iter()
                .map(|v| crate::client::outcome(&Call::Get, v))
                .collect(),
            other => unexpected(format!("unexpected MGET reply {other:?}")),
        },
        Batch::Pipeline if replies.len() == parts.len() => parts
            .iter()
            .zip(replies)
            .map(|((_, call), v)| crate::client::outcome(call, v))
            .collect(),
        Batch::Pipeline => unexpected(format!(
            "{} replies to {} commands",
            replies.len(),
            parts.len()
        )),
    }
}

fn is_ok(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_values_round_trip_and_damage_shows() {
        let v = "c1-7/70000";
        let wire = wire_value(v);
        assert_eq!(wire.len(), v.len() + 1 + 70000);
        assert_eq!(read_value(&wire), v);
        assert_eq!(read_value(b"c1-8"), "c1-8");
        let mut torn = wire.clone();
        torn.truncate(wire.len() - 1);
        assert!(read_value(&torn).starts_with("corrupt:"));
        let mut flipped = wire;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(read_value(&flipped).starts_with("corrupt:"));
    }

    #[test]
    fn batch_outcomes_split_per_part() {
        let parts = vec![
            ("reg0".to_string(), Call::Set { value: "a".into() }),
            ("reg1".to_string(), Call::Set { value: "b".into() }),
        ];
        assert_eq!(
            outcomes(Batch::MSet, &parts, vec![Value::Okay]),
            vec![Outcome::Ok, Outcome::Ok]
        );
        let gets = vec![
            ("reg0".to_string(), Call::Get),
            ("reg1".to_string(), Call::Get),
        ];
        let reply = Value::Array(vec![Value::Nil, Value::BulkString(b"x".to_vec())]);
        assert_eq!(
            outcomes(Batch::MGet, &gets, vec![reply]),
            vec![Outcome::Value(None), Outcome::Value(Some("x".into()))]
        );
        assert!(matches!(
            outcomes(Batch::Pipeline, &gets, vec![Value::Nil])[0],
            Outcome::Unknown(_)
        ));
    }
}
