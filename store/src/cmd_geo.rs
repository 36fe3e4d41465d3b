//! Execution of the geo family (`resp::GeoOp`) on [`crate::types::geo`], with Redis 7.0's
//! replies: distances as bulk strings with 4 decimals (RESP2 and RESP3), coordinates as
//! doubles in Redis's `%.17Lf` text (RESP3 doubles, RESP2 bulk strings), hashes as
//! integers. A search checks, in Redis's order: the source key's type, the centre member,
//! then the parse error the parser deferred (see `resp::GeoSearch`), then runs.

use bytes::Bytes;
use resp::{GeoCmd, GeoFrom, GeoOp, GeoSearch, GeoShape, GeoSort, Reply};

use crate::cmd_common::{bulk, int};
use crate::types::geo::{self, no_member, Point};
use crate::types::geohash::{format_coord, format_distance, Shape};
use crate::types::zset::{self, ZAddFlags};
use crate::types::{zsetops, Error, Read, Result, Write};

fn coords(lon: f64, lat: f64) -> Reply {
    Reply::Array(vec![
        Reply::DoubleText(format_coord(lon)),
        Reply::DoubleText(format_coord(lat)),
    ])
}

/// What a search found: nothing to search (no key), or the hits to return, in order, with
/// distances in the search's unit.
enum Found {
    NoKey,
    Hits(Vec<Point>),
}

/// Runs a search up to its result list (sorted and cut to COUNT).
fn run(r: &dyn Read, src: &[u8], q: &GeoSearch) -> Result<Found> {
    let exists = zset::load(r, src)?.is_some();
    let mut center = None;
    if let Some(GeoFrom::Member(m)) = &q.from {
        if exists {
            center = Some(geo::position(r, src, m)?.ok_or_else(no_member)?);
        }
    }
    let fail = |e: &Reply| match e {
        Reply::Error(t) => Error::Client(t.clone()),
        _ => Error::Syntax,
    };
    if let Some(e) = q.radius_error.as_ref().filter(|_| exists) {
        return Err(fail(e));
    }
    if let Some(e) = &q.error {
        return Err(fail(e));
    }
    if !exists {
        return Ok(Found::NoKey);
    }
    if let Some(GeoFrom::LonLat(lon, lat)) = q.from {
        center = Some((lon, lat));
    }
    let (Some(center), Some(shape)) = (center, q.shape) else {
        return Err(Error::Syntax);
    };
    let shape = match shape {
        GeoShape::Radius(r) => Shape::Radius { r, unit: q.unit },
        GeoShape::Box(w, h) => Shape::Box { w, h, unit: q.unit },
    };
    let limit = if q.any {
        usize::try_from(q.count).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut hits = geo::search(r, src, center, shape, limit)?.unwrap_or_default();
    match q.sort {
        GeoSort::None => {}
        // Stable, as glibc's qsort (a merge sort): equal distances keep the scan order.
        GeoSort::Asc => hits.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        GeoSort::Desc => hits.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
    }
    if q.count != 0 {
        hits.truncate(usize::try_from(q.count).unwrap_or(usize::MAX));
    }
    for h in &mut hits {
        h.dist /= q.unit;
    }
    Ok(Found::Hits(hits))
}

/// The reply of a search without a store key.
fn hits_reply(hits: Vec<Point>, q: &GeoSearch) -> Reply {
    let with = q.with_dist || q.with_hash || q.with_coord;
    Reply::Array(
        hits.into_iter()
            .map(|h| {
                if !with {
                    return bulk(h.member);
                }
                let mut item = vec![bulk(h.member)];
                if q.with_dist {
                    item.push(Reply::bulk(format_distance(h.dist)));
                }
                if q.with_hash {
                    item.push(Reply::Int(h.score as i64));
                }
                if q.with_coord {
                    item.push(coords(h.lon, h.lat));
                }
                Reply::Array(item)
            })
            .collect(),
    )
}

/// A read command of the family (searches without a store key included).
pub(crate) fn read(r: &dyn Read, c: &GeoCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        GeoOp::Pos(ms) => Reply::Array(
            geo::geopos(r, key, ms)?
                .into_iter()
                .map(|p| p.map_or(Reply::NilArray, |(lon, lat)| coords(lon, lat)))
                .collect(),
        ),
        GeoOp::Hash(ms) => Reply::Array(
            geo::geohashes(r, key, ms)?
                .into_iter()
                .map(|h| h.map_or(Reply::Nil, Reply::bulk))
                .collect(),
        ),
        GeoOp::Dist { a, b, unit } => match geo::geodist(r, key, a, b)? {
            Some(d) => Reply::bulk(format_distance(d / unit)),
            None => Reply::Nil,
        },
        GeoOp::Search { src, q } if q.store.is_none() => match run(r, src, q)? {
            Found::NoKey => Reply::Array(vec![]),
            Found::Hits(h) => hits_reply(h, q),
        },
        _ => Reply::err(format!("ERR '{}' is not a read", c.spec.name)),
    })
}

/// A write command of the family.
pub(crate) fn write(w: &mut dyn Write, c: &GeoCmd) -> Result<Reply> {
    Ok(match &c.op {
        GeoOp::Add { opts, points } => {
            let flags = ZAddFlags {
                nx: opts.nx,
                xx: opts.xx,
                ch: opts.ch,
                ..ZAddFlags::default()
            };
            int(geo::geoadd(w, c.key(), flags, points)?)
        }
        GeoOp::Search { src, q } if q.store.is_some() || q.error.is_some() => {
            let Some(dst) = q.store.as_ref() else {
                // A GEOSEARCHSTORE whose arguments failed: `run` answers the error.
                run(w, src, q)?;
                return Ok(Reply::Int(0));
            };
            store(w, src, dst, q)?
        }
        _ => read(w, c)?,
    })
}

/// STORE / STOREDIST / GEOSEARCHSTORE: replaces `dst` with the hits (scores: geohashes, or
/// distances in the unit), deletes it when there are none; replies the count.
fn store(w: &mut dyn Write, src: &[u8], dst: &Bytes, q: &GeoSearch) -> Result<Reply> {
    let hits = match run(w, src, q)? {
        Found::NoKey => Vec::new(),
        Found::Hits(h) => h,
    };
    let pairs: Vec<(Vec<u8>, f64)> = hits
        .into_iter()
        .map(|h| {
            let score = if q.store_dist { h.dist } else { h.score };
            (h.member, score)
        })
        .collect();
    w.charge(pairs.iter().map(|(m, _)| m.len() + 8).sum())?;
    Ok(int(zsetops::store(w, dst, &pairs)?))
}
