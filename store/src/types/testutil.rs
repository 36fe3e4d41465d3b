//! Test harness for the typed operations: a temporary database with the store's column
//! families, batches applied through [`Staged`], reads through [`DbView`].

use std::sync::Arc;

use rocksdb::{WriteBatch, DB};

use super::view::{DbView, Overlay, Staged};
use super::{Cf, Read, Versions, Write};

pub const NOW: i64 = 1_700_000_000_000;

pub struct Db {
    _dir: tempfile::TempDir,
    pub db: Arc<DB>,
    pub versions: Versions,
    pub keys: i64,
}

impl Db {
    pub fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        crate::tune_db_options(&mut opts);
        let db =
            DB::open_cf_descriptors(&opts, dir.path(), crate::column_family_descriptors()).unwrap();
        Db {
            _dir: dir,
            db: Arc::new(db),
            versions: Versions::default(),
            keys: 0,
        }
    }

    /// Runs `f` on one batch at `now` and writes it.
    pub fn batch<T>(&mut self, now: i64, f: impl FnOnce(&mut Staged) -> T) -> T {
        let mut wb = WriteBatch::default();
        let mut ov = Overlay::default();
        let out = {
            let mut st =
                Staged::new(&self.db, &mut wb, &mut ov, &mut self.versions, 1, now).unwrap();
            f(&mut st)
        };
        if ov.flushed() {
            self.keys = 0;
        }
        self.keys += ov.keys_delta();
        self.db.write(wb).unwrap();
        out
    }

    /// One write at NOW.
    pub fn w<T>(&mut self, f: impl FnOnce(&mut Staged) -> T) -> T {
        self.batch(NOW, f)
    }

    /// A read at NOW.
    pub fn r<T>(&self, f: impl FnOnce(&DbView) -> T) -> T {
        f(&DbView::new(&self.db, NOW))
    }

    /// Writes `key` as a string (as the store's SET does).
    pub fn set_string(&mut self, key: &[u8], value: &[u8]) {
        let mut raw = vec![crate::TYPE_STRING];
        raw.extend_from_slice(&0i64.to_be_bytes());
        raw.extend_from_slice(&[0; 8]);
        raw.extend_from_slice(value);
        self.w(|st| st.put_data(key, raw).unwrap());
    }

    /// Deletes `key`'s data record (as the store's DEL does).
    pub fn del(&mut self, key: &[u8]) {
        self.w(|st| st.del_data(key).unwrap());
    }

    /// Sets `key`'s expiry by rewriting its metadata's header.
    pub fn expire_at(&mut self, key: &[u8], at: i64) {
        self.w(|st| {
            let dkey = super::meta::data_key(key);
            let mut raw = st.get(Cf::Data, &dkey).unwrap().unwrap();
            raw[1..9].copy_from_slice(&at.to_be_bytes());
            st.put_data(key, raw).unwrap();
        });
    }

    /// Records physically in a family.
    pub fn count(&self, cf: Cf) -> usize {
        let view = DbView::new(&self.db, NOW);
        let mut n = 0;
        view.scan(cf, &[], &[0xff; 8], false, &mut |_, _| {
            n += 1;
            true
        })
        .unwrap();
        n
    }

    /// Runs the cleaner to the end of one pass, `limit` per call; returns the calls made.
    pub fn clean_all(&mut self, limit: u64) -> usize {
        let mut cursor = super::clean::Cursor::default();
        let mut calls = 0;
        loop {
            calls += 1;
            let rep = self.w(|st| {
                super::clean::clean(st, &cursor, limit, crate::SlotSet::all_ref()).unwrap()
            });
            assert!(rep.examined <= limit);
            match rep.next {
                Some(c) => cursor = c,
                None => return calls,
            }
        }
    }
}

/// Byte strings from string literals.
pub fn bs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}
