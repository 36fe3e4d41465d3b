//! The data groups this node hosts and the slot map: which Raft group owns each of the
//! 16384 hash slots. Each hosted group is its raft handle and its store's reader; the
//! request path looks a key's group up here (one array index per key).
//!
//! The map comes from `--groups N` at bootstrap: slots split evenly, group `g` (1-based)
//! owning the `g`-th share in slot order. The count is recorded in the node's database on
//! first start; a later start with another `--groups` is refused, since the keys on disk
//! were placed by the recorded map.

use std::sync::Arc;

use raft_node::NodeHandle;
use resp::Reply;
use rocksdb::DB;
use store::slot::{key_slot, SLOTS};

/// One hosted data group.
pub struct GroupRt {
    pub id: u64,
    pub node: NodeHandle<Reply>,
    pub reader: store::Reader,
}

/// The hosted groups and the slot map.
pub struct Groups {
    list: Vec<GroupRt>,
    /// Index into `list` of each slot's group.
    slot_index: Vec<u16>,
}

/// Slot ranges (inclusive) of each of `n` groups splitting the slots evenly, group 1 first.
pub fn even_split(n: u64) -> Vec<(u16, u16)> {
    let n = n.clamp(1, SLOTS as u64);
    (0..n)
        .map(|i| {
            let start = i * SLOTS as u64 / n;
            let end = (i + 1) * SLOTS as u64 / n - 1;
            (start as u16, end as u16)
        })
        .collect()
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
    /// The groups, `list[i]` having id `i + 1`, owning the even split of the slots.
    pub fn new(list: Vec<GroupRt>) -> Arc<Groups> {
        let ranges = even_split(list.len() as u64);
        let mut slot_index = vec![0u16; SLOTS as usize];
        for (i, &(a, b)) in ranges.iter().enumerate() {
            for s in a..=b {
                slot_index[s as usize] = i as u16;
            }
        }
        Arc::new(Groups { list, slot_index })
    }

    /// Every hosted group, in id order.
    pub fn all(&self) -> &[GroupRt] {
        &self.list
    }

    /// The group with this id.
    pub fn get(&self, id: u64) -> Option<&GroupRt> {
        self.list.iter().find(|g| g.id == id)
    }

    /// The first group (it also holds the node records).
    pub fn home(&self) -> &GroupRt {
        &self.list[0]
    }

    /// The group owning `slot`.
    pub fn of_slot(&self, slot: u16) -> &GroupRt {
        &self.list[self.slot_index[slot as usize % SLOTS as usize] as usize]
    }

    /// The group owning `key`'s slot.
    pub fn of_key(&self, key: &[u8]) -> &GroupRt {
        self.of_slot(key_slot(key))
    }

    /// Slot ranges owned by group `id`.
    pub fn ranges(&self, id: u64) -> Vec<(u16, u16)> {
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

    #[test]
    fn even_split_covers_every_slot_once() {
        for n in [1u64, 2, 3, 7, 1000] {
            let r = even_split(n);
            assert_eq!(r.len() as u64, n);
            assert_eq!(r[0].0, 0);
            assert_eq!(r[r.len() - 1].1, SLOTS - 1);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
        }
        assert_eq!(
            even_split(3),
            vec![(0, 5460), (5461, 10921), (10922, 16383)]
        );
    }
}
