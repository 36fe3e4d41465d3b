//! The geo family's parser (types and entries in `geo.rs`), in Redis 7.0's argument order
//! and with its error texts: GEOADD's flags and triples, units, coordinates within
//! Redis's limits, and the options of every GEORADIUS / GEOSEARCH form.

use bytes::Bytes;

use super::coll::Typed;
use super::geo::{
    GeoAddOpts, GeoFrom, GeoOp, GeoSearch, GeoShape, GeoSort, GEORADIUSBYMEMBER_READ,
    GEORADIUS_READ,
};
use super::spec::CommandSpec;
use super::util::{int, parse_float, syntax, upper};
use crate::{Command, Reply};

/// Redis's longitude limits.
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
/// Redis's latitude limits (EPSG:900913: the poles cannot be encoded).
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;

fn not_float() -> Reply {
    Reply::err("ERR value is not a valid float")
}

/// The family's parser (one for every entry, by name).
pub fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[2..];
    let (spec, op) = match spec.name {
        "GEOADD" => (spec, geoadd(a)?),
        "GEODIST" => (spec, geodist(argv)?),
        "GEOHASH" => (spec, GeoOp::Hash(a.to_vec())),
        "GEOPOS" => (spec, GeoOp::Pos(a.to_vec())),
        _ => search(spec, argv),
    };
    Ok(Command::Geo(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// Meters per unit: `m`, `km`, `ft`, `mi`, any case.
pub fn unit(b: &[u8]) -> Result<f64, Reply> {
    Ok(match b.to_ascii_lowercase().as_slice() {
        b"m" => 1.0,
        b"km" => 1000.0,
        b"ft" => 0.3048,
        b"mi" => 1609.34,
        _ => {
            return Err(Reply::err(
                "ERR unsupported unit provided. please use M, KM, FT, MI",
            ))
        }
    })
}

/// `longitude latitude`, within Redis's limits.
fn lonlat(a: &[Bytes]) -> Result<(f64, f64), Reply> {
    let lon = parse_float(&a[0]).ok_or_else(not_float)?;
    let lat = parse_float(&a[1]).ok_or_else(not_float)?;
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(Reply::err(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// `radius unit`.
fn radius(a: &[Bytes]) -> Result<(f64, f64), Reply> {
    let r = parse_float(&a[0]).ok_or_else(|| Reply::err("ERR need numeric radius"))?;
    if r < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok((r, unit(&a[1])?))
}

/// `width height unit`.
fn bybox(a: &[Bytes]) -> Result<(f64, f64, f64), Reply> {
    let w = parse_float(&a[0]).ok_or_else(|| Reply::err("ERR need numeric width"))?;
    let h = parse_float(&a[1]).ok_or_else(|| Reply::err("ERR need numeric height"))?;
    if w < 0.0 || h < 0.0 {
        return Err(Reply::err("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(&a[2])?))
}

/// `[NX|XX] [CH] longitude latitude member ...` (Redis accepts the flags in any order).
fn geoadd(a: &[Bytes]) -> Result<GeoOp, Reply> {
    let mut opts = GeoAddOpts::default();
    let mut i = 0;
    while let Some(w) = a.get(i) {
        match upper(w).as_str() {
            "NX" => opts.nx = true,
            "XX" => opts.xx = true,
            "CH" => opts.ch = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &a[i..];
    // No triple at all is ZADD's syntax error in Redis (GEOADD calls ZADD).
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (opts.nx && opts.xx) {
        return Err(syntax());
    }
    let mut points = Vec::with_capacity(rest.len() / 3);
    for t in rest.chunks_exact(3) {
        let (lon, lat) = lonlat(&t[..2])?;
        points.push((lon, lat, t[2].clone()));
    }
    Ok(GeoOp::Add { opts, points })
}

/// `key member1 member2 [unit]`.
fn geodist(argv: &[Bytes]) -> Result<GeoOp, Reply> {
    let unit = match argv.len() {
        4 => 1.0,
        5 => unit(&argv[4])?,
        _ => return Err(syntax()),
    };
    Ok(GeoOp::Dist {
        a: argv[2].clone(),
        b: argv[3].clone(),
        unit,
    })
}

/// Every GEORADIUS / GEOSEARCH form: never an error here (see [`GeoSearch::error`]). A
/// GEORADIUS* without a store key (or with an error) answers to its read entry.
fn search(spec: &'static CommandSpec, argv: &[Bytes]) -> (&'static CommandSpec, GeoOp) {
    let mut q = GeoSearch {
        unit: 1.0,
        ..GeoSearch::default()
    };
    if let Err(e) = fill(&mut q, spec.name, argv) {
        q.error = Some(e);
        q.store = None;
    }
    if q.count != 0 && q.sort == GeoSort::None && !q.any {
        // COUNT returns the nearest ones: Redis sorts ascending unless told otherwise.
        q.sort = GeoSort::Asc;
    }
    let src = if spec.name == "GEOSEARCHSTORE" {
        argv[2].clone()
    } else {
        argv[1].clone()
    };
    let spec = match (spec.name, &q.store) {
        ("GEORADIUS", None) => &GEORADIUS_READ,
        ("GEORADIUSBYMEMBER", None) => &GEORADIUSBYMEMBER_READ,
        _ => spec,
    };
    let op = GeoOp::Search {
        src,
        q: Box::new(q),
    };
    (spec, op)
}

/// What one option of a search says, in Redis's `georadiusGeneric` order.
struct Seen {
    from_member: bool,
    from_lonlat: bool,
    by_radius: bool,
    by_box: bool,
}

fn fill(q: &mut GeoSearch, name: &str, argv: &[Bytes]) -> Result<(), Reply> {
    let by_member = name.starts_with("GEORADIUSBYMEMBER");
    let radius_form = name.starts_with("GEORADIUS");
    let search = name.starts_with("GEOSEARCH");
    let search_store = name == "GEOSEARCHSTORE";
    let base = if by_member {
        q.from = Some(GeoFrom::Member(argv[2].clone()));
        match radius(&argv[3..5]) {
            Ok((r, u)) => (q.shape, q.unit) = (Some(GeoShape::Radius(r)), u),
            Err(e) => q.radius_error = Some(e),
        }
        5
    } else if radius_form {
        let (lon, lat) = lonlat(&argv[2..4])?;
        q.from = Some(GeoFrom::LonLat(lon, lat));
        let (r, u) = radius(&argv[4..6])?;
        (q.shape, q.unit) = (Some(GeoShape::Radius(r)), u);
        6
    } else if search_store {
        q.store = Some(argv[1].clone());
        3
    } else {
        2
    };
    let mut seen = Seen {
        from_member: false,
        from_lonlat: false,
        by_radius: false,
        by_box: false,
    };
    let stores = radius_form && !name.ends_with("_RO");
    options(q, &argv[base..], search, search_store, stores, &mut seen)?;
    if q.store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
        let what = if search_store {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Reply::err(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let typed = String::from_utf8_lossy(&argv[0]);
    if search && !(seen.from_member || seen.from_lonlat) {
        return Err(Reply::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {typed}"
        )));
    }
    if search && !(seen.by_radius || seen.by_box) {
        return Err(Reply::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {typed}"
        )));
    }
    if q.any && q.count == 0 {
        return Err(Reply::err("ERR the ANY argument requires COUNT argument"));
    }
    Ok(())
}

/// The optional arguments after the fixed ones.
fn options(
    q: &mut GeoSearch,
    o: &[Bytes],
    search: bool,
    search_store: bool,
    stores: bool,
    seen: &mut Seen,
) -> Result<(), Reply> {
    let mut i = 0;
    while i < o.len() {
        let left = o.len() - i - 1;
        let word = upper(&o[i]);
        match word.as_str() {
            "WITHDIST" => q.with_dist = true,
            "WITHHASH" => q.with_hash = true,
            "WITHCOORD" => q.with_coord = true,
            "ANY" => q.any = true,
            "ASC" => q.sort = GeoSort::Asc,
            "DESC" => q.sort = GeoSort::Desc,
            "COUNT" if left >= 1 => {
                let n = int(&o[i + 1])?;
                if n <= 0 {
                    return Err(Reply::err("ERR COUNT must be > 0"));
                }
                q.count = n as u64;
                i += 1;
            }
            "STORE" | "STOREDIST" if left >= 1 && stores => {
                q.store = Some(o[i + 1].clone());
                q.store_dist = word == "STOREDIST";
                i += 1;
            }
            "STOREDIST" if search_store => q.store_dist = true,
            "FROMMEMBER" if left >= 1 && search && !seen.from_lonlat => {
                q.from = Some(GeoFrom::Member(o[i + 1].clone()));
                seen.from_member = true;
                i += 1;
            }
            "FROMLONLAT" if left >= 2 && search && !seen.from_member => {
                let (lon, lat) = lonlat(&o[i + 1..i + 3])?;
                q.from = Some(GeoFrom::LonLat(lon, lat));
                seen.from_lonlat = true;
                i += 2;
            }
            "BYRADIUS" if left >= 2 && search && !seen.by_box => {
                let (r, u) = radius(&o[i + 1..i + 3])?;
                (q.shape, q.unit) = (Some(GeoShape::Radius(r)), u);
                seen.by_radius = true;
                i += 2;
            }
            "BYBOX" if left >= 3 && search && !seen.by_radius => {
                let (w, h, u) = bybox(&o[i + 1..i + 4])?;
                (q.shape, q.unit) = (Some(GeoShape::Box(w, h)), u);
                seen.by_box = true;
                i += 3;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};
    use crate::Kind;

    fn op(s: &str) -> GeoOp {
        match p(s) {
            Command::Geo(c) => c.op,
            other => panic!("{s}: {other:?}"),
        }
    }

    /// The search of `s` and its deferred error text, if any.
    fn q(s: &str) -> GeoSearch {
        match op(s) {
            GeoOp::Search { q, .. } => *q,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn qerr(s: &str) -> String {
        match q(s).error {
            Some(Reply::Error(e)) => e,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn geoadd_flags_triples_and_limits() {
        let GeoOp::Add { opts, points } = op("GEOADD k CH NX 13.361389 38.115556 Palermo") else {
            panic!()
        };
        assert!(opts.ch && opts.nx && !opts.xx);
        assert_eq!(points, vec![(13.361389, 38.115556, Bytes::from("Palermo"))]);
        assert_eq!(err("GEOADD k 1 2 a 3"), SYNTAX);
        assert_eq!(err("GEOADD k NX XX 1 2 a"), SYNTAX);
        assert_eq!(err("GEOADD k GT 1 2 a"), SYNTAX);
        assert_eq!(err("GEOADD k NX CH XX"), SYNTAX);
        assert_eq!(err("GEOADD k x 2 a"), "ERR value is not a valid float");
        assert_eq!(
            err("GEOADD k 200 100 a"),
            "ERR invalid longitude,latitude pair 200.000000,100.000000"
        );
        assert_eq!(
            err("GEOADD k 1 85.06 a"),
            "ERR invalid longitude,latitude pair 1.000000,85.060000"
        );
        assert!(matches!(
            op("GEOADD k -180 -85.05112878 a"),
            GeoOp::Add { .. }
        ));
        assert_eq!(p("GEOADD k 1 2 a").kind(), Kind::Write);
    }

    #[test]
    fn geodist_units() {
        assert_eq!(
            op("GEODIST k a b KM"),
            GeoOp::Dist {
                a: "a".into(),
                b: "b".into(),
                unit: 1000.0
            }
        );
        assert_eq!(
            err("GEODIST k a b yards"),
            "ERR unsupported unit provided. please use M, KM, FT, MI"
        );
        assert_eq!(err("GEODIST k a b m x"), SYNTAX);
        assert_eq!(p("GEODIST k a b").kind(), Kind::Read);
    }

    #[test]
    fn georadius_forms_and_their_kinds() {
        let s = q("GEORADIUS k 15 37 200 km WITHDIST WITHCOORD COUNT 2 ANY DESC");
        assert_eq!(s.from, Some(GeoFrom::LonLat(15.0, 37.0)));
        assert_eq!((s.shape, s.unit), (Some(GeoShape::Radius(200.0)), 1000.0));
        assert!(s.with_dist && s.with_coord && !s.with_hash && s.any);
        assert_eq!((s.count, s.sort, s.error), (2, GeoSort::Desc, None));
        assert_eq!(p("GEORADIUS k 15 37 200 km").kind(), Kind::Read);
        let store = p("GEORADIUS k 15 37 200 km STOREDIST d");
        assert_eq!(store.kind(), Kind::Write);
        assert_eq!(store.keys(), vec![&Bytes::from("k"), &Bytes::from("d")]);
        assert_eq!(p("GEORADIUSBYMEMBER k m 1 km STORE d").kind(), Kind::Write);
        assert_eq!(p("GEORADIUSBYMEMBER k m 1 km").kind(), Kind::Read);
        // COUNT without ASC/DESC sorts ascending (not with ANY).
        assert_eq!(q("GEORADIUS k 1 1 1 m COUNT 3").sort, GeoSort::Asc);
        assert_eq!(q("GEORADIUS k 1 1 1 m COUNT 3 ANY").sort, GeoSort::None);
    }

    #[test]
    fn search_errors_are_deferred_with_redis_texts() {
        assert_eq!(qerr("GEORADIUS_RO k 1 1 1 m STORE d"), SYNTAX);
        assert_eq!(
            qerr("GEORADIUS k 1 1 -1 m"),
            "ERR radius cannot be negative"
        );
        assert_eq!(qerr("GEORADIUS k 1 1 x m"), "ERR need numeric radius");
        assert_eq!(qerr("GEORADIUS k 1 1 1 m COUNT 0"), "ERR COUNT must be > 0");
        assert_eq!(qerr("GEORADIUS k 1 1 1 m COUNT x"), NOT_INT);
        assert_eq!(
            qerr("GEORADIUS k 1 1 1 m ANY"),
            "ERR the ANY argument requires COUNT argument"
        );
        assert_eq!(
            qerr("GEORADIUS k 1 1 1 m STORE d WITHDIST"),
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        );
        // With an error, a GEORADIUS is a read whatever it said (it writes nothing).
        assert_eq!(p("GEORADIUS k 1 1 1 m STORE d WITHDIST").kind(), Kind::Read);
        assert_eq!(
            qerr("geosearch k BYRADIUS 1 m WITHDIST ASC"),
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch"
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 WITHDIST ASC"),
            "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH"
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 FROMMEMBER m BYRADIUS 1 m"),
            SYNTAX
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 BYRADIUS 1 m BYBOX 1 1 m"),
            SYNTAX
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 BYBOX 1 -1 m"),
            "ERR height or width cannot be negative"
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 BYBOX x 1 m"),
            "ERR need numeric width"
        );
        assert_eq!(
            qerr("GEOSEARCH k FROMLONLAT 1 1 BYRADIUS 1 m STORE d"),
            SYNTAX
        );
        assert_eq!(
            qerr("GEOSEARCHSTORE d k FROMLONLAT 1 1 BYRADIUS 1 m WITHHASH"),
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        );
        // BYMEMBER's radius is checked only when the key exists (the store's to answer).
        let s = q("GEORADIUSBYMEMBER k m -1 km STORE d");
        assert!(s.error.is_none() && s.radius_error.is_some());
        assert_eq!(s.store, Some("d".into()));
        // The member parsed before an error is kept: the store checks it first, as Redis.
        let s = q("GEOSEARCH k FROMMEMBER m BYRADIUS -1 m");
        assert_eq!(s.from, Some(GeoFrom::Member("m".into())));
        assert!(s.error.is_some());
    }

    #[test]
    fn geosearch_and_store() {
        let s = q("GEOSEARCH k FROMMEMBER m BYBOX 400 300 km ASC WITHHASH");
        assert_eq!(s.from, Some(GeoFrom::Member("m".into())));
        assert_eq!(
            (s.shape, s.unit),
            (Some(GeoShape::Box(400.0, 300.0)), 1000.0)
        );
        assert!(s.with_hash && s.error.is_none());
        let c = p("GEOSEARCHSTORE d k FROMLONLAT 15 37 BYRADIUS 200 mi STOREDIST");
        assert_eq!(c.kind(), Kind::Write);
        assert_eq!(c.keys(), vec![&Bytes::from("d"), &Bytes::from("k")]);
        let GeoOp::Search { src, q } = op("GEOSEARCHSTORE d k FROMLONLAT 15 37 BYRADIUS 2 mi")
        else {
            panic!()
        };
        assert_eq!(
            (src, q.store, q.unit),
            ("k".into(), Some("d".into()), 1609.34)
        );
    }
}
