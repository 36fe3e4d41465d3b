//! A paused leader never serves a stale read, with `--read-mode lease` too (issue #9 item 5).
//!
//! raft-rs 0.7's `LeaseBased` read option answers ReadIndex from the leader's commit index
//! without checking any lease. Replayed with the chaos harness: the leader is SIGSTOPped
//! and cut off (link proxies), the others elect a new leader and acknowledge a new value, a
//! read is sent to the old leader while it is stopped, and it resumes still cut off, so it
//! still believes it leads. The read must not return the old value (it may fail, or
//! return the new value once the links heal).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaos::client;
use chaos::cluster::{Cluster, NodeOptions};
use chaos::proxy::LinkState;
use redis::Value;

async fn query(port: u16, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = client::connect(port, Duration::from_secs(60))
        .await
        .expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut c).await
}

async fn wait_leader_among(ports: &[u16], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        for (i, &p) in ports.iter().enumerate() {
            if let Some(info) = client::info_raft(p).await {
                if info.get("raft_role").map(String::as_str) == Some("leader") {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader among {ports:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_paused_leader_never_serves_the_old_value_in_lease_mode() {
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
        extra: ["--read-mode", "lease", "--request-timeout-ms", "5000"]
            .map(String::from)
            .to_vec(),
    };
    let mut cl = Cluster::start(3, dir.path(), opts).await.expect("cluster");
    let ports = cl.ports();
    let old = wait_leader_among(&ports, Duration::from_secs(30)).await;
    query(ports[old], &["SET", "k", "old"])
        .await
        .expect("SET old");
    // The client connects before the pause: its request waits in the socket until resume.
    let mut conn = client::connect(ports[old], Duration::from_secs(60))
        .await
        .expect("connect to the leader");
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    cl.pause(old);
    let mut cut = Vec::new();
    for &o in &others {
        cut.push((old, o));
        cut.push((o, old));
    }
    cl.links.cut(&cut, LinkState::Blackhole);
    let other_ports: Vec<u16> = others.iter().map(|&i| ports[i]).collect();
    let new = others[wait_leader_among(&other_ports, Duration::from_secs(30)).await];
    let set = query(ports[new], &["SET", "k", "new"]).await;
    assert_eq!(
        set,
        Ok(Value::Okay),
        "the new leader acknowledges the new value"
    );
    let read = tokio::spawn(async move {
        redis::cmd("GET")
            .arg("k")
            .query_async::<Value>(&mut conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // the GET reaches the socket
    cl.resume(old);
    // Still cut off: the old leader believes it leads until check-quorum says otherwise.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cl.links.heal_all();
    let reply = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the read was answered")
        .expect("task");
    eprintln!("GET on the paused-then-resumed leader: {reply:?}");
    match &reply {
        Ok(Value::BulkString(v)) => assert_eq!(v, b"new", "stale read"),
        Ok(other) => panic!("unexpected reply {other:?}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                redis::ErrorKind::TryAgain | redis::ErrorKind::ClusterDown
            ),
            "{e}"
        ),
    }
}
