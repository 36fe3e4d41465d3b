//! The timeouts CONFIG SET changes at run time, on real processes: Redis's `timeout` (an
//! idle client is closed; a subscriber, a client blocked in BLPOP and a client that keeps
//! talking are not) and raftkv's `request-timeout-ms` (a read that cannot reach a quorum
//! gives up after the new limit, not after the start-up one).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::Cluster;

/// Waits (at most `limit`) for the server to close `c`; true when it did.
fn closed_within(c: &mut Raw, limit: Duration) -> bool {
    let s = c.0.get_mut();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0))
}

#[test]
fn idle_clients_are_closed_after_timeout_but_subscribers_and_blocked_clients_are_not() {
    let cl = Cluster::start(1);
    let node = cl.wait_leader();
    let mut admin = Raw::to(&cl, node);
    assert_eq!(
        admin.line("CONFIG GET timeout"),
        "*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n"
    );
    assert_eq!(
        admin.line("CONFIG SET timeout -1"),
        "-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be \
         between 0 and 2147483647 inclusive\r\n"
    );
    assert_eq!(
        admin.line("CONFIG SET timeout 2147483648"),
        "-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be \
         between 0 and 2147483647 inclusive\r\n"
    );
    // Connections opened before the change are held to it too.
    let mut idle = Raw::to(&cl, node);
    assert_eq!(idle.line("PING"), "+PONG\r\n");
    let mut sub = Raw::to(&cl, node);
    assert_eq!(
        sub.line("SUBSCRIBE news"),
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
    );
    let mut blocked = Raw::to(&cl, node);
    blocked.line("DEL {q}list");
    blocked.send(&["BLPOP", "{q}list", "0"]);
    assert_eq!(admin.line("CONFIG SET timeout 1"), "+OK\r\n");
    assert_eq!(
        admin.line("CONFIG GET timeout"),
        "*2\r\n$7\r\ntimeout\r\n$1\r\n1\r\n"
    );
    let started = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "the idle client was not closed"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // The admin client was as idle: a new one keeps talking, each request restarting
    // its idle time, for longer than the limit.
    let mut admin = Raw::to(&cl, node);
    let talk_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < talk_until {
        assert_eq!(admin.line("PING"), "+PONG\r\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The subscriber and the blocked client were idle as long, and are still served.
    assert_eq!(admin.line("PUBLISH news hello"), ":1\r\n");
    assert_eq!(
        sub.value(),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    assert_eq!(admin.line("RPUSH {q}list v"), ":1\r\n");
    assert_eq!(blocked.value(), "*2\r\n$7\r\n{q}list\r\n$1\r\nv\r\n");
    // Back to 0: a client may stay idle again.
    assert_eq!(admin.line("CONFIG SET timeout 0"), "+OK\r\n");
    let mut quiet = Raw::to(&cl, node);
    assert_eq!(quiet.line("PING"), "+PONG\r\n");
    assert!(!closed_within(&mut quiet, Duration::from_millis(1500)));
    assert_eq!(quiet.line("PING"), "+PONG\r\n");
}

#[test]
fn request_timeout_set_at_run_time_bounds_a_read_without_quorum() {
    let mut cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let mut c = Raw::to(&cl, leader);
    let get = "*2\r\n$18\r\nrequest-timeout-ms\r\n";
    assert_eq!(
        c.line("CONFIG GET request-timeout-ms"),
        format!("{get}$5\r\n10000\r\n")
    );
    assert_eq!(
        c.line("CONFIG SET request-timeout-ms 0"),
        "-ERR CONFIG SET failed (possibly related to argument 'request-timeout-ms') - argument \
         must be between 1 and 9223372036854775807 inclusive\r\n"
    );
    assert_eq!(c.line("CONFIG SET request-timeout-ms 300"), "+OK\r\n");
    assert_eq!(
        c.line("CONFIG GET request-timeout-ms"),
        format!("{get}$3\r\n300\r\n")
    );
    assert_eq!(c.line("SET k v"), "+OK\r\n");
    // Both followers gone: the leader cannot confirm a read index. With the start-up
    // limit (10 s) the read would wait that long; with 300 ms it gives up at once.
    for i in (0..3).filter(|&i| i != leader) {
        cl.kill(i);
    }
    let started = Instant::now();
    let reply = c.line("GET k");
    let took = started.elapsed();
    assert!(reply.starts_with("-TRYAGAIN"), "{reply}");
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
}
