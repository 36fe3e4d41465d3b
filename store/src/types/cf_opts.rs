//! RocksDB options of the collection families (`sub`, `zscore`), applied by
//! `crate::column_family_descriptors` through [`tune`].
//!
//! - `sub` is read with point lookups (a field, member or element per command, most of them
//!   misses for HSET / SADD / ZADD of new names): whole-key bloom filters in its SST files and
//!   its memtable make a miss cost one filter probe per file instead of an index and data
//!   block search in every level, which is what made HSET's cost grow with the hash's size;
//!   data blocks carry a hash index for the hits.
//! - `zscore` is only scanned (ranges, pops) and written: no filter (iterators cannot use
//!   whole-key filters).
//! - Both share one LRU block cache, larger than RocksDB's default.

use std::sync::OnceLock;

use rocksdb::{BlockBasedOptions, Cache, DataBlockIndexType, Options};

use super::{CF_SUB, CF_ZSCORE};

/// Bytes of the collection families' shared block cache.
pub const BLOCK_CACHE_BYTES: usize = 128 << 20;

/// Bloom filter bits per key of `sub` (about 1% false positives).
const BLOOM_BITS: f64 = 10.0;

/// The process's block cache for the collection families (`None` if RocksDB could not make
/// one: the families then keep RocksDB's default cache).
fn block_cache() -> Option<&'static Cache> {
    static CACHE: OnceLock<Option<Cache>> = OnceLock::new();
    CACHE
        .get_or_init(|| Cache::new_lru_cache(BLOCK_CACHE_BYTES).ok())
        .as_ref()
}

/// Sets the options of column family `name` if it is a collection family (else nothing).
pub fn tune(name: &str, cf: &mut Options) {
    if name != CF_SUB && name != CF_ZSCORE {
        return;
    }
    let mut table = BlockBasedOptions::default();
    if let Some(cache) = block_cache() {
        table.set_block_cache(cache);
    }
    if name == CF_SUB {
        table.set_bloom_filter(BLOOM_BITS, false);
        table.set_whole_key_filtering(true);
        table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
        table.set_data_block_hash_ratio(0.75);
        cf.set_memtable_whole_key_filtering(true);
        cf.set_memtable_prefix_bloom_ratio(0.05);
    }
    cf.set_block_based_table_factory(&table);
}
