//! The read path's shared state: the bounded pool that runs heavy store reads off the tokio
//! workers, and the set of keys with a lazy delete in flight.
//!
//! The tokio workers also carry the peer transport (heartbeats, appends, votes): a read that
//! holds one for long (KEYS or SCAN on a full memtable, a big MGET, LCS, a long read pipeline)
//! would delay Raft traffic and could cause an election. Such groups run on tokio's
//! blocking pool instead, at most [`HEAVY_READS`] at a time.
//!
//! Lazy expiry: a read on the leader that finds an expired key proposes its deletion. A hot
//! expired key would turn every read into a Raft write; the in-flight set keeps at most one
//! delete per key in flight (and at most [`MAX_IN_FLIGHT`] keys in all).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use resp::{Command, Reply};
use tokio::sync::Semaphore;

/// Heavy read groups running at once on the blocking pool.
pub const HEAVY_READS: usize = 2;
/// Most keys with a lazy delete in flight; beyond it expired keys wait for the sweep.
pub const MAX_IN_FLIGHT: usize = 4096;
/// A read group of more commands (or an MGET/EXISTS of more keys) than this is heavy.
const HEAVY_GROUP: usize = 64;

/// Shared by every session of a node.
pub struct ReadWork {
    heavy: Semaphore,
    deleting: Arc<Mutex<HashSet<Bytes>>>,
    /// Lazy-delete proposals made (INFO-able counter).
    pub lazy_deletes: AtomicU64,
}

impl Default for ReadWork {
    fn default() -> Self {
        ReadWork {
            heavy: Semaphore::new(HEAVY_READS),
            deleting: Arc::new(Mutex::new(HashSet::new())),
            lazy_deletes: AtomicU64::new(0),
        }
    }
}

/// True when running `cmds` could hold a thread for long.
fn is_heavy(cmds: &[Command]) -> bool {
    cmds.len() > HEAVY_GROUP
        || cmds.iter().any(|c| match c {
            // LCS: O(len1 * len2), up to a 512 MiB table.
            Command::Keys(_) | Command::Scan { .. } | Command::Lcs(_) | Command::Script(_) => true,
            // KEYS, or a DBSIZE that may count keys one by one; RANDOMKEY's walk may flush
            // the memtable first (see `store::Reader::read_all`).
            Command::ReadSlots { .. } | Command::RandomKey => true,
            Command::MGet(k) | Command::Exists(k) | Command::Touch(k) => k.len() > HEAVY_GROUP,
            _ => false,
        })
}

impl ReadWork {
    /// Runs a read group on one store snapshot at `now`: inline when light, on the
    /// blocking pool (bounded) when heavy. Returns the replies and the expired keys seen.
    pub async fn run(
        &self,
        reader: &store::Reader,
        cmds: Vec<Command>,
        now: i64,
    ) -> (Vec<Reply>, Vec<Bytes>) {
        if !is_heavy(&cmds) {
            return reader.read_all(&cmds, now);
        }
        let n = cmds.len();
        let failed = |why: &str| (vec![Reply::err(why); n], Vec::new());
        let Ok(_permit) = self.heavy.acquire().await else {
            return failed("TRYAGAIN node is shutting down");
        };
        let reader = reader.clone();
        match tokio::task::spawn_blocking(move || reader.read_all(&cmds, now)).await {
            Ok(out) => out,
            Err(_) => failed("ERR internal error running the read"),
        }
    }

    /// Claims the expired keys that have no delete in flight yet; the caller proposes a
    /// delete for them and then calls [`ReadWork::release`].
    pub fn claim(&self, keys: Vec<Bytes>) -> Vec<Bytes> {
        let mut set = self.deleting.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for k in keys {
            if set.len() >= MAX_IN_FLIGHT {
                break;
            }
            if set.insert(k.clone()) {
                out.push(k);
            }
        }
        if !out.is_empty() {
            self.lazy_deletes.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// A handle that forgets claimed keys once their delete is decided.
    pub fn releaser(&self) -> Releaser {
        Releaser(self.deleting.clone())
    }
}

/// Forgets claimed keys (see [`ReadWork::claim`]).
pub struct Releaser(Arc<Mutex<HashSet<Bytes>>>);

impl Releaser {
    pub fn release(&self, keys: &[Bytes]) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            set.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_claimed_once_until_released() {
        let w = ReadWork::default();
        let k = Bytes::from_static(b"k");
        assert_eq!(w.claim(vec![k.clone()]), vec![k.clone()]);
        assert!(w.claim(vec![k.clone(), k.clone()]).is_empty());
        w.releaser().release(std::slice::from_ref(&k));
        assert_eq!(w.claim(vec![k.clone()]), vec![k]);
        assert_eq!(w.lazy_deletes.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_in_flight_set_is_bounded() {
        let w = ReadWork::default();
        let keys: Vec<Bytes> = (0..MAX_IN_FLIGHT + 10)
            .map(|i| Bytes::from(i.to_string()))
            .collect();
        assert_eq!(w.claim(keys).len(), MAX_IN_FLIGHT);
    }

    #[test]
    fn keys_scan_and_big_groups_are_heavy() {
        assert!(is_heavy(&[Command::Keys(Bytes::from_static(b"*"))]));
        assert!(!is_heavy(&[Command::Get(Bytes::from_static(b"k"))]));
        let many = vec![Command::Get(Bytes::from_static(b"k")); HEAVY_GROUP + 1];
        assert!(is_heavy(&many));
        let argv = ["LCS", "a", "b"].map(|w| Bytes::from_static(w.as_bytes()));
        let lcs = Command::parse(&argv);
        assert!(lcs.is_ok_and(|c| is_heavy(&[c])));
    }
}
