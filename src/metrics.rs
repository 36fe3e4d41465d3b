//! The Prometheus endpoint (`--metrics-addr`): a minimal HTTP listener answering only
//! `GET /metrics` (request head at most 8 KiB, read within 5 s; one response, then close)
//! with the text exposition format (version 0.0.4), rendered by hand from the counters the
//! node keeps: requests, errors and latency per command, connections, per Raft group
//! term / role / indexes / proposals / fsync and round times / a histogram of fsync
//! durations / snapshots / apply backlog,
//! and RocksDB sizes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slog::{info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Server;
use crate::stats::CmdStat;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds (µs) of the command latency histogram's buckets.
const LE_USEC: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// The exposition text under construction: HELP / TYPE once per metric family.
pub struct Text(pub String);

impl Text {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample; `labels` as (name, value) pairs, values escaped as the format asks.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn l(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// One counter of a command's stats.
type Field = fn(&CmdStat) -> &AtomicU64;

fn commands(t: &mut Text) {
    let stats = crate::stats::global();
    let used: Vec<_> = stats.used().collect();
    let counters: [(&str, &str, Field); 3] = [
        (
            "raftkv_commands_total",
            "Requests answered, per command.",
            |c| &c.calls,
        ),
        (
            "raftkv_commands_rejected_total",
            "Requests refused before they ran.",
            |c| &c.rejected,
        ),
        (
            "raftkv_commands_failed_total",
            "Requests that ran and failed.",
            |c| &c.failed,
        ),
    ];
    for (family, help, field) in counters {
        t.family(family, "counter", help);
        for (name, c) in &used {
            t.sample(family, &[("cmd", name)], l(field(c)));
        }
    }
    let h = "raftkv_command_duration_seconds";
    t.family(
        h,
        "histogram",
        "Dispatch to reply (writes include the Raft commit).",
    );
    for (name, c) in &used {
        for le in LE_USEC {
            let n = c.latency.count_at_most(le) as f64;
            let le = format!("{}", le as f64 / 1e6);
            t.sample(&format!("{h}_bucket"), &[("cmd", name), ("le", &le)], n);
        }
        let count = c.latency.count() as f64;
        t.sample(
            &format!("{h}_bucket"),
            &[("cmd", name), ("le", "+Inf")],
            count,
        );
        let sum = c.usec.load(Ordering::Relaxed) as f64 / 1e6;
        t.sample(&format!("{h}_sum"), &[("cmd", name)], sum);
        t.sample(&format!("{h}_count"), &[("cmd", name)], count);
    }
    t.family(
        "raftkv_errors_total",
        "counter",
        "Error replies, per error prefix.",
    );
    for (prefix, n) in stats.errors() {
        t.sample("raftkv_errors_total", &[("prefix", &prefix)], n as f64);
    }
}

impl Server {
    /// The metrics text.
    pub fn metrics_text(&self) -> String {
        let mut t = Text(String::new());
        commands(&mut t);
        t.family(
            "raftkv_connected_clients",
            "gauge",
            "Client connections open.",
        );
        let open = self.open_conns.load(Ordering::Relaxed) as f64;
        t.sample("raftkv_connected_clients", &[], open);
        t.family(
            "raftkv_connections_received_total",
            "counter",
            "Client connections accepted.",
        );
        let got = self.stats.connections.load(Ordering::Relaxed) as f64;
        t.sample("raftkv_connections_received_total", &[], got);
        self.raft_metrics(&mut t);
        let r = &self.groups.home().reader;
        t.family(
            "raftkv_rocksdb_live_data_bytes",
            "gauge",
            "RocksDB estimate-live-data-size.",
        );
        let live = r.db_property("rocksdb.estimate-live-data-size") as f64;
        t.sample("raftkv_rocksdb_live_data_bytes", &[], live);
        t.family(
            "raftkv_rocksdb_sst_files_bytes",
            "gauge",
            "RocksDB total-sst-files-size.",
        );
        let sst = r.db_property("rocksdb.total-sst-files-size") as f64;
        t.sample("raftkv_rocksdb_sst_files_bytes", &[], sst);
        t.0
    }

    fn raft_metrics(&self, t: &mut Text) {
        type Get = fn(&raft_node::node::Status) -> f64;
        let gauges: [(&str, &str, &str, Get); 14] = [
            ("raftkv_raft_term", "gauge", "Current term.", |s| l(&s.term)),
            (
                "raftkv_raft_leader",
                "gauge",
                "1 while this node leads the group.",
                |s| f64::from(u8::from(s.is_leader())),
            ),
            ("raftkv_raft_commit_index", "gauge", "Commit index.", |s| {
                l(&s.commit)
            }),
            (
                "raftkv_raft_applied_index",
                "gauge",
                "Applied index.",
                |s| l(&s.applied),
            ),
            (
                "raftkv_raft_apply_backlog",
                "gauge",
                "Committed entries not yet applied.",
                |s| l(&s.apply_backlog),
            ),
            (
                "raftkv_raft_apply_backlog_bytes",
                "gauge",
                "Bytes of committed, not yet applied entries held in memory (bounded).",
                |s| l(&s.apply_backlog_bytes),
            ),
            (
                "raftkv_raft_log_cache_bytes",
                "gauge",
                "Bytes of log entries kept in memory.",
                |s| l(&s.log_cache_bytes),
            ),
            (
                "raftkv_raft_proposals_total",
                "counter",
                "Proposals made.",
                |s| l(&s.proposals),
            ),
            (
                "raftkv_raft_fsyncs_total",
                "counter",
                "Synced log writes.",
                |s| l(&s.syncs),
            ),
            (
                "raftkv_raft_fsync_seconds_total",
                "counter",
                "Time in synced log writes.",
                |s| l(&s.sync_micros) / 1e6,
            ),
            (
                "raftkv_raft_rounds_total",
                "counter",
                "Driver rounds.",
                |s| l(&s.readies),
            ),
            (
                "raftkv_raft_round_seconds_total",
                "counter",
                "Time in driver rounds.",
                |s| l(&s.ready_micros) / 1e6,
            ),
            (
                "raftkv_raft_snapshots_taken_total",
                "counter",
                "Snapshots taken.",
                |s| l(&s.snapshots_taken),
            ),
            (
                "raftkv_raft_snapshots_restored_total",
                "counter",
                "Snapshots restored.",
                |s| l(&s.snapshots_restored),
            ),
        ];
        for (name, kind, help, get) in gauges {
            t.family(name, kind, help);
            for g in self.groups.all().iter() {
                let id = g.id.to_string();
                let s = &g.node.status;
                t.sample(name, &[("group", &id), ("role", s.role_name())], get(s));
            }
        }
        self.fsync_histogram(t);
    }

    /// The raft log's synced writes (one WAL fsync per driver round, counted for every
    /// group whose entries or hard state it made durable), as a histogram per group.
    fn fsync_histogram(&self, t: &mut Text) {
        let h = "raftkv_raft_fsync_duration_seconds";
        t.family(
            h,
            "histogram",
            "Duration of the raft log's WAL fsync, per driver round that persisted the group.",
        );
        for g in self.groups.all().iter() {
            let id = g.id.to_string();
            let s = &g.node.status;
            let (buckets, count) = s.sync_hist.cumulative();
            for (le, n) in buckets {
                let le = format!("{}", le as f64 / 1e6);
                t.sample(
                    &format!("{h}_bucket"),
                    &[("group", &id), ("le", &le)],
                    n as f64,
                );
            }
            let count = count as f64;
            t.sample(
                &format!("{h}_bucket"),
                &[("group", &id), ("le", "+Inf")],
                count,
            );
            t.sample(
                &format!("{h}_sum"),
                &[("group", &id)],
                l(&s.sync_micros) / 1e6,
            );
            t.sample(&format!("{h}_count"), &[("group", &id)], count);
        }
    }
}

/// Reads one request head; the path of a `GET`, or None.
async fn request_path(sock: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.ok()?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok()??;
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_string)
}

async fn answer(server: Arc<Server>, mut sock: TcpStream) {
    let (status, ctype, body) = match request_path(&mut sock).await.as_deref() {
        Some("/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            server.metrics_text(),
        ),
        Some(_) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(body.as_bytes()).await?;
        sock.shutdown().await
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, write).await;
}

/// Serves `GET /metrics` on `addr` until the process ends.
pub async fn serve(server: Arc<Server>, addr: String) {
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(server.logger, "metrics endpoint not started"; "addr" => &addr, "err" => %e);
            return;
        }
    };
    info!(server.logger, "metrics endpoint"; "addr" => &addr);
    loop {
        if let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(answer(server.clone(), sock));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lines() {
        let mut t = Text(String::new());
        t.family("m_total", "counter", "Help text.");
        t.sample("m_total", &[("cmd", "config|get"), ("x", "a\"b\\")], 3.0);
        t.sample("m_total", &[], 0.5);
        assert_eq!(
            t.0,
            "# HELP m_total Help text.\n# TYPE m_total counter\n\
             m_total{cmd=\"config|get\",x=\"a\\\"b\\\\\"} 3\nm_total 0.5\n"
        );
    }
}
