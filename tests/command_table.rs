//! The COMMAND table as a Redis client library sees it on a real node: key positions of
//! `COMMAND INFO` as in Redis, `COMMAND COUNT` / `LIST` / `DOCS` / `GETKEYS` consistent with it,
//! and Redis 7's RESP3 shapes (sets and maps) on the wire.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Cluster;
use redis::Value;

/// (name, arity, first key, last key, step) of one `COMMAND INFO` entry.
fn entry(v: &Value) -> (String, i64, i64, i64, i64) {
    let Value::Array(fields) = v else {
        panic!("not an array: {v:?}")
    };
    assert_eq!(fields.len(), 10, "{v:?}");
    let int = |i: usize| match &fields[i] {
        Value::Int(n) => *n,
        other => panic!("field {i}: {other:?}"),
    };
    let name = match &fields[0] {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("name: {other:?}"),
    };
    (name, int(1), int(3), int(4), int(5))
}

#[test]
fn command_info_reports_redis_key_positions() {
    let cl = Cluster::start(1);
    let mut c = cl.client(0);
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(&["get", "set", "mget", "mset", "rename", "nosuch"])
        .query(&mut c)
        .expect("COMMAND INFO");
    let got: Vec<_> = info[..5].iter().map(entry).collect();
    assert_eq!(
        got,
        [
            ("get".to_string(), 2, 1, 1, 1),
            ("set".to_string(), -3, 1, 1, 1),
            ("mget".to_string(), -2, 1, -1, 1),
            ("mset".to_string(), -3, 1, -1, 2),
            ("rename".to_string(), 3, 1, 2, 1),
        ]
    );
    assert_eq!(info[5], Value::Nil);

    let count: usize = redis::cmd("COMMAND")
        .arg("COUNT")
        .query(&mut c)
        .expect("COUNT");
    let all: Vec<Value> = redis::cmd("COMMAND").query(&mut c).expect("COMMAND");
    assert_eq!(all.len(), count);
    assert!(count > 50, "{count}");

    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg(&["GETKEYS", "MSET", "a", "1", "b", "2"])
        .query(&mut c)
        .expect("GETKEYS");
    assert_eq!(keys, ["a", "b"]);
    let e = redis::cmd("COMMAND")
        .arg(&["GETKEYS", "PING"])
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("The command has no key arguments"),
        "{e}"
    );

    // FILTERBY PATTERN goes through the node's glob matcher (case-insensitive).
    let names: Vec<String> = redis::cmd("COMMAND")
        .arg(&["LIST", "FILTERBY", "PATTERN", "CLIENT|SET*"])
        .query(&mut c)
        .expect("LIST");
    assert_eq!(names, ["client|setname", "client|setinfo"]);

    let docs: Vec<Value> = redis::cmd("COMMAND")
        .arg(&["DOCS", "get"])
        .query(&mut c)
        .expect("DOCS");
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[0], Value::BulkString(b"get".to_vec()));
}

/// Reads from `s` until `want` has arrived (or panics after a deadline).
fn read_until(s: &mut TcpStream, want: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(want.len()).any(|w| w == want) {
        assert!(Instant::now() < deadline, "no {want:?} in {got:?}");
        match s.read(&mut buf) {
            Ok(0) => panic!("closed; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

#[test]
fn command_info_uses_resp3_sets_and_maps() {
    let cl = Cluster::start(1);
    cl.wait_serving(0);
    let mut s = TcpStream::connect(("127.0.0.1", cl.port(0))).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s.write_all(b"HELLO 3\r\nCOMMAND INFO get\r\nPING\r\n")
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want: &[u8] =
        b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n\
$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n\
$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n\
$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n+PONG\r\n";
    assert!(got.ends_with(want), "{:?}", String::from_utf8_lossy(&got));
}
