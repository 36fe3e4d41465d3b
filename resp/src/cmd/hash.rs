//! Hash commands: HSET HSETNX HGET HMGET HMSET HDEL HEXISTS HLEN HSTRLEN HKEYS HVALS
//! HGETALL HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN. One parser for the family (by entry name),
//! the table entries, the registration table and the unit tests.

use bytes::Bytes;

use super::coll::{entry, scan_args, ScanArgs, Typed};
use super::spec::{CommandSpec, KeySpec};
use super::util::{arity, int, parse_float, syntax, upper};
use crate::{Command, Reply};

const GROUP: &str = "hash";

/// A parsed hash command (the key is `args[0]`).
pub type HashCmd = Typed<HashOp>;

/// What a hash command does.
#[derive(Debug, Clone, PartialEq)]
pub enum HashOp {
    /// HSET (replies the count added) and HMSET (`legacy`: replies OK).
    Set {
        pairs: Vec<(Bytes, Bytes)>,
        legacy: bool,
    },
    SetNx(Bytes, Bytes),
    Get(Bytes),
    MGet(Vec<Bytes>),
    Del(Vec<Bytes>),
    Exists(Bytes),
    Len,
    StrLen(Bytes),
    Keys,
    Vals,
    GetAll,
    IncrBy(Bytes, i64),
    IncrByFloat(Bytes, f64),
    /// HRANDFIELD key [count [WITHVALUES]].
    RandField {
        count: Option<i64>,
        with_values: bool,
    },
    Scan(ScanArgs),
}

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[2..];
    let op = match spec.name {
        "HSET" | "HMSET" => {
            if !a.len().is_multiple_of(2) {
                return Err(arity(spec.name));
            }
            let pairs = a.chunks_exact(2).map(|c| (c[0].clone(), c[1].clone()));
            HashOp::Set {
                pairs: pairs.collect(),
                legacy: spec.name == "HMSET",
            }
        }
        "HSETNX" => HashOp::SetNx(a[0].clone(), a[1].clone()),
        "HGET" => HashOp::Get(a[0].clone()),
        "HMGET" => HashOp::MGet(a.to_vec()),
        "HDEL" => HashOp::Del(a.to_vec()),
        "HEXISTS" => HashOp::Exists(a[0].clone()),
        "HLEN" => HashOp::Len,
        "HSTRLEN" => HashOp::StrLen(a[0].clone()),
        "HKEYS" => HashOp::Keys,
        "HVALS" => HashOp::Vals,
        "HGETALL" => HashOp::GetAll,
        "HINCRBY" => HashOp::IncrBy(a[0].clone(), int(&a[1])?),
        "HINCRBYFLOAT" => {
            let d =
                parse_float(&a[1]).ok_or_else(|| Reply::err("ERR value is not a valid float"))?;
            if d.is_infinite() {
                return Err(Reply::err("ERR value is NaN or Infinity"));
            }
            HashOp::IncrByFloat(a[0].clone(), d)
        }
        "HRANDFIELD" => rand_field(a)?,
        _ => HashOp::Scan(scan_args(a)?),
    };
    Ok(Command::Hash(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

fn rand_field(a: &[Bytes]) -> Result<HashOp, Reply> {
    let with_values = match a {
        [] | [_] => false,
        [_, w] if upper(w) == "WITHVALUES" => true,
        _ => return Err(syntax()),
    };
    Ok(HashOp::RandField {
        count: a.first().map(|c| int(c)).transpose()?,
        with_values,
    })
}

const RO: &[&str] = &["RO", "access"];
const RW_UPDATE: &[&str] = &["RW", "update"];

entry!(
    HSET,
    "HSET",
    -4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse,
    "hash",
    "2.0.0",
    "Creates or modifies the value of a field in a hash.",
    "key:key#0 data:block+(field:string value:string)"
);
entry!(
    HMSET,
    "HMSET",
    -4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse,
    "hash",
    "2.0.0",
    "Sets the values of multiple fields.",
    "key:key#0 data:block+(field:string value:string)"
);
entry!(
    HSETNX,
    "HSETNX",
    4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, &["RW", "insert"])],
    parse,
    "hash",
    "2.0.0",
    "Sets the value of a field in a hash only when the field doesn't exist.",
    "key:key#0 field:string value:string"
);
entry!(
    HGET,
    "HGET",
    3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.0.0",
    "Returns the value of a field in a hash.",
    "key:key#0 field:string"
);
entry!(
    HMGET,
    "HMGET",
    -3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.0.0",
    "Returns the values of all fields in a hash.",
    "key:key#0 field:string+"
);
entry!(
    HDEL,
    "HDEL",
    -3,
    ["write", "fast"],
    [KeySpec::range(1, 0, 1, &["RW", "delete"])],
    parse,
    "hash",
    "2.0.0",
    "Deletes one or more fields and their values from a hash.",
    "key:key#0 field:string+"
);
entry!(
    HEXISTS,
    "HEXISTS",
    3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "hash",
    "2.0.0",
    "Determines whether a field exists in a hash.",
    "key:key#0 field:string"
);
entry!(
    HLEN,
    "HLEN",
    2,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "hash",
    "2.0.0",
    "Returns the number of fields in a hash.",
    "key:key#0"
);
entry!(
    HSTRLEN,
    "HSTRLEN",
    3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "hash",
    "3.2.0",
    "Returns the length of the value of a field.",
    "key:key#0 field:string"
);
entry!(
    HKEYS,
    "HKEYS",
    2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.0.0",
    "Returns all fields in a hash.",
    "key:key#0"
);
entry!(
    HVALS,
    "HVALS",
    2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.0.0",
    "Returns all values in a hash.",
    "key:key#0"
);
entry!(
    HGETALL,
    "HGETALL",
    2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.0.0",
    "Returns all fields and values in a hash.",
    "key:key#0"
);
entry!(
    HINCRBY,
    "HINCRBY",
    4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse,
    "hash",
    "2.0.0",
    "Increments the integer value of a field in a hash by a number.",
    "key:key#0 field:string increment:integer"
);
entry!(
    HINCRBYFLOAT,
    "HINCRBYFLOAT",
    4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse,
    "hash",
    "2.6.0",
    "Increments the floating point value of a field by a number.",
    "key:key#0 field:string increment:double"
);
entry!(
    HRANDFIELD,
    "HRANDFIELD",
    -2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "6.2.0",
    "Returns one or more random fields from a hash.",
    "key:key#0 options:block?(count:integer withvalues:pure-token?=WITHVALUES)"
);
entry!(
    HSCAN,
    "HSCAN",
    -3,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "hash",
    "2.8.0",
    "Iterates over fields and values of a hash.",
    "key:key#0 cursor:integer pattern:pattern?=MATCH count:integer?=COUNT"
);

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &HSET,
    &HSETNX,
    &HGET,
    &HMGET,
    &HMSET,
    &HDEL,
    &HEXISTS,
    &HLEN,
    &HSTRLEN,
    &HKEYS,
    &HVALS,
    &HGETALL,
    &HINCRBY,
    &HINCRBYFLOAT,
    &HRANDFIELD,
    &HSCAN,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};

    fn op(s: &str) -> HashOp {
        match p(s) {
            Command::Hash(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn hset_pairs_and_arity() {
        assert_eq!(
            op("HSET h a 1 b 2"),
            HashOp::Set {
                pairs: vec![
                    (Bytes::from("a"), Bytes::from("1")),
                    ("b".into(), "2".into())
                ],
                legacy: false
            }
        );
        assert_eq!(
            err("HSET h a 1 b"),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(
            err("HMSET h a"),
            "ERR wrong number of arguments for 'hmset' command"
        );
        assert!(matches!(
            op("HMSET h a 1"),
            HashOp::Set { legacy: true, .. }
        ));
    }

    #[test]
    fn numbers_and_options() {
        assert_eq!(err("HINCRBY h f x"), NOT_INT);
        assert_eq!(err("HINCRBYFLOAT h f x"), "ERR value is not a valid float");
        assert_eq!(err("HINCRBYFLOAT h f -inf"), "ERR value is NaN or Infinity");
        assert_eq!(
            op("HINCRBYFLOAT h f 1.5"),
            HashOp::IncrByFloat("f".into(), 1.5)
        );
        assert_eq!(
            op("HRANDFIELD h -3 withvalues"),
            HashOp::RandField {
                count: Some(-3),
                with_values: true
            }
        );
        assert_eq!(err("HRANDFIELD h 3 x"), SYNTAX);
        assert_eq!(err("HRANDFIELD h 3 WITHVALUES x"), SYNTAX);
        assert_eq!(err("HSCAN h x"), "ERR invalid cursor");
        assert_eq!(err("HSCAN h 0 COUNT 0"), SYNTAX);
        assert_eq!(err("HSCAN h 0 MATCH"), SYNTAX);
        let Command::Hash(c) = p("HSCAN h 7 match a* COUNT 5") else {
            panic!()
        };
        assert_eq!(
            c.op,
            HashOp::Scan(ScanArgs {
                cursor: 7,
                pattern: Some("a*".into()),
                count: 5
            })
        );
        assert_eq!(c.key(), b"h");
        assert_eq!(p("HGET h f").kind(), crate::Kind::Read);
        assert_eq!(p("HDEL h f g").kind(), crate::Kind::Write);
        assert_eq!(p("HDEL h f g").keys(), vec![&Bytes::from("h")]);
    }
}
