//! A command's table entry: the static facts `COMMAND INFO` / `COMMAND DOCS` report (name,
//! arity, flags, key specs, ACL categories, docs) together with the function that parses it.
//! How a command is executed ([`Kind`]) and where its keys are follow from this entry alone,
//! so adding a command is adding an entry (plus its variant), never editing extra matches.

use bytes::Bytes;

use crate::{Command, Reply};

/// Parses a whole argument vector (`argv[0]` is the name) whose arity the caller has already
/// checked against the entry it was found under.
pub type ParseFn = fn(&'static CommandSpec, &[Bytes]) -> Result<Command, Reply>;

/// Finds the keys of a command whose key specs cannot (Redis's `getkeys_proc`, e.g. SORT's
/// STORE anywhere in the arguments): given the argument count and the arguments (index 0 is
/// the name), the keys' (argument index, key spec index) in order, or `None` when the
/// arguments do not fit.
pub type GetKeysFn =
    for<'a> fn(usize, &dyn Fn(usize) -> Option<&'a [u8]>) -> Option<Vec<(usize, usize)>>;

/// How a command is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Answered by the session itself (connection state, server info).
    Local,
    /// Needs a linearizable read of the store.
    Read,
    /// Must be replicated through Raft.
    Write,
    /// Cluster administration: served by the node (or its leader), may wait.
    Admin,
}

/// Where a key spec starts looking for keys (Redis 7 `begin_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index (the command name is index 0).
    Index(i32),
    /// After the first occurrence of `keyword`, searching from `startfrom` (negative: from the
    /// end, backwards).
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
    /// Redis's `unknown`: the keys cannot be found from the arguments' positions (SORT's
    /// BY / GET patterns and STORE); the entry's [`CommandSpec::getkeys`] finds them.
    Unknown,
}

/// How a key spec finds its keys once it has begun (Redis 7 `find_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the begin index to `lastkey` (relative to it; negative: from the end), every
    /// `step` arguments; `limit` > 0 keeps only 1/limit of the remaining arguments.
    Range { lastkey: i32, step: i32, limit: i32 },
    /// The argument at `keynumidx` (relative to the begin) counts the keys, which start at
    /// `firstkey` (relative to the begin), every `step` arguments.
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        step: i32,
    },
    /// Redis's `unknown` (see [`BeginSearch::Unknown`]).
    Unknown,
}

/// One Redis 7 key specification: where some of a command's keys are and how it uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Free text, shown by `COMMAND INFO` when not empty.
    pub notes: &'static str,
    /// Access flags in Redis's order (`RO`/`RW`/`OW`/`RM`, then `access`, `update`, ...).
    pub flags: &'static [&'static str],
    pub begin: BeginSearch,
    pub find: FindKeys,
}

impl KeySpec {
    /// Keys from index `pos` to `lastkey` (relative to `pos`; -1 = the last argument), every
    /// `step` arguments.
    pub const fn range(
        pos: i32,
        lastkey: i32,
        step: i32,
        flags: &'static [&'static str],
    ) -> KeySpec {
        KeySpec {
            notes: "",
            flags,
            begin: BeginSearch::Index(pos),
            find: FindKeys::Range {
                lastkey,
                step,
                limit: 0,
            },
        }
    }

    /// The same spec with a note.
    pub const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = notes;
        self
    }

    /// Argument positions of this spec's keys in an argument vector of `argc` arguments
    /// (`arg(i)` gives argument `i`), like Redis's `getKeysUsingKeySpecs`. `None` when the
    /// arguments do not fit the spec (Redis's "invalid spec": e.g. a bad key count).
    pub fn positions<'a>(
        &self,
        argc: usize,
        arg: impl Fn(usize) -> Option<&'a [u8]>,
    ) -> Option<Vec<usize>> {
        let argc = i64::try_from(argc).ok()?;
        let first = match self.begin {
            BeginSearch::Index(pos) => i64::from(pos),
            BeginSearch::Keyword { keyword, startfrom } => {
                let found = keyword_index(argc, i64::from(startfrom), keyword, &arg);
                match found {
                    Some(i) => i + 1,
                    // The keyword is absent: this spec has no keys here.
                    None => return Some(vec![]),
                }
            }
            // Found by the entry's getkeys function, not by position.
            BeginSearch::Unknown => return Some(vec![]),
        };
        let (first, last, step) = match self.find {
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let (lastkey, limit) = (i64::from(lastkey), i64::from(limit));
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit <= 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, i64::from(step))
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let at = usize::try_from(first + i64::from(keynumidx)).ok()?;
                let n = crate::request::string2ll(arg(at)?).filter(|n| *n >= 0)?;
                if n == 0 {
                    // No keys (EVAL script 0): valid, as in Redis.
                    return Some(vec![]);
                }
                let first = first + i64::from(firstkey);
                (first, first.checked_add(n)? - 1, i64::from(step))
            }
            FindKeys::Unknown => return Some(vec![]),
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return None;
        }
        Some(
            (first..=last)
                .step_by(step as usize)
                .filter_map(|i| usize::try_from(i).ok())
                .collect(),
        )
    }
}

/// Index of the first `keyword` (case-insensitive) searching from `startfrom` (negative: from
/// the end, backwards), never at index 0.
fn keyword_index<'a>(
    argc: i64,
    startfrom: i64,
    keyword: &str,
    arg: &impl Fn(usize) -> Option<&'a [u8]>,
) -> Option<i64> {
    let matches = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(arg)
            .is_some_and(|a| a.eq_ignore_ascii_case(keyword.as_bytes()))
    };
    if startfrom > 0 {
        (startfrom..argc).find(|&i| matches(i))
    } else {
        (1..=argc + startfrom).rev().find(|&i| matches(i))
    }
}

/// Static facts about a command: its `COMMAND INFO` / `COMMAND DOCS` entry and its parser.
/// Top-level names are upper case (`GET`); subcommands are `container|sub` in lower case.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Positive: exact argument count (name included); negative: at least -arity.
    pub arity: i32,
    /// Command flags in the order Redis 7 lists them (`write`, `readonly`, `denyoom`, ...).
    pub flags: &'static [&'static str],
    /// Redis's legacy key range (derived from the key specs by [`CommandSpec::new`]).
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// How the command runs (derived from the flags by [`CommandSpec::new`]).
    pub kind: Kind,
    pub key_specs: &'static [KeySpec],
    /// Explicit ACL categories, lower case without `@` (`string`, `keyspace`, ...); the
    /// implicit ones (`read`, `write`, `fast`/`slow`, `admin`, ...) follow from the flags.
    pub acl_categories: &'static [&'static str],
    /// Command tips, lower case (`nondeterministic_output`, `request_policy:all_shards`).
    pub tips: &'static [&'static str],
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub complexity: &'static str,
    /// `deprecated`, `syscmd`.
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: &'static str,
    pub replaced_by: &'static str,
    /// (version, change) pairs.
    pub history: &'static [(&'static str, &'static str)],
    /// The documented arguments, in the compact form of [`super::docargs`].
    pub args: &'static str,
    pub subcommands: &'static [CommandSpec],
    pub parse: ParseFn,
    /// Set for commands whose keys the key specs cannot locate (see [`GetKeysFn`]); used
    /// instead of the specs for routing and `COMMAND GETKEYS`.
    pub getkeys: Option<GetKeysFn>,
}

/// `a == b` usable in const fns.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `flags` holds `flag` (const).
pub(crate) const fn has_flag(flags: &[&str], flag: &str) -> bool {
    let mut i = 0;
    while i < flags.len() {
        if str_eq(flags[i], flag) {
            return true;
        }
        i += 1;
    }
    false
}

/// The execution kind a command's flags imply: `write` → replicated, `readonly` → a
/// linearizable read, `admin` → cluster administration, anything else → the session.
const fn kind_of(flags: &[&str]) -> Kind {
    if has_flag(flags, "write") {
        Kind::Write
    } else if has_flag(flags, "readonly") {
        Kind::Read
    } else if has_flag(flags, "admin") {
        Kind::Admin
    } else {
        Kind::Local
    }
}

/// Redis's legacy (first, last, step) from the key specs (`populateCommandLegacyRangeSpec`):
/// one index/range spec as is; several consecutive step-1 specs merged; others skipped.
const fn legacy_range(specs: &[KeySpec]) -> (i32, i32, i32) {
    if specs.len() == 1 {
        if let (BeginSearch::Index(pos), FindKeys::Range { lastkey, step, .. }) =
            (specs[0].begin, specs[0].find)
        {
            let last = if lastkey >= 0 { pos + lastkey } else { lastkey };
            return (pos, last, step);
        }
    }
    let (mut first, mut last, mut prev_last) = (i32::MAX, 0, 0);
    let mut i = 0;
    while i < specs.len() {
        if let (BeginSearch::Index(pos), FindKeys::Range { lastkey, step, .. }) =
            (specs[i].begin, specs[i].find)
        {
            if step == 1 && (prev_last == 0 || prev_last == pos - 1) {
                if pos < first {
                    first = pos;
                }
                let abs = if lastkey >= 0 { pos + lastkey } else { lastkey };
                // Redis compares as unsigned, so a negative (from the end) last key wins.
                if abs as u32 > last as u32 {
                    last = abs;
                }
                prev_last = last;
            }
        }
        i += 1;
    }
    if first == i32::MAX {
        (0, 0, 0)
    } else {
        (first, last, 1)
    }
}

impl CommandSpec {
    /// An entry with no docs; the kind and the legacy key range are derived here. Entries
    /// add their docs with struct update syntax: `CommandSpec { summary: .., ..new(..) }`.
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: &'static [&'static str],
        key_specs: &'static [KeySpec],
        parse: ParseFn,
    ) -> CommandSpec {
        let (first_key, last_key, step) = legacy_range(key_specs);
        CommandSpec {
            name,
            arity,
            flags,
            first_key,
            last_key,
            step,
            kind: kind_of(flags),
            key_specs,
            acl_categories: &[],
            tips: &[],
            summary: "",
            since: "",
            group: "",
            complexity: "",
            doc_flags: &[],
            deprecated_since: "",
            replaced_by: "",
            history: &[],
            args: "",
            subcommands: &[],
            parse,
            getkeys: None,
        }
    }

    /// The name `COMMAND INFO` reports: lower case (`get`, `client|setname`).
    pub fn full_name(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// Whether the command has the flag (`write`, `fast`, ...).
    pub fn has_flag(&self, flag: &str) -> bool {
        has_flag(self.flags, flag)
    }

    /// Every ACL category, explicit and implied by the flags (Redis's
    /// `setImplicitACLCategories`), in Redis's order, lower case without `@`.
    pub fn all_acl_categories(&self) -> Vec<&'static str> {
        const ORDER: &[&str] = &[
            "keyspace",
            "read",
            "write",
            "set",
            "sortedset",
            "list",
            "hash",
            "string",
            "bitmap",
            "hyperloglog",
            "geo",
            "stream",
            "pubsub",
            "admin",
            "fast",
            "slow",
            "blocking",
            "dangerous",
            "connection",
            "transaction",
            "scripting",
        ];
        let explicit = |c: &str| has_flag(self.acl_categories, c);
        let implied = |c: &str| match c {
            "write" => self.has_flag("write"),
            "read" => self.has_flag("readonly") && !explicit("scripting"),
            "admin" | "dangerous" => self.has_flag("admin"),
            "pubsub" => self.has_flag("pubsub"),
            "fast" => self.has_flag("fast"),
            "blocking" => self.has_flag("blocking"),
            "slow" => !self.has_flag("fast") && !explicit("fast"),
            _ => false,
        };
        ORDER
            .iter()
            .copied()
            .filter(|c| explicit(c) || implied(c))
            .collect()
    }

    /// Argument positions of the keys in an argument vector of `argc` arguments (all key
    /// specs in order), or `None` when the arguments do not fit a spec.
    pub fn key_positions<'a>(
        &self,
        argc: usize,
        arg: impl Fn(usize) -> Option<&'a [u8]> + Copy,
    ) -> Option<Vec<usize>> {
        if let Some(getkeys) = self.getkeys {
            return Some(getkeys(argc, &arg)?.into_iter().map(|(i, _)| i).collect());
        }
        let mut all = Vec::new();
        for ks in self
            .key_specs
            .iter()
            .filter(|k| !has_flag(k.flags, "not_key"))
        {
            all.extend(ks.positions(argc, arg)?);
        }
        Some(all)
    }

    /// The keys of `argv` (a whole request, `argv[0]` the name) by this entry's key specs.
    pub fn keys_in<'a>(&self, argv: &'a [Bytes]) -> Option<Vec<&'a Bytes>> {
        let pos = self.key_positions(argv.len(), |i| argv.get(i).map(|b| &b[..]))?;
        Some(pos.into_iter().filter_map(|i| argv.get(i)).collect())
    }
}

/// A typed command's leading arguments in argument-vector order (index 1 first), as far as
/// its key specs reach: how [`Command::keys`] applies the table's key positions to a typed
/// command without its argument vector.
#[derive(Debug, Clone, Copy)]
pub enum Args<'a> {
    None,
    One(&'a Bytes),
    Two(&'a Bytes, &'a Bytes),
    List(&'a [Bytes]),
    /// `k1 v1 k2 v2 ...`
    Pairs(&'a [(Bytes, Bytes)]),
}

impl<'a> Args<'a> {
    /// Number of arguments shown, the command name included.
    pub fn argc(&self) -> usize {
        1 + match self {
            Args::None => 0,
            Args::One(_) => 1,
            Args::Two(..) => 2,
            Args::List(l) => l.len(),
            Args::Pairs(p) => 2 * p.len(),
        }
    }

    /// Argument `i` (1-based; 0, the name, is not shown).
    pub fn get(&self, i: usize) -> Option<&'a Bytes> {
        let i = i.checked_sub(1)?;
        match *self {
            Args::None => None,
            Args::One(a) => (i == 0).then_some(a),
            Args::Two(a, b) => [a, b].get(i).copied(),
            Args::List(l) => l.get(i),
            Args::Pairs(p) => p.get(i / 2).map(|(k, v)| if i % 2 == 0 { k } else { v }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
        Err(Reply::err("ERR test"))
    }

    fn positions(spec: &KeySpec, argv: &[&str]) -> Option<Vec<usize>> {
        spec.positions(argv.len(), |i| argv.get(i).map(|s| s.as_bytes()))
    }

    #[test]
    fn key_spec_positions() {
        let one = KeySpec::range(1, 0, 1, &["RO"]);
        assert_eq!(positions(&one, &["get", "k"]), Some(vec![1]));
        assert_eq!(positions(&one, &["get"]), None);
        let pairs = KeySpec::range(1, -1, 2, &["OW"]);
        assert_eq!(
            positions(&pairs, &["mset", "a", "1", "b", "2"]),
            Some(vec![1, 3])
        );
        // Like Redis, an odd tail still yields its key position.
        assert_eq!(
            positions(&pairs, &["mset", "a", "1", "b"]),
            Some(vec![1, 3])
        );
        let keynum = KeySpec {
            notes: "",
            flags: &["RO"],
            begin: BeginSearch::Index(2),
            find: FindKeys::Keynum {
                keynumidx: 0,
                firstkey: 1,
                step: 1,
            },
        };
        let z = ["zunion", "x", "2", "a", "b", "WEIGHTS"];
        assert_eq!(positions(&keynum, &z), Some(vec![3, 4]));
        assert_eq!(positions(&keynum, &["zunion", "x", "9", "a"]), None);
        assert_eq!(positions(&keynum, &["zunion", "x", "-1", "a"]), None);
        assert_eq!(positions(&keynum, &["zunion", "x", "n", "a"]), None);
        let kw = KeySpec {
            notes: "",
            flags: &["RO"],
            begin: BeginSearch::Keyword {
                keyword: "STREAMS",
                startfrom: 1,
            },
            find: FindKeys::Range {
                lastkey: -1,
                step: 1,
                limit: 2,
            },
        };
        let x = ["xread", "COUNT", "2", "streams", "a", "b", "0", "0"];
        assert_eq!(positions(&kw, &x), Some(vec![4, 5]));
        assert_eq!(positions(&kw, &["xread", "COUNT", "2"]), Some(vec![]));
    }

    #[test]
    fn derived_kind_and_legacy_range() {
        static RENAME_KEYS: [KeySpec; 2] = [
            KeySpec::range(1, 0, 1, &["RW"]),
            KeySpec::range(2, 0, 1, &["OW"]),
        ];
        let s = CommandSpec::new("RENAME", 3, &["write"], &RENAME_KEYS, never);
        assert_eq!(
            (s.kind, s.first_key, s.last_key, s.step),
            (Kind::Write, 1, 2, 1)
        );
        let s = CommandSpec::new("MGET", -2, &["readonly", "fast"], &[], never);
        assert_eq!(
            (s.kind, s.first_key, s.last_key, s.step),
            (Kind::Read, 0, 0, 0)
        );
        static MSET_KEYS: [KeySpec; 1] = [KeySpec::range(1, -1, 2, &["OW"])];
        let s = CommandSpec::new("MSET", -3, &["write", "denyoom"], &MSET_KEYS, never);
        assert_eq!((s.first_key, s.last_key, s.step), (1, -1, 2));
        assert_eq!(
            CommandSpec::new("X", 1, &["admin"], &[], never).kind,
            Kind::Admin
        );
        assert_eq!(
            CommandSpec::new("X", 1, &["fast"], &[], never).kind,
            Kind::Local
        );
    }

    #[test]
    fn acl_categories_include_implied_ones() {
        let s = CommandSpec {
            acl_categories: &["string"],
            ..CommandSpec::new("GET", 2, &["readonly", "fast"], &[], never)
        };
        assert_eq!(s.all_acl_categories(), ["read", "string", "fast"]);
        let s = CommandSpec {
            acl_categories: &["keyspace", "dangerous"],
            ..CommandSpec::new("FLUSHALL", -1, &["write"], &[], never)
        };
        assert_eq!(
            s.all_acl_categories(),
            ["keyspace", "write", "slow", "dangerous"]
        );
        let s = CommandSpec::new("SHUTDOWN", -1, &["admin", "noscript"], &[], never);
        assert_eq!(s.all_acl_categories(), ["admin", "slow", "dangerous"]);
    }

    #[test]
    fn args_view() {
        let kv = [
            (Bytes::from("a"), Bytes::from("1")),
            (Bytes::from("b"), Bytes::from("2")),
        ];
        let a = Args::Pairs(&kv);
        assert_eq!(a.argc(), 5);
        assert_eq!(a.get(3), Some(&Bytes::from("b")));
        assert_eq!(a.get(4), Some(&Bytes::from("2")));
        assert_eq!(a.get(0), None);
        assert_eq!(a.get(5), None);
        assert_eq!(Args::None.argc(), 1);
    }
}
