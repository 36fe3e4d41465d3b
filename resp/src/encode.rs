//! Encodes [`Reply`] values as RESP2 or RESP3 bytes. Scalars go through the redis-protocol
//! crate's frame encoders; aggregates, nulls and doubles are framed here so that nesting,
//! RESP2's `*-1` null array and Redis's double formatting come out exactly as Redis sends
//! them. RESP2 has no maps, sets, doubles or verbatim strings: they degrade the way Redis
//! degrades them (flat arrays, arrays, bulk strings).

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as F2;
use redis_protocol::resp3::types::{BytesFrame as F3, VerbatimStringFormat};

use crate::{Protocol, Reply};

/// Formats a number for INCRBYFLOAT results: the shortest decimal text that parses back to
/// the same f64, never in exponent form, no trailing zeros (`10.5 + 0.1` → `10.6`,
/// `3e3` → `3000`). Redis prints a long double with `%.17Lf` and strips zeros; for f64
/// values the shortest round-trip text is what that yields for ordinary magnitudes.
pub fn format_double(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f == 0.0 {
        "0".into()
    } else {
        format!("{f}")
    }
}

/// Formats a double reply like Redis's `d2string`: `%.17g` rules with the shortest
/// round-trip digits: plain notation for decimal exponents -5 < e < 17, otherwise
/// `d.ddde+XX` (`3.0` → `3`, `1e20` → `1e+20`, `1e-7` → `1e-07`).
pub fn format_reply_double(f: f64) -> String {
    if !f.is_finite() || f == 0.0 {
        return format_double(f);
    }
    let sci = format!("{f:e}"); // shortest digits: "-1.2345e-7", "1e20"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..17).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Error and status texts may not contain CR or LF: trailing ones are dropped and inner
/// ones become spaces, as Redis's `addReplyErrorLength` callers do.
fn clean(text: &str) -> String {
    text.trim_end_matches(['\r', '\n'])
        .replace(['\r', '\n'], " ")
}

/// Appends `kind`, the decimal `len` and CRLF (an aggregate's or a bulk string's header),
/// formatted on the stack: no allocation per element of a long array.
fn header(out: &mut BytesMut, kind: u8, len: usize) {
    let mut buf = [0u8; 24];
    let mut at = buf.len();
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at -= 1;
    buf[at] = kind;
    out.extend_from_slice(&buf[at..]);
    out.extend_from_slice(b"\r\n");
}

/// A bulk (RESP2) or blob (RESP3) string: `$<len>\r\n<bytes>\r\n`, written straight into
/// `out` (the frame encoder would take a clone of the `Bytes`, which for one built from a
/// `Vec` allocates, and size it with a logarithm).
fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 24);
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn scalar2(out: &mut BytesMut, frame: F2) {
    if redis_protocol::resp2::encode::extend_encode(out, &frame, false).is_err() {
        out.extend_from_slice(b"-ERR reply encoding failed\r\n");
    }
}

fn scalar3(out: &mut BytesMut, frame: F3) {
    if redis_protocol::resp3::encode::complete::extend_encode(out, &frame, false).is_err() {
        out.extend_from_slice(b"-ERR reply encoding failed\r\n");
    }
}

/// Appends the encoding of `reply` in protocol `proto` to `out`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    match proto {
        Protocol::Resp2 => encode2(reply, out),
        Protocol::Resp3 => encode3(reply, out),
    }
}

fn encode2(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Status(s) => scalar2(out, F2::SimpleString(clean(s).into())),
        Reply::Error(e) => scalar2(out, F2::Error(clean(e).into())),
        Reply::Int(i) => scalar2(out, F2::Integer(*i)),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            header(out, b'*', items.len());
            items.iter().for_each(|r| encode2(r, out));
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            header(out, b'*', pairs.len() * 2);
            for (k, v) in pairs {
                encode2(k, out);
                encode2(v, out);
            }
        }
        Reply::Double(d) => scalar2(out, F2::BulkString(format_reply_double(*d).into())),
        Reply::DoubleText(t) => scalar2(out, F2::BulkString(Bytes::from(t.clone()))),
        Reply::Verbatim(s) => scalar2(out, F2::BulkString(Bytes::from(s.clone()))),
        Reply::Bool(b) => scalar2(out, F2::Integer(i64::from(*b))),
        Reply::BigNumber(n) => scalar2(out, F2::BulkString(Bytes::from(clean(n)))),
    }
}

fn encode3(reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Status(s) => scalar3(
            out,
            F3::SimpleString {
                data: clean(s).into(),
                attributes: None,
            },
        ),
        Reply::Error(e) => scalar3(
            out,
            F3::SimpleError {
                data: clean(e).into(),
                attributes: None,
            },
        ),
        Reply::Int(i) => scalar3(
            out,
            F3::Number {
                data: *i,
                attributes: None,
            },
        ),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil | Reply::NilArray => out.extend_from_slice(b"_\r\n"),
        Reply::Array(items) => {
            header(out, b'*', items.len());
            items.iter().for_each(|r| encode3(r, out));
        }
        Reply::Set(items) => {
            header(out, b'~', items.len());
            items.iter().for_each(|r| encode3(r, out));
        }
        Reply::Push(items) => {
            header(out, b'>', items.len());
            items.iter().for_each(|r| encode3(r, out));
        }
        Reply::Map(pairs) => {
            header(out, b'%', pairs.len());
            for (k, v) in pairs {
                encode3(k, out);
                encode3(v, out);
            }
        }
        Reply::Pairs(pairs) => {
            header(out, b'*', pairs.len());
            for (a, b) in pairs {
                header(out, b'*', 2);
                encode3(a, out);
                encode3(b, out);
            }
        }
        Reply::Double(d) => {
            out.extend_from_slice(b",");
            out.extend_from_slice(format_reply_double(*d).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::DoubleText(t) => {
            out.extend_from_slice(b",");
            out.extend_from_slice(clean(t).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Verbatim(s) => scalar3(
            out,
            F3::VerbatimString {
                data: Bytes::from(s.clone()),
                format: VerbatimStringFormat::Text,
                attributes: None,
            },
        ),
        Reply::Bool(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::BigNumber(n) => {
            out.extend_from_slice(b"(");
            out.extend_from_slice(clean(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Reply, p: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(&r, p, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn pairs_are_flat_in_resp2_and_two_element_arrays_in_resp3() {
        let r = || {
            Reply::Pairs(vec![
                (Reply::bulk("a"), Reply::Double(1.1)),
                (Reply::bulk("b"), Reply::Double(f64::INFINITY)),
            ])
        };
        assert_eq!(
            enc(r(), Protocol::Resp2),
            "*4\r\n$1\r\na\r\n$3\r\n1.1\r\n$1\r\nb\r\n$3\r\ninf\r\n"
        );
        assert_eq!(
            enc(r(), Protocol::Resp3),
            "*2\r\n*2\r\n$1\r\na\r\n,1.1\r\n*2\r\n$1\r\nb\r\n,inf\r\n"
        );
        assert_eq!(enc(Reply::Pairs(vec![]), Protocol::Resp3), "*0\r\n");
    }

    fn nested() -> Reply {
        Reply::Array(vec![
            Reply::NilArray,
            Reply::Nil,
            Reply::Map(vec![(Reply::bulk("k"), Reply::Double(1.5))]),
            Reply::Set(vec![Reply::Status("a".into())]),
        ])
    }

    #[test]
    fn bulks_and_headers_match_the_frame_encoders_at_every_digit_count() {
        for len in [0, 1, 9, 10, 99, 100, 999, 1000, 65_536, 1 << 20] {
            let b = Bytes::from(vec![b'x'; len]);
            let (mut two, mut three) = (BytesMut::new(), BytesMut::new());
            scalar2(&mut two, F2::BulkString(b.clone()));
            scalar3(
                &mut three,
                F3::BlobString {
                    data: b.clone(),
                    attributes: None,
                },
            );
            let r = Reply::Bulk(b);
            assert_eq!(
                enc(r.clone(), Protocol::Resp2).as_bytes(),
                &two[..],
                "{len}"
            );
            assert_eq!(enc(r, Protocol::Resp3).as_bytes(), &three[..], "{len}");
            let mut h = BytesMut::new();
            header(&mut h, b'*', len);
            assert_eq!(&h[..], format!("*{len}\r\n").as_bytes());
        }
        let mut h = BytesMut::new();
        header(&mut h, b'*', usize::MAX);
        assert_eq!(&h[..], format!("*{}\r\n", usize::MAX).as_bytes());
    }

    #[test]
    fn resp2() {
        let p = Protocol::Resp2;
        assert_eq!(enc(Reply::ok(), p), "+OK\r\n");
        assert_eq!(enc(Reply::Status("a\r\nb".into()), p), "+a  b\r\n");
        assert_eq!(
            enc(Reply::err("ERR bad\r\nthing\r\n"), p),
            "-ERR bad  thing\r\n"
        );
        assert_eq!(enc(Reply::Int(-3), p), ":-3\r\n");
        assert_eq!(enc(Reply::bulk("ab"), p), "$2\r\nab\r\n");
        assert_eq!(enc(Reply::bulk("a\r\n"), p), "$3\r\na\r\n\r\n");
        assert_eq!(enc(Reply::bulk(""), p), "$0\r\n\r\n");
        assert_eq!(enc(Reply::Nil, p), "$-1\r\n");
        assert_eq!(enc(Reply::NilArray, p), "*-1\r\n");
        assert_eq!(enc(Reply::Array(vec![]), p), "*0\r\n");
        assert_eq!(
            enc(Reply::Array(vec![Reply::Int(1), Reply::bulk("x")]), p),
            "*2\r\n:1\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            enc(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), p),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Reply::Set(vec![Reply::Int(1)]), p), "*1\r\n:1\r\n");
        assert_eq!(enc(Reply::Double(3.0), p), "$1\r\n3\r\n");
        assert_eq!(enc(Reply::Double(10.5), p), "$4\r\n10.5\r\n");
        assert_eq!(enc(Reply::Double(f64::INFINITY), p), "$3\r\ninf\r\n");
        assert_eq!(enc(Reply::Verbatim("x".into()), p), "$1\r\nx\r\n");
        assert_eq!(
            enc(nested(), p),
            "*4\r\n*-1\r\n$-1\r\n*2\r\n$1\r\nk\r\n$3\r\n1.5\r\n*1\r\n+a\r\n"
        );
    }

    #[test]
    fn resp3() {
        let p = Protocol::Resp3;
        assert_eq!(enc(Reply::ok(), p), "+OK\r\n");
        assert_eq!(enc(Reply::err("ERR x\ny"), p), "-ERR x y\r\n");
        assert_eq!(enc(Reply::Int(7), p), ":7\r\n");
        assert_eq!(enc(Reply::bulk("ab"), p), "$2\r\nab\r\n");
        assert_eq!(enc(Reply::Nil, p), "_\r\n");
        assert_eq!(enc(Reply::NilArray, p), "_\r\n");
        assert_eq!(enc(Reply::Array(vec![Reply::Int(1)]), p), "*1\r\n:1\r\n");
        assert_eq!(
            enc(
                Reply::Map(vec![
                    (Reply::bulk("a"), Reply::Int(1)),
                    (Reply::bulk("b"), Reply::Int(2))
                ]),
                p
            ),
            "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n"
        );
        assert_eq!(enc(Reply::Set(vec![Reply::Int(1)]), p), "~1\r\n:1\r\n");
        assert_eq!(enc(Reply::Double(1.5), p), ",1.5\r\n");
        assert_eq!(enc(Reply::Double(3.0), p), ",3\r\n");
        assert_eq!(enc(Reply::DoubleText("13.5".into()), p), ",13.5\r\n");
        let p2 = Protocol::Resp2;
        assert_eq!(enc(Reply::DoubleText("13.5".into()), p2), "$4\r\n13.5\r\n");
        assert_eq!(enc(Reply::Double(f64::NEG_INFINITY), p), ",-inf\r\n");
        assert_eq!(enc(Reply::Double(1e300), p), ",1e+300\r\n");
        assert_eq!(enc(Reply::Verbatim("hi".into()), p), "=6\r\ntxt:hi\r\n");
        assert_eq!(
            enc(nested(), p),
            "*4\r\n_\r\n_\r\n%1\r\n$1\r\nk\r\n,1.5\r\n~1\r\n+a\r\n"
        );
    }

    #[test]
    fn appends() {
        let mut out = BytesMut::from(&b"x"[..]);
        encode(&Reply::Int(1), Protocol::Resp2, &mut out);
        encode(&Reply::Int(2), Protocol::Resp3, &mut out);
        assert_eq!(&out[..], b"x:1\r\n:2\r\n");
    }

    #[test]
    fn incrbyfloat_format() {
        assert_eq!(format_double(10.5 + 0.1), "10.6");
        assert_eq!(format_double(3.0e3), "3000");
        assert_eq!(format_double(5000.0), "5000");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(-0.0), "0");
        assert_eq!(format_double(1e20), "100000000000000000000");
        assert_eq!(format_double(1.5e-7), "0.00000015");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        for f in [0.1, 1.0 / 3.0, 123456.789, 1e-10, 9007199254740993.0] {
            assert_eq!(format_double(f).parse::<f64>(), Ok(f));
        }
    }

    #[test]
    fn reply_double_format() {
        assert_eq!(format_reply_double(3.0), "3");
        assert_eq!(format_reply_double(10.5), "10.5");
        assert_eq!(format_reply_double(0.1), "0.1");
        assert_eq!(format_reply_double(-2.5e-3), "-0.0025");
        assert_eq!(format_reply_double(1e-4), "0.0001");
        assert_eq!(format_reply_double(1e-5), "1e-05");
        assert_eq!(format_reply_double(-1.25e-7), "-1.25e-07");
        assert_eq!(format_reply_double(1e16), "10000000000000000");
        assert_eq!(format_reply_double(1e17), "1e+17");
        assert_eq!(format_reply_double(1.5e300), "1.5e+300");
        assert_eq!(format_reply_double(0.0), "0");
        assert_eq!(format_reply_double(f64::NAN), "nan");
        assert_eq!(format_reply_double(f64::INFINITY), "inf");
    }
}
