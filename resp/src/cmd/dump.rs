//! DUMP and RESTORE (Redis 7.0's options: REPLACE, ABSTTL, IDLETIME, FREQ). The payload is
//! raftkv's own format (see the store's `types::dump`); this module parses the options, in
//! Redis's order: option errors here, before the key is looked at; the TTL, BUSYKEY and
//! payload checks in the store, in Redis's order. IDLETIME and FREQ are checked and ignored
//! (raftkv tracks neither access times nor frequencies).

use bytes::Bytes;

use super::coll::Typed;
use super::spec::{CommandSpec, KeySpec};
use super::util::{int, syntax, upper};
use crate::{Command, Reply};

/// A parsed DUMP / RESTORE (the key is `args[0]`).
pub type DumpCmd = Typed<DumpOp>;

/// DUMP, or RESTORE's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpOp {
    Dump,
    Restore {
        /// As given: Redis parses it after the BUSYKEY check.
        ttl: Bytes,
        payload: Bytes,
        replace: bool,
        absttl: bool,
    },
}

const RO: &[&str] = &["RO", "access"];
const OW: &[&str] = &["OW", "update"];

pub(crate) static DUMP: CommandSpec = CommandSpec {
    summary: "Returns a serialized representation of the value stored at a key.",
    since: "2.6.0",
    group: "generic",
    complexity: "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).",
    acl_categories: &["keyspace"],
    tips: &["nondeterministic_output"],
    args: "key:key#0",
    ..CommandSpec::new(
        "DUMP",
        2,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static RESTORE: CommandSpec = CommandSpec {
    summary: "Creates a key from the serialized representation of a value.",
    since: "2.6.0",
    group: "generic",
    complexity: "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
    history: &[("3.0.0", "Added the `REPLACE` modifier."), ("5.0.0", "Added the `ABSTTL` modifier."), ("5.0.0", "Added the `IDLETIME` and `FREQ` options.")],
    acl_categories: &["keyspace", "dangerous"],
    args: "key:key#0 ttl:integer serialized-value:string replace:pure-token?=REPLACE@3.0.0 absttl:pure-token?=ABSTTL@5.0.0 seconds:integer?=IDLETIME@5.0.0 frequency:integer?=FREQ@5.0.0",
    ..CommandSpec::new(
        "RESTORE",
        -4,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, OW)],
        parse,
    )
};

/// The family's parser.
pub fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let op = if spec.name == "DUMP" {
        DumpOp::Dump
    } else {
        restore(argv)?
    };
    Ok(Command::Dump(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// `key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]` (IDLETIME and FREQ exclude
/// each other: the second is a syntax error, as in Redis).
fn restore(argv: &[Bytes]) -> Result<DumpOp, Reply> {
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, false, false);
    let mut j = 4;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        match upper(&argv[j]).as_str() {
            "REPLACE" => replace = true,
            "ABSTTL" => absttl = true,
            "IDLETIME" if more && !freq => {
                if int(&argv[j + 1])? < 0 {
                    return Err(Reply::err("ERR Invalid IDLETIME value, must be >= 0"));
                }
                idle = true;
                j += 1;
            }
            "FREQ" if more && !idle => {
                if !(0..=255).contains(&int(&argv[j + 1])?) {
                    return Err(Reply::err(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                freq = true;
                j += 1;
            }
            _ => return Err(syntax()),
        }
        j += 1;
    }
    Ok(DumpOp::Restore {
        ttl: argv[2].clone(),
        payload: argv[3].clone(),
        replace,
        absttl,
    })
}

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&DUMP, &RESTORE];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};
    use crate::Kind;

    #[test]
    fn restore_options_as_redis() {
        let Command::Dump(c) = p("RESTORE k 0 x REPLACE absttl IDLETIME 10") else {
            panic!()
        };
        assert_eq!(
            c.op,
            DumpOp::Restore {
                ttl: "0".into(),
                payload: "x".into(),
                replace: true,
                absttl: true
            }
        );
        assert_eq!(c.spec.kind, Kind::Write);
        // The TTL is the store's to check (after BUSYKEY, as Redis).
        assert!(p("RESTORE k x x").kind() == Kind::Write);
        assert_eq!(err("RESTORE k 0 x IDLETIME 1 FREQ 1"), SYNTAX);
        assert_eq!(err("RESTORE k 0 x FREQ 1 IDLETIME 1"), SYNTAX);
        assert_eq!(
            err("RESTORE k 0 x IDLETIME -1"),
            "ERR Invalid IDLETIME value, must be >= 0"
        );
        assert_eq!(
            err("RESTORE k 0 x FREQ 256"),
            "ERR Invalid FREQ value, must be >= 0 and <= 255"
        );
        assert_eq!(err("RESTORE k 0 x FREQ y"), NOT_INT);
        assert_eq!(err("RESTORE k 0 x IDLETIME"), SYNTAX);
        assert_eq!(err("RESTORE k 0 x BOGUS"), SYNTAX);
        assert_eq!(p("DUMP k").kind(), Kind::Read);
    }
}
