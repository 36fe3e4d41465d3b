//! Keyspace commands (Redis's "generic" group, except expiry): DEL UNLINK EXISTS TOUCH KEYS
//! SCAN TYPE RENAME RENAMENX COPY RANDOMKEY OBJECT. Parsers beside their table entries, then the family's
//! registration table and its unit tests.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{int, parse_container, syntax, upper};
use crate::{Command, ObjectCmd, ObjectSub, Reply};

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
/// Redis 7.0's COPY: options after the two keys, `DB` needs its value, any database but
/// 0 is out of range (raftkv has one, as SELECT says). A key copied onto itself is refused
/// by the store, at execution, as Redis does.
fn parse_copy(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        match upper(&argv[j]).as_str() {
            "REPLACE" => replace = true,
            "DB" if j + 1 < argv.len() => {
                let db = int(&argv[j + 1])?;
                if i32::try_from(db).is_err() {
                    return Err(Reply::err(
                        "ERR value is out of range, value must between -2147483648 and 2147483647",
                    ));
                }
                if db != 0 {
                    return Err(Reply::err("ERR DB index is out of range"));
                }
                j += 1;
            }
            _ => return Err(syntax()),
        }
        j += 1;
    }
    Ok(Command::Copy {
        src: argv[1].clone(),
        dst: argv[2].clone(),
        replace,
    })
}

pub(crate) static COPY: CommandSpec = CommandSpec {
    summary: "Copies the value of a key to a new key.",
    since: "6.2.0",
    group: "generic",
    complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
    acl_categories: &["keyspace"],
    args: "source:key#0 destination:key#1 destination-db:integer?=DB replace:pure-token?=REPLACE",
    ..CommandSpec::new(
        "COPY",
        -3,
        &["write", "denyoom"],
        &[
            KeySpec::range(1, 0, 1, &["RO", "access"]),
            KeySpec::range(2, 0, 1, &["OW", "update"]),
        ],
        parse_copy,
    )
};

fn parse_randomkey(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::RandomKey)
}

pub(crate) static RANDOMKEY: CommandSpec = CommandSpec {
    summary: "Returns a random key name from the database.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    tips: &[
        "request_policy:all_shards",
        "response_policy:special",
        "nondeterministic_output",
    ],
    ..CommandSpec::new("RANDOMKEY", 1, &["readonly"], &[], parse_randomkey)
};

fn parse_object_sub(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let sub = match spec.name {
        "object|encoding" => ObjectSub::Encoding,
        "object|freq" => ObjectSub::Freq,
        "object|idletime" => ObjectSub::IdleTime,
        "object|refcount" => ObjectSub::RefCount,
        _ => ObjectSub::Help,
    };
    Ok(Command::Object(ObjectCmd {
        sub,
        args: argv[1..].to_vec(),
    }))
}

static OBJECT_KEY: [KeySpec; 1] = [KeySpec::range(2, 0, 1, &["RO"])];

/// One keyed OBJECT subcommand's entry.
const fn object_keyed(
    name: &'static str,
    summary: &'static str,
    since: &'static str,
) -> CommandSpec {
    CommandSpec {
        summary,
        since,
        group: "generic",
        complexity: "O(1)",
        acl_categories: &["keyspace"],
        tips: &["nondeterministic_output"],
        args: "key:key#0",
        ..CommandSpec::new(name, 3, &["readonly"], &OBJECT_KEY, parse_object_sub)
    }
}

static OBJECT_SUBCOMMANDS: [CommandSpec; 5] = [
    object_keyed(
        "object|encoding",
        "Returns the internal encoding of a Redis object.",
        "2.2.3",
    ),
    object_keyed(
        "object|freq",
        "Returns the logarithmic access frequency counter of a Redis object.",
        "4.0.0",
    ),
    CommandSpec {
        summary: "Returns helpful text about the different subcommands.",
        since: "6.2.0",
        group: "generic",
        complexity: "O(1)",
        acl_categories: &["keyspace"],
        ..CommandSpec::new(
            "object|help",
            2,
            &["loading", "stale"],
            &[],
            parse_object_sub,
        )
    },
    object_keyed(
        "object|idletime",
        "Returns the time since the last access to a Redis object.",
        "2.2.3",
    ),
    object_keyed(
        "object|refcount",
        "Returns the reference count of a value of a key.",
        "2.2.3",
    ),
];

/// The entry of an OBJECT subcommand.
pub(crate) fn object_spec(sub: ObjectSub) -> &'static CommandSpec {
    let i = match sub {
        ObjectSub::Encoding => 0,
        ObjectSub::Freq => 1,
        ObjectSub::Help => 2,
        ObjectSub::IdleTime => 3,
        ObjectSub::RefCount => 4,
    };
    &OBJECT_SUBCOMMANDS[i]
}

pub(crate) static OBJECT: CommandSpec = CommandSpec {
    summary: "A container for object introspection commands.",
    since: "2.2.3",
    group: "generic",
    complexity: "Depends on subcommand.",
    subcommands: &OBJECT_SUBCOMMANDS,
    ..CommandSpec::new("OBJECT", -2, &[], &[], parse_container)
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &DEL, &UNLINK, &EXISTS, &TOUCH, &KEYS, &SCAN, &TYPE, &RENAME, &RENAMENX, &COPY, &RANDOMKEY,
    &OBJECT,
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

    #[test]
    fn copy_options_and_errors_as_redis() {
        let copy = |replace| Command::Copy {
            src: b("a"),
            dst: b("b"),
            replace,
        };
        assert_eq!(p("COPY a b"), copy(false));
        assert_eq!(p("copy a b replace"), copy(true));
        assert_eq!(p("COPY a b DB 0 REPLACE"), copy(true));
        assert_eq!(p("COPY a b REPLACE db 0"), copy(true));
        assert_eq!(err("COPY a b DB 1"), "ERR DB index is out of range");
        assert_eq!(err("COPY a b DB -1"), "ERR DB index is out of range");
        assert_eq!(
            err("COPY a b DB x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("COPY a b DB 99999999999"),
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        );
        assert_eq!(p("COPY a b DB 0 DB 0 REPLACE REPLACE"), copy(true));
        assert_eq!(err("COPY a b DB"), SYNTAX);
        assert_eq!(err("COPY a b FOO"), SYNTAX);
        assert_eq!(
            err("COPY a"),
            "ERR wrong number of arguments for 'copy' command"
        );
        let c = p("COPY a b");
        assert_eq!(c.keys(), vec![&b("a"), &b("b")]);
        assert_eq!(c.kind(), Kind::Write);
    }

    #[test]
    fn randomkey_and_object() {
        assert_eq!(p("RANDOMKEY"), Command::RandomKey);
        assert_eq!(p("RANDOMKEY").kind(), Kind::Read);
        let o = p("object encoding k");
        assert_eq!(
            o,
            Command::Object(ObjectCmd {
                sub: ObjectSub::Encoding,
                args: vec![b("encoding"), b("k")]
            })
        );
        assert_eq!(o.keys(), vec![&b("k")]);
        assert_eq!(o.kind(), Kind::Read);
        assert_eq!(o.name(), "object|encoding");
        for (s, sub) in [
            ("FREQ", ObjectSub::Freq),
            ("IDLETIME", ObjectSub::IdleTime),
            ("REFCOUNT", ObjectSub::RefCount),
        ] {
            let Command::Object(o) = p(&format!("OBJECT {s} k")) else {
                panic!("{s}");
            };
            assert_eq!(o.sub, sub);
        }
        let help = p("OBJECT HELP");
        assert!(help.keys().is_empty());
        assert_eq!(help.kind(), Kind::Local);
        assert_eq!(
            err("OBJECT FOO k"),
            "ERR unknown subcommand 'FOO'. Try OBJECT HELP."
        );
        assert_eq!(
            err("OBJECT ENCODING"),
            "ERR wrong number of arguments for 'object|encoding' command"
        );
    }
}
