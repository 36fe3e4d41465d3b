//! Pub/Sub and keyspace notifications on a real 3-node cluster: a message published on
//! node 1 reaches channel and pattern subscribers on nodes 2 and 3 (RESP2 through the redis
//! crate's PubSub, RESP3 push frames on a raw connection), PUBLISH counts the serving
//! node's receivers, subscribe mode's replies and errors on the wire as Redis 7.0 sends
//! them (and PUBLISH in MULTI, RESET), a subscriber that never reads is disconnected while the node's memory stays
//! bounded, and keyspace events of writes on node 1 (and an expiry) are seen on every node.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::{wait_for, Cluster};

/// The wire text of an array (`*`) or push (`>`) of bulks and integers (`:n`).
fn frame(kind: char, parts: &[&str]) -> String {
    let mut s = format!("{kind}{}\r\n", parts.len());
    for p in parts {
        match p.strip_prefix(':') {
            Some(n) if n.parse::<i64>().is_ok() => s.push_str(&format!(":{n}\r\n")),
            _ if *p == "(nil)" => s.push_str("$-1\r\n"),
            _ => s.push_str(&format!("${}\r\n{p}\r\n", p.len())),
        }
    }
    s
}

fn int(c: &mut redis::Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).expect("command")
}

/// Next message of a PubSub connection within `d`: (channel, payload).
fn next_message(ps: &mut redis::PubSub<'_>, d: Duration) -> Option<(String, String)> {
    ps.set_read_timeout(Some(d)).ok()?;
    let m = ps.get_message().ok()?;
    Some((m.get_channel_name().to_string(), m.get_payload().ok()?))
}

/// Publishes on node 1 until the subscriber gets the message (the first publish may beat
/// the peer link's connect); what it got.
fn publish_until_seen(
    publisher: &mut redis::Connection,
    ps: &mut redis::PubSub<'_>,
    channel: &str,
    payload: &str,
) -> (String, String) {
    wait_for(Duration::from_secs(15), "the published message", || {
        assert_eq!(int(publisher, &["PUBLISH", channel, payload]), 0);
        // Late copies of an earlier test message may still arrive first: skipped.
        loop {
            match next_message(ps, Duration::from_millis(300)) {
                Some(m) if m.1 == payload => return Some(m),
                Some(_) => continue,
                None => return None,
            }
        }
    })
}

#[test]
fn messages_published_on_one_node_reach_subscribers_on_every_node() {
    let cl = Cluster::start(3);
    let mut publisher = cl.client(0);
    let mut c3 = cl.client(2);
    let mut ps3 = c3.as_pubsub();
    ps3.subscribe("news").unwrap();
    let (ch, msg) = publish_until_seen(&mut publisher, &mut ps3, "news", "hello");
    assert_eq!((ch.as_str(), msg.as_str()), ("news", "hello"));

    // A pattern subscriber on node 2 sees the same channel, a non-matching one does not.
    let mut c2 = cl.client(1);
    let mut ps2 = c2.as_pubsub();
    ps2.psubscribe("ne*").unwrap();
    let (ch, msg) = publish_until_seen(&mut publisher, &mut ps2, "news", "again");
    assert_eq!((ch.as_str(), msg.as_str()), ("news", "again"));
    // Node 3's subscriber got every "again" sent while node 2 connected: drain them.
    while let Some((_, m)) = next_message(&mut ps3, Duration::from_millis(300)) {
        assert!(m == "again" || m == "hello", "{m}");
    }
    // Node 2's too (the last "again" may still have been on its way).
    while let Some((_, m)) = next_message(&mut ps2, Duration::from_millis(300)) {
        assert!(m == "again" || m == "hello", "{m}");
    }
    assert_eq!(int(&mut publisher, &["PUBLISH", "other", "x"]), 0);
    assert_eq!(next_message(&mut ps2, Duration::from_millis(500)), None);

    // PUBLISH counts the serving node's receivers: a channel and a pattern subscriber on
    // node 3 are two; node-local PUBSUB counts too.
    let mut c3b = cl.client(2);
    let mut ps3b = c3b.as_pubsub();
    ps3b.psubscribe("n*").unwrap();
    let mut q3 = cl.client(2);
    wait_for(Duration::from_secs(5), "pattern registered", || {
        (int(&mut q3, &["PUBSUB", "NUMPAT"]) == 1).then_some(())
    });
    assert_eq!(int(&mut q3, &["PUBLISH", "news", "local"]), 2);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .arg("none")
        .query(&mut q3)
        .unwrap();
    assert_eq!(
        numsub,
        vec![
            redis::Value::BulkString(b"news".to_vec()),
            redis::Value::Int(1),
            redis::Value::BulkString(b"none".to_vec()),
            redis::Value::Int(0),
        ]
    );
    let chans: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").query(&mut q3).unwrap();
    assert_eq!(chans, vec!["news".to_string()]);
    // CLIENT LIST shows each subscriber's counts, flagged P.
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut q3).unwrap();
    let has = |counts: &str| {
        list.lines()
            .any(|l| l.contains("flags=P") && l.contains(counts))
    };
    assert!(
        has(" sub=1 psub=0 ssub=0 ") && has(" sub=0 psub=1 ssub=0 "),
        "{list}"
    );
    let subs: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut q3)
        .unwrap();
    assert_eq!(subs.lines().count(), 2, "{subs}");
    // Node-local, as in Redis Cluster: node 1 has no subscribers.
    assert_eq!(int(&mut publisher, &["PUBSUB", "NUMPAT"]), 0);
}

#[test]
fn resp3_subscribers_get_push_frames_and_shard_channels_reach_other_nodes() {
    let cl = Cluster::start(3);
    let mut sub = Raw::to(&cl, 2);
    assert!(sub.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "ch"]),
        frame('>', &["subscribe", "ch", ":1"])
    );
    assert_eq!(sub.cmd(&["GET", "nothing"]), "_\r\n");
    assert_eq!(sub.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(
        sub.cmd(&["PUBSUB", "NUMSUB", "ch"]),
        frame('*', &["ch", ":1"])
    );
    let got = published_until_read(&cl, &mut sub, "PUBLISH", "ch", "pushed");
    assert_eq!(got, frame('>', &["message", "ch", "pushed"]));

    // A shard channel, RESP2, on node 2: SPUBLISH on node 1 reaches it as `smessage`.
    let mut shard = Raw::to(&cl, 1);
    assert_eq!(
        shard.cmd(&["SSUBSCRIBE", "{t}s"]),
        frame('*', &["ssubscribe", "{t}s", ":1"])
    );
    let got = published_until_read(&cl, &mut shard, "SPUBLISH", "{t}s", "sharded");
    assert_eq!(got, frame('*', &["smessage", "{t}s", "sharded"]));
}

/// Publishes (`verb` channel payload) on node 1 every 100 ms until `sub` reads a value (the
/// peer link connects on first use); that value.
fn published_until_read(
    cl: &Cluster,
    sub: &mut Raw,
    verb: &'static str,
    channel: &'static str,
    payload: &'static str,
) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let port = cl.port(0);
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut p = common::try_client(port).expect("node 1");
            while !stop.load(Ordering::Relaxed) {
                let n: i64 = redis::cmd(verb)
                    .arg(channel)
                    .arg(payload)
                    .query(&mut p)
                    .unwrap();
                assert_eq!(n, 0, "node 1 has no subscribers");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let got = sub.value();
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    got
}

#[test]
fn subscribe_mode_replies_and_errors_match_redis() {
    let cl = Cluster::start(3);
    let mut c = Raw::to(&cl, 0);
    assert_eq!(
        c.cmd(&["UNSUBSCRIBE"]),
        frame('*', &["unsubscribe", "(nil)", ":0"])
    );
    c.send(&["SUBSCRIBE", "a", "b"]);
    assert_eq!(c.value(), frame('*', &["subscribe", "a", ":1"]));
    assert_eq!(c.value(), frame('*', &["subscribe", "b", ":2"]));
    assert_eq!(c.cmd(&["PING"]), frame('*', &["pong", ""]));
    assert_eq!(c.cmd(&["PING", "x"]), frame('*', &["pong", "x"]));
    assert_eq!(
        c.cmd(&["GET", "x"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        c.cmd(&["PUBLISH", "a", "m"]),
        "-ERR Can't execute 'publish': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        c.cmd(&["PSUBSCRIBE", "p*"]),
        frame('*', &["psubscribe", "p*", ":3"])
    );
    c.send(&["SSUBSCRIBE", "{s}1", "{s}2"]);
    assert_eq!(c.value(), frame('*', &["ssubscribe", "{s}1", ":1"]));
    assert_eq!(c.value(), frame('*', &["ssubscribe", "{s}2", ":2"]));
    assert!(c.cmd(&["SSUBSCRIBE", "x", "y"]).starts_with("-CROSSSLOT"));
    assert_eq!(
        c.cmd(&["UNSUBSCRIBE", "a"]),
        frame('*', &["unsubscribe", "a", ":2"])
    );
    assert_eq!(
        c.cmd(&["PUNSUBSCRIBE"]),
        frame('*', &["punsubscribe", "p*", ":1"])
    );
    assert_eq!(
        c.cmd(&["UNSUBSCRIBE"]),
        frame('*', &["unsubscribe", "b", ":0"])
    );
    c.send(&["SUNSUBSCRIBE"]);
    assert_eq!(c.value(), frame('*', &["sunsubscribe", "{s}1", ":1"]));
    assert_eq!(c.value(), frame('*', &["sunsubscribe", "{s}2", ":0"]));
    // Out of subscribe mode: every command again.
    assert_eq!(c.cmd(&["GET", "x"]), "$-1\r\n");
    assert_eq!(c.cmd(&["PUBLISH", "a", "m"]), ":0\r\n");
    assert_eq!(
        c.cmd(&["PUBSUB", "NUMPAT", "x"]),
        "-ERR wrong number of arguments for 'pubsub|numpat' command\r\n"
    );
    // PUBLISH runs inside MULTI; RESET leaves subscribe mode.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["PUBLISH", "a", "m"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n:0\r\n");
    assert_eq!(
        c.cmd(&["PSUBSCRIBE", "q*"]),
        frame('*', &["psubscribe", "q*", ":1"])
    );
    assert_eq!(c.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd(&["GET", "x"]), "$-1\r\n");
    assert_eq!(c.cmd(&["PUBSUB", "NUMPAT"]), ":0\r\n");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn stat(c: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    let cl = Cluster::start(3);
    let pid = cl.pid(2).expect("node 3 runs");
    let mut admin = cl.client(2);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 4mb 0 0")
        .query::<()>(&mut admin)
        .unwrap();
    let conf: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query(&mut admin)
        .unwrap();
    assert!(conf[1].ends_with("pubsub 4194304 0 0"), "{conf:?}");
    // A raw subscriber that reads its confirmation and then nothing more.
    let mut lazy = Raw::to(&cl, 2);
    assert_eq!(
        lazy.cmd(&["SUBSCRIBE", "flood"]),
        frame('*', &["subscribe", "flood", ":1"])
    );
    let before = rss_kib(pid);
    let payload = "x".repeat(256 << 10);
    let mut publisher = cl.client(0);
    // 1 GiB published in all, from node 1 through the peer link, while node 3 must drop
    // the subscriber after ~4 MiB plus the socket buffers.
    let mut peak = before;
    let mut sent = 0usize;
    while sent < 4096 && stat(&mut admin, "client_output_buffer_limit_disconnections") == 0 {
        let mut pipe = redis::pipe();
        for _ in 0..16 {
            pipe.cmd("PUBLISH").arg("flood").arg(&payload).ignore();
        }
        pipe.query::<()>(&mut publisher).unwrap();
        sent += 16;
        peak = peak.max(rss_kib(pid));
    }
    wait_for(
        Duration::from_secs(20),
        "the subscriber's disconnection",
        || (stat(&mut admin, "client_output_buffer_limit_disconnections") == 1).then_some(()),
    );
    wait_for(Duration::from_secs(10), "its subscription to go", || {
        let n: (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("flood")
            .query(&mut admin)
            .unwrap();
        (n.1 == 0).then_some(())
    });
    peak = peak.max(rss_kib(pid));
    eprintln!("published {sent} messages of 256 KiB; node 3 RSS {before} KiB -> peak {peak} KiB");
    assert!(
        peak < before + 256 * 1024,
        "node 3 grew from {before} KiB to {peak} KiB"
    );
    // The subscriber's socket is closed: after what was buffered, end of stream.
    lazy.0
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    assert!(
        lazy.0.read_to_end(&mut sink).is_ok(),
        "connection not closed"
    );
    let pong: String = redis::cmd("PING").query(&mut admin).unwrap();
    assert_eq!(pong, "PONG");
}

/// Collects `want` (channel, payload) pairs from a subscriber, in any order, within 15 s.
fn expect_events(ps: &mut redis::PubSub<'_>, want: &[(&str, &str)]) {
    let mut missing: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !missing.is_empty() && Instant::now() < deadline {
        if let Some(m) = next_message(ps, Duration::from_millis(300)) {
            missing.retain(|w| *w != m);
        }
    }
    assert!(missing.is_empty(), "events never seen: {missing:?}");
}

#[test]
fn keyspace_notifications_are_seen_on_every_node() {
    // Three groups: the keys below live in all of them (slots of b: 3300, k: 7629, l and
    // h: 11562 and 11694), and every node hosts every group.
    let cl = Cluster::start_with(3, &["--groups", "3"]);
    let mut conns: Vec<redis::Connection> = (0..3).map(|i| cl.client(i)).collect();
    for c in conns.iter_mut() {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("KEA")
            .query::<()>(c)
            .unwrap();
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(c)
            .unwrap();
        assert_eq!(v, vec!["notify-keyspace-events", "AKE"]);
    }
    let mut subs: Vec<redis::Connection> = (0..3).map(|i| cl.client(i)).collect();
    let mut pss: Vec<redis::PubSub<'_>> = subs.iter_mut().map(|c| c.as_pubsub()).collect();
    for ps in pss.iter_mut() {
        ps.psubscribe("__key*__:*").unwrap();
    }
    let w = &mut conns[0];
    redis::cmd("SET").arg("k").arg("v").query::<()>(w).unwrap();
    assert_eq!(int(w, &["DEL", "k"]), 1);
    assert_eq!(int(w, &["LPUSH", "l", "a"]), 1);
    assert_eq!(int(w, &["EXPIRE", "l", "100"]), 1);
    assert_eq!(int(w, &["HSET", "h", "f", "v"]), 1);
    assert_eq!(int(w, &["SADD", "b", "m"]), 1);
    for ps in pss.iter_mut() {
        expect_events(
            ps,
            &[
                ("__keyspace@0__:k", "set"),
                ("__keyevent@0__:set", "k"),
                ("__keyspace@0__:k", "del"),
                ("__keyevent@0__:del", "k"),
                ("__keyevent@0__:lpush", "l"),
                ("__keyspace@0__:l", "expire"),
                ("__keyevent@0__:hset", "h"),
                ("__keyspace@0__:b", "sadd"),
            ],
        );
    }
}

#[test]
fn expired_event_is_raised_on_a_follower() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    let mut f = cl.client(follower);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Ex")
        .query::<()>(&mut f)
        .unwrap();
    let mut sc = cl.client(follower);
    let mut ps = sc.as_pubsub();
    ps.subscribe("__keyevent@0__:expired").unwrap();
    let mut w = cl.client(leader);
    redis::cmd("SET")
        .arg("soon")
        .arg("v")
        .arg("PX")
        .arg("300")
        .query::<()>(&mut w)
        .unwrap();
    expect_events(&mut ps, &[("__keyevent@0__:expired", "soon")]);
}
