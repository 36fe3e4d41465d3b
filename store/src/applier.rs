//! The store's typed-operation view in the apply path: [`Applier`] implements the
//! collection operations' [`Read`] / [`Write`] on the [`Store`] itself, so strings and
//! collection metadata share ONE overlay (the store's, with its key and TTL counters and
//! expiry index kept by `put_encoded` / `del`), and sub / score records get the store's
//! ordered overlay (`Store::coll`, cleared when the batch is written). Range scans merge the
//! database with that overlay ([`crate::types::view::merged_scan`]).

use std::sync::Arc;

use rocksdb::{WriteBatch, DB};

use crate::types::meta::data_key;
use crate::types::view::{merged_scan, DbView};
use crate::types::{Cf, Error, Read, Result, Versions, Write};
use crate::{fail_stop, Store, CF_META};

/// The store plus the batch being staged, at the entry's stamped time.
pub(crate) struct Applier<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) wb: &'a mut WriteBatch,
    db: Arc<DB>,
    now: i64,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(store: &'a mut Store, wb: &'a mut WriteBatch, now: i64) -> Applier<'a> {
        let db = store.db.clone();
        Applier { store, wb, db, now }
    }

    fn slot(cf: Cf) -> usize {
        match cf {
            Cf::Score => 1,
            _ => 0,
        }
    }
}

impl Read for Applier<'_> {
    fn now(&self) -> i64 {
        self.now
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if cf == Cf::Data {
            return Ok(self.store.with_raw(key, |b| b.map(<[u8]>::to_vec)));
        }
        match self.store.coll[Self::slot(cf)].get(key) {
            Some(v) => Ok(v.clone()),
            None if self.store.flushed_key(key) => Ok(None),
            None => DbView::new(&self.db, self.now).get(cf, key),
        }
    }

    fn scan(
        &self,
        cf: Cf,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let base = DbView::new(&self.db, self.now);
        if cf == Cf::Data {
            // No typed operation scans the data family in the apply path.
            return Err(Error::Storage("data scans are not staged".into()));
        }
        let map = &self.store.coll[Self::slot(cf)];
        merged_scan(
            &base,
            map,
            self.store.flushed.as_deref(),
            cf,
            (lower, upper),
            reverse,
            f,
        )
    }
}

impl Write for Applier<'_> {
    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.wb.put_cf(self.store.cf(cf.name()), key, value);
        self.store
            .coll_set(Self::slot(cf), key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.wb.delete_cf(self.store.cf(cf.name()), key);
        self.store.coll_set(Self::slot(cf), key.to_vec(), None);
    }

    fn delete_range(&mut self, cf: Cf, lower: &[u8], upper: &[u8]) {
        self.wb
            .delete_range_cf(self.store.cf(cf.name()), lower, upper);
    }

    fn put_data(&mut self, user_key: &[u8], value: Vec<u8>) -> Result<()> {
        if crate::Value::header(&value).is_none() {
            return Err(Error::Storage("short data record".into()));
        }
        self.store.put_encoded(self.wb, data_key(user_key), value);
        Ok(())
    }

    fn del_data(&mut self, user_key: &[u8]) -> Result<()> {
        self.store.del(self.wb, &data_key(user_key));
        Ok(())
    }

    fn charge(&mut self, cost: usize) -> Result<()> {
        match self.store.budget.charge(cost) {
            Ok(()) => Ok(()),
            Err(resp::Reply::Error(e)) => Err(Error::Client(e)),
            Err(_) => Err(Error::Client("ERR write budget exceeded".into())),
        }
    }

    fn next_version(&mut self) -> u64 {
        let v = self.store.versions.next(self.now);
        let meta = self.store.cf(CF_META);
        self.wb
            .put_cf(meta, Versions::meta_key(self.store.group), v.to_be_bytes());
        v
    }
}

/// The reply for an operation's error in the apply path: a client error as Redis words it;
/// a storage failure stops the node (replicas must not answer differently).
pub(crate) fn apply_error(e: Error) -> resp::Reply {
    if e.is_fatal() {
        fail_stop("applying a collection command", e);
    }
    resp::Reply::err(e.to_string())
}
