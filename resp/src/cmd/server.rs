//! Server commands: COMMAND and CONFIG with their subcommands, INFO, TIME, DBSIZE, FLUSHALL /
//! FLUSHDB and SHUTDOWN. Each command's parser sits beside its table entry; the file ends
//! with the family's registration table and its unit tests.

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{pairs, parse_container, syntax, upper};
use crate::{Command, CommandCmd, ConfigCmd, ListFilter, Reply};

fn command(c: CommandCmd) -> Result<Command, Reply> {
    Ok(Command::Command(c))
}

fn command_count(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::Count)
}

fn command_info(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::Info(argv[2..].to_vec()))
}

fn command_docs(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::Docs(argv[2..].to_vec()))
}

fn command_getkeys(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::GetKeys(argv[2..].to_vec()))
}

fn command_getkeysandflags(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::GetKeysAndFlags(argv[2..].to_vec()))
}

/// `COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]`: like Redis, only
/// that exact shape is accepted; anything else is a syntax error.
fn command_list(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let filter = match &argv[2..] {
        [] => None,
        [by, kind, arg] if by.eq_ignore_ascii_case(b"FILTERBY") => {
            Some(match upper(kind).as_str() {
                "MODULE" => ListFilter::Module(arg.clone()),
                "ACLCAT" => ListFilter::AclCat(arg.clone()),
                "PATTERN" => ListFilter::Pattern(arg.clone()),
                _ => return Err(syntax()),
            })
        }
        _ => return Err(syntax()),
    };
    command(CommandCmd::Names(filter))
}

fn command_help(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    command(CommandCmd::Help)
}

static COMMAND_SUBCOMMANDS: [CommandSpec; 7] = [
        CommandSpec {
            summary: "Returns a count of commands.",
            since: "2.8.13",
            group: "server",
            complexity: "O(1)",
            acl_categories: &["connection"],
            ..CommandSpec::new(
                "command|count",
                2,
                &["loading", "stale"],
                &[],
                command_count,
            )
        },
        CommandSpec {
            summary: "Returns information about one, multiple or all commands.",
            since: "2.8.13",
            group: "server",
            complexity: "O(N) where N is the number of commands to look up",
            acl_categories: &["connection"],
            tips: &["nondeterministic_output_order"],
            history: &[(
                "7.0.0",
                "Allowed to be called with no argument to get info on all commands.",
            )],
            args: "command-name:string?*",
            ..CommandSpec::new("command|info", -2, &["loading", "stale"], &[], command_info)
        },
        CommandSpec {
            summary: "Returns documentary information about one, multiple or all commands.",
            since: "7.0.0",
            group: "server",
            complexity: "O(N) where N is the number of commands to look up",
            acl_categories: &["connection"],
            tips: &["nondeterministic_output_order"],
            args: "command-name:string?*",
            ..CommandSpec::new("command|docs", -2, &["loading", "stale"], &[], command_docs)
        },
        CommandSpec {
            summary: "Extracts the key names from an arbitrary command.",
            since: "2.8.13",
            group: "server",
            complexity: "O(N) where N is the number of arguments to the command",
            acl_categories: &["connection"],
            args: "command:string arg:string?*",
            ..CommandSpec::new(
                "command|getkeys",
                -3,
                &["loading", "stale"],
                &[],
                command_getkeys,
            )
        },
        CommandSpec {
            summary: "Extracts the key names and access flags for an arbitrary command.",
            since: "7.0.0",
            group: "server",
            complexity: "O(N) where N is the number of arguments to the command",
            acl_categories: &["connection"],
            args: "command:string arg:string?*",
            ..CommandSpec::new(
                "command|getkeysandflags",
                -3,
                &["loading", "stale"],
                &[],
                command_getkeysandflags,
            )
        },
        CommandSpec {
            summary: "Returns a list of command names.",
            since: "7.0.0",
            group: "server",
            complexity: "O(N) where N is the total number of Redis commands",
            acl_categories: &["connection"],
            tips: &["nondeterministic_output_order"],
            args: "filterby:oneof?=FILTERBY(module-name:string=MODULE category:string=ACLCAT pattern:pattern=PATTERN)",
            ..CommandSpec::new("command|list", -2, &["loading", "stale"], &[], command_list)
        },
        CommandSpec {
            summary: "Returns helpful text about the different subcommands.",
            since: "5.0.0",
            group: "server",
            complexity: "O(1)",
            acl_categories: &["connection"],
            ..CommandSpec::new("command|help", 2, &["loading", "stale"], &[], command_help)
        },
];

fn config_get(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Config(ConfigCmd::Get(argv[2..].to_vec())))
}

fn config_set(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    // CONFIG SET takes name/value pairs; an odd count is an arity error in Redis.
    Ok(Command::Config(ConfigCmd::Set(pairs(
        "config|set",
        &argv[2..],
    )?)))
}

fn config_resetstat(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Config(ConfigCmd::ResetStat))
}

static CONFIG_SUBCOMMANDS: [CommandSpec; 3] = [
    CommandSpec {
        summary: "Returns the effective values of configuration parameters.",
        since: "2.0.0",
        group: "server",
        complexity: "O(N) when N is the number of configuration parameters provided",
        history: &[(
            "7.0.0",
            "Added the ability to pass multiple pattern parameters in one call",
        )],
        args: "parameter:string*",
        ..CommandSpec::new(
            "config|get",
            -3,
            &["admin", "noscript", "loading", "stale"],
            &[],
            config_get,
        )
    },
    CommandSpec {
        summary: "Sets configuration parameters in-flight.",
        since: "2.0.0",
        group: "server",
        complexity: "O(N) when N is the number of configuration parameters provided",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        history: &[(
            "7.0.0",
            "Added the ability to set multiple parameters in one call.",
        )],
        args: "data:block*(parameter:string value:string)",
        ..CommandSpec::new(
            "config|set",
            -4,
            &["admin", "noscript", "loading", "stale"],
            &[],
            config_set,
        )
    },
    CommandSpec {
        summary: "Resets the server's statistics.",
        since: "2.0.0",
        group: "server",
        complexity: "O(1)",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..CommandSpec::new(
            "config|resetstat",
            2,
            &["admin", "noscript", "loading", "stale"],
            &[],
            config_resetstat,
        )
    },
];

fn parse_command(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    if argv.len() == 1 {
        return Ok(Command::Command(CommandCmd::List));
    }
    parse_container(spec, argv)
}

pub(crate) static COMMAND: CommandSpec = CommandSpec {
    summary: "Returns detailed information about all commands.",
    since: "2.8.13",
    group: "server",
    complexity: "O(N) where N is the total number of Redis commands",
    acl_categories: &["connection"],
    tips: &["nondeterministic_output_order"],
    subcommands: &COMMAND_SUBCOMMANDS,
    ..CommandSpec::new("COMMAND", -1, &["loading", "stale"], &[], parse_command)
};

pub(crate) static CONFIG: CommandSpec = CommandSpec {
    summary: "A container for server configuration commands.",
    since: "2.0.0",
    group: "server",
    complexity: "Depends on subcommand.",
    subcommands: &CONFIG_SUBCOMMANDS,
    ..CommandSpec::new("CONFIG", -2, &[], &[], parse_container)
};

fn parse_info(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Info(
        argv[1..]
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    ))
}

pub(crate) static INFO: CommandSpec = CommandSpec {
    summary: "Returns information and statistics about the server.",
    since: "1.0.0",
    group: "server",
    complexity: "O(1)",
    acl_categories: &["dangerous"],
    tips: &[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ],
    history: &[(
        "7.0.0",
        "Added support for taking multiple section arguments.",
    )],
    args: "section:string?*",
    ..CommandSpec::new("INFO", -1, &["loading", "stale"], &[], parse_info)
};

fn parse_time(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Time)
}

pub(crate) static TIME: CommandSpec = CommandSpec {
    summary: "Returns the server time.",
    since: "2.6.0",
    group: "server",
    complexity: "O(1)",
    tips: &["nondeterministic_output"],
    ..CommandSpec::new("TIME", 1, &["loading", "stale", "fast"], &[], parse_time)
};

fn parse_dbsize(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::DbSize)
}

pub(crate) static DBSIZE: CommandSpec = CommandSpec {
    summary: "Returns the number of keys in the database.",
    since: "1.0.0",
    group: "server",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    tips: &["request_policy:all_shards", "response_policy:agg_sum"],
    ..CommandSpec::new("DBSIZE", 1, &["readonly", "fast"], &[], parse_dbsize)
};

/// FLUSHALL and FLUSHDB (ASYNC / SYNC accepted and ignored).
fn parse_flush(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    match &argv[1..] {
        [] => Ok(Command::FlushAll),
        [mode] if matches!(upper(mode).as_str(), "ASYNC" | "SYNC") => Ok(Command::FlushAll),
        _ => Err(syntax()),
    }
}

/// `RAFTKV.FLUSHALL <ranges>` (ranges as [`super::parse_slot_ranges`] reads them; empty:
/// none).
fn parse_flush_slots(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    super::parse_slot_ranges(&argv[1])
        .map(Command::FlushSlots)
        .map_err(Reply::err)
}

/// `RAFTKV.FLUSHALL <ranges>`: a group's share of a FLUSHALL fanned out over the groups,
/// applied only if the group serves exactly these slots (replicated only, see
/// `store::scope`).
pub(crate) static RAFTKV_FLUSHALL: CommandSpec = CommandSpec {
    summary:
        "Internal: one group's share of a FLUSHALL, if it serves these slots (replicated only).",
    group: "server",
    ..CommandSpec::new("RAFTKV.FLUSHALL", 2, &["write"], &[], parse_flush_slots)
};

/// `RAFTKV.READSLOTS <ranges> KEYS <pattern>` or `RAFTKV.READSLOTS <ranges> DBSIZE`.
fn parse_read_slots(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let expect = super::parse_slot_ranges(&argv[1]).map_err(Reply::err)?;
    match Command::parse(&argv[2..])? {
        read @ (Command::Keys(_) | Command::DbSize) => Ok(Command::ReadSlots {
            expect,
            read: Box::new(read),
        }),
        other => Err(Reply::err(format!(
            "ERR RAFTKV.READSLOTS does not run '{}'",
            other.name()
        ))),
    }
}

/// `RAFTKV.READSLOTS <ranges> <read>`: a group's share of a KEYS or DBSIZE fanned out over
/// the groups, over exactly these slots, refused unless the group serves them all
/// (internal, see `store::reader`).
pub(crate) static RAFTKV_READSLOTS: CommandSpec = CommandSpec {
    summary: "Internal: one group's share of a KEYS or DBSIZE, over these slots.",
    group: "server",
    ..CommandSpec::new("RAFTKV.READSLOTS", -3, &["readonly"], &[], parse_read_slots)
};

pub(crate) static FLUSHALL: CommandSpec = CommandSpec {
    summary: "Removes all keys from all databases.",
    since: "1.0.0",
    group: "server",
    complexity: "O(N) where N is the total number of keys in all databases",
    acl_categories: &["keyspace", "dangerous"],
    tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
    history: &[
        ("4.0.0", "Added the `ASYNC` flushing mode modifier."),
        ("6.2.0", "Added the `SYNC` flushing mode modifier."),
    ],
    args: "flush-type:oneof?(async:pure-token=ASYNC@4.0.0 sync:pure-token=SYNC@6.2.0)",
    ..CommandSpec::new("FLUSHALL", -1, &["write"], &[], parse_flush)
};

pub(crate) static FLUSHDB: CommandSpec = CommandSpec {
    summary: "Remove all keys from the current database.",
    since: "1.0.0",
    group: "server",
    complexity: "O(N) where N is the number of keys in the selected database",
    acl_categories: &["keyspace", "dangerous"],
    tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
    history: &[
        ("4.0.0", "Added the `ASYNC` flushing mode modifier."),
        ("6.2.0", "Added the `SYNC` flushing mode modifier."),
    ],
    args: "flush-type:oneof?(async:pure-token=ASYNC@4.0.0 sync:pure-token=SYNC@6.2.0)",
    ..CommandSpec::new("FLUSHDB", -1, &["write"], &[], parse_flush)
};

/// `SHUTDOWN [NOSAVE|SAVE|NOW|FORCE]`: the options are accepted and ignored.
fn parse_shutdown(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    for arg in &argv[1..] {
        let ok = [&b"NOSAVE"[..], b"SAVE", b"NOW", b"FORCE"]
            .iter()
            .any(|o| arg.eq_ignore_ascii_case(o));
        if !ok {
            return Err(syntax());
        }
    }
    Ok(Command::Shutdown)
}

pub(crate) static SHUTDOWN: CommandSpec = CommandSpec {
    summary: "Synchronously saves the database(s) to disk and shuts down the Redis server.",
    since: "1.0.0",
    group: "server",
    complexity: "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
    history: &[("7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers.")],
    args: "save-selector:oneof?(nosave:pure-token=NOSAVE save:pure-token=SAVE) now:pure-token?=NOW@7.0.0 force:pure-token?=FORCE@7.0.0 abort:pure-token?=ABORT@7.0.0",
    ..CommandSpec::new(
        "SHUTDOWN",
        -1,
        &["admin", "noscript", "loading", "stale", "no_multi", "allow_busy"],
        &[],
        parse_shutdown,
    )
};
/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &COMMAND, &CONFIG, &INFO, &TIME, &DBSIZE, &FLUSHALL, &FLUSHDB, &SHUTDOWN,
];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn command_and_config() {
        assert_eq!(p("COMMAND"), Command::Command(CommandCmd::List));
        assert_eq!(p("command count"), Command::Command(CommandCmd::Count));
        assert_eq!(
            p("COMMAND INFO get set"),
            Command::Command(CommandCmd::Info(vec![b("get"), b("set")]))
        );
        assert_eq!(
            p("COMMAND INFO"),
            Command::Command(CommandCmd::Info(vec![]))
        );
        assert_eq!(
            p("COMMAND DOCS get"),
            Command::Command(CommandCmd::Docs(vec![b("get")]))
        );
        assert_eq!(
            err("COMMAND FOO"),
            "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
        );
        assert_eq!(
            p("CONFIG GET maxmemory save"),
            Command::Config(ConfigCmd::Get(vec![b("maxmemory"), b("save")]))
        );
        assert_eq!(
            p("config set a 1 b 2"),
            Command::Config(ConfigCmd::Set(vec![(b("a"), b("1")), (b("b"), b("2"))]))
        );
        assert_eq!(p("CONFIG RESETSTAT"), Command::Config(ConfigCmd::ResetStat));
        assert_eq!(
            err("CONFIG FOO"),
            "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
        );
    }

    #[test]
    fn command_list_getkeys_help() {
        assert_eq!(p("COMMAND LIST"), Command::Command(CommandCmd::Names(None)));
        assert_eq!(
            p("command list filterby pattern get*"),
            Command::Command(CommandCmd::Names(Some(ListFilter::Pattern(b("get*")))))
        );
        assert_eq!(
            p("COMMAND LIST FILTERBY ACLCAT string"),
            Command::Command(CommandCmd::Names(Some(ListFilter::AclCat(b("string")))))
        );
        assert_eq!(
            p("COMMAND LIST FILTERBY MODULE m"),
            Command::Command(CommandCmd::Names(Some(ListFilter::Module(b("m")))))
        );
        for bad in [
            "COMMAND LIST FILTERBY",
            "COMMAND LIST FILTERBY PATTERN",
            "COMMAND LIST FILTERBY NAME x",
            "COMMAND LIST FILTERBY PATTERN a b",
            "COMMAND LIST x",
        ] {
            assert_eq!(err(bad), SYNTAX, "{bad}");
        }
        assert_eq!(
            p("COMMAND GETKEYS SET k v"),
            Command::Command(CommandCmd::GetKeys(argv("SET k v")))
        );
        assert_eq!(
            p("COMMAND GETKEYSANDFLAGS GET k"),
            Command::Command(CommandCmd::GetKeysAndFlags(argv("GET k")))
        );
        assert_eq!(
            err("COMMAND GETKEYS"),
            "ERR wrong number of arguments for 'command|getkeys' command"
        );
        assert_eq!(p("COMMAND HELP"), Command::Command(CommandCmd::Help));
        assert_eq!(p("COMMAND GETKEYS GET k").kind(), Kind::Local);
    }
}
