//! Introspection on a real 3-node cluster: INFO's Redis 7.0 sections parse and agree with
//! RAFT.NODES and DBSIZE (replication roles, master address, slave lines, keyspace counts),
//! section selection (`default`, `all`, `everything`, several names, unknown names), and
//! CLIENT LIST's TYPE / ID filters with Redis's errors, COPY of every type replicated to every node
//! (with OBJECT ENCODING and RANDOMKEY there), and a COPY waking a client blocked on its
//! destination (INFO blocked_clients).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{wait_for, Cluster};

/// INFO `sections` of node `i` as a field map, plus the section headers in order.
fn info(cl: &Cluster, i: usize, sections: &[&str]) -> (HashMap<String, String>, Vec<String>) {
    let mut c = cl.client(i);
    let text: String = redis::cmd("INFO")
        .arg(sections)
        .query(&mut c)
        .unwrap_or_default();
    let mut fields = HashMap::new();
    let mut heads = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            heads.push(h.to_string());
        } else if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.to_string(), v.to_string());
        }
    }
    (fields, heads)
}

/// Polls `f` until it holds or `timeout` passes; whether it held.
fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn num(f: &HashMap<String, String>, k: &str) -> f64 {
    f.get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("field {k} missing or not a number: {f:?}"))
}

#[test]
fn info_sections_parse_and_agree_with_raft_nodes_and_dbsize() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let mut c = cl.client(leader);
    for k in 0..5 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{k}"))
            .arg("v")
            .query(&mut c)
            .unwrap_or_default();
    }
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("v")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .unwrap_or_default();

    // Every node: the default sections in Redis's order, fields that parse.
    for i in 0..3 {
        let (f, heads) = info(&cl, i, &[]);
        assert_eq!(
            heads,
            [
                "Server",
                "Clients",
                "Memory",
                "Persistence",
                "Stats",
                "Replication",
                "CPU",
                "Modules",
                "Errorstats",
                "Raft",
                "Cluster",
                "Keyspace"
            ]
        );
        assert_eq!(f["redis_version"], "7.0.0");
        assert_eq!(f["cluster_enabled"], "1");
        assert_eq!(f["loading"], "0");
        assert_eq!(f["aof_enabled"], "1");
        assert_eq!(f["maxmemory"], "0");
        assert!(num(&f, "connected_clients") >= 1.0);
        assert_eq!(num(&f, "blocked_clients"), 0.0);
        assert!(num(&f, "used_memory_rss") > 0.0);
        assert!(num(&f, "used_memory") > 0.0);
        assert!(f["used_memory_human"].ends_with(['K', 'M', 'G']));
        assert!(num(&f, "mem_fragmentation_ratio") > 0.0);
        assert!(num(&f, "used_cpu_user") > 0.0 || num(&f, "used_cpu_sys") > 0.0);
        assert!(num(&f, "used_cpu_user_children") >= 0.0);
        assert!(num(&f, "uptime_in_seconds") >= 0.0);
        assert_eq!(f["tcp_port"], cl.port(i).to_string());
    }

    // Keyspace agrees with DBSIZE on every node once replicated.
    for i in 0..3 {
        wait_for(Duration::from_secs(10), "keyspace replicated", || {
            let mut c = cl.client(i);
            let n: i64 = redis::cmd("DBSIZE").query(&mut c).ok()?;
            let (f, _) = info(&cl, i, &["keyspace"]);
            (n == 6 && f.get("db0").map(String::as_str) == Some("keys=6,expires=1,avg_ttl=0"))
                .then_some(())
        });
    }

    // Replication agrees with RAFT.NODES: the leader lists the two others as slaves at their
    // client ports, each follower names the leader's client address as its master.
    let raft = cl.raft_nodes(leader);
    assert_eq!(raft.len(), 3, "{raft:?}");
    let (lf, _) = wait_for(Duration::from_secs(10), "two slave lines", || {
        let (f, h) = info(&cl, leader, &["replication"]);
        (f.get("connected_slaves").map(String::as_str) == Some("2")).then_some((f, h))
    });
    assert_eq!(lf["role"], "master");
    let mut slave_ports: Vec<String> = (0..2)
        .map(|n| {
            let line = &lf[&format!("slave{n}")];
            assert!(line.starts_with("ip=127.0.0.1,port="), "{line}");
            assert!(line.contains(",state=online,offset="), "{line}");
            line.split(',').nth(1).unwrap_or_default()[5..].to_string()
        })
        .collect();
    slave_ports.sort();
    let mut want: Vec<String> = (0..3)
        .filter(|&i| i != leader)
        .map(|i| cl.port(i).to_string())
        .collect();
    want.sort();
    assert_eq!(slave_ports, want);
    for i in (0..3).filter(|&i| i != leader) {
        let f = wait_for(Duration::from_secs(10), "master address", || {
            let (f, _) = info(&cl, i, &["replication"]);
            f.contains_key("master_port").then_some(f)
        });
        assert_eq!(f["role"], "slave");
        assert_eq!(f["master_host"], "127.0.0.1");
        assert_eq!(f["master_port"], cl.port(leader).to_string());
        assert_eq!(f["master_link_status"], "up");
        assert!(num(&f, "slave_repl_offset") > 0.0);
        // The Raft role in the same reply agrees.
        let line = cl
            .raft_nodes(i)
            .into_iter()
            .find(|l| l.contains("myself"))
            .unwrap_or_default();
        assert!(line.contains("follower"), "{line}");
    }
}

#[test]
fn info_section_selection() {
    let cl = Cluster::start(1);
    cl.wait_leader();
    let heads = |s: &[&str]| info(&cl, 0, s).1;
    assert_eq!(heads(&["default"]), heads(&[]));
    let all = heads(&["all"]);
    assert!(all.contains(&"Commandstats".to_string()), "{all:?}");
    assert_eq!(heads(&["everything"]), all);
    assert_eq!(
        heads(&["keyspace", "CPU", "server"]),
        ["Server", "CPU", "Keyspace"]
    );
    assert_eq!(heads(&["memory", "persistence"]), ["Memory", "Persistence"]);
    assert_eq!(heads(&["raft"]), ["Raft"]);
    let mut c = cl.client(0);
    let unknown: String = redis::cmd("INFO")
        .arg("nosuchsection")
        .query(&mut c)
        .unwrap_or_else(|_| "error".into());
    assert_eq!(unknown, "");
    // CONFIG GET agrees with INFO persistence and shows the limits a client can hit.
    let (persistence, _) = info(&cl, 0, &["persistence"]);
    assert_eq!(
        persistence.get("aof_enabled").map(String::as_str),
        Some("1")
    );
    let conf: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .arg("max-write-bytes")
        .arg("client-output-buffer-limit")
        .arg("redirect")
        .query(&mut c)
        .expect("CONFIG GET");
    assert_eq!(conf["appendonly"], "yes");
    assert_eq!(conf["max-write-bytes"], "33554432");
    assert_eq!(
        conf["client-output-buffer-limit"],
        "normal 1073741824 0 0 slave 0 0 0 pubsub 33554432 0 0"
    );
    assert_eq!(conf["redirect"], "forward");
}

#[test]
fn client_list_filters() {
    let cl = Cluster::start(1);
    cl.wait_leader();
    let mut a = cl.client(0);
    let mut b = cl.client(0);
    let id_a: i64 = redis::cmd("CLIENT").arg("ID").query(&mut a).unwrap_or(0);
    let id_b: i64 = redis::cmd("CLIENT").arg("ID").query(&mut b).unwrap_or(0);
    let mut list = |args: &[&str]| -> Result<String, String> {
        redis::cmd("CLIENT")
            .arg("LIST")
            .arg(args)
            .query::<String>(&mut a)
            .map_err(|e| e.to_string())
    };
    let ids = |text: &str| -> Vec<i64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect()
    };
    let sa = id_a.to_string();
    let sb = id_b.to_string();
    assert_eq!(ids(&list(&["ID", &sb]).unwrap_or_default()), [id_b]);
    assert_eq!(
        ids(&list(&["id", &sb, &sa, "999999"]).unwrap_or_default()),
        [id_b, id_a]
    );
    assert_eq!(list(&["ID", "0"]).unwrap_or_default(), "");
    let all = ids(&list(&[]).unwrap_or_default());
    assert!(all.contains(&id_a) && all.contains(&id_b), "{all:?}");
    assert_eq!(ids(&list(&["TYPE", "normal"]).unwrap_or_default()), all);
    for t in ["master", "replica", "slave", "pubsub"] {
        assert_eq!(list(&["TYPE", t]).unwrap_or_default(), "", "{t}");
    }
    let e = list(&["TYPE", "foo"]).err().unwrap_or_default();
    assert!(e.contains("Unknown client type 'foo'"), "{e}");
    let e = list(&["ID", "1", "x"]).err().unwrap_or_default();
    assert!(e.contains("Invalid client ID"), "{e}");
    let e = list(&["TYPE", "normal", "ID", "1"])
        .err()
        .unwrap_or_default();
    assert!(e.contains("syntax error"), "{e}");
}

/// A value's dump as the same string on every node: TYPE plus the type's full read.
fn dump(c: &mut redis::Connection, key: &str) -> String {
    let t: String = redis::cmd("TYPE").arg(key).query(c).unwrap_or_default();
    let read = |cmd: &mut redis::Cmd, c: &mut redis::Connection| -> String {
        let v: redis::Value = cmd.query(c).unwrap_or(redis::Value::Nil);
        format!("{v:?}")
    };
    let body = match t.as_str() {
        "string" => read(redis::cmd("GET").arg(key), c),
        "hash" => {
            // Field order follows the name hash, which mixes in the key's version.
            let m: std::collections::BTreeMap<String, String> =
                redis::cmd("HGETALL").arg(key).query(c).unwrap_or_default();
            format!("{m:?}")
        }
        "list" => read(redis::cmd("LRANGE").arg(key).arg(0).arg(-1), c),
        "set" => {
            let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(key).query(c).unwrap_or_default();
            m.sort();
            m.join(",")
        }
        "zset" => read(
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
            c,
        ),
        _ => String::new(),
    };
    let ttl: i64 = redis::cmd("TTL").arg(key).query(c).unwrap_or(-3);
    format!("{t}:{body}:ttl>0={}", ttl > 0)
}

#[test]
fn copy_of_each_type_is_replicated_to_every_node() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let follower = (leader + 1) % 3;
    let mut c = cl.client(follower); // writes are forwarded to the leader
    let setup: &[&[&str]] = &[
        &["SET", "s", "v"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["RPUSH", "l", "x", "y", "z"],
        &["SADD", "set", "m", "n", "o"],
        &["ZADD", "z", "1", "one", "2.5", "two"],
        &["EXPIRE", "h", "1000"],
    ];
    for args in setup {
        let _: redis::Value = redis::cmd(args[0])
            .arg(&args[1..])
            .query(&mut c)
            .unwrap_or(redis::Value::Nil);
    }
    for k in ["s", "h", "l", "set", "z"] {
        let n: i64 = redis::cmd("COPY")
            .arg(k)
            .arg(format!("{k}.copy"))
            .query(&mut c)
            .unwrap_or(-1);
        assert_eq!(n, 1, "COPY {k}");
    }
    // Existing destination: 0, then REPLACE across types; errors as Redis's.
    let n: i64 = redis::cmd("COPY")
        .arg("s")
        .arg("h.copy")
        .query(&mut c)
        .unwrap_or(-1);
    assert_eq!(n, 0);
    let n: i64 = redis::cmd("COPY")
        .arg("z")
        .arg("s2")
        .arg("DB")
        .arg(0)
        .arg("REPLACE")
        .query(&mut c)
        .unwrap_or(-1);
    assert_eq!(n, 1);
    let err =
        |r: redis::RedisResult<redis::Value>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(redis::cmd("COPY").arg("s").arg("s").query(&mut c));
    assert!(
        e.contains("source and destination objects are the same"),
        "{e}"
    );
    let e = err(redis::cmd("COPY")
        .arg("s")
        .arg("x")
        .arg("DB")
        .arg(1)
        .query(&mut c));
    assert!(e.contains("DB index is out of range"), "{e}");

    // Every node, once it has applied the writes, holds identical copies.
    let keys = ["s", "h", "l", "set", "z"];
    for i in 0..3 {
        let mut last = Vec::new();
        let done = poll_until(Duration::from_secs(10), || {
            let mut c = cl.client(i);
            last = keys
                .iter()
                .map(|k| (dump(&mut c, &format!("{k}.copy")), dump(&mut c, k)))
                .collect();
            last.iter()
                .all(|(copy, orig)| !copy.starts_with("none") && copy == orig)
        });
        assert!(done, "node {}: copies differ: {last:?}", i + 1);
        let mut c = cl.client(i);
        assert!(dump(&mut c, "h.copy").ends_with("ttl>0=true"));
        assert!(dump(&mut c, "s2").starts_with("zset:"));
        let enc: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("l.copy")
            .query(&mut c)
            .unwrap_or_default();
        assert_eq!(enc, "quicklist");
        let key: String = redis::cmd("RANDOMKEY").query(&mut c).unwrap_or_default();
        assert!(
            keys.iter().any(|k| key == *k || key == format!("{k}.copy")) || key == "s2",
            "{key}"
        );
    }
    // A copy is independent of its source.
    let _: i64 = redis::cmd("HSET")
        .arg("h.copy")
        .arg("a")
        .arg("9")
        .query(&mut c)
        .unwrap_or(0);
    let a: String = redis::cmd("HGET")
        .arg("h")
        .arg("a")
        .query(&mut c)
        .unwrap_or_default();
    assert_eq!(a, "1");
}

/// A client blocked on node 3 shows in INFO `blocked_clients` there, and a COPY onto its
/// key through another node wakes it with the copied list's head.
#[test]
fn copy_wakes_a_client_blocked_on_its_destination() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let other = (leader + 2) % 3;
    let mut c = cl.client(leader);
    let _: i64 = redis::cmd("RPUSH")
        .arg("q")
        .arg("first")
        .arg("second")
        .query(&mut c)
        .unwrap_or(0);
    let mut blocked = cl.client(other);
    let waiter = std::thread::spawn(move || {
        redis::cmd("BLPOP")
            .arg("q.copy")
            .arg(20)
            .query::<Option<(String, String)>>(&mut blocked)
            .map_err(|e| e.to_string())
    });
    wait_for(Duration::from_secs(10), "the client to block", || {
        let (f, _) = info(&cl, other, &["clients"]);
        (f.get("blocked_clients").map(String::as_str) == Some("1")).then_some(())
    });
    let n: i64 = redis::cmd("COPY")
        .arg("q")
        .arg("q.copy")
        .query(&mut c)
        .unwrap_or(-1);
    assert_eq!(n, 1);
    let popped = waiter
        .join()
        .unwrap_or_else(|_| Err("waiter panicked".into()));
    assert_eq!(popped, Ok(Some(("q.copy".into(), "first".into()))));
    let (f, _) = info(&cl, other, &["clients"]);
    assert_eq!(f["blocked_clients"], "0");
    let rest: Vec<String> = redis::cmd("LRANGE")
        .arg("q.copy")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap_or_default();
    assert_eq!(rest, ["second"]);
}

/// `total_forwarded_writes` counts the writes a follower forwarded, one per command: a
/// pipeline of 50 SETs (forwarded as a few batches) adds 50.
#[test]
fn forwarded_writes_are_counted_per_command() {
    let cl = Cluster::start(3);
    let leader = cl.wait_leader();
    let f = (leader + 1) % 3;
    let before = num(&info(&cl, f, &["stats"]).0, "total_forwarded_writes");
    let mut c = cl.client(f);
    let mut p = redis::pipe();
    for i in 0..50 {
        p.cmd("SET").arg(format!("fw{i}")).arg(i).ignore();
    }
    let () = p.query(&mut c).expect("pipeline");
    let after = num(&info(&cl, f, &["stats"]).0, "total_forwarded_writes");
    assert_eq!(after - before, 50.0);
    // The leader forwards nothing.
    assert_eq!(
        num(&info(&cl, leader, &["stats"]).0, "total_forwarded_writes"),
        0.0
    );
}
