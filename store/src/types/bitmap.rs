//! Bit operations on string payloads, as Redis's `bitops.c` defines them: bit 0 is the most
//! significant bit of byte 0; BITCOUNT / BITPOS ranges in bytes or bits with negative
//! indexes from the end; BITOP over zero-padded sources. Pure functions on byte slices (the
//! command layer, `cmd_bitmap.rs`, loads and stores the strings).
//!
//! Costs: a range count or search is O(bytes in the range), eight bytes at a time; BITOP is
//! O(total source bytes) and holds one result and one source at a time.

use resp::{BitOp, Span};

/// The bit at `offset` (0 past the end).
pub fn get_bit(s: &[u8], offset: u64) -> bool {
    let byte = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
    s.get(byte).is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// Sets the bit at `offset` (inside `s`) to `on`; returns the old bit.
pub fn set_bit(s: &mut [u8], offset: u64, on: bool) -> bool {
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    let old = s[byte] & mask != 0;
    if on {
        s[byte] |= mask;
    } else {
        s[byte] &= !mask;
    }
    old
}

/// Redis's index normalisation: negative from the end, then clamped into `0..total`;
/// `None` when the range is empty.
fn clamp(mut start: i64, mut end: i64, total: i64) -> Option<(u64, u64)> {
    if start < 0 {
        start = start.saturating_add(total);
    }
    if end < 0 {
        end = end.saturating_add(total);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    (start <= end).then_some((start as u64, end as u64))
}

/// The inclusive bit range a BITCOUNT / BITPOS span selects in a string of `len` bytes
/// (`None`: empty). A span without an end runs to the end of the string.
pub fn bit_range(len: usize, span: Span) -> Option<(u64, u64)> {
    let len = len as i64;
    match span {
        Span::Empty => None,
        Span::Whole => (len > 0).then(|| (0, (len as u64) * 8 - 1)),
        Span::Range { start, end, bits } => {
            let total = if bits { len * 8 } else { len };
            let (s, e) = clamp(start, end.unwrap_or(total - 1), total)?;
            Some(if bits { (s, e) } else { (s * 8, e * 8 + 7) })
        }
    }
}

/// Mask of the bits of a byte from bit `from` to bit `to` (0 = most significant), inclusive.
fn byte_mask(from: u64, to: u64) -> u8 {
    (0xffu8 >> from) & (0xffu8 << (7 - to))
}

/// Set bits from bit `first` to bit `last` inclusive (both inside `s`).
pub fn count_bits(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    if fb == lb {
        return u64::from((s[fb] & byte_mask(first & 7, last & 7)).count_ones());
    }
    let head = u64::from((s[fb] & byte_mask(first & 7, 7)).count_ones());
    let tail = u64::from((s[lb] & byte_mask(0, last & 7)).count_ones());
    head + popcount(&s[fb + 1..lb]) + tail
}

fn popcount(s: &[u8]) -> u64 {
    let mut words = s.chunks_exact(8);
    let mut n: u64 = words
        .by_ref()
        .map(|w| {
            u64::from(
                u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]).count_ones(),
            )
        })
        .sum();
    n += words
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>();
    n
}

/// The first bit equal to `bit` from bit `first` to bit `last` inclusive (inside `s`).
pub fn find_bit(s: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let in_byte = |i: usize, from: u64, to: u64| -> Option<u64> {
        let b = (if bit { s[i] } else { !s[i] }) & byte_mask(from, to);
        (b != 0).then(|| (i as u64) * 8 + u64::from(b.leading_zeros()))
    };
    if fb == lb {
        return in_byte(fb, first & 7, last & 7);
    }
    if let Some(p) = in_byte(fb, first & 7, 7) {
        return Some(p);
    }
    let mut i = fb + 1;
    // Whole words of skip bytes first (BITPOS over long runs).
    while i + 8 <= lb && s[i..i + 8].iter().all(|&b| b == skip) {
        i += 8;
    }
    while i < lb {
        if s[i] != skip {
            return in_byte(i, 0, 7);
        }
        i += 1;
    }
    in_byte(lb, 0, last & 7)
}

/// BITPOS on a present string: the first `bit` in `span`, or -1. Looking for a 0 without an
/// explicit end, a string of ones answers the first bit after the range (the string is
/// seen as padded with zeros), as Redis.
pub fn bitpos(s: &[u8], bit: bool, span: Span) -> i64 {
    let Some((first, last)) = bit_range(s.len(), span) else {
        return -1;
    };
    let end_given = matches!(span, Span::Range { end: Some(_), .. });
    match find_bit(s, bit, first, last) {
        Some(p) => p as i64,
        None if !bit && !end_given => last as i64 + 1,
        None => -1,
    }
}

/// BITOP's result, built one source at a time (missing keys are empty sources): each source
/// is zero-padded to the longest; NOT takes one source.
#[derive(Debug, Default)]
pub struct BitOpFold {
    out: Vec<u8>,
    seen: usize,
}

impl BitOpFold {
    /// Folds the next source in.
    pub fn add(&mut self, op: BitOp, src: &[u8]) {
        let first = self.seen == 0;
        self.seen += 1;
        if op == BitOp::Not {
            self.out = src.iter().map(|b| !b).collect();
            return;
        }
        let common = self.out.len().min(src.len());
        for (o, s) in self.out[..common].iter_mut().zip(src) {
            match op {
                BitOp::And => *o &= s,
                BitOp::Or => *o |= s,
                _ => *o ^= s,
            }
        }
        if op == BitOp::And && src.len() < self.out.len() {
            self.out[src.len()..].fill(0);
        }
        if src.len() > self.out.len() {
            // Earlier sources were zeros here: AND keeps zeros, OR / XOR take the source.
            if op == BitOp::And && !first {
                self.out.resize(src.len(), 0);
            } else {
                self.out.extend_from_slice(&src[common..]);
            }
        }
    }

    /// The result (empty when every source was).
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}
