//! String commands except SET and its variants (those are in `string_set.rs`): GET MGET
//! STRLEN GETRANGE SUBSTR GETDEL MSET MSETNX APPEND SETRANGE SETNX and the counters INCR DECR
//! INCRBY DECRBY INCRBYFLOAT. Parsers beside their table entries, then the family's
//! registration table and its unit tests.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{int, pairs, parse_float};
use crate::{Command, Reply};

fn parse_get(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Get(argv[1].clone()))
}

pub(crate) static GET: CommandSpec = CommandSpec {
    summary: "Returns the string value of a key.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0",
    ..CommandSpec::new(
        "GET",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_get,
    )
};

fn parse_mget(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::MGet(argv[1..].to_vec()))
}

pub(crate) static MGET: CommandSpec = CommandSpec {
    summary: "Atomically returns the string values of one or more keys.",
    since: "1.0.0",
    group: "string",
    complexity: "O(N) where N is the number of keys to retrieve.",
    acl_categories: &["string"],
    tips: &["request_policy:multi_shard"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "MGET",
        -2,
        &["readonly", "fast"],
        &[KeySpec::range(1, -1, 1, &["RO", "access"])],
        parse_mget,
    )
};

fn parse_strlen(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::StrLen(argv[1].clone()))
}

pub(crate) static STRLEN: CommandSpec = CommandSpec {
    summary: "Returns the length of a string value.",
    since: "2.2.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0",
    ..CommandSpec::new(
        "STRLEN",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO"])],
        parse_strlen,
    )
};

/// GETRANGE and its alias SUBSTR.
fn parse_getrange(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::GetRange {
        key: argv[1].clone(),
        start: int(&argv[2])?,
        end: int(&argv[3])?,
    })
}

pub(crate) static GETRANGE: CommandSpec = CommandSpec {
    summary: "Returns a substring of the string stored at a key.",
    since: "2.4.0",
    group: "string",
    complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
    acl_categories: &["string"],
    args: "key:key#0 start:integer end:integer",
    ..CommandSpec::new(
        "GETRANGE",
        4,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_getrange,
    )
};

pub(crate) static SUBSTR: CommandSpec = CommandSpec {
    summary: "Returns a substring from a string value.",
    since: "1.0.0",
    group: "string",
    complexity: "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.",
    acl_categories: &["string"],
    doc_flags: &["deprecated"],
    deprecated_since: "2.0.0",
    replaced_by: "`GETRANGE`",
    args: "key:key#0 start:integer end:integer",
    ..CommandSpec::new(
        "SUBSTR",
        4,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_getrange,
    )
};

fn parse_getdel(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::GetDel(argv[1].clone()))
}

pub(crate) static GETDEL: CommandSpec = CommandSpec {
    summary: "Returns the string value of a key after deleting the key.",
    since: "6.2.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0",
    ..CommandSpec::new(
        "GETDEL",
        2,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "delete"])],
        parse_getdel,
    )
};

fn parse_mset(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::MSet(pairs("mset", &argv[1..])?))
}

pub(crate) static MSET: CommandSpec = CommandSpec {
    summary: "Atomically creates or modifies the string values of one or more keys.",
    since: "1.0.1",
    group: "string",
    complexity: "O(N) where N is the number of keys to set.",
    acl_categories: &["string"],
    tips: &[
        "request_policy:multi_shard",
        "response_policy:all_succeeded",
    ],
    args: "data:block*(key:key#0 value:string)",
    ..CommandSpec::new(
        "MSET",
        -3,
        &["write", "denyoom"],
        &[KeySpec::range(1, -1, 2, &["OW", "update"])],
        parse_mset,
    )
};

fn parse_msetnx(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::MSetNx(pairs("msetnx", &argv[1..])?))
}

pub(crate) static MSETNX: CommandSpec = CommandSpec {
    summary:
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    since: "1.0.1",
    group: "string",
    complexity: "O(N) where N is the number of keys to set.",
    acl_categories: &["string"],
    args: "data:block*(key:key#0 value:string)",
    ..CommandSpec::new(
        "MSETNX",
        -3,
        &["write", "denyoom"],
        &[KeySpec::range(1, -1, 2, &["OW", "insert"])],
        parse_msetnx,
    )
};

fn parse_append(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Append {
        key: argv[1].clone(),
        value: argv[2].clone(),
    })
}

pub(crate) static APPEND: CommandSpec = CommandSpec {
    summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    since: "2.0.0",
    group: "string",
    complexity: "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
    acl_categories: &["string"],
    args: "key:key#0 value:string",
    ..CommandSpec::new(
        "APPEND",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "insert"])],
        parse_append,
    )
};

fn parse_setrange(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let offset = int(&argv[2])?;
    if offset < 0 {
        return Err(Reply::err("ERR offset is out of range"));
    }
    Ok(Command::SetRange {
        key: argv[1].clone(),
        offset,
        value: argv[3].clone(),
    })
}

pub(crate) static SETRANGE: CommandSpec = CommandSpec {
    summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
    since: "2.2.0",
    group: "string",
    complexity: "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
    acl_categories: &["string"],
    args: "key:key#0 offset:integer value:string",
    ..CommandSpec::new(
        "SETRANGE",
        4,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_setrange,
    )
};

fn parse_setnx(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::SetNx {
        key: argv[1].clone(),
        value: argv[2].clone(),
    })
}

pub(crate) static SETNX: CommandSpec = CommandSpec {
    summary: "Set the string value of a key only when the key doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    doc_flags: &["deprecated"],
    deprecated_since: "2.6.12",
    replaced_by: "`SET` with the `NX` argument",
    args: "key:key#0 value:string",
    ..CommandSpec::new(
        "SETNX",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["OW", "insert"])],
        parse_setnx,
    )
};

/// INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT.
fn parse_counter(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let key = argv[1].clone();
    let delta = match spec.name {
        "INCR" => 1,
        "DECR" => -1,
        "INCRBY" => int(&argv[2])?,
        "DECRBY" => int(&argv[2])?
            .checked_neg()
            .ok_or_else(|| Reply::err("ERR decrement would overflow"))?,
        _ => {
            let delta = parse_float(&argv[2])
                .ok_or_else(|| Reply::err("ERR value is not a valid float"))?;
            return Ok(Command::IncrByFloat { key, delta });
        }
    };
    Ok(Command::IncrBy { key, delta })
}

pub(crate) static INCR: CommandSpec = CommandSpec {
    summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0",
    ..CommandSpec::new(
        "INCR",
        2,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_counter,
    )
};

pub(crate) static DECR: CommandSpec = CommandSpec {
    summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0",
    ..CommandSpec::new(
        "DECR",
        2,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_counter,
    )
};

pub(crate) static INCRBY: CommandSpec = CommandSpec {
    summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0 increment:integer",
    ..CommandSpec::new(
        "INCRBY",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_counter,
    )
};

pub(crate) static DECRBY: CommandSpec = CommandSpec {
    summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0 decrement:integer",
    ..CommandSpec::new(
        "DECRBY",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_counter,
    )
};

pub(crate) static INCRBYFLOAT: CommandSpec = CommandSpec {
    summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    since: "2.6.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0 increment:double",
    ..CommandSpec::new(
        "INCRBYFLOAT",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_counter,
    )
};
/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &GET,
    &MGET,
    &STRLEN,
    &GETRANGE,
    &SUBSTR,
    &GETDEL,
    &MSET,
    &MSETNX,
    &APPEND,
    &SETRANGE,
    &SETNX,
    &INCR,
    &DECR,
    &INCRBY,
    &DECRBY,
    &INCRBYFLOAT,
];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn reads() {
        assert_eq!(p("get k"), Command::Get(b("k")));
        assert_eq!(p("MGET a b"), Command::MGet(vec![b("a"), b("b")]));
        assert_eq!(p("EXISTS a a"), Command::Exists(vec![b("a"), b("a")]));
        assert_eq!(p("STRLEN k"), Command::StrLen(b("k")));
        let gr = Command::GetRange {
            key: b("k"),
            start: 0,
            end: -1,
        };
        assert_eq!(p("GETRANGE k 0 -1"), gr);
        assert_eq!(p("substr k 0 -1"), gr);
        assert_eq!(err("GETRANGE k a 1"), NOT_INT);
        assert_eq!(err("GETRANGE k 0 1.5"), NOT_INT);
        assert_eq!(p("KEYS *"), Command::Keys(b("*")));
        assert_eq!(p("TYPE k"), Command::Type(b("k")));
        let ttl = |unit| Command::Ttl { key: b("k"), unit };
        assert_eq!(p("TTL k"), ttl(TimeUnit::Seconds));
        assert_eq!(p("PTTL k"), ttl(TimeUnit::Milliseconds));
        let et = |unit| Command::ExpireTime { key: b("k"), unit };
        assert_eq!(p("EXPIRETIME k"), et(TimeUnit::Seconds));
        assert_eq!(p("PEXPIRETIME k"), et(TimeUnit::Milliseconds));
        assert_eq!(p("DBSIZE"), Command::DbSize);
        assert_eq!(p("TOUCH a b"), Command::Touch(vec![b("a"), b("b")]));
    }

    #[test]
    fn counters() {
        let by = |delta| Command::IncrBy { key: b("k"), delta };
        assert_eq!(p("INCR k"), by(1));
        assert_eq!(p("DECR k"), by(-1));
        assert_eq!(p("INCRBY k -7"), by(-7));
        assert_eq!(p("DECRBY k 5"), by(-5));
        assert_eq!(p("DECRBY k -9223372036854775807"), by(i64::MAX));
        assert_eq!(
            err("DECRBY k -9223372036854775808"),
            "ERR decrement would overflow"
        );
        for bad in [
            "1.5",
            "01",
            "+1",
            "-0",
            " 1",
            "",
            "9223372036854775808",
            "abc",
        ] {
            assert_eq!(err_argv(&[b("INCRBY"), b("k"), b(bad)]), NOT_INT, "{bad:?}");
        }
        let f = |delta| Command::IncrByFloat { key: b("k"), delta };
        assert_eq!(p("INCRBYFLOAT k 1.5e1"), f(15.0));
        assert_eq!(p("INCRBYFLOAT k -.5"), f(-0.5));
        assert_eq!(p("INCRBYFLOAT k 3"), f(3.0));
        assert_eq!(p("INCRBYFLOAT k inf"), f(f64::INFINITY));
        for bad in ["abc", "nan", "1e400", " 1", "1 ", "", "--1", "1.5x"] {
            assert_eq!(
                err_argv(&[b("INCRBYFLOAT"), b("k"), b(bad)]),
                "ERR value is not a valid float",
                "{bad:?}"
            );
        }
    }
}
