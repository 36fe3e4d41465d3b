//! The store's RocksDB column families and the options it opens them with (memtable kinds,
//! bloom filters, buffer sizes), for the node's database set-up.

use crate::{scripting, txn, types, CF_DATA, CF_EXPIRE, CF_META};

/// Column families the store needs.
pub fn column_families() -> Vec<&'static str> {
    vec![
        CF_DATA,
        CF_EXPIRE,
        CF_META,
        types::CF_SUB,
        types::CF_ZSCORE,
        txn::CF_KVER,
        scripting::CF_SCRIPTS,
    ]
}

/// The column families with the options the store wants. The data family keeps its
/// memtable as a hash of whole keys (point lookups and inserts, the hot path of every
/// command, touch one small bucket instead of searching one large skiplist: 1.6x the
/// pipelined SET rate measured here). The price: iterating it in key order (KEYS, SCAN)
/// first sorts the memtable's entries, ~0.5 s per call with a full 32 MiB memtable.
/// The `kver` family (one record per written key, by every write) takes the same memtable:
/// it is only read by point lookups (WATCH) and, in key order, by snapshot exports. Both
/// keep a bloom filter in their table files, so the lookup of a key a file does not hold
/// (every write looks up the key's old value) skips that file.
pub fn column_family_descriptors() -> Vec<rocksdb::ColumnFamilyDescriptor> {
    column_families()
        .into_iter()
        .map(|name| {
            let mut cf = rocksdb::Options::default();
            let hashed = hashed(name);
            cf.set_write_buffer_size(if hashed { 32 << 20 } else { 64 << 20 });
            if hashed {
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_bloom_filter(10.0, false);
                cf.set_block_based_table_factory(&table);
                cf.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
                cf.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
                    bucket_count: 1 << 20,
                    height: 8,
                    branching_factor: 4,
                });
                cf.set_memtable_whole_key_filtering(true);
                cf.set_memtable_prefix_bloom_ratio(0.1);
            }
            // The collection families' own options (bloom filters, block cache): see there.
            types::cf_opts::tune(name, &mut cf);
            rocksdb::ColumnFamilyDescriptor::new(name, cf)
        })
        .collect()
}

/// Whether family `name` keeps its memtable hashed (see [`column_family_descriptors`]): a
/// total-order iterator of it sorts the memtable's entries when it is created.
pub(crate) fn hashed(name: &str) -> bool {
    name == CF_DATA || name == txn::CF_KVER
}

/// Flushes family `name`'s memtables when it is hashed and they hold more than `most`
/// entries: a total-order iterator of a hashed memtable sorts all its entries first, each
/// time one is created (an export's chunk, a SCAN page, KEYS); once flushed, the records are
/// read from table files and the memtable holds only the writes since. The price: one flush
/// (a small table file) per `most` writes while such reads run.
pub(crate) fn flush_if_big(db: &rocksdb::DB, name: &str, most: u64) -> Result<(), String> {
    if !hashed(name) {
        return Ok(());
    }
    let cf = db.cf_handle(name).ok_or("missing column family")?;
    let entries = |p: &str| db.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
    let n = entries("rocksdb.num-entries-active-mem-table")
        + entries("rocksdb.num-entries-imm-mem-tables");
    if n > most {
        db.flush_cf(cf).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Database-wide options the store's column families need (the hashed memtable cannot
/// take concurrent memtable writes), and the info LOG's level, set explicitly: RocksDB's
/// default depends on how the library was built (DEBUG without `NDEBUG`, as Debian's
/// librocksdb is: one `FlushWAL sync=true` line per WAL sync, i.e. per driver round).
/// INFO keeps the flush and compaction events and the periodic statistics.
pub fn tune_db_options(opts: &mut rocksdb::Options) {
    opts.set_allow_concurrent_memtable_write(false);
    opts.set_log_level(rocksdb::LogLevel::Info);
}
