//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM
//! LTRIM LPOS LMOVE RPOPLPUSH LMPOP and the blocking BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP
//! (parsed with their timeouts; see the store for what a blocking form does today). One
//! parser for the family (by entry name), the table entries and the unit tests.

use bytes::Bytes;

use super::coll::{count, entry, keynum, numkeys, timeout, Typed};
use super::spec::{CommandSpec, KeySpec};
use super::util::{int, syntax, upper};
use crate::{Command, Reply};

const GROUP: &str = "list";

/// A parsed list command (the key is `args[0]` for single-key commands).
pub type ListCmd = Typed<ListOp>;

/// What a list command does.
#[derive(Debug, Clone, PartialEq)]
pub enum ListOp {
    Push {
        left: bool,
        only_existing: bool,
        values: Vec<Bytes>,
    },
    /// LPOP / RPOP with an optional count (the reply is an array when given).
    Pop {
        left: bool,
        count: Option<u64>,
    },
    Len,
    Range(i64, i64),
    /// LINDEX / LSET: the index, `None` when not an integer (Redis looks the key up first,
    /// so a missing key or another type answers before the bad index).
    Index(Option<i64>),
    Set(Option<i64>, Bytes),
    Insert {
        before: bool,
        pivot: Bytes,
        value: Bytes,
    },
    Rem(i64, Bytes),
    Trim(i64, i64),
    Pos {
        value: Bytes,
        rank: i64,
        count: Option<u64>,
        maxlen: u64,
    },
    /// LMOVE / RPOPLPUSH (`src` is `args[0]`), and their blocking forms with a timeout.
    Move {
        dst: Bytes,
        from_left: bool,
        to_left: bool,
        timeout: Option<f64>,
    },
    /// LMPOP, BLMPOP (`bpop` false) and BLPOP / BRPOP (`bpop`: one element, `[key, elem]`).
    MPop {
        keys: Vec<Bytes>,
        left: bool,
        count: u64,
        timeout: Option<f64>,
        bpop: bool,
    },
}

fn side(b: &[u8]) -> Result<bool, Reply> {
    match upper(b).as_str() {
        "LEFT" => Ok(true),
        "RIGHT" => Ok(false),
        _ => Err(syntax()),
    }
}

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let name = spec.name;
    let a = &argv[2..];
    let op = match name {
        "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" => ListOp::Push {
            left: name.starts_with('L'),
            only_existing: name.ends_with('X'),
            values: a.to_vec(),
        },
        "LPOP" | "RPOP" => {
            if a.len() > 1 {
                return Err(super::util::arity(name));
            }
            ListOp::Pop {
                left: name == "LPOP",
                count: a.first().map(|c| count(c)).transpose()?,
            }
        }
        "LLEN" => ListOp::Len,
        "LRANGE" => ListOp::Range(int(&a[0])?, int(&a[1])?),
        "LINDEX" => ListOp::Index(int(&a[0]).ok()),
        "LSET" => ListOp::Set(int(&a[0]).ok(), a[1].clone()),
        "LINSERT" => ListOp::Insert {
            before: match upper(&a[0]).as_str() {
                "BEFORE" => true,
                "AFTER" => false,
                _ => return Err(syntax()),
            },
            pivot: a[1].clone(),
            value: a[2].clone(),
        },
        "LREM" => ListOp::Rem(int(&a[0])?, a[1].clone()),
        "LTRIM" => ListOp::Trim(int(&a[0])?, int(&a[1])?),
        "LPOS" => lpos(a)?,
        "LMOVE" | "BLMOVE" => ListOp::Move {
            dst: a[0].clone(),
            from_left: side(&a[1])?,
            to_left: side(&a[2])?,
            timeout: a.get(3).map(|t| timeout(t)).transpose()?,
        },
        "RPOPLPUSH" | "BRPOPLPUSH" => ListOp::Move {
            dst: a[0].clone(),
            from_left: false,
            to_left: true,
            timeout: a.get(1).map(|t| timeout(t)).transpose()?,
        },
        "BLPOP" | "BRPOP" => {
            let (keys, t) = argv[1..].split_at(argv.len() - 2);
            ListOp::MPop {
                keys: keys.to_vec(),
                left: name == "BLPOP",
                count: 1,
                timeout: Some(timeout(&t[0])?),
                bpop: true,
            }
        }
        "LMPOP" => mpop(&argv[1..], None)?,
        _ => mpop(&argv[2..], Some(timeout(&argv[1])?))?,
    };
    Ok(Command::List(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// `numkeys key... LEFT|RIGHT [COUNT count]`.
fn mpop(a: &[Bytes], timeout: Option<f64>) -> Result<ListOp, Reply> {
    let (keys, rest) = numkeys(a)?;
    let (dir, rest) = rest.split_first().ok_or_else(syntax)?;
    let left = side(dir)?;
    let count = match rest {
        [] => 1,
        [c, n] if upper(c) == "COUNT" => u64::try_from(int(n)?)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Reply::err("ERR count should be greater than 0"))?,
        _ => return Err(syntax()),
    };
    Ok(ListOp::MPop {
        keys,
        left,
        count,
        timeout,
        bpop: false,
    })
}

fn lpos(a: &[Bytes]) -> Result<ListOp, Reply> {
    let (mut rank, mut cnt, mut maxlen) = (1i64, None, 0u64);
    let mut rest = &a[1..];
    while let [opt, val, tail @ ..] = rest {
        let n = int(val)?;
        match upper(opt).as_str() {
            "RANK" if n == 0 => return Err(Reply::err(
                "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
            )),
            "RANK" if n == i64::MIN => return Err(Reply::err("ERR value is out of range")),
            "RANK" => rank = n,
            "COUNT" if n < 0 => return Err(Reply::err("ERR COUNT can't be negative")),
            "COUNT" => cnt = Some(n as u64),
            "MAXLEN" if n < 0 => return Err(Reply::err("ERR MAXLEN can't be negative")),
            "MAXLEN" => maxlen = n as u64,
            _ => return Err(syntax()),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(syntax());
    }
    Ok(ListOp::Pos {
        value: a[0].clone(),
        rank,
        count: cnt,
        maxlen,
    })
}

const RW_INSERT: &[&str] = &["RW", "insert"];
const RO: &[&str] = &["RO", "access"];
const RW_DELETE: &[&str] = &["RW", "access", "delete"];

entry!(
    LPUSH,
    "LPUSH",
    -3,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse,
    "list",
    "1.0.0",
    "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
    "key:key#0 element:string+"
);
entry!(
    RPUSH,
    "RPUSH",
    -3,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse,
    "list",
    "1.0.0",
    "Appends one or more elements to a list. Creates the key if it doesn't exist.",
    "key:key#0 element:string+"
);
entry!(
    LPUSHX,
    "LPUSHX",
    -3,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse,
    "list",
    "2.2.0",
    "Prepends one or more elements to a list only when the list exists.",
    "key:key#0 element:string+"
);
entry!(
    RPUSHX,
    "RPUSHX",
    -3,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse,
    "list",
    "2.2.0",
    "Appends an element to a list only when the list exists.",
    "key:key#0 element:string+"
);
entry!(LPOP, "LPOP", -2, ["write", "fast"], [KeySpec::range(1, 0, 1, RW_DELETE)], parse, "list",
    "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
    "key:key#0 count:integer?@6.2.0");
entry!(RPOP, "RPOP", -2, ["write", "fast"], [KeySpec::range(1, 0, 1, RW_DELETE)], parse, "list",
    "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.",
    "key:key#0 count:integer?@6.2.0");
entry!(
    LLEN,
    "LLEN",
    2,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "list",
    "1.0.0",
    "Returns the length of a list.",
    "key:key#0"
);
entry!(
    LRANGE,
    "LRANGE",
    4,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "list",
    "1.0.0",
    "Returns a range of elements from a list.",
    "key:key#0 start:integer stop:integer"
);
entry!(
    LINDEX,
    "LINDEX",
    3,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "list",
    "1.0.0",
    "Returns an element from a list by its index.",
    "key:key#0 index:integer"
);
entry!(
    LSET,
    "LSET",
    4,
    ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, &["RW", "update"])],
    parse,
    "list",
    "1.0.0",
    "Sets the value of an element in a list by its index.",
    "key:key#0 index:integer element:string"
);
entry!(LINSERT, "LINSERT", 5, ["write", "denyoom"], [KeySpec::range(1, 0, 1, RW_INSERT)],
    parse, "list", "2.2.0", "Inserts an element before or after another element in a list.",
    "key:key#0 where:oneof(before:pure-token=BEFORE after:pure-token=AFTER) pivot:string element:string");
entry!(
    LREM,
    "LREM",
    4,
    ["write"],
    [KeySpec::range(1, 0, 1, &["RW", "delete"])],
    parse,
    "list",
    "1.0.0",
    "Removes elements from a list. Deletes the list if the last element was removed.",
    "key:key#0 count:integer element:string"
);
entry!(
    LTRIM,
    "LTRIM",
    4,
    ["write"],
    [KeySpec::range(1, 0, 1, &["RW", "delete"])],
    parse,
    "list",
    "1.0.0",
    "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
    "key:key#0 start:integer stop:integer"
);
entry!(
    LPOS,
    "LPOS",
    -3,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "list",
    "6.0.6",
    "Returns the index of matching elements in a list.",
    "key:key#0 element:string rank:integer?=RANK num-matches:integer?=COUNT len:integer?=MAXLEN"
);
entry!(LMOVE, "LMOVE", 5, ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, RW_DELETE), KeySpec::range(2, 0, 1, RW_INSERT)], parse, "list",
    "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
    "source:key#0 destination:key#1 wherefrom:oneof(left:pure-token=LEFT right:pure-token=RIGHT) whereto:oneof(left:pure-token=LEFT right:pure-token=RIGHT)");
entry!(RPOPLPUSH, "RPOPLPUSH", 3, ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, RW_DELETE), KeySpec::range(2, 0, 1, RW_INSERT)], parse, "list",
    "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
    "source:key#0 destination:key#1");
entry!(LMPOP, "LMPOP", -4, ["write", "movablekeys"], [keynum(1, RW_DELETE)], parse, "list", "7.0.0",
    "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
    "numkeys:integer key:key*#0 where:oneof(left:pure-token=LEFT right:pure-token=RIGHT) count:integer?=COUNT");
entry!(BLPOP, "BLPOP", -3, ["write", "blocking"], [KeySpec::range(1, -2, 1, RW_DELETE)], parse,
    "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    "key:key*#0 timeout:double");
entry!(BRPOP, "BRPOP", -3, ["write", "blocking"], [KeySpec::range(1, -2, 1, RW_DELETE)], parse,
    "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    "key:key*#0 timeout:double");
entry!(BLMOVE, "BLMOVE", 6, ["write", "denyoom", "blocking"],
    [KeySpec::range(1, 0, 1, RW_DELETE), KeySpec::range(2, 0, 1, RW_INSERT)], parse, "list",
    "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
    "source:key#0 destination:key#1 wherefrom:oneof(left:pure-token=LEFT right:pure-token=RIGHT) whereto:oneof(left:pure-token=LEFT right:pure-token=RIGHT) timeout:double");
entry!(BRPOPLPUSH, "BRPOPLPUSH", 4, ["write", "denyoom", "blocking"],
    [KeySpec::range(1, 0, 1, RW_DELETE), KeySpec::range(2, 0, 1, RW_INSERT)], parse, "list",
    "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
    "source:key#0 destination:key#1 timeout:double");
entry!(BLMPOP, "BLMPOP", -5, ["write", "blocking", "movablekeys"], [keynum(2, RW_DELETE)], parse, "list",
    "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
    "timeout:double numkeys:integer key:key*#0 where:oneof(left:pure-token=LEFT right:pure-token=RIGHT) count:integer?=COUNT");

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &LPUSH,
    &RPUSH,
    &LPUSHX,
    &RPUSHX,
    &LPOP,
    &RPOP,
    &LLEN,
    &LRANGE,
    &LINDEX,
    &LSET,
    &LINSERT,
    &LREM,
    &LTRIM,
    &LPOS,
    &LMOVE,
    &RPOPLPUSH,
    &LMPOP,
    &BLPOP,
    &BRPOP,
    &BLMOVE,
    &BRPOPLPUSH,
    &BLMPOP,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};

    fn op(s: &str) -> ListOp {
        match p(s) {
            Command::List(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn pops_and_counts() {
        assert_eq!(
            op("LPOP l"),
            ListOp::Pop {
                left: true,
                count: None
            }
        );
        assert_eq!(
            op("RPOP l 0"),
            ListOp::Pop {
                left: false,
                count: Some(0)
            }
        );
        assert_eq!(
            err("LPOP l -1"),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(
            err("LPOP l 1 2"),
            "ERR wrong number of arguments for 'lpop' command"
        );
        assert_eq!(err("LRANGE l a 1"), NOT_INT);
        assert_eq!(
            err("RPOP l x"),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(op("LINDEX l x"), ListOp::Index(None));
        assert_eq!(err("LINSERT l middle p v"), SYNTAX);
        assert_eq!(err("LMOVE a b LEFT UP"), SYNTAX);
    }

    #[test]
    fn lpos_options() {
        assert_eq!(
            op("LPOS l x RANK -2 COUNT 0 MAXLEN 9"),
            ListOp::Pos {
                value: "x".into(),
                rank: -2,
                count: Some(0),
                maxlen: 9
            }
        );
        assert!(err("LPOS l x RANK 0").starts_with("ERR RANK can't be zero"));
        assert_eq!(err("LPOS l x COUNT -1"), "ERR COUNT can't be negative");
        assert_eq!(err("LPOS l x MAXLEN -1"), "ERR MAXLEN can't be negative");
        assert_eq!(err("LPOS l x RANK"), SYNTAX);
    }

    #[test]
    fn mpop_and_blocking_forms() {
        let c = p("LMPOP 2 a b RIGHT COUNT 3");
        assert_eq!(c.keys(), vec![&Bytes::from("a"), &Bytes::from("b")]);
        assert_eq!(
            op("LMPOP 2 a b RIGHT COUNT 3"),
            ListOp::MPop {
                keys: vec!["a".into(), "b".into()],
                left: false,
                count: 3,
                timeout: None,
                bpop: false
            }
        );
        assert_eq!(
            err("LMPOP 0 a LEFT"),
            "ERR numkeys should be greater than 0"
        );
        assert_eq!(
            err("LMPOP 3 a LEFT"),
            "ERR Number of keys can't be greater than number of args"
        );
        assert_eq!(
            err("LMPOP 1 a LEFT COUNT 0"),
            "ERR count should be greater than 0"
        );
        assert_eq!(err("LMPOP 1 a UP"), SYNTAX);
        let c = p("BLPOP a b 0.5");
        assert_eq!(c.keys().len(), 2);
        assert!(
            matches!(op("BLPOP a b 0.5"), ListOp::MPop { timeout: Some(t), bpop: true, .. } if t == 0.5)
        );
        assert_eq!(err("BLPOP a -1"), "ERR timeout is negative");
        assert_eq!(
            err("BLPOP a x"),
            "ERR timeout is not a float or out of range"
        );
        assert_eq!(p("BLMPOP 0 1 a LEFT").keys(), vec![&Bytes::from("a")]);
        assert_eq!(p("BLMOVE a b LEFT RIGHT 0").keys().len(), 2);
    }
}
