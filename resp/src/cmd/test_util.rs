//! Helpers for the command families' unit tests: build argument vectors from text and parse
//! them, expecting a command or an error text.

use bytes::Bytes;

use crate::{Command, Reply};

pub(crate) const NOT_INT: &str = "ERR value is not an integer or out of range";
pub(crate) const SYNTAX: &str = "ERR syntax error";

pub(crate) fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

/// Space-separated words as an argument vector.
pub(crate) fn argv(s: &str) -> Vec<Bytes> {
    s.split(' ').map(b).collect()
}

/// Parses `s`, panicking on an error.
pub(crate) fn p(s: &str) -> Command {
    match Command::parse(&argv(s)) {
        Ok(c) => c,
        Err(e) => panic!("{s}: unexpected error {e:?}"),
    }
}

/// The error text parsing `s` gives, panicking if it parses.
pub(crate) fn err(s: &str) -> String {
    err_argv(&argv(s))
}

pub(crate) fn err_argv(a: &[Bytes]) -> String {
    match Command::parse(a) {
        Err(Reply::Error(e)) => e,
        other => panic!("{a:?}: expected error, got {other:?}"),
    }
}

/// `SET key value` with these options.
pub(crate) fn set(key: &str, value: &str, opts: crate::SetOptions) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        opts,
    }
}
