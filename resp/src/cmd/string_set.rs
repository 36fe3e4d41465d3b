//! SET and the commands that normalize to it or share its options: SET SETEX PSETEX GETSET
//! and GETEX. Options are parsed like Redis's `parseExtendedStringArgumentsOrReply`.
//! Parsers beside their table entries, then the family's registration table and its tests.

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::{expire_time_err, int, syntax, upper};
use crate::{Command, ExpireAt, GetExAction, Reply, SetCondition, SetOptions};

/// The expiry option seen while parsing SET / GETEX options.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpOpt {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Turns an EX/PX/EXAT/PXAT amount into an expiry like Redis's
/// `getExpireMillisecondsOrReply`: must be positive and not overflow when scaled.
fn set_expire(opt: ExpOpt, amount: &[u8], cmd: &str) -> Result<ExpireAt, Reply> {
    let t = int(amount)?;
    let unit = if matches!(opt, ExpOpt::Ex | ExpOpt::ExAt) {
        1000
    } else {
        1
    };
    let ms = t
        .checked_mul(unit)
        .filter(|_| t > 0)
        .ok_or_else(|| expire_time_err(cmd))?;
    Ok(match opt {
        ExpOpt::Ex | ExpOpt::Px => ExpireAt::RelativeMs(ms),
        ExpOpt::ExAt | ExpOpt::PxAt => ExpireAt::AbsoluteMs(ms),
    })
}

/// What SET / GETEX options said, before the expiry amount is validated.
#[derive(Default)]
struct Parsed<'a> {
    opts: SetOptions,
    persist: bool,
    expire: Option<(ExpOpt, &'a Bytes)>,
}

/// Parses the options of SET (`is_set`) or GETEX: repeating an option is allowed,
/// conflicting ones are a syntax error.
fn parse_options(opts_args: &[Bytes], is_set: bool) -> Result<Parsed<'_>, Reply> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < opts_args.len() {
        let opt = upper(&opts_args[i]);
        let next = opts_args.get(i + 1);
        let exp_kind = match opt.as_str() {
            "EX" => Some(ExpOpt::Ex),
            "PX" => Some(ExpOpt::Px),
            "EXAT" => Some(ExpOpt::ExAt),
            "PXAT" => Some(ExpOpt::PxAt),
            _ => None,
        };
        // Another expiry option may only repeat the same kind (the last value wins).
        let exp_ok = exp_kind.is_some_and(|k| {
            !p.opts.keep_ttl && !p.persist && p.expire.is_none_or(|(e, _)| e == k)
        });
        let cond = p.opts.condition;
        match (opt.as_str(), exp_kind, next) {
            ("NX", _, _) if is_set && cond != Some(SetCondition::Xx) => {
                p.opts.condition = Some(SetCondition::Nx)
            }
            ("XX", _, _) if is_set && cond != Some(SetCondition::Nx) => {
                p.opts.condition = Some(SetCondition::Xx)
            }
            ("GET", _, _) if is_set => p.opts.get = true,
            ("KEEPTTL", _, _) if is_set && p.expire.is_none() => p.opts.keep_ttl = true,
            ("PERSIST", _, _) if !is_set && p.expire.is_none() => p.persist = true,
            (_, Some(kind), Some(v)) if exp_ok => {
                p.expire = Some((kind, v));
                i += 1;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    Ok(p)
}

/// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]`; the time is validated only
/// after all options parsed.
fn parse_set(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let p = parse_options(&argv[3..], true)?;
    let mut opts = p.opts;
    if let Some((kind, v)) = p.expire {
        opts.expire = Some(set_expire(kind, v, &spec.full_name())?);
    }
    Ok(Command::Set {
        key: argv[1].clone(),
        value: argv[2].clone(),
        opts,
    })
}

pub(crate) static SET: CommandSpec = CommandSpec {
    summary:
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    history: &[
        ("2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."),
        ("6.0.0", "Added the `KEEPTTL` option."),
        ("6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."),
        (
            "7.0.0",
            "Allowed the `NX` and `GET` options to be used together.",
        ),
    ],
    args: "key:key#0 value:string condition:oneof?@2.6.12(nx:pure-token=NX xx:pure-token=XX) get:pure-token?=GET@6.2.0 expiration:oneof?(seconds:integer=EX@2.6.12 milliseconds:integer=PX@2.6.12 unix-time-seconds:unix-time=EXAT@6.2.0 unix-time-milliseconds:unix-time=PXAT@6.2.0 keepttl:pure-token=KEEPTTL@6.0.0)",
    ..CommandSpec::new(
        "SET",
        -3,
        &["write", "denyoom"],
        &[
            KeySpec::range(1, 0, 1, &["RW", "access", "update", "variable_flags"])
                .notes("RW and ACCESS due to the optional `GET` argument"),
        ],
        parse_set,
    )
};

/// SETEX and PSETEX: `key seconds|milliseconds value`.
fn parse_setex(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let opt = if spec.name == "SETEX" {
        ExpOpt::Ex
    } else {
        ExpOpt::Px
    };
    let opts = SetOptions {
        expire: Some(set_expire(opt, &argv[2], &spec.full_name())?),
        ..Default::default()
    };
    Ok(Command::Set {
        key: argv[1].clone(),
        value: argv[3].clone(),
        opts,
    })
}

pub(crate) static SETEX: CommandSpec = CommandSpec {
    summary:
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
    since: "2.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    doc_flags: &["deprecated"],
    deprecated_since: "2.6.12",
    replaced_by: "`SET` with the `EX` argument",
    args: "key:key#0 seconds:integer value:string",
    ..CommandSpec::new(
        "SETEX",
        4,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, &["OW", "update"])],
        parse_setex,
    )
};

pub(crate) static PSETEX: CommandSpec = CommandSpec {
    summary: "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
    since: "2.6.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    doc_flags: &["deprecated"],
    deprecated_since: "2.6.12",
    replaced_by: "`SET` with the `PX` argument",
    args: "key:key#0 milliseconds:integer value:string",
    ..CommandSpec::new(
        "PSETEX",
        4,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, &["OW", "update"])],
        parse_setex,
    )
};

fn parse_getset(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let opts = SetOptions {
        get: true,
        ..Default::default()
    };
    Ok(Command::Set {
        key: argv[1].clone(),
        value: argv[2].clone(),
        opts,
    })
}

pub(crate) static GETSET: CommandSpec = CommandSpec {
    summary: "Returns the previous string value of a key after setting it to a new value.",
    since: "1.0.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    doc_flags: &["deprecated"],
    deprecated_since: "6.2.0",
    replaced_by: "`SET` with the `!GET` argument",
    args: "key:key#0 value:string",
    ..CommandSpec::new(
        "GETSET",
        3,
        &["write", "denyoom", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse_getset,
    )
};

/// `GETEX key [EX|PX|EXAT|PXAT t|PERSIST]`.
fn parse_getex(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let p = parse_options(&argv[2..], false)?;
    let action = match (p.expire, p.persist) {
        (Some((kind, v)), _) => Some(GetExAction::Expire(set_expire(kind, v, &spec.full_name())?)),
        (None, true) => Some(GetExAction::Persist),
        (None, false) => None,
    };
    Ok(Command::GetEx {
        key: argv[1].clone(),
        action,
    })
}

pub(crate) static GETEX: CommandSpec = CommandSpec {
    summary: "Returns the string value of a key after setting its expiration time.",
    since: "6.2.0",
    group: "string",
    complexity: "O(1)",
    acl_categories: &["string"],
    args: "key:key#0 expiration:oneof?(seconds:integer=EX milliseconds:integer=PX unix-time-seconds:unix-time=EXAT unix-time-milliseconds:unix-time=PXAT persist:pure-token=PERSIST)",
    ..CommandSpec::new(
        "GETEX",
        -2,
        &["write", "fast"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])
            .notes("RW and UPDATE because it changes the TTL")],
        parse_getex,
    )
};
/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&SET, &SETEX, &PSETEX, &GETSET, &GETEX];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn set_options() {
        assert_eq!(p("SET k v"), set("k", "v", SetOptions::default()));
        assert_eq!(
            p("SET k v EX 10 NX GET"),
            set(
                "k",
                "v",
                SetOptions {
                    expire: Some(ExpireAt::RelativeMs(10_000)),
                    condition: Some(SetCondition::Nx),
                    get: true,
                    keep_ttl: false
                }
            )
        );
        let exp = |e| SetOptions {
            expire: Some(e),
            ..Default::default()
        };
        assert_eq!(
            p("set k v px 5"),
            set("k", "v", exp(ExpireAt::RelativeMs(5)))
        );
        assert_eq!(
            p("set k v exat 5"),
            set("k", "v", exp(ExpireAt::AbsoluteMs(5000)))
        );
        assert_eq!(
            p("set k v pxat 5"),
            set("k", "v", exp(ExpireAt::AbsoluteMs(5)))
        );
        // Repeating the same option is fine in Redis; the last value wins.
        assert_eq!(
            p("SET k v EX 1 EX 2"),
            set("k", "v", exp(ExpireAt::RelativeMs(2000)))
        );
        assert_eq!(
            p("SET k v XX XX KEEPTTL"),
            set(
                "k",
                "v",
                SetOptions {
                    condition: Some(SetCondition::Xx),
                    keep_ttl: true,
                    ..Default::default()
                }
            )
        );
        for bad in [
            "SET k v NX XX",
            "SET k v XX NX",
            "SET k v EX 1 PX 1",
            "SET k v EX 1 EXAT 1",
            "SET k v PXAT 1 PX 1",
            "SET k v EX 1 KEEPTTL",
            "SET k v KEEPTTL EX 1",
            "SET k v EX",
            "SET k v FOO",
            "SET k v PERSIST",
            // Syntax is checked before the time value.
            "SET k v EX abc FOO",
        ] {
            assert_eq!(err(bad), SYNTAX, "{bad}");
        }
        for bad in [
            "SET k v EX 0",
            "SET k v PX -1",
            "SET k v EX 9223372036854775807",
        ] {
            assert_eq!(
                err(bad),
                "ERR invalid expire time in 'set' command",
                "{bad}"
            );
        }
        assert_eq!(err("SET k v EX x"), NOT_INT);
        assert_eq!(err("SET k v EX 01"), NOT_INT);
    }

    #[test]
    fn set_aliases() {
        assert_eq!(
            p("SETNX k v"),
            Command::SetNx {
                key: b("k"),
                value: b("v")
            }
        );
        let exp = |e| SetOptions {
            expire: Some(e),
            ..Default::default()
        };
        assert_eq!(
            p("SETEX k 2 v"),
            set("k", "v", exp(ExpireAt::RelativeMs(2000)))
        );
        assert_eq!(
            p("PSETEX k 2 v"),
            set("k", "v", exp(ExpireAt::RelativeMs(2)))
        );
        assert_eq!(
            err("SETEX k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("SETEX k 9223372036854775807 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("PSETEX k -1 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(err("SETEX k x v"), NOT_INT);
        assert_eq!(
            p("GETSET k v"),
            set(
                "k",
                "v",
                SetOptions {
                    get: true,
                    ..Default::default()
                }
            )
        );
        assert_eq!(p("GETDEL k"), Command::GetDel(b("k")));
        assert_eq!(
            p("MSET a 1 b 2"),
            Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))])
        );
        assert_eq!(p("MSETNX a 1"), Command::MSetNx(vec![(b("a"), b("1"))]));
        assert_eq!(
            p("APPEND k v"),
            Command::Append {
                key: b("k"),
                value: b("v")
            }
        );
        assert_eq!(
            p("SETRANGE k 3 v"),
            Command::SetRange {
                key: b("k"),
                offset: 3,
                value: b("v")
            }
        );
        assert_eq!(err("SETRANGE k -1 v"), "ERR offset is out of range");
        assert_eq!(err("SETRANGE k x v"), NOT_INT);
    }

    #[test]
    fn getex() {
        let g = |action| Command::GetEx {
            key: b("k"),
            action,
        };
        assert_eq!(p("GETEX k"), g(None));
        assert_eq!(p("getex k persist"), g(Some(GetExAction::Persist)));
        assert_eq!(
            p("GETEX k EX 3"),
            g(Some(GetExAction::Expire(ExpireAt::RelativeMs(3000))))
        );
        assert_eq!(
            p("GETEX k PX 3"),
            g(Some(GetExAction::Expire(ExpireAt::RelativeMs(3))))
        );
        assert_eq!(
            p("GETEX k EXAT 3"),
            g(Some(GetExAction::Expire(ExpireAt::AbsoluteMs(3000))))
        );
        assert_eq!(
            p("GETEX k PXAT 3"),
            g(Some(GetExAction::Expire(ExpireAt::AbsoluteMs(3))))
        );
        for bad in [
            "GETEX k EX 1 PERSIST",
            "GETEX k PERSIST EX 1",
            "GETEX k EX 1 PX 1",
            "GETEX k NX",
            "GETEX k GET",
            "GETEX k KEEPTTL",
            "GETEX k EX",
        ] {
            assert_eq!(err(bad), SYNTAX, "{bad}");
        }
        assert_eq!(
            err("GETEX k EX 0"),
            "ERR invalid expire time in 'getex' command"
        );
        assert_eq!(err("GETEX k EX x"), NOT_INT);
    }
}
