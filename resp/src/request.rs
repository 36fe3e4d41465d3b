//! Incremental parser for what a Redis server accepts from clients: RESP multibulk
//! requests (`*N\r\n$len\r\n...`) and inline commands, with Redis's limits and its exact
//! `Protocol error: ...` texts. It never buffers without bound: an over-long inline line or
//! an over-large bulk header is an error as soon as it is seen.

use bytes::{Buf, Bytes, BytesMut};

use crate::Reply;

/// Size limits of one request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest bulk string (Redis `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Longest inline request or header line.
    pub max_inline_len: usize,
    /// Most arguments in one multibulk request.
    pub max_multibulk_len: usize,
    /// The client has not authenticated yet while a password is required: Redis (6.2.6+)
    /// then allows at most [`UNAUTH_MAX_ARGS`] arguments and bulks of at most
    /// [`UNAUTH_MAX_BULK`] bytes, so a stranger cannot make the server buffer much.
    pub unauthenticated: bool,
}

/// Most arguments of a request before AUTH (Redis's `authRequired` limit).
pub const UNAUTH_MAX_ARGS: i64 = 10;
/// Largest bulk of a request before AUTH (bytes).
pub const UNAUTH_MAX_BULK: usize = 16384;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_multibulk_len: 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// A malformed request; `Display` is Redis's text after `Protocol error: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error reply Redis sends before closing the connection.
    pub fn to_reply(&self) -> Reply {
        Reply::Error(format!("ERR Protocol error: {self}"))
    }
}

/// Finds the end of a header line starting at `from` the way Redis does: the first '\r',
/// which must be followed by one more byte (the '\n', not checked). Index of the '\r'.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let r = from + buf.get(from..)?.iter().position(|&b| b == b'\r')?;
    (r + 1 < buf.len()).then_some(r)
}

/// Parses a decimal integer exactly like Redis's `string2ll`: an optional '-', no '+',
/// no spaces, no leading zeros ("0" itself is fine, "-0" is not), within i64.
pub(crate) fn string2ll(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let canonical = match digits {
        [b'0'] => digits.len() == b.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Takes one complete request off the front of `buf`. `Ok(None)`: more bytes are needed
/// (nothing consumed). An empty vector is an empty request the caller skips.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

/// `*N\r\n` then N times `$len\r\n<len bytes>\r\n`, as Redis's `processMultibulkBuffer`.
/// The whole request is validated before anything is consumed, so a partial request leaves
/// `buf` untouched; headers are checked as soon as they are complete.
fn parse_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(eol) = line_end(buf, 1) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigMbulkCount);
        }
        return Ok(None);
    };
    let count = string2ll(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > 0 && count as u64 > limits.max_multibulk_len as u64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    if limits.unauthenticated && count > UNAUTH_MAX_ARGS {
        return Err(ProtocolError::UnauthenticatedMultibulkLength);
    }
    let mut pos = eol + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    let count = count as usize;
    // Capacity is bounded so a large claimed count costs nothing until the data arrives.
    let mut spans = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let Some(eol) = line_end(buf, pos) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        if buf[pos] != b'$' {
            // Redis's error replies turn CR and LF into spaces (`addReplyErrorFormat`).
            let got = match buf[pos] {
                b'\r' | b'\n' => ' ',
                b => b as char,
            };
            return Err(ProtocolError::ExpectedDollar(got));
        }
        let len = string2ll(&buf[pos + 1..eol])
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l <= limits.max_bulk_len)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if limits.unauthenticated && len > UNAUTH_MAX_BULK {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let start = eol + 2;
        let end = start
            .checked_add(len)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        // The data is followed by two bytes (CRLF), which Redis skips without checking.
        if buf.len() < end.saturating_add(2) {
            return Ok(None);
        }
        spans.push((start, end));
        pos = end + 2;
    }
    let frozen = buf.split_to(pos).freeze();
    Ok(Some(
        spans.into_iter().map(|(s, e)| frozen.slice(s..e)).collect(),
    ))
}

/// A line up to '\n' (a preceding '\r' is dropped), split like `sdssplitargs`.
fn parse_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let line = buf.split_to(nl + 1);
    let text = &line[..nl];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    split_args(text).map(Some)
}

/// C's `isspace`.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline line like Redis's `sdssplitargs`.
pub fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if in_sq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                } else if c == b'\'' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else {
                if i >= n || matches!(line[i], b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        parse_request(&mut BytesMut::from(input), &Limits::default())
    }

    fn args(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    fn ok(v: &[&str]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        Ok(Some(args(v)))
    }

    /// Every proper prefix is incomplete and left untouched; the whole parses to `want`.
    fn check_split(req: &[u8], want: &[&str]) {
        for cut in 0..req.len() {
            let mut buf = BytesMut::from(&req[..cut]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default()),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(&buf[..], &req[..cut]);
        }
        let mut buf = BytesMut::from(req);
        assert_eq!(parse_request(&mut buf, &Limits::default()), ok(want));
        assert!(buf.is_empty());
    }

    #[test]
    fn multibulk_split_at_every_byte() {
        check_split(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
            &["SET", "k", ""],
        );
        check_split(b"*1\r\n$12\r\nhello\r\nworld\r\n", &["hello\r\nworld"]);
        check_split(b"PING\r\n", &["PING"]);
        check_split(b"SET \"a b\" 'c'\n", &["SET", "a b", "c"]);
    }

    #[test]
    fn pipelined_requests() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\nECHO x\r\n*0\r\n*2\r\n$3\r\nGET"[..]);
        let l = Limits::default();
        assert_eq!(parse_request(&mut buf, &l), ok(&["PING"]));
        assert_eq!(parse_request(&mut buf, &l), ok(&["ECHO", "x"]));
        assert_eq!(parse_request(&mut buf, &l), ok(&[]));
        assert_eq!(parse_request(&mut buf, &l), Ok(None));
        assert_eq!(&buf[..], b"*2\r\n$3\r\nGET");
        buf.extend_from_slice(b"\r\n$1\r\nk\r\n");
        assert_eq!(parse_request(&mut buf, &l), ok(&["GET", "k"]));
        assert!(buf.is_empty());
        assert_eq!(parse_request(&mut buf, &l), Ok(None));
    }

    #[test]
    fn binary_safe_bulk() {
        let got = parse(b"*1\r\n$4\r\na\r\nb\r\n");
        assert_eq!(got, Ok(Some(vec![Bytes::from_static(b"a\r\nb")])));
        let got = parse(b"*1\r\n$3\r\n\x00\xff\x01\r\n");
        assert_eq!(got, Ok(Some(vec![Bytes::from_static(b"\x00\xff\x01")])));
    }

    #[test]
    fn empty_requests() {
        assert_eq!(parse(b"*0\r\n"), ok(&[]));
        assert_eq!(parse(b"*-1\r\n"), ok(&[]));
        assert_eq!(parse(b"*-5\r\n"), ok(&[]));
        assert_eq!(parse(b"\r\n"), ok(&[]));
        assert_eq!(parse(b"\n"), ok(&[]));
        assert_eq!(parse(b"   \t \r\n"), ok(&[]));
    }

    #[test]
    fn protocol_errors() {
        use ProtocolError::*;
        for bad in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"*1 \r\n",
            b"*2000000\r\n",
        ] {
            assert_eq!(parse(bad), Err(InvalidMultibulkLength), "{bad:?}");
        }
        assert_eq!(parse(b"*1\r\n:1\r\n"), Err(ExpectedDollar(':')));
        assert_eq!(parse(b"*2\r\n$1\r\na\r\nx\r\n"), Err(ExpectedDollar('x')));
        // Found by fuzzing: the error text must stay one line.
        assert_eq!(parse(b"*1\r\n\r\n"), Err(ExpectedDollar(' ')));
        assert_eq!(parse(b"*1\r\n\n\r\n"), Err(ExpectedDollar(' ')));
        for bad in [
            &b"*1\r\n$-5\r\n"[..],
            b"*1\r\n$-1\r\n",
            b"*1\r\n$x\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$999999999999\r\n",
        ] {
            assert_eq!(parse(bad), Err(InvalidBulkLength), "{bad:?}");
        }
        for bad in [
            &b"\"abc\r\n"[..],
            b"'abc\r\n",
            b"\"abc\"x\r\n",
            b"'abc'x\r\n",
            b"\"a\\\"\r\n",
        ] {
            assert_eq!(parse(bad), Err(UnbalancedQuotes), "{bad:?}");
        }
        let text = |e: ProtocolError| match e.to_reply() {
            Reply::Error(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(ExpectedDollar('x')),
            "ERR Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            text(InvalidMultibulkLength),
            "ERR Protocol error: invalid multibulk length"
        );
        assert_eq!(
            text(InvalidBulkLength),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            text(TooBigInline),
            "ERR Protocol error: too big inline request"
        );
        assert_eq!(
            text(TooBigMbulkCount),
            "ERR Protocol error: too big mbulk count string"
        );
        assert_eq!(
            text(TooBigBulkCount),
            "ERR Protocol error: too big bulk count string"
        );
        assert_eq!(
            text(UnbalancedQuotes),
            "ERR Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn limits_apply_before_buffering() {
        let l = Limits {
            max_bulk_len: 10,
            max_inline_len: 16,
            max_multibulk_len: 4,
            unauthenticated: false,
        };
        let p = |b: &[u8]| parse_request(&mut BytesMut::from(b), &l);
        assert_eq!(p(b"*1\r\n$11\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(p(b"*1\r\n$10\r\n"), Ok(None));
        assert_eq!(p(b"*1\r\n$10\r\n0123456789\r\n"), ok(&["0123456789"]));
        assert_eq!(p(b"*5\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(p(b"*4\r\n"), Ok(None));
        assert_eq!(p(&[b'a'; 16]), Ok(None));
        assert_eq!(p(&[b'a'; 17]), Err(ProtocolError::TooBigInline));
        let mut long_line = vec![b'a'; 20];
        long_line.push(b'\n');
        assert_eq!(p(&long_line), Err(ProtocolError::TooBigInline));
        assert_eq!(p(&[b'*'; 17]), Err(ProtocolError::TooBigMbulkCount));
        assert_eq!(
            p(b"*1\r\n$1111111111111111111"),
            Err(ProtocolError::TooBigBulkCount)
        );
        // A huge claimed count does not allocate up front and just waits for data.
        let big = Limits::default();
        let mut buf = BytesMut::from(&b"*1048576\r\n$1\r\na\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &big), Ok(None));
    }

    #[test]
    fn unauthenticated_limits() {
        use ProtocolError::*;
        let l = Limits {
            unauthenticated: true,
            ..Limits::default()
        };
        let p = |b: &[u8]| parse_request(&mut BytesMut::from(b), &l);
        // Refused from the header alone, before any data arrives.
        assert_eq!(p(b"*11\r\n"), Err(UnauthenticatedMultibulkLength));
        assert_eq!(p(b"*100\r\n"), Err(UnauthenticatedMultibulkLength));
        assert_eq!(p(b"*1\r\n$100000000\r\n"), Err(UnauthenticatedBulkLength));
        assert_eq!(p(b"*1\r\n$16385\r\n"), Err(UnauthenticatedBulkLength));
        // Redis's order: an invalid length is reported as such first.
        assert_eq!(p(b"*2000000\r\n"), Err(InvalidMultibulkLength));
        assert_eq!(p(b"*1\r\n$999999999999\r\n"), Err(InvalidBulkLength));
        // Within the limits: parsed as usual.
        assert_eq!(p(b"*10\r\n"), Ok(None));
        assert_eq!(p(b"*1\r\n$16384\r\n"), Ok(None));
        assert_eq!(p(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"), ok(&["AUTH", "pw"]));
        assert_eq!(
            UnauthenticatedBulkLength.to_reply(),
            Reply::Error("ERR Protocol error: unauthenticated bulk length".into())
        );
    }

    #[test]
    fn inline_commands() {
        assert_eq!(parse(b"PING\r\n"), ok(&["PING"]));
        assert_eq!(parse(b"set  k   v\n"), ok(&["set", "k", "v"]));
        assert_eq!(parse(b"\tGET\x0bk \r\n"), ok(&["GET\x0bk"]));
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(
            parse(b"SET \"a b\\n\\x41\\t\\r\\b\\a\\\\\\\"\\q\" 'it\\'s'\r\n"),
            ok(&["SET", "a b\nA\t\r\x08\x07\\\"q", "it's"])
        );
        assert_eq!(parse(b"SET \"\" ''\r\n"), ok(&["SET", "", ""]));
        assert_eq!(
            parse(b"a\"b c\"d\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(parse(b"a\"b c\" d\r\n"), ok(&["ab c", "d"]));
        assert_eq!(parse(b"\"\\xzz\"\n"), ok(&["xzz"]));
        assert_eq!(parse(b"'a\\nb'\n"), ok(&["a\\nb"]));
    }
}
