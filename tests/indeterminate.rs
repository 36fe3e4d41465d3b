//! A write whose fate a node cannot know is answered as such and never retried.
//!
//! Found by chaos seed 30007: a leader cut off from its followers' acks had proposed an
//! INCR that reached one follower; that follower became leader, committed it, compacted
//! its log, and caught the old leader up with a snapshot. The old leader then told the
//! waiting proposal "dropped" (certainly not applied), and the server retried it: one
//! client INCR applied twice. This test replays that sequence with the chaos harness's
//! link proxies (`chaos::cluster`): the INCR must either return 1 or answer `-UNCERTAIN`
//! (the word for an unknown outcome, which no cluster client retries, unlike `-TRYAGAIN`),
//! and the counter must end at 1. A second test drives a timed-out write (proposed by an
//! isolated leader, and forwarded to it by a follower) and checks the reply word.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaos::client;
use chaos::cluster::{Cluster, NodeOptions};
use chaos::proxy::LinkState;

async fn query(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = client::connect(port, Duration::from_secs(60))
        .await
        .expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut c).await
}

/// `-UNCERTAIN ...; it may or may not have taken effect`.
fn is_uncertain(e: &redis::RedisError) -> bool {
    e.code() == Some("UNCERTAIN") && e.to_string().contains("may or may not have taken effect")
}

/// Polls until node `port` says it leads.
async fn wait_role(port: u16, role: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(info) = client::info_raft(port).await {
            if info.get("raft_role").map(String::as_str) == Some(role) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node on {port} never became {role}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn write_caught_up_by_snapshot_is_not_retried() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(scenario());
}

async fn scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_raftkv")),
        tick_ms: 50,
        log_level: "info".into(),
        // Compaction only when asked; a proposal may wait long enough for all the steps.
        extra: ["--snapshot-entries", "0", "--request-timeout-ms", "60000"]
            .map(String::from)
            .to_vec(),
    };
    let cl = Cluster::start(3, dir.path(), opts).await.expect("cluster");
    let ports = cl.ports();
    let leader = chaos::schedule::wait_leader(&ports, Duration::from_secs(30))
        .await
        .expect("leader") as usize
        - 1;
    let (a, b) = match leader {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    // The leader's appends reach A only, and nobody's replies reach the leader: it
    // cannot commit, steps down (check-quorum), and A, holding the entry, wins.
    cl.links.cut(
        &[(a, leader), (b, leader), (leader, b)],
        LinkState::Blackhole,
    );
    let incr = tokio::spawn(query(ports[leader], &["INCR", "ctr"]));
    wait_role(ports[a], "leader", Duration::from_secs(30)).await;
    let v = query(ports[a], &["GET", "ctr"]).await.expect("GET on A");
    assert_eq!(
        v,
        redis::Value::BulkString(b"1".to_vec()),
        "A committed the INCR"
    );
    // Compact A's log past the INCR, so the old leader can only catch up by snapshot.
    for i in 0..10 {
        query(ports[a], &["SET", &format!("k{i}"), "v"])
            .await
            .expect("SET on A");
    }
    let snap = query(ports[a], &["RAFT.SNAPSHOT"]).await.expect("snapshot");
    assert!(matches!(snap, redis::Value::Int(i) if i > 0), "{snap:?}");
    cl.links.heal_all();
    let reply = tokio::time::timeout(Duration::from_secs(60), incr)
        .await
        .expect("the INCR was answered")
        .expect("task");
    eprintln!("INCR on the old leader answered {reply:?}");
    match &reply {
        Ok(redis::Value::Int(1)) => {}
        Err(e) if is_uncertain(e) => {}
        other => panic!("INCR on the old leader: {other:?} (retried after its fate was unknown?)"),
    }
    // Every node ends with the counter at exactly 1.
    for &p in &ports {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match query(p, &["GET", "ctr"]).await {
                Ok(v) => {
                    assert_eq!(v, redis::Value::BulkString(b"1".to_vec()), "node on {p}");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "GET on {p}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[test]
fn write_timed_out_after_proposing_answers_uncertain() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(timed_out_write());
}

async fn timed_out_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = NodeOptions {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_raftkv")),
        tick_ms: 200,
        log_level: "info".into(),
        // Much shorter than an election (10 ticks): the isolated leader still leads when the
        // write times out.
        extra: ["--request-timeout-ms", "400"].map(String::from).to_vec(),
    };
    let cl = Cluster::start(3, dir.path(), opts).await.expect("cluster");
    let ports = cl.ports();
    let leader = chaos::schedule::wait_leader(&ports, Duration::from_secs(30))
        .await
        .expect("leader") as usize
        - 1;
    let follower = (leader + 1) % 3;
    query(ports[leader], &["SET", "warm", "up"])
        .await
        .expect("SET before the cut");
    // The follower's forwarding connection is up; now nothing reaches the leader or leaves
    // it, so its proposals cannot commit.
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let cut: Vec<(usize, usize)> = others
        .iter()
        .flat_map(|&o| [(o, leader), (leader, o)])
        .collect();
    cl.links.cut(&cut, LinkState::Blackhole);
    let on_leader = query(ports[leader], &["INCR", "ctr"]).await;
    eprintln!("INCR on the isolated leader answered {on_leader:?}");
    match &on_leader {
        Err(e) => assert!(is_uncertain(e), "{e}"),
        Ok(v) => panic!("INCR on an isolated leader succeeded: {v:?}"),
    }
    let via_follower = query(ports[follower], &["INCR", "ctr"]).await;
    eprintln!("INCR through a follower answered {via_follower:?}");
    match &via_follower {
        // The forwarded request reached the leader (or may have): unknown.
        Err(e) if e.code() == Some("UNCERTAIN") => assert!(is_uncertain(e), "{e}"),
        // Or the follower saw the leader gone before sending it: certainly not applied.
        Err(e) if chaos::client::certainly_not_applied(e) => {}
        other => panic!("INCR through a follower of an isolated leader: {other:?}"),
    }
    cl.links.heal_all();
    // Neither INCR was retried behind the client's back: the counter is at most 2, and
    // never more than the number of INCRs sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match query(ports[follower], &["GET", "ctr"]).await {
            Ok(redis::Value::Nil) => break,
            Ok(redis::Value::BulkString(b)) => {
                let n: i64 = String::from_utf8_lossy(&b).parse().expect("integer");
                assert!((1..=2).contains(&n), "counter {n}");
                break;
            }
            other => assert!(Instant::now() < deadline, "GET: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
