//! Batched reads of the old values a multi-key write is about to look up (MSET, MSETNX):
//! one RocksDB multi-get for all of a command's keys instead of one point read per key.
//!
//! The values land in the store's per-batch read cache, the same place a single lookup
//! ([`Store::with_raw`]) would put them, so everything after it (the key and TTL counters,
//! the expiry index, WATCH versions, keyspace events) runs unchanged and sees exactly what
//! one get per key would have returned: the database does not change during a batch, and
//! keys the batch staged already (the overlay) or a FLUSHALL of the batch emptied are left
//! out, as their lookups never reach the database.

use crate::{fail_stop, Store, CF_DATA};

/// Below this many keys to read, the plain point lookups are as cheap.
const MIN_BATCH: usize = 2;

impl Store {
    /// Reads the database values of those of `dkeys` (data keys) the batch has neither
    /// staged nor read yet, with one multi-get, into the read cache.
    pub(crate) fn prefetch(&self, dkeys: &[Vec<u8>]) {
        let mut cache = self.read_cache.borrow_mut();
        let mut missing: Vec<&[u8]> = dkeys
            .iter()
            .map(Vec::as_slice)
            .filter(|k| {
                !self.overlay.contains_key(*k) && !self.flushed_key(k) && !cache.contains_key(*k)
            })
            .collect();
        if missing.len() < MIN_BATCH {
            return;
        }
        // Sorted (the data family's bytewise order) and without duplicates, as RocksDB's
        // batched lookup wants them.
        missing.sort_unstable();
        missing.dedup();
        let values = self
            .db
            .batched_multi_get_cf(self.cf(CF_DATA), &missing, true);
        for (k, v) in missing.into_iter().zip(values) {
            let v = match v {
                Ok(v) => v.map(|pinned| pinned.to_vec()),
                Err(e) => fail_stop("reading keys", e),
            };
            cache.insert(k.to_vec(), v);
        }
    }
}
