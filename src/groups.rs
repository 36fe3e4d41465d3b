//! The data groups this node hosts, the metadata group, and the node's local view of the
//! cluster metadata ([`MetaView`]): which Raft group owns each of the 16384 hash slots.
//! Each hosted group is its raft handle and its store's reader; the request path looks a
//! key's group up here (one relaxed atomic load per key, no lock, no allocation).
//!
//! The slot map follows the metadata group ([`META_GROUP`], see `store::cluster_meta`):
//! every replica publishes the applied metadata into its [`MetaView`]. Until the bootstrap
//! layout is applied the even split of the bootstrap groups is used, which is what the
//! bootstrap lays out. The group count is recorded in the node's database on first start;
//! a later start with another `--groups` is refused, since the keys on disk were placed by
//! the recorded map.
//!
//! The hosted groups change at runtime (a `RAFT.SHARDGROUP JOIN` naming this node, see
//! `crate::hosting`): the list is swapped whole (RCU: one atomic load per lookup, no lock
//! held across an await). A slot whose group this node does not host routes to the
//! group's members as the metadata records them (see `crate::remote`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
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
    /// The data group id of each slot.
    slot_group: Box<[AtomicU16]>,
    /// Number of bootstrap data groups (`--groups`).
    founding: u64,
    /// Number of data groups of the cluster (hosted here or not).
    count: AtomicUsize,
    /// Woken on every publish (the node opens the groups the metadata names it in).
    pub changed: tokio::sync::Notify,
}

impl MetaView {
    /// An empty view over `founding` bootstrap data groups (the even split until metadata
    /// arrives).
    pub fn new(founding: u64) -> Arc<MetaView> {
        let slot_group = (0..SLOTS).map(|_| AtomicU16::new(1)).collect();
        let v = MetaView {
            state: RwLock::new(Arc::new(ClusterMeta::default())),
            slot_group,
            founding,
            count: AtomicUsize::new(founding as usize),
            changed: tokio::sync::Notify::new(),
        };
        v.fill(&ClusterMeta::default());
        Arc::new(v)
    }

    /// Replaces the view with `m` (called on the apply thread).
    pub fn publish(&self, m: &ClusterMeta) {
        self.fill(m);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m.clone());
        self.changed.notify_one();
    }

    /// Stores each slot's group once (a reader never sees an intermediate map).
    fn fill(&self, m: &ClusterMeta) {
        let mut want = vec![1u16; SLOTS as usize];
        for (i, (a, b)) in even_split(self.founding).into_iter().enumerate() {
            want[a as usize..=b as usize].fill(i as u16 + 1);
        }
        for &(a, b, g) in &m.slots {
            if let Ok(g) = u16::try_from(g) {
                want[a as usize..=b as usize].fill(g);
            }
        }
        for (cell, w) in self.slot_group.iter().zip(want) {
            cell.store(w, Ordering::Relaxed);
        }
        if m.groups > 0 {
            self.count.store(m.data_groups().len(), Ordering::Relaxed);
        }
    }

    /// The metadata as last applied.
    pub fn get(&self) -> Arc<ClusterMeta> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The data group of `slot`.
    fn group_of(&self, slot: u16) -> u64 {
        u64::from(self.slot_group[slot as usize % SLOTS as usize].load(Ordering::Relaxed))
    }
}

/// The hosted groups and the slot map.
pub struct Groups {
    /// Hosted data groups, in id order (swapped whole when one is added).
    list: ArcSwap<Vec<Arc<GroupRt>>>,
    /// The first data group opened at start (it always exists).
    home: Arc<GroupRt>,
    meta: Arc<GroupRt>,
    view: Arc<MetaView>,
    /// The node last seen leading each group this node does not host.
    hints: Mutex<HashMap<u64, u64>>,
}

/// The slots group `g` (1-based) of `n` owns at bootstrap, as the store's initial set.
pub fn initial_slots(n: u64, g: u64) -> Result<store::SlotSet, String> {
    if g > n {
        return Ok(store::SlotSet::empty());
    }
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
    /// The data groups opened at start (in id order, at least one), the metadata group and
    /// the view the slot map is read from.
    pub fn new(list: Vec<GroupRt>, meta: GroupRt, view: Arc<MetaView>) -> Arc<Groups> {
        let mut list: Vec<Arc<GroupRt>> = list.into_iter().map(Arc::new).collect();
        list.sort_by_key(|g| g.id);
        let home = list[0].clone();
        Arc::new(Groups {
            list: ArcSwap::from_pointee(list),
            home,
            meta: Arc::new(meta),
            view,
            hints: Mutex::new(HashMap::new()),
        })
    }

    /// Adds a group opened at runtime (a group already hosted is kept as it is).
    pub fn add(&self, g: GroupRt) {
        let g = Arc::new(g);
        self.list.rcu(|list| {
            let mut l: Vec<Arc<GroupRt>> = list.iter().cloned().collect();
            if !l.iter().any(|x| x.id == g.id) {
                l.push(g.clone());
                l.sort_by_key(|x| x.id);
            }
            l
        });
    }

    /// Drops a group removed at runtime from the hosted list.
    pub fn remove(&self, id: u64) {
        self.list.rcu(|list| {
            let mut l: Vec<Arc<GroupRt>> = list.iter().cloned().collect();
            l.retain(|x| x.id != id);
            l
        });
    }

    /// Every hosted data group, in id order.
    pub fn all(&self) -> Arc<Vec<Arc<GroupRt>>> {
        self.list.load_full()
    }

    /// Every hosted group, the metadata group last.
    pub fn every(&self) -> Vec<Arc<GroupRt>> {
        let mut v: Vec<Arc<GroupRt>> = self.list.load().iter().cloned().collect();
        v.push(self.meta.clone());
        v
    }

    /// The hosted data group with this id.
    pub fn get(&self, id: u64) -> Option<Arc<GroupRt>> {
        self.list.load().iter().find(|g| g.id == id).cloned()
    }

    /// True when this node hosts data group `id`.
    pub fn hosts(&self, id: u64) -> bool {
        self.list.load().iter().any(|g| g.id == id)
    }

    /// The hosted data or metadata group with this id.
    pub fn any(&self, id: u64) -> Option<Arc<GroupRt>> {
        if id == META_GROUP {
            return Some(self.meta.clone());
        }
        self.get(id)
    }

    /// The lowest hosted data group (keyless requests go there), else the first one opened
    /// at start (its handle still reaches the node's driver after the group closed).
    pub fn home(&self) -> Arc<GroupRt> {
        self.list
            .load()
            .first()
            .cloned()
            .unwrap_or_else(|| self.home.clone())
    }

    /// The id of [`Groups::home`] (no handle cloned).
    pub fn home_id(&self) -> u64 {
        self.list.load().first().map_or(self.home.id, |g| g.id)
    }

    /// The metadata group.
    pub fn meta(&self) -> &GroupRt {
        &self.meta
    }

    /// The cluster metadata as this node last applied it.
    pub fn meta_state(&self) -> Arc<ClusterMeta> {
        self.view.get()
    }

    /// The view (to wait for its changes).
    pub fn view(&self) -> &MetaView {
        &self.view
    }

    /// The id of the data group owning `slot` (hosted here or not).
    pub fn slot_group(&self, slot: u16) -> u64 {
        self.view.group_of(slot)
    }

    /// The id of the data group owning `key`'s slot.
    pub fn key_group(&self, key: &[u8]) -> u64 {
        self.slot_group(key_slot(key))
    }

    /// Slot ranges owned by group `id` (from the metadata once laid out).
    pub fn ranges(&self, id: u64) -> Vec<(u16, u16)> {
        let m = self.view.get();
        if m.groups > 0 {
            return m.ranges_of(id);
        }
        let n = self.view.founding;
        match id {
            1.. if id <= n => vec![even_split(n)[id as usize - 1]],
            _ => Vec::new(),
        }
    }

    /// Number of data groups of the cluster (hosted here or not).
    pub fn len(&self) -> usize {
        self.view.count.load(Ordering::Relaxed)
    }

    /// The node last seen leading group `id` (not hosted here), 0 when none.
    pub fn hint(&self, id: u64) -> u64 {
        let h = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        h.get(&id).copied().unwrap_or(0)
    }

    /// Records that node `leader` served a request of group `id` as its leader.
    pub fn set_hint(&self, id: u64, leader: u64) {
        let mut h = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        h.insert(id, leader);
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
            (v.group_of(0), v.group_of(5461), v.group_of(16383)),
            (1, 2, 3)
        );
        let mut m = ClusterMeta::default();
        m.apply(&MetaCmd::Init { groups: 3 });
        m.apply(&MetaCmd::Assign {
            group: 3,
            ranges: vec![(0, 9)],
        });
        // A group this node does not host still owns its slots (they route to it).
        m.apply(&MetaCmd::Assign {
            group: 9,
            ranges: vec![(20, 20)],
        });
        v.publish(&m);
        assert_eq!((v.group_of(0), v.group_of(9), v.group_of(10)), (3, 3, 1));
        assert_eq!(v.group_of(20), 9);
        assert_eq!(v.get().epoch, 3);
    }
}
