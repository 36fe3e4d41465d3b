//! Shared integration-test harness: starts real `raftkv` processes on 127.0.0.1 ephemeral
//! ports with temporary data dirs, waits for a leader with a deadline, kills / restarts /
//! pauses nodes, and kills every child on drop so no test leaks a process.

#![allow(dead_code)]

pub mod python;
pub mod raw;
pub mod shards;

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Picks a free loopback port (bound then released). Ports come from below Linux's
/// ephemeral range (32768+), so an outgoing connection of a running node cannot take the
/// port between this check and the node binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = 12_000u16;
    let base = 20_000 + (std::process::id() % span as u32) as u16;
    for _ in 0..span {
        let off = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = 20_000 + (base - 20_000 + off) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One node process.
pub struct Node {
    pub id: u64,
    pub redis_port: u16,
    pub raft_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Redis port of the member a joining node asks to be added through.
    pub join: Option<u16>,
    /// Extra environment variables for this node's process (from its next start).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    paused: bool,
}

/// Clusters in one test binary run one at a time: parallel 3-node clusters on a 2-core
/// machine with fast election timers would make elections flap.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running test cluster.
pub struct Cluster {
    _turn: std::sync::MutexGuard<'static, ()>,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    cluster_arg: String,
    extra_args: Vec<String>,
    /// Password clients authenticate with (`--requirepass`), if any.
    pub password: Option<String>,
}

impl Cluster {
    /// Starts an `n`-node cluster with fast Raft ticks.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, &[])
    }

    /// Starts an `n`-node cluster with extra flags for every node.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Self::start_without(n, extra, &[])
    }

    /// As [`Cluster::start_with`], but the founders in `absent` (0-based) are not started
    /// (start them later with [`Cluster::spawn_node`]).
    pub fn start_without(n: usize, extra: &[&str], absent: &[usize]) -> Cluster {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().expect("tempdir");
        let raft_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let cluster_arg = raft_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..n)
            .map(|i| Node {
                id: i as u64 + 1,
                redis_port: free_port(),
                raft_port: raft_ports[i],
                data_dir: dir.path().join(format!("node{}", i + 1)),
                log: dir.path().join(format!("node{}.log", i + 1)),
                join: None,
                env: Vec::new(),
                child: None,
                paused: false,
            })
            .collect();
        let mut c = Cluster {
            _turn: turn,
            nodes,
            dir,
            cluster_arg,
            password: extra
                .windows(2)
                .find(|w| w[0] == "--requirepass")
                .map(|w| w[1].to_string()),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in (0..n).filter(|i| !absent.contains(i)) {
            c.spawn(i);
        }
        for i in (0..n).filter(|i| !absent.contains(i)) {
            c.wait_serving(i);
        }
        c
    }

    /// Starts node `i` with its usual flags without waiting for it to listen (it may be
    /// expected to refuse to start).
    pub fn spawn_node(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open node log");
        let membership = match node.join {
            None => vec!["--cluster".to_string(), self.cluster_arg.clone()],
            Some(via) => vec![
                "--join".to_string(),
                format!("127.0.0.1:{via}"),
                "--peer-addr".to_string(),
                format!("127.0.0.1:{}", node.raft_port),
            ],
        };
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(membership)
            .args([
                "--id",
                &node.id.to_string(),
                "--port",
                &node.redis_port.to_string(),
                "--data-dir",
                node.data_dir.to_str().expect("utf8 path"),
                "--tick-ms",
                "20",
            ])
            // Debug logs unless the test chose a level (clap refuses a repeated flag).
            .args(
                (!self.extra_args.iter().any(|a| a == "--log-level"))
                    .then_some(["--log-level", "debug"])
                    .into_iter()
                    .flatten(),
            )
            // One data group unless the test asks for more: these tests run multi-key
            // commands over any keys, as standalone Redis allows.
            .args(
                (!self.extra_args.iter().any(|a| a == "--groups"))
                    .then_some(["--groups", "1"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra_args)
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn raftkv");
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
    }

    /// Starts a new node that joins through node `via` (`--join`); returns its index. It
    /// listens at once; it becomes a member when the leader adds it.
    pub fn add_joining_node(&mut self, via: usize) -> usize {
        self.add_joining_node_at(via, free_port())
    }

    /// As [`Cluster::add_joining_node`], with the new node's Raft port chosen by the caller
    /// (so it can be named in a membership change before the node starts).
    pub fn add_joining_node_at(&mut self, via: usize, raft_port: u16) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            id: i as u64 + 1,
            redis_port: free_port(),
            raft_port,
            data_dir: self.dir.path().join(format!("node{}", i + 1)),
            log: self.dir.path().join(format!("node{}.log", i + 1)),
            join: Some(self.nodes[via].redis_port),
            env: Vec::new(),
            child: None,
            paused: false,
        });
        self.spawn(i);
        self.wait_serving(i);
        i
    }

    /// Waits (bounded) for node `i` to exit on its own; returns its exit status. On timeout
    /// the node stays the harness's to kill (on drop), so a failing test leaks no process.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.nodes[i]
                .child
                .as_mut()
                .expect("node running")
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                self.nodes[i].child = None;
                return status;
            }
            if Instant::now() >= deadline {
                // The child stays for the harness to kill on drop; show why it lingers.
                let log = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "timed out after {timeout:?} waiting for node {} to exit; its log ends:\n{}",
                    i + 1,
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `RAFT.NODES` lines of node `i`.
    pub fn raft_nodes(&self, i: usize) -> Vec<String> {
        self.try_connect(self.nodes[i].redis_port)
            .and_then(|mut c| redis::cmd("RAFT.NODES").query(&mut c).ok())
            .unwrap_or_default()
    }

    /// Waits until node `i` answers PING.
    pub fn wait_serving(&self, i: usize) {
        let port = self.nodes[i].redis_port;
        wait_for(
            Duration::from_secs(20),
            &format!("node {} to listen", i + 1),
            || {
                let mut c = self.try_connect(port)?;
                redis::cmd("PING").query::<String>(&mut c).ok()
            },
        );
    }

    /// A connection to node `i` (0-based).
    pub fn client(&self, i: usize) -> redis::Connection {
        wait_for(Duration::from_secs(10), "client connection", || {
            self.try_connect(self.nodes[i].redis_port)
        })
    }

    /// A connection to `port`, authenticated when the cluster has a password.
    pub fn try_connect(&self, port: u16) -> Option<redis::Connection> {
        connect(port, self.password.as_deref())
    }

    /// Redis port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].redis_port
    }

    /// INFO raft field of node `i`.
    pub fn info_field(&self, i: usize, field: &str) -> Option<String> {
        let mut c = self.try_connect(self.nodes[i].redis_port)?;
        let info: String = redis::cmd("INFO").arg("raft").query(&mut c).ok()?;
        info.lines().find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
    }

    /// Waits until node `i`'s INFO raft shows a leader for each of its `groups` groups.
    pub fn wait_group_leaders(&self, i: usize, groups: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info: Option<String> = self
                .try_connect(self.nodes[i].redis_port)
                .and_then(|mut c| redis::cmd("INFO").arg("raft").query(&mut c).ok());
            let lines: Vec<&str> = info
                .as_deref()
                .unwrap_or("")
                .lines()
                .filter(|l| l.starts_with("raft_group_") && l.contains(":role="))
                .collect();
            let led = lines.iter().filter(|l| !l.contains("leader=0,")).count();
            if led == groups {
                return;
            }
            if Instant::now() >= deadline {
                self.dump_logs();
                panic!("node {i}: no leader in every group after 30 s: {lines:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a live node reports itself leader and every other live node agrees;
    /// returns its index (0-based).
    pub fn wait_leader(&self) -> usize {
        wait_for(Duration::from_secs(20), "a leader", || {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.is_running(i))
                .collect();
            let leader = live
                .iter()
                .copied()
                .find(|&i| self.info_field(i, "raft_role").as_deref() == Some("leader"))?;
            let id = self.nodes[leader].id.to_string();
            live.iter()
                .all(|&i| self.info_field(i, "raft_leader_id").as_deref() == Some(id.as_str()))
                .then_some(leader)
        })
    }

    /// OS process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(|c| c.id())
    }

    /// Exit status of node `i` if it has exited on its own (the node is then no longer
    /// counted as running); `None` while it runs.
    pub fn try_wait(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let status = self.nodes[i].child.as_mut()?.try_wait().ok().flatten()?;
        self.nodes[i].child = None;
        Some(status)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some() && !self.nodes[i].paused
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM node `i` and wait (bounded) for it to exit; returns its exit status.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        let mut c = self.nodes[i].child.take().expect("node running");
        signal(c.id(), "TERM");
        wait_for(
            Duration::from_secs(10),
            "node to exit after SIGTERM",
            || c.try_wait().ok().flatten(),
        )
    }

    /// Restarts node `i` (after kill) and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_serving(i);
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            signal(c.id(), "STOP");
            self.nodes[i].paused = true;
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            signal(c.id(), "CONT");
            self.nodes[i].paused = false;
        }
    }

    /// Node `i`'s log as written so far (empty if unreadable).
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// Prints the tail of every node's log (used when a test fails).
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            eprintln!(
                "----- node {} log (last {} lines) -----",
                n.id,
                lines.len() - from
            );
            for l in &lines[from..] {
                eprintln!("{l}");
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.resume(i);
            }
            self.kill(i);
        }
    }
}

/// A client with timeouts so a broken server fails the test instead of hanging it.
pub fn try_client(port: u16) -> Option<redis::Connection> {
    connect(port, None)
}

fn connect(port: u16, password: Option<&str>) -> Option<redis::Connection> {
    let url = match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url).ok()?;
    let c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    c.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    c.set_write_timeout(Some(Duration::from_secs(15))).ok()?;
    Some(c)
}
