//! SORT and SORT_RO (Redis 7.0's options: BY pattern (`nosort`, `*->field`), LIMIT, GET
//! (`#`, `*->field`, several), ASC / DESC, ALPHA, STORE). raftkv is a cluster, so BY and GET
//! patterns that form keys must pin the sorted key's slot with a hash tag, as Redis Cluster
//! requires (`resp::slot::pattern_hash_slot`); `GET #` and patterns without `*` form no key
//! and are always allowed. SORT with STORE is a replicated write; without STORE it answers
//! to a read form of its entry ([`SORT_READ`], not listed), as SORT_RO does.

use bytes::Bytes;

use super::coll::Typed;
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use super::util::{int, syntax, upper};
use crate::slot::{key_slot, pattern_hash_slot};
use crate::{Command, Reply};

/// A parsed SORT / SORT_RO (the sorted key is `args[0]`).
pub type SortCmd = Typed<SortArgs>;

/// SORT's options, as given (the last BY, LIMIT and STORE win, as in Redis).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortArgs {
    /// The last BY pattern.
    pub by: Option<Bytes>,
    /// A BY pattern without `*` was given: keep the collection's own order.
    pub dont_sort: bool,
    /// LIMIT offset count.
    pub limit: Option<(i64, i64)>,
    /// GET patterns in order.
    pub gets: Vec<Bytes>,
    pub desc: bool,
    pub alpha: bool,
    pub store: Option<Bytes>,
}

const RO: &[&str] = &["RO", "access"];

/// The BY / GET keys: derived from the sorted values (Redis's `unknown` spec).
const BY_GET: KeySpec = KeySpec {
    notes: "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
    flags: RO,
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
};

const STORE_SPEC: KeySpec = KeySpec {
    notes: "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array",
    flags: &["OW", "update"],
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
};

const SORT_KEYS: &[KeySpec] = &[KeySpec::range(1, 0, 1, RO), BY_GET, STORE_SPEC];

/// Redis's `sortGetKeys`: the sorted key, and the key after the last `STORE` (LIMIT, GET
/// and BY skip their arguments; STORE's key is looked at as an option again, as Redis does).
fn sort_getkeys<'a>(
    argc: usize,
    arg: &dyn Fn(usize) -> Option<&'a [u8]>,
) -> Option<Vec<(usize, usize)>> {
    if argc < 2 {
        return None;
    }
    let mut keys = vec![(1, 0)];
    let mut store = None;
    let mut i = 2;
    while i < argc {
        let a = arg(i)?;
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < argc {
            store = Some(i + 1);
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        }
        i += 1;
    }
    keys.extend(store.map(|s| (s, 2)));
    Some(keys)
}

pub(crate) static SORT: CommandSpec = CommandSpec {
    getkeys: Some(sort_getkeys),
    summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
    acl_categories: &["set", "sortedset", "list", "dangerous"],
    args: "key:key#0 by-pattern:pattern?~pattern=BY#1 limit:block?=LIMIT(offset:integer count:integer) get-pattern:pattern?*+~pattern=GET#1 order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) sorting:pure-token?=ALPHA destination:key?=STORE#2",
    ..CommandSpec::new(
        "SORT",
        -2,
        &["write", "denyoom", "movablekeys"],
        SORT_KEYS,
        parse,
    )
};

pub(crate) static SORT_RO: CommandSpec = CommandSpec {
    summary: "Returns the sorted elements of a list, a set, or a sorted set.",
    since: "7.0.0",
    group: "generic",
    complexity: "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
    acl_categories: &["set", "sortedset", "list", "dangerous"],
    args: "key:key#0 by-pattern:pattern?~pattern=BY#1 limit:block?=LIMIT(offset:integer count:integer) get-pattern:pattern?*+~pattern=GET#1 order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) sorting:pure-token?=ALPHA",
    ..CommandSpec::new(
        "SORT_RO",
        -2,
        &["readonly", "movablekeys"],
        &[KeySpec::range(1, 0, 1, RO), BY_GET],
        parse,
    )
};

/// SORT parsed without STORE: a read (not listed; `COMMAND` shows the write entry).
pub(crate) static SORT_READ: CommandSpec = CommandSpec {
    summary: "SORT without STORE (a read).",
    group: "generic",
    getkeys: Some(sort_getkeys),
    ..CommandSpec::new("SORT", -2, &["readonly", "movablekeys"], SORT_KEYS, parse)
};

/// `ERR <BY|GET> option of SORT denied in Cluster mode when keys formed by the pattern may
/// be in different slots.` unless the pattern forms no key or pins the key's slot.
fn check_slot(what: &str, pattern: &[u8], key: &[u8]) -> Result<(), Reply> {
    if pattern == b"#" || !pattern.contains(&b'*') {
        return Ok(());
    }
    if pattern_hash_slot(pattern) == Some(key_slot(key)) {
        return Ok(());
    }
    Err(Reply::err(format!(
        "ERR {what} option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
    )))
}

/// The family's parser: Redis's option loop (errors in argument order).
pub fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let readonly = spec.name == "SORT_RO";
    let key = &argv[1];
    let mut s = SortArgs::default();
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        match upper(&argv[j]).as_str() {
            "ASC" => s.desc = false,
            "DESC" => s.desc = true,
            "ALPHA" => s.alpha = true,
            "LIMIT" if left >= 2 => {
                s.limit = Some((int(&argv[j + 1])?, int(&argv[j + 2])?));
                j += 2;
            }
            "STORE" if left >= 1 && !readonly => {
                s.store = Some(argv[j + 1].clone());
                j += 1;
            }
            "BY" if left >= 1 => {
                let p = &argv[j + 1];
                if p.contains(&b'*') {
                    check_slot("BY", p, key)?;
                } else {
                    s.dont_sort = true;
                }
                s.by = Some(p.clone());
                j += 1;
            }
            "GET" if left >= 1 => {
                check_slot("GET", &argv[j + 1], key)?;
                s.gets.push(argv[j + 1].clone());
                j += 1;
            }
            _ => return Err(syntax()),
        }
        j += 1;
    }
    let spec = if spec.name == "SORT" && s.store.is_none() {
        &SORT_READ
    } else {
        spec
    };
    Ok(Command::Sort(Typed {
        spec,
        args: argv[1..].to_vec(),
        op: s,
    }))
}

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&SORT, &SORT_RO];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{argv, err, p, NOT_INT, SYNTAX};
    use crate::Kind;

    fn op(s: &str) -> SortArgs {
        match p(s) {
            Command::Sort(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn options_in_any_order() {
        let s = op("SORT {a}l BY {a}w_* LIMIT 0 5 GET # GET {a}o_*->f DESC ALPHA STORE {a}d");
        assert_eq!(s.by, Some("{a}w_*".into()));
        assert!(!s.dont_sort && s.desc && s.alpha);
        assert_eq!(s.limit, Some((0, 5)));
        assert_eq!(s.gets, vec![Bytes::from("#"), Bytes::from("{a}o_*->f")]);
        assert_eq!(s.store, Some("{a}d".into()));
        assert!(op("SORT l BY nosort").dont_sort);
        assert_eq!(err("SORT l LIMIT 0"), SYNTAX);
        assert_eq!(err("SORT l LIMIT x 1"), NOT_INT);
        assert_eq!(err("SORT l FOO"), SYNTAX);
        assert_eq!(err("SORT_RO l STORE d"), SYNTAX);
    }

    #[test]
    fn store_makes_it_a_write_and_a_key() {
        assert_eq!(p("SORT l").kind(), Kind::Read);
        assert_eq!(p("SORT_RO l").kind(), Kind::Read);
        let c = p("SORT l STORE d");
        assert_eq!(c.kind(), Kind::Write);
        assert_eq!(c.keys(), vec![&Bytes::from("l"), &Bytes::from("d")]);
        // The last STORE wins, as in Redis's sortGetKeys.
        assert_eq!(p("SORT l STORE a STORE b").keys()[1], &Bytes::from("b"));
        let a = argv("SORT l LIMIT 0 1 GET store BY x");
        assert_eq!(SORT.keys_in(&a), Some(vec![&a[1]]));
    }

    #[test]
    fn patterns_must_pin_the_sorted_keys_slot() {
        assert_eq!(
            err("SORT l BY w_*"),
            "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
        );
        assert_eq!(
            err("SORT_RO {a}l BY {a}w_* GET o_*"),
            "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
        );
        assert!(err("SORT {a}l BY {b}w_*").starts_with("ERR BY option"));
        // The first error in argument order wins.
        assert_eq!(err("SORT l LIMIT x 1 BY w_*"), NOT_INT);
        let s = op("SORT {a}l BY {a}w_* GET {a}o_* GET # GET constant");
        assert_eq!(s.gets.len(), 3);
        assert_eq!(op("SORT user BY {user}w_*").by, Some("{user}w_*".into()));
    }
}
