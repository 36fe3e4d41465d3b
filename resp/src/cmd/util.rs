//! Helpers every command family's parser shares: Redis's error texts (syntax, not an
//! integer, arity, unknown command / subcommand), strict integer and float parsing, and the
//! dispatch of a container command (CLIENT, CONFIG, ...) to its subcommand's entry.

use bytes::Bytes;

use super::spec::CommandSpec;
use crate::{Command, Reply};

/// `ERR syntax error`.
pub(crate) fn syntax() -> Reply {
    Reply::err("ERR syntax error")
}

/// `ERR value is not an integer or out of range`.
pub(crate) fn not_int() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

/// `ERR wrong number of arguments for '<name>' command`, the name in lower case.
pub(crate) fn arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// `ERR invalid expire time in '<cmd>' command`.
pub(crate) fn expire_time_err(cmd: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Text of at most `max` bytes of `b` (Redis's `%.128s`), lossily decoded.
pub(crate) fn text(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Checks `argc` (name included) against the entry's arity.
pub(crate) fn check_arity(spec: &CommandSpec, argc: usize) -> Result<(), Reply> {
    let want = spec.arity.unsigned_abs() as usize;
    let ok = if spec.arity >= 0 {
        argc == want
    } else {
        argc >= want
    };
    if ok {
        Ok(())
    } else {
        Err(arity(spec.name))
    }
}

/// Parses an integer like Redis's `string2ll` (strict canonical decimal within i64).
pub(crate) fn int(b: &[u8]) -> Result<i64, Reply> {
    crate::request::string2ll(b).ok_or_else(not_int)
}

/// Parses a float like Redis's `string2ld` (used by INCRBYFLOAT): no surrounding spaces,
/// no NaN, no overflow; `inf` / `-inf` are accepted (the increment then fails in the store
/// with "increment would produce NaN or Infinity", as in Redis).
pub fn parse_float(b: &[u8]) -> Option<f64> {
    const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;
    if b.is_empty() || b.len() >= MAX_LONG_DOUBLE_CHARS {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if lower.len() - body.len() > 1 {
        return None;
    }
    if body == "inf" || body == "infinity" {
        return Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Rust also accepts "nan" and "inf" spellings; those are handled above or rejected here.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

/// Upper-case text of an argument (for option names).
pub(crate) fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' ` (Redis cuts the
/// argument list once 128 characters have been written).
pub(crate) fn unknown_command(argv: &[Bytes]) -> Reply {
    let name = argv.first().map_or(&b""[..], |n| &n[..]);
    let mut args: Vec<u8> = Vec::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&a[..a.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    Reply::err(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        text(name, 128),
        String::from_utf8_lossy(&args)
    ))
}

/// `ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP.`
pub(crate) fn unknown_sub(container: &str, sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand '{}'. Try {container} HELP.",
        text(sub, 128)
    ))
}

/// The subcommand entry of `container` named `sub` (case-insensitive).
pub(crate) fn find_sub(container: &CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    container.subcommands.iter().find(|s| {
        s.name
            .split_once('|')
            .is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// Parses a container command (CLIENT, CONFIG, RAFT.NODE, ...): resolves `argv[1]` among
/// its subcommands, checks that subcommand's arity and runs its parser.
pub(crate) fn parse_container(
    container: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<Command, Reply> {
    let Some(sub) = argv.get(1) else {
        return Err(arity(container.name));
    };
    let spec = find_sub(container, sub).ok_or_else(|| unknown_sub(container.name, sub))?;
    check_arity(spec, argv.len())?;
    (spec.parse)(spec, argv)
}

/// Key / value pairs (MSET, CONFIG SET): an odd or empty list is an arity error.
pub(crate) fn pairs(name: &str, args: &[Bytes]) -> Result<Vec<(Bytes, Bytes)>, Reply> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(arity(name));
    }
    Ok(args
        .chunks_exact(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect())
}
