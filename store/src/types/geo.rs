//! Geo indexes on the sorted-set layout: a member's score is the 52-bit geohash of its
//! position ([`geohash::score_of`]), stored through [`zset::zadd`], so TYPE says `zset` and
//! every sorted-set command works on a geo index, as in Redis. A radius or box search scans
//! the score ranges of the (at most) 9 geohash boxes covering the area
//! ([`geohash::search_boxes`]) in the `zscore` index: its cost is the members inside those
//! boxes, never the whole set.

use super::geohash::{self, Shape};
use super::zrange::scan_score_range;
use super::zset::{self, zadd, zmscore, ZAddFlags, ZAddReply};
use super::{Error, Read, Result, Write};

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub member: Vec<u8>,
    /// Meters from the centre.
    pub dist: f64,
    /// The member's score (its geohash).
    pub score: f64,
    pub lon: f64,
    pub lat: f64,
}

/// Redis's error for a FROMMEMBER / BYMEMBER centre that is not in the index.
pub fn no_member() -> Error {
    Error::Client("ERR could not decode requested zset member".into())
}

/// GEOADD: positions (validated by the parser) become scores; returns ZADD's count (added,
/// or with CH added and changed).
pub fn geoadd<W, M>(
    w: &mut W,
    key: &[u8],
    flags: ZAddFlags,
    points: &[(f64, f64, M)],
) -> Result<u64>
where
    W: Write + ?Sized,
    M: AsRef<[u8]>,
{
    let mut pairs = Vec::with_capacity(points.len());
    for (lon, lat, m) in points {
        let score = geohash::score_of(*lon, *lat).ok_or_else(|| {
            Error::Client(format!(
                "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
            ))
        })?;
        pairs.push((score as f64, m.as_ref()));
    }
    match zadd(w, key, flags, &pairs)? {
        ZAddReply::Count(n) => Ok(n),
        ZAddReply::Score(_) => Err(Error::Syntax),
    }
}

/// GEOPOS: each member's (longitude, latitude), `None` when absent (or not a geohash).
pub fn geopos<R, M>(r: &R, key: &[u8], members: &[M]) -> Result<Vec<Option<(f64, f64)>>>
where
    R: Read + ?Sized,
    M: AsRef<[u8]>,
{
    Ok(zmscore(r, key, members)?
        .into_iter()
        .map(|s| s.and_then(geohash::decode_score))
        .collect())
}

/// GEOHASH: each member's 11-character geohash, `None` when absent.
pub fn geohashes<R, M>(r: &R, key: &[u8], members: &[M]) -> Result<Vec<Option<String>>>
where
    R: Read + ?Sized,
    M: AsRef<[u8]>,
{
    Ok(zmscore(r, key, members)?
        .into_iter()
        .map(|s| s.and_then(geohash::geohash_string))
        .collect())
}

/// GEODIST in meters: `None` when the key or either member is absent.
pub fn geodist<R: Read + ?Sized>(r: &R, key: &[u8], a: &[u8], b: &[u8]) -> Result<Option<f64>> {
    let pos = geopos(r, key, &[a, b])?;
    Ok(match (pos[0], pos[1]) {
        (Some((lon1, lat1)), Some((lon2, lat2))) => Some(geohash::distance(lon1, lat1, lon2, lat2)),
        _ => None,
    })
}

/// The position of `member` in the index at `key` (`None`: absent).
pub fn position<R: Read + ?Sized>(r: &R, key: &[u8], member: &[u8]) -> Result<Option<(f64, f64)>> {
    Ok(zset::zscore(r, key, member)?.and_then(geohash::decode_score))
}

/// The members of the index at `key` inside `shape` around `center`, in Redis's order (box by
/// box, each by score); stops once `limit` were found (ANY; 0: all). `None` when there is no
/// such key (WRONGTYPE for another type).
pub fn search<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    center: (f64, f64),
    shape: Shape,
    limit: usize,
) -> Result<Option<Vec<Point>>> {
    let Some(m) = zset::load(r, key)? else {
        return Ok(None);
    };
    let boxes = geohash::search_boxes(center.0, center.1, shape);
    let mut out = Vec::new();
    // Index of the last box scanned (Redis never compares with the centre box, index 0).
    let mut last = 0;
    let full = |out: &Vec<Point>| limit != 0 && out.len() >= limit;
    for (i, b) in boxes.iter().enumerate() {
        let Some(h) = b else { continue };
        // Huge radii can make adjacent neighbours the same box: scan it once.
        if last != 0 && boxes[last] == Some(*h) {
            continue;
        }
        if full(&out) {
            break;
        }
        let (lo, hi) = geohash::box_scores(*h);
        scan_score_range(r, &m, key, (lo as f64, hi as f64), &mut |member, score| {
            if let Some((lon, lat)) = geohash::decode_score(score) {
                if let Some(dist) = geohash::within(shape, center, lon, lat) {
                    out.push(Point {
                        member: member.to_vec(),
                        dist,
                        score,
                        lon,
                        lat,
                    });
                }
            }
            !full(&out)
        })?;
        last = i;
    }
    Ok(Some(out))
}
