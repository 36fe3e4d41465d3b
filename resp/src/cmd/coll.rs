//! What the collection families (`hash.rs`, `list.rs`, `set.rs`, `zset.rs`) share: the typed
//! command they parse into ([`Typed`]: the table entry, the arguments after the name, and
//! the family's operation), its table-entry macro, and argument helpers (counts, SCAN
//! options, key-count lists).

use bytes::Bytes;

use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use super::util::{int, syntax, upper};
use crate::Reply;

/// A collection command: its entry (kind, name and key positions come from it), its
/// arguments after the name (so key specs apply to them as to the request), and the parsed
/// operation the store runs.
#[derive(Debug, Clone)]
pub struct Typed<Op> {
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
    pub op: Op,
}

impl<Op: PartialEq> PartialEq for Typed<Op> {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name && self.args == other.args && self.op == other.op
    }
}

impl<Op> Typed<Op> {
    /// The first argument (the key of every single-key command; empty if none).
    pub fn key(&self) -> &[u8] {
        self.args.first().map_or(&b""[..], |k| &k[..])
    }
}

/// A key spec whose argument at `pos` counts the keys that follow it (ZUNION, LMPOP, ...).
pub(crate) const fn keynum(pos: i32, flags: &'static [&'static str]) -> KeySpec {
    KeySpec {
        notes: "",
        flags,
        begin: BeginSearch::Index(pos),
        find: FindKeys::Keynum {
            keynumidx: 0,
            firstkey: 1,
            step: 1,
        },
    }
}

/// One table entry: `entry!(ID, "NAME", arity, [flags], [key specs], parser, "acl",
/// "group", "since", "summary", "args")`.
macro_rules! entry {
    ($id:ident, $name:literal, $arity:expr, [$($flag:literal),*], [$($ks:expr),*], $parse:expr,
     $acl:literal, $since:literal, $summary:literal, $args:literal) => {
        pub(crate) static $id: CommandSpec = CommandSpec {
            summary: $summary,
            since: $since,
            group: GROUP,
            acl_categories: &[$acl],
            args: $args,
            ..CommandSpec::new($name, $arity, &[$($flag),*], &[$($ks),*], $parse)
        };
    };
}
pub(crate) use entry;

/// `ERR value is out of range, must be positive`.
pub(crate) fn not_positive() -> Reply {
    Reply::err("ERR value is out of range, must be positive")
}

/// A count that must be >= 0 (LPOP, SPOP, ZPOPMIN counts; Redis's
/// `getPositiveLongFromObjectOrReply`: one error for anything else).
pub(crate) fn count(b: &[u8]) -> Result<u64, Reply> {
    crate::request::string2ll(b)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(not_positive)
}

/// Options of HSCAN / SSCAN / ZSCAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanArgs {
    /// 0 starts; any other value is a position the previous page returned.
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: u64,
}

/// `cursor [MATCH pattern] [COUNT count]`.
pub(crate) fn scan_args(a: &[Bytes]) -> Result<ScanArgs, Reply> {
    let cursor = a
        .first()
        .and_then(|c| std::str::from_utf8(c).ok())
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count) = (None, 10u64);
    let mut rest = a.get(1..).unwrap_or_default();
    while let [opt, val, tail @ ..] = rest {
        match upper(opt).as_str() {
            "MATCH" => pattern = Some(val.clone()),
            "COUNT" => {
                count = u64::try_from(int(val)?)
                    .ok()
                    .filter(|&c| c >= 1)
                    .ok_or_else(syntax)?;
            }
            _ => return Err(syntax()),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(syntax());
    }
    Ok(ScanArgs {
        cursor,
        pattern,
        count,
    })
}

/// `numkeys key [key ...]` at the start of `a`: the keys and what follows them.
pub(crate) fn numkeys(a: &[Bytes]) -> Result<(Vec<Bytes>, &[Bytes]), Reply> {
    let n = a
        .first()
        .and_then(|n| crate::request::string2ll(n))
        .filter(|&n| n > 0)
        .ok_or_else(|| Reply::err("ERR numkeys should be greater than 0"))?;
    let n = n as usize;
    let rest = &a[1..];
    if n > rest.len() {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok((rest[..n].to_vec(), &rest[n..]))
}

/// A blocking command's timeout in seconds (`0` = forever, fractions allowed).
pub(crate) fn timeout(b: &[u8]) -> Result<f64, Reply> {
    let t = super::util::parse_float(b)
        .filter(|t| t.is_finite())
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    if t < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(t)
}

fn parse_clean(_: &'static CommandSpec, argv: &[Bytes]) -> Result<crate::Command, Reply> {
    Ok(crate::Command::CleanStale {
        cursor: argv[1].clone(),
        limit: u64::try_from(int(&argv[2])?).map_err(|_| not_positive())?,
    })
}

/// `RAFTKV.CLEAN cursor limit`: the leader's background removal of stale collection records
/// (replicated only; the cursor is the store's, in hex, empty to start).
pub(crate) static RAFTKV_CLEAN: CommandSpec = CommandSpec {
    summary: "Internal: removes the records of up to <limit> stale collections (replicated only).",
    group: "generic",
    ..CommandSpec::new("RAFTKV.CLEAN", 3, &["write"], &[], parse_clean)
};
