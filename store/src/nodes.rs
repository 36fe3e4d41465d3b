//! Cluster state kept in the store beside the data: each node's client (Redis) address,
//! recorded by the replicated `RAFTKV.NODEADDR` in the `meta` column family under the
//! applying group's prefix (so that group's snapshots carry it), and published to readers
//! at once; plus the per-slot key queries of CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT (a slot
//! is one key range of `data`, so both are one bounded range scan; a slot the group does not
//! serve has no keys here).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use resp::Reply;
use rocksdb::{WriteBatch, DB};

use crate::{fail_stop, meta_key, total_order, Reader, Store, Value, CF_DATA, CF_META};

/// Node addresses as readers see them.
pub(crate) type Addrs = std::sync::RwLock<Arc<BTreeMap<u64, String>>>;

/// The meta-CF prefix of the group's node address records: tag `N`.
fn prefix(group: u64) -> Vec<u8> {
    meta_key(group, b'N')
}

fn addr_key(group: u64, id: u64) -> Vec<u8> {
    let mut k = prefix(group);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Every address `group` recorded in `db` (a storage error stops the node, like any other).
pub(crate) fn load(db: &DB, group: u64) -> BTreeMap<u64, String> {
    let Some(cf) = db.cf_handle(CF_META) else {
        return BTreeMap::new();
    };
    let pre = prefix(group);
    let mut out = BTreeMap::new();
    let mut it = db.raw_iterator_cf_opt(cf, total_order());
    it.seek(&pre);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let Some(id) = k.strip_prefix(&pre[..]) else {
            break;
        };
        if let (Ok(id), Ok(addr)) = (<[u8; 8]>::try_from(id), std::str::from_utf8(v)) {
            out.insert(u64::from_be_bytes(id), addr.to_string());
        }
        it.next();
    }
    if let Err(e) = it.status() {
        fail_stop("reading node addresses", e);
    }
    out
}

/// Replaces what readers see with `addrs`.
pub(crate) fn publish(shared: &Addrs, addrs: BTreeMap<u64, String>) {
    *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(addrs);
}

impl Store {
    /// Applies `RAFTKV.NODEADDR id addr`: stages the record and publishes it (the entry is
    /// committed, so every replica records the same).
    pub(crate) fn record_node_addr(&mut self, wb: &mut WriteBatch, id: u64, addr: &str) -> Reply {
        wb.put_cf(self.cf(CF_META), addr_key(self.group, id), addr.as_bytes());
        let mut addrs = (**self
            .shared
            .node_addrs
            .read()
            .unwrap_or_else(|p| p.into_inner()))
        .clone();
        addrs.insert(id, addr.to_string());
        publish(&self.shared.node_addrs, addrs);
        Reply::ok()
    }

    /// Reloads the published addresses from the database (open, snapshot restore).
    pub(crate) fn reload_node_addrs(&self) {
        publish(&self.shared.node_addrs, load(&self.db, self.group));
    }
}

impl Reader {
    /// Client addresses recorded by RAFTKV.NODEADDR, by node id.
    pub fn node_addrs(&self) -> Arc<BTreeMap<u64, String>> {
        self.counters
            .node_addrs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Visits the live keys of `slot` in key order until `f` returns false (none when the
    /// group does not serve `slot`).
    fn slot_keys(
        &self,
        slot: u16,
        now: i64,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), String> {
        if !self.slots().contains(slot) {
            return Ok(());
        }
        let cf = self.cf(CF_DATA).ok_or("missing data column family")?;
        let mut it = self.db.raw_iterator_cf_opt(cf, total_order());
        it.seek(slot.to_be_bytes());
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.get(..2) != Some(&slot.to_be_bytes()[..]) {
                break;
            }
            let (_, expire) = Value::header(v).ok_or("corrupt value")?;
            if (expire == 0 || expire > now) && !f(&k[2..]) {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(|e| e.to_string())
    }

    /// CLUSTER COUNTKEYSINSLOT: live keys in `slot` at `now`.
    pub fn count_keys_in_slot(&self, slot: u16, now: i64) -> Reply {
        let mut n = 0i64;
        match self.slot_keys(slot, now, |_| {
            n += 1;
            true
        }) {
            Ok(()) => Reply::Int(n),
            Err(e) => Reply::err(format!("ERR storage error: {e}")),
        }
    }

    /// CLUSTER GETKEYSINSLOT: up to `count` live keys of `slot`, in key order.
    pub fn keys_in_slot(&self, slot: u16, count: u64, now: i64) -> Reply {
        let mut keys = Vec::new();
        let res = self.slot_keys(slot, now, |k| {
            if keys.len() as u64 >= count {
                return false;
            }
            keys.push(Reply::Bulk(Bytes::copy_from_slice(k)));
            true
        });
        match res {
            Ok(()) => Reply::Array(keys),
            Err(e) => Reply::err(format!("ERR storage error: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{column_family_descriptors, key_slot, tune_db_options};
    use resp::{Command, SetOptions};

    fn open(path: &std::path::Path) -> Arc<DB> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        tune_db_options(&mut opts);
        Arc::new(DB::open_cf_descriptors(&opts, path, column_family_descriptors()).unwrap())
    }

    fn apply(store: &mut Store, db: &DB, cmds: &[Command], now: i64) {
        let mut wb = WriteBatch::default();
        for c in cmds {
            store.apply(&mut wb, c, now);
        }
        store.stage_applied(&mut wb, store.applied_index() + 1);
        db.write(wb).unwrap();
        store.batch_written();
    }

    fn set(k: &str, px: Option<i64>) -> Command {
        Command::Set {
            key: Bytes::from(k.to_string()),
            value: Bytes::from_static(b"v"),
            opts: SetOptions {
                expire: px.map(resp::ExpireAt::RelativeMs),
                ..Default::default()
            },
        }
    }

    #[test]
    fn addresses_are_published_at_once_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let mut store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        let reader = store.reader();
        assert!(reader.node_addrs().is_empty());
        let rec = |id, a: &str| Command::NodeAddr { id, addr: a.into() };
        apply(
            &mut store,
            &db,
            &[rec(2, "h:2"), rec(1, "h:1"), rec(2, "h:22")],
            10,
        );
        let want = BTreeMap::from([(1, "h:1".to_string()), (2, "h:22".to_string())]);
        assert_eq!(*reader.node_addrs(), want);
        // FLUSHALL leaves cluster state alone.
        apply(&mut store, &db, &[Command::FlushAll], 11);
        drop((store, reader));
        let store = Store::open(db, 1, crate::SlotSet::all()).unwrap();
        assert_eq!(*store.reader().node_addrs(), want);
    }

    #[test]
    fn slot_queries_see_live_keys_of_one_slot_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let mut store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
        let r = store.reader();
        let cmds = [
            set("{t}a", None),
            set("{t}b", None),
            set("{t}c", Some(5)),
            set("other", None),
        ];
        apply(&mut store, &db, &cmds, 1000);
        let s = key_slot(b"{t}");
        assert_eq!(r.count_keys_in_slot(s, 1001), Reply::Int(3));
        assert_eq!(r.count_keys_in_slot(s, 2000), Reply::Int(2));
        assert_eq!(
            r.count_keys_in_slot(s.wrapping_add(1) % 16384, 1001),
            Reply::Int(0)
        );
        let two = Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"{t}a")),
            Reply::Bulk(Bytes::from_static(b"{t}b")),
        ]);
        assert_eq!(r.keys_in_slot(s, 2, 1001), two);
        assert_eq!(r.keys_in_slot(s, 10, 2000), two);
        assert_eq!(r.keys_in_slot(s, 0, 1001), Reply::Array(vec![]));
    }
}
