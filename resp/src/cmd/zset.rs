//! Sorted-set commands: ZADD ZINCRBY ZREM ZCARD ZCOUNT ZLEXCOUNT ZSCORE ZMSCORE ZRANK
//! ZREVRANK, the ZRANGE family (ZRANGE ZRANGESTORE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE
//! ZRANGEBYLEX ZREVRANGEBYLEX), ZREMRANGEBY{RANK,SCORE,LEX}, ZPOPMIN ZPOPMAX ZMPOP
//! ZRANDMEMBER, the algebra (ZUNION ZINTER ZDIFF, their STORE forms, ZINTERCARD), ZSCAN and
//! the blocking BZPOPMIN BZPOPMAX BZMPOP. Score and lex bounds stay text here: the store
//! parses them with Redis's errors. The family parser is split into `zset_parse.rs`.

use bytes::Bytes;

use super::coll::{entry, keynum, ScanArgs, Typed};
use super::spec::{CommandSpec, KeySpec};
pub use super::zset_parse::parse;

const GROUP: &str = "sorted-set";

/// A parsed sorted-set command (the key is `args[0]` for single-key commands).
pub type ZSetCmd = Typed<ZSetOp>;

/// How a range selects members (its bounds are `start` / `stop` of [`ZSetOp::Range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZBy {
    Rank,
    Score,
    Lex,
}

/// ZUNION, ZINTER or ZDIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZAlgebra {
    Union,
    Inter,
    Diff,
}

/// AGGREGATE of ZUNION / ZINTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZAggregate {
    #[default]
    Sum,
    Min,
    Max,
}

/// ZADD's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZAddOpts {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub ch: bool,
    pub incr: bool,
}

/// What a sorted-set command does.
#[derive(Debug, Clone, PartialEq)]
pub enum ZSetOp {
    Add {
        opts: ZAddOpts,
        pairs: Vec<(f64, Bytes)>,
    },
    IncrBy(f64, Bytes),
    Rem(Vec<Bytes>),
    Card,
    Score(Bytes),
    MScore(Vec<Bytes>),
    /// ZCOUNT (`lex` false) / ZLEXCOUNT, bounds as given.
    Count {
        lex: bool,
        min: Bytes,
        max: Bytes,
    },
    Rank {
        member: Bytes,
        rev: bool,
        with_score: bool,
    },
    /// Every ZRANGE form. `start` / `stop` are in the client's order (for REV by score or
    /// lex that is max, min); `store` is ZRANGESTORE's destination (the source is then
    /// `args[1]`).
    Range {
        by: ZBy,
        start: Bytes,
        stop: Bytes,
        rev: bool,
        limit: Option<(i64, i64)>,
        with_scores: bool,
        store: Option<Bytes>,
    },
    RemRange {
        by: ZBy,
        min: Bytes,
        max: Bytes,
    },
    /// ZPOPMIN / ZPOPMAX (`max`) with an optional count.
    Pop {
        max: bool,
        count: Option<u64>,
    },
    /// ZMPOP / BZMPOP, and BZPOPMIN / BZPOPMAX (`bzpop`: one member, `[key, member, score]`).
    MPop {
        keys: Vec<Bytes>,
        max: bool,
        count: u64,
        timeout: Option<f64>,
        bzpop: bool,
    },
    RandMember {
        count: Option<i64>,
        with_scores: bool,
    },
    Algebra {
        kind: ZAlgebra,
        keys: Vec<Bytes>,
        weights: Option<Vec<f64>>,
        aggregate: ZAggregate,
        with_scores: bool,
        store: Option<Bytes>,
    },
    InterCard {
        keys: Vec<Bytes>,
        limit: u64,
    },
    Scan(ScanArgs),
}

const RO: &[&str] = &["RO", "access"];
const RW_UPDATE: &[&str] = &["RW", "update"];
const RW_DELETE: &[&str] = &["RW", "delete"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const OW: &[&str] = &["OW", "update"];

entry!(ZADD, "ZADD", -4, ["write", "denyoom", "fast"], [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse, "sortedset", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.",
    "key:key#0 condition:oneof?@3.0.2(nx:pure-token=NX xx:pure-token=XX) comparison:oneof?@6.2.0(gt:pure-token=GT lt:pure-token=LT) change:pure-token?=CH@3.0.2 increment:pure-token?=INCR@3.0.2 data:block+(score:double member:string)");
entry!(
    ZINCRBY,
    "ZINCRBY",
    4,
    ["write", "denyoom", "fast"],
    [KeySpec::range(1, 0, 1, RW_UPDATE)],
    parse,
    "sortedset",
    "1.2.0",
    "Increments the score of a member in a sorted set.",
    "key:key#0 increment:integer member:string"
);
entry!(ZREM, "ZREM", -3, ["write", "fast"], [KeySpec::range(1, 0, 1, RW_DELETE)], parse,
    "sortedset", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.",
    "key:key#0 member:string+");
entry!(
    ZCARD,
    "ZCARD",
    2,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "sortedset",
    "1.2.0",
    "Returns the number of members in a sorted set.",
    "key:key#0"
);
entry!(
    ZCOUNT,
    "ZCOUNT",
    4,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "sortedset",
    "2.0.0",
    "Returns the count of members in a sorted set that have scores within a range.",
    "key:key#0 min:double max:double"
);
entry!(
    ZLEXCOUNT,
    "ZLEXCOUNT",
    4,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, &["RO"])],
    parse,
    "sortedset",
    "2.8.9",
    "Returns the number of members in a sorted set within a lexicographical range.",
    "key:key#0 min:string max:string"
);
entry!(
    ZSCORE,
    "ZSCORE",
    3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "1.2.0",
    "Returns the score of a member in a sorted set.",
    "key:key#0 member:string"
);
entry!(
    ZMSCORE,
    "ZMSCORE",
    -3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "6.2.0",
    "Returns the score of one or more members in a sorted set.",
    "key:key#0 member:string+"
);
entry!(
    ZRANK,
    "ZRANK",
    -3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "2.0.0",
    "Returns the index of a member in a sorted set ordered by ascending scores.",
    "key:key#0 member:string withscore:pure-token?=WITHSCORE@7.2.0"
);
entry!(
    ZREVRANK,
    "ZREVRANK",
    -3,
    ["readonly", "fast"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "2.0.0",
    "Returns the index of a member in a sorted set ordered by descending scores.",
    "key:key#0 member:string withscore:pure-token?=WITHSCORE@7.2.0"
);
entry!(ZRANGE, "ZRANGE", -4, ["readonly"], [KeySpec::range(1, 0, 1, RO)], parse, "sortedset",
    "1.2.0", "Returns members in a sorted set within a range of indexes.",
    "key:key#0 start:string stop:string sortby:oneof?@6.2.0(byscore:pure-token=BYSCORE bylex:pure-token=BYLEX) rev:pure-token?=REV@6.2.0 limit:block?@6.2.0(offset:integer count:integer) withscores:pure-token?=WITHSCORES");
entry!(ZRANGESTORE, "ZRANGESTORE", -5, ["write", "denyoom"],
    [KeySpec::range(1, 0, 1, OW), KeySpec::range(2, 0, 1, RO)], parse, "sortedset", "6.2.0",
    "Stores a range of members from sorted set in a key.",
    "dst:key#0 src:key#1 min:string max:string sortby:oneof?(byscore:pure-token=BYSCORE bylex:pure-token=BYLEX) rev:pure-token?=REV limit:block?(offset:integer count:integer)");
entry!(
    ZREVRANGE,
    "ZREVRANGE",
    -4,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "1.2.0",
    "Returns members in a sorted set within a range of indexes in reverse order.",
    "key:key#0 start:integer stop:integer withscores:pure-token?=WITHSCORES"
);
entry!(ZRANGEBYSCORE, "ZRANGEBYSCORE", -4, ["readonly"], [KeySpec::range(1, 0, 1, RO)], parse,
    "sortedset", "1.0.5", "Returns members in a sorted set within a range of scores.",
    "key:key#0 min:double max:double withscores:pure-token?=WITHSCORES@2.0.0 limit:block?(offset:integer count:integer)");
entry!(ZREVRANGEBYSCORE, "ZREVRANGEBYSCORE", -4, ["readonly"], [KeySpec::range(1, 0, 1, RO)],
    parse, "sortedset", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.",
    "key:key#0 max:double min:double withscores:pure-token?=WITHSCORES limit:block?(offset:integer count:integer)");
entry!(
    ZRANGEBYLEX,
    "ZRANGEBYLEX",
    -4,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "2.8.9",
    "Returns members in a sorted set within a lexicographical range.",
    "key:key#0 min:string max:string limit:block?(offset:integer count:integer)"
);
entry!(
    ZREVRANGEBYLEX,
    "ZREVRANGEBYLEX",
    -4,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "2.8.9",
    "Returns members in a sorted set within a lexicographical range in reverse order.",
    "key:key#0 max:string min:string limit:block?(offset:integer count:integer)"
);
entry!(ZREMRANGEBYRANK, "ZREMRANGEBYRANK", 4, ["write"], [KeySpec::range(1, 0, 1, RW_DELETE)],
    parse, "sortedset", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.",
    "key:key#0 start:integer stop:integer");
entry!(ZREMRANGEBYSCORE, "ZREMRANGEBYSCORE", 4, ["write"], [KeySpec::range(1, 0, 1, RW_DELETE)],
    parse, "sortedset", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.",
    "key:key#0 min:double max:double");
entry!(ZREMRANGEBYLEX, "ZREMRANGEBYLEX", 4, ["write"], [KeySpec::range(1, 0, 1, RW_DELETE)],
    parse, "sortedset", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.",
    "key:key#0 min:string max:string");
entry!(ZPOPMIN, "ZPOPMIN", -2, ["write", "fast"], [KeySpec::range(1, 0, 1, RW_ACCESS_DELETE)],
    parse, "sortedset", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
    "key:key#0 count:integer?");
entry!(ZPOPMAX, "ZPOPMAX", -2, ["write", "fast"], [KeySpec::range(1, 0, 1, RW_ACCESS_DELETE)],
    parse, "sortedset", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.",
    "key:key#0 count:integer?");
entry!(ZMPOP, "ZMPOP", -4, ["write", "movablekeys"], [keynum(1, RW_ACCESS_DELETE)], parse, "sortedset", "7.0.0",
    "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.",
    "numkeys:integer key:key+#0 where:oneof(min:pure-token=MIN max:pure-token=MAX) count:integer?=COUNT");
entry!(BZPOPMIN, "BZPOPMIN", -3, ["write", "fast", "blocking"],
    [KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], parse, "sortedset", "5.0.0",
    "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
    "key:key+#0 timeout:double");
entry!(BZPOPMAX, "BZPOPMAX", -3, ["write", "fast", "blocking"],
    [KeySpec::range(1, -2, 1, RW_ACCESS_DELETE)], parse, "sortedset", "5.0.0",
    "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped.",
    "key:key+#0 timeout:double");
entry!(BZMPOP, "BZMPOP", -5, ["write", "blocking", "movablekeys"], [keynum(2, RW_ACCESS_DELETE)], parse,
    "sortedset", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.",
    "timeout:double numkeys:integer key:key+#0 where:oneof(min:pure-token=MIN max:pure-token=MAX) count:integer?=COUNT");
entry!(
    ZRANDMEMBER,
    "ZRANDMEMBER",
    -2,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "6.2.0",
    "Returns one or more random members from a sorted set.",
    "key:key#0 options:block?(count:integer withscores:pure-token?=WITHSCORES)"
);
entry!(ZUNION, "ZUNION", -3, ["readonly", "movablekeys"], [keynum(1, &["RO", "access"])], parse, "sortedset",
    "6.2.0", "Returns the union of multiple sorted sets.",
    "numkeys:integer key:key+#0 weight:integer*=WEIGHTS aggregate:oneof?=AGGREGATE(sum:pure-token=SUM min:pure-token=MIN max:pure-token=MAX) withscores:pure-token?=WITHSCORES");
entry!(ZINTER, "ZINTER", -3, ["readonly", "movablekeys"], [keynum(1, &["RO", "access"])], parse, "sortedset",
    "6.2.0", "Returns the intersect of multiple sorted sets.",
    "numkeys:integer key:key+#0 weight:integer*=WEIGHTS aggregate:oneof?=AGGREGATE(sum:pure-token=SUM min:pure-token=MIN max:pure-token=MAX) withscores:pure-token?=WITHSCORES");
entry!(
    ZDIFF,
    "ZDIFF",
    -3,
    ["readonly", "movablekeys"],
    [keynum(1, &["RO", "access"])],
    parse,
    "sortedset",
    "6.2.0",
    "Returns the difference between multiple sorted sets.",
    "numkeys:integer key:key+#0 withscores:pure-token?=WITHSCORES"
);
entry!(ZUNIONSTORE, "ZUNIONSTORE", -4, ["write", "denyoom", "movablekeys"],
    [KeySpec::range(1, 0, 1, OW), keynum(2, &["RO", "access"])], parse, "sortedset", "2.0.0",
    "Stores the union of multiple sorted sets in a key.",
    "destination:key#0 numkeys:integer key:key+#1 weight:integer*=WEIGHTS aggregate:oneof?=AGGREGATE(sum:pure-token=SUM min:pure-token=MIN max:pure-token=MAX)");
entry!(ZINTERSTORE, "ZINTERSTORE", -4, ["write", "denyoom", "movablekeys"],
    [KeySpec::range(1, 0, 1, OW), keynum(2, &["RO", "access"])], parse, "sortedset", "2.0.0",
    "Stores the intersect of multiple sorted sets in a key.",
    "destination:key#0 numkeys:integer key:key+#1 weight:integer*=WEIGHTS aggregate:oneof?=AGGREGATE(sum:pure-token=SUM min:pure-token=MIN max:pure-token=MAX)");
entry!(
    ZDIFFSTORE,
    "ZDIFFSTORE",
    -4,
    ["write", "denyoom", "movablekeys"],
    [KeySpec::range(1, 0, 1, OW), keynum(2, &["RO", "access"])],
    parse,
    "sortedset",
    "6.2.0",
    "Stores the difference of multiple sorted sets in a key.",
    "destination:key#0 numkeys:integer key:key+#1"
);
entry!(
    ZINTERCARD,
    "ZINTERCARD",
    -3,
    ["readonly", "movablekeys"],
    [keynum(1, &["RO", "access"])],
    parse,
    "sortedset",
    "7.0.0",
    "Returns the number of members of the intersect of multiple sorted sets.",
    "numkeys:integer key:key+#0 limit:integer?=LIMIT"
);
entry!(
    ZSCAN,
    "ZSCAN",
    -3,
    ["readonly"],
    [KeySpec::range(1, 0, 1, RO)],
    parse,
    "sortedset",
    "2.8.0",
    "Iterates over members and scores of a sorted set.",
    "key:key#0 cursor:integer pattern:pattern?=MATCH count:integer?=COUNT"
);

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &ZADD,
    &ZINCRBY,
    &ZREM,
    &ZCARD,
    &ZCOUNT,
    &ZLEXCOUNT,
    &ZSCORE,
    &ZMSCORE,
    &ZRANK,
    &ZREVRANK,
    &ZRANGE,
    &ZRANGESTORE,
    &ZREVRANGE,
    &ZRANGEBYSCORE,
    &ZREVRANGEBYSCORE,
    &ZRANGEBYLEX,
    &ZREVRANGEBYLEX,
    &ZREMRANGEBYRANK,
    &ZREMRANGEBYSCORE,
    &ZREMRANGEBYLEX,
    &ZPOPMIN,
    &ZPOPMAX,
    &ZMPOP,
    &BZPOPMIN,
    &BZPOPMAX,
    &BZMPOP,
    &ZRANDMEMBER,
    &ZUNION,
    &ZINTER,
    &ZDIFF,
    &ZUNIONSTORE,
    &ZINTERSTORE,
    &ZDIFFSTORE,
    &ZINTERCARD,
    &ZSCAN,
];
