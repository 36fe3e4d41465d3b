//! The simulation's replicated state machine: an append-only list of the commands of
//! committed entries, persisted in the node's RocksDB (default column family) in the same
//! batches as the raft state, with a running digest so that two nodes' states can be
//! compared at any applied index in O(1). A snapshot is a copy of the whole state.

use rocksdb::{WriteBatch, DB};

/// Mixes one applied command into the running digest.
fn mix(digest: u64, index: u64, data: &[u8]) -> u64 {
    let mut h = digest ^ 0x9e37_79b9_7f4a_7c15;
    for &x in index.to_le_bytes().iter().chain(data) {
        h = (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche so that similar histories give very different digests.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn item_key(n: u64) -> Vec<u8> {
    let mut k = b"item".to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn get_u64(db: &DB, key: &[u8]) -> u64 {
    db.get(key)
        .expect("state machine read")
        .map(|v| u64::from_be_bytes(v[..8].try_into().expect("8 bytes")))
        .unwrap_or(0)
}

/// The list state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSm {
    /// Raft index of the last applied entry (as persisted with the state).
    pub applied: u64,
    /// Digest of every command applied so far (with its index).
    pub digest: u64,
    /// The commands, in apply order.
    pub items: Vec<Vec<u8>>,
}

impl ListSm {
    /// Loads the persisted state (empty for a new database).
    pub fn load(db: &DB) -> Self {
        let applied = get_u64(db, b"applied");
        let digest = get_u64(db, b"digest");
        let len = get_u64(db, b"len");
        let items = (0..len)
            .map(|n| {
                db.get(item_key(n))
                    .expect("state machine read")
                    .expect("persisted item is missing")
            })
            .collect();
        ListSm {
            applied,
            digest,
            items,
        }
    }

    /// Applies the command of one committed normal entry (empty entries change nothing).
    pub fn apply(&mut self, wb: &mut WriteBatch, index: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        wb.put(item_key(self.items.len() as u64), data);
        self.items.push(data.to_vec());
        self.digest = mix(self.digest, index, data);
    }

    /// Stages the applied index (once per batch, after its applies).
    pub fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.applied = index;
        wb.put(b"applied", index.to_be_bytes());
        wb.put(b"digest", self.digest.to_be_bytes());
        wb.put(b"len", (self.items.len() as u64).to_be_bytes());
    }

    /// Encodes the whole state (the data of a snapshot).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.applied.to_be_bytes());
        out.extend_from_slice(&self.digest.to_be_bytes());
        out.extend_from_slice(&(self.items.len() as u64).to_be_bytes());
        for it in &self.items {
            out.extend_from_slice(&(it.len() as u32).to_be_bytes());
            out.extend_from_slice(it);
        }
        out
    }

    /// Decodes [`ListSm::encode`]'s output.
    pub fn decode(mut b: &[u8]) -> Result<Self, String> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if b.len() < n {
                return Err("truncated snapshot data".into());
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Ok(h)
        }
        let u64_of = |s: &[u8]| u64::from_be_bytes(s.try_into().expect("8 bytes"));
        let applied = u64_of(take(&mut b, 8)?);
        let digest = u64_of(take(&mut b, 8)?);
        let len = u64_of(take(&mut b, 8)?);
        let mut items = Vec::with_capacity(len as usize);
        for _ in 0..len {
            let n = u32::from_be_bytes(take(&mut b, 4)?.try_into().expect("4 bytes")) as usize;
            items.push(take(&mut b, n)?.to_vec());
        }
        if !b.is_empty() {
            return Err("trailing bytes in snapshot data".into());
        }
        Ok(ListSm {
            applied,
            digest,
            items,
        })
    }

    /// Replaces the whole state (in memory and on disk) by `from` (a received snapshot).
    pub fn restore(&mut self, db: &DB, from: ListSm) {
        let mut wb = WriteBatch::default();
        wb.delete_range(item_key(0), item_key(u64::MAX));
        for (n, it) in from.items.iter().enumerate() {
            wb.put(item_key(n as u64), it);
        }
        *self = from;
        let applied = self.applied;
        self.stage_applied(&mut wb, applied);
        db.write(wb).expect("state machine restore write");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip() {
        let sm = ListSm {
            applied: 9,
            digest: 77,
            items: vec![b"a".to_vec(), Vec::new(), b"ccc".to_vec()],
        };
        assert_eq!(ListSm::decode(&sm.encode()).unwrap(), sm);
        assert!(ListSm::decode(&sm.encode()[..20]).is_err());
    }
}
