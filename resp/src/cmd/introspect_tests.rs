//! Tests of the COMMAND replies' shapes (Redis 7's) and contents.

use bytes::{Bytes, BytesMut};

use super::super::spec::{BeginSearch, FindKeys};
use super::super::test_util::{argv, b};
use super::*;
use crate::{subcommand_table, Protocol, Reply};

/// A glob for the tests: `prefix*` or an exact name.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.strip_suffix(b"*") {
        Some(prefix) => s.starts_with(prefix),
        None => p == s,
    }
}

fn run(c: CommandCmd) -> Reply {
    let r = reply(&c, &glob);
    // Every reply encodes in both protocols.
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut out = BytesMut::new();
        crate::encode::encode(&r, proto, &mut out);
        assert!(!out.is_empty());
    }
    r
}

fn names(s: &str) -> Vec<Bytes> {
    argv(s)
}

fn st(s: &str) -> Reply {
    Reply::Status(s.into())
}

fn bulk(s: &str) -> Reply {
    Reply::bulk(s.to_string())
}

fn array(r: Reply) -> Vec<Reply> {
    match r {
        Reply::Array(v) => v,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn map(r: &Reply) -> &[(Reply, Reply)] {
    match r {
        Reply::Map(m) => m,
        other => panic!("expected a map, got {other:?}"),
    }
}

fn get<'a>(m: &'a [(Reply, Reply)], k: &str) -> Option<&'a Reply> {
    m.iter().find(|(key, _)| *key == bulk(k)).map(|(_, v)| v)
}

fn err(r: Reply) -> String {
    match r {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn command_info_get_has_redis_shape() {
    let r = array(run(CommandCmd::Info(names("get"))));
    assert_eq!(r.len(), 1);
    let range = |lastkey: i64| {
        Reply::Map(vec![
            (bulk("type"), bulk("range")),
            (
                bulk("spec"),
                Reply::Map(vec![
                    (bulk("lastkey"), Reply::Int(lastkey)),
                    (bulk("keystep"), Reply::Int(1)),
                    (bulk("limit"), Reply::Int(0)),
                ]),
            ),
        ])
    };
    let key_spec = Reply::Map(vec![
        (bulk("flags"), Reply::Set(vec![st("RO"), st("access")])),
        (
            bulk("begin_search"),
            Reply::Map(vec![
                (bulk("type"), bulk("index")),
                (
                    bulk("spec"),
                    Reply::Map(vec![(bulk("index"), Reply::Int(1))]),
                ),
            ]),
        ),
        (bulk("find_keys"), range(0)),
    ]);
    let want = Reply::Array(vec![
        bulk("get"),
        Reply::Int(2),
        Reply::Set(vec![st("readonly"), st("fast")]),
        Reply::Int(1),
        Reply::Int(1),
        Reply::Int(1),
        Reply::Set(vec![st("@read"), st("@string"), st("@fast")]),
        Reply::Set(vec![]),
        Reply::Set(vec![key_spec]),
        Reply::Set(vec![]),
    ]);
    assert_eq!(r[0], want);
}

/// (first key, last key, step) of a COMMAND INFO entry.
fn key_range(r: &Reply) -> (i64, i64, i64) {
    match r {
        Reply::Array(v) => match (&v[3], &v[4], &v[5]) {
            (Reply::Int(f), Reply::Int(l), Reply::Int(s)) => (*f, *l, *s),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_info_key_ranges_unknown_names_and_subcommands() {
    let r = array(run(CommandCmd::Info(names(
        "set mset RENAME ping nosuch client|setname client|nope",
    ))));
    assert_eq!(r.len(), 7);
    assert_eq!(key_range(&r[0]), (1, 1, 1));
    assert_eq!(key_range(&r[1]), (1, -1, 2));
    assert_eq!(key_range(&r[2]), (1, 2, 1));
    assert_eq!(key_range(&r[3]), (0, 0, 0));
    assert_eq!(r[4], Reply::NilArray);
    assert_eq!(array(r[5].clone())[0], bulk("client|setname"));
    assert_eq!(array(r[5].clone())[1], Reply::Int(3));
    assert_eq!(r[6], Reply::NilArray);
    // A container lists its subcommands' entries.
    let client = array(run(CommandCmd::Info(names("CLIENT"))));
    let subs = array(array(client[0].clone())[9].clone());
    assert_eq!(
        subs.len(),
        lookup(b"client").map_or(0, |s| s.subcommands.len())
    );
    assert!(subs
        .iter()
        .all(|s| matches!(s, Reply::Array(v) if v.len() == 10)));
    // SET's key spec carries its notes first.
    let set = array(r[0].clone());
    let Reply::Set(specs) = &set[8] else {
        panic!("{set:?}")
    };
    assert_eq!(map(&specs[0])[0].0, bulk("notes"));
}

#[test]
fn plain_command_and_info_without_names_list_everything() {
    let n = command_table().len();
    assert_eq!(run(CommandCmd::Count), Reply::Int(n as i64));
    for c in [CommandCmd::List, CommandCmd::Info(vec![])] {
        let all = array(run(c));
        assert_eq!(all.len(), n);
        assert!(all
            .iter()
            .all(|e| matches!(e, Reply::Array(v) if v.len() == 10)));
    }
}

#[test]
fn command_docs() {
    let r = run(CommandCmd::Docs(names("get set nosuch client")));
    let m = map(&r);
    let keys: Vec<&Reply> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&bulk("get"), &bulk("set"), &bulk("client")]);
    let get_docs = map(&m[0].1);
    assert_eq!(
        get_docs,
        [
            (bulk("summary"), bulk("Returns the string value of a key.")),
            (bulk("since"), bulk("1.0.0")),
            (bulk("group"), bulk("string")),
            (bulk("complexity"), bulk("O(1)")),
            (
                bulk("arguments"),
                Reply::Array(vec![Reply::Map(vec![
                    (bulk("name"), bulk("key")),
                    (bulk("type"), bulk("key")),
                    (bulk("display_text"), bulk("key")),
                    (bulk("key_spec_index"), Reply::Int(0)),
                ])])
            ),
        ]
    );
    let Some(Reply::Set(history)) = get(map(&m[1].1), "history") else {
        panic!("SET has a history: {:?}", m[1].1)
    };
    assert!(history.contains(&Reply::Array(vec![
        bulk("6.0.0"),
        bulk("Added the `KEEPTTL` option.")
    ])));
    let subs = get(map(&m[2].1), "subcommands").map(map);
    assert!(subs.is_some_and(|s| s.iter().any(|(k, _)| *k == bulk("client|setname"))));
    let substr = run(CommandCmd::Docs(names("substr")));
    let substr = map(&map(&substr)[0].1);
    assert_eq!(
        get(substr, "doc_flags"),
        Some(&Reply::Set(vec![st("deprecated")]))
    );
    assert_eq!(get(substr, "replaced_by"), Some(&bulk("`GETRANGE`")));
    let all = run(CommandCmd::Docs(vec![]));
    assert_eq!(map(&all).len(), command_table().len());
}

#[test]
fn command_getkeys() {
    let keys = |s: &str| run(CommandCmd::GetKeys(argv(s)));
    let bulks = |v: &[&str]| Reply::Array(v.iter().map(|k| bulk(k)).collect());
    assert_eq!(keys("SET k v EX 10"), bulks(&["k"]));
    assert_eq!(keys("mset a 1 b 2"), bulks(&["a", "b"]));
    assert_eq!(keys("RENAME a b"), bulks(&["a", "b"]));
    assert_eq!(keys("DEL a b c"), bulks(&["a", "b", "c"]));
    assert_eq!(
        keys("nosuch a"),
        Reply::err("ERR Invalid command specified")
    );
    assert_eq!(
        keys("CLIENT nope"),
        Reply::err("ERR Invalid command specified")
    );
    assert_eq!(
        keys("PING"),
        Reply::err("ERR The command has no key arguments")
    );
    assert_eq!(
        keys("CLIENT SETNAME x"),
        Reply::err("ERR The command has no key arguments")
    );
    for bad in ["GET", "GET a b", "MSET a"] {
        assert_eq!(
            err(keys(bad)),
            "ERR Invalid number of arguments specified for command",
            "{bad}"
        );
    }
    assert_eq!(
        run(CommandCmd::GetKeysAndFlags(argv("RENAME a b"))),
        Reply::Array(vec![
            Reply::Array(vec![
                bulk("a"),
                Reply::Set(vec![st("RW"), st("access"), st("delete")])
            ]),
            Reply::Array(vec![bulk("b"), Reply::Set(vec![st("OW"), st("update")])]),
        ])
    );
}

#[test]
fn getkeys_of_sort_and_georadius() {
    let keys = |s: &str| run(CommandCmd::GetKeys(argv(s)));
    let bulks = |v: &[&str]| Reply::Array(v.iter().map(|k| bulk(k)).collect());
    assert_eq!(keys("SORT l BY w_* GET o_* STORE d"), bulks(&["l", "d"]));
    assert_eq!(keys("SORT l LIMIT 0 1"), bulks(&["l"]));
    assert_eq!(keys("SORT_RO l GET store"), bulks(&["l"]));
    assert_eq!(keys("GEORADIUS g 1 1 1 m STOREDIST d"), bulks(&["g", "d"]));
    assert_eq!(
        keys("GEOSEARCHSTORE d g FROMLONLAT 1 1 BYRADIUS 1 m"),
        bulks(&["d", "g"])
    );
    assert_eq!(
        run(CommandCmd::GetKeysAndFlags(argv("SORT l STORE d"))),
        Reply::Array(vec![
            Reply::Array(vec![bulk("l"), Reply::Set(vec![st("RO"), st("access")])]),
            Reply::Array(vec![bulk("d"), Reply::Set(vec![st("OW"), st("update")])]),
        ])
    );
    // SORT's BY / GET and STORE specs are Redis's `unknown` ones.
    let info = run(CommandCmd::Info(names("sort")));
    let mut out = BytesMut::new();
    crate::encode::encode(&info, Protocol::Resp3, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(text.matches("$7\r\nunknown\r\n").count(), 4, "{text}");
}

#[test]
fn getkeys_reports_arguments_that_do_not_fit_the_key_specs() {
    static KEYS: [KeySpec; 1] = [KeySpec {
        notes: "",
        flags: &["RO"],
        begin: BeginSearch::Index(1),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
    }];
    fn never(_: &'static CommandSpec, _: &[Bytes]) -> Result<crate::Command, Reply> {
        Err(Reply::err("ERR test"))
    }
    let spec = CommandSpec::new("ZUNION", -3, &["readonly"], &KEYS, never);
    let a = argv("ZUNION 2 a b");
    assert_eq!(keys_of(&spec, &a).map(|k| k.len()), Ok(2));
    assert_eq!(
        keys_of(&spec, &argv("ZUNION 5 a b")),
        Err(Reply::err("ERR Invalid arguments specified for command"))
    );
    let optional = CommandSpec::new("X", -3, &["readonly", "no_mandatory_keys"], &KEYS, never);
    assert_eq!(keys_of(&optional, &argv("X 5 a b")), Ok(vec![]));
}

#[test]
fn command_list_and_filters() {
    let list = |f| array(run(CommandCmd::Names(f)));
    let all = list(None);
    assert_eq!(all.len(), command_table().len() + subcommand_table().len());
    assert!(all.contains(&bulk("get")) && all.contains(&bulk("client|setname")));
    let client = list(Some(ListFilter::Pattern(b("client*"))));
    assert_eq!(
        client.len(),
        1 + lookup(b"CLIENT").map_or(0, |s| s.subcommands.len())
    );
    let strings = list(Some(ListFilter::AclCat(b("STRING"))));
    assert!(strings.contains(&bulk("get")) && !strings.contains(&bulk("ping")));
    let admin = list(Some(ListFilter::AclCat(b("admin"))));
    assert!(admin.contains(&bulk("shutdown")) && admin.contains(&bulk("config|get")));
    assert!(list(Some(ListFilter::AclCat(b("nosuch")))).is_empty());
    assert!(list(Some(ListFilter::Module(b("json")))).is_empty());
}

#[test]
fn command_help_lists_every_subcommand() {
    let help = array(run(CommandCmd::Help));
    for sub in ["COUNT", "LIST", "GETKEYS <full-command>", "HELP"] {
        assert!(help.contains(&st(sub)), "{sub}");
    }
}
