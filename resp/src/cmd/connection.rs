//! Connection commands: PING ECHO SELECT QUIT HELLO AUTH and CLIENT with its subcommands.
//! Each command's parser sits beside its table entry; the file ends with the family's
//! registration table and its unit tests. All are answered by the session (`Kind::Local`).

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{arity, int, parse_container, syntax, upper};
use crate::{ClientCmd, ClientFilter, Command, Reply};

fn bad_client_name() -> Reply {
    Reply::err("ERR Client names cannot contain spaces, newlines or special characters.")
}

/// Redis's `validateClientAttr`: printable ASCII without spaces.
fn check_client_attr(v: &[u8]) -> Result<(), ()> {
    if v.iter().all(|c| (b'!'..=b'~').contains(c)) {
        Ok(())
    } else {
        Err(())
    }
}

fn client(c: ClientCmd) -> Result<Command, Reply> {
    Ok(Command::Client(c))
}

fn parse_ping(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    match &argv[1..] {
        [] => Ok(Command::Ping(None)),
        [msg] => Ok(Command::Ping(Some(msg.clone()))),
        _ => Err(arity("ping")),
    }
}

pub(crate) static PING: CommandSpec = CommandSpec {
    summary: "Returns the server's liveliness response.",
    since: "1.0.0",
    group: "connection",
    complexity: "O(1)",
    acl_categories: &["connection"],
    tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
    args: "message:string?",
    ..CommandSpec::new("PING", -1, &["fast"], &[], parse_ping)
};

fn parse_echo(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Echo(argv[1].clone()))
}

pub(crate) static ECHO: CommandSpec = CommandSpec {
    summary: "Returns the given string.",
    since: "1.0.0",
    group: "connection",
    complexity: "O(1)",
    acl_categories: &["connection"],
    args: "message:string",
    ..CommandSpec::new("ECHO", 2, &["loading", "stale", "fast"], &[], parse_echo)
};

fn parse_select(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    // getIntFromObjectOrReply: an i64 outside the C int range has its own message.
    let id = int(&argv[1])?;
    if i32::try_from(id).is_err() {
        return Err(Reply::err(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    Ok(Command::Select(id))
}

pub(crate) static SELECT: CommandSpec = CommandSpec {
    summary: "Changes the selected database.",
    since: "1.0.0",
    group: "connection",
    complexity: "O(1)",
    acl_categories: &["connection"],
    args: "index:integer",
    ..CommandSpec::new(
        "SELECT",
        2,
        &["loading", "stale", "fast"],
        &[],
        parse_select,
    )
};

fn parse_quit(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Quit)
}

pub(crate) static QUIT: CommandSpec = CommandSpec {
    summary: "Closes the connection.",
    since: "1.0.0",
    group: "connection",
    complexity: "O(1)",
    acl_categories: &["connection"],
    doc_flags: &["deprecated"],
    deprecated_since: "7.2.0",
    replaced_by: "just closing the connection",
    ..CommandSpec::new(
        "QUIT",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        &[],
        parse_quit,
    )
};

fn parse_hello(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[1..];
    let mut protover = None;
    let mut auth = None;
    let mut setname = None;
    let mut rest = a;
    if let Some((v, tail)) = a.split_first() {
        let v = int(v)
            .map_err(|_| Reply::err("ERR Protocol version is not an integer or out of range"))?;
        if v != 2 && v != 3 {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        protover = Some(v);
        rest = tail;
    }
    loop {
        rest = match rest {
            [] => break,
            [opt, user, pass, tail @ ..] if upper(opt) == "AUTH" => {
                auth = Some((user.clone(), pass.clone()));
                tail
            }
            [opt, name, tail @ ..] if upper(opt) == "SETNAME" => {
                setname = Some(name.clone());
                tail
            }
            [opt, ..] => {
                return Err(Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(opt)
                )))
            }
        };
    }
    if let Some(name) = &setname {
        check_client_attr(name).map_err(|_| bad_client_name())?;
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

pub(crate) static HELLO: CommandSpec = CommandSpec {
    summary: "Handshakes with the Redis server.",
    since: "6.0.0",
    group: "connection",
    complexity: "O(1)",
    acl_categories: &["connection"],
    history: &[("6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context.")],
    args: "arguments:block?(protover:integer auth:block?=AUTH(username:string password:string) clientname:string?=SETNAME)",
    ..CommandSpec::new(
        "HELLO",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        &[],
        parse_hello,
    )
};

fn parse_auth(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    match &argv[1..] {
        [password] => Ok(Command::Auth {
            username: None,
            password: password.clone(),
        }),
        [user, password] => Ok(Command::Auth {
            username: Some(user.clone()),
            password: password.clone(),
        }),
        _ => Err(syntax()),
    }
}

pub(crate) static AUTH: CommandSpec = CommandSpec {
    summary: "Authenticates the connection.",
    since: "1.0.0",
    group: "connection",
    complexity: "O(N) where N is the number of passwords defined for the user",
    acl_categories: &["connection"],
    history: &[("6.0.0", "Added ACL style (username and password).")],
    args: "username:string?@6.0.0 password:string",
    ..CommandSpec::new(
        "AUTH",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        &[],
        parse_auth,
    )
};

fn parse_setname(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    check_client_attr(&argv[2]).map_err(|_| bad_client_name())?;
    client(ClientCmd::SetName(argv[2].clone()))
}

fn parse_getname(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    client(ClientCmd::GetName)
}

fn parse_id(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    client(ClientCmd::Id)
}

fn parse_info(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    client(ClientCmd::Info)
}

/// Redis 7.0's `CLIENT LIST [TYPE normal|master|replica|pubsub] | [ID id ...]`.
fn parse_list(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let filter = match &argv[2..] {
        [] => ClientFilter::All,
        [opt, ty] if upper(opt) == "TYPE" => {
            let t = String::from_utf8_lossy(ty).to_ascii_lowercase();
            match t.as_str() {
                "normal" | "master" | "replica" | "pubsub" => ClientFilter::Type(t),
                "slave" => ClientFilter::Type("replica".into()),
                _ => {
                    return Err(Reply::err(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(ty)
                    )))
                }
            }
        }
        [opt, ids @ ..] if upper(opt) == "ID" && !ids.is_empty() => ClientFilter::Ids(
            ids.iter()
                .map(|i| int(i).map_err(|_| Reply::err("ERR Invalid client ID")))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(syntax()),
    };
    client(ClientCmd::List(filter))
}

fn parse_help(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    client(ClientCmd::Help)
}

fn parse_setinfo(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let attr = upper(&argv[2]);
    if attr != "LIB-NAME" && attr != "LIB-VER" {
        return Err(Reply::err(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(&argv[2])
        )));
    }
    check_client_attr(&argv[3]).map_err(|_| {
        Reply::err(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&argv[2])
        ))
    })?;
    client(ClientCmd::SetInfo {
        attr,
        value: argv[3].clone(),
    })
}

static CLIENT_SUBCOMMANDS: [CommandSpec; 7] = [
    CommandSpec {
        summary: "Sets the connection name.",
        since: "2.6.9",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        args: "connection-name:string",
        ..CommandSpec::new(
            "client|setname",
            3,
            &["noscript", "loading", "stale"],
            &[],
            parse_setname,
        )
    },
    CommandSpec {
        summary: "Returns the name of the connection.",
        since: "2.6.9",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        ..CommandSpec::new(
            "client|getname",
            2,
            &["noscript", "loading", "stale"],
            &[],
            parse_getname,
        )
    },
    CommandSpec {
        summary: "Returns the unique client ID of the connection.",
        since: "5.0.0",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        ..CommandSpec::new("client|id", 2, &["noscript", "loading", "stale"], &[], parse_id)
    },
    CommandSpec {
        summary: "Returns information about the connection.",
        since: "6.2.0",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        tips: &["nondeterministic_output"],
        ..CommandSpec::new("client|info", 2, &["noscript", "loading", "stale"], &[], parse_info)
    },
    CommandSpec {
        summary: "Lists open connections.",
        since: "2.4.0",
        group: "connection",
        complexity: "O(N) where N is the number of client connections",
        acl_categories: &["connection"],
        tips: &["nondeterministic_output"],
        history: &[("2.8.12", "Added unique client `id` field."), ("5.0.0", "Added optional `TYPE` filter."), ("6.0.0", "Added `user` field."), ("6.2.0", "Added `argv-mem`, `tot-mem`, `laddr` and `redir` fields and the optional `ID` filter."), ("7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."), ("7.0.3", "Added `ssub` field.")],
        args: "client-type:oneof?=TYPE@5.0.0(normal:pure-token=normal master:pure-token=master replica:pure-token=replica pubsub:pure-token=pubsub) client-id:integer?*=ID@6.2.0",
        ..CommandSpec::new(
            "client|list",
            -2,
            &["admin", "noscript", "loading", "stale"],
            &[],
            parse_list,
        )
    },
    CommandSpec {
        summary: "Sets information specific to the client or connection.",
        since: "7.2.0",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        args: "attr:oneof(libname:string=lib-name libver:string=lib-ver)",
        ..CommandSpec::new(
            "client|setinfo",
            4,
            &["noscript", "loading", "stale"],
            &[],
            parse_setinfo,
        )
    },
    CommandSpec {
        summary: "Returns helpful text about the different subcommands.",
        since: "5.0.0",
        group: "connection",
        complexity: "O(1)",
        acl_categories: &["connection"],
        ..CommandSpec::new("client|help", 2, &["loading", "stale"], &[], parse_help)
    },
];

pub(crate) static CLIENT: CommandSpec = CommandSpec {
    summary: "A container for client connection commands.",
    since: "2.4.0",
    group: "connection",
    complexity: "Depends on subcommand.",
    subcommands: &CLIENT_SUBCOMMANDS,
    ..CommandSpec::new("CLIENT", -2, &[], &[], parse_container)
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] =
    &[&PING, &ECHO, &SELECT, &QUIT, &HELLO, &AUTH, &CLIENT];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn connection_commands() {
        assert_eq!(p("ping"), Command::Ping(None));
        assert_eq!(p("PING hi"), Command::Ping(Some(b("hi"))));
        assert_eq!(p("echo x"), Command::Echo(b("x")));
        assert_eq!(p("SELECT 0"), Command::Select(0));
        assert_eq!(p("SELECT 5"), Command::Select(5));
        assert_eq!(err("SELECT x"), NOT_INT);
        assert_eq!(
            err("SELECT 9999999999"),
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        );
        assert_eq!(p("QUIT"), Command::Quit);
        assert_eq!(p("TIME"), Command::Time);
        assert_eq!(
            p("AUTH pw"),
            Command::Auth {
                username: None,
                password: b("pw")
            }
        );
        assert_eq!(
            p("AUTH u pw"),
            Command::Auth {
                username: Some(b("u")),
                password: b("pw")
            }
        );
        assert_eq!(err("AUTH a b c"), SYNTAX);
        assert_eq!(p("INFO"), Command::Info(vec![]));
        assert_eq!(
            p("INFO server keyspace"),
            Command::Info(vec!["server".into(), "keyspace".into()])
        );
    }

    #[test]
    fn hello() {
        assert_eq!(
            p("HELLO"),
            Command::Hello {
                protover: None,
                auth: None,
                setname: None
            }
        );
        assert_eq!(
            p("hello 3 auth u p setname me"),
            Command::Hello {
                protover: Some(3),
                auth: Some((b("u"), b("p"))),
                setname: Some(b("me"))
            }
        );
        assert_eq!(err("HELLO 4"), "NOPROTO unsupported protocol version");
        assert_eq!(err("HELLO 1"), "NOPROTO unsupported protocol version");
        assert_eq!(
            err("HELLO x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(
            err("HELLO 3 AUTH u"),
            "ERR Syntax error in HELLO option 'AUTH'"
        );
        assert_eq!(err("HELLO 2 foo"), "ERR Syntax error in HELLO option 'foo'");
        assert_eq!(
            err_argv(&[b("HELLO"), b("3"), b("SETNAME"), b("a b")]),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
    }

    #[test]
    fn client_subcommands() {
        assert_eq!(
            p("CLIENT SETNAME me"),
            Command::Client(ClientCmd::SetName(b("me")))
        );
        assert_eq!(
            p("client setname "),
            Command::Client(ClientCmd::SetName(b("")))
        );
        for bad in ["a b", "a\nb", "é"] {
            assert_eq!(
                err_argv(&[b("CLIENT"), b("SETNAME"), b(bad)]),
                "ERR Client names cannot contain spaces, newlines or special characters."
            );
        }
        assert_eq!(p("CLIENT GETNAME"), Command::Client(ClientCmd::GetName));
        assert_eq!(p("client id"), Command::Client(ClientCmd::Id));
        assert_eq!(p("CLIENT INFO"), Command::Client(ClientCmd::Info));
        assert_eq!(
            p("CLIENT LIST"),
            Command::Client(ClientCmd::List(ClientFilter::All))
        );
        assert_eq!(
            p("client list type NORMAL"),
            Command::Client(ClientCmd::List(ClientFilter::Type("normal".into())))
        );
        assert_eq!(
            p("CLIENT LIST TYPE slave"),
            Command::Client(ClientCmd::List(ClientFilter::Type("replica".into())))
        );
        assert_eq!(
            p("CLIENT LIST id 3 -1 7"),
            Command::Client(ClientCmd::List(ClientFilter::Ids(vec![3, -1, 7])))
        );
        assert_eq!(err("CLIENT LIST TYPE foo"), "ERR Unknown client type 'foo'");
        assert_eq!(err("CLIENT LIST ID 3 abc"), "ERR Invalid client ID");
        assert_eq!(err("CLIENT LIST ID"), "ERR syntax error");
        assert_eq!(err("CLIENT LIST TYPE"), "ERR syntax error");
        assert_eq!(err("CLIENT LIST TYPE normal ID 3"), "ERR syntax error");
        assert_eq!(err("CLIENT LIST foo"), "ERR syntax error");
        assert_eq!(p("CLIENT HELP"), Command::Client(ClientCmd::Help));
        assert_eq!(
            p("CLIENT SETINFO lib-name redis-rs"),
            Command::Client(ClientCmd::SetInfo {
                attr: "LIB-NAME".into(),
                value: b("redis-rs")
            })
        );
        assert_eq!(err("CLIENT SETINFO foo x"), "ERR Unrecognized option 'foo'");
        assert_eq!(
            err_argv(&[b("CLIENT"), b("SETINFO"), b("lib-ver"), b("1 2")]),
            "ERR lib-ver cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            err("CLIENT foo"),
            "ERR unknown subcommand 'foo'. Try CLIENT HELP."
        );
        assert_eq!(p("CLIENT ID").kind(), Kind::Local);
    }
}
