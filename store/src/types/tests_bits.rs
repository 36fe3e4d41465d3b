//! Unit tests of the pure bit operations: the examples of redis.io's SETBIT, BITCOUNT,
//! BITPOS, BITOP, BITFIELD and LCS pages, the edge cases of Redis's range arithmetic
//! (negative indexes, BIT vs BYTE, no bit found), BITFIELD's overflow policies, and the
//! fast paths checked against bit-by-bit references.

use resp::{BitOp, FieldAction, FieldOp, Overflow, Span};

use super::bitfield::{get, run};
use super::bitmap::{bit_range, bitpos, count_bits, find_bit, get_bit, set_bit, BitOpFold};
use super::lcs::{length, subsequence, table_bytes, Match, TABLE_LIMIT};

fn range(start: i64, end: Option<i64>, bits: bool) -> Span {
    Span::Range { start, end, bits }
}

fn bitcount(s: &[u8], span: Span) -> u64 {
    bit_range(s.len(), span).map_or(0, |(f, l)| count_bits(s, f, l))
}

#[test]
fn setbit_getbit_msb_first() {
    let mut s = vec![0u8; 1];
    assert!(!set_bit(&mut s, 7, true));
    assert_eq!(s, [0x01]);
    assert!(get_bit(&s, 7) && !get_bit(&s, 0) && !get_bit(&s, 100));
    assert!(set_bit(&mut s, 7, false));
    assert_eq!(s, [0]);
}

#[test]
fn bitcount_redis_io_examples_and_edges() {
    let s = b"foobar";
    assert_eq!(bitcount(s, Span::Whole), 26);
    assert_eq!(bitcount(s, range(0, Some(0), false)), 4);
    assert_eq!(bitcount(s, range(1, Some(1), false)), 6);
    assert_eq!(bitcount(s, range(5, Some(30), true)), 17);
    assert_eq!(bitcount(s, range(-1, Some(-1), false)), 4); // 'r'
    assert_eq!(bitcount(s, range(-100, Some(100), false)), 26);
    assert_eq!(bitcount(s, range(4, Some(2), false)), 0);
    assert_eq!(bitcount(s, range(0, Some(-1), true)), 26);
    assert_eq!(bitcount(s, range(-3, Some(-1), true)), 1); // 'r' = 0x72: last bits 010
    assert_eq!(bitcount(s, Span::Empty), 0);
    assert_eq!(bitcount(b"", Span::Whole), 0);
    assert_eq!(bitcount(b"", range(0, Some(-1), true)), 0);
}

#[test]
fn bitpos_redis_io_examples() {
    assert_eq!(bitpos(b"\xff\xf0\x00", false, Span::Whole), 12);
    let s = b"\x00\xff\xf0";
    assert_eq!(bitpos(s, true, range(0, None, false)), 8);
    assert_eq!(bitpos(s, true, range(2, None, false)), 16);
    assert_eq!(bitpos(s, true, range(2, Some(-1), false)), 16);
    assert_eq!(bitpos(s, true, range(7, Some(15), true)), 8);
    assert_eq!(bitpos(s, true, range(7, Some(-3), true)), 8);
    let z = b"\x00\x00\x00";
    assert_eq!(bitpos(z, true, Span::Whole), -1);
    assert_eq!(bitpos(z, true, range(7, Some(-3), true)), -1);
}

#[test]
fn bitpos_not_found_and_padding() {
    let ones = b"\xff\xff";
    // Without an end, the string is padded with zeros on the right.
    assert_eq!(bitpos(ones, false, Span::Whole), 16);
    assert_eq!(bitpos(ones, false, range(0, None, false)), 16);
    assert_eq!(bitpos(ones, false, range(3, None, true)), 16);
    // With an end, no clear bit in the range is -1.
    assert_eq!(bitpos(ones, false, range(0, Some(-1), false)), -1);
    assert_eq!(bitpos(ones, false, range(3, Some(10), true)), -1);
    // Empty ranges find nothing, even a 0.
    assert_eq!(bitpos(ones, false, range(5, Some(2), true)), -1);
    assert_eq!(bitpos(b"", false, Span::Whole), -1);
    assert_eq!(bitpos(b"", false, range(0, None, true)), -1);
    // Within one byte, bounded on both sides.
    assert_eq!(bitpos(b"\x81", true, range(1, Some(6), true)), -1);
    assert_eq!(bitpos(b"\x81", true, range(1, Some(7), true)), 7);
    assert_eq!(bitpos(b"\x81", false, range(1, Some(6), true)), 1);
    assert_eq!(bitpos(b"\x7e", false, range(1, Some(6), true)), -1);
    assert_eq!(bitpos(b"\x00\x00\x01", true, range(-1, None, false)), 23);
}

#[test]
fn find_bit_and_count_bits_match_a_bit_by_bit_reference() {
    let mut s = vec![0u8; 64];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in s.iter_mut().skip(20).take(30) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = if x.is_multiple_of(5) { 0xff } else { x as u8 };
    }
    let total = s.len() as u64 * 8;
    for first in (0..total).step_by(13) {
        for last in (first..total).step_by(29) {
            for bit in [false, true] {
                let want = (first..=last).find(|&i| get_bit(&s, i) == bit);
                assert_eq!(
                    find_bit(&s, bit, first, last),
                    want,
                    "{first}..{last} {bit}"
                );
            }
            let ones = (first..=last).filter(|&i| get_bit(&s, i)).count() as u64;
            assert_eq!(count_bits(&s, first, last), ones, "{first}..{last}");
        }
    }
}

fn bitop(op: BitOp, srcs: &[&[u8]]) -> Vec<u8> {
    let mut f = BitOpFold::default();
    srcs.iter().for_each(|s| f.add(op, s));
    f.finish()
}

#[test]
fn bitop_pads_shorter_sources_with_zeros() {
    assert_eq!(bitop(BitOp::And, &[b"foobar", b"abcdef"]), b"`bc`ab");
    assert_eq!(bitop(BitOp::Or, &[b"\x01", b"\x10\x20"]), b"\x11\x20");
    assert_eq!(
        bitop(BitOp::Xor, &[b"\x0f\x0f", b"\xff", b"\x01"]),
        b"\xf1\x0f"
    );
    assert_eq!(bitop(BitOp::And, &[b"\xff\xff", b"\xff"]), b"\xff\x00");
    assert_eq!(bitop(BitOp::And, &[b"\xff", b"\xff\xff"]), b"\xff\x00");
    // A missing key is an empty string: AND with it is all zeros, still the longest length.
    assert_eq!(bitop(BitOp::And, &[b"", b"\xff\xff"]), b"\x00\x00");
    assert_eq!(bitop(BitOp::And, &[b"\xff\xff", b""]), b"\x00\x00");
    assert_eq!(bitop(BitOp::Not, &[b"\x0f\xf0"]), b"\xf0\x0f");
    assert!(bitop(BitOp::Or, &[b"", b""]).is_empty());
    assert!(bitop(BitOp::Not, &[b""]).is_empty());
}

fn field(action: FieldAction, ty: &str, offset: u64, overflow: Overflow) -> FieldOp {
    FieldOp {
        action,
        signed: ty.starts_with('i'),
        bits: ty[1..].parse().unwrap(),
        offset,
        overflow,
    }
}

/// Runs BITFIELD operations on `s`, growing it as the store does.
fn bitfield(s: &mut Vec<u8>, ops: &[FieldOp]) -> Vec<Option<i64>> {
    let last = ops.iter().filter_map(FieldOp::last_written_bit).max();
    if let Some(b) = last {
        let len = (b >> 3) as usize + 1;
        if s.len() < len {
            s.resize(len, 0);
        }
    }
    ops.iter().map(|op| run(s, op)).collect()
}

#[test]
fn bitfield_redis_io_examples() {
    use FieldAction::*;
    use Overflow::*;
    let mut s = Vec::new();
    let out = bitfield(
        &mut s,
        &[field(IncrBy(1), "i5", 100, Wrap), field(Get, "u4", 0, Wrap)],
    );
    assert_eq!(out, [Some(1), Some(0)]);
    let mut s = Vec::new();
    let ops = [
        field(IncrBy(1), "u2", 100, Wrap),
        field(IncrBy(1), "u2", 102, Sat),
    ];
    let runs: Vec<_> = (0..4).map(|_| bitfield(&mut s, &ops)).collect();
    assert_eq!(
        runs,
        [
            [Some(1), Some(1)],
            [Some(2), Some(2)],
            [Some(3), Some(3)],
            [Some(0), Some(3)]
        ]
    );
    let fail = [field(IncrBy(1), "u2", 102, Fail)];
    assert_eq!(bitfield(&mut s, &fail), [None]);
}

#[test]
fn bitfield_overflow_policies() {
    use FieldAction::*;
    use Overflow::*;
    let one = |a, ty: &str, ow, start: &[u8]| {
        let mut s = start.to_vec();
        let r = bitfield(&mut s, &[field(a, ty, 0, ow)]);
        (r[0], get(&s, &field(Get, ty, 0, Wrap)))
    };
    // Signed: 127 + 1 in i8.
    assert_eq!(one(IncrBy(1), "i8", Wrap, b"\x7f"), (Some(-128), -128));
    assert_eq!(one(IncrBy(1), "i8", Sat, b"\x7f"), (Some(127), 127));
    assert_eq!(one(IncrBy(1), "i8", Fail, b"\x7f"), (None, 127));
    assert_eq!(one(IncrBy(-1), "i8", Sat, b"\x80"), (Some(-128), -128));
    assert_eq!(one(IncrBy(-1), "i8", Wrap, b"\x80"), (Some(127), 127));
    // SET replies the old value, stores the wrapped / saturated new one.
    assert_eq!(one(Set(200), "i8", Wrap, b"\x05"), (Some(5), -56));
    assert_eq!(one(Set(200), "i8", Sat, b"\x05"), (Some(5), 127));
    assert_eq!(one(Set(200), "i8", Fail, b"\x05"), (None, 5));
    assert_eq!(one(Set(-129), "i8", Sat, b"\x05"), (Some(5), -128));
    // Unsigned: Redis compares the value as unsigned, so a negative SET saturates high.
    assert_eq!(one(Set(-1), "u8", Wrap, b""), (Some(0), 255));
    assert_eq!(one(Set(-1), "u8", Sat, b""), (Some(0), 255));
    assert_eq!(one(IncrBy(-1), "u8", Sat, b"\x00"), (Some(0), 0));
    assert_eq!(one(IncrBy(-1), "u8", Wrap, b"\x00"), (Some(255), 255));
    assert_eq!(one(IncrBy(300), "u8", Wrap, b"\x01"), (Some(45), 45));
    // 64-bit signed limits.
    let max = i64::MAX.to_be_bytes();
    assert_eq!(
        one(IncrBy(1), "i64", Wrap, &max),
        (Some(i64::MIN), i64::MIN)
    );
    assert_eq!(one(IncrBy(1), "i64", Sat, &max), (Some(i64::MAX), i64::MAX));
    assert_eq!(
        one(IncrBy(-1), "i64", Fail, &i64::MIN.to_be_bytes()),
        (None, i64::MIN)
    );
    assert_eq!(one(Set(i64::MIN), "i64", Fail, b""), (Some(0), i64::MIN));
    // u63 holds up to 2^63 - 1.
    assert_eq!(one(Set(i64::MAX), "u63", Fail, b""), (Some(0), i64::MAX));
    assert_eq!(
        one(IncrBy(1), "u63", Sat, &[0xff; 8]),
        (Some(i64::MAX), i64::MAX)
    );
}

#[test]
fn bitfield_unaligned_fields_and_reads_past_the_end() {
    use FieldAction::*;
    let mut s = Vec::new();
    let w = [field(Set(-3), "i5", 3, Overflow::Wrap)];
    assert_eq!(bitfield(&mut s, &w), [Some(0)]);
    // -3 in 5 bits is 11101, at bits 3..=7.
    assert_eq!(s, [0b0001_1101]);
    assert_eq!(get(&s, &field(Get, "i5", 3, Overflow::Wrap)), -3);
    assert_eq!(get(&s, &field(Get, "u5", 3, Overflow::Wrap)), 29);
    assert_eq!(get(&s, &field(Get, "u16", 4, Overflow::Wrap)), 0b1101 << 12);
    assert_eq!(get(b"", &field(Get, "i64", 1000, Overflow::Wrap)), 0);
}

#[test]
fn lcs_redis_io_examples() {
    let (a, b) = (b"ohmytext", b"mynewtext");
    assert_eq!(length(a, b), 6);
    let (seq, matches) = subsequence(a, b, 0);
    assert_eq!(seq, b"mytext");
    assert_eq!(
        matches,
        [
            Match {
                a: (4, 7),
                b: (5, 8),
                len: 4
            },
            Match {
                a: (2, 3),
                b: (0, 1),
                len: 2
            }
        ]
    );
    let (_, long) = subsequence(a, b, 4);
    assert_eq!(long.len(), 1);
    assert_eq!(length(b"", b"abc"), 0);
    assert_eq!(subsequence(b"abc", b"", 0), (vec![], vec![]));
    assert_eq!(subsequence(b"abc", b"xyz", 0), (vec![], vec![]));
}

#[test]
fn lcs_length_agrees_with_the_table_and_sizes_are_bounded() {
    let words: [&[u8]; 5] = [b"GAC", b"AGCAT", b"rosettacode", b"raisethysword", b"aaaa"];
    for a in words {
        for b in words {
            assert_eq!(length(a, b) as usize, subsequence(a, b, 0).0.len());
        }
    }
    assert_eq!(table_bytes(2, 3), 48);
    // About 11585 x 11585 bytes fit the table limit; one more row does not.
    assert!(table_bytes(11584, 11584) <= TABLE_LIMIT);
    assert!(table_bytes(11585, 11585) > TABLE_LIMIT);
}
