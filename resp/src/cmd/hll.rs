//! HyperLogLog commands: PFADD PFCOUNT PFMERGE (PFDEBUG and PFSELFTEST are not served).
//! They take no arguments that could be wrong, so the parser only records which command it
//! is; the keys and elements stay in `args`. Table entries carry Redis 7.2's data.

use bytes::Bytes;

use super::coll::Typed;
use super::spec::{CommandSpec, KeySpec};
use crate::{Command, Reply};

/// A parsed HyperLogLog command (`args`: the arguments after the name).
pub type HllCmd = Typed<HllOp>;

/// What a HyperLogLog command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllOp {
    /// PFADD key [element ...]: `args[0]` the key, `args[1..]` the elements.
    Add,
    /// PFCOUNT key [key ...]: the cardinality of the union of `args`.
    Count,
    /// PFMERGE destkey [sourcekey ...]: `args[0]` is also a source.
    Merge,
}

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let op = match spec.name {
        "PFADD" => HllOp::Add,
        "PFCOUNT" => HllOp::Count,
        _ => HllOp::Merge,
    };
    Ok(Command::Hll(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

const GROUP: &str = "hyperloglog";

pub(crate) static PFADD: CommandSpec = CommandSpec {
    summary: "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
    since: "2.8.9",
    group: GROUP,
    complexity: "O(1) to add every element.",
    acl_categories: &["hyperloglog"],
    args: "key:key#0 element:string?*",
    ..CommandSpec::new(
        "PFADD",
        -2,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "insert"])],
        parse,
    )
};

pub(crate) static PFCOUNT: CommandSpec = CommandSpec {
    summary: "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
    since: "2.8.9",
    group: GROUP,
    complexity: "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.",
    acl_categories: &["hyperloglog"],
    args: "key:key*#0",
    ..CommandSpec::new(
        "PFCOUNT",
        -2,
        &["readonly"],
        &[KeySpec::range(1, -1, 1, &["RW", "access"]).notes(
            "RW because it may change the internal representation of the key, and propagate to replicas",
        )],
        parse,
    )
};

pub(crate) static PFMERGE: CommandSpec = CommandSpec {
    summary: "Merges one or more HyperLogLog values into a single key.",
    since: "2.8.9",
    group: GROUP,
    complexity: "O(N) to merge N HyperLogLogs, but with high constant times.",
    acl_categories: &["hyperloglog"],
    args: "destkey:key#0 sourcekey:key?*#1",
    ..CommandSpec::new(
        "PFMERGE",
        -2,
        &["write", "denyoom"],
        &[
            KeySpec::range(1, 0, 1, &["RW", "access", "insert"]),
            KeySpec::range(2, -1, 1, &["RO", "access"]),
        ],
        parse,
    )
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&PFADD, &PFCOUNT, &PFMERGE];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{b, p};
    use crate::Kind;

    #[test]
    fn commands_keys_and_kinds() {
        let Command::Hll(c) = p("PFADD h a b") else {
            panic!()
        };
        assert_eq!((c.op, c.key(), c.args.len()), (HllOp::Add, &b"h"[..], 3));
        assert_eq!(p("PFADD h").keys(), vec![&b("h")]);
        assert_eq!(p("PFCOUNT a b").keys(), vec![&b("a"), &b("b")]);
        assert_eq!(p("PFMERGE d a b").keys(), vec![&b("d"), &b("a"), &b("b")]);
        // Redis's second key spec does not fit `PFMERGE d` (COMMAND GETKEYS refuses it), so
        // the command has no keys for routing, as in Redis; it still runs.
        assert!(p("PFMERGE d").keys().is_empty());
        assert_eq!(p("PFCOUNT a").kind(), Kind::Read);
        assert_eq!(p("PFADD a").kind(), Kind::Write);
        assert_eq!(p("PFMERGE a").kind(), Kind::Write);
    }
}
