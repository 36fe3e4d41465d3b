//! Collections on RocksDB: hashes, lists, sets and sorted sets, one record per element.
//!
//! Layout (kvrocks' model; every key of one hash slot stays one key range in each family):
//! - `data` (shared with strings): `[slot u16 BE][user key]` →
//!   `[type u8][expire_at_ms i64 BE][version u64 BE][size u64 BE][list: head u64 BE, tail u64 BE]`
//!   (the first 9 bytes are the header strings have too; sorted sets may append their
//!   live-range hints, see [`meta`] and [`zset`]).
//! - `sub`: `[slot u16 BE][key len u32 BE][user key][version u64 BE][sub key]` → value, one
//!   record per hash field (sub key = `[hash u64 BE][field]`, value = value), list element
//!   (sub key = sequence u64 BE, value = element), set member (sub key = `[hash][member]`,
//!   empty value) and sorted-set member (sub key = `[hash][member]`, value = score f64 bits
//!   BE). The hash ([`random::name_hash`]) orders names pseudo-randomly, which random picks
//!   (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER; see [`random`]) and SPOP (the first members of
//!   that order, see [`set`]) use.
//! - `zscore`: `[slot][key len][user key][version][score, order-preserving u64 BE][member]` →
//!   empty: the sorted sets' score index.
//!
//! DEL, overwrite and expiry touch nothing but the metadata: a key created again gets a new
//! version ([`meta::Versions`], a persisted counter, deterministic on every replica), so old
//! sub records are invisible and [`clean::clean`] removes them later, a bounded amount of work
//! per call, staged in a `WriteBatch` like any apply.
//!
//! Operations read through a [`Read`] view and stage writes through a [`Write`] view:
//! [`view::DbView`] reads the database (or a RocksDB snapshot); [`view::Staged`] stages into
//! the caller's `WriteBatch` and keeps an [`view::Overlay`] so later commands of the same batch
//! see earlier ones (its size is bounded by the batch's own writes). Both count the records
//! they touch ([`view::Stats`]), which the cost tests assert on.
//!
//! Costs: every operation touches O(1) records per field / element / member it names, or
//! the records it returns or removes, except ZRANK and ranges by rank (O(min(rank, n -
//! rank)): no order-statistics index), ZCOUNT / ZLEXCOUNT (the members counted), LINSERT,
//! LREM, LPOS (O(n), as in Redis), the set and sorted-set algebra ([`setops`], [`zsetops`]:
//! whole sources, as Redis), and [`keyspace::copy`] (RENAME / COPY of a collection: O(n)
//! records, paged).
//!
//! The families that live inside string values use these views too: [`strval`] loads and
//! stores whole string records through them, and [`bitmap`], [`bitfield`], [`hll`] and
//! [`lcs`] are the pure algorithms of the bitmap, HyperLogLog and LCS commands.
//!
//! Wiring into `Store` (not done here; the commands are not routed yet):
//! - the store keeps a [`Versions`] (load at open and after a snapshot restore: the counter
//!   lives in `meta`) and an [`view::Overlay`] cleared in `batch_written`; it implements
//!   [`Write`] with its own `put` / `del` for `put_data` / `del_data` (one overlay for strings
//!   and metadata, its key counters and expiry index), or moves strings onto [`view::Staged`]
//!   and adds the overlay's `keys_delta` / `expires_delta` to its counters;
//! - FLUSHALL must also empty `sub` and `zscore` ([`view::Staged::flush_all`] does all);
//! - RENAME / COPY of a collection go through [`keyspace::copy`] (today's RENAME moves only
//!   the data record, which would leave the elements behind);
//! - TYPE and SCAN TYPE use [`meta::type_name`]; string commands already answer WRONGTYPE
//!   for types 1..4, and SET / DEL / EXPIRE / PERSIST / the sweep work on the metadata as is;
//! - the leader proposes [`clean::clean`] like the expiry sweep, the cursor in the command;
//! - a slot imported from another group raises the counter ([`Versions::raise_to`]) above
//!   the versions it brings.

pub mod bitfield;
pub mod bitmap;
pub mod cf_opts;
pub mod clean;
pub mod dump;
pub mod geo;
pub mod geohash;
pub mod hash;
pub mod hll;
pub mod keyspace;
pub mod lcs;
pub mod list;
pub mod meta;
pub mod num;
pub mod random;
pub mod set;
pub mod setops;
pub mod sort;
pub mod strval;
pub mod view;
pub mod zrange;
pub mod zset;
pub mod zsetops;

#[cfg(test)]
mod tests_bits;
#[cfg(test)]
mod tests_hash;
#[cfg(test)]
mod tests_hll;
#[cfg(test)]
mod tests_keyspace;
#[cfg(test)]
mod tests_layout;
#[cfg(test)]
mod tests_list;
#[cfg(test)]
mod tests_set;
#[cfg(test)]
mod tests_tombstones;
#[cfg(test)]
mod tests_zrange;
#[cfg(test)]
mod tests_zset;
#[cfg(test)]
mod tests_zsetops;
#[cfg(test)]
mod testutil;

pub use meta::{Meta, Versions};

/// Sub records: hash fields, list elements, set and sorted-set members.
pub const CF_SUB: &str = "sub";
/// Sorted sets' score index.
pub const CF_ZSCORE: &str = "zscore";

/// The column families an operation reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Strings and collection metadata (`crate::CF_DATA`).
    Data,
    /// [`CF_SUB`].
    Sub,
    /// [`CF_ZSCORE`].
    Score,
}

impl Cf {
    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Data => crate::CF_DATA,
            Cf::Sub => CF_SUB,
            Cf::Score => CF_ZSCORE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// An operation's failure: a Redis error reply, or a storage failure (fatal in the apply path:
/// the caller fail-stops rather than answer differently from other replicas).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    #[error("ERR resulting score is not a number (NaN)")]
    ScoreNan,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// A count beyond what one reply may hold (see `random::MAX_RANDOM_REPEATS`).
    #[error("ERR value is out of range")]
    OutOfRange,
    #[error("ERR min or max is not a float")]
    MinMaxNotFloat,
    #[error("ERR min or max not valid string range item")]
    MinMaxNotLex,
    #[error("ERR XX and NX options at the same time are not compatible")]
    XxAndNx,
    #[error("ERR GT, LT, and/or NX options at the same time are not compatible")]
    GtLtNx,
    #[error("ERR INCR option supports a single increment-element pair")]
    IncrPair,
    #[error("ERR syntax error")]
    Syntax,
    /// Any other error a client caused, with its whole text (`ERR ...`, `BUSYKEY ...`).
    #[error("{0}")]
    Client(String),
    /// A string PFADD / PFCOUNT / PFMERGE cannot read as a sketch (see [`hll`]).
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// A sparse sketch whose runs do not add up (see [`hll`]).
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    CorruptHll,
    /// LCS of a key that holds no string (Redis's own text, not WRONGTYPE).
    #[error("ERR The specified keys must contain string values")]
    LcsNotString,
    /// The database failed or holds a record this code cannot decode.
    #[error("storage error: {0}")]
    Storage(String),
}

impl Error {
    /// True for storage failures (not a client's mistake; the apply path must stop).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Storage(_))
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Error {
        Error::Storage(e.to_string())
    }
}

/// Result of a typed operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Read access to the families, as of some point (the database, a snapshot, or the database
/// plus the staged writes of the current batch), at a time `now` that judges expiry.
pub trait Read {
    /// The time (ms) expiry is judged at: the leader's stamp when applying.
    fn now(&self) -> i64;
    /// One record.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visits the records with `lower <= key < upper` in key order (descending when
    /// `reverse`) until `f` returns false.
    fn scan(
        &self,
        cf: Cf,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;
}

/// Staged writes on top of a [`Read`] view: every write is visible to the view's later reads.
pub trait Write: Read {
    /// Stages a sub or score record (`Cf::Data` goes through [`Write::put_data`]).
    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]);
    /// Stages a sub or score record's deletion.
    fn delete(&mut self, cf: Cf, key: &[u8]);
    /// Stages deletion of every record in `[lower, upper)` of a family. Only for records no
    /// view reads any more (old versions): it need not be visible to this view's reads.
    fn delete_range(&mut self, cf: Cf, lower: &[u8], upper: &[u8]);
    /// Stages `user_key`'s data record (a collection's metadata), replacing what is there;
    /// the implementation keeps the key counters and the expiry index in step (as
    /// `Store::put` does for strings).
    fn put_data(&mut self, user_key: &[u8], value: Vec<u8>) -> Result<()>;
    /// Stages deletion of `user_key`'s data record (as `Store::del`).
    fn del_data(&mut self, user_key: &[u8]) -> Result<()>;
    /// A version no key of this store has used: for a collection being created.
    fn next_version(&mut self) -> u64;
    /// Takes `cost` bytes of the Raft entry's budget (see [`crate::budget`]) for values a
    /// command is about to write or copy into its reply, or fails with the budget's refusal
    /// (then the command must stage nothing). Views outside the apply path have no budget.
    fn charge(&mut self, cost: usize) -> Result<()> {
        let _ = cost;
        Ok(())
    }
}

/// A small deterministic PRNG (splitmix64): seeded from the Raft entry for writes (SPOP),
/// from anything for reads (SRANDMEMBER). Never the replica's own randomness in a write.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
