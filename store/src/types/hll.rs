//! HyperLogLog sketches stored as strings, in Redis's format (`hyperloglog.c`), so a value
//! moves between Redis and raftkv with GET / SET and counts the same on both.
//!
//! Layout (version = the encoding byte): a 16-byte header `"HYLL"`, encoding (0 dense,
//! 1 sparse), 3 reserved bytes, an 8-byte little-endian cached cardinality whose top bit set
//! means "stale"; then the registers. 16384 registers (P = 14) of 6 bits: dense packs them
//! LSB first into 12288 bytes (12304 in all); sparse is Redis's run-length opcodes (ZERO,
//! XZERO, VAL). raftkv reads both and always writes dense (Redis also promotes a sketch to
//! dense; the registers, so every count, are the same). Writes keep the header and mark
//! the cache stale, as Redis; PFCOUNT never writes (it is a read here), so it answers a
//! valid cache when a value carries one and otherwise computes.
//!
//! Hash: MurmurHash64A with Redis's seed 0xadc83b19, little-endian words, fixed for good
//! (every replica, every version). Estimate: Ertl's improved estimator, as Redis >= 5.
//! Standard error 1.04 / sqrt(16384) = 0.81%.

/// Registers.
pub const REGISTERS: usize = 1 << P;
const P: u32 = 14;
const Q: u32 = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Header bytes.
pub const HEADER: usize = 16;
/// Bytes of a dense sketch.
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;

/// Why a string is not a usable sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not a HyperLogLog at all (Redis: `WRONGTYPE Key is not a valid HyperLogLog string value.`).
    NotHll,
    /// A sparse sketch whose runs do not cover the registers (Redis: `INVALIDOBJ ...`).
    Corrupt,
}

/// MurmurHash64A (Austin Appleby's 64-bit MurmurHash2), reading words little-endian as
/// Redis's endian-neutral version does.
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for w in words.by_ref() {
        let mut k = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and its run length of zeros plus one (1..=Q+1).
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Checks a string's header like Redis's `isHLLObjectOrReply`.
pub fn check(v: &[u8]) -> Result<(), Invalid> {
    let ok = v.len() >= HEADER
        && &v[..4] == b"HYLL"
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_SIZE);
    if ok {
        Ok(())
    } else {
        Err(Invalid::NotHll)
    }
}

/// The cached cardinality, when the (checked) sketch carries a valid one.
pub fn cached(v: &[u8]) -> Option<u64> {
    let card: [u8; 8] = v.get(8..16)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// The registers of a checked sketch.
pub fn registers(v: &[u8]) -> Result<Vec<u8>, Invalid> {
    check(v)?;
    let data = &v[HEADER..];
    if v[4] == DENSE {
        return Ok((0..REGISTERS).map(|i| dense_get(data, i)).collect());
    }
    let mut regs = vec![0u8; REGISTERS];
    let (mut i, mut p) = (0usize, 0usize);
    while p < data.len() {
        let op = data[p];
        let run = if op & 0xc0 == 0 {
            p += 1;
            usize::from(op & 0x3f) + 1
        } else if op & 0xc0 == 0x40 {
            let lo = *data.get(p + 1).ok_or(Invalid::Corrupt)?;
            p += 2;
            ((usize::from(op & 0x3f) << 8) | usize::from(lo)) + 1
        } else {
            p += 1;
            let (run, val) = (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1);
            regs.get_mut(i..i + run).ok_or(Invalid::Corrupt)?.fill(val);
            run
        };
        i += run;
        if i > REGISTERS {
            return Err(Invalid::Corrupt);
        }
    }
    if i == REGISTERS {
        Ok(regs)
    } else {
        Err(Invalid::Corrupt)
    }
}

fn dense_get(data: &[u8], i: usize) -> u8 {
    let (byte, fb) = (i * BITS / 8, (i * BITS) % 8);
    let b0 = u16::from(data[byte]);
    let b1 = u16::from(data.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u16::from(REGISTER_MAX)) as u8
}

fn dense_set(data: &mut [u8], i: usize, val: u8) {
    let (byte, fb) = (i * BITS / 8, (i * BITS) % 8);
    let v = u16::from(val);
    let max = u16::from(REGISTER_MAX);
    data[byte] = ((u16::from(data[byte]) & !(max << fb)) | (v << fb)) as u8;
    if let Some(b1) = data.get_mut(byte + 1) {
        let fb8 = 8 - fb;
        *b1 = ((u16::from(*b1) & !(max >> fb8)) | (v >> fb8)) as u8;
    }
}

/// Adds an element to `regs`; true when a register grew.
pub fn add(regs: &mut [u8], element: &[u8]) -> bool {
    let (i, count) = pattern(element);
    if regs[i] < count {
        regs[i] = count;
        true
    } else {
        false
    }
}

/// `max[i] = MAX(max[i], other[i])`.
pub fn merge(max: &mut [u8], other: &[u8]) {
    for (m, o) in max.iter_mut().zip(other) {
        *m = (*m).max(*o);
    }
}

/// A dense sketch of `regs` under `old`'s header (a new one when `None`), its cache marked
/// stale: what PFADD and PFMERGE store.
pub fn encode(regs: &[u8], old: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![0u8; DENSE_SIZE];
    match old.and_then(|o| o.get(..HEADER)) {
        Some(h) => v[..HEADER].copy_from_slice(h),
        None => v[..4].copy_from_slice(b"HYLL"),
    }
    v[4] = DENSE;
    v[15] |= 0x80;
    let data = &mut v[HEADER..];
    for (i, &r) in regs.iter().enumerate() {
        if r != 0 {
            dense_set(data, i, r);
        }
    }
    v
}

/// Ertl's sigma (arXiv:1702.01284), as Redis's `hllSigma`.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

/// Ertl's tau, as Redis's `hllTau`.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// The estimated cardinality of `regs` (Redis's `hllCount`).
pub fn count(regs: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in regs {
        histo[usize::from(r & 63)] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    // 0.5 / ln(2), Redis's HLL_ALPHA_INF (0.721347520444481703680, the same double).
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    (ALPHA_INF * m * m / z).round() as u64
}
