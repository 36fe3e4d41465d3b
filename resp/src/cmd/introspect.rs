//! The COMMAND command's replies, built from the command table in Redis 7's shapes:
//! `COMMAND` / `COMMAND INFO` (name, arity, flags, first key, last key, step, ACL categories,
//! tips, key specs, subcommands), `COMMAND DOCS`, `COMMAND COUNT`, `COMMAND GETKEYS` /
//! `GETKEYSANDFLAGS` (from the key specs) and `COMMAND LIST [FILTERBY ...]`. Pure: the
//! caller passes the glob matcher for `FILTERBY PATTERN`.

use bytes::Bytes;

use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use super::{command_table, lookup, util};
use crate::{CommandCmd, ListFilter, Reply};

/// A glob matcher `(pattern, text) -> matches`, case-insensitive (Redis's `stringmatchlen`
/// with nocase).
pub type Glob<'a> = &'a dyn Fn(&[u8], &[u8]) -> bool;

/// Answers a COMMAND subcommand.
pub fn reply(c: &CommandCmd, glob: Glob<'_>) -> Reply {
    match c {
        CommandCmd::List => all_info(),
        CommandCmd::Count => Reply::Int(command_table().len() as i64),
        CommandCmd::Info(names) if names.is_empty() => all_info(),
        CommandCmd::Info(names) => Reply::Array(
            names
                .iter()
                .map(|n| find(n).map_or(Reply::NilArray, info))
                .collect(),
        ),
        CommandCmd::Docs(names) => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                command_table().to_vec()
            } else {
                names.iter().filter_map(|n| find(n)).collect()
            };
            Reply::Map(specs.into_iter().map(|s| (name(s), docs(s))).collect())
        }
        CommandCmd::GetKeys(argv) => match get_keys(argv) {
            Ok(keys) => Reply::Array(keys.into_iter().map(|(k, _)| Reply::Bulk(k)).collect()),
            Err(e) => e,
        },
        CommandCmd::GetKeysAndFlags(argv) => match get_keys(argv) {
            Ok(keys) => Reply::Array(
                keys.into_iter()
                    .map(|(k, flags)| Reply::Array(vec![Reply::Bulk(k), status_set(flags)]))
                    .collect(),
            ),
            Err(e) => e,
        },
        CommandCmd::Names(filter) => Reply::Array(
            all_specs()
                .filter(|s| filter.as_ref().is_none_or(|f| keep(s, f, glob)))
                .map(name)
                .collect(),
        ),
        CommandCmd::Help => help(),
    }
}

/// Every top-level command followed by its subcommands (COMMAND LIST's order).
fn all_specs() -> impl Iterator<Item = &'static CommandSpec> {
    command_table()
        .iter()
        .flat_map(|c| std::iter::once(*c).chain(c.subcommands.iter()))
}

fn keep(s: &CommandSpec, f: &ListFilter, glob: Glob<'_>) -> bool {
    match f {
        // raftkv has no modules: no command belongs to one.
        ListFilter::Module(_) => false,
        ListFilter::AclCat(cat) => s
            .all_acl_categories()
            .iter()
            .any(|c| c.as_bytes().eq_ignore_ascii_case(cat)),
        ListFilter::Pattern(p) => glob(p, s.full_name().as_bytes()),
    }
}

/// Finds a command by its full name: `get`, or `client|setname` for a subcommand.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&c| c == b'|') {
        None => lookup(name),
        Some(i) => util::find_sub(lookup(&name[..i])?, &name[i + 1..]),
    }
}

fn name(s: &CommandSpec) -> Reply {
    Reply::bulk(s.full_name())
}

fn status_set(items: &[&str]) -> Reply {
    Reply::Set(items.iter().map(|f| Reply::Status(f.to_string())).collect())
}

fn bulk_set(items: &[&str]) -> Reply {
    Reply::Set(items.iter().map(|f| Reply::bulk(f.to_string())).collect())
}

fn pair(k: &str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk(k.to_string()), v)
}

fn all_info() -> Reply {
    Reply::Array(command_table().iter().map(|s| info(s)).collect())
}

/// One command's `COMMAND INFO` entry (Redis's `addReplyCommandInfo`).
pub fn info(s: &CommandSpec) -> Reply {
    let acl: Vec<String> = s
        .all_acl_categories()
        .iter()
        .map(|c| format!("@{c}"))
        .collect();
    let subcommands = if s.subcommands.is_empty() {
        Reply::Set(vec![])
    } else {
        Reply::Array(s.subcommands.iter().map(info).collect())
    };
    Reply::Array(vec![
        name(s),
        Reply::Int(s.arity.into()),
        status_set(s.flags),
        Reply::Int(s.first_key.into()),
        Reply::Int(s.last_key.into()),
        Reply::Int(s.step.into()),
        Reply::Set(acl.into_iter().map(Reply::Status).collect()),
        bulk_set(s.tips),
        Reply::Set(s.key_specs.iter().map(key_spec).collect()),
        subcommands,
    ])
}

fn int_map(entries: &[(&str, i32)]) -> Reply {
    Reply::Map(
        entries
            .iter()
            .map(|(k, v)| pair(k, Reply::Int((*v).into())))
            .collect(),
    )
}

fn typed(kind: &str, spec: Reply) -> Reply {
    Reply::Map(vec![
        pair("type", Reply::bulk(kind.to_string())),
        pair("spec", spec),
    ])
}

/// One key spec as `COMMAND INFO` shows it.
fn key_spec(k: &KeySpec) -> Reply {
    let begin = match k.begin {
        BeginSearch::Index(i) => typed("index", int_map(&[("index", i)])),
        BeginSearch::Keyword { keyword, startfrom } => typed(
            "keyword",
            Reply::Map(vec![
                pair("keyword", Reply::bulk(keyword)),
                pair("startfrom", Reply::Int(startfrom.into())),
            ]),
        ),
        BeginSearch::Unknown => typed("unknown", Reply::Map(vec![])),
    };
    let find = match k.find {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => typed(
            "range",
            int_map(&[("lastkey", lastkey), ("keystep", step), ("limit", limit)]),
        ),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            step,
        } => typed(
            "keynum",
            int_map(&[
                ("keynumidx", keynumidx),
                ("firstkey", firstkey),
                ("keystep", step),
            ]),
        ),
        FindKeys::Unknown => typed("unknown", Reply::Map(vec![])),
    };
    let mut m = Vec::with_capacity(4);
    if !k.notes.is_empty() {
        m.push(pair("notes", Reply::bulk(k.notes)));
    }
    m.push(pair("flags", status_set(k.flags)));
    m.push(pair("begin_search", begin));
    m.push(pair("find_keys", find));
    Reply::Map(m)
}

/// One command's `COMMAND DOCS` map (Redis's `addReplyCommandDocs`).
pub fn docs(s: &CommandSpec) -> Reply {
    let text = |k: &str, v: &'static str| (!v.is_empty()).then(|| pair(k, Reply::bulk(v)));
    let mut m: Vec<(Reply, Reply)> = Vec::new();
    m.extend(text("summary", s.summary));
    m.extend(text("since", s.since));
    m.push(pair("group", Reply::bulk(s.group)));
    m.extend(text("complexity", s.complexity));
    if !s.doc_flags.is_empty() {
        m.push(pair("doc_flags", status_set(s.doc_flags)));
    }
    m.extend(text("deprecated_since", s.deprecated_since));
    m.extend(text("replaced_by", s.replaced_by));
    if !s.history.is_empty() {
        let h = s
            .history
            .iter()
            .map(|(v, change)| Reply::Array(vec![Reply::bulk(*v), Reply::bulk(*change)]));
        m.push(pair("history", Reply::Set(h.collect())));
    }
    if let Some(args) = super::docargs::parse(s.args).filter(|a| !a.is_empty()) {
        m.push(pair("arguments", super::docargs::reply(&args)));
    }
    if !s.subcommands.is_empty() {
        let subs = s.subcommands.iter().map(|c| (name(c), docs(c)));
        m.push(pair("subcommands", Reply::Map(subs.collect())));
    }
    Reply::Map(m)
}

/// The keys (with their key spec's flags) of the command `argv` (Redis's
/// `getKeysSubcommandImpl`), or Redis's error.
fn get_keys(argv: &[Bytes]) -> Result<Vec<(Bytes, &'static [&'static str])>, Reply> {
    let base = argv.first().and_then(|n| lookup(n));
    // Like Redis's lookupCommand: a container with a second argument means its subcommand.
    let spec = match (base, argv.get(1)) {
        (Some(b), Some(sub)) if !b.subcommands.is_empty() => util::find_sub(b, sub),
        (b, _) => b,
    };
    let Some(spec) = spec else {
        return Err(Reply::err("ERR Invalid command specified"));
    };
    keys_of(spec, argv)
}

/// The keys of `argv` by `spec`'s key specs, with Redis's GETKEYS errors.
fn keys_of(
    spec: &CommandSpec,
    argv: &[Bytes],
) -> Result<Vec<(Bytes, &'static [&'static str])>, Reply> {
    if spec.key_specs.is_empty() {
        return Err(Reply::err("ERR The command has no key arguments"));
    }
    if util::check_arity(spec, argv.len()).is_err() {
        return Err(Reply::err(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    if let Some(getkeys) = spec.getkeys {
        let found = getkeys(argv.len(), &|i| argv.get(i).map(|b| &b[..]))
            .ok_or_else(|| Reply::err("ERR Invalid arguments specified for command"))?;
        return Ok(found
            .into_iter()
            .filter_map(|(i, ks)| Some((argv.get(i)?.clone(), spec.key_specs.get(ks)?.flags)))
            .collect());
    }
    let mut keys = Vec::new();
    for ks in spec.key_specs {
        let pos = ks.positions(argv.len(), |i| argv.get(i).map(|b| &b[..]));
        let Some(pos) = pos else {
            if spec.has_flag("no_mandatory_keys") {
                return Ok(vec![]);
            }
            return Err(Reply::err("ERR Invalid arguments specified for command"));
        };
        keys.extend(
            pos.into_iter()
                .filter_map(|i| argv.get(i))
                .map(|k| (k.clone(), ks.flags)),
        );
    }
    Ok(keys)
}

/// `COMMAND HELP`.
fn help() -> Reply {
    let lines = [
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys and the access flags from a full Redis command.",
        "HELP",
        "    Print this help.",
    ];
    Reply::Array(lines.iter().map(|l| Reply::Status(l.to_string())).collect())
}

#[cfg(test)]
#[path = "introspect_tests.rs"]
mod tests;
