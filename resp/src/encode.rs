//! Encodes [`Reply`] values as RESP2 or RESP3 bytes with the redis-protocol crate's frame
//! encoders. RESP2 has no maps, sets, doubles or verbatim strings: they degrade the way
//! Redis degrades them (flat arrays, arrays, bulk strings).

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame as F2;
use redis_protocol::resp3::types::{BytesFrame as F3, VerbatimStringFormat};

use crate::{Protocol, Reply};

/// Formats a double the way Redis prints one: shortest text that round-trips, no exponent.
pub fn format_double(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{f}")
    }
}

fn clean(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn to_resp2(r: &Reply) -> F2 {
    match r {
        Reply::Status(s) => F2::SimpleString(Bytes::from(clean(s))),
        Reply::Error(e) => F2::Error(clean(e).into()),
        Reply::Int(i) => F2::Integer(*i),
        Reply::Bulk(b) => F2::BulkString(b.clone()),
        Reply::Nil => F2::Null,
        Reply::NilArray => F2::Array(Vec::new()),
        Reply::Array(items) | Reply::Set(items) => F2::Array(items.iter().map(to_resp2).collect()),
        Reply::Map(pairs) => F2::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [to_resp2(k), to_resp2(v)])
                .collect(),
        ),
        Reply::Double(d) => F2::BulkString(Bytes::from(format_double(*d))),
        Reply::Verbatim(s) => F2::BulkString(Bytes::from(s.clone())),
    }
}

fn to_resp3(r: &Reply) -> F3 {
    match r {
        Reply::Status(s) => F3::SimpleString {
            data: Bytes::from(clean(s)),
            attributes: None,
        },
        Reply::Error(e) => F3::SimpleError {
            data: clean(e).into(),
            attributes: None,
        },
        Reply::Int(i) => F3::Number {
            data: *i,
            attributes: None,
        },
        Reply::Bulk(b) => F3::BlobString {
            data: b.clone(),
            attributes: None,
        },
        Reply::Nil | Reply::NilArray => F3::Null,
        Reply::Array(items) => F3::Array {
            data: items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Set(items) => F3::Set {
            data: items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Map(pairs) => F3::Map {
            data: pairs
                .iter()
                .map(|(k, v)| (to_resp3(k), to_resp3(v)))
                .collect(),
            attributes: None,
        },
        Reply::Double(d) => F3::Double {
            data: *d,
            attributes: None,
        },
        Reply::Verbatim(s) => F3::VerbatimString {
            data: Bytes::from(s.clone()),
            format: VerbatimStringFormat::Text,
            attributes: None,
        },
    }
}

/// Appends the encoding of `reply` to `out`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    let res = match (proto, reply) {
        // redis-protocol's RESP2 frames have one null kind; a null array is `*-1`.
        (Protocol::Resp2, Reply::NilArray) => {
            out.extend_from_slice(b"*-1\r\n");
            Ok(0)
        }
        (Protocol::Resp2, r) => {
            redis_protocol::resp2::encode::extend_encode(out, &to_resp2(r), false)
        }
        (Protocol::Resp3, r) => {
            redis_protocol::resp3::encode::complete::extend_encode(out, &to_resp3(r), false)
        }
    };
    if res.is_err() {
        out.extend_from_slice(b"-ERR reply encoding failed\r\n");
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
    fn resp2() {
        let p = Protocol::Resp2;
        assert_eq!(enc(Reply::ok(), p), "+OK\r\n");
        assert_eq!(
            enc(Reply::err("ERR bad\r\nthing"), p),
            "-ERR bad  thing\r\n"
        );
        assert_eq!(enc(Reply::Int(-3), p), ":-3\r\n");
        assert_eq!(enc(Reply::bulk("ab"), p), "$2\r\nab\r\n");
        assert_eq!(enc(Reply::bulk(""), p), "$0\r\n\r\n");
        assert_eq!(enc(Reply::Nil, p), "$-1\r\n");
        assert_eq!(enc(Reply::NilArray, p), "*-1\r\n");
        assert_eq!(enc(Reply::Array(vec![]), p), "*0\r\n");
        assert_eq!(
            enc(Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]), p),
            "*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Reply::Set(vec![Reply::Int(1)]), p), "*1\r\n:1\r\n");
        assert_eq!(enc(Reply::Double(3.0), p), "$1\r\n3\r\n");
        assert_eq!(enc(Reply::Verbatim("x".into()), p), "$1\r\nx\r\n");
    }

    #[test]
    fn resp3() {
        let p = Protocol::Resp3;
        assert_eq!(enc(Reply::ok(), p), "+OK\r\n");
        assert_eq!(enc(Reply::err("ERR x"), p), "-ERR x\r\n");
        assert_eq!(enc(Reply::Int(7), p), ":7\r\n");
        assert_eq!(enc(Reply::Nil, p), "_\r\n");
        assert_eq!(enc(Reply::NilArray, p), "_\r\n");
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
        assert!(enc(Reply::Double(1.5), p).starts_with(",1.5"));
        assert_eq!(enc(Reply::Verbatim("hi".into()), p), "=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn doubles() {
        assert_eq!(format_double(10.6), "10.6");
        assert_eq!(format_double(5000.0), "5000");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-0.5), "-0.5");
    }
}
