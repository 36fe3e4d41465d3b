//! A real raftkv cluster for fault injection: node processes on 127.0.0.1 with temporary
//! data dirs, each given its own view of `--cluster` in which every peer address is a
//! harness proxy for that directed link; kill -9 / restart / SIGSTOP / SIGCONT of nodes;
//! nodes added later (`--join`) and retired after their removal; every child is killed
//! when the cluster is dropped (also while unwinding from a panic).

use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy::{Links, Proxy};

/// Ports come from below Linux's ephemeral range (32768+), so an outgoing connection of a
/// running node cannot take a port between the check here and a node binding it.
const PORT_LOW: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

fn next_low_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread processes apart so concurrent harnesses rarely probe the same ports (pids
    // started together are close: scatter them).
    let base = (std::process::id().wrapping_mul(2_654_435_761) % u32::from(PORT_SPAN)) as u16;
    let off = NEXT.fetch_add(1, Ordering::Relaxed) % PORT_SPAN;
    PORT_LOW + (base + off) % PORT_SPAN
}

/// A bound listener on a port below 32768 (kept bound: no race with other processes).
pub fn bind_low() -> std::io::Result<StdListener> {
    for _ in 0..PORT_SPAN {
        if let Ok(l) = StdListener::bind(("127.0.0.1", next_low_port())) {
            return Ok(l);
        }
    }
    Err(std::io::Error::other("no free port below 32768"))
}

/// A free port below 32768 for a node to bind (bound here, then released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(bind_low()?.local_addr()?.port())
}

/// Finds the `raftkv` binary: `explicit`, else `$RAFTKV_BIN`, else `target/release/raftkv`
/// then `target/debug/raftkv` under the workspace root, else next to this executable, else
/// under `$CARGO_TARGET_DIR`.
pub fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("--bin {}: no such file", p.display()))
        };
    }
    if let Some(p) = std::env::var_os("RAFTKV_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("RAFTKV_BIN={}: no such file", p.display()))
        };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut candidates = vec![
        root.join("target/release/raftkv"),
        root.join("target/debug/raftkv"),
    ];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("raftkv"));
        // Test and example binaries live one level further down (target/*/deps).
        if let Some(up) = dir.parent() {
            candidates.push(up.join("raftkv"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        candidates.push(t.join("release/raftkv"));
        candidates.push(t.join("debug/raftkv"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "raftkv binary not found: pass --bin, set RAFTKV_BIN, or build it \
         (cargo build --release -p raftkv)"
            .to_string()
    })
}

/// How to start the nodes.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub bin: PathBuf,
    pub tick_ms: u64,
    pub log_level: String,
    /// Extra flags for every node.
    pub extra: Vec<String>,
}

/// One node process.
pub struct Node {
    /// 1-based Raft id.
    pub id: usize,
    pub redis_port: u16,
    /// Where the node listens for peers.
    pub raft_addr: SocketAddr,
    /// For a node added after the start: the proxy every older node dials to reach it
    /// (its advertised `--peer-addr`; it listens on `raft_addr`). It joins with `--join`.
    pub inbound: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// This node's `--cluster` value (its own address, and proxies for the others).
    cluster_arg: String,
    child: Option<Child>,
    paused: bool,
    /// The harness asked the cluster to remove this node: a clean exit is expected.
    pub leaving: bool,
    /// Removed from the cluster and stopped for good.
    pub retired: bool,
}

/// The Redis ports clients may send to: every node not retired, as `(index, port)`.
#[derive(Default)]
pub struct Targets {
    live: std::sync::RwLock<Vec<(usize, u16)>>,
}

impl Targets {
    pub fn get(&self) -> Vec<(usize, u16)> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, live: Vec<(usize, u16)>) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

/// A running cluster with its link proxies.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub links: Links,
    opts: NodeOptions,
    targets: Arc<Targets>,
    /// Where data dirs and logs go.
    dir: PathBuf,
}

/// A proxy on a fresh low port forwarding to `target`.
fn proxy_to(target: SocketAddr) -> std::io::Result<Arc<Proxy>> {
    let l = bind_low()?;
    l.set_nonblocking(true)?;
    let l = tokio::net::TcpListener::from_std(l)?;
    Ok(Arc::new(Proxy::start(l, target)?))
}

impl Cluster {
    /// Starts `n` nodes under `dir` (data dirs and logs), all links through proxies, and
    /// waits until each answers PING. Must run inside a tokio runtime (for the proxies).
    pub async fn start(n: usize, dir: &Path, opts: NodeOptions) -> std::io::Result<Cluster> {
        let mut raft_addrs = Vec::with_capacity(n);
        for _ in 0..n {
            raft_addrs.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
        }
        let mut links: Vec<Vec<Option<Arc<Proxy>>>> = vec![vec![None; n]; n];
        for (i, row) in links.iter_mut().enumerate() {
            for (j, slot) in row.iter_mut().enumerate() {
                if i != j {
                    *slot = Some(proxy_to(raft_addrs[j])?);
                }
            }
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let cluster_arg = (0..n)
                .map(|j| match &links[i][j] {
                    Some(p) => p.listen.to_string(),
                    None => raft_addrs[i].to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            nodes.push(Node::new(dir, i, raft_addrs[i], None, cluster_arg)?);
        }
        let mut c = Cluster {
            nodes,
            links: Links { links },
            opts,
            targets: Arc::default(),
            dir: dir.to_path_buf(),
        };
        for i in 0..n {
            c.spawn(i)?;
        }
        c.publish_targets();
        for i in 0..n {
            c.wait_serving(i, Duration::from_secs(30)).await?;
        }
        Ok(c)
    }

    /// Starts one more node (index = the old `len()`, id = index + 1) that joins the
    /// cluster through a running member. It gets a proxy per link to every existing node,
    /// and one inbound proxy that all existing nodes share to reach it: they learn its
    /// address from the membership change, so they cannot each get their own.
    pub fn add_node(&mut self) -> std::io::Result<usize> {
        let k = self.nodes.len();
        let raft_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let inbound = proxy_to(raft_addr)?;
        let mut row = Vec::with_capacity(k + 1);
        for j in 0..k {
            row.push(Some(proxy_to(self.nodes[j].raft_addr)?));
        }
        row.push(None);
        for r in self.links.links.iter_mut() {
            r.push(Some(inbound.clone()));
        }
        let cluster_arg = row
            .iter()
            .flatten()
            .map(|p| p.listen.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.links.links.push(row);
        let node = Node::new(&self.dir, k, raft_addr, Some(inbound.listen), cluster_arg)?;
        self.nodes.push(node);
        self.spawn(k)?;
        self.publish_targets();
        Ok(k)
    }

    /// Marks node `i` as removed from the cluster: stopped (if still running) and never
    /// restarted; clients stop sending to it.
    pub fn retire(&mut self, i: usize) {
        self.kill(i);
        self.nodes[i].retired = true;
        self.publish_targets();
    }

    /// Clients' view of the cluster.
    pub fn targets(&self) -> Arc<Targets> {
        self.targets.clone()
    }

    fn publish_targets(&self) {
        self.targets.set(
            self.live()
                .into_iter()
                .map(|i| (i, self.nodes[i].redis_port))
                .collect(),
        );
    }

    /// Indexes of the nodes not retired.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].retired)
            .collect()
    }

    /// A running member to join through (not `i`, not leaving, not a pending joiner if
    /// a founder is up).
    fn join_target(&self, i: usize) -> Option<u16> {
        let up = |j: &usize| {
            *j != i
                && self.nodes[*j].child.is_some()
                && !self.nodes[*j].paused
                && !self.nodes[*j].retired
                && !self.nodes[*j].leaving
        };
        (0..self.nodes.len())
            .filter(up)
            .map(|j| self.nodes[j].redis_port)
            .next()
    }

    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let join = match self.nodes[i].inbound {
            Some(_) => Some(self.join_target(i).unwrap_or(self.nodes[0].redis_port)),
            None => None,
        };
        let node = &self.nodes[i];
        let log = File::options().create(true).append(true).open(&node.log)?;
        let mut cmd = Command::new(&self.opts.bin);
        cmd.args(["--id", &node.id.to_string()])
            .args(["--cluster", &node.cluster_arg])
            .args(["--port", &node.redis_port.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--tick-ms", &self.opts.tick_ms.to_string()])
            .args(["--log-level", &self.opts.log_level])
            .args(
                (!self.opts.extra.iter().any(|a| a == "--groups"))
                    .then_some(["--groups", "1"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.opts.extra);
        if let (Some(inbound), Some(via)) = (node.inbound, join) {
            cmd.args(["--join", &format!("127.0.0.1:{via}")])
                .args(["--peer-addr", &inbound.to_string()])
                .args(["--peer-bind", &node.raft_addr.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Polls until node `i` answers PING.
    pub async fn wait_serving(&self, i: usize, timeout: Duration) -> std::io::Result<()> {
        let port = self.nodes[i].redis_port;
        let deadline = Instant::now() + timeout;
        loop {
            if crate::client::ping(port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other(format!(
                    "node {} did not answer PING within {timeout:?}",
                    i + 1
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every node ever started, retired ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// kill -9 node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            if self.nodes[i].paused {
                signal(&c, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.nodes[i].paused = false;
    }

    /// Starts node `i` again (it must be down) from its data dir; a retired node stays
    /// down.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.kill(i);
        if self.nodes[i].retired {
            return Ok(());
        }
        self.spawn(i)
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            signal(c, libc::SIGSTOP);
            self.nodes[i].paused = true;
        }
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            signal(c, libc::SIGCONT);
        }
        self.nodes[i].paused = false;
    }

    /// Whether node `i` exited on its own (crashed); reaps it if so.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let c = self.nodes[i].child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => {
                self.nodes[i].child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Resumes paused nodes, restarts dead ones (not retired) and heals every link.
    pub fn heal_all(&mut self) -> std::io::Result<()> {
        self.links.heal_all();
        for i in self.live() {
            if self.nodes[i].paused {
                self.resume(i);
            }
            if self.nodes[i].child.is_none() {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Redis ports of all nodes, by index (retired ones included).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.redis_port).collect()
    }

    /// The last `lines` lines of every node's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "----- node {} ({}) -----\n",
                n.id,
                n.log.display()
            ));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Node {
    fn new(
        dir: &Path,
        i: usize,
        raft_addr: SocketAddr,
        inbound: Option<SocketAddr>,
        cluster_arg: String,
    ) -> std::io::Result<Node> {
        Ok(Node {
            id: i + 1,
            redis_port: free_port()?,
            raft_addr,
            inbound,
            data_dir: dir.join(format!("node{}", i + 1)),
            log: dir.join(format!("node{}.log", i + 1)),
            cluster_arg,
            child: None,
            paused: false,
            leaving: false,
            retired: false,
        })
    }
}

fn signal(c: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    unsafe {
        libc::kill(c.id() as libc::pid_t, sig);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
