//! Hash keys for the checker: every `(key, field)` of a hash is checked as a register of its
//! own (linearizability is local, so splitting a hash into its fields is sound), with
//! `HSET` as `SET`, `HGET` as `GET` and `HDEL` as `DEL` (both return how many they removed).
//!
//! `HSET`'s reply (how many fields it added) is not checked: a register `SET` has no such
//! output.

use crate::history::{Call, Op, Outcome};

/// The register key of field `field` of hash `key`.
pub fn field_key(key: &str, field: &str) -> String {
    format!("{key}[{field}]")
}

/// The register operation an operation on a hash field stands for, or `None` for any other
/// operation.
pub fn as_register(op: &Op) -> Option<Op> {
    let (field, call) = match &op.call {
        Call::HSet { field, value } => (
            field,
            Call::Set {
                value: value.clone(),
            },
        ),
        Call::HGet { field } => (field, Call::Get),
        Call::HDel { field } => (field, Call::Del),
        _ => return None,
    };
    let outcome = match (&call, &op.outcome) {
        (Call::Set { .. }, Outcome::Int(_)) => Outcome::Ok,
        (_, other) => other.clone(),
    };
    Some(Op {
        key: field_key(&op.key, field),
        call,
        outcome,
        ..op.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check, Model, Verdict};

    fn op(id: usize, call: Call, t: (u64, Option<u64>), outcome: Outcome) -> Op {
        Op {
            id,
            client: id,
            node: 1,
            key: "h0".into(),
            call,
            invoke_us: t.0,
            complete_us: t.1,
            outcome,
            final_read: false,
        }
    }
    fn hset(f: &str, v: &str) -> Call {
        Call::HSet {
            field: f.into(),
            value: v.into(),
        }
    }
    fn hget(f: &str) -> Call {
        Call::HGet { field: f.into() }
    }
    fn val(v: &str) -> Outcome {
        Outcome::Value(Some(v.into()))
    }

    #[test]
    fn fields_are_registers_of_their_own() {
        let ops = vec![
            op(0, hset("f0", "a"), (0, Some(1)), Outcome::Int(1)),
            op(1, hset("f1", "b"), (2, Some(3)), Outcome::Int(1)),
            op(2, hget("f0"), (4, Some(5)), val("a")),
            op(3, hget("f1"), (4, Some(5)), val("b")),
            op(
                4,
                Call::HDel { field: "f0".into() },
                (6, Some(7)),
                Outcome::Int(1),
            ),
            op(5, hget("f0"), (8, Some(9)), Outcome::Value(None)),
            op(6, hget("f2"), (8, Some(9)), Outcome::Value(None)),
        ];
        let r = check(&ops);
        let keys: Vec<&str> = r.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["h0[f0]", "h0[f1]", "h0[f2]"]);
        assert!(r.ok(), "{r:?}");
        assert!(r.keys.iter().all(|k| k.model == Model::Register));
    }

    #[test]
    fn stale_field_read_and_wrong_hdel_count_are_violations() {
        // f1 reads a value overwritten before the read began.
        let stale = vec![
            op(0, hset("f1", "a"), (0, Some(1)), Outcome::Int(1)),
            op(1, hset("f1", "b"), (2, Some(3)), Outcome::Int(0)),
            op(2, hget("f1"), (4, Some(5)), val("a")),
        ];
        let r = check(&stale);
        assert_eq!(r.violations().count(), 1);
        assert!(matches!(r.keys[0].verdict, Verdict::Violation { .. }));
        // HDEL says it removed a field nobody set.
        let del = vec![op(
            0,
            Call::HDel { field: "f2".into() },
            (0, Some(1)),
            Outcome::Int(1),
        )];
        assert_eq!(check(&del).violations().count(), 1);
        // A value written to another field does not satisfy a read of this one.
        let cross = vec![
            op(0, hset("f0", "a"), (0, Some(1)), Outcome::Int(1)),
            op(1, hget("f1"), (2, Some(3)), val("a")),
        ];
        let r = check(&cross);
        assert_eq!(r.violations().count(), 1);
        assert_eq!(r.keys[1].key, "h0[f1]");
    }
}
