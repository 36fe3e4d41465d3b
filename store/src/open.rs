//! Opening a group's state machine: the applied index, counters, slot sets, fences and
//! versions it persisted, read back from the node's database.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rocksdb::DB;

use crate::budget::Budget;
use crate::slots::SlotSet;
use crate::{
    claims, column_families, meta_key, nodes, scope, txn, types, Counters, Store, StoreError,
    CF_META,
};

impl Store {
    /// Opens the group's state machine over its slots, restoring its applied index and
    /// counters. `initial` is the slot set of a new group: it is persisted the first time,
    /// and afterwards the persisted set wins (it changes only through applied commands).
    /// A new group's slots must hold no other group's data (its counters start at 0).
    pub fn open(db: Arc<DB>, group_id: u64, initial: SlotSet) -> Result<Store, StoreError> {
        for cf in column_families() {
            if db.cf_handle(cf).is_none() {
                return Err(StoreError::MissingCf(cf));
            }
        }
        let (applied, last_time, keys, expires) = Self::load_meta(&db, group_id)?;
        let slots = scope::load_or_init_slots(&db, group_id, initial)?;
        let watch_versions = txn::Versions::load(&db, group_id)?;
        let fence = scope::load_fence(&db, group_id)?;
        let sealed = scope::load_sealed(&db, group_id)?;
        let incoming = scope::load_incoming(&db, group_id)?;
        let versions =
            types::Versions::load(&db, group_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let shared = Arc::new(Counters::default());
        *shared.slots.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(slots.difference(&incoming));
        shared
            .copying
            .store(!incoming.is_empty(), Ordering::Release);
        nodes::publish(&shared.node_addrs, nodes::load(&db, group_id));
        shared.keys.store(keys.max(0) as u64, Ordering::Release);
        shared
            .expires
            .store(expires.max(0) as u64, Ordering::Release);
        let mut store = Store {
            db,
            group: group_id,
            applied,
            last_time,
            keys,
            expires,
            overlay: HashMap::new(),
            read_cache: RefCell::new(HashMap::new()),
            flushed: None,
            slots,
            slots_changed: false,
            shared,
            budget: Budget::default(),
            watch_versions,
            coll: Default::default(),
            staged: Default::default(),
            versions,
            seed_index: 0,
            seed_pos: 0,
            pushed: Vec::new(),
            events: Vec::new(),
            undo: None,
            engine: None,
            scripts: Default::default(),
            libs: Default::default(),
            libs_changed: false,
            claims: claims::Claims::new(),
            fence,
            sealed,
            incoming,
        };
        store.claims.clone().owned_by(group_id, &store.slots);
        store.reload_libraries();
        Ok(store)
    }

    /// Reads the persisted applied index, last time and counters.
    pub(crate) fn load_meta(db: &DB, group_id: u64) -> Result<(u64, i64, i64, i64), StoreError> {
        let meta = db
            .cf_handle(CF_META)
            .ok_or(StoreError::MissingCf(CF_META))?;
        let get = |tag: u8| -> Result<i64, StoreError> {
            match db.get_cf(meta, meta_key(group_id, tag))? {
                Some(v) => Ok(i64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("meta value".into()))?,
                )),
                None => Ok(0),
            }
        };
        Ok((get(b'a')? as u64, get(b't')?, get(b'k')?, get(b'e')?))
    }
}
