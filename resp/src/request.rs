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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_multibulk_len: 1024 * 1024,
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
}

impl ProtocolError {
    /// The error reply Redis sends before closing the connection.
    pub fn to_reply(&self) -> Reply {
        Reply::Error(format!("ERR Protocol error: {self}"))
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Takes one complete request off the front of `buf`. `Ok(None)`: more bytes are needed
/// (nothing consumed). An empty vector is an empty request the caller skips.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits)
    } else {
        parse_inline(buf, limits)
    }
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(eol) = find_crlf(buf, 1) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::TooBigMbulkCount);
        }
        return Ok(None);
    };
    let count = parse_len(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_multibulk_len as i64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let mut pos = eol + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    // First pass: check the whole request is here, validating headers as we go.
    let mut spans = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(first as char));
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > limits.max_inline_len {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        let len = parse_len(&buf[pos + 1..eol]).ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let start = eol + 2;
        let end = start + len as usize;
        if buf.len() < end + 2 {
            // Reserve once so a large bulk string is read without repeated growth.
            buf.reserve(end + 2 - buf.len());
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
    let mut text = &line[..nl];
    if text.last() == Some(&b'\r') {
        text = &text[..text.len() - 1];
    }
    split_args(text).map(Some)
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
        while i < n && line[i].is_ascii_whitespace() {
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
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
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
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
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

    #[test]
    fn multibulk_complete_and_split_at_every_byte() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        for cut in 0..req.len() {
            let mut buf = BytesMut::from(&req[..cut]);
            assert_eq!(
                parse_request(&mut buf, &Limits::default()),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(buf.len(), cut);
        }
        let mut buf = BytesMut::from(&req[..]);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let l = Limits::default();
        assert_eq!(
            parse_request(&mut buf, &l),
            Ok(Some(args(&["SET", "k", ""])))
        );
        assert_eq!(parse_request(&mut buf, &l), Ok(Some(args(&["PING"]))));
        assert!(buf.is_empty());
    }

    #[test]
    fn binary_safe_bulk() {
        let got = parse(b"*1\r\n$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"a\r\nb")]);
    }

    #[test]
    fn empty_multibulk() {
        assert_eq!(parse(b"*0\r\n"), Ok(Some(vec![])));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some(vec![])));
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            parse(b"*abc\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse(b"*2000000\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(':'))
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$x\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$999999999999\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(parse(b"\"abc\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse(b"\"abc\"x\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(
            ProtocolError::ExpectedDollar('x').to_reply(),
            Reply::Error("ERR Protocol error: expected '$', got 'x'".into())
        );
    }

    #[test]
    fn limits_apply_before_buffering() {
        let l = Limits {
            max_bulk_len: 10,
            max_inline_len: 16,
            max_multibulk_len: 4,
        };
        let p = |b: &[u8]| parse_request(&mut BytesMut::from(b), &l);
        assert_eq!(p(b"*1\r\n$11\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(p(b"*5\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(p(&[b'a'; 17]), Err(ProtocolError::TooBigInline));
        assert_eq!(p(&[b'*'; 17]), Err(ProtocolError::TooBigMbulkCount));
        assert_eq!(
            p(b"*1\r\n$1111111111111111111"),
            Err(ProtocolError::TooBigBulkCount)
        );
    }

    #[test]
    fn inline_commands() {
        assert_eq!(parse(b"PING\r\n"), Ok(Some(args(&["PING"]))));
        assert_eq!(parse(b"set  k   v\n"), Ok(Some(args(&["set", "k", "v"]))));
        assert_eq!(parse(b"\r\n"), Ok(Some(vec![])));
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(
            parse(b"SET \"a b\\n\\x41\" 'it\\'s'\r\n"),
            Ok(Some(args(&["SET", "a b\nA", "it's"])))
        );
        assert_eq!(parse(b"SET \"\" x\r\n"), Ok(Some(args(&["SET", "", "x"]))));
    }
}
