//! Unit tests of the HyperLogLog sketch: MurmurHash64A's reference values, the dense
//! register packing, Redis's own sparse and dense values read back, counts equal to Redis
//! 7.0's for the same elements (so within the 0.81% standard error: 100k elements within
//! 2%), merges of overlapping sets, the empty sketch.

use super::hll::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sketch(elements: impl Iterator<Item = String>) -> Vec<u8> {
    let mut regs = vec![0u8; REGISTERS];
    for e in elements {
        add(&mut regs, e.as_bytes());
    }
    regs
}

/// The reference check of the hash is Redis's own registers below (sparse sketch of
/// `a`..`g`, counts of 100k elements); here only its shape.
#[test]
fn murmur64a_mixes_lengths_tails_and_seeds() {
    assert_eq!(murmur64a(b"", 0), 0);
    // Different lengths and tails give different hashes; the seed matters.
    assert_ne!(murmur64a(b"a", 0xadc8_3b19), murmur64a(b"a", 0));
    let all: Vec<u64> = (0..20).map(|n| murmur64a(&vec![7u8; n], 1)).collect();
    let mut uniq = all.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), all.len());
}

#[test]
fn dense_packing_round_trips_every_register() {
    let regs: Vec<u8> = (0..REGISTERS).map(|i| (i * 7 % 64) as u8).collect();
    let v = encode(&regs, None);
    assert_eq!(v.len(), DENSE_SIZE);
    assert_eq!(&v[..5], b"HYLL\0");
    assert_eq!(cached(&v), None, "a written sketch's cache is stale");
    assert_eq!(registers(&v), Ok(regs));
}

#[test]
fn redis_sparse_sketches_are_read() {
    // `PFADD s a b c d e f g` on Redis 7.0 (sparse, cache stale), then after its PFCOUNT
    // (cache valid: 7).
    let stale =
        unhex("48594c4c010000000000000000000080466d80560c80443c84388050b184498c80426d80425a");
    let counted =
        unhex("48594c4c010000000700000000000000466d80560c80443c84388050b184498c80426d80425a");
    assert_eq!(check(&stale), Ok(()));
    assert_eq!(cached(&stale), None);
    assert_eq!(cached(&counted), Some(7));
    let regs = registers(&stale).unwrap();
    assert_eq!(count(&regs), 7);
    assert_eq!(regs, sketch("abcdefg".chars().map(String::from)));
    // Written back dense, under the same header, cache marked stale.
    let dense = encode(&regs, Some(&counted));
    assert_eq!(&dense[..16], &unhex("48594c4c000000000700000000000080")[..]);
    assert_eq!(registers(&dense), Ok(regs));
}

#[test]
fn invalid_values_are_told_apart() {
    assert_eq!(check(b"hello"), Err(Invalid::NotHll));
    assert_eq!(
        check(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0"),
        Err(Invalid::NotHll)
    );
    assert_eq!(
        check(b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0"),
        Err(Invalid::NotHll)
    );
    // A sparse sketch whose runs do not cover the 16384 registers.
    let short = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x3f";
    assert_eq!(check(short), Ok(()));
    assert_eq!(registers(short), Err(Invalid::Corrupt));
    let mut over = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
    over.extend_from_slice(&[0x7f, 0xff, 0x80]);
    assert_eq!(registers(&over), Err(Invalid::Corrupt));
    // An XZERO opcode missing its second byte.
    let truncated = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f";
    assert_eq!(registers(truncated), Err(Invalid::Corrupt));
}

#[test]
fn counts_equal_redis_and_stay_within_two_percent() {
    // Redis 7.0.15: PFADD h1 element:0 .. element:99999 → PFCOUNT 100039;
    // h2 element:50000 .. element:149999 → 99682; PFCOUNT h1 h2 → 148311.
    let h1 = sketch((0..100_000).map(|i| format!("element:{i}")));
    let h2 = sketch((50_000..150_000).map(|i| format!("element:{i}")));
    assert_eq!(count(&h1), 100_039);
    assert_eq!(count(&h2), 99_682);
    let mut u = h1.clone();
    merge(&mut u, &h2);
    assert_eq!(count(&u), 148_311);
    for (n, want) in [(count(&h1), 100_000.0), (count(&u), 150_000.0)] {
        assert!((n as f64 - want).abs() / want < 0.02, "{n} vs {want}");
    }
    // Merging is idempotent and commutative.
    let mut v = h2.clone();
    merge(&mut v, &h1);
    merge(&mut v, &h1);
    assert_eq!(v, u);
}

#[test]
fn small_and_empty_sketches() {
    let empty = vec![0u8; REGISTERS];
    assert_eq!(count(&empty), 0);
    let mut regs = empty.clone();
    assert!(add(&mut regs, b"x"));
    assert!(!add(&mut regs, b"x"));
    assert_eq!(count(&regs), 1);
    for n in [10u64, 100, 1000] {
        let r = sketch((0..n).map(|i| i.to_string()));
        let c = count(&r) as f64;
        assert!((c - n as f64).abs() / (n as f64) < 0.02, "{c} vs {n}");
    }
}
