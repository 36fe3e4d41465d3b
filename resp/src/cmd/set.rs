//! Set commands: SADD SREM SISMEMBER SMISMEMBER SCARD SMEMBERS SPOP SRANDMEMBER SMOVE
//! SINTER SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN. One parser for
//! the family (by entry name), the table entries and the unit tests.

use bytes::Bytes;

use super::coll::{count, entry, keynum, numkeys, scan_args, ScanArgs, Typed};
use super::spec::{CommandSpec, KeySpec};
use super::util::{int, syntax, upper};
use crate::{Command, Reply};

const GROUP: &str = "set";

/// A parsed set command (the key is `args[0]` for single-key commands).
pub type SetCmd = Typed<SetOp>;

/// SINTER, SUNION or SDIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algebra {
    Inter,
    Union,
    Diff,
}

/// What a set command does.
#[derive(Debug, Clone, PartialEq)]
pub enum SetOp {
    Add(Vec<Bytes>),
    Rem(Vec<Bytes>),
    IsMember(Bytes),
    MIsMember(Vec<Bytes>),
    Card,
    Members,
    Pop(Option<u64>),
    RandMember(Option<i64>),
    Move {
        dst: Bytes,
        member: Bytes,
    },
    /// SINTER / SUNION / SDIFF, and their STORE forms into `store`.
    Algebra {
        kind: Algebra,
        keys: Vec<Bytes>,
        store: Option<Bytes>,
    },
    InterCard {
        keys: Vec<Bytes>,
        limit: u64,
    },
    Scan(ScanArgs),
}

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[2..];
    let kind = |n: &str| match n {
        "SINTER" | "SINTERSTORE" => Algebra::Inter,
        "SUNION" | "SUNIONSTORE" => Algebra::Union,
        _ => Algebra::Diff,
    };
    let op = match spec.name {
        "SADD" => SetOp::Add(a.to_vec()),
        "SREM" => SetOp::Rem(a.to_vec()),
        "SISMEMBER" => SetOp::IsMember(a[0].clone()),
        "SMISMEMBER" => SetOp::MIsMember(a.to_vec()),
        "SCARD" => SetOp::Card,
        "SMEMBERS" => SetOp::Members,
        "SPOP" | "SRANDMEMBER" if a.len() > 1 => return Err(syntax()),
        "SPOP" => SetOp::Pop(a.first().map(|c| count(c)).transpose()?),
        "SRANDMEMBER" => SetOp::RandMember(a.first().map(|c| int(c)).transpose()?),
        "SMOVE" => SetOp::Move {
            dst: a[0].clone(),
            member: a[1].clone(),
        },
        n @ ("SINTER" | "SUNION" | "SDIFF") => SetOp::Algebra {
            kind: kind(n),
            keys: argv[1..].to_vec(),
            store: None,
        },
        n @ ("SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE") => SetOp::Algebra {
            kind: kind(n),
            keys: a.to_vec(),
            store: Some(argv[1].clone()),
        },
        "SINTERCARD" => {
            let (keys, rest) = numkeys(&argv[1..])?;
            SetOp::InterCard {
                keys,
                limit: limit(rest)?,
            }
        }
        _ => SetOp::Scan(scan_args(a)?),
    };
    Ok(Command::Sets(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// `[LIMIT limit]` of SINTERCARD / ZINTERCARD (0 = no limit).
pub(crate) fn limit(rest: &[Bytes]) -> Result<u64, Reply> {
    match rest {
        [] => Ok(0),
        [l, n] if upper(l) == "LIMIT" => crate::request::string2ll(n)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Reply::err("ERR LIMIT can't be negative")),
        _ => Err(syntax()),
    }
}

const RO: &[&str] = &["RO", "access"];
const RW_INSERT: &[&str] = &["RW", "insert"];
const OW: &[&str] = &["OW", "update"];

entry!(
    SADD,
    "SADD",
    -3,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse,
    "set",
    "1.0.0",
    "Adds one or more members to a set. Creates the key if it doesn't exist.",
    "key:key#0 member:string+"
);
entry!(
    SREM,
    "SREM",
    -3,
    ["write", "fast"],
    [KeySpec::range(1, 0, 1, &["RW", "delete"])],
    parse,
    "set",
    "1.0.0",
    "Removes one or more members from a set. Deletes the set if the last member was removed.",
    "key:key#0 member:string+"
);
entry!(
    SISMEMBER,
    "SISMEMBER",
    3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "set",
    "1.0.0",
    "Determines whether a member belongs to a set.",
    "key:key#0 member:string"
);
entry!(
    SMISMEMBER,
    "SMISMEMBER",
    -3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "set",
    "6.2.0",
    "Determines whether multiple members belong to a set.",
    "key:key#0 member:string+"
);
entry!(
    SCARD,
    "SCARD",
    2,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "set",
    "1.0.0",
    "Returns the number of members in a set.",
    "key:key#0"
);
entry!(
    SMEMBERS,
    "SMEMBERS",
    2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Returns all members of a set.",
    "key:key#0"
);
entry!(SPOP, "SPOP", -2, ["write", "fast"], [KeySpec::range(1, 0, 1, &["RW", "access", "delete"])],
    parse, "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
    "key:key#0 count:integer?@3.2.0");
entry!(
    SRANDMEMBER,
    "SRANDMEMBER",
    -2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Get one or multiple random members from a set",
    "key:key#0 count:integer?@2.6.0"
);
entry!(
    SMOVE,
    "SMOVE",
    4,
    ["write", "fast"],
    [
        KeySpec::range(1, 0, 1, &["RW", "access", "delete"]),
        KeySpec::range(2, 0, 1, RW_INSERT)
    ],
    parse,
    "set",
    "1.0.0",
    "Moves a member from one set to another.",
    "source:key#0 destination:key#1 member:string"
);
entry!(
    SINTER,
    "SINTER",
    -2,
    ["readonly"],
    [KeySpec::range(1, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Returns the intersect of multiple sets.",
    "key:key+#0"
);
entry!(
    SUNION,
    "SUNION",
    -2,
    ["readonly"],
    [KeySpec::range(1, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Returns the union of multiple sets.",
    "key:key+#0"
);
entry!(
    SDIFF,
    "SDIFF",
    -2,
    ["readonly"],
    [KeySpec::range(1, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Returns the difference of multiple sets.",
    "key:key+#0"
);
entry!(
    SINTERSTORE,
    "SINTERSTORE",
    -3,
    ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, OW), KeySpec::range(2, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Stores the intersect of multiple sets in a key.",
    "destination:key#0 key:key+#1"
);
entry!(
    SUNIONSTORE,
    "SUNIONSTORE",
    -3,
    ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, OW), KeySpec::range(2, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Stores the union of multiple sets in a key.",
    "destination:key#0 key:key+#1"
);
entry!(
    SDIFFSTORE,
    "SDIFFSTORE",
    -3,
    ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, OW), KeySpec::range(2, -1, 1, RO)],
    parse,
    "set",
    "1.0.0",
    "Stores the difference of multiple sets in a key.",
    "destination:key#0 key:key+#1"
);
entry!(
    SINTERCARD,
    "SINTERCARD",
    -3,
    ["readonly", "movablekeys"],
    [keynum(1, &["RO", "access"])],
    parse,
    "set",
    "7.0.0",
    "Returns the number of members of the intersect of multiple sets.",
    "numkeys:integer key:key+#0 limit:integer?=LIMIT"
);
entry!(
    SSCAN,
    "SSCAN",
    -3,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "set",
    "2.8.0",
    "Iterates over members of a set.",
    "key:key#0 cursor:integer pattern:pattern?=MATCH count:integer?=COUNT"
);

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &SADD,
    &SREM,
    &SISMEMBER,
    &SMISMEMBER,
    &SCARD,
    &SMEMBERS,
    &SPOP,
    &SRANDMEMBER,
    &SMOVE,
    &SINTER,
    &SINTERCARD,
    &SINTERSTORE,
    &SUNION,
    &SUNIONSTORE,
    &SDIFF,
    &SDIFFSTORE,
    &SSCAN,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};

    fn op(s: &str) -> SetOp {
        match p(s) {
            Command::Sets(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn counts_and_options() {
        assert_eq!(op("SPOP s"), SetOp::Pop(None));
        assert_eq!(op("SPOP s 3"), SetOp::Pop(Some(3)));
        assert_eq!(
            err("SPOP s -1"),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(err("SPOP s 1 2"), SYNTAX);
        assert_eq!(op("SRANDMEMBER s -3"), SetOp::RandMember(Some(-3)));
        assert_eq!(err("SRANDMEMBER s x"), NOT_INT);
        assert_eq!(
            op("SINTERCARD 2 a b LIMIT 4"),
            SetOp::InterCard {
                keys: vec!["a".into(), "b".into()],
                limit: 4
            }
        );
        assert_eq!(
            err("SINTERCARD 1 a LIMIT -1"),
            "ERR LIMIT can't be negative"
        );
        assert_eq!(err("SINTERCARD 1 a LIM 1"), SYNTAX);
        assert_eq!(err("SINTERCARD 1 a LIMIT x"), "ERR LIMIT can't be negative");
        assert_eq!(
            err("SINTERCARD x a"),
            "ERR numkeys should be greater than 0"
        );
    }

    #[test]
    fn algebra_keys() {
        let c = p("SUNIONSTORE d a b");
        assert_eq!(c.keys().len(), 3);
        assert_eq!(
            op("SUNIONSTORE d a b"),
            SetOp::Algebra {
                kind: Algebra::Union,
                keys: vec!["a".into(), "b".into()],
                store: Some("d".into())
            }
        );
        assert_eq!(p("SINTER a b c").kind(), crate::Kind::Read);
        assert_eq!(p("SMOVE a b m").keys().len(), 2);
    }
}
