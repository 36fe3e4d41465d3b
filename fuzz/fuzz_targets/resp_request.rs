//! Fuzzes the RESP request parser (`resp::request::parse_request`) with arbitrary bytes.
//! The input is parsed whole and again fed in chunks at split points taken from its first
//! bytes; both must yield the same requests and agree on whether the stream is malformed.
//! An incomplete request must leave the buffer untouched. Runs with Redis's default
//! limits and with tiny limits so every limit path is reached.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use resp::request::{parse_request, Limits};

/// Parses everything available in `buf`; pushes requests into `out`. True on error.
fn drain(buf: &mut BytesMut, limits: &Limits, out: &mut Vec<Vec<Bytes>>) -> bool {
    loop {
        let before = buf.clone();
        match parse_request(buf, limits) {
            Ok(Some(argv)) => {
                assert!(buf.len() < before.len(), "a request consumed nothing");
                out.push(argv);
            }
            Ok(None) => {
                assert_eq!(&buf[..], &before[..], "incomplete request consumed bytes");
                return false;
            }
            Err(e) => {
                // Every error has Redis's prefix and is one line.
                if let resp::Reply::Error(text) = e.to_reply() {
                    assert!(text.starts_with("ERR Protocol error: "));
                    assert!(!text.contains(['\r', '\n']));
                }
                return true;
            }
        }
    }
}

fn check(data: &[u8], limits: &Limits) {
    let (cuts, input) = match data.split_first() {
        Some((&n, rest)) => ((n % 8) as usize, rest),
        None => return,
    };
    let (cut_bytes, input) = input.split_at(cuts.min(input.len()));

    let mut whole = Vec::new();
    let whole_err = drain(&mut BytesMut::from(input), limits, &mut whole);

    let mut points: Vec<usize> = cut_bytes
        .iter()
        .map(|&b| (b as usize * input.len()) / 255)
        .collect();
    points.push(input.len());
    points.sort_unstable();
    let mut chunked = Vec::new();
    let mut buf = BytesMut::new();
    let mut chunk_err = false;
    let mut from = 0;
    for p in points {
        buf.extend_from_slice(&input[from..p]);
        from = p;
        if drain(&mut buf, limits, &mut chunked) {
            chunk_err = true;
            break;
        }
    }
    assert_eq!(whole, chunked, "chunked parsing gave other requests");
    assert_eq!(whole_err, chunk_err, "chunked parsing disagrees on errors");
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    check(
        data,
        &Limits {
            max_bulk_len: 64,
            max_inline_len: 128,
            max_multibulk_len: 16,
            unauthenticated: false,
        },
    );
    // Before AUTH (Redis 6.2.6's small limits).
    check(
        data,
        &Limits {
            unauthenticated: true,
            ..Limits::default()
        },
    );
});
