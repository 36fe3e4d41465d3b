//! The in-memory tail of one group's raft log, bounded in entries AND in bytes.
//!
//! The replication path (`entries()` for appends to followers, `term()` for their checks)
//! and the apply path read the newest entries again right after they were written: the
//! cache serves them without a RocksDB read. It was bounded only by a count (8192
//! entries), so 64 KiB writes kept 512 MiB per group in memory, times the groups. Now a
//! cache is held to the least of:
//! - [`MAX_ENTRIES`] entries;
//! - its group's byte bound ([`CacheBudget::group_bytes`], 32 MiB by default);
//! - while the node's caches together hold more than the node-wide figure
//!   ([`CacheBudget::node_bytes`], 128 MiB by default), its fair share of that figure
//!   (node figure / groups open).
//!
//! A cache is trimmed (oldest entries first) when its own group appends, so a cache that
//! grew past its fair share while the node was under its figure keeps those bytes until
//! its group writes again: the node's caches hold at most twice the node figure (the fair
//! shares add up to the figure, and what any cache holds above its share was taken while
//! all of them held less than the figure), plus one append. Reads outside the cache go to
//! disk as before (see `storage`), so any bound is correct; the bound only trades memory
//! for RocksDB reads when a follower lags.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::Entry;
use raft::StorageError;
use rocksdb::DB;

/// Most entries one cache keeps, whatever their size.
pub const MAX_ENTRIES: usize = 8192;
/// Default byte bound of one group's cache.
pub const GROUP_BYTES: usize = 32 << 20;
/// Default node-wide figure for all groups' caches together: four full group caches (the
/// default layout is three data groups and the metadata group), so with the default
/// `--groups` the per-group bound is what binds, and with many groups the node's memory
/// stays the same while each group's share shrinks.
pub const NODE_BYTES: usize = 128 << 20;
/// At most this many bytes of the log tail are read into the cache when the storage opens
/// (and never more than the group's bound): the tail may be far larger (a follower that
/// never snapshots keeps its whole log, up to 1 GB in the restart benchmark), and reading
/// all of it delayed serving by seconds. Later reads past the cache go to disk.
pub const WARM_BYTES: usize = 16 << 20;

/// The byte bounds shared by all caches of one node, and what they hold together.
#[derive(Debug)]
pub struct CacheBudget {
    group_bytes: usize,
    node_bytes: usize,
    used: AtomicUsize,
    caches: AtomicUsize,
}

impl CacheBudget {
    /// Bounds of `group_bytes` per group and `node_bytes` for the node.
    pub fn new(group_bytes: usize, node_bytes: usize) -> Arc<Self> {
        Arc::new(CacheBudget {
            group_bytes,
            node_bytes,
            used: AtomicUsize::new(0),
            caches: AtomicUsize::new(0),
        })
    }

    /// The default bounds ([`GROUP_BYTES`], [`NODE_BYTES`]).
    pub fn default_bounds() -> Arc<Self> {
        Self::new(GROUP_BYTES, NODE_BYTES)
    }

    /// Byte bound of one group's cache.
    pub fn group_bytes(&self) -> usize {
        self.group_bytes
    }

    /// The node-wide figure.
    pub fn node_bytes(&self) -> usize {
        self.node_bytes
    }

    /// Bytes all caches of the node hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// What one cache may keep while the node is over its figure.
    fn fair_share(&self) -> usize {
        self.node_bytes / self.caches.load(Ordering::Relaxed).max(1)
    }
}

/// raft-rs's `max_size` rule for `Storage::entries`: entries are taken, in order, while
/// their encoded sizes add up to at most the limit, and the first always.
#[derive(Debug)]
pub struct SizeLimit {
    max: Option<u64>,
    size: u64,
    taken: bool,
}

impl SizeLimit {
    /// At most `max` bytes (None: no limit).
    pub fn new(max: Option<u64>) -> Self {
        SizeLimit {
            max,
            size: 0,
            taken: false,
        }
    }

    /// True when `e` is taken too (the caller stops at the first refusal).
    pub fn admits(&mut self, e: &Entry) -> bool {
        if let Some(max) = self.max {
            self.size += u64::from(e.compute_size());
            if self.taken && self.size > max {
                return false;
            }
        }
        self.taken = true;
        true
    }
}

/// The memory one cached entry holds: its payloads and the struct itself.
pub fn entry_bytes(e: &Entry) -> usize {
    e.data.len() + e.context.len() + std::mem::size_of::<Entry>()
}

fn storage_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// A contiguous run of a group's newest log entries.
#[derive(Debug)]
pub struct EntryCache {
    entries: VecDeque<Entry>,
    bytes: usize,
    budget: Arc<CacheBudget>,
}

impl EntryCache {
    /// An empty cache counted in `budget`.
    pub fn new(budget: Arc<CacheBudget>) -> Self {
        budget.caches.fetch_add(1, Ordering::Relaxed);
        EntryCache {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (see [`entry_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Index of the oldest cached entry.
    pub fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// Index of the newest cached entry.
    pub fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index)
    }

    /// The cached entry at `idx`.
    pub fn get(&self, idx: u64) -> Option<&Entry> {
        let front = self.first_index()?;
        let offset = usize::try_from(idx.checked_sub(front)?).ok()?;
        self.entries.get(offset)
    }

    /// Entries `low..high` as far as `limit` admits them, when all of them are cached
    /// (only the admitted ones are copied).
    pub fn range(&self, low: u64, high: u64, limit: &mut SizeLimit) -> Option<Vec<Entry>> {
        let front = self.first_index()?;
        let last = self.last_index()?;
        if low < front || high == 0 || high - 1 > last || low > high {
            return None;
        }
        let start = usize::try_from(low - front).ok()?;
        let end = usize::try_from(high - front).ok()?;
        let mut out = Vec::new();
        for e in self.entries.range(start..end) {
            if !limit.admits(e) {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }

    /// Adds newly written entries (contiguous, in order): any cached suffix from the
    /// first new index on is replaced (a conflicting append from a new leader), a cache
    /// that does not end right before them is dropped, then the cache is trimmed.
    pub fn append(&mut self, ents: Vec<Entry>) {
        let Some(first) = ents.first().map(|e| e.index) else {
            return;
        };
        while self.entries.back().is_some_and(|e| e.index >= first) {
            self.pop_back();
        }
        if self.last_index().is_some_and(|i| i + 1 != first) {
            self.clear();
        }
        for e in ents {
            self.add(entry_bytes(&e));
            self.entries.push_back(e);
        }
        self.trim();
    }

    /// Drops the entries up to and including `index` (compacted into a snapshot).
    pub fn compact_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            self.pop_front();
        }
    }

    /// Drops everything (the log was replaced by a received snapshot).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
    }

    /// Fills an empty cache with the log tail `lo..=last` as stored on `db`: the longest
    /// suffix within [`WARM_BYTES`] and the cache's bounds, read backwards from `last`.
    /// `key` gives the stored key of an entry index.
    pub fn warm(
        &mut self,
        db: &DB,
        cf: &rocksdb::ColumnFamily,
        lo: u64,
        last: u64,
        key: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(), raft::Error> {
        let budget = WARM_BYTES.min(self.budget.group_bytes);
        let lo = lo.max(last.saturating_sub(MAX_ENTRIES as u64 - 1));
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut iter = db.raw_iterator_cf(cf);
        iter.seek_for_prev(key(last));
        let mut want = last;
        while want >= lo && want > 0 && iter.valid() {
            let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                break;
            };
            if k != key(want).as_slice() {
                break;
            }
            let e = Entry::parse_from_bytes(v).map_err(storage_err)?;
            bytes += entry_bytes(&e);
            if bytes > budget {
                break;
            }
            out.push(e);
            want -= 1;
            iter.prev();
        }
        iter.status().map_err(storage_err)?;
        out.reverse();
        self.append(out);
        Ok(())
    }

    fn add(&mut self, n: usize) {
        self.bytes += n;
        self.budget.used.fetch_add(n, Ordering::Relaxed);
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.sub(entry_bytes(&e));
        }
    }

    fn pop_back(&mut self) {
        if let Some(e) = self.entries.pop_back() {
            self.sub(entry_bytes(&e));
        }
    }

    fn sub(&mut self, n: usize) {
        self.bytes -= n;
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Drops the oldest entries while over a bound (see the module's doc).
    fn trim(&mut self) {
        loop {
            let b = &self.budget;
            let over = self.entries.len() > MAX_ENTRIES
                || self.bytes > b.group_bytes
                || (b.used() > b.node_bytes && self.bytes > b.fair_share());
            if !over || self.entries.is_empty() {
                return;
            }
            self.pop_front();
        }
    }
}

impl Drop for EntryCache {
    fn drop(&mut self) {
        self.clear();
        self.budget.caches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, size: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; size].into(),
            ..Default::default()
        }
    }

    fn run(lo: u64, hi: u64, term: u64, size: usize) -> Vec<Entry> {
        (lo..=hi).map(|i| ent(i, term, size)).collect()
    }

    const E: usize = std::mem::size_of::<Entry>();

    #[test]
    fn bytes_bound_evicts_oldest_first() {
        let budget = CacheBudget::new(10 * (1000 + E), usize::MAX);
        let mut c = EntryCache::new(budget.clone());
        c.append(run(1, 25, 1, 1000));
        assert_eq!(c.len(), 10);
        assert_eq!(c.first_index(), Some(16));
        assert_eq!(c.last_index(), Some(25));
        assert_eq!(c.bytes(), 10 * (1000 + E));
        assert_eq!(budget.used(), c.bytes());
        // One large entry pushes out as many old ones as it needs.
        c.append(vec![ent(26, 1, 5000)]);
        assert_eq!(c.first_index(), Some(21));
        assert!(c.bytes() <= budget.group_bytes());
        assert!(c.get(20).is_none());
        assert_eq!(c.get(26).map(|e| e.data.len()), Some(5000));
    }

    #[test]
    fn entry_count_bound_holds_for_tiny_entries() {
        let mut c = EntryCache::new(CacheBudget::default_bounds());
        c.append(run(1, MAX_ENTRIES as u64 + 5, 1, 1));
        assert_eq!(c.len(), MAX_ENTRIES);
        assert_eq!(c.first_index(), Some(6));
    }

    #[test]
    fn an_entry_larger_than_the_bound_is_not_kept() {
        let mut c = EntryCache::new(CacheBudget::new(1000, usize::MAX));
        c.append(vec![ent(1, 1, 4000)]);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        // The next append still caches (nothing to be contiguous with).
        c.append(vec![ent(2, 1, 10)]);
        assert_eq!(c.first_index(), Some(2));
    }

    #[test]
    fn conflicting_append_replaces_the_suffix() {
        let budget = CacheBudget::default_bounds();
        let mut c = EntryCache::new(budget.clone());
        c.append(run(1, 10, 1, 100));
        c.append(run(6, 7, 2, 300));
        assert_eq!(c.last_index(), Some(7));
        assert_eq!(c.get(5).map(|e| e.term), Some(1));
        assert_eq!(c.get(6).map(|e| e.term), Some(2));
        assert!(c.get(8).is_none());
        assert_eq!(c.bytes(), 5 * (100 + E) + 2 * (300 + E));
        assert_eq!(budget.used(), c.bytes());
        // A gap (entries not following the cached tail) drops the old run.
        c.append(run(20, 21, 2, 10));
        assert_eq!(c.first_index(), Some(20));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn range_only_when_wholly_cached() {
        let mut c = EntryCache::new(CacheBudget::default_bounds());
        c.append(run(5, 9, 1, 8));
        let all = || SizeLimit::new(None);
        assert_eq!(c.range(5, 10, &mut all()).map(|v| v.len()), Some(5));
        assert_eq!(c.range(6, 8, &mut all()), Some(run(6, 7, 1, 8)));
        assert_eq!(c.range(4, 6, &mut all()), None);
        assert_eq!(c.range(8, 11, &mut all()), None);
        assert_eq!(c.range(7, 7, &mut all()), Some(vec![]));
    }

    #[test]
    fn range_copies_only_what_the_size_limit_admits() {
        let mut c = EntryCache::new(CacheBudget::default_bounds());
        c.append(run(1, 10, 1, 1000));
        let one = u64::from(ent(1, 1, 1000).compute_size());
        let got = c.range(1, 11, &mut SizeLimit::new(Some(3 * one))).unwrap();
        assert_eq!(got, run(1, 3, 1, 1000));
        // The first entry is always taken, however small the limit.
        let got = c.range(4, 11, &mut SizeLimit::new(Some(0))).unwrap();
        assert_eq!(got, run(4, 4, 1, 1000));
    }

    #[test]
    fn node_figure_shares_the_bytes_between_groups() {
        let per = 1000 + E;
        // Groups may each hold 100 entries, the node 40 in all.
        let budget = CacheBudget::new(100 * per, 40 * per);
        let mut a = EntryCache::new(budget.clone());
        let mut b = EntryCache::new(budget.clone());
        a.append(run(1, 30, 1, 1000));
        assert_eq!(
            a.len(),
            30,
            "under the node figure a group keeps its own bound"
        );
        b.append(run(1, 30, 1, 1000));
        // Over the figure: b is trimmed to its fair share (20) as it appends.
        assert_eq!(b.len(), 20);
        assert_eq!(budget.used(), 50 * per);
        // a writes again and comes down to its share too.
        a.append(vec![ent(31, 1, 1000)]);
        assert_eq!(a.len(), 20);
        assert_eq!(budget.used(), 40 * per);
        drop(b);
        assert_eq!(budget.used(), 20 * per);
        // Alone now, a may grow again up to the node figure.
        a.append(run(32, 60, 1, 1000));
        assert_eq!(a.len(), 40);
    }

    #[test]
    fn compaction_and_clear_release_bytes() {
        let budget = CacheBudget::default_bounds();
        let mut c = EntryCache::new(budget.clone());
        c.append(run(1, 10, 1, 50));
        c.compact_to(4);
        assert_eq!(c.first_index(), Some(5));
        assert_eq!(budget.used(), 6 * (50 + E));
        c.clear();
        assert_eq!(budget.used(), 0);
        assert!(c.first_index().is_none());
    }
}
