//! The expiry sweep's apply side (`RAFTKV.SWEEP limit`): deletes up to `limit` keys whose
//! expiry is due at the entry's stamped time, walking the group's own prefix of the expiry
//! index (stale index entries are dropped on the way). Moved out of `lib.rs` to keep it
//! small.

use rocksdb::WriteBatch;

use crate::slots::slot_of;
use crate::types::meta::EXPIRE_KEY_HEAD;
use crate::{fail_stop, Store, CF_EXPIRE};

impl Store {
    pub(crate) fn sweep(&mut self, wb: &mut WriteBatch, now: i64, limit: u64) -> i64 {
        let prefix = self.group.to_be_bytes();
        let mut due = Vec::new();
        {
            let mut it = self.db.raw_iterator_cf(self.cf(CF_EXPIRE));
            it.seek(prefix);
            let mut examined = 0u64;
            while it.valid() && examined < limit.saturating_mul(4).max(16) {
                let Some(k) = it.key() else { break };
                let Some(entry) = k.strip_prefix(&prefix[..]) else {
                    break;
                };
                if k.len() < EXPIRE_KEY_HEAD + 2 {
                    due.push((0, k.to_vec()));
                } else {
                    let at = u64::from_be_bytes(entry[..8].try_into().unwrap_or([0xff; 8])) as i64;
                    if at > now {
                        break;
                    }
                    due.push((at, k.to_vec()));
                }
                examined += 1;
                it.next();
            }
            if let Err(e) = it.status() {
                fail_stop("scanning the expiry index", e);
            }
        }
        let mut deleted = 0;
        for (at, ikey) in due {
            if deleted as u64 >= limit {
                break;
            }
            let dkey = ikey.get(EXPIRE_KEY_HEAD..).unwrap_or_default().to_vec();
            if !dkey.is_empty() && !self.slots.contains(slot_of(&dkey)) {
                // Never indexed by this group (the index follows ownership): leave it.
                continue;
            }
            match self.raw(&dkey) {
                Some(v) if v.expire == at && v.expired(now) => {
                    self.del(wb, &dkey);
                    self.note_expired(&dkey);
                    deleted += 1;
                }
                Some(v) if v.expire == at => {}
                _ => wb.delete_cf(self.cf(CF_EXPIRE), &ikey),
            }
        }
        deleted
    }
}
