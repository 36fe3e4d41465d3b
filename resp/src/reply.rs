//! Replies: one value type for everything a command can answer, encoded as RESP2 or RESP3
//! (chosen per connection by HELLO) through the redis-protocol crate's encoders.

use bytes::Bytes;

/// Which protocol version a connection speaks (HELLO 2 / HELLO 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply value. Aggregates nest.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(String),
    /// An error; the text includes its code, e.g. `ERR syntax error`, `WRONGTYPE ...`.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// Null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    Array(Vec<Reply>),
    /// A map: RESP3 map, RESP2 flat array of key, value, ...
    Map(Vec<(Reply, Reply)>),
    /// Pairs (ZRANGE WITHSCORES, HRANDFIELD WITHVALUES): RESP3 an array of two-element
    /// arrays, RESP2 a flat array of first, second, ...
    Pairs(Vec<(Reply, Reply)>),
    /// A set: RESP3 set, RESP2 array.
    Set(Vec<Reply>),
    /// An out-of-band push (Pub/Sub messages and subscribe confirmations): RESP3 push
    /// (`>`), RESP2 array.
    Push(Vec<Reply>),
    /// A double: RESP3 double, RESP2 bulk string.
    Double(f64),
    /// A double already formatted (GEOPOS's coordinates, Redis's `addReplyHumanLongDouble`:
    /// `%.17Lf` without trailing zeros): RESP3 double, RESP2 bulk string, the same text.
    DoubleText(String),
    /// Verbatim text (INFO, CLIENT INFO): RESP3 verbatim `txt`, RESP2 bulk string.
    Verbatim(String),
    /// A boolean (scripts after `redis.setresp(3)`): RESP3 `#t` / `#f`, RESP2 `:1` / `:0`.
    Bool(bool),
    /// A big number given as its digits (scripts' `{big_number=...}`): RESP3 `(`, RESP2 a
    /// bulk string.
    BigNumber(String),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Status("OK".into())
    }

    /// An error reply from its full text (`ERR ...`).
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}
