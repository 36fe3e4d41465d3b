//! Bad-input catalogue (issue #4 items 4 and 7) against real `raftkv` processes: malformed
//! RESP, negative and huge lengths, deep nesting, binary and empty keys, over-long inline
//! lines, slow-loris partial frames, connections beyond `--maxclients`, 100k-command
//! pipelines, and fail-stop on a full disk. Raw TCP sockets send what a client library
//! would refuse to. Every test checks that the node still answers a fresh client's PING,
//! that errors carry Redis's exact texts, and that the node's resident memory stays bounded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::{try_client, wait_for, Cluster};

/// Resident set size of process `pid` in KiB (VmRSS of /proc/<pid>/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Asserts the node's RSS grew by at most `max_mib` MiB since `before_kib`.
fn assert_rss_bounded(cl: &Cluster, i: usize, before_kib: u64, max_mib: u64, what: &str) {
    let after = rss_kib(cl.pid(i).expect("node running"));
    eprintln!(
        "{what}: node RSS {} MiB -> {} MiB",
        before_kib / 1024,
        after / 1024
    );
    assert!(
        after <= before_kib + max_mib * 1024,
        "{what}: RSS grew from {before_kib} KiB to {after} KiB (bound +{max_mib} MiB)"
    );
}

/// A fresh client gets PONG: the server is up and serving.
fn assert_alive(port: u16) {
    let mut s = raw(port);
    s.write_all(b"PING\r\n").expect("write PING");
    let mut r = BufReader::new(s);
    assert_eq!(read_line(&mut r), "+PONG\r\n", "fresh client PING");
}

fn raw(port: u16) -> TcpStream {
    let s = wait_for(Duration::from_secs(5), "raw connection", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    s
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("read reply line");
    String::from_utf8_lossy(&line).into_owned()
}

/// Everything the server sends until it closes the connection (EOF or reset), bounded by
/// `timeout`; panics if the connection is still open then.
fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection still open after {timeout:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends `input` on a new connection (from a thread, so a server that stops reading
/// cannot block the test) and returns what the server sent before closing.
fn send_expect_close(port: u16, input: Vec<u8>) -> Vec<u8> {
    let mut s = raw(port);
    let mut w = s.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || {
        // The server may close mid-write: that is the point.
        let _ = w.write_all(&input);
    });
    let got = read_until_closed(&mut s, Duration::from_secs(10));
    drop(s);
    let _ = writer.join();
    got
}

fn protocol_error(text: &str) -> Vec<u8> {
    format!("-ERR Protocol error: {text}\r\n").into_bytes()
}

/// Redis's replies and connection close for malformed multibulk requests, lengths out of
/// range and nesting, while the node keeps serving and its memory stays flat.
#[test]
fn malformed_resp_gets_redis_errors_then_close() {
    let cl = Cluster::start_with(1, &["--proto-max-bulk-len", "1048576"]);
    let port = cl.port(0);
    let before = rss_kib(cl.pid(0).expect("pid"));
    let mut deep = b"*1\r\n".repeat(100_000);
    deep.extend_from_slice(b"$4\r\nPING\r\n");
    let mut long_count = b"*".to_vec();
    long_count.extend(std::iter::repeat_n(b'1', 70_000));
    let mut long_bulk_count = b"*1\r\n$".to_vec();
    long_bulk_count.extend(std::iter::repeat_n(b'1', 70_000));
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            b"*abc\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*+1\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*1x\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        // More arguments than Redis accepts in one request (> 1024*1024*1024, > INT_MAX, > i64).
        (
            b"*1073741825\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*2147483648\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*9223372036854775808\r\n".to_vec(),
            protocol_error("invalid multibulk length"),
        ),
        (
            b"*1\r\n:1\r\n".to_vec(),
            protocol_error("expected '$', got ':'"),
        ),
        (
            b"*2\r\n$4\r\nECHO\r\n+x\r\n".to_vec(),
            protocol_error("expected '$', got '+'"),
        ),
        // Found by fuzzing: CR/LF in the text become spaces, as in Redis.
        (
            b"*1\r\n\r\n".to_vec(),
            protocol_error("expected '$', got ' '"),
        ),
        (
            b"*1\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
            protocol_error("expected '$', got '*'"),
        ),
        (deep, protocol_error("expected '$', got '*'")),
        (
            b"*1\r\n$abc\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (
            b"*1\r\n$-1\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (
            b"*1\r\n$-2147483649\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        // One byte over --proto-max-bulk-len: refused from the header, before any data.
        (
            b"*2\r\n$4\r\nECHO\r\n$1048577\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (
            b"*1\r\n$99999999999999999999\r\n".to_vec(),
            protocol_error("invalid bulk length"),
        ),
        (long_count, protocol_error("too big mbulk count string")),
        (long_bulk_count, protocol_error("too big bulk count string")),
        (
            b"SET \"k v\r\n".to_vec(),
            protocol_error("unbalanced quotes in request"),
        ),
        // Replies to earlier requests go out before the error.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n".to_vec(),
            [
                &b"+PONG\r\n+PONG\r\n"[..],
                &protocol_error("invalid multibulk length"),
            ]
            .concat(),
        ),
    ];
    for (input, want) in cases {
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        let got = send_expect_close(port, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "input {shown:?}"
        );
        assert_alive(port);
    }
    assert_rss_bounded(&cl, 0, before, 64, "malformed requests");
}

/// Inputs Redis answers without closing: empty and negative counts are skipped, odd
/// first bytes are inline commands, and error texts never break the reply framing.
#[test]
fn odd_but_valid_requests_keep_the_connection() {
    let cl = Cluster::start(1);
    let port = cl.port(0);
    let mut s = raw(port);
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    s.write_all(b"*0\r\n*-1\r\n*-100\r\n\r\n   \r\nPING\r\n")
        .expect("write");
    assert_eq!(read_line(&mut r), "+PONG\r\n");
    s.write_all(b"+PING\r\n").expect("write");
    assert_eq!(
        read_line(&mut r),
        "-ERR unknown command '+PING', with args beginning with: \r\n"
    );
    s.write_all(b":1\r\n").expect("write");
    assert_eq!(
        read_line(&mut r),
        "-ERR unknown command ':1', with args beginning with: \r\n"
    );
    // A command name with CR/LF inside: the error must stay one line.
    s.write_all(b"*2\r\n$6\r\nA\r\nB\nC\r\n$3\r\nx\ry\r\n")
        .expect("write");
    let line = read_line(&mut r);
    assert!(
        line.starts_with("-ERR unknown command 'A  B C', with args beginning with: 'x y'"),
        "{line:?}"
    );
    // Bytes that are not text at all.
    s.write_all(b"\x00\xff\x7f\r\n").expect("write");
    let line = read_line(&mut r);
    assert!(line.starts_with("-ERR unknown command '"), "{line:?}");
    assert!(line.ends_with("\r\n") && !line[..line.len() - 2].contains(['\r', '\n']));
    // Arity and syntax errors with Redis's texts.
    s.write_all(b"*1\r\n$3\r\nGET\r\n").expect("write");
    assert_eq!(
        read_line(&mut r),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    s.write_all(b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$3\r\nabc\r\n")
        .expect("write");
    assert_eq!(
        read_line(&mut r),
        "-ERR value is not an integer or out of range\r\n"
    );
    s.write_all(b"PING\r\n").expect("write");
    assert_eq!(read_line(&mut r), "+PONG\r\n", "connection still usable");
    assert_alive(port);
}

/// Bulk strings up to --proto-max-bulk-len are stored and read back whole.
#[test]
fn bulk_at_the_limit_round_trips() {
    let cl = Cluster::start_with(1, &["--proto-max-bulk-len", "1048576"]);
    let mut c = cl.client(0);
    let value: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut c)
        .expect("SET 1 MiB");
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).expect("GET");
    assert!(got == value, "1 MiB value came back different");
    assert_alive(cl.port(0));
}

/// Keys and values made of every byte value, and the empty key, round-trip exactly.
#[test]
fn binary_and_empty_keys_round_trip() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    let mut w = cl.client(follower);
    let all: Vec<u8> = (0..=255u8).collect();
    let mut set = redis::pipe();
    for b in 0..=255u8 {
        set.cmd("SET")
            .arg(&[b][..])
            .arg(&[b, b, 0, b'\r', b'\n'][..])
            .ignore();
    }
    set.cmd("SET")
        .arg(&all)
        .arg(all.iter().rev().copied().collect::<Vec<u8>>());
    set.cmd("SET").arg("").arg("");
    set.cmd("SET").arg(&b"\r\n"[..]).arg("crlf");
    let _: Vec<String> = set.query(&mut w).expect("SET pipeline via follower");
    // Read through another node: the bytes were replicated unchanged.
    let mut r = cl.client(leader);
    let mut get = redis::pipe();
    for b in 0..=255u8 {
        get.cmd("GET").arg(&[b][..]);
    }
    get.cmd("GET").arg(&all);
    get.cmd("GET").arg("");
    get.cmd("GET").arg(&b"\r\n"[..]);
    get.cmd("EXISTS").arg("");
    let got: Vec<redis::Value> = get.query(&mut r).expect("GET pipeline");
    let bytes = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => b.clone(),
        other => panic!("not a bulk string: {other:?}"),
    };
    for b in 0..=255u8 {
        assert_eq!(
            bytes(&got[b as usize]),
            vec![b, b, 0, b'\r', b'\n'],
            "key {b}"
        );
    }
    assert_eq!(
        bytes(&got[256]),
        all.iter().rev().copied().collect::<Vec<u8>>()
    );
    assert_eq!(bytes(&got[257]), b"");
    assert_eq!(bytes(&got[258]), b"crlf");
    assert_eq!(got[259], redis::Value::Int(1));
    // KEYS returns binary keys intact too.
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut r).expect("KEYS");
    assert_eq!(keys.len(), 256 + 3);
    assert!(keys.contains(&all) && keys.contains(&Vec::new()));
    assert_alive(cl.port(leader));
}

/// A 1 MB inline line: Redis's "too big inline request", then close; nothing buffered.
#[test]
fn one_megabyte_inline_line_is_refused() {
    let cl = Cluster::start(1);
    let port = cl.port(0);
    let before = rss_kib(cl.pid(0).expect("pid"));
    for tail in [&b"\r\n"[..], b""] {
        let mut line = b"SET k ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 1 << 20));
        line.extend_from_slice(tail);
        let got = send_expect_close(port, line);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "-ERR Protocol error: too big inline request\r\n"
        );
        assert_alive(port);
    }
    // Just under the 64 KiB inline limit is still a command.
    let mut s = raw(port);
    let mut line = b"ECHO ".to_vec();
    line.extend(std::iter::repeat_n(b'b', 60_000));
    line.extend_from_slice(b"\r\n");
    s.write_all(&line).expect("write");
    let mut r = BufReader::new(s);
    assert_eq!(read_line(&mut r), "$60000\r\n");
    assert_rss_bounded(&cl, 0, before, 32, "1 MB inline lines");
}

/// A client sending a frame one byte at a time does not delay others; idle partial frames
/// (even ones announcing a large bulk) neither hang the server nor reserve memory.
#[test]
fn slow_loris_partial_frames() {
    let cl = Cluster::start(1);
    let port = cl.port(0);
    let before = rss_kib(cl.pid(0).expect("pid"));

    // 300 idle connections, each announcing a 500 MB bulk and sending a few bytes.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = raw(port);
            s.write_all(b"*2\r\n$4\r\nECHO\r\n$500000000\r\nabc")
                .expect("write");
            s
        })
        .collect();
    // One partial GET left hanging mid-argument.
    let mut hanging = raw(port);
    hanging
        .write_all(b"*2\r\n$3\r\nGET\r\n$4\r\nslo")
        .expect("write");

    // One frame dribbled byte by byte while another client works.
    let dribble = std::thread::spawn(move || {
        let mut s = raw(port);
        for &b in b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$5\r\nloris\r\n".iter() {
            s.write_all(&[b]).expect("dribble");
            std::thread::sleep(Duration::from_millis(15));
        }
        let mut r = BufReader::new(s);
        read_line(&mut r)
    });
    let mut c = try_client(port).expect("client");
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(500) || n < 20 {
        let t = Instant::now();
        let _: () = redis::cmd("SET")
            .arg(format!("other{n}"))
            .arg(n)
            .query(&mut c)
            .expect("SET while a client dribbles");
        let pong: String = redis::cmd("PING").query(&mut c).expect("PING");
        assert_eq!(pong, "PONG");
        worst = worst.max(t.elapsed());
        n += 1;
    }
    assert!(
        worst < Duration::from_secs(1),
        "a command took {worst:?} while another client dribbled"
    );
    assert_eq!(dribble.join().expect("dribbler"), "+OK\r\n");

    // The hanging request completes when its last bytes arrive, seeing the dribbled SET.
    hanging.write_all(b"w\r\n").expect("write");
    let mut r = BufReader::new(hanging);
    assert_eq!(read_line(&mut r), "$5\r\n");
    assert_eq!(read_line(&mut r), "loris\r\n");
    assert_alive(port);
    assert_rss_bounded(&cl, 0, before, 64, "300 idle partial frames");
    drop(idle);
}

/// 100,000 pipelined commands (SET, GET, INCR interleaved) on one connection: every
/// reply arrives, in order, with the value each command must see.
#[test]
fn pipeline_of_100k_commands_answered_in_order() {
    const N: usize = 100_000;
    let cl = Cluster::start(1);
    let port = cl.port(0);
    let before = rss_kib(cl.pid(0).expect("pid"));
    let s = raw(port);
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = std::io::BufWriter::new(s.try_clone().expect("clone"));
    let writer = std::thread::spawn(move || {
        for i in 0..N {
            let cmd = match i % 3 {
                0 => format!("SET k{} v{i}\r\n", i / 3),
                1 => format!(
                    "*2\r\n$3\r\nGET\r\n${}\r\nk{}\r\n",
                    1 + digits(i / 3),
                    i / 3
                ),
                _ => "INCR counter\r\n".to_string(),
            };
            w.write_all(cmd.as_bytes()).expect("write pipeline");
        }
        w.flush().expect("flush pipeline");
    });
    let started = Instant::now();
    let mut r = BufReader::with_capacity(1 << 16, s);
    for i in 0..N {
        match i % 3 {
            0 => assert_eq!(read_line(&mut r), "+OK\r\n", "reply {i}"),
            1 => {
                let want = format!("v{}", i - 1);
                assert_eq!(
                    read_line(&mut r),
                    format!("${}\r\n", want.len()),
                    "reply {i}"
                );
                assert_eq!(read_line(&mut r), format!("{want}\r\n"), "reply {i}");
            }
            _ => assert_eq!(
                read_line(&mut r),
                format!(":{}\r\n", i / 3 + 1),
                "reply {i}"
            ),
        }
    }
    writer.join().expect("writer");
    eprintln!("{N} pipelined commands answered in {:?}", started.elapsed());
    assert_alive(port);
    assert_rss_bounded(&cl, 0, before, 256, "100k pipeline");
}

/// A client pipelining large requests without reading the replies: the node stops reading
/// from it (TCP backpressure) instead of buffering everything; all replies still come, in
/// order, once the client reads.
#[test]
fn non_reading_client_is_held_back() {
    const N: usize = 2000;
    const LEN: usize = 64 * 1024;
    let cl = Cluster::start(1);
    let port = cl.port(0);
    let pid = cl.pid(0).expect("pid");
    let before = rss_kib(pid);
    let s = raw(port);
    let mut w = s.try_clone().expect("clone");
    w.set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let writer = std::thread::spawn(move || {
        let mut req = format!("*2\r\n$4\r\nECHO\r\n${LEN}\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'e', LEN));
        req.extend_from_slice(b"\r\n");
        for _ in 0..N {
            w.write_all(&req).expect("write pipeline");
        }
    });
    // Wait until the node has read all it will read (its RSS is stable), without reading.
    let mut last = 0;
    let peak = wait_for(Duration::from_secs(20), "the node to stop reading", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = rss_kib(pid);
        let stable = now.abs_diff(last) < 1024;
        last = now;
        (stable || writer.is_finished()).then_some(now)
    });
    eprintln!(
        "{} MiB pipelined unread: node RSS {} MiB -> {} MiB",
        (N * LEN) >> 20,
        before / 1024,
        peak / 1024
    );
    assert!(
        peak <= before + 96 * 1024,
        "node buffered an unread pipeline: RSS {before} KiB -> {peak} KiB"
    );
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut body = vec![0u8; LEN + 2];
    for i in 0..N {
        assert_eq!(read_line(&mut r), format!("${LEN}\r\n"), "reply {i}");
        r.read_exact(&mut body).expect("reply body");
        assert!(body[..LEN].iter().all(|&b| b == b'e') && body.ends_with(b"\r\n"));
    }
    writer.join().expect("writer");
    assert_alive(port);
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

#[path = "bad_input/failstop.rs"]
mod failstop;
#[path = "bad_input/maxclients.rs"]
mod maxclients;
