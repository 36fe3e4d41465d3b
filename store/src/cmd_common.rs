//! Reply shapes and argument helpers the collection families' execution (`cmd_*.rs`)
//! share: bulk arrays, scored members (RESP3 pairs, RESP2 flat, scores as doubles: one
//! formatting everywhere, `resp::encode::format_reply_double`), the integer cursor of
//! HSCAN / SSCAN / ZSCAN, and local randomness for reads.
//!
//! Cursor encoding: members are stored in the order of their 64-bit name hash
//! (`[hash u64 BE][name]`), so a page ending at a member of hash `h` returns cursor `h + 1`,
//! and cursor `c` resumes at the first member whose hash is `>= c` (0: start, and done).
//! Members present for the whole scan are returned; two members of one collection with the
//! same 64-bit hash could make one of them be skipped when a page ends between them.

use bytes::Bytes;
use resp::Reply;

use crate::types::{Error, Result, Rng};

pub(crate) fn bulk(v: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(v))
}

pub(crate) fn opt_bulk(v: Option<Vec<u8>>) -> Reply {
    v.map_or(Reply::Nil, bulk)
}

pub(crate) fn bulks(v: Vec<Vec<u8>>) -> Reply {
    Reply::Array(v.into_iter().map(bulk).collect())
}

pub(crate) fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Members with their scores: pairs (RESP3 `[[m, s], ...]`, RESP2 flat), or members only.
pub(crate) fn scored(v: Vec<(Vec<u8>, f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(
            v.into_iter()
                .map(|(m, s)| (bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        bulks(v.into_iter().map(|(m, _)| m).collect())
    }
}

/// The `after` sub key that resumes a scan at cursor `c` (`None`: from the start).
pub(crate) fn scan_after(c: u64) -> Option<Vec<u8>> {
    let prev = c.checked_sub(1)?;
    let mut a = prev.to_be_bytes().to_vec();
    // After every member of hash `prev` (names are compared after the hash).
    a.extend_from_slice(&[0xff; 16]);
    Some(a)
}

/// The cursor to return after a page that ended at sub key `next` (`None`: done).
pub(crate) fn next_cursor(next: Option<Vec<u8>>) -> u64 {
    next.and_then(|k| k.get(..8).and_then(|h| h.try_into().ok()))
        .map_or(0, |h: [u8; 8]| u64::from_be_bytes(h).wrapping_add(1))
}

/// `[cursor, items]`, the SCAN family's reply.
pub(crate) fn scan_reply(next: Option<Vec<u8>>, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        bulk(next_cursor(next).to_string().into_bytes()),
        Reply::Array(items),
    ])
}

thread_local! {
    /// Set while a write script runs at apply time: its reads' random picks come from it.
    static SEEDED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with reads' random picks drawn from `seed` (a write script's commands, whose
/// replies must be the same on every replica).
pub(crate) fn with_seed<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    let before = SEEDED.with(|s| s.replace(Some(seed)));
    let r = f();
    SEEDED.with(|s| s.set(before));
    r
}

/// A generator for reads' random picks (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER): local
/// randomness is allowed for reads, except inside a write script ([`with_seed`]).
pub(crate) fn local_rng() -> Rng {
    if let Some(seed) = SEEDED.with(|s| s.get()) {
        let mut rng = Rng::new(seed);
        SEEDED.with(|s| s.set(Some(rng.next_u64())));
        return rng;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    Rng::new(h.finish())
}

/// An integer argument the store parses (ranks of ZRANGE / ZREMRANGEBYRANK).
pub(crate) fn int_arg(b: &[u8]) -> Result<i64> {
    crate::types::num::parse_i64(b).ok_or(Error::NotInteger)
}

/// A count the RESP layer checked, as a `usize` for a page size.
pub(crate) fn page(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20)
}

/// About the bytes a reply holds (what the entry's budget charges a read applied with it).
pub(crate) fn reply_size(r: &Reply) -> usize {
    16 + match r {
        Reply::Status(t)
        | Reply::Error(t)
        | Reply::Verbatim(t)
        | Reply::DoubleText(t)
        | Reply::BigNumber(t) => t.len(),
        Reply::Bulk(b) => b.len(),
        Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Double(_) | Reply::Bool(_) => 0,
        Reply::Array(rs) | Reply::Set(rs) | Reply::Push(rs) => rs.iter().map(reply_size).sum(),
        Reply::Map(kv) | Reply::Pairs(kv) => {
            kv.iter().map(|(k, v)| reply_size(k) + reply_size(v)).sum()
        }
    }
}
