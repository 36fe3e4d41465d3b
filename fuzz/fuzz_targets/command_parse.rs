//! Fuzzes command parsing (`resp::Command::parse` and `parse_replicated`) with arbitrary
//! argument vectors. The input is a sequence of `[len u8][len bytes]` arguments. Parsing
//! must not panic, a parsed command must answer `kind()` and `name()`, and every error
//! reply must encode as one RESP line in both protocols.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use resp::{Command, Protocol, Reply};

fn argv(mut data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let len = (len as usize).min(rest.len());
        out.push(Bytes::copy_from_slice(&rest[..len]));
        data = &rest[len..];
    }
    out
}

fn check_error(r: &Reply) {
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut out = BytesMut::new();
        resp::encode::encode(r, proto, &mut out);
        assert!(out.starts_with(b"-") || out.starts_with(b"!"), "{out:?}");
        if out.starts_with(b"-") {
            let body = &out[..out.len() - 2];
            assert!(out.ends_with(b"\r\n"));
            assert!(!body.contains(&b'\r') && !body.contains(&b'\n'), "{out:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let argv = argv(data);
    match Command::parse(&argv) {
        Ok(cmd) => {
            let _ = (cmd.kind(), cmd.name());
        }
        Err(e) => check_error(&e),
    }
    match Command::parse_replicated(&argv) {
        Ok(cmd) => {
            let _ = (cmd.kind(), cmd.name());
        }
        Err(e) => check_error(&e),
    }
});
