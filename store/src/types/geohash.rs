//! Geohash arithmetic exactly as Redis's `geohash.c` / `geohash_helper.c` (so scores,
//! GEOHASH strings, positions and distances match Redis bit for bit): 26-step (52-bit)
//! interleaved hashes over longitude [-180, 180] and latitude [-85.05112878, 85.05112878],
//! the 8 neighbours of a box, the step a search radius needs and the 9 boxes covering a
//! search area, haversine distances on Redis's earth radius, and Redis's reply texts for
//! distances (`%.4f`-like fixed point) and coordinates (`%.17Lf` without trailing zeros).
//!
//! Every computation uses the same f64 operations in the same order as the C code, so the
//! results are identical on every replica and to Redis on x86-64.

use std::f64::consts::PI;

use resp::{LAT_MAX, LAT_MIN, LON_MAX, LON_MIN};

/// Steps of a stored score: 26 × 2 = 52 bits.
pub const STEP_MAX: u8 = 26;
/// Redis's earth radius (quadratic mean radius of WGS-84), in meters.
pub const EARTH_RADIUS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A geohash: `step` bits of each coordinate, interleaved (latitude in the even bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

/// A coordinate interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The cell a hash stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

/// Redis's coordinate ranges (EPSG:900913).
pub const LON_RANGE: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
pub const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Spreads the 32 bits of `v` over the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    for (shift, mask) in [
        (16, 0x0000_FFFF_0000_FFFF),
        (8, 0x00FF_00FF_00FF_00FF),
        (4, 0x0F0F_0F0F_0F0F_0F0F),
        (2, 0x3333_3333_3333_3333),
        (1, 0x5555_5555_5555_5555u64),
    ] {
        x = (x | (x << shift)) & mask;
    }
    x
}

/// Gathers the even bits of `v` into a u32.
fn squash(v: u64) -> u64 {
    let mut x = v & 0x5555_5555_5555_5555;
    for (shift, mask) in [
        (1, 0x3333_3333_3333_3333u64),
        (2, 0x0F0F_0F0F_0F0F_0F0F),
        (4, 0x00FF_00FF_00FF_00FF),
        (8, 0x0000_FFFF_0000_FFFF),
        (16, 0x0000_0000_FFFF_FFFF),
    ] {
        x = (x | (x >> shift)) & mask;
    }
    x
}

/// Encodes a position with `step` bits per coordinate over the given ranges (`None` outside
/// Redis's limits or the ranges).
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let mut lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min);
    let mut lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min);
    lat_off *= (1u64 << step) as f64;
    lon_off *= (1u64 << step) as f64;
    // C converts the offsets to uint32_t (truncation) before interleaving.
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Hash { bits, step })
}

/// The cell of `h` over the given ranges.
pub fn decode(lon_r: Range, lat_r: Range, h: Hash) -> Area {
    let ilat = squash(h.bits) as u32;
    let ilon = squash(h.bits >> 1) as u32;
    let div = (1u64 << h.step) as f64;
    let (lat_scale, lon_scale) = (lat_r.max - lat_r.min, lon_r.max - lon_r.min);
    Area {
        lat: Range {
            min: lat_r.min + (f64::from(ilat) / div) * lat_scale,
            max: lat_r.min + (f64::from(ilat + 1) / div) * lat_scale,
        },
        lon: Range {
            min: lon_r.min + (f64::from(ilon) / div) * lon_scale,
            max: lon_r.min + (f64::from(ilon + 1) / div) * lon_scale,
        },
    }
}

/// The 52-bit score of a position (Redis's `geohashEncodeWGS84` + `geohashAlign52Bits`).
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(LON_RANGE, LAT_RANGE, lon, lat, STEP_MAX).map(align52)
}

/// A hash shifted to 52 bits (the score of its cell's first position).
pub fn align52(h: Hash) -> u64 {
    h.bits << (52 - u32::from(h.step) * 2)
}

/// The position a score stands for: its cell's centre, clamped to the limits (Redis's
/// `decodeGeohash`; `None` for a score that is no geohash).
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    // C's `(uint64_t)bits`: truncation; negative and huge scores are not geohashes.
    if !(0.0..=(u64::MAX as f64)).contains(&score) {
        return None;
    }
    let h = Hash {
        bits: score as u64,
        step: STEP_MAX,
    };
    if h.bits == 0 && h.step == 0 {
        return None;
    }
    let a = decode(LON_RANGE, LAT_RANGE, h);
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// GEOHASH's 11-character standard geohash of a score (re-encoded over latitude [-90, 90]).
pub fn geohash_string(score: f64) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score)?;
    let std_lon = Range {
        min: -180.0,
        max: 180.0,
    };
    let std_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let h = encode(std_lon, std_lat, lon, lat, STEP_MAX)?;
    Some(
        (0..11)
            .map(|i| {
                // 52 bits give 10 characters; the 11th is always '0', as in Redis.
                let idx = if i == 10 {
                    0
                } else {
                    (h.bits >> (52 - (i + 1) * 5)) & 0x1f
                };
                char::from(ALPHABET[idx as usize])
            })
            .collect(),
    )
}

fn move_x(h: &mut Hash, d: i8) {
    let width = 64 - u32::from(h.step) * 2;
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> width;
    let x = if d > 0 {
        x.wrapping_add(zz + 1)
    } else {
        (x | zz).wrapping_sub(zz + 1)
    };
    h.bits = (x & (0xaaaa_aaaa_aaaa_aaaa >> width)) | y;
}

fn move_y(h: &mut Hash, d: i8) {
    let width = 64 - u32::from(h.step) * 2;
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> width;
    let y = if d > 0 {
        y.wrapping_add(zz + 1)
    } else {
        (y | zz).wrapping_sub(zz + 1)
    };
    h.bits = x | (y & (0x5555_5555_5555_5555 >> width));
}

/// The hash moved by (dx, dy) cells.
fn moved(h: Hash, dx: i8, dy: i8) -> Hash {
    let mut n = h;
    if dx != 0 {
        move_x(&mut n, dx);
    }
    if dy != 0 {
        move_y(&mut n, dy);
    }
    n
}

/// The 9 boxes of a search in Redis's order (self, N, S, E, W, NE, NW, SE, SW); `None` for
/// the neighbours Redis excludes as useless.
pub type Boxes = [Option<Hash>; 9];

/// Redis's `geohashEstimateStepsByRadius`.
pub fn steps_for_radius(mut range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The searched shape around a centre, in its unit, with the unit's meters (kept apart,
/// as Redis multiplies at each use: the roundings then match).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Radius { r: f64, unit: f64 },
    Box { w: f64, h: f64, unit: f64 },
}

/// Redis's `geohashBoundingBox`: [min lon, min lat, max lon, max lat].
fn bounding_box(lon: f64, lat: f64, shape: Shape) -> [f64; 4] {
    let (height, width) = match shape {
        Shape::Radius { r, unit } => (unit * r, unit * r),
        Shape::Box { w, h, unit } => (unit * (h / 2.0), unit * (w / 2.0)),
    };
    let lat_delta = rad_deg(height / EARTH_RADIUS);
    let lon_top = rad_deg(width / EARTH_RADIUS / deg_rad(lat + lat_delta).cos());
    let lon_bottom = rad_deg(width / EARTH_RADIUS / deg_rad(lat - lat_delta).cos());
    let delta = if lat < 0.0 { lon_bottom } else { lon_top };
    [lon - delta, lat - lat_delta, lon + delta, lat + lat_delta]
}

/// Redis's `geohashCalculateAreasByShapeWGS84`: the boxes covering the shape (meters)
/// around (lon, lat).
pub fn search_boxes(lon: f64, lat: f64, shape: Shape) -> Boxes {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(lon, lat, shape);
    let radius = match shape {
        Shape::Radius { r, unit } => r * unit,
        Shape::Box { w, h, unit } => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt() * unit,
    };
    let mut steps = steps_for_radius(radius, lat);
    let around = |steps: u8| -> Option<(Hash, Area)> {
        let h = encode(LON_RANGE, LAT_RANGE, lon, lat, steps)?;
        Some((h, decode(LON_RANGE, LAT_RANGE, h)))
    };
    let Some((mut hash, mut area)) = around(steps) else {
        return [None; 9];
    };
    let cell = |dx, dy| decode(LON_RANGE, LAT_RANGE, moved(hash, dx, dy));
    let decrease = cell(0, 1).lat.max < max_lat
        || cell(0, -1).lat.min > min_lat
        || cell(1, 0).lon.max < max_lon
        || cell(-1, 0).lon.min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        if let Some((h, a)) = around(steps) {
            (hash, area) = (h, a);
        }
    }
    // (dx, dy) of self, N, S, E, W, NE, NW, SE, SW.
    const AT: [(i8, i8); 9] = [
        (0, 0),
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    let mut boxes: Boxes = [None; 9];
    for (i, (dx, dy)) in AT.iter().enumerate() {
        let useless = steps >= 2
            && ((*dy < 0 && area.lat.min < min_lat)
                || (*dy > 0 && area.lat.max > max_lat)
                || (*dx < 0 && area.lon.min < min_lon)
                || (*dx > 0 && area.lon.max > max_lon));
        boxes[i] = (!useless).then(|| moved(hash, *dx, *dy));
    }
    boxes
}

/// The score range `[min, max)` of a box's positions.
pub fn box_scores(h: Hash) -> (u64, u64) {
    let min = align52(h);
    let max = align52(Hash {
        bits: h.bits + 1,
        step: h.step,
    });
    (min, max)
}

/// Distance along a meridian.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine great-circle distance in meters (Redis's `geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

/// The distance (meters) of (lon, lat) from the centre if it lies in the shape.
pub fn within(shape: Shape, center: (f64, f64), lon: f64, lat: f64) -> Option<f64> {
    let (clon, clat) = center;
    match shape {
        Shape::Radius { r, unit } => {
            Some(distance(clon, clat, lon, lat)).filter(|d| *d <= r * unit)
        }
        Shape::Box { w, h, unit } => {
            if lat_distance(lat, clat) > (h * unit) / 2.0 {
                return None;
            }
            if distance(lon, lat, clon, lat) > (w * unit) / 2.0 {
                return None;
            }
            Some(distance(clon, clat, lon, lat))
        }
    }
}

/// A distance as Redis replies it: fixed point with 4 decimals, rounded half to even on
/// the scaled value (`fixedpoint_d2string`, `llrint`).
pub fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even();
    let neg = v < 0.0;
    let n = v.abs() as u64;
    format!(
        "{}{}.{:04}",
        if neg && n != 0 { "-" } else { "" },
        n / 10000,
        n % 10000
    )
}

/// A coordinate as Redis replies it (`%.17Lf`, trailing zeros and a bare dot dropped, `-0`
/// as `0`).
pub fn format_coord(x: f64) -> String {
    let mut s = format!("{x:.17}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's documented Sicily examples (GEOADD / GEOPOS / GEOHASH / GEODIST pages).
    #[test]
    fn palermo_and_catania_as_redis_documents() {
        let palermo = score_of(13.361389, 38.115556).unwrap();
        let catania = score_of(15.087269, 37.502669).unwrap();
        assert_eq!(palermo, 3479099956230698);
        assert_eq!(catania, 3479447370796909);
        let (plon, plat) = decode_score(palermo as f64).unwrap();
        let (clon, clat) = decode_score(catania as f64).unwrap();
        assert_eq!(format_coord(plon), "13.36138933897018433");
        assert_eq!(format_coord(plat), "38.11555639549629859");
        assert_eq!(format_coord(clon), "15.08726745843887329");
        assert_eq!(format_coord(clat), "37.50266842333162032");
        assert_eq!(geohash_string(palermo as f64).unwrap(), "sqc8b49rny0");
        assert_eq!(geohash_string(catania as f64).unwrap(), "sqdtr74hyu0");
        let d = distance(plon, plat, clon, clat);
        assert_eq!(format_distance(d), "166274.1516");
        assert_eq!(format_distance(d / 1000.0), "166.2742");
        assert_eq!(format_distance(d / 1609.34), "103.3182");
    }

    #[test]
    fn formats() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00006), "0.0001");
        assert_eq!(format_distance(190.44242), "190.4424");
        assert_eq!(format_coord(15.0), "15");
        assert_eq!(format_coord(-0.0), "0");
        assert_eq!(format_coord(-1.5), "-1.5");
    }

    #[test]
    fn neighbours_and_boxes() {
        let h = encode(LON_RANGE, LAT_RANGE, 15.0, 37.0, 10).unwrap();
        let e = moved(h, 1, 0);
        let (a, b) = (
            decode(LON_RANGE, LAT_RANGE, h),
            decode(LON_RANGE, LAT_RANGE, e),
        );
        assert_eq!(a.lon.max, b.lon.min);
        assert_eq!(a.lat, b.lat);
        assert_eq!(moved(e, -1, 0), h);
        let boxes = search_boxes(
            15.0,
            37.0,
            Shape::Radius {
                r: 200.0,
                unit: 1000.0,
            },
        );
        assert!(boxes[0].is_some());
        assert_eq!(steps_for_radius(0.0, 0.0), 26);
        assert_eq!(steps_for_radius(200_000.0, 37.0), 6);
        let (lo, hi) = box_scores(boxes[0].unwrap());
        assert!(lo < hi && hi - lo == 1 << (52 - 2 * boxes[0].unwrap().step));
        assert!(decode_score(-1.0).is_none());
    }
}
