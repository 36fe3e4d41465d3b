//! Replies relayed already encoded (a forwarded request's replies, written by the leader's
//! own encoder): where each value ends, to split or splice them without decoding, and the
//! decoding of a simple one (status, error, integer, bulk) where its value is needed.

use bytes::Bytes;

use crate::Reply;

/// End offset of the RESP2/RESP3 value starting at `at`, or None when `b` holds no whole
/// value there (or nests deeper than 64).
pub fn value_end(b: &[u8], at: usize) -> Option<usize> {
    value_end_at(b, at, 0)
}

/// A `<typ><count>\r\n` header at `at` with a non-negative count: (count, next offset).
pub fn header(b: &[u8], at: usize, typ: u8) -> Option<(usize, usize)> {
    if *b.get(at)? != typ {
        return None;
    }
    let (n, next) = line(b, at)?;
    Some((usize::try_from(n).ok()?, next))
}

/// The integer on the line starting at `at` (after the type byte) and the next offset.
pub fn line(b: &[u8], at: usize) -> Option<(i64, usize)> {
    let rest = b.get(at + 1..)?;
    let len = rest.windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&rest[..len]).ok()?.parse().ok()?;
    Some((n, at + 1 + len + 2))
}

/// End offset of the RESP2/RESP3 value starting at `at` (replies our own encoder wrote).
fn value_end_at(b: &[u8], at: usize, depth: usize) -> Option<usize> {
    if depth > 64 {
        return None;
    }
    let simple = |b: &[u8]| {
        let rest = b.get(at + 1..)?;
        Some(at + 1 + rest.windows(2).position(|w| w == b"\r\n")? + 2)
    };
    match *b.get(at)? {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => simple(b),
        b'$' | b'!' | b'=' => {
            let (n, next) = line(b, at)?;
            if n < 0 {
                return Some(next);
            }
            let end = next.checked_add(usize::try_from(n).ok()?)? + 2;
            (end <= b.len()).then_some(end)
        }
        t @ (b'*' | b'~' | b'>' | b'%') => {
            let (n, mut next) = line(b, at)?;
            if n < 0 {
                return Some(next);
            }
            let items = usize::try_from(n).ok()? * if t == b'%' { 2 } else { 1 };
            for _ in 0..items {
                next = value_end_at(b, next, depth + 1)?;
            }
            Some(next)
        }
        _ => None,
    }
}

/// Decodes one relayed `+status`, `-error`, `:integer` or `$bulk` (nil included); any
/// other value, or bytes that are not one whole value, decode as an error reply.
pub fn simple_reply(raw: &[u8]) -> Reply {
    let bad = || Reply::err("ERR undecodable relayed reply");
    if value_end(raw, 0) != Some(raw.len()) {
        return bad();
    }
    let text = || String::from_utf8_lossy(&raw[1..raw.len() - 2]).into_owned();
    match raw[0] {
        b'+' => Reply::Status(text()),
        b'-' => Reply::Error(text()),
        b':' => text().parse().map(Reply::Int).unwrap_or_else(|_| bad()),
        b'$' => match line(raw, 0) {
            Some((n, _)) if n < 0 => Reply::Nil,
            Some((_, start)) => Reply::Bulk(Bytes::copy_from_slice(&raw[start..raw.len() - 2])),
            None => bad(),
        },
        _ => bad(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_replies_decode_and_others_are_errors() {
        assert_eq!(simple_reply(b":42\r\n"), Reply::Int(42));
        assert_eq!(simple_reply(b"+OK\r\n"), Reply::ok());
        assert_eq!(simple_reply(b"-ERR x\r\n"), Reply::err("ERR x"));
        assert_eq!(simple_reply(b"$1\r\na\r\n"), Reply::bulk(&b"a"[..]));
        assert_eq!(simple_reply(b"$-1\r\n"), Reply::Nil);
        assert!(matches!(simple_reply(b"*1\r\n:1\r\n"), Reply::Error(_)));
    }

    #[test]
    fn values_end_where_they_end() {
        assert_eq!(value_end(b"*2\r\n:1\r\n$1\r\na\r\n+x", 0), Some(15));
        assert_eq!(value_end(b"%1\r\n+a\r\n:1\r\n", 0), Some(12));
        assert_eq!(value_end(b"$5\r\nab", 0), None);
        assert_eq!(value_end(b"*2\r\n:1\r\n", 0), None);
    }
}
