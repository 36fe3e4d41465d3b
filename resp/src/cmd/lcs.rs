//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
//! subsequence of two strings (a string command). Redis looks both keys up before it reads
//! the options, so a wrong type answers before a syntax error: the options are parsed here
//! into a `Result` the store reports after its type check.

use bytes::Bytes;

use super::coll::Typed;
use super::spec::{CommandSpec, KeySpec};
use super::util::{int, syntax};
use crate::{Command, Reply};

/// A parsed LCS (`args`: the two keys, then the options).
pub type LcsCmd = Typed<Result<LcsOpts, Reply>>;

/// LCS's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LcsOpts {
    /// LEN: reply the length only.
    pub len: bool,
    /// IDX: reply the matching ranges and the length.
    pub idx: bool,
    /// MINMATCHLEN: ranges shorter than this are left out (0: none; negative counts as 0).
    pub min_match_len: u64,
    /// WITHMATCHLEN: each range carries its length.
    pub with_match_len: bool,
}

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::Lcs(Typed {
        spec,
        args: argv[1..].to_vec(),
        op: options(&argv[3..]),
    }))
}

/// The options in Redis's order (`lcsCommand`): each word in turn, then LEN with IDX.
fn options(a: &[Bytes]) -> Result<LcsOpts, Reply> {
    let mut o = LcsOpts::default();
    let mut i = 0;
    while i < a.len() {
        let opt = &a[i];
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if is("IDX") {
            o.idx = true;
        } else if is("LEN") {
            o.len = true;
        } else if is("WITHMATCHLEN") {
            o.with_match_len = true;
        } else if is("MINMATCHLEN") && i + 1 < a.len() {
            o.min_match_len = int(&a[i + 1])?.max(0) as u64;
            i += 1;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    if o.len && o.idx {
        return Err(Reply::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(o)
}

pub(crate) static LCS: CommandSpec = CommandSpec {
    summary: "Finds the longest common substring.",
    since: "7.0.0",
    group: "string",
    complexity: "O(N*M) where N and M are the lengths of s1 and s2, respectively",
    acl_categories: &["string"],
    args: "key1:key#0 key2:key#0 len:pure-token?=LEN idx:pure-token?=IDX min-match-len:integer?=MINMATCHLEN withmatchlen:pure-token?=WITHMATCHLEN",
    ..CommandSpec::new(
        "LCS",
        -3,
        &["readonly"],
        &[KeySpec::range(1, 1, 1, &["RO", "access"])],
        parse,
    )
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&LCS];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{b, p, NOT_INT, SYNTAX};

    fn opts(s: &str) -> Result<LcsOpts, Reply> {
        match p(s) {
            Command::Lcs(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn options_and_their_deferred_errors() {
        assert_eq!(opts("LCS a b"), Ok(LcsOpts::default()));
        assert_eq!(
            opts("LCS a b idx minmatchlen 4 WITHMATCHLEN"),
            Ok(LcsOpts {
                idx: true,
                min_match_len: 4,
                with_match_len: true,
                len: false
            })
        );
        assert_eq!(
            opts("LCS a b MINMATCHLEN -3 LEN").map(|o| (o.min_match_len, o.len)),
            Ok((0, true))
        );
        assert_eq!(opts("LCS a b MINMATCHLEN"), Err(Reply::err(SYNTAX)));
        assert_eq!(opts("LCS a b MINMATCHLEN x"), Err(Reply::err(NOT_INT)));
        assert_eq!(opts("LCS a b FOO"), Err(Reply::err(SYNTAX)));
        assert_eq!(
            opts("LCS a b LEN IDX"),
            Err(Reply::err(
                "ERR If you want both the length and indexes, please just use IDX."
            ))
        );
        assert_eq!(p("LCS a b LEN").keys(), vec![&b("a"), &b("b")]);
        assert_eq!(p("LCS a b").kind(), crate::Kind::Read);
    }
}
