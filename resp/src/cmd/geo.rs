//! Geo commands: GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER (and their
//! `_RO` forms) GEOSEARCH GEOSEARCHSTORE, as Redis 7.0: a geo index is a sorted set whose
//! scores are 52-bit geohashes (the store's `types::geo`). Types and table entries here;
//! the parser is `geo_parse.rs`.
//!
//! GEORADIUS / GEORADIUSBYMEMBER are writes in Redis's table (STORE, STOREDIST); parsed
//! without a store key they answer to a read form of their entry ([`GEORADIUS_READ`],
//! [`GEORADIUSBYMEMBER_READ`], not listed), so they are served as reads, never proposed.

use bytes::Bytes;

use super::coll::Typed;
pub use super::geo_parse::parse;
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use crate::Reply;

/// A parsed geo command (the key is `args[0]`; GEOSEARCHSTORE's source is `args[1]`).
pub type GeoCmd = Typed<GeoOp>;

/// GEOADD's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GeoAddOpts {
    pub nx: bool,
    pub xx: bool,
    pub ch: bool,
}

/// Where a search is centred.
#[derive(Debug, Clone, PartialEq)]
pub enum GeoFrom {
    /// A member's position (GEORADIUSBYMEMBER, FROMMEMBER).
    Member(Bytes),
    /// Longitude, latitude (GEORADIUS, FROMLONLAT), within Redis's limits.
    LonLat(f64, f64),
}

/// The searched area, in the search's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoShape {
    Radius(f64),
    /// Width, height.
    Box(f64, f64),
}

/// Result order by distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeoSort {
    #[default]
    None,
    Asc,
    Desc,
}

/// Every GEORADIUS / GEOSEARCH form. Redis checks the source key's type before it parses
/// the arguments, and looks FROMMEMBER's member up while it parses; so a parse error is kept
/// in `error` (the fields parsed before it are kept too) and answered by the store after
/// those checks, in Redis's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoSearch {
    pub from: Option<GeoFrom>,
    pub shape: Option<GeoShape>,
    /// Meters per unit (m 1, km 1000, ft 0.3048, mi 1609.34).
    pub unit: f64,
    pub sort: GeoSort,
    /// COUNT (0: none) and ANY.
    pub count: u64,
    pub any: bool,
    pub with_dist: bool,
    pub with_hash: bool,
    pub with_coord: bool,
    /// STORE / STOREDIST key, GEOSEARCHSTORE's destination.
    pub store: Option<Bytes>,
    /// Store distances (in the unit) instead of geohashes.
    pub store_dist: bool,
    /// GEORADIUSBYMEMBER's radius / unit error: Redis parses them only when the key
    /// exists (after the member check), and goes on with the options either way.
    pub radius_error: Option<Reply>,
    /// The first error of the other arguments, answered after the key (and member) checks.
    pub error: Option<Reply>,
}

/// What a geo command does.
#[derive(Debug, Clone, PartialEq)]
pub enum GeoOp {
    /// (longitude, latitude, member) triples, already checked against Redis's limits.
    Add {
        opts: GeoAddOpts,
        points: Vec<(f64, f64, Bytes)>,
    },
    Dist {
        a: Bytes,
        b: Bytes,
        unit: f64,
    },
    Hash(Vec<Bytes>),
    Pos(Vec<Bytes>),
    /// `src` is the sorted set searched.
    Search {
        src: Bytes,
        q: Box<GeoSearch>,
    },
}

const GROUP: &str = "geo";
const RO: &[&str] = &["RO", "access"];
const RW: &[&str] = &["RW", "update"];
const OW: &[&str] = &["OW", "update"];

/// The STORE / STOREDIST key specs of GEORADIUS*: the key after `keyword`, searched from
/// argument `from`.
const fn store_after(keyword: &'static str, from: i32) -> KeySpec {
    KeySpec {
        notes: "",
        flags: OW,
        begin: BeginSearch::Keyword {
            keyword,
            startfrom: from,
        },
        find: FindKeys::Range {
            lastkey: 0,
            step: 1,
            limit: 0,
        },
    }
}

/// GEORADIUS parsed without STORE / STOREDIST: a read (not listed; `COMMAND` shows the
/// write entry).
pub(crate) static GEORADIUS_READ: CommandSpec = CommandSpec {
    summary: "GEORADIUS without STORE or STOREDIST (a read).",
    group: GROUP,
    ..CommandSpec::new(
        "GEORADIUS",
        -6,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

/// GEORADIUSBYMEMBER parsed without STORE / STOREDIST: a read (not listed).
pub(crate) static GEORADIUSBYMEMBER_READ: CommandSpec = CommandSpec {
    summary: "GEORADIUSBYMEMBER without STORE or STOREDIST (a read).",
    group: GROUP,
    ..CommandSpec::new(
        "GEORADIUSBYMEMBER",
        -5,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEOADD: CommandSpec = CommandSpec {
    summary: "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
    history: &[("6.2.0", "Added the `CH`, `NX` and `XX` options.")],
    acl_categories: &["geo"],
    args: "key:key#0 condition:oneof?@6.2.0(nx:pure-token=NX xx:pure-token=XX) change:pure-token?=CH@6.2.0 data:block*(longitude:double latitude:double member:string)",
    ..CommandSpec::new(
        "GEOADD",
        -5,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, RW)],
        parse,
    )
};

pub(crate) static GEODIST: CommandSpec = CommandSpec {
    summary: "Returns the distance between two members of a geospatial index.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(1)",
    acl_categories: &["geo"],
    args: "key:key#0 member1:string member2:string unit:oneof?(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi)",
    ..CommandSpec::new(
        "GEODIST",
        -4,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEOHASH: CommandSpec = CommandSpec {
    summary: "Returns members from a geospatial index as geohash strings.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(1) for each member requested.",
    acl_categories: &["geo"],
    args: "key:key#0 member:string?*",
    ..CommandSpec::new(
        "GEOHASH",
        -2,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEOPOS: CommandSpec = CommandSpec {
    summary: "Returns the longitude and latitude of members from a geospatial index.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(1) for each member requested.",
    acl_categories: &["geo"],
    args: "key:key#0 member:string?*",
    ..CommandSpec::new(
        "GEOPOS",
        -2,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEORADIUS: CommandSpec = CommandSpec {
    summary: "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.",
    doc_flags: &["deprecated"],
    deprecated_since: "6.2.0",
    replaced_by: "`GEOSEARCH` and `GEOSEARCHSTORE` with the `BYRADIUS` argument",
    history: &[("6.2.0", "Added the `ANY` option for `COUNT`."), ("7.0.0", "Added support for uppercase unit names.")],
    acl_categories: &["geo"],
    args: "key:key#0 longitude:double latitude:double radius:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi) withcoord:pure-token?=WITHCOORD withdist:pure-token?=WITHDIST withhash:pure-token?=WITHHASH count-block:block?(count:integer=COUNT any:pure-token?=ANY@6.2.0) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) store:oneof?(storekey:key~key=STORE#1 storedistkey:key~key=STOREDIST#2)",
    ..CommandSpec::new(
        "GEORADIUS",
        -6,
        &["write", "denyoom", "movablekeys"],
        &[KeySpec::range(1, 0, 1, RO), store_after("STORE", 6), store_after("STOREDIST", 6)],
        parse,
    )
};

pub(crate) static GEORADIUS_RO: CommandSpec = CommandSpec {
    summary: "Returns members from a geospatial index that are within a distance from a coordinate.",
    since: "3.2.10",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.",
    doc_flags: &["deprecated"],
    deprecated_since: "6.2.0",
    replaced_by: "`GEOSEARCH` with the `BYRADIUS` argument",
    history: &[("6.2.0", "Added the `ANY` option for `COUNT`.")],
    acl_categories: &["geo"],
    args: "key:key#0 longitude:double latitude:double radius:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi) withcoord:pure-token?=WITHCOORD withdist:pure-token?=WITHDIST withhash:pure-token?=WITHHASH count-block:block?(count:integer=COUNT any:pure-token?=ANY@6.2.0) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC)",
    ..CommandSpec::new(
        "GEORADIUS_RO",
        -6,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEORADIUSBYMEMBER: CommandSpec = CommandSpec {
    summary: "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
    since: "3.2.0",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.",
    doc_flags: &["deprecated"],
    deprecated_since: "6.2.0",
    replaced_by: "`GEOSEARCH` and `GEOSEARCHSTORE` with the `BYRADIUS` and `FROMMEMBER` arguments",
    history: &[("7.0.0", "Added support for uppercase unit names.")],
    acl_categories: &["geo"],
    args: "key:key#0 member:string radius:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi) withcoord:pure-token?=WITHCOORD withdist:pure-token?=WITHDIST withhash:pure-token?=WITHHASH count-block:block?(count:integer=COUNT any:pure-token?=ANY) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) store:oneof?(storekey:key~key=STORE#1 storedistkey:key~key=STOREDIST#2)",
    ..CommandSpec::new(
        "GEORADIUSBYMEMBER",
        -5,
        &["write", "denyoom", "movablekeys"],
        &[KeySpec::range(1, 0, 1, RO), store_after("STORE", 5), store_after("STOREDIST", 5)],
        parse,
    )
};

pub(crate) static GEORADIUSBYMEMBER_RO: CommandSpec = CommandSpec {
    summary: "Returns members from a geospatial index that are within a distance from a member.",
    since: "3.2.10",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.",
    doc_flags: &["deprecated"],
    deprecated_since: "6.2.0",
    replaced_by: "`GEOSEARCH` with the `BYRADIUS` and `FROMMEMBER` arguments",
    acl_categories: &["geo"],
    args: "key:key#0 member:string radius:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi) withcoord:pure-token?=WITHCOORD withdist:pure-token?=WITHDIST withhash:pure-token?=WITHHASH count-block:block?(count:integer=COUNT any:pure-token?=ANY) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC)",
    ..CommandSpec::new(
        "GEORADIUSBYMEMBER_RO",
        -5,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEOSEARCH: CommandSpec = CommandSpec {
    summary: "Queries a geospatial index for members inside an area of a box or a circle.",
    since: "6.2.0",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape",
    history: &[("7.0.0", "Added support for uppercase unit names.")],
    acl_categories: &["geo"],
    args: "key:key#0 from:oneof(member:string=FROMMEMBER fromlonlat:block=FROMLONLAT(longitude:double latitude:double)) by:oneof(circle:block(radius:double=BYRADIUS unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi)) box:block(width:double=BYBOX height:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi))) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) count-block:block?(count:integer=COUNT any:pure-token?=ANY) withcoord:pure-token?=WITHCOORD withdist:pure-token?=WITHDIST withhash:pure-token?=WITHHASH",
    ..CommandSpec::new(
        "GEOSEARCH",
        -7,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO)],
        parse,
    )
};

pub(crate) static GEOSEARCHSTORE: CommandSpec = CommandSpec {
    summary: "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
    since: "6.2.0",
    group: "geo",
    complexity: "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape",
    history: &[("7.0.0", "Added support for uppercase unit names.")],
    acl_categories: &["geo"],
    args: "destination:key#0 source:key#1 from:oneof(member:string=FROMMEMBER fromlonlat:block=FROMLONLAT(longitude:double latitude:double)) by:oneof(circle:block(radius:double=BYRADIUS unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi)) box:block(width:double=BYBOX height:double unit:oneof(m:pure-token=m km:pure-token=km ft:pure-token=ft mi:pure-token=mi))) order:oneof?(asc:pure-token=ASC desc:pure-token=DESC) count-block:block?(count:integer=COUNT any:pure-token?=ANY) storedist:pure-token?=STOREDIST",
    ..CommandSpec::new(
        "GEOSEARCHSTORE",
        -8,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, OW), KeySpec::range(2, 0, 1, RO)],
        parse,
    )
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &GEOADD,
    &GEODIST,
    &GEOHASH,
    &GEOPOS,
    &GEORADIUS,
    &GEORADIUS_RO,
    &GEORADIUSBYMEMBER,
    &GEORADIUSBYMEMBER_RO,
    &GEOSEARCH,
    &GEOSEARCHSTORE,
];
