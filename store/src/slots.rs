//! The set of hash slots one Raft group owns ([`SlotSet`]). A store serves exactly its
//! group's slots: keyed commands of other slots are refused with [`tryagain`], and every
//! whole-keyspace operation (FLUSHALL, KEYS, SCAN, RANDOMKEY, the sweep, the cleaner,
//! snapshots) walks only the owned slot ranges (keys are `[slot u16 BE][key]`, so a run of
//! slots is one key range in every slot-keyed column family).
//!
//! A set is a 16384-bit bitmap (2 KiB): `contains` is one bit test, the runs of owned slots
//! come out in order ([`SlotSet::ranges`]). Text form, for commands and logs: comma-separated
//! slots or inclusive ranges, `0-5460,5461` (parsed by `resp::cmd::parse_slot_ranges`, the
//! one parser); the empty set is the empty text. Persisted form: `[lo u16 BE][hi u16 BE]`
//! per range, in order ([`SlotSet::encode`]).

use std::fmt;
use std::sync::OnceLock;

use resp::Reply;

use crate::slot::SLOTS;

/// Words of the bitmap.
const WORDS: usize = SLOTS as usize / 64;

/// A set of hash slots.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotSet {
    bits: Box<[u64; WORDS]>,
    len: u32,
}

/// The reply to a command whose key is in a slot this group does not own: certainly not
/// applied, so cluster clients retry it (as they do `-TRYAGAIN` during a migration).
pub fn tryagain(slot: u16) -> Reply {
    Reply::err(format!("TRYAGAIN slot {slot} is not served by this group"))
}

/// Visits the records of `it` in each key range `[lo, hi)` of `ranges` (in key order,
/// disjoint), one seek per range on the one iterator (a new RocksDB iterator per range
/// would cost far more over thousands of ranges), until `f` returns false. Errors are the
/// iterator's.
pub(crate) fn visit_ranges<'a, I>(
    it: &mut rocksdb::DBRawIteratorWithThreadMode<'_, I>,
    ranges: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), rocksdb::Error>
where
    I: rocksdb::DBAccess,
{
    for (lo, hi) in ranges {
        it.seek(lo);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k >= hi {
                break;
            }
            if !f(k, v) {
                return it.status();
            }
            it.next();
        }
        it.status()?;
    }
    Ok(())
}

/// The key ranges `[slot_start(lo), slot_start(hi + 1))` of a set's runs, in order.
pub(crate) fn key_ranges(slots: &SlotSet) -> Vec<([u8; 2], [u8; 2])> {
    slots
        .ranges()
        .map(|(lo, hi)| (slot_start(lo.into()), slot_start(u32::from(hi) + 1)))
        .collect()
}

/// The slot a store key starts with (`[slot u16 BE]...`; missing bytes read as 0).
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    match key {
        [] => 0,
        [a] => u16::from(*a) << 8,
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
    }
}

/// The first store key of slot `slot` (`slot` may be [`SLOTS`]: the end of every slot).
pub(crate) fn slot_start(slot: u32) -> [u8; 2] {
    (slot.min(u32::from(SLOTS)) as u16).to_be_bytes()
}

impl SlotSet {
    /// No slot.
    pub fn empty() -> SlotSet {
        SlotSet {
            bits: Box::new([0; WORDS]),
            len: 0,
        }
    }

    /// Every slot (one group serving the whole keyspace).
    pub fn all() -> SlotSet {
        SlotSet {
            bits: Box::new([u64::MAX; WORDS]),
            len: u32::from(SLOTS),
        }
    }

    /// A shared [`SlotSet::all`].
    pub(crate) fn all_ref() -> &'static SlotSet {
        static ALL: OnceLock<SlotSet> = OnceLock::new();
        ALL.get_or_init(SlotSet::all)
    }

    /// The slots of inclusive ranges `(lo, hi)`; an error names a range outside 0..16384 or
    /// with `lo > hi`.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u16, u16)>) -> Result<SlotSet, String> {
        let mut s = SlotSet::empty();
        for (lo, hi) in ranges {
            if lo > hi || hi >= SLOTS {
                return Err(format!("invalid slot range {lo}-{hi}"));
            }
            s.insert_range(lo, hi);
        }
        Ok(s)
    }

    /// Parses the text form (`0-5460,5461`).
    pub fn parse(text: &str) -> Result<SlotSet, String> {
        SlotSet::from_ranges(resp::cmd::parse_slot_ranges(text.as_bytes())?)
    }

    /// True when `slot` is in the set.
    pub fn contains(&self, slot: u16) -> bool {
        let i = usize::from(slot);
        i < SLOTS as usize && self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Slots in the set.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the set has no slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the set has every slot.
    pub fn is_all(&self) -> bool {
        self.len == u32::from(SLOTS)
    }

    /// Adds slots `lo..=hi` (slots beyond 16383 are ignored).
    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        for s in lo..=hi.min(SLOTS - 1) {
            let (w, b) = (usize::from(s) / 64, 1u64 << (s % 64));
            if self.bits[w] & b == 0 {
                self.bits[w] |= b;
                self.len += 1;
            }
        }
    }

    /// Removes slots `lo..=hi`.
    pub fn remove_range(&mut self, lo: u16, hi: u16) {
        for s in lo..=hi.min(SLOTS - 1) {
            let (w, b) = (usize::from(s) / 64, 1u64 << (s % 64));
            if self.bits[w] & b != 0 {
                self.bits[w] &= !b;
                self.len -= 1;
            }
        }
    }

    fn combine(&self, other: &SlotSet, f: impl Fn(u64, u64) -> u64) -> SlotSet {
        let mut bits = Box::new([0u64; WORDS]);
        for (i, w) in bits.iter_mut().enumerate() {
            *w = f(self.bits[i], other.bits[i]);
        }
        let len = bits.iter().map(|w| w.count_ones()).sum();
        SlotSet { bits, len }
    }

    /// Slots in either set.
    pub fn union(&self, other: &SlotSet) -> SlotSet {
        self.combine(other, |a, b| a | b)
    }

    /// Slots in both sets.
    pub fn intersection(&self, other: &SlotSet) -> SlotSet {
        self.combine(other, |a, b| a & b)
    }

    /// Slots of `self` not in `other`.
    pub fn difference(&self, other: &SlotSet) -> SlotSet {
        self.combine(other, |a, b| a & !b)
    }

    /// The first slot `>= from` that is in the set (`want`) or not in it (`!want`), or
    /// [`SLOTS`] when there is none.
    fn find(&self, from: u32, want: bool) -> u32 {
        let mut i = from;
        while i < u32::from(SLOTS) {
            let w = i as usize / 64;
            let word = if want { self.bits[w] } else { !self.bits[w] };
            let masked = word & (u64::MAX << (i % 64));
            if masked != 0 {
                return w as u32 * 64 + masked.trailing_zeros();
            }
            i = (w as u32 + 1) * 64;
        }
        u32::from(SLOTS)
    }

    /// The first owned slot `>= from`.
    pub fn next_owned(&self, from: u32) -> Option<u16> {
        let s = self.find(from, true);
        (s < u32::from(SLOTS)).then_some(s as u16)
    }

    /// The first slot `>= from` not owned (16384 when every slot from `from` on is owned).
    pub fn next_unowned(&self, from: u32) -> u32 {
        self.find(from, false)
    }

    /// The last slot of the run of owned slots `slot` is in (`None`: `slot` is not owned).
    pub fn run_end(&self, slot: u16) -> Option<u16> {
        self.contains(slot)
            .then(|| (self.next_unowned(u32::from(slot)) - 1) as u16)
    }

    /// The runs of owned slots as inclusive `(lo, hi)`, in slot order.
    pub fn ranges(&self) -> Ranges<'_> {
        Ranges { set: self, at: 0 }
    }

    /// The persisted form: `[lo u16 BE][hi u16 BE]` per range, in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (lo, hi) in self.ranges() {
            v.extend_from_slice(&lo.to_be_bytes());
            v.extend_from_slice(&hi.to_be_bytes());
        }
        v
    }

    /// The inverse of [`SlotSet::encode`] (`None` for bytes it did not make).
    pub fn decode(b: &[u8]) -> Option<SlotSet> {
        if !b.len().is_multiple_of(4) {
            return None;
        }
        let ranges = b.chunks_exact(4).map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u16::from_be_bytes([c[2], c[3]]),
            )
        });
        SlotSet::from_ranges(ranges).ok()
    }
}

impl Default for SlotSet {
    /// The empty set.
    fn default() -> SlotSet {
        SlotSet::empty()
    }
}

/// Iterator of a set's runs (see [`SlotSet::ranges`]).
pub struct Ranges<'a> {
    set: &'a SlotSet,
    at: u32,
}

impl Iterator for Ranges<'_> {
    type Item = (u16, u16);

    fn next(&mut self) -> Option<(u16, u16)> {
        let lo = self.set.next_owned(self.at)?;
        let end = self.set.next_unowned(u32::from(lo));
        self.at = end;
        Some((lo, (end - 1) as u16))
    }
}

impl fmt::Display for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> SlotSet {
        SlotSet::parse(text).unwrap()
    }

    #[test]
    fn parse_and_format_round_trip_merging_runs() {
        assert_eq!(set("0-5460,5461").to_string(), "0-5461");
        assert_eq!(set("9,3-5,4,16383").to_string(), "3-5,9,16383");
        assert_eq!(SlotSet::all().to_string(), "0-16383");
        assert_eq!(SlotSet::empty().to_string(), "");
        assert_eq!(set(""), SlotSet::empty());
        for text in ["", "0", "0-16383", "1,3,5-7,100-200,16383"] {
            assert_eq!(set(text).to_string(), text);
            assert_eq!(SlotSet::decode(&set(text).encode()), Some(set(text)));
        }
        assert!(SlotSet::parse("16384").is_err());
        assert!(SlotSet::parse("2-1").is_err());
        assert!(SlotSet::from_ranges([(5, 16384)]).is_err());
        assert_eq!(SlotSet::decode(&[0, 1, 0]), None);
        assert_eq!(SlotSet::decode(&[0, 2, 0, 1]), None, "lo > hi");
    }

    #[test]
    fn membership_counts_and_set_algebra() {
        let a = set("0-99,200");
        assert!(a.contains(0) && a.contains(99) && a.contains(200));
        assert!(!a.contains(100) && !a.contains(16383) && !a.contains(u16::MAX));
        assert_eq!(a.len(), 101);
        assert!(!a.is_all() && !a.is_empty());
        assert!(SlotSet::all().is_all() && SlotSet::empty().is_empty());
        let b = set("50-150");
        assert_eq!(a.union(&b).to_string(), "0-150,200");
        assert_eq!(a.intersection(&b).to_string(), "50-99");
        assert_eq!(a.difference(&b).to_string(), "0-49,200");
        assert_eq!(a.difference(&b).len(), 51);
        let mut c = a.clone();
        c.insert_range(90, 110);
        c.remove_range(0, 9);
        c.remove_range(200, 200);
        assert_eq!((c.to_string(), c.len()), ("10-110".to_string(), 101));
    }

    #[test]
    fn runs_and_searches() {
        let a = set("0-63,64,130-140,16383");
        let runs: Vec<_> = a.ranges().collect();
        assert_eq!(runs, vec![(0, 64), (130, 140), (16383, 16383)]);
        assert_eq!(a.next_owned(65), Some(130));
        assert_eq!(a.next_owned(141), Some(16383));
        assert_eq!(set("5").next_owned(6), None);
        assert_eq!(a.next_unowned(0), 65);
        assert_eq!(a.next_unowned(16383), 16384);
        assert_eq!(a.run_end(3), Some(64));
        assert_eq!(a.run_end(16383), Some(16383));
        assert_eq!(a.run_end(65), None);
        assert_eq!(
            SlotSet::all().ranges().collect::<Vec<_>>(),
            vec![(0, 16383)]
        );
        assert_eq!(SlotSet::empty().ranges().count(), 0);
        // Every other slot: 8192 runs of one.
        let mut odd = SlotSet::empty();
        (1..SLOTS).step_by(2).for_each(|s| odd.insert_range(s, s));
        assert_eq!(odd.ranges().count(), 8192);
        assert_eq!(SlotSet::decode(&odd.encode()), Some(odd));
    }

    #[test]
    fn store_key_slots() {
        assert_eq!(slot_of(&[]), 0);
        assert_eq!(slot_of(&[0x12]), 0x1200);
        assert_eq!(slot_of(&[0x12, 0x34, 9]), 0x1234);
        assert_eq!(slot_start(16384), [0x40, 0]);
        assert_eq!(slot_start(7), [0, 7]);
        assert_eq!(
            tryagain(12182),
            Reply::err("TRYAGAIN slot 12182 is not served by this group")
        );
    }
}
