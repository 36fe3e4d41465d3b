//! The longest common subsequence of two strings, as Redis's `lcsCommand` computes it: the
//! dynamic-programming table of `u32` lengths, then one walk back from the end that emits
//! the matching ranges last to first (so IDX replies match Redis's exactly, tie-breaks
//! included).
//!
//! Memory: the table takes `(len1 + 1) * (len2 + 1) * 4` bytes. Like Redis (whose limit is
//! its `proto-max-bulk-len`, 512 MiB by default), a table above [`TABLE_LIMIT`] is refused
//! before anything is allocated (a constant here, so every replica answers alike); LEN
//! alone needs two rows of the table and allocates only those.

/// Most bytes an LCS table may take (512 MiB: Redis's default `proto-max-bulk-len`).
pub const TABLE_LIMIT: u64 = crate::MAX_STRING as u64;

/// Redis's reply when the table would exceed [`TABLE_LIMIT`].
pub const TOO_BIG: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";

/// One matching range: positions in the first and the second string (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub a: (u32, u32),
    pub b: (u32, u32),
    pub len: u32,
}

/// Bytes of the table for strings of these lengths.
pub fn table_bytes(alen: usize, blen: usize) -> u64 {
    (alen as u64 + 1)
        .saturating_mul(blen as u64 + 1)
        .saturating_mul(4)
}

/// The LCS's length, using two rows of the table.
pub fn length(a: &[u8], b: &[u8]) -> u32 {
    let mut prev = vec![0u32; b.len() + 1];
    let mut row = vec![0u32; b.len() + 1];
    for &ca in a {
        for (j, &cb) in b.iter().enumerate() {
            row[j + 1] = if ca == cb {
                prev[j] + 1
            } else {
                prev[j + 1].max(row[j])
            };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

/// The whole table: `t[j + (blen + 1) * i]` is the LCS length of `a[..i]` and `b[..j]`.
fn table(a: &[u8], b: &[u8]) -> Vec<u32> {
    let w = b.len() + 1;
    let mut t = vec![0u32; (a.len() + 1) * w];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[j + w * i] = if a[i - 1] == b[j - 1] {
                t[(j - 1) + w * (i - 1)] + 1
            } else {
                t[j + w * (i - 1)].max(t[(j - 1) + w * i])
            };
        }
    }
    t
}

/// The LCS itself and its ranges (those of at least `min_len` bytes; 0 keeps all), last
/// range first.
pub fn subsequence(a: &[u8], b: &[u8], min_len: u64) -> (Vec<u8>, Vec<Match>) {
    let w = b.len() + 1;
    let t = table(a, b);
    let at = |i: usize, j: usize| t[j + w * i];
    let mut idx = at(a.len(), b.len()) as usize;
    let mut out = vec![0u8; idx];
    let mut matches = Vec::new();
    // `None`: no range open. Otherwise (a start, a end, b start, b end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            out[idx - 1] = a[i - 1];
            range = Some(match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                // The walk moves diagonally, so a match always extends the open range.
                Some((_, ae, _, be)) => (i - 1, ae, j - 1, be),
            });
            if range.is_some_and(|(as_, _, bs, _)| as_ == 0 || bs == 0) {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if let (true, Some((as_, ae, bs, be))) = (emit, range) {
            let len = (ae - as_ + 1) as u32;
            if min_len == 0 || u64::from(len) >= min_len {
                matches.push(Match {
                    a: (as_ as u32, ae as u32),
                    b: (bs as u32, be as u32),
                    len,
                });
            }
            range = None;
        }
    }
    (out, matches)
}
