//! Registry-wide tests: unknown commands, arity errors of every family, kinds / keys /
//! names derived from the table, internal commands, and the table itself.

use bytes::Bytes;

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
fn a_keys_or_dbsize_share_is_internal_and_reads_nothing_else() {
    let share = Command::read_slots_argv("0-99,200", &argv("KEYS a*"));
    assert!(Command::parse(&share).is_err(), "never from a client");
    let c = Command::parse_replicated(&share);
    assert_eq!(
        c,
        Ok(Command::ReadSlots {
            expect: vec![(0, 99), (200, 200)],
            read: Box::new(Command::Keys(b("a*"))),
        })
    );
    assert_eq!(
        c.map(|c| (c.kind(), c.keys().is_empty())),
        Ok((Kind::Read, true))
    );
    let count = Command::parse_replicated(&argv("RAFTKV.READSLOTS 5 DBSIZE"));
    assert!(matches!(count, Ok(Command::ReadSlots { read, .. }) if *read == Command::DbSize));
    for bad in [
        "RAFTKV.READSLOTS 5 GET k",
        "RAFTKV.READSLOTS 99999 DBSIZE",
        "RAFTKV.READSLOTS 5",
    ] {
        assert!(Command::parse_replicated(&argv(bad)).is_err(), "{bad}");
    }
}

#[test]
fn table() {
    // 160 before the geo family (10), SORT, SORT_RO, DUMP, RESTORE, the bitmap (7),
    // HyperLogLog (3), LCS, the scripting (8) commands, SLOWLOG and LATENCY; then
    // RAFT.SHARDGROUP and RAFT.REBALANCE.
    assert_eq!(command_table().len(), 207);
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
    // 16 before COMMAND GETKEYS, GETKEYSANDFLAGS, LIST and HELP were added; 11 of CLUSTER.
    // 5 of OBJECT, 5 of SCRIPT, 9 of FUNCTION, 4 of SLOWLOG, 4 of LATENCY, 4 of
    // RAFT.SHARDGROUP.
    assert_eq!(subcommand_table().len(), 68);
    // Every command in the table parses (given enough plausible arguments).
    for s in command_table() {
        let mut a = vec![b(s.name)];
        let filler = match s.name {
            "CLIENT" => vec!["ID"],
            "CLUSTER" => vec!["SLOTS"],
            "RAFT.SHARDGROUP" => vec!["QUERY"],
            "CONFIG" => vec!["GET", "x"],
            "SLOWLOG" => vec!["LEN"],
            "LATENCY" => vec!["LATEST"],
            "RAFT.NODE" => vec!["REMOVE", "2"],
            "OBJECT" => vec!["ENCODING", "k"],
            "SCRIPT" => vec!["KILL"],
            "FUNCTION" => vec!["HELP"],
            "PUBSUB" => vec!["NUMPAT"],
            "EVAL" | "EVAL_RO" | "FCALL" | "FCALL_RO" => vec!["x", "0"],
            "EVALSHA" | "EVALSHA_RO" => vec!["fd758d1589d044dd850a6f05d52f2eefd27f033f", "0"],
            "SHUTDOWN" | "RAFT.TRANSFER-LEADER" => vec![],
            "SCAN" => vec!["0"],
            "SELECT" => vec!["0"],
            "HELLO" | "PING" | "QUIT" | "COMMAND" | "INFO" | "TIME" | "DBSIZE" | "FLUSHALL"
            | "FLUSHDB" => vec![],
            "MSET" | "MSETNX" => vec!["k", "v"],
            _ => collection_filler(s.name)
                .unwrap_or_else(|| vec!["1"; s.arity.unsigned_abs() as usize - 1]),
        };
        a.extend(filler.into_iter().map(b));
        assert!(Command::parse(&a).is_ok(), "{a:?}");
    }
}

/// Arguments for the collection commands that "1 1 ..." does not satisfy.
fn collection_filler(name: &str) -> Option<Vec<&'static str>> {
    Some(match name {
        "LINSERT" => vec!["l", "BEFORE", "p", "v"],
        "LMOVE" => vec!["a", "b", "LEFT", "RIGHT"],
        "BLMOVE" => vec!["a", "b", "LEFT", "RIGHT", "0"],
        "LMPOP" => vec!["1", "l", "LEFT"],
        "BLMPOP" => vec!["0", "1", "l", "LEFT"],
        "ZMPOP" => vec!["1", "z", "MIN"],
        "BZMPOP" => vec!["0", "1", "z", "MIN"],
        "GEOADD" => vec!["g", "1", "1", "m"],
        "GEORADIUS" | "GEORADIUS_RO" => vec!["g", "1", "1", "1", "m"],
        "GEORADIUSBYMEMBER" | "GEORADIUSBYMEMBER_RO" => vec!["g", "m", "1", "m"],
        "GEOSEARCH" => vec!["g", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "m"],
        "GEOSEARCHSTORE" => vec!["d", "g", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "m"],
        "BITOP" => vec!["AND", "d", "a"],
        // `PFMERGE d` runs, but has no keys by Redis's key specs (see `hll.rs`).
        "PFMERGE" => vec!["d", "a"],
        _ => return None,
    })
}

/// A request for every table command that parses (as in `table` above), plus some with
/// several keys.
fn sample_requests() -> Vec<Vec<Bytes>> {
    let mut all: Vec<Vec<Bytes>> = command_table()
        .iter()
        .map(|s| {
            let filler = match s.name {
                "CLIENT" => vec!["ID"],
                "CLUSTER" => vec!["KEYSLOT", "k"],
                "CONFIG" => vec!["GET", "x"],
                "SLOWLOG" => vec!["LEN"],
                "LATENCY" => vec!["LATEST"],
                "RAFT.NODE" => vec!["REMOVE", "2"],
                "RAFT.SHARDGROUP" => vec!["QUERY"],
                "OBJECT" => vec!["HELP"],
                "SCRIPT" => vec!["KILL"],
                "FUNCTION" => vec!["HELP"],
                "PUBSUB" => vec!["NUMPAT"],
                "EVAL" | "EVAL_RO" | "FCALL" | "FCALL_RO" => vec!["x", "0"],
                "EVALSHA" | "EVALSHA_RO" => vec!["fd758d1589d044dd850a6f05d52f2eefd27f033f", "0"],
                "SHUTDOWN"
                | "RAFT.TRANSFER-LEADER"
                | "RAFT.REBALANCE"
                | "HELLO"
                | "PING"
                | "QUIT"
                | "COMMAND"
                | "INFO"
                | "TIME"
                | "DBSIZE"
                | "FLUSHALL"
                | "FLUSHDB"
                | "READONLY"
                | "READWRITE"
                | "ASKING" => vec![],
                "SCAN" | "SELECT" => vec!["0"],
                "MSET" | "MSETNX" => vec!["k", "v"],
                _ => collection_filler(s.name)
                    .unwrap_or_else(|| vec!["1"; s.arity.unsigned_abs() as usize - 1]),
            };
            std::iter::once(s.name).chain(filler).map(b).collect()
        })
        .collect();
    for s in [
        "MSET a 1 b 2 c 3",
        "MSETNX a 1 b 2",
        "MGET a b c",
        "DEL a b",
        "UNLINK a b",
        "EXISTS a a b",
        "TOUCH a b",
        "RENAME a b",
        "RENAMENX a b",
        "SET k v EX 10 GET",
        "GETEX k PERSIST",
        "EXPIRE k 10 NX",
        "SUBSTR k 0 -1",
        "SORT l STORE d",
        "SORT l BY nosort LIMIT 0 1 GET # STORE d",
        "GEORADIUS g 1 1 1 m STORE d",
        "GEORADIUSBYMEMBER g m 1 m STOREDIST d",
        "GEOSEARCHSTORE d g FROMMEMBER m BYBOX 1 1 km",
        "BITOP XOR d a b c",
        "LCS a b IDX",
        "PFCOUNT a b c",
        "PFMERGE d a b",
        "EVAL x 2 a b c",
        "FCALL_RO f 1 a b",
    ] {
        all.push(argv(s));
    }
    all
}

#[test]
fn typed_keys_are_the_key_specs_applied_to_the_request() {
    for a in sample_requests() {
        let Ok(cmd) = Command::parse(&a) else {
            panic!("{a:?} does not parse")
        };
        let spec = lookup(&a[0]).map(|s| s.keys_in(&a));
        assert_eq!(spec, Some(Some(cmd.keys())), "{a:?}");
    }
    let del = Command::parse_replicated(&Command::del_if_expired_argv(&[b("x"), b("y")]));
    assert_eq!(del.map(|c| c.keys().len()), Ok(2));
}

#[test]
fn kinds_derived_from_flags_are_the_historical_ones() {
    let local =
        "PING ECHO SELECT QUIT HELLO AUTH CLIENT COMMAND CONFIG SLOWLOG LATENCY INFO TIME CLUSTER READONLY \
                 READWRITE ASKING MULTI EXEC DISCARD WATCH UNWATCH OBJECT SCRIPT FUNCTION \
                 SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE SSUBSCRIBE SUNSUBSCRIBE PUBLISH \
                 SPUBLISH PUBSUB RESET";
    let admin =
        "SHUTDOWN RAFT.SNAPSHOT RAFT.NODES RAFT.NODE RAFT.TRANSFER-LEADER RAFT.SHARDGROUP RAFT.REBALANCE";
    let read = "GET MGET EXISTS STRLEN GETRANGE SUBSTR KEYS SCAN TYPE TTL PTTL EXPIRETIME \
                PEXPIRETIME DBSIZE TOUCH RANDOMKEY \
                HGET HMGET HEXISTS HLEN HSTRLEN HKEYS HVALS HGETALL HRANDFIELD HSCAN \
                LLEN LRANGE LINDEX LPOS SISMEMBER SMISMEMBER SCARD SMEMBERS SRANDMEMBER \
                SINTER SUNION SDIFF SINTERCARD SSCAN ZCARD ZCOUNT ZLEXCOUNT ZSCORE ZMSCORE \
                ZRANK ZREVRANK ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX \
                ZREVRANGEBYLEX ZRANDMEMBER ZUNION ZINTER ZDIFF ZINTERCARD ZSCAN \
                GEODIST GEOHASH GEOPOS GEORADIUS_RO GEORADIUSBYMEMBER_RO GEOSEARCH SORT_RO DUMP
                GETBIT BITCOUNT BITPOS BITFIELD_RO LCS PFCOUNT
                EVAL_RO EVALSHA_RO FCALL_RO";
    // Writes in the table (for their STORE option) that parse as reads without it.
    let read_forms = "SORT GEORADIUS GEORADIUSBYMEMBER";
    for a in sample_requests() {
        let name = String::from_utf8_lossy(&a[0]).into_owned();
        let want = if local.split(' ').any(|n| n == name) {
            Kind::Local
        } else if admin.split(' ').any(|n| n == name) {
            Kind::Admin
        } else if read.split_whitespace().any(|n| n == name) {
            Kind::Read
        } else {
            Kind::Write
        };
        let cmd = Command::parse(&a).map(|c| c.kind());
        let stores = a
            .iter()
            .any(|w| w.eq_ignore_ascii_case(b"STORE") || w.eq_ignore_ascii_case(b"STOREDIST"));
        if read_forms.split(' ').any(|n| n == name) {
            let kind = if stores { Kind::Write } else { Kind::Read };
            assert_eq!(cmd, Ok(kind), "{name}");
        } else {
            assert_eq!(cmd, Ok(want), "{name}");
        }
        assert_eq!(lookup(&a[0]).map(|s| s.kind), Some(want), "{name}");
    }
}

#[test]
fn no_argument_count_makes_a_parser_panic() {
    let words = [
        "0", "1", "-1", "x", "EX", "GET", "ADD", "FILTERBY", "PATTERN", "SETNAME",
    ];
    let containers: Vec<&CommandSpec> = command_table().to_vec();
    for s in containers {
        let mut names = vec![s.name.to_string()];
        for sub in s.subcommands {
            let (c, n) = sub.name.split_once('|').unwrap_or((sub.name, ""));
            names.push(format!("{c} {n}"));
        }
        for name in names {
            for argc in 0..7 {
                for w in words {
                    let mut a = argv(&name);
                    a.extend(std::iter::repeat_n(b(w), argc));
                    let _ = Command::parse(&a).map(|c| (c.kind(), c.keys().len(), c.name()));
                }
            }
        }
    }
}

#[test]
fn entries_are_consistent() {
    for s in command_table().iter().chain(subcommand_table()) {
        let top = !s.name.contains('|');
        assert_eq!(top, s.name == s.name.to_ascii_uppercase(), "{}", s.name);
        assert!(!s.summary.is_empty() && !s.since.is_empty() && !s.group.is_empty());
        // A command with keys has key specs reaching at least its first legacy key.
        let no_legacy = s.first_key == 0 && !s.has_flag("movablekeys");
        assert_eq!(s.key_specs.is_empty(), no_legacy, "{}", s.name);
        for f in s.flags {
            assert_eq!(*f, f.to_ascii_lowercase(), "{}", s.name);
        }
        // The documented arguments parse, and their key spec indexes exist.
        let args = cmd::docargs::parse(s.args);
        assert!(args.is_some(), "{}: bad args {:?}", s.name, s.args);
        let mut ksi = Vec::new();
        let mut stack = args.unwrap_or_default();
        while let Some(a) = stack.pop() {
            ksi.extend(a.key_spec_index);
            stack.extend(a.args);
        }
        assert!(
            ksi.iter().all(|&i| (i as usize) < s.key_specs.len()),
            "{}",
            s.name
        );
        // A fixed arity beyond the name (and subcommand) means documented arguments.
        let fixed = if top { 1 } else { 2 };
        if s.arity > 0 {
            assert_eq!(s.args.is_empty(), s.arity == fixed, "{}", s.name);
        }
        let prefix = format!("{}|", s.full_name());
        assert!(
            s.subcommands.iter().all(|c| c.name.starts_with(&prefix)),
            "{}",
            s.name
        );
    }
}
