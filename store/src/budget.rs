//! The apply-side size budget: how much one command and one Raft entry may write (and read
//! back into replies while applying). The limits are constants of the binary, never a
//! node's own flags, so every replica refuses the same commands with the same error: a
//! committed entry gets one answer everywhere, and replaying it after a restart can never
//! make a replica run out of memory.

use resp::Reply;

/// Largest string a command may create (Redis's `proto-max-bulk-len` default).
pub const MAX_STRING: usize = 512 * 1024 * 1024;

/// Most value bytes the commands of one Raft entry may write in total (each value a
/// command writes or rewrites whole, and the values reads applied with the entry copy into
/// replies; keys are not counted, they travel in the entry): one string of the largest
/// size. Memory while applying an entry stays near one copy of this (the write batch),
/// however few bytes the entry itself has (16 `SETRANGE k 268435456 x` are 500 bytes).
pub const ENTRY_WRITE_BUDGET: usize = MAX_STRING;

/// Redis's reply to a command that would make a string longer than `proto-max-bulk-len`.
pub const STRING_TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// The reply to a command the entry's budget has no room left for.
pub fn over_budget() -> Reply {
    Reply::err(format!(
        "ERR write budget exceeded: this command would take its Raft entry past {ENTRY_WRITE_BUDGET} bytes of values written or read (shared with the commands applied before it in the entry); it was not applied"
    ))
}

/// Value bytes written so far by the entry being applied.
#[derive(Debug, Default, Clone)]
pub struct Budget {
    used: usize,
}

impl Budget {
    /// A new entry starts.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Takes `cost` bytes for one command, or the error it must answer instead (nothing
    /// taken). One command on its own may use the whole budget.
    pub fn charge(&mut self, cost: usize) -> Result<(), Reply> {
        let total = self.used.saturating_add(cost);
        if total > ENTRY_WRITE_BUDGET {
            return Err(over_budget());
        }
        self.used = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_command_may_use_it_all_then_nothing_fits() {
        let mut b = Budget::default();
        assert_eq!(b.charge(ENTRY_WRITE_BUDGET + 1), Err(over_budget()));
        assert_eq!(b.charge(ENTRY_WRITE_BUDGET), Ok(()));
        assert_eq!(b.charge(1), Err(over_budget()));
        b.reset();
        assert_eq!(b.charge(ENTRY_WRITE_BUDGET / 2 + 1), Ok(()));
        assert_eq!(b.charge(ENTRY_WRITE_BUDGET / 2), Err(over_budget()));
        assert_eq!(b.charge(ENTRY_WRITE_BUDGET / 2 - 1), Ok(()));
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::{column_family_descriptors, tune_db_options, Store};
    use bytes::Bytes;
    use resp::Command;
    use rocksdb::{WriteBatch, DB};
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        tune_db_options(&mut opts);
        let db = DB::open_cf_descriptors(&opts, dir.path(), column_family_descriptors()).unwrap();
        let store = Store::open(Arc::new(db), 1, crate::SlotSet::all()).unwrap();
        (dir, store)
    }

    fn setrange(key: &str, offset: usize) -> Command {
        Command::SetRange {
            key: Bytes::from(key.to_string()),
            offset: offset as i64,
            value: Bytes::from_static(b"x"),
        }
    }

    /// The case: 16 pipelined `SETRANGE k<i> 268435456 x` in one entry. The first
    /// takes half the budget and a bit more; every later one is refused, on any replica.
    #[test]
    fn sparse_setranges_in_one_entry_stop_at_the_budget() {
        let (_dir, mut s) = store();
        let mut wb = WriteBatch::default();
        s.begin_entry();
        let replies: Vec<Reply> = (0..16)
            .map(|i| s.apply(&mut wb, &setrange(&format!("k{i}"), 1 << 28), 1))
            .collect();
        assert_eq!(replies[0], Reply::Int((1 << 28) + 1));
        for r in &replies[1..] {
            assert_eq!(r, &over_budget());
        }
        // The next entry has a fresh budget.
        s.begin_entry();
        assert_eq!(s.apply(&mut wb, &setrange("small", 10), 1), Reply::Int(11));
    }

    #[test]
    fn strings_past_proto_max_bulk_len_are_refused() {
        let (_dir, mut s) = store();
        let mut wb = WriteBatch::default();
        s.begin_entry();
        assert_eq!(
            s.apply(&mut wb, &setrange("k", MAX_STRING), 1),
            Reply::err(STRING_TOO_BIG)
        );
        assert_eq!(
            s.apply(&mut wb, &setrange("k", MAX_STRING - 1), 1),
            Reply::Int(MAX_STRING as i64)
        );
        let append = Command::Append {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"y"),
        };
        assert_eq!(s.apply(&mut wb, &append, 1), Reply::err(STRING_TOO_BIG));
    }

    /// Reads applied with an entry are charged with the values they copy into replies.
    #[test]
    fn reads_in_an_entry_are_charged() {
        let (_dir, mut s) = store();
        let mut wb = WriteBatch::default();
        s.begin_entry();
        let big = (ENTRY_WRITE_BUDGET / 4) as i64;
        let set = Command::SetRange {
            key: Bytes::from_static(b"big"),
            offset: big - 1,
            value: Bytes::from_static(b"z"),
        };
        assert_eq!(s.apply(&mut wb, &set, 1), Reply::Int(big));
        let mget = Command::MGet(vec![Bytes::from_static(b"big"); 3]);
        assert_eq!(s.apply(&mut wb, &mget, 1), over_budget());
        let get = Command::Get(Bytes::from_static(b"big"));
        assert!(matches!(s.apply(&mut wb, &get, 1), Reply::Bulk(b) if b.len() == big as usize));
    }
}
