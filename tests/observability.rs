//! Observability on a real 3-node cluster: INFO commandstats / errorstats / latencystats
//! count the commands the node served (a follower forwarding a write counts it too),
//! CONFIG RESETSTAT clears them; SLOWLOG and LATENCY record requests; CONFIG GET patterns
//! and CONFIG SET of run-time settings; `/metrics` scraped over plain HTTP and parsed
//! (command latency and raft fsync histograms included); the raft fsync histogram and its
//! percentiles in INFO raft.

mod common;

use std::collections::HashMap;

use common::Cluster;

/// INFO `section` of node `i` as a field map.
fn info(c: &mut redis::Connection, section: &str) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg(section).query(c).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The `k=v` pairs of a commandstats-style value.
fn pairs(v: &str) -> HashMap<String, String> {
    v.split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Field `key` of the line `line` of INFO `section`, as a number.
fn stat(c: &mut redis::Connection, section: &str, line: &str, key: &str) -> f64 {
    let f = info(c, section);
    let v = f
        .get(line)
        .unwrap_or_else(|| panic!("{line} missing from INFO {section}: {f:?}"));
    pairs(v)
        .get(key)
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing from {line}:{v}"))
}

#[test]
fn commandstats_errorstats_latencystats_and_resetstat() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let follower = (0..3).find(|&i| i != leader).unwrap_or(0);
    for node in [leader, follower] {
        let mut c = cl.client(node);
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
        for i in 0..3 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{node}-{i}"))
                .arg("v")
                .query(&mut c)
                .unwrap();
        }
        let _: Option<String> = redis::cmd("GET").arg("k0").query(&mut c).unwrap();
        // A failed call (WRONGTYPE at apply time) and a rejected one (arity).
        let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut c).unwrap();
        assert!(redis::cmd("LPUSH")
            .arg("s")
            .arg("x")
            .query::<i64>(&mut c)
            .is_err());
        assert!(redis::cmd("GET").query::<String>(&mut c).is_err());
        // A syntax error is a failed call, as in Redis (the command itself finds it).
        assert!(redis::cmd("SET")
            .arg("s")
            .arg("v")
            .arg("NX")
            .arg("XX")
            .query::<()>(&mut c)
            .is_err());
        assert!(redis::cmd("NOSUCHCMD").query::<String>(&mut c).is_err());
        let _: HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxclients")
            .query(&mut c)
            .unwrap();

        assert_eq!(stat(&mut c, "commandstats", "cmdstat_set", "calls"), 5.0);
        assert_eq!(
            stat(&mut c, "commandstats", "cmdstat_set", "failed_calls"),
            1.0
        );
        assert_eq!(
            stat(&mut c, "commandstats", "cmdstat_lpush", "failed_calls"),
            1.0
        );
        assert_eq!(
            stat(&mut c, "commandstats", "cmdstat_get", "rejected_calls"),
            1.0
        );
        assert_eq!(stat(&mut c, "commandstats", "cmdstat_get", "calls"), 2.0);
        assert_eq!(
            stat(&mut c, "commandstats", "cmdstat_config|get", "calls"),
            1.0
        );
        let usec = stat(&mut c, "commandstats", "cmdstat_set", "usec");
        let per = stat(&mut c, "commandstats", "cmdstat_set", "usec_per_call");
        assert!(
            usec > 0.0 && (per - usec / 5.0).abs() < 0.01,
            "{usec} {per}"
        );

        assert_eq!(
            stat(&mut c, "errorstats", "errorstat_WRONGTYPE", "count"),
            1.0
        );
        // The arity error, the syntax error and the unknown command.
        assert_eq!(stat(&mut c, "errorstats", "errorstat_ERR", "count"), 3.0);
        let stats = info(&mut c, "stats");
        assert_eq!(
            stats.get("total_error_replies").map(String::as_str),
            Some("4")
        );

        let p50 = stat(
            &mut c,
            "latencystats",
            "latency_percentiles_usec_set",
            "p50",
        );
        let p999 = stat(
            &mut c,
            "latencystats",
            "latency_percentiles_usec_set",
            "p99.9",
        );
        assert!(p50 > 0.0 && p999 >= p50, "{p50} {p999}");

        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
        let cs = info(&mut c, "commandstats");
        assert!(!cs.contains_key("cmdstat_set"), "{cs:?}");
        assert!(info(&mut c, "errorstats").is_empty());
        assert!(!info(&mut c, "latencystats").contains_key("latency_percentiles_usec_set"));
    }
}

/// SLOWLOG GET's entries as (id, duration µs, argv).
fn slowlog(c: &mut redis::Connection) -> Vec<(i64, i64, Vec<String>)> {
    let v: redis::Value = redis::cmd("SLOWLOG").arg("GET").arg(-1).query(c).unwrap();
    let redis::Value::Array(entries) = v else {
        panic!("SLOWLOG GET: {v:?}")
    };
    entries
        .into_iter()
        .map(|e| {
            let redis::Value::Array(f) = e else {
                panic!("entry {e:?}")
            };
            assert_eq!(f.len(), 6, "{f:?}");
            let int = |v: &redis::Value| match v {
                redis::Value::Int(n) => *n,
                other => panic!("{other:?}"),
            };
            let argv: Vec<String> = redis::from_redis_value(&f[3]).unwrap();
            let addr: String = redis::from_redis_value(&f[4]).unwrap();
            assert!(addr.contains(':'), "{addr}");
            (int(&f[0]), int(&f[2]), argv)
        })
        .collect()
}

#[test]
fn slowlog_latency_and_config() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let mut c = cl.client(leader);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("0")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    let _: Option<String> = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    let long = "x".repeat(200);
    let _: () = redis::cmd("SET").arg("b").arg(&long).query(&mut c).unwrap();
    let log = slowlog(&mut c);
    // Newest first: SET b, GET a, SET a, SLOWLOG RESET.
    let argvs: Vec<&Vec<String>> = log.iter().map(|e| &e.2).collect();
    assert_eq!(
        argvs[1],
        &vec!["GET".to_string(), "a".to_string()],
        "{log:?}"
    );
    assert_eq!(
        argvs[2][..2],
        ["SET".to_string(), "a".to_string()],
        "{log:?}"
    );
    assert_eq!(argvs[0][2], format!("{}... (72 more bytes)", &long[..128]));
    assert!(
        log.windows(2).all(|w| w[0].0 > w[1].0),
        "ids descend: {log:?}"
    );
    assert!(log[0].1 > 0, "a write takes time: {log:?}");
    let n: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert!(n >= 4, "{n}");
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    // SLOWLOG RESET itself is logged once its reply is out; nothing before it is left.
    let log = slowlog(&mut c);
    assert!(log.iter().all(|e| e.2[0] == "SLOWLOG"), "{log:?}");

    // LATENCY: a threshold of 1 ms; writes through Raft fsync take that on most disks,
    // so poll with a deadline for the command event.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-monitor-threshold")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let latest = common::wait_for(
        std::time::Duration::from_secs(20),
        "a latency sample",
        || {
            let _: () = redis::cmd("SET").arg("a").arg("2").query(&mut c).ok()?;
            let v: Vec<(String, i64, i64, i64)> =
                redis::cmd("LATENCY").arg("LATEST").query(&mut c).ok()?;
            v.into_iter().find(|e| e.0 == "command")
        },
    );
    assert!(latest.2 >= 1 && latest.3 >= latest.2, "{latest:?}");
    let hist: Vec<(i64, i64)> = redis::cmd("LATENCY")
        .arg("HISTORY")
        .arg("command")
        .query(&mut c)
        .unwrap();
    assert!(!hist.is_empty() && hist.iter().all(|(_, ms)| *ms >= 1));
    let _: i64 = redis::cmd("LATENCY").arg("RESET").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-monitor-threshold")
        .arg("0")
        .query(&mut c)
        .unwrap();
    let v: Vec<redis::Value> = redis::cmd("LATENCY").arg("LATEST").query(&mut c).unwrap();
    assert!(v.is_empty(), "{v:?}");

    // CONFIG GET patterns; CONFIG SET of run-time and fixed settings.
    let got: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("slowlog-*")
        .query(&mut c)
        .unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got["slowlog-log-slower-than"], "0");
    assert_eq!(got["slowlog-max-len"], "128");
    let all: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*")
        .query(&mut c)
        .unwrap();
    assert!(all.contains_key("latency-monitor-threshold") && all.contains_key("port"));
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string().contains("couldn't be parsed into an integer"),
        "{e}"
    );
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("no-such")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Unknown option"), "{e}");
}

/// One HTTP GET over a plain TCP socket: (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

/// Parses the exposition text: every line is `# HELP`, `# TYPE` or `name{labels} value`.
fn parse_metrics(body: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                for l in labels.split(',') {
                    let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
                (n.to_string(), labels.to_string())
            }
            None => (series.to_string(), String::new()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        out.push((name, labels, value));
    }
    out
}

#[test]
fn metrics_endpoint_serves_the_exposition_format() {
    // One port for all three nodes: the first to bind it serves it (the others log that
    // they could not); each node gets the same requests, so its counts are known.
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let cl = Cluster::start_with(3, &["--metrics-addr", &addr]);
    cl.wait_leader();
    for node in 0..3 {
        let mut c = cl.client(node);
        for i in 0..5 {
            let _: () = redis::cmd("SET")
                .arg(format!("m{node}-{i}"))
                .arg("v")
                .query(&mut c)
                .unwrap();
        }
        assert!(redis::cmd("LPUSH")
            .arg("m0-0")
            .arg("x")
            .query::<i64>(&mut c)
            .is_err());
    }
    let (status, body) = common::wait_for(
        std::time::Duration::from_secs(10),
        "the metrics endpoint",
        || http_get(port, "/metrics"),
    );
    assert!(status.contains("200"), "{status}");
    let m = parse_metrics(&body);
    let get = |name: &str, label: &str| {
        m.iter()
            .find(|(n, l, _)| n == name && l.contains(label))
            .map(|x| x.2)
            .unwrap_or_else(|| panic!("{name}{{{label}}} missing:\n{body}"))
    };
    assert_eq!(get("raftkv_commands_total", "cmd=\"set\""), 5.0);
    assert_eq!(get("raftkv_commands_failed_total", "cmd=\"lpush\""), 1.0);
    assert_eq!(get("raftkv_errors_total", "prefix=\"WRONGTYPE\""), 1.0);
    assert!(get("raftkv_raft_term", "group=\"1\"") >= 1.0);
    assert!(get("raftkv_raft_applied_index", "group=\"1\"") >= 15.0);
    assert!(get("raftkv_raft_fsyncs_total", "group=\"1\"") > 0.0);
    assert!(get("raftkv_raft_log_cache_bytes", "group=\"1\"") > 0.0);
    assert!(get("raftkv_connections_received_total", "") >= 1.0);
    assert!(get("raftkv_rocksdb_live_data_bytes", "") >= 0.0);
    // Buckets are cumulative.
    let buckets: Vec<f64> = m
        .iter()
        .filter(|(n, l, _)| {
            n == "raftkv_command_duration_seconds_bucket" && l.contains("cmd=\"set\"")
        })
        .map(|x| x.2)
        .collect();
    assert_eq!(buckets.len(), 15);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some(5.0));
    // The raft log's fsync histogram: per group, cumulative, +Inf = _count = the fsyncs.
    let fsync = "raftkv_raft_fsync_duration_seconds";
    let buckets: Vec<(String, f64)> = m
        .iter()
        .filter(|(n, l, _)| *n == format!("{fsync}_bucket") && l.contains("group=\"1\""))
        .map(|(_, l, v)| (l.clone(), *v))
        .collect();
    assert_eq!(buckets.len(), 15, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert!(buckets[0].0.contains("le=\"0.00005\""), "{buckets:?}");
    assert!(buckets[14].0.contains("le=\"+Inf\""), "{buckets:?}");
    let count = get(&format!("{fsync}_count"), "group=\"1\"");
    assert_eq!(buckets[14].1, count);
    assert!(count > 0.0);
    assert!(get(&format!("{fsync}_sum"), "group=\"1\"") > 0.0);
    let (status, _) = http_get(port, "/other").unwrap_or_default();
    assert!(status.contains("404"), "{status}");
}

#[test]
fn config_set_of_run_time_settings() {
    let cl = Cluster::start(3);
    let node = cl.wait_leader();
    let mut c = cl.client(node);
    let set = |c: &mut redis::Connection, k: &str, v: &str| {
        redis::cmd("CONFIG").arg("SET").arg(k).arg(v).query::<()>(c)
    };
    let get = |c: &mut redis::Connection, k: &str| {
        let m: HashMap<String, String> = redis::cmd("CONFIG").arg("GET").arg(k).query(c).unwrap();
        m.get(k).cloned().unwrap_or_default()
    };
    assert_eq!(get(&mut c, "loglevel"), "debug");
    set(&mut c, "loglevel", "warning").unwrap();
    assert_eq!(get(&mut c, "loglevel"), "warning");
    let e = set(&mut c, "loglevel", "loud").unwrap_err();
    assert!(
        e.to_string().contains("must be one of the following"),
        "{e}"
    );
    // maxclients: lowered to the clients open now, a new connection is refused.
    set(&mut c, "maxclients", "1").unwrap();
    assert_eq!(get(&mut c, "maxclients"), "1");
    assert_eq!(
        info(&mut c, "clients")
            .get("maxclients")
            .map(String::as_str),
        Some("1")
    );
    let mut other = std::net::TcpStream::connect(("127.0.0.1", cl.port(node))).unwrap();
    other
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut refused = String::new();
    let _ = std::io::Read::read_to_string(&mut other, &mut refused);
    assert_eq!(refused, "-ERR max number of clients reached\r\n");
    set(&mut c, "maxclients", "100").unwrap();
    let mut again = cl.client(node);
    let pong: String = redis::cmd("PING").query(&mut again).unwrap();
    assert_eq!(pong, "PONG");
}

/// INFO raft shows the raft log's fsync histogram (cumulative, its `le_inf` the syncs counted
/// in `raft_log_syncs`) and Redis-style percentiles read from it.
#[test]
fn info_raft_shows_the_log_sync_histogram() {
    let cl = Cluster::start(1);
    cl.wait_leader();
    let mut c = cl.client(0);
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("s{i}"))
            .arg("v")
            .query(&mut c)
            .unwrap();
    }
    // Read while the sync thread may be counting: wait until the two agree.
    let (hist, pct, syncs) = common::wait_for(
        std::time::Duration::from_secs(10),
        "the histogram to count every sync",
        || {
            let f = info(&mut c, "raft");
            let syncs: u64 = f.get("raft_log_syncs")?.parse().ok()?;
            let hist = f.get("raft_log_sync_histogram_usec")?.clone();
            let pct = f.get("raft_log_sync_percentiles_usec")?.clone();
            let inf: u64 = pairs(&hist).get("le_inf")?.parse().ok()?;
            (inf == syncs && syncs > 0).then_some((hist, pct, syncs))
        },
    );
    let counts: Vec<(u64, u64)> = hist
        .split(',')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.strip_prefix("le_")?.parse().ok()?, v.parse().ok()?))
        })
        .collect();
    assert_eq!(counts.len(), 14, "{hist}");
    assert!(
        counts
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{hist}"
    );
    let p = pairs(&pct);
    let bound = |k: &str| match p.get(k).map(String::as_str) {
        Some("inf") => u64::MAX,
        v => v
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} missing from {pct}")),
    };
    let (p50, p99, p999) = (bound("p50"), bound("p99"), bound("p99.9"));
    assert!(p50 <= p99 && p99 <= p999, "{pct}");
    // p50 is the first bound holding at least half the syncs.
    let expect = counts
        .iter()
        .find(|(_, n)| n * 2 >= syncs)
        .map_or(u64::MAX, |x| x.0);
    assert_eq!(p50, expect, "{hist} / {pct}");
}
