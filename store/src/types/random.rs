//! Hashed sub keys and random picks. Hash fields, set members and sorted-set members are
//! stored under `[hash u64 BE][name]`, the hash mixing the key's version with the name, so
//! they sit in a pseudo-random order a client cannot arrange. A random pick seeks to a random
//! hash and takes the records that follow (wrapping around): O(count) records, no whole
//! collection read. A record's chance is proportional to the hash gap before it, so picks are
//! random but not exactly uniform (Redis's own picks are approximate too). Reads
//! (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER) may use any seed; SPOP does not pick at random but
//! pops the first members of the hash order (see [`super::set`]).

use super::meta::{join, prefix_end};
use super::{Cf, Error, Read, Result, Rng};

/// Bytes of the hash before the name in a hashed sub key.
pub const HASH_LEN: usize = 8;

/// Most items a random pick with a negative count (repeats allowed) returns: Redis has no
/// limit but its output buffers; a reply here is built in memory, so it is bounded.
pub const MAX_RANDOM_REPEATS: u64 = 1 << 20;

/// FNV-1a over (version, name) with a 64-bit finaliser: stable across builds and replicas
/// (unlike std's hasher, whose algorithm may change).
pub fn name_hash(version: u64, name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in version.to_be_bytes().iter().chain(name) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// `prefix` + `[hash][name]`: where a named record of the collection `version` lives.
pub fn hashed_key(prefix: &[u8], version: u64, name: &[u8]) -> Vec<u8> {
    join(prefix, &[&name_hash(version, name).to_be_bytes(), name])
}

/// A picked record: its full key, its name, its value.
pub type Picked = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Up to `n` distinct records from hash position `start` on, wrapping around.
pub fn run<R: Read + ?Sized>(r: &R, prefix: &[u8], start: u64, n: u64) -> Result<Vec<Picked>> {
    let skip = prefix.len() + HASH_LEN;
    let mid = join(prefix, &[&start.to_be_bytes()]);
    let mut out: Vec<Picked> = Vec::with_capacity(n.min(1 << 16) as usize);
    let end = prefix_end(prefix);
    for (lo, hi) in [(&mid[..], &end[..]), (prefix, &mid[..])] {
        if out.len() as u64 >= n {
            break;
        }
        r.scan(Cf::Sub, lo, hi, false, &mut |k, v| {
            out.push((
                k.to_vec(),
                k.get(skip..).unwrap_or_default().to_vec(),
                v.to_vec(),
            ));
            (out.len() as u64) < n
        })?;
    }
    Ok(out)
}

/// SRANDMEMBER / HRANDFIELD / ZRANDMEMBER with a count over a collection of `size`:
/// `count >= 0` gives up to `count` distinct records, `count < 0` gives `-count` records that
/// may repeat (one seek each; `OutOfRange` beyond [`MAX_RANDOM_REPEATS`]).
pub fn pick<R: Read + ?Sized>(
    r: &R,
    prefix: &[u8],
    size: u64,
    count: i64,
    rng: &mut Rng,
) -> Result<Vec<Picked>> {
    if count >= 0 {
        return run(r, prefix, rng.next_u64(), (count as u64).min(size));
    }
    let n = count.unsigned_abs();
    if n > MAX_RANDOM_REPEATS {
        return Err(Error::OutOfRange);
    }
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        out.extend(run(r, prefix, rng.next_u64(), 1)?);
    }
    Ok(out)
}
