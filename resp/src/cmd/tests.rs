//! Registry-wide tests: unknown commands, arity errors of every family, kinds / keys /
//! names derived from the table, internal commands, and the table itself.

use super::test_util::*;
use crate::*;

#[test]
fn unknown_command_format() {
    assert_eq!(
        err("FOO a b"),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err("foo"),
        "ERR unknown command 'foo', with args beginning with: "
    );
    // Arguments are cut once 128 characters have been written.
    let long = format!("x {} {} z", "a".repeat(100), "b".repeat(100));
    let e = err(&long);
    let args = e
        .strip_prefix("ERR unknown command 'x', with args beginning with: ")
        .unwrap();
    assert_eq!(
        args,
        format!("'{}' '{}' ", "a".repeat(100), "b".repeat(128 - 103))
    );
    assert!(Command::parse(&[]).is_err());
    // Internal commands are unknown to clients.
    assert!(err("RAFTKV.SWEEP 10").starts_with("ERR unknown command 'RAFTKV.SWEEP'"));
}

#[test]
fn arity_errors() {
    for (cmd, name) in [
        ("get", "get"),
        ("GET a b", "get"),
        ("SET k", "set"),
        ("MGET", "mget"),
        ("TIME x", "time"),
        ("DBSIZE x", "dbsize"),
        ("SETEX k 1", "setex"),
        ("ECHO", "echo"),
        ("PING a b", "ping"),
        ("SELECT", "select"),
        ("AUTH", "auth"),
        ("MSET a", "mset"),
        ("MSET a b c", "mset"),
        ("MSETNX a b c", "msetnx"),
        ("CLIENT", "client"),
        ("CONFIG", "config"),
        ("CLIENT SETNAME", "client|setname"),
        ("CLIENT GETNAME x", "client|getname"),
        ("CLIENT ID x", "client|id"),
        ("CLIENT INFO x", "client|info"),
        ("CLIENT SETINFO lib-name", "client|setinfo"),
        ("CLIENT HELP x", "client|help"),
        ("COMMAND COUNT x", "command|count"),
        ("CONFIG GET", "config|get"),
        ("CONFIG SET a", "config|set"),
        ("CONFIG SET a b c", "config|set"),
        ("CONFIG RESETSTAT x", "config|resetstat"),
        ("EXPIRE k", "expire"),
        ("GETRANGE k 1", "getrange"),
        ("SUBSTR k 1", "substr"),
    ] {
        assert_eq!(
            err(cmd),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{cmd}"
        );
    }
}

#[test]
fn kinds_keys_names() {
    assert_eq!(p("GET k").kind(), Kind::Read);
    assert_eq!(p("TOUCH k").kind(), Kind::Read);
    assert_eq!(p("SET k v").kind(), Kind::Write);
    assert_eq!(p("FLUSHDB").kind(), Kind::Write);
    assert_eq!(p("PING").kind(), Kind::Local);
    assert_eq!(p("MSET a 1 b 2").keys(), vec![&b("a"), &b("b")]);
    assert_eq!(p("RENAME a b").keys(), vec![&b("a"), &b("b")]);
    assert_eq!(p("GETEX k").keys(), vec![&b("k")]);
    assert!(p("KEYS *").keys().is_empty());
    assert_eq!(p("unlink a").name(), "DEL");
    assert_eq!(p("psetex k 1 v").name(), "SET");
    assert_eq!(p("getrange k 0 1").name(), "GETRANGE");
}

#[test]
fn internal_commands() {
    assert!(Command::parse(&Command::sweep_argv(10)).is_err());
    assert!(Command::parse(&Command::del_if_expired_argv(&[b("x")])).is_err());
    let sweep = Command::parse_replicated(&Command::sweep_argv(10));
    assert_eq!(sweep, Ok(Command::SweepExpired { limit: 10 }));
    assert_eq!(sweep.map(|c| c.kind()), Ok(Kind::Write));
    let del = Command::parse_replicated(&Command::del_if_expired_argv(&[b("x"), b("y")]));
    assert_eq!(del, Ok(Command::DelIfExpired(vec![b("x"), b("y")])));
    assert!(Command::parse_replicated(&argv("RAFTKV.SWEEP -1")).is_err());
    assert!(Command::parse_replicated(&argv("RAFTKV.SWEEP")).is_err());
    assert_eq!(
        Command::parse_replicated(&argv("set k v")),
        Ok(set("k", "v", SetOptions::default()))
    );
}

#[test]
fn table() {
    assert_eq!(command_table().len(), 58);
    for s in command_table() {
        assert_eq!(
            lookup(s.name.to_ascii_lowercase().as_bytes()).map(|x| x.name),
            Some(s.name)
        );
        assert!(s.arity != 0 && !s.summary.is_empty());
    }
    let get = lookup(b"gEt").map(|s| (s.arity, s.flags, s.first_key, s.last_key, s.step));
    assert_eq!(get, Some((2, &["readonly", "fast"][..], 1, 1, 1)));
    let mset = lookup(b"mset").map(|s| (s.arity, s.first_key, s.last_key, s.step));
    assert_eq!(mset, Some((-3, 1, -1, 2)));
    assert!(lookup(b"nope").is_none());
    assert_eq!(
        lookup_subcommand(b"client", b"SETNAME").map(|s| s.arity),
        Some(3)
    );
    // 16 before COMMAND GETKEYS, GETKEYSANDFLAGS, LIST and HELP were added.
    assert_eq!(subcommand_table().len(), 20);
    // Every command in the table parses (given enough plausible arguments).
    for s in command_table() {
        let mut a = vec![b(s.name)];
        let filler = match s.name {
            "CLIENT" => vec!["ID"],
            "CONFIG" => vec!["GET", "x"],
            "RAFT.NODE" => vec!["REMOVE", "2"],
            "SHUTDOWN" | "RAFT.TRANSFER-LEADER" => vec![],
            "SCAN" => vec!["0"],
            "SELECT" => vec!["0"],
            "HELLO" | "PING" | "QUIT" | "COMMAND" | "INFO" | "TIME" | "DBSIZE" | "FLUSHALL"
            | "FLUSHDB" => vec![],
            "MSET" | "MSETNX" => vec!["k", "v"],
            _ => vec!["1"; s.arity.unsigned_abs() as usize - 1],
        };
        a.extend(filler.into_iter().map(b));
        assert!(Command::parse(&a).is_ok(), "{a:?}");
    }
}
