//! Keyspace commands (Redis's "generic" group, except expiry): DEL UNLINK EXISTS TOUCH KEYS
//! SCAN TYPE RENAME RENAMENX. Parsers beside their table entries, then the family's
//! registration table and its unit tests.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{int, syntax, upper};
use crate::{Command, Reply};

/// DEL and UNLINK.
fn parse_del(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Del(argv[1..].to_vec()))
}

pub(crate) static DEL: CommandSpec = CommandSpec {
    summary: "Deletes one or more keys.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
    acl_categories: &["keyspace"],
    tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "DEL",
        -2,
        &["write"],
        &[KeySpec::range(1, -1, 1, &["RM", "delete"])],
        parse_del,
    )
};

pub(crate) static UNLINK: CommandSpec = CommandSpec {
    summary: "Asynchronously deletes one or more keys.",
    since: "4.0.0",
    group: "generic",
    complexity: "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
    acl_categories: &["keyspace"],
    tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "UNLINK",
        -2,
        &["write", "fast"],
        &[KeySpec::range(1, -1, 1, &["RM", "delete"])],
        parse_del,
    )
};

fn parse_exists(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Exists(argv[1..].to_vec()))
}

pub(crate) static EXISTS: CommandSpec = CommandSpec {
    summary: "Determines whether one or more keys exist.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(N) where N is the number of keys to check.",
    acl_categories: &["keyspace"],
    tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
    history: &[("3.0.3", "Accepts multiple `key` arguments.")],
    args: "key:key*#0",
    ..CommandSpec::new(
        "EXISTS",
        -2,
        &["readonly", "fast"],
        &[KeySpec::range(1, -1, 1, &["RO"])],
        parse_exists,
    )
};

fn parse_touch(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Touch(argv[1..].to_vec()))
}

pub(crate) static TOUCH: CommandSpec = CommandSpec {
    summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
    since: "3.2.1",
    group: "generic",
    complexity: "O(N) where N is the number of keys that will be touched.",
    acl_categories: &["keyspace"],
    tips: &["request_policy:multi_shard", "response_policy:agg_sum"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "TOUCH",
        -2,
        &["readonly", "fast"],
        &[KeySpec::range(1, -1, 1, &["RO"])],
        parse_touch,
    )
};

fn parse_keys(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Keys(argv[1].clone()))
}

pub(crate) static KEYS: CommandSpec = CommandSpec {
    summary: "Returns all key names that match a pattern.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
    acl_categories: &["keyspace", "dangerous"],
    tips: &["request_policy:all_shards", "nondeterministic_output_order"],
    args: "pattern:pattern",
    ..CommandSpec::new("KEYS", 2, &["readonly"], &[], parse_keys)
};

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
fn parse_scan(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[1..];
    // Redis's string2ull: plain decimal within u64.
    let cursor = std::str::from_utf8(&a[0])
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_) = (None, 10u64, None);
    let mut rest = &a[1..];
    while let [opt, val, tail @ ..] = rest {
        match upper(opt).as_str() {
            "MATCH" => pattern = Some(val.clone()),
            "COUNT" => {
                count = u64::try_from(int(val)?)
                    .ok()
                    .filter(|&c| c >= 1)
                    .ok_or_else(syntax)?;
            }
            "TYPE" => type_ = Some(val.clone()),
            _ => return Err(syntax()),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(syntax());
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_,
    })
}

pub(crate) static SCAN: CommandSpec = CommandSpec {
    summary: "Iterates over the key names in the database.",
    since: "2.8.0",
    group: "generic",
    complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    acl_categories: &["keyspace"],
    tips: &["nondeterministic_output", "request_policy:special", "response_policy:special"],
    history: &[("6.0.0", "Added the `TYPE` subcommand.")],
    args: "cursor:integer pattern:pattern?=MATCH count:integer?=COUNT type:string?=TYPE@6.0.0",
    ..CommandSpec::new("SCAN", -2, &["readonly"], &[], parse_scan)
};

fn parse_type(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Type(argv[1].clone()))
}

pub(crate) static TYPE: CommandSpec = CommandSpec {
    summary: "Determines the type of value stored at a key.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    args: "key:key#0",
    ..CommandSpec::new(
        "TYPE",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO"])],
        parse_type,
    )
};

/// RENAME and RENAMENX.
fn parse_rename(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Rename {
        src: argv[1].clone(),
        dst: argv[2].clone(),
        nx: spec.name == "RENAMENX",
    })
}

pub(crate) static RENAME: CommandSpec = CommandSpec {
    summary: "Renames a key and overwrites the destination.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    args: "key:key#0 newkey:key#1",
    ..CommandSpec::new(
        "RENAME",
        3,
        &["write"],
        &[
            KeySpec::range(1, 0, 1, &["RW", "access", "delete"]),
            KeySpec::range(2, 0, 1, &["OW", "update"]),
        ],
        parse_rename,
    )
};

pub(crate) static RENAMENX: CommandSpec = CommandSpec {
    summary: "Renames a key only when the target key name doesn't exist.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    history: &[(
        "3.2.0",
        "The command no longer returns an error when source and destination names are the same.",
    )],
    args: "key:key#0 newkey:key#1",
    ..CommandSpec::new(
        "RENAMENX",
        3,
        &["write", "fast"],
        &[
            KeySpec::range(1, 0, 1, &["RW", "access", "delete"]),
            KeySpec::range(2, 0, 1, &["OW", "insert"]),
        ],
        parse_rename,
    )
};
/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &DEL, &UNLINK, &EXISTS, &TOUCH, &KEYS, &SCAN, &TYPE, &RENAME, &RENAMENX,
];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn scan() {
        assert_eq!(
            p("SCAN 0"),
            Command::Scan {
                cursor: 0,
                pattern: None,
                count: 10,
                type_: None
            }
        );
        assert_eq!(
            p("scan 18446744073709551615 match a* count 100 type string"),
            Command::Scan {
                cursor: u64::MAX,
                pattern: Some(b("a*")),
                count: 100,
                type_: Some(b("string"))
            }
        );
        assert_eq!(err("SCAN x"), "ERR invalid cursor");
        assert_eq!(err("SCAN -1"), "ERR invalid cursor");
        assert_eq!(err("SCAN 18446744073709551616"), "ERR invalid cursor");
        assert_eq!(err("SCAN 0 COUNT 0"), SYNTAX);
        assert_eq!(err("SCAN 0 COUNT -5"), SYNTAX);
        assert_eq!(err("SCAN 0 COUNT x"), NOT_INT);
        assert_eq!(err("SCAN 0 COUNT"), SYNTAX);
        assert_eq!(err("SCAN 0 FOO bar"), SYNTAX);
    }

    #[test]
    fn deletes_and_flush() {
        assert_eq!(p("DEL a b"), Command::Del(vec![b("a"), b("b")]));
        assert_eq!(p("UNLINK a"), Command::Del(vec![b("a")]));
        assert_eq!(
            p("RENAME a b"),
            Command::Rename {
                src: b("a"),
                dst: b("b"),
                nx: false
            }
        );
        assert_eq!(
            p("RENAMENX a b"),
            Command::Rename {
                src: b("a"),
                dst: b("b"),
                nx: true
            }
        );
        assert_eq!(p("PERSIST k"), Command::Persist(b("k")));
        for ok in ["FLUSHALL", "FLUSHDB", "flushall async", "FLUSHDB SYNC"] {
            assert_eq!(p(ok), Command::FlushAll);
        }
        assert_eq!(err("FLUSHALL NOW"), SYNTAX);
        assert_eq!(err("FLUSHALL ASYNC SYNC"), SYNTAX);
    }
}
