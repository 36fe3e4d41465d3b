//! Unit tests of the geo family through the store (apply and read paths), against the
//! values Redis documents on its command pages (the Sicily examples: GEOADD, GEODIST,
//! GEOHASH, GEOPOS, GEORADIUS, GEORADIUSBYMEMBER, GEOSEARCH, GEOSEARCHSTORE), and Redis's
//! order of errors (the key's type, the centre member, then the arguments).

use super::*;
use crate::tests_coll::{bulk, T, WRONGTYPE_ERR};

fn arr(v: Vec<Reply>) -> Reply {
    Reply::Array(v)
}

fn coord(lon: &str, lat: &str) -> Reply {
    arr(vec![
        Reply::DoubleText(lon.into()),
        Reply::DoubleText(lat.into()),
    ])
}

fn palermo() -> Reply {
    coord("13.36138933897018433", "38.11555639549629859")
}

fn catania() -> Reply {
    coord("15.08726745843887329", "37.50266842333162032")
}

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn sicily() -> T {
    let mut t = T::new();
    let added = t.w("GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania");
    assert_eq!(added, Reply::Int(2));
    t
}

#[test]
fn geoadd_geodist_geohash_geopos_as_documented() {
    let mut t = sicily();
    assert_eq!(t.r("GEODIST Sicily Palermo Catania"), bulk("166274.1516"));
    assert_eq!(t.r("GEODIST Sicily Palermo Catania km"), bulk("166.2742"));
    assert_eq!(t.r("GEODIST Sicily Palermo Catania MI"), bulk("103.3182"));
    assert_eq!(t.r("GEODIST Sicily Foo Bar"), Reply::Nil);
    assert_eq!(t.r("GEODIST nokey Foo Bar"), Reply::Nil);
    assert_eq!(
        t.r("GEOHASH Sicily Palermo Catania nosuch"),
        arr(vec![bulk("sqc8b49rny0"), bulk("sqdtr74hyu0"), Reply::Nil])
    );
    assert_eq!(
        t.r("GEOPOS Sicily Palermo Catania NonExisting"),
        arr(vec![palermo(), catania(), Reply::NilArray])
    );
    assert_eq!(
        t.r("GEOPOS nokey a b"),
        arr(vec![Reply::NilArray, Reply::NilArray])
    );
    // The scores are the 52-bit geohashes Redis stores.
    assert_eq!(
        t.r("ZSCORE Sicily Palermo"),
        Reply::Double(3479099956230698.0)
    );
    assert_eq!(t.r("TYPE Sicily"), Reply::Status("zset".into()));
    // NX / XX / CH as ZADD's.
    assert_eq!(t.w("GEOADD Sicily NX 13 38 Palermo 1 1 new"), Reply::Int(1));
    assert_eq!(
        t.w("GEOADD Sicily XX CH 13 38 Palermo 2 2 other"),
        Reply::Int(1)
    );
    assert_eq!(t.r("ZCARD Sicily"), Reply::Int(3));
    t.w("SET s x");
    assert_eq!(t.w("GEOADD s 1 1 a"), err(WRONGTYPE_ERR));
    assert_eq!(t.r("GEOPOS s a"), err(WRONGTYPE_ERR));
    assert_eq!(t.r("GEODIST s a b"), err(WRONGTYPE_ERR));
    assert_eq!(t.r("GEOHASH s a"), err(WRONGTYPE_ERR));
}

#[test]
fn georadius_replies_as_documented() {
    let mut t = sicily();
    assert_eq!(
        t.r("GEORADIUS Sicily 15 37 200 km WITHDIST"),
        arr(vec![
            arr(vec![bulk("Palermo"), bulk("190.4424")]),
            arr(vec![bulk("Catania"), bulk("56.4413")]),
        ])
    );
    assert_eq!(
        t.r("GEORADIUS Sicily 15 37 200 km WITHCOORD"),
        arr(vec![
            arr(vec![bulk("Palermo"), palermo()]),
            arr(vec![bulk("Catania"), catania()]),
        ])
    );
    assert_eq!(
        t.r("GEORADIUS_RO Sicily 15 37 200 km WITHDIST WITHCOORD"),
        arr(vec![
            arr(vec![bulk("Palermo"), bulk("190.4424"), palermo()]),
            arr(vec![bulk("Catania"), bulk("56.4413"), catania()]),
        ])
    );
    assert_eq!(
        t.r("GEORADIUS Sicily 15 37 200 km ASC COUNT 1 WITHHASH"),
        arr(vec![arr(vec![
            bulk("Catania"),
            Reply::Int(3479447370796909)
        ])])
    );
    assert_eq!(
        t.r("GEORADIUS Sicily 15 37 200 km DESC"),
        arr(vec![bulk("Palermo"), bulk("Catania")])
    );
    assert_eq!(t.r("GEORADIUS Sicily 15 37 1 km"), arr(vec![]));
    assert_eq!(t.r("GEORADIUS nokey 15 37 1 km"), arr(vec![]));
    t.w("GEOADD Sicily 13.583333 37.316667 Agrigento");
    assert_eq!(
        t.r("GEORADIUSBYMEMBER Sicily Agrigento 100 km"),
        arr(vec![bulk("Agrigento"), bulk("Palermo")])
    );
    assert_eq!(
        t.r("GEORADIUSBYMEMBER_RO Sicily Agrigento 100 km COUNT 1 ANY"),
        arr(vec![bulk("Agrigento")])
    );
}

#[test]
fn geosearch_and_geosearchstore_as_documented() {
    let mut t = sicily();
    t.w("GEOADD Sicily 12.758489 38.788135 edge1 17.241510 38.788135 edge2");
    assert_eq!(
        t.r("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC"),
        arr(vec![bulk("Catania"), bulk("Palermo")])
    );
    assert_eq!(
        t.r("GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST"),
        arr(vec![
            arr(vec![bulk("Catania"), bulk("56.4413"), catania()]),
            arr(vec![bulk("Palermo"), bulk("190.4424"), palermo()]),
            arr(vec![
                bulk("edge2"),
                bulk("279.7403"),
                coord("17.24151045083999634", "38.78813451624225195")
            ]),
            arr(vec![
                bulk("edge1"),
                bulk("279.7405"),
                coord("12.7584877610206604", "38.78813451624225195")
            ]),
        ])
    );
    let store = "GEOSEARCHSTORE key1 Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC COUNT 3";
    assert_eq!(t.w(store), Reply::Int(3));
    assert_eq!(
        t.r("GEOSEARCH key1 FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHHASH"),
        arr(vec![
            arr(vec![bulk("Catania"), Reply::Int(3479447370796909)]),
            arr(vec![bulk("Palermo"), Reply::Int(3479099956230698)]),
            arr(vec![bulk("edge2"), Reply::Int(3481342659049484)]),
        ])
    );
    let store =
        "GEOSEARCHSTORE key2 Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC COUNT 3 STOREDIST";
    assert_eq!(t.w(store), Reply::Int(3));
    let Reply::Pairs(got) = t.r("ZRANGE key2 0 -1 WITHSCORES") else {
        panic!()
    };
    let text: Vec<String> = got
        .iter()
        .map(|(_, s)| match s {
            Reply::Double(d) => resp::encode::format_reply_double(*d),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        text,
        [
            "56.4412578701582",
            "190.44242984775784",
            "279.7403417843143"
        ]
    );
    assert_eq!(
        t.r("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 1 m"),
        arr(vec![bulk("Palermo")])
    );
}

#[test]
fn store_forms_replace_or_delete_the_destination() {
    let mut t = sicily();
    assert_eq!(
        t.w("GEORADIUS Sicily 15 37 200 km STORE {x}d"),
        Reply::Int(2)
    );
    assert_eq!(t.r("ZCARD {x}d"), Reply::Int(2));
    assert_eq!(
        t.w("GEORADIUS Sicily 15 37 200 km STOREDIST dd"),
        Reply::Int(2)
    );
    assert_eq!(
        t.r("ZRANGE dd 0 0 WITHSCORES"),
        Reply::Pairs(vec![(bulk("Catania"), Reply::Double(56.4412578701582))])
    );
    // No hits, or no source: the destination goes, the reply is 0.
    assert_eq!(t.w("GEORADIUS Sicily 15 37 1 m STORE {x}d"), Reply::Int(0));
    assert_eq!(t.r("EXISTS {x}d"), Reply::Int(0));
    t.w("SET s v");
    assert_eq!(
        t.w("GEOSEARCHSTORE s nokey FROMLONLAT 1 1 BYRADIUS 1 m"),
        Reply::Int(0)
    );
    assert_eq!(t.r("EXISTS s"), Reply::Int(0));
    assert_eq!(
        t.w("GEORADIUSBYMEMBER Sicily Palermo 200 km STORE s"),
        Reply::Int(2)
    );
}

#[test]
fn errors_come_in_redis_order() {
    let mut t = sicily();
    t.w("SET s x");
    // The key's type first, even before the arguments.
    assert_eq!(t.r("GEORADIUS s 1 1 -1 m"), err(WRONGTYPE_ERR));
    assert_eq!(
        t.r("GEOSEARCH s FROMLONLAT 1 1 WITHDIST ASC"),
        err(WRONGTYPE_ERR)
    );
    let no_member = err("ERR could not decode requested zset member");
    assert_eq!(t.r("GEORADIUSBYMEMBER Sicily nosuch 100 km"), no_member);
    assert_eq!(t.r("GEORADIUSBYMEMBER Sicily nosuch -1 km"), no_member);
    assert_eq!(t.r("GEORADIUSBYMEMBER nokey nosuch 100 km"), arr(vec![]));
    // Without the key Redis never parses BYMEMBER's radius; with it, after the member.
    assert_eq!(t.r("GEORADIUSBYMEMBER nokey m -1 furlongs"), arr(vec![]));
    t.w("SET {z}d x");
    assert_eq!(
        t.w("GEORADIUSBYMEMBER {z}no m -1 km STORE {z}d"),
        Reply::Int(0)
    );
    assert_eq!(t.r("EXISTS {z}d"), Reply::Int(0));
    assert_eq!(
        t.r("GEORADIUSBYMEMBER Sicily Palermo -1 km"),
        err("ERR radius cannot be negative")
    );
    assert_eq!(
        t.r("GEORADIUSBYMEMBER nokey m 1 km COUNT 0"),
        err("ERR COUNT must be > 0")
    );
    assert_eq!(
        t.r("GEOSEARCH Sicily FROMMEMBER nosuch BYRADIUS -1 m"),
        no_member
    );
    assert_eq!(
        t.r("GEOSEARCH Sicily BYRADIUS -1 m FROMMEMBER nosuch"),
        err("ERR radius cannot be negative")
    );
    assert_eq!(
        t.r("GEOSEARCH nokey FROMMEMBER nosuch BYRADIUS -1 m"),
        err("ERR radius cannot be negative")
    );
    assert_eq!(
        t.r("GEORADIUS nokey 1 1 1 m ANY"),
        err("ERR the ANY argument requires COUNT argument")
    );
    assert_eq!(
        t.w("GEOSEARCHSTORE d Sicily FROMLONLAT 1 1 BYRADIUS 1 m WITHDIST"),
        err("ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
    );
}

#[test]
fn a_search_scans_only_its_boxes() {
    let mut t = T::new();
    // 2000 points spread over the world, 3 near Catania.
    let mut cmds = Vec::new();
    for i in 0..2000 {
        let lon = -179.0 + (i % 100) as f64 * 3.5;
        let lat = -80.0 + (i / 100) as f64 * 8.0;
        cmds.push(format!("GEOADD w {lon} {lat} p{i}"));
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    t.batch(&cmds);
    t.w("GEOADD w 15.08 37.50 a 15.09 37.51 b 15.10 37.49 c");
    let Reply::Array(got) = t.r("GEOSEARCH w FROMLONLAT 15.09 37.50 BYRADIUS 5 km ASC") else {
        panic!()
    };
    assert_eq!(got.len(), 3);
    let snap = t.db.snapshot();
    let view = crate::types::view::DbView::at_snapshot(&t.db, &snap, 1000);
    let shape = crate::types::geohash::Shape::Radius {
        r: 5.0,
        unit: 1000.0,
    };
    let hits = crate::types::geo::search(&view, b"w", (15.09, 37.50), shape, 0).unwrap();
    assert_eq!(hits.map(|h| h.len()), Some(3));
    let touched = view.stats().reads();
    assert!(touched < 50, "{touched} records for a 5 km search");
}
