//! Transaction commands: MULTI EXEC DISCARD WATCH UNWATCH, and the internal replicated-only
//! `RAFTKV.EXEC` that carries one whole transaction (its watched keys' versions and its
//! queued commands) as ONE command of one Raft entry, so every replica applies it atomically
//! and runs the WATCH check identically.
//!
//! The session keeps the MULTI state (the queue) and the watched keys; these parsers only
//! check the syntax. [`queue_error`] is the check Redis runs while queueing (unknown command,
//! unknown subcommand, wrong arity): such an error is answered at once and makes EXEC fail
//! with EXECABORT; any other parse error is queued and shows inside EXEC's reply, as in Redis.
//!
//! `RAFTKV.EXEC` layout (flat, so it is an ordinary argument vector):
//! `RAFTKV.EXEC <nwatch> (<key> <version> <live 0|1>)* (<argc> <arg>...)*`.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{arity, check_arity, find_sub, unknown_command, unknown_sub};
use crate::{Command, Reply, WatchedKey};

fn parse_multi(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Multi)
}

fn parse_exec(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Exec)
}

fn parse_discard(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Discard)
}

fn parse_watch(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Watch(argv[1..].to_vec()))
}

fn parse_unwatch(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Unwatch)
}

/// Flags MULTI, DISCARD, WATCH and UNWATCH share (Redis 7.2).
const TXN_FLAGS: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

pub(crate) static MULTI: CommandSpec = CommandSpec {
    summary: "Starts a transaction.",
    since: "1.2.0",
    group: "transactions",
    complexity: "O(1)",
    acl_categories: &["transaction"],
    ..CommandSpec::new("MULTI", 1, TXN_FLAGS, &[], parse_multi)
};

pub(crate) static EXEC: CommandSpec = CommandSpec {
    summary: "Executes all commands in a transaction.",
    since: "1.2.0",
    group: "transactions",
    complexity: "Depends on commands in the transaction",
    acl_categories: &["transaction"],
    ..CommandSpec::new(
        "EXEC",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        &[],
        parse_exec,
    )
};

pub(crate) static DISCARD: CommandSpec = CommandSpec {
    summary: "Discards a transaction.",
    since: "2.0.0",
    group: "transactions",
    complexity: "O(N), when N is the number of queued commands",
    acl_categories: &["transaction"],
    ..CommandSpec::new("DISCARD", 1, TXN_FLAGS, &[], parse_discard)
};

pub(crate) static WATCH: CommandSpec = CommandSpec {
    summary: "Monitors changes to keys to determine the execution of a transaction.",
    since: "2.2.0",
    group: "transactions",
    complexity: "O(1) for every key.",
    acl_categories: &["transaction"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "WATCH",
        -2,
        TXN_FLAGS,
        &[KeySpec::range(1, -1, 1, &["RO"])],
        parse_watch,
    )
};

pub(crate) static UNWATCH: CommandSpec = CommandSpec {
    summary: "Forgets about watched keys of a transaction.",
    since: "2.2.0",
    group: "transactions",
    complexity: "O(1)",
    acl_categories: &["transaction"],
    ..CommandSpec::new("UNWATCH", 1, TXN_FLAGS, &[], parse_unwatch)
};

fn malformed() -> Reply {
    Reply::err("ERR malformed replicated transaction")
}

/// A count or version field of `RAFTKV.EXEC`.
fn field(b: Option<&Bytes>) -> Result<u64, Reply> {
    let s = std::str::from_utf8(b.ok_or_else(malformed)?).map_err(|_| malformed())?;
    s.parse().map_err(|_| malformed())
}

fn parse_raftkv_exec(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let mut it = argv[1..].iter();
    let nwatch = field(it.next())?;
    // Every watched key takes 3 arguments: a count beyond what is left is malformed (and
    // bounds the allocation below).
    if nwatch > (argv.len() / 3) as u64 {
        return Err(malformed());
    }
    let mut watches = Vec::with_capacity(nwatch as usize);
    for _ in 0..nwatch {
        let key = it.next().ok_or_else(malformed)?.clone();
        let version = field(it.next())?;
        let live = field(it.next())? != 0;
        watches.push(WatchedKey { key, version, live });
    }
    let mut body = Vec::new();
    while let Some(n) = it.next() {
        let argc = field(Some(n))?;
        if argc == 0 || argc > it.len() as u64 {
            return Err(malformed());
        }
        body.push(it.by_ref().take(argc as usize).cloned().collect());
    }
    Ok(Command::Transaction { watches, body })
}

/// `RAFTKV.EXEC ...`: one transaction (see the module doc), replicated only.
pub(crate) static RAFTKV_EXEC: CommandSpec = CommandSpec {
    summary: "Internal: checks watched keys and runs a transaction's commands (replicated only).",
    group: "transactions",
    ..CommandSpec::new("RAFTKV.EXEC", -2, &["write"], &[], parse_raftkv_exec)
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&MULTI, &EXEC, &DISCARD, &WATCH, &UNWATCH];

impl Command {
    /// The argument vector of the internal `RAFTKV.EXEC` for these watched keys and queued
    /// commands (each a whole argument vector).
    pub fn exec_argv(watches: &[WatchedKey], body: &[Vec<Bytes>]) -> Vec<Bytes> {
        let n = 2 + 3 * watches.len() + body.iter().map(|c| c.len() + 1).sum::<usize>();
        let mut v = Vec::with_capacity(n);
        v.push(Bytes::from_static(b"RAFTKV.EXEC"));
        v.push(Bytes::from(watches.len().to_string()));
        for w in watches {
            v.push(w.key.clone());
            v.push(Bytes::from(w.version.to_string()));
            v.push(Bytes::from_static(if w.live { b"1" } else { b"0" }));
        }
        for c in body {
            v.push(Bytes::from(c.len().to_string()));
            v.extend_from_slice(c);
        }
        v
    }

    /// True for MULTI, EXEC, DISCARD, WATCH and UNWATCH (handled by the session's
    /// transaction logic, never grouped).
    pub fn is_transaction(&self) -> bool {
        matches!(
            self,
            Command::Multi
                | Command::Exec
                | Command::Discard
                | Command::Watch(_)
                | Command::Unwatch
        )
    }
}

/// The error Redis answers while queueing `argv` inside MULTI (and which makes EXEC fail
/// with EXECABORT): unknown command, unknown subcommand of a container, wrong arity. `None`
/// when the command would be queued (other parse errors surface inside EXEC's reply).
pub fn queue_error(argv: &[Bytes]) -> Option<Reply> {
    let spec = super::lookup(argv.first()?).ok_or_else(|| unknown_command(argv));
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    if spec.subcommands.is_empty() {
        return check_arity(spec, argv.len()).err();
    }
    let Some(sub) = argv.get(1) else {
        return Some(arity(spec.name));
    };
    match find_sub(spec, sub) {
        None => Some(unknown_sub(spec.name, sub)),
        Some(s) => check_arity(s, argv.len()).err(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn parses_the_transaction_commands() {
        assert_eq!(p("MULTI"), Command::Multi);
        assert_eq!(p("exec"), Command::Exec);
        assert_eq!(p("Discard"), Command::Discard);
        assert_eq!(p("UNWATCH"), Command::Unwatch);
        assert_eq!(p("WATCH a b"), Command::Watch(vec![b("a"), b("b")]));
        assert_eq!(
            err("WATCH"),
            "ERR wrong number of arguments for 'watch' command"
        );
        assert_eq!(
            err("MULTI x"),
            "ERR wrong number of arguments for 'multi' command"
        );
        assert_eq!(
            err("EXEC x"),
            "ERR wrong number of arguments for 'exec' command"
        );
        assert_eq!(p("WATCH a").keys(), vec![&b("a")]);
        assert!(p("MULTI").is_transaction() && !p("PING").is_transaction());
        assert_eq!(p("EXEC").kind(), crate::Kind::Local);
    }

    #[test]
    fn queue_errors_are_unknown_commands_subcommands_and_arity_only() {
        let e = |s: &str| match queue_error(&argv(s)) {
            Some(Reply::Error(e)) => Some(e),
            Some(other) => panic!("{other:?}"),
            None => None,
        };
        assert_eq!(
            e("NOSUCH a").as_deref(),
            Some("ERR unknown command 'NOSUCH', with args beginning with: 'a' ")
        );
        assert_eq!(
            e("GET").as_deref(),
            Some("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            e("CLIENT NOSUCH").as_deref(),
            Some("ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.")
        );
        assert_eq!(
            e("CLIENT GETNAME x").as_deref(),
            Some("ERR wrong number of arguments for 'client|getname' command")
        );
        // Syntax errors past the arity check are queued (EXEC shows them), as in Redis.
        assert_eq!(e("SET a b c d"), None);
        assert_eq!(e("INCRBY a x"), None);
        assert_eq!(e("GET a"), None);
        assert_eq!(e("CLIENT GETNAME"), None);
    }

    #[test]
    fn raftkv_exec_round_trips_and_is_internal() {
        let watches = vec![
            WatchedKey {
                key: b("k"),
                version: 42,
                live: true,
            },
            WatchedKey {
                key: b(""),
                version: 0,
                live: false,
            },
        ];
        let body = vec![argv("SET a 1"), argv("GET a"), argv("PING")];
        let a = Command::exec_argv(&watches, &body);
        assert_eq!(
            Command::parse_replicated(&a),
            Ok(Command::Transaction {
                watches: watches.clone(),
                body: body.clone()
            })
        );
        let empty = Command::exec_argv(&[], &[]);
        assert_eq!(
            Command::parse_replicated(&empty),
            Ok(Command::Transaction {
                watches: vec![],
                body: vec![]
            })
        );
        assert!(err_argv(&a).starts_with("ERR unknown command 'RAFTKV.EXEC'"));
        for bad in [
            "RAFTKV.EXEC x",
            "RAFTKV.EXEC 5 k 1 1",
            "RAFTKV.EXEC 1 k v 1",
            "RAFTKV.EXEC 0 3 SET a",
            "RAFTKV.EXEC 0 0",
            "RAFTKV.EXEC -1",
        ] {
            assert_eq!(
                Command::parse_replicated(&argv(bad)),
                Err(malformed()),
                "{bad}"
            );
        }
    }
}
