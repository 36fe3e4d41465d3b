//! Fail-stop on storage errors (issue #4): a full disk (a small tmpfs) and a failing fsync
//! (an LD_PRELOAD shim) stop the node instead of acknowledging writes it could not make
//! durable.

use super::*;

/// Unmounts (lazily) a tmpfs on drop.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Fail-stop (issue #4 item 7): node 3's data dir is a small tmpfs. With node 2 down,
/// every commit needs node 3's disk. Filling the tmpfs must make node 3 exit non-zero;
/// after that no write is acknowledged, and once node 2 is back every acknowledged write
/// is readable and the cluster serves again.
#[test]
fn full_disk_stops_the_node_instead_of_acknowledging() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let mut cl = Cluster::start_with(3, &["--request-timeout-ms", "3000"]);
    cl.wait_leader();
    // Move node 3's data onto a 32 MiB tmpfs.
    cl.kill(2);
    let dir = cl.nodes[2].data_dir.clone();
    let saved = dir.with_extension("saved");
    std::fs::rename(&dir, &saved).expect("move data dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let ok = Process::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("run mount");
    assert!(ok.success(), "mount tmpfs (running as root)");
    let _mount = Tmpfs(dir.clone());
    let ok = Process::new("cp")
        .arg("-a")
        .arg(format!("{}/.", saved.display()))
        .arg(&dir)
        .status()
        .expect("run cp");
    assert!(ok.success(), "copy data dir onto tmpfs");
    cl.restart(2);
    cl.wait_leader();
    cl.kill(1);

    // Write 256 KiB values through node 1 until a write fails; node 3 must exit.
    let value = vec![b'x'; 256 * 1024];
    let mut acked = Vec::new();
    let mut c = cl.client(0);
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        assert!(Instant::now() < deadline, "node 3 never failed");
        if let Some(st) = cl.try_wait(2) {
            break st;
        }
        let key = format!("fill{}", acked.len());
        match redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .query::<String>(&mut c)
        {
            Ok(_) => acked.push(key),
            Err(e) => {
                eprintln!("write after {} acks failed: {e}", acked.len());
                // The failure must be node 3 stopping, not a lost ack.
                let st = wait_for(Duration::from_secs(10), "node 3 to exit", || cl.try_wait(2));
                break st;
            }
        }
    };
    eprintln!(
        "node 3 exited with {status} after {} acked writes",
        acked.len()
    );
    assert!(!status.success(), "node 3 must exit non-zero: {status}");
    assert!(
        acked.len() > 4,
        "the tmpfs held only {} writes",
        acked.len()
    );
    // The reason is logged with crit! just before exit(1); slog-async may not flush it
    // (reported in docs/verification.md), so it is shown, not asserted.
    let log = std::fs::read_to_string(&cl.nodes[2].log).unwrap_or_default();
    eprintln!(
        "node 3 log names the failure: {}",
        log.lines()
            .rev()
            .find(|l| l.contains("stopping") || l.contains("space"))
            .unwrap_or("NO (message lost)")
    );
    // Node 1 alone is no majority: nothing more is acknowledged.
    let mut c = cl.client(0);
    let r = redis::cmd("SET")
        .arg("after-failure")
        .arg("x")
        .query::<String>(&mut c);
    assert!(r.is_err(), "write acknowledged without a majority: {r:?}");
    // Node 2 back: nodes 1 and 2 serve, with every acknowledged write.
    cl.restart(1);
    let leader = cl.wait_leader();
    let mut c = cl.client(leader);
    // The new leader first replicates the whole log to node 2 (and commits an entry of its
    // term) before it serves reads: retry -TRYAGAIN until then.
    for k in &acked {
        let v: Option<Vec<u8>> = wait_for(Duration::from_secs(30), "a read", || {
            redis::cmd("GET").arg(k).query(&mut c).ok()
        });
        assert_eq!(v.as_deref().map(<[u8]>::len), Some(value.len()), "{k} lost");
    }
    let _: () = redis::cmd("SET")
        .arg("after-recovery")
        .arg("y")
        .query(&mut c)
        .expect("write with nodes 1 and 2");
    assert_alive(cl.port(0));
}

/// Builds the LD_PRELOAD shim `tests/fault_shim/fail_sync.c` with the system C compiler;
/// `None` (the test is skipped) when there is no compiler.
fn build_sync_shim(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fault_shim/fail_sync.c");
    let out = dir.join("libfailsync.so");
    let built = Process::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    built.then_some(out)
}

/// Fail-stop on sync errors: node 3 runs with the shim that makes fsync / fdatasync /
/// sync_file_range fail with EIO once a trigger file exists. With node 2 down, every
/// commit needs node 3's log sync. After the trigger, no write may be acknowledged, node 3
/// must exit non-zero and say why, and once node 2 is back every acknowledged write is
/// readable. `node3_leads` puts node 3 in the leader's seat (its own log sync fails) or
/// in a follower's (its append never gets acked).
fn sync_error_stops_the_node(node3_leads: bool) {
    let mut cl = Cluster::start_with(3, &["--request-timeout-ms", "3000"]);
    let Some(shim) = build_sync_shim(cl.dir.path()) else {
        eprintln!("SKIPPED: no C compiler (cc) to build the fault shim");
        return;
    };
    let trigger = cl.dir.path().join("fail-syncs-now");
    cl.nodes[2].env = vec![
        ("LD_PRELOAD".into(), shim.display().to_string()),
        (
            "RAFTKV_FAULT_SYNC_TRIGGER".into(),
            trigger.display().to_string(),
        ),
    ];
    cl.restart(2);
    let leader = cl.wait_leader();
    let want = if node3_leads { 2 } else { 0 };
    if leader != want {
        let _: String = redis::cmd("RAFT.TRANSFER-LEADER")
            .arg(want + 1)
            .query(&mut cl.client(leader))
            .expect("transfer leadership");
    }
    wait_for(Duration::from_secs(10), "the chosen leader", || {
        (cl.wait_leader() == want).then_some(())
    });
    cl.kill(1);
    let mut c = cl.client(0);
    let mut acked = Vec::new();
    for i in 0..20 {
        let key = format!("before{i}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(i)
            .query(&mut c)
            .expect("write with nodes 1 and 3");
        acked.push(key);
    }
    std::fs::write(&trigger, b"").expect("create trigger");
    let failed_at = Instant::now();
    // Nothing is acknowledged from now on: every commit needs node 3's failing sync.
    let mut exited = None;
    for i in 0..3 {
        let r = redis::cmd("SET")
            .arg(format!("after{i}"))
            .arg(i)
            .query::<String>(&mut c);
        assert!(
            r.is_err(),
            "write acknowledged after the sync failure: {r:?}"
        );
        eprintln!("write {i} after the trigger: {}", r.unwrap_err());
        exited = cl.try_wait(2);
        if exited.is_some() {
            break;
        }
    }
    let status = match exited {
        Some(st) => st,
        None => wait_for(Duration::from_secs(20), "node 3 to exit", || cl.try_wait(2)),
    };
    eprintln!(
        "node 3 exited with {status} {} ms after the trigger",
        failed_at.elapsed().as_millis()
    );
    assert!(!status.success(), "node 3 must exit non-zero: {status}");
    let log = std::fs::read_to_string(&cl.nodes[2].log).unwrap_or_default();
    let why = log
        .lines()
        .rev()
        .find(|l| l.contains("CRIT"))
        .unwrap_or("")
        .to_string();
    eprintln!("node 3 says: {why}");
    assert!(
        why.contains("stopping") || why.contains("fatal"),
        "node 3 did not log why it stopped: {why:?}"
    );
    // Nodes 1 and 2 serve again, with every acknowledged write.
    cl.restart(1);
    let leader = cl.wait_leader();
    let mut c = cl.client(leader);
    for k in &acked {
        let v: Option<String> = wait_for(Duration::from_secs(30), "a read", || {
            redis::cmd("GET").arg(k).query(&mut c).ok()
        });
        assert!(v.is_some(), "{k} lost");
    }
    let _: () = redis::cmd("SET")
        .arg("after-recovery")
        .arg("y")
        .query(&mut c)
        .expect("write with nodes 1 and 2");
    assert_alive(cl.port(leader));
}

#[test]
fn sync_error_on_a_follower_stops_it_instead_of_acknowledging() {
    sync_error_stops_the_node(false);
}

#[test]
fn sync_error_on_the_leader_stops_it_instead_of_acknowledging() {
    sync_error_stops_the_node(true);
}
