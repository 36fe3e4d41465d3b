//! The `raftkv` binary: parses the configuration, opens the node's RocksDB (raft log and
//! data share one database so one WriteBatch per Ready holds both), starts the Raft Ready
//! loop, the peer transport, the Redis listener and the leader's expiry sweep.

mod admin;
mod blocking;
mod cluster;
mod config;
mod db;
mod fanout;
mod forwarded;
mod group_admin;
mod groups;
mod hosting;
mod info;
mod join;
mod latency;
mod leaders;
mod live;
mod metrics;
mod multi;
mod notify;
mod pubsub;
mod pubsub_cmd;
mod raft_admin;
mod reads;
mod remote;
mod scripting;
mod server;
mod session;
mod slowlog;
mod sm;
mod stats;
mod sweep;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use clap::Parser;
use raft_node::{Msg, NodeConfig, Transport, TransportConfig};
use slog::{crit, info, o, warn, Drain, Logger};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::server::{Server, Stats};

/// jemalloc serves every allocation of the process: Rust's, and through its unprefixed
/// `malloc` / `free`, RocksDB's C++ ones too. glibc's malloc took ~14% of the leader's CPU under
/// MSET (`_int_malloc`, `malloc_consolidate`, `malloc`, `_int_free`, `cfree`); jemalloc cut
/// the CPU per request over the three nodes to 0.67-0.92x (MSET 0.81-0.87x; docs/benchmarks.md,
/// session 13).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn logger(cfg: &Config) -> Logger {
    // The level is read per record: CONFIG SET loglevel changes it (see `live`).
    live::init(
        cfg.maxclients,
        &cfg.log_level,
        cfg.timeout,
        cfg.request_timeout_ms,
    );
    let decorator = slog_term::PlainDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = slog_async::Async::new(drain).chan_size(4096).build().fuse();
    let drain = drain
        .filter(|r: &slog::Record| r.level().is_at_least(live::log_level()))
        .fuse();
    // Critical records (a node about to fail-stop) are written synchronously: the process
    // ends right after them, before an asynchronous drain would write them.
    let sync = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let critical = slog_term::FullFormat::new(sync)
        .build()
        .filter_level(slog::Level::Critical)
        .fuse();
    let rest = drain
        .filter(|r: &slog::Record| r.level() != slog::Level::Critical)
        .fuse();
    Logger::root(
        slog::Duplicate::new(critical, rest).fuse(),
        o!("node" => cfg.id),
    )
}

/// On shutdown, a leader first moves leadership to a peer (raft-rs catches it up and sends
/// it TimeoutNow), so clients see one short pause instead of an election timeout. The most
/// up-to-date voters are tried first.
pub async fn hand_over_leadership(node: &raft_node::NodeHandle<resp::Reply>, log: &Logger) {
    let members = node.status.members();
    let mut peers: Vec<u64> = members
        .voters
        .iter()
        .copied()
        .filter(|&i| i != node.status.id)
        .collect();
    peers.sort_by_key(|id| std::cmp::Reverse(members.matched.get(id).copied().unwrap_or(0)));
    for &to in &peers {
        if !node.status.is_leader() {
            return;
        }
        info!(log, "transferring leadership before shutdown"; "to" => to);
        node.send(Msg::TransferLeader(to));
        let deadline = Instant::now() + std::time::Duration::from_millis(1500);
        while Instant::now() < deadline {
            let leader = node.status.leader();
            if leader != 0 && leader != node.status.id {
                info!(log, "leadership transferred"; "leader" => leader);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    if node.status.is_leader() {
        warn!(log, "could not transfer leadership before shutdown");
    }
}

/// The logger the panic hook writes to (critical records are written synchronously).
static PANIC_LOG: OnceLock<Logger> = OnceLock::new();

/// A panic in any thread (raft-rs `fatal!` included, or a tokio task, which tokio would
/// otherwise catch and leave the node half alive) stops the process: one CRIT line, then
/// exit status 1 without unwinding further, so a supervisor restarts a whole node.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed").to_string();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        match PANIC_LOG.get() {
            Some(log) => {
                crit!(log, "panic, stopping the process"; "thread" => &thread, "at" => &at, "msg" => &msg)
            }
            None => {
                use std::io::Write;
                let mut e = std::io::stderr().lock();
                let _ = writeln!(
                    e,
                    "CRIT panic, stopping the process, thread: {thread}, at: {at}, msg: {msg}"
                );
                let _ = e.flush();
            }
        }
        raft_node::node::die();
    }));
}

/// Test-only fail point: `RAFTKV_FAILPOINT=panic-when-exists:<path>` makes a background
/// thread panic once `<path>` exists (tests show that a panic stops the process).
fn start_failpoint() {
    let Ok(fp) = std::env::var("RAFTKV_FAILPOINT") else {
        return;
    };
    let Some(path) = fp
        .strip_prefix("panic-when-exists:")
        .map(std::path::PathBuf::from)
    else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("failpoint".into())
        .spawn(move || loop {
            if path.exists() {
                panic!("fail point {fp} reached");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
}

/// One loud warning when peers are not authenticated and the peer port is reachable from
/// other hosts.
fn warn_if_open(log: &Logger, cfg: &Config, bound: Option<std::net::SocketAddr>) {
    let open = bound.is_some_and(|a| !a.ip().is_loopback());
    if open && cfg.cluster_secret.is_none() && cfg.requirepass.is_none() {
        warn!(log, "PEER PORT NOT AUTHENTICATED: no --cluster-secret (or --requirepass) is set and the raft port listens on a non-loopback address; anyone who reaches it can run commands, change membership and read the whole dataset"; "raft_bind" => bound.map(|a| a.to_string()));
    }
}

/// Rate limit of the log line about requests forwarded by non-members.
static FORWARD_REFUSALS: raft_node::ratelimit::RateLimit =
    raft_node::ratelimit::RateLimit::new(std::time::Duration::from_secs(10));

/// Whether `id` is in any part of the current configuration.
fn is_member(m: &raft_node::Members, id: u64) -> bool {
    m.voters.contains(&id) || m.learners.contains(&id) || m.voters_outgoing.contains(&id)
}

/// RESP-encoded `n` copies of one error reply.
fn encoded_errors(resp3: bool, n: usize, text: &str) -> Vec<u8> {
    let proto = if resp3 {
        resp::Protocol::Resp3
    } else {
        resp::Protocol::Resp2
    };
    let mut out = bytes::BytesMut::new();
    for _ in 0..n.max(1) {
        resp::encode::encode(&resp::Reply::err(text), proto, &mut out);
    }
    out.to_vec()
}

/// Serves requests forwarded by peers. Only current members may forward (a removed node
/// still holds the secret); others get a TRYAGAIN error (certainly not applied).
fn forward_handler(server: Arc<Server>) -> raft_node::ForwardHandler {
    Arc::new(move |from, group, resp3, data| {
        let s = server.clone();
        Box::pin(async move {
            let meta = s.groups.meta();
            if !is_member(&s.node.status.members(), from)
                && !is_member(&meta.node.status.members(), from)
            {
                if let Some(n) = FORWARD_REFUSALS.check() {
                    warn!(s.logger, "refusing a request forwarded by a non-member"; "from" => from, "suppressed" => n);
                }
                let text = format!(
                    "TRYAGAIN node {from} is not a member of this cluster; request refused"
                );
                return Some(encoded_errors(resp3, data.len(), &text));
            }
            if group == meta.id {
                return s.serve_forwarded_meta(from, &data).await;
            }
            s.serve_forwarded(group, resp3, data).await
        })
    })
}

fn main() {
    install_panic_hook();
    let mut cfg = Config::parse();
    let secrets = cfg.resolve_secrets();
    let log = logger(&cfg);
    let _ = PANIC_LOG.set(log.clone());
    scripting::log_to(log.clone());
    if let Err(e) = secrets {
        crit!(log, "fatal"; "err" => e);
        drop(log);
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::process::exit(1);
    }
    start_failpoint();
    let code = match run(cfg, &log) {
        Ok(()) => 0,
        Err(e) => {
            crit!(log, "fatal"; "err" => e);
            1
        }
    };
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::process::exit(code);
}

fn run(cfg: Config, log: &Logger) -> Result<(), String> {
    let raft_addr = cfg.raft_addr().ok_or_else(|| {
        format!(
            "--id {} is not a position in --cluster and no --peer-addr is given",
            cfg.id
        )
    })?;
    let mut peers = cfg.peers();
    peers.insert(cfg.id, raft_addr.clone());
    // The restart's steps are timed in the log (docs/benchmarks.md, restart-to-serving).
    let started = std::time::Instant::now();
    info!(log, "opening the database"; "data_dir" => %cfg.data_dir().display());
    let db = db::open(&cfg.data_dir())?;
    info!(log, "database opened"; "ms" => started.elapsed().as_millis() as u64);
    let meta_store = store::Store::open(db.clone(), groups::META_GROUP, store::SlotSet::empty())
        .map_err(|e| e.to_string())?;
    let recorded = meta_store.load_cluster_meta();
    cluster::meta::check_groups(&cfg, &recorded, log)?;
    groups::check_layout(&db, cfg.groups)?;
    let host = hosting::Host::new(db.clone(), &cfg, raft_addr.clone());
    let mut stores = Vec::new();
    for (g, voters, addrs, layout) in host.at_start(&recorded)? {
        stores.push((
            host.node_config(g, voters, addrs),
            host.open_store(g, layout)?,
        ));
    }
    info!(log, "stores opened"; "groups" => stores.len(), "ms" => started.elapsed().as_millis() as u64);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.io_threads > 0 {
        rt.worker_threads(cfg.io_threads as usize);
    }
    let rt = rt.enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let bind_addr = cfg.peer_bind.clone().unwrap_or_else(|| raft_addr.clone());
        let raft_listener = TcpListener::bind(&bind_addr)
            .await
            .map_err(|e| format!("cannot bind raft address {bind_addr}: {e}"))?;
        let client_addr = format!("{}:{}", cfg.bind, cfg.port);
        let client_listener = TcpListener::bind(&client_addr)
            .await
            .map_err(|e| format!("cannot bind {client_addr}: {e}"))?;
        // The transport needs the groups' handles and the node needs the transport's sink:
        // tie them with a slot filled right after the node starts.
        let inbox: Arc<OnceLock<Arc<groups::Groups>>> = Arc::new(OnceLock::new());
        let unreachable_inbox = inbox.clone();
        let snapshot_inbox = inbox.clone();
        let snap_dir = cfg.data_dir().join("snap");
        let transport = Transport::start(
            TransportConfig {
                id: cfg.id,
                peers: peers.clone(),
                secret: cfg.peer_secret(),
                snap_dir: snap_dir.clone(),
                snapshot_chunk: cfg.snapshot_chunk_bytes.clamp(4096, 16 << 20),
                snapshot_rate: (cfg.snapshot_max_mbps.max(0.0) * 1e6) as u64,
                max_inbound: 0,
                idle: std::time::Duration::ZERO,
            },
            Arc::new(move |pid| {
                for g in unreachable_inbox.get().into_iter().flat_map(|g| g.every()) {
                    g.node.send(Msg::Unreachable(pid));
                }
            }),
            Arc::new(move |group, to, ok| {
                if let Some(g) = snapshot_inbox.get().and_then(|gs| gs.any(group)) {
                    g.node.send(Msg::SnapshotStatus { to, ok });
                }
            }),
            log,
        );
        let readers: Vec<store::Reader> = stores.iter().map(|(_, s)| s.reader()).collect();
        let meta_reader = meta_store.reader();
        let view = groups::MetaView::new(cfg.groups);
        let meta_sm = sm::KvStateMachine::meta(meta_store, view.clone());
        let meta_cfg = host.node_config(groups::META_GROUP, cfg.founding_voters(), Default::default());
        let mut group_cfgs: Vec<(NodeConfig, sm::KvStateMachine)> = stores
            .into_iter()
            .map(|(ncfg, store)| {
                let min = host.checkpoint_min_bytes();
                (ncfg, sm::KvStateMachine::data(store, min))
            })
            .chain(std::iter::once((meta_cfg, meta_sm)))
            .collect();
        // The metadata group is served first in each round (its entries are few).
        group_cfgs.rotate_right(1);
        let driver = raft_node::DriverConfig {
            id: cfg.id,
            tick: cfg.tick(),
            log_cache: raft_node::CacheBudget::new(
                cfg.raft_log_cache_bytes,
                cfg.raft_log_cache_node_bytes,
            ),
        };
        let (handles, ready_thread) =
            raft_node::start_groups(driver, group_cfgs, db, transport.sink(), log)
                .map_err(|e| format!("cannot start raft node: {e}"))?;
        let mut handles = handles.into_iter();
        let meta_node = handles
            .next()
            .ok_or("the metadata group did not start")?;
        let meta_group = groups::GroupRt {
            id: meta_node.group(),
            node: meta_node,
            reader: meta_reader,
        };
        let group_list = handles
            .zip(readers)
            .map(|(node, reader)| groups::GroupRt {
                id: node.group(),
                node,
                reader,
            })
            .collect();
        let groups = groups::Groups::new(group_list, meta_group, view);
        let _ = inbox.set(groups.clone());
        let node = groups.home().node.clone();
        let reader = groups.home().reader.clone();
        // A removed member stops only once it applies its own removal (the leader sends
        // it the entries up to it as a raft message; see `removal_notice` in raft-node).
        if cfg.cluster_secret.is_none() && cfg.requirepass.is_some() {
            info!(log, "peer connections authenticated with a secret derived from --requirepass");
        }
        warn_if_open(log, &cfg, raft_listener.local_addr().ok());

        let server = Arc::new(Server {
            cfg: cfg.clone(),
            node: node.clone(),
            reader,
            groups: groups.clone(),
            transport: transport.clone(),
            logger: log.clone(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            stats: Stats::default(),
            started: Instant::now(),
            run_id: format!("{:040x}", (std::process::id() as u128) << 64 | server::wall_ms() as u128),
            shutdown: tokio::sync::Notify::new(),
            open_conns: std::sync::atomic::AtomicUsize::new(0),
            migration: Default::default(),
            host,
        });
        // Pub/Sub messages from peers go to this node's subscribers (keyspace events come
        // from the store's push listener, see `Server::watch_pushes`).
        transport.set_publish_handler(Arc::new(|ch, msg, shard| {
            pubsub::hub().deliver(ch, msg, shard);
        }));
        let driver = groups.home().node.clone();
        let fwd_server = server.clone();
        tokio::spawn(transport.clone().serve(
            raft_listener,
            // The driver routes it (group 0: node keepalives; unknown groups: dropped).
            Arc::new(move |group, m| driver.deliver(group, m)),
            forward_handler(fwd_server),
        ));
        tokio::spawn(server.clone().spread_leaders());
        tokio::spawn(server.clone().sweep_loop());
        tokio::spawn(server.clone().watch_removal());
        tokio::spawn(server.clone().meta_loop());
        tokio::spawn(server.clone().migrate_loop());
        tokio::spawn(server.clone().host_loop());
        tokio::spawn(latency::sample_raft(server.groups.clone()));
        if let Some(addr) = cfg.metrics_addr.clone() {
            tokio::spawn(metrics::serve(server.clone(), addr));
        }
        if let Some(join) = cfg.join.clone() {
            tokio::spawn(server.clone().join_cluster(join, raft_addr.clone()));
        }
        info!(log, "raftkv listening"; "redis" => &client_addr, "raft" => &raft_addr, "data_dir" => %cfg.data_dir().display());

        let accept = async {
            loop {
                let (sock, _) = match client_listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(log, "accept failed"; "err" => %e);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if server.open_conns.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= live::maxclients() {
                    server.open_conns.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    server.stats.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let mut sock = sock;
                        let _ = sock.write_all(b"-ERR max number of clients reached\r\n").await;
                    });
                    continue;
                }
                tokio::spawn(session::serve(server.clone(), sock));
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = accept => {}
            _ = term.recv() => info!(log, "SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!(log, "interrupt: shutting down"),
            _ = server.shutdown.notified() => info!(log, "shutting down on request"),
        }
        // Stop accepting clients (the accept loop is gone); move leadership away, then stop
        // the Ready loop: requests still waiting get -TRYAGAIN, and the sync thread
        // finishes its last fsync before the process exits.
        // Blocked pops are released with an error first (their replies go out while the
        // runtime still runs).
        blocking::blocked().shut_down();
        blocking::blocked().drain(std::time::Duration::from_secs(1)).await;
        // Every group at once: a node may lead hundreds.
        let mut handovers = tokio::task::JoinSet::new();
        for g in groups.every() {
            let (node, log) = (g.node.clone(), log.clone());
            if node.status.is_leader() {
                handovers.spawn(async move { hand_over_leadership(&node, &log).await });
            }
        }
        while handovers.join_next().await.is_some() {}
        node.send(Msg::Stop);
        let _ = tokio::task::spawn_blocking(move || ready_thread.join()).await;
        info!(log, "node stopped");
        Ok::<(), String>(())
    })
}
