//! Expiry commands: EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST,
//! and the internal replicated-only RAFTKV.SWEEP / RAFTKV.DELIFEXPIRED the leader proposes
//! for expired keys. Parsers beside their table entries, then the family's registration
//! table and its unit tests.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{expire_time_err, int, not_int, upper};
use crate::{Command, ExpireAt, ExpireCondition, Reply, TimeUnit};

/// The NX / XX / GT / LT options of the EXPIRE family, checked like Redis's
/// `expireGenericCommand` (before the time).
fn expire_condition(opts: &[Bytes]) -> Result<Option<ExpireCondition>, Reply> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in opts {
        match upper(o).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                return Err(Reply::err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    // XX together with GT behaves like GT (a key without TTL never passes GT). XX with LT
    // is approximated by LT (which also accepts keys without a TTL).
    Ok(if nx {
        Some(ExpireCondition::Nx)
    } else if gt {
        Some(ExpireCondition::Gt)
    } else if lt {
        Some(ExpireCondition::Lt)
    } else if xx {
        Some(ExpireCondition::Xx)
    } else {
        None
    })
}

fn unit_of(spec: &CommandSpec) -> TimeUnit {
    if spec.name.starts_with('P') {
        TimeUnit::Milliseconds
    } else {
        TimeUnit::Seconds
    }
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: options are checked first, then the time
/// (negative allowed; only overflow is an error).
fn parse_expire(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let name = spec.name;
    let condition = expire_condition(&argv[3..])?;
    let t = int(&argv[2])?;
    let unit = if name == "EXPIRE" || name == "EXPIREAT" {
        1000
    } else {
        1
    };
    let ms = t
        .checked_mul(unit)
        .ok_or_else(|| expire_time_err(&name.to_ascii_lowercase()))?;
    let at = if name.ends_with("AT") {
        ExpireAt::AbsoluteMs(ms)
    } else {
        ExpireAt::RelativeMs(ms)
    };
    Ok(Command::Expire {
        key: argv[1].clone(),
        at,
        condition,
    })
}

pub(crate) static EXPIRE: CommandSpec = CommandSpec {
    summary: "Sets the expiration time of a key in seconds.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    history: &[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")],
    args: "key:key#0 seconds:integer condition:oneof?@7.0.0(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)",
    ..CommandSpec::new(
        "EXPIRE",
        -3,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_expire,
    )
};

pub(crate) static PEXPIRE: CommandSpec = CommandSpec {
    summary: "Sets the expiration time of a key in milliseconds.",
    since: "2.6.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    history: &[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")],
    args: "key:key#0 milliseconds:integer condition:oneof?@7.0.0(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)",
    ..CommandSpec::new(
        "PEXPIRE",
        -3,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_expire,
    )
};

pub(crate) static EXPIREAT: CommandSpec = CommandSpec {
    summary: "Sets the expiration time of a key to a Unix timestamp.",
    since: "1.2.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    history: &[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")],
    args: "key:key#0 unix-time-seconds:unix-time condition:oneof?@7.0.0(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)",
    ..CommandSpec::new(
        "EXPIREAT",
        -3,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_expire,
    )
};

pub(crate) static PEXPIREAT: CommandSpec = CommandSpec {
    summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    since: "2.6.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    history: &[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")],
    args: "key:key#0 unix-time-milliseconds:unix-time condition:oneof?@7.0.0(nx:pure-token=NX xx:pure-token=XX gt:pure-token=GT lt:pure-token=LT)",
    ..CommandSpec::new(
        "PEXPIREAT",
        -3,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_expire,
    )
};

/// TTL and PTTL.
fn parse_ttl(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Ttl {
        key: argv[1].clone(),
        unit: unit_of(spec),
    })
}

pub(crate) static TTL: CommandSpec = CommandSpec {
    summary: "Returns the expiration time in seconds of a key.",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    tips: &["nondeterministic_output"],
    history: &[("2.8.0", "Added the -2 reply.")],
    args: "key:key#0",
    ..CommandSpec::new(
        "TTL",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_ttl,
    )
};

pub(crate) static PTTL: CommandSpec = CommandSpec {
    summary: "Returns the expiration time in milliseconds of a key.",
    since: "2.6.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    tips: &["nondeterministic_output"],
    history: &[("2.8.0", "Added the -2 reply.")],
    args: "key:key#0",
    ..CommandSpec::new(
        "PTTL",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_ttl,
    )
};

/// EXPIRETIME and PEXPIRETIME.
fn parse_expiretime(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::ExpireTime {
        key: argv[1].clone(),
        unit: unit_of(spec),
    })
}

pub(crate) static EXPIRETIME: CommandSpec = CommandSpec {
    summary: "Returns the expiration time of a key as a Unix timestamp.",
    since: "7.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    args: "key:key#0",
    ..CommandSpec::new(
        "EXPIRETIME",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_expiretime,
    )
};

pub(crate) static PEXPIRETIME: CommandSpec = CommandSpec {
    summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    since: "7.0.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    args: "key:key#0",
    ..CommandSpec::new(
        "PEXPIRETIME",
        2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, &["RO", "access"])],
        parse_expiretime,
    )
};

fn parse_persist(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Persist(argv[1].clone()))
}

fn parse_sweep(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::SweepExpired {
        limit: u64::try_from(int(&argv[1])?).map_err(|_| not_int())?,
    })
}

pub(crate) static PERSIST: CommandSpec = CommandSpec {
    summary: "Removes the expiration time of a key.",
    since: "2.2.0",
    group: "generic",
    complexity: "O(1)",
    acl_categories: &["keyspace"],
    args: "key:key#0",
    ..CommandSpec::new(
        "PERSIST",
        2,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "update"])],
        parse_persist,
    )
};
/// `RAFTKV.SWEEP limit`: delete up to `limit` keys expired at the commit's stamped time.
pub(crate) static RAFTKV_SWEEP: CommandSpec = CommandSpec {
    summary: "Internal: deletes up to <limit> expired keys (replicated only).",
    group: "generic",
    ..CommandSpec::new("RAFTKV.SWEEP", 2, &["write"], &[], parse_sweep)
};

fn parse_del_if_expired(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::DelIfExpired(argv[1..].to_vec()))
}

/// `RAFTKV.DELIFEXPIRED key...`: lazy expiry of keys a read found expired.
pub(crate) static RAFTKV_DELIFEXPIRED: CommandSpec = CommandSpec {
    summary: "Internal: deletes each key that has expired (replicated only).",
    group: "generic",
    ..CommandSpec::new(
        "RAFTKV.DELIFEXPIRED",
        -1,
        &["write"],
        &[KeySpec::range(1, -1, 1, &["RM", "delete"])],
        parse_del_if_expired,
    )
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &EXPIRE,
    &PEXPIRE,
    &EXPIREAT,
    &PEXPIREAT,
    &TTL,
    &PTTL,
    &EXPIRETIME,
    &PEXPIRETIME,
    &PERSIST,
];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn expire_family() {
        let e = |at, condition| Command::Expire {
            key: b("k"),
            at,
            condition,
        };
        assert_eq!(p("EXPIRE k 10"), e(ExpireAt::RelativeMs(10_000), None));
        assert_eq!(p("PEXPIRE k -10"), e(ExpireAt::RelativeMs(-10), None));
        assert_eq!(p("EXPIREAT k 10"), e(ExpireAt::AbsoluteMs(10_000), None));
        assert_eq!(p("PEXPIREAT k 10"), e(ExpireAt::AbsoluteMs(10), None));
        for (opt, c) in [
            ("nx", ExpireCondition::Nx),
            ("XX", ExpireCondition::Xx),
            ("GT", ExpireCondition::Gt),
            ("lt", ExpireCondition::Lt),
            ("XX GT", ExpireCondition::Gt),
        ] {
            assert_eq!(
                p(&format!("EXPIRE k 1 {opt}")),
                e(ExpireAt::RelativeMs(1000), Some(c))
            );
        }
        for bad in ["NX XX", "NX GT", "LT NX"] {
            assert_eq!(
                err(&format!("EXPIRE k 10 {bad}")),
                "ERR NX and XX, GT or LT options at the same time are not compatible"
            );
        }
        assert_eq!(
            err("EXPIRE k 10 GT LT"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(err("EXPIRE k 10 foo"), "ERR Unsupported option foo");
        // Options are checked before the time.
        assert_eq!(err("EXPIRE k x foo"), "ERR Unsupported option foo");
        assert_eq!(err("EXPIRE k x"), NOT_INT);
        assert_eq!(
            err("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            err("EXPIREAT k -9223372036854775807"),
            "ERR invalid expire time in 'expireat' command"
        );
        assert_eq!(
            p("PEXPIRE k 9223372036854775807"),
            e(ExpireAt::RelativeMs(i64::MAX), None)
        );
    }
}
