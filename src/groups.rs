//! The data groups this node hosts, the metadata group, and the node's local view of the
//! cluster metadata ([`MetaView`]): which Raft group owns each of the 16384 hash slots.
//! Each hosted group is its raft handle and its store's reader; the request path looks a
//! key's group up here (one relaxed atomic load per key, no lock, no allocation).
//!
//! The slot map follows the metadata group ([`META_GROUP`], see `store::cluster_meta`):
//! every replica publishes the applied metadata into its [`MetaView`]. Until the bootstrap
//! layout is applied (or when the map names a group this node does not host) the even split
//! of the hosted groups is used, which is what the bootstrap lays out. The group count is
//! recorded in the node's database on first start; a later start with another `--groups`
//! is refused, since the keys on disk were placed by the recorded map.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, RwLock};

use raft_node::NodeHandle;
use resp::Reply;
use rocksdb::DB;
pub use store::cluster_meta::even_split;
use store::cluster_meta::ClusterMeta;
use store::slot::{key_slot, SLOTS};

/// The Raft group id of the cluster metadata: far above any data group id (data groups
/// count from 1) and distinct from the driver's keepalive tag (group 0).
pub const META_GROUP: u64 = 1 << 32;

/// One hosted group.
pub struct GroupRt {
    pub id: u64,
    pub node: NodeHandle<Reply>,
    pub reader: store::Reader,
}

/// The node's copy of the cluster metadata, updated by the metadata group's state machine
/// on every replica as entries apply (or a snapshot is restored).
pub struct MetaView {
    state: RwLock<Arc<ClusterMeta>>,
    /// Index into the hosted data groups of each slot's group.
    slot_index: Box<[AtomicU16]>,
    /// Number of hosted data groups.
    hosted: u64,
}

impl MetaView {
    /// An empty view over `hosted` data groups (the even split until metadata arrives).
    pub fn new(hosted: u64) -> Arc<MetaView> {
        let slot_index = (0..SLOTS).map(|_| AtomicU16::new(0)).collect();
        let v = MetaView {
            state: RwLock::new(Arc::new(ClusterMeta::default())),
            slot_index,
            hosted,
        };
        v.fill(&ClusterMeta::default());
        Arc::new(v)
    }

    /// Replaces the view with `m` (called on the apply thread).
    pub fn publish(&self, m: &ClusterMeta) {
        self.fill(m);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m.clone());
    }

    /// Stores each slot's index once (a reader never sees an intermediate map).
    fn fill(&self, m: &ClusterMeta) {
        let mut want = vec![0u16; SLOTS as usize];
        for (i, (a, b)) in even_split(self.hosted).into_iter().enumerate() {
            want[a as usize..=b as usize].fill(i as u16);
        }
        for &(a, b, g) in &m.slots {
            if (1..=self.hosted).contains(&g) {
                want[a as usize..=b as usize].fill((g - 1) as u16);
            }
        }
        for (cell, w) in self.slot_index.iter().zip(want) {
            cell.store(w, Ordering::Relaxed);
        }
    }

    /// The metadata as last applied.
    pub fn get(&self) -> Arc<ClusterMeta> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Index (into the hosted groups) of `slot`'s group.
    fn index_of(&self, slot: u16) -> usize {
        self.slot_index[slot as usize % SLOTS as usize].load(Ordering::Relaxed) as usize
    }
}

/// The hosted groups and the slot map.
pub struct Groups {
    list: Vec<GroupRt>,
    meta: GroupRt,
    view: Arc<MetaView>,
}

/// The slots group `g` (1-based) of `n` owns at bootstrap, as the store's initial set.
pub fn initial_slots(n: u64, g: u64) -> Result<store::SlotSet, String> {
    let range = even_split(n)
        .get(g.saturating_sub(1) as usize)
        .copied()
        .ok_or_else(|| format!("no group {g} of {n}"))?;
    store::SlotSet::from_ranges([range])
}

/// Key in the raft column family recording the `--groups` a node's data was laid out with.
const LAYOUT_KEY: &[u8] = b"raftkv/layout/groups";

/// Checks `--groups` against the count recorded in `db` (recording it on first start).
pub fn check_layout(db: &DB, groups: u64) -> Result<(), String> {
    let cf = db
        .cf_handle(raft_node::CF_RAFT)
        .ok_or("missing raft column family")?;
    match db.get_cf(cf, LAYOUT_KEY).map_err(|e| e.to_string())? {
        Some(v) => {
            let had = <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| "corrupt layout record".to_string())?;
            if had != groups {
                return Err(format!(
                    "this data dir holds {had} data group(s) but --groups {groups} was given; start with --groups {had} (the slot map cannot change on restart)"
                ));
            }
            Ok(())
        }
        None => {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(cf, LAYOUT_KEY, groups.to_be_bytes(), &opts)
                .map_err(|e| e.to_string())
        }
    }
}

impl Groups {
    /// The data groups (`list[i]` having id `i + 1`), the metadata group and the view the
    /// slot map is read from.
    pub fn new(list: Vec<GroupRt>, meta: GroupRt, view: Arc<MetaView>) -> Arc<Groups> {
        Arc::new(Groups { list, meta, view })
    }

    /// Every hosted data group, in id order.
    pub fn all(&self) -> &[GroupRt] {
        &self.list
    }

    /// Every hosted group, the metadata group last.
    pub fn every(&self) -> impl Iterator<Item = &GroupRt> {
        self.list.iter().chain(std::iter::once(&self.meta))
    }

    /// The data group with this id.
    pub fn get(&self, id: u64) -> Option<&GroupRt> {
        self.list.iter().find(|g| g.id == id)
    }

    /// The data or metadata group with this id.
    pub fn any(&self, id: u64) -> Option<&GroupRt> {
        if id == META_GROUP {
            return Some(&self.meta);
        }
        self.get(id)
    }

    /// The first data group.
    pub fn home(&self) -> &GroupRt {
        &self.list[0]
    }

    /// The metadata group.
    pub fn meta(&self) -> &GroupRt {
        &self.meta
    }

    /// The cluster metadata as this node last applied it.
    pub fn meta_state(&self) -> Arc<ClusterMeta> {
        self.view.get()
    }

    /// The group owning `slot`.
    pub fn of_slot(&self, slot: u16) -> &GroupRt {
        let i = self.view.index_of(slot);
        self.list.get(i).unwrap_or(&self.list[0])
    }

    /// The group owning `key`'s slot.
    pub fn of_key(&self, key: &[u8]) -> &GroupRt {
        self.of_slot(key_slot(key))
    }

    /// Slot ranges owned by group `id` (from the metadata once laid out).
    pub fn ranges(&self, id: u64) -> Vec<(u16, u16)> {
        let m = self.view.get();
        if m.groups > 0 {
            return m.ranges_of(id);
        }
        let n = self.list.len() as u64;
        match self.list.iter().position(|g| g.id == id) {
            Some(i) => vec![even_split(n)[i]],
            None => Vec::new(),
        }
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::cluster_meta::MetaCmd;

    #[test]
    fn the_view_follows_the_metadata_slot_map() {
        let v = MetaView::new(3);
        assert_eq!(
            (v.index_of(0), v.index_of(5461), v.index_of(16383)),
            (0, 1, 2)
        );
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        m.apply(&MetaCmd::Assign {
            group: 3,
            ranges: vec![(0, 9)],
        });
        // A group this node does not host leaves the slot on its default group.
        m.apply(&MetaCmd::Assign {
            group: 9,
            ranges: vec![(20, 20)],
        });
        v.publish(&m);
        assert_eq!((v.index_of(0), v.index_of(9), v.index_of(10)), (2, 2, 0));
        assert_eq!(v.index_of(20), 0);
        assert_eq!(v.get().epoch, 3);
    }
}
