//! Geo commands, SORT and DUMP / RESTORE on a real 3-node cluster through the `redis`
//! crate: Redis's documented replies (the Sicily examples), writes through every node
//! (GEOADD, GEORADIUS ... STORE, GEOSEARCHSTORE, SORT ... STORE, RESTORE) and the state read
//! back byte-identical on every node (DUMP payloads), also after a kill -9 and restart; the
//! cluster rule for SORT's patterns; RESP2 and RESP3 shapes of the geo replies.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use common::raw::read_until;
use common::Cluster;
use redis::{Connection, Value};

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn q_err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
        Ok(v) => panic!("{args:?}: expected an error, got {v:?}"),
    }
}

fn dump(con: &mut Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("DUMP {key}: {e}"))
}

const KEYS: &[&str] = &[
    "Sicily",
    "{g}near",
    "{g}dist",
    "nearby",
    "{u}ids",
    "{u}sorted",
    "{u}byname",
    "copy",
    "str-copy",
];

/// Every key's DUMP payload (and its TTL class) on node `i`.
fn state(c: &Cluster, i: usize) -> Vec<(Option<Vec<u8>>, i64)> {
    let mut con = c.client(i);
    KEYS.iter()
        .map(|k| {
            let ttl: i64 = q(&mut con, &["TTL", k]);
            (dump(&mut con, k), ttl.signum())
        })
        .collect()
}

/// The geo family's documented replies, written through node 0 and read on node 1.
fn geo_replies(c: &Cluster) {
    let mut w = c.client(0);
    let mut r = c.client(1);
    let args = [
        "GEOADD",
        "Sicily",
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
    ];
    assert_eq!(q::<i64>(&mut w, &args), 2);
    assert_eq!(
        q::<String>(&mut r, &["GEODIST", "Sicily", "Palermo", "Catania"]),
        "166274.1516"
    );
    assert_eq!(
        q::<String>(&mut r, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]),
        "166.2742"
    );
    assert_eq!(
        q::<Vec<String>>(&mut r, &["GEOHASH", "Sicily", "Palermo", "Catania"]),
        ["sqc8b49rny0", "sqdtr74hyu0"]
    );
    let pos: Vec<Option<Vec<String>>> = q(&mut r, &["GEOPOS", "Sicily", "Palermo", "nosuch"]);
    assert_eq!(
        pos,
        [
            Some(vec![
                "13.36138933897018433".to_string(),
                "38.11555639549629859".to_string()
            ]),
            None
        ]
    );
    let near: Vec<(String, String)> = q(
        &mut r,
        &["GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST"],
    );
    let want = [("Palermo", "190.4424"), ("Catania", "56.4413")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(near, want);
    let args = [
        "GEOADD",
        "Sicily",
        "12.758489",
        "38.788135",
        "edge1",
        "17.241510",
        "38.788135",
        "edge2",
    ];
    assert_eq!(q::<i64>(&mut c.client(2), &args), 2);
    let boxed: Vec<String> = q(
        &mut r,
        &[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "400",
            "400",
            "km",
            "ASC",
        ],
    );
    assert_eq!(boxed, ["Catania", "Palermo", "edge2", "edge1"]);
}

/// The store forms and SORT / RESTORE, each through another node.
fn store_forms(c: &Cluster) {
    let mut n0 = c.client(0);
    let mut n1 = c.client(1);
    let mut n2 = c.client(2);
    // GEORADIUS reads Sicily and writes {g}near: the store key is routed with it.
    let args = [
        "GEORADIUS",
        "Sicily",
        "15",
        "37",
        "200",
        "km",
        "STORE",
        "{g}near",
    ];
    assert_eq!(q::<i64>(&mut n1, &args), 2);
    let args = [
        "GEOSEARCHSTORE",
        "{g}dist",
        "Sicily",
        "FROMMEMBER",
        "Palermo",
        "BYRADIUS",
        "300",
        "km",
        "ASC",
        "COUNT",
        "2",
        "STOREDIST",
    ];
    assert_eq!(q::<i64>(&mut n2, &args), 2);
    let args = [
        "GEORADIUSBYMEMBER",
        "Sicily",
        "Catania",
        "100",
        "km",
        "STORE",
        "nearby",
    ];
    assert_eq!(q::<i64>(&mut n0, &args), 1);
    let scored: Vec<String> = q(&mut n0, &["ZRANGE", "{g}dist", "0", "-1", "WITHSCORES"]);
    assert_eq!(scored, ["Palermo", "0", "edge1", "91.40065860581427"]);

    assert_eq!(q::<i64>(&mut n0, &["RPUSH", "{u}ids", "3", "1", "2"]), 3);
    let mset = [
        "MSET", "{u}w_1", "30", "{u}w_2", "10", "{u}w_3", "20", "{u}n_1", "ann", "{u}n_2", "bob",
        "{u}n_3", "cy",
    ];
    assert_eq!(q::<String>(&mut n1, &mset), "OK");
    assert_eq!(
        q::<Vec<String>>(
            &mut n2,
            &["SORT", "{u}ids", "BY", "{u}w_*", "GET", "{u}n_*"]
        ),
        ["bob", "cy", "ann"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut n1, &["SORT_RO", "{u}ids", "DESC", "LIMIT", "0", "2"]),
        ["3", "2"]
    );
    let args = ["SORT", "{u}ids", "STORE", "{u}sorted"];
    assert_eq!(q::<i64>(&mut n2, &args), 3);
    let args = [
        "SORT",
        "{u}ids",
        "BY",
        "{u}n_*",
        "ALPHA",
        "DESC",
        "GET",
        "#",
        "STORE",
        "{u}byname",
    ];
    assert_eq!(q::<i64>(&mut n0, &args), 3);
    assert_eq!(
        q_err(&mut n0, &["SORT", "{u}ids", "BY", "w_*"]),
        "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
    );
    assert_eq!(
        q_err(&mut n1, &["SORT", "{u}ids", "GET", "{x}n_*"]),
        "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
    );

    // DUMP on one node, RESTORE through another, with a TTL.
    let payload = dump(&mut n1, "Sicily").expect("payload");
    let restored: String = redis::cmd("RESTORE")
        .arg("copy")
        .arg(100_000)
        .arg(&payload)
        .query(&mut n2)
        .expect("RESTORE");
    assert_eq!(restored, "OK");
    let busy = redis::cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(&payload)
        .query::<Value>(&mut n0)
        .unwrap_err();
    assert_eq!(busy.code(), Some("BUSYKEY"), "{busy}");
    let mut bad = payload.clone();
    bad[1] ^= 0x55;
    let e = redis::cmd("RESTORE")
        .arg("other")
        .arg(0)
        .arg(&bad)
        .query::<Value>(&mut n0)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("DUMP payload version or checksum are wrong"),
        "{e}"
    );
    assert_eq!(q::<String>(&mut n0, &["SET", "str", "hello"]), "OK");
    let sp = dump(&mut n0, "str").expect("payload");
    let ok: String = redis::cmd("RESTORE")
        .arg("str-copy")
        .arg(0)
        .arg(&sp)
        .query(&mut n1)
        .expect("RESTORE str");
    assert_eq!(ok, "OK");
    assert_eq!(q::<String>(&mut n2, &["GET", "str-copy"]), "hello");
    assert_eq!(
        q::<Vec<String>>(&mut n2, &["GEOHASH", "copy", "Palermo"]),
        ["sqc8b49rny0"]
    );
}

#[test]
fn geo_sort_and_dump_replicate_identically_to_every_node() {
    let mut c = Cluster::start(3);
    geo_replies(&c);
    store_forms(&c);
    let want = state(&c, 0);
    assert!(want.iter().all(|(p, _)| p.is_some()), "every key exists");
    assert_eq!(want[7].1, 1, "the restored copy has a TTL");
    common::wait_for(Duration::from_secs(10), "identical state", || {
        ((1..3).all(|i| state(&c, i) == want)).then_some(())
    });
    // After a kill -9 and restart the node replays to the same bytes.
    c.kill(2);
    c.restart(2);
    c.wait_serving(2);
    common::wait_for(Duration::from_secs(20), "state after restart", || {
        (state(&c, 2) == want).then_some(())
    });
}

#[test]
fn geo_replies_in_resp2_and_resp3() {
    let c = Cluster::start(1);
    let mut s = TcpStream::connect(("127.0.0.1", c.port(0))).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s.write_all(b"GEOADD g 13.361389 38.115556 P\r\nGEOPOS g P x\r\nGEODIST g P P km\r\nGEORADIUS g 13 38 100 km WITHDIST WITHHASH WITHCOORD\r\nPING\r\n")
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let pos2 = "*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n";
    let want2 = format!(
        ":1\r\n*2\r\n{pos2}*-1\r\n$6\r\n0.0000\r\n*1\r\n*4\r\n$1\r\nP\r\n$7\r\n34.1601\r\n:3479099956230698\r\n{pos2}+PONG\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&got), want2);
    s.write_all(b"HELLO 3\r\nGEOPOS g P x\r\nGEODIST g P P\r\nPING\r\n")
        .expect("write");
    let got = read_until(&mut s, b"+PONG\r\n");
    let want3 = "*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n$6\r\n0.0000\r\n+PONG\r\n";
    assert!(
        String::from_utf8_lossy(&got).ends_with(want3),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
