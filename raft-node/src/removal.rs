//! How a removed member learns it was removed. The leader stops replicating to a member
//! once it applies that member's removal, so the member may never see the entry commit
//! and would linger (campaigning, refused by the others). Instead of a bare "you were
//! removed" word (which anyone could send), the leader sends it the raft message it would
//! have sent a member anyway: an append of the entries from what the member holds up to
//! the removal entry, with a commit index covering it. The removed node steps it through
//! raft like any other message (term and log checks included), applies its own removal,
//! and only then stops serving.

use raft::eraftpb::{Message, MessageType};
use raft::{GetEntriesContext, Raft, Storage};

/// Most bytes of entries one notice carries (a member further behind is not told).
pub const MAX_NOTICE_BYTES: u64 = 8 << 20;

/// The leader's notice to `id`, removed by the entry at `index`, given what `id` had
/// matched before the change; `None` when the entries are compacted away or too many.
pub fn notice<T: Storage>(raft: &Raft<T>, id: u64, index: u64, matched: u64) -> Option<Message> {
    let log = &raft.raft_log;
    let prev = matched.min(index);
    if prev == 0 {
        return None;
    }
    let log_term = log.term(prev).ok()?;
    let entries = if prev < index {
        let ctx = GetEntriesContext::empty(false);
        let ents = log
            .slice(prev + 1, index + 1, Some(MAX_NOTICE_BYTES), ctx)
            .ok()?;
        if ents.last().map(|e| e.index) != Some(index) {
            return None;
        }
        ents
    } else {
        Vec::new()
    };
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = raft.id;
    m.to = id;
    m.term = raft.term;
    m.index = prev;
    m.log_term = log_term;
    m.commit = index;
    m.entries = entries.into();
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::eraftpb::{
        ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, EntryType, HardState,
    };
    use raft::storage::MemStorage;
    use raft::{Config, RawNode};

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 2,
            ..Default::default()
        }
    }

    /// Node `id` of {1, 2, 3} holding entries 1..=`last`, committed up to `commit`.
    fn node(id: u64, ents: &[Entry], commit: u64) -> RawNode<MemStorage> {
        let store = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        store.wl().append(ents).unwrap();
        store.wl().set_hardstate(HardState {
            term: 2,
            commit,
            ..Default::default()
        });
        let cfg = Config {
            id,
            ..Default::default()
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        RawNode::new(&cfg, store, &log).unwrap()
    }

    #[test]
    fn the_notice_makes_the_removed_node_apply_its_own_removal() {
        let mut cc = ConfChangeV2::default();
        let mut ch = ConfChangeSingle {
            node_id: 3,
            ..Default::default()
        };
        ch.set_change_type(ConfChangeType::RemoveNode);
        cc.mut_changes().push(ch);
        let mut removal = entry(4);
        removal.set_entry_type(EntryType::EntryConfChangeV2);
        removal.data = cc.write_to_bytes().unwrap().into();
        let leader_log = [entry(1), entry(2), entry(3), removal];
        // The leader committed the removal; node 3 has entries up to 2 only.
        let leader = node(1, &leader_log, 4);
        let mut removed = node(3, &leader_log[..2], 1);
        let m = notice(&leader.raft, 3, 4, 2).expect("notice");
        assert_eq!((m.index, m.entries.len(), m.commit), (2, 2, 4));
        removed.step(m).unwrap();
        // Persist the appended entries (as the Ready loop does); then they apply.
        let mut rd = removed.ready();
        removed.mut_store().wl().append(rd.entries()).unwrap();
        let mut committed = rd.take_committed_entries();
        let mut light = removed.advance(rd);
        committed.extend(light.take_committed_entries());
        let last = committed.last().expect("entries committed");
        assert_eq!(last.get_entry_type(), EntryType::EntryConfChangeV2);
        let cc = ConfChangeV2::parse_from_bytes(&last.data).unwrap();
        let cs = removed.apply_conf_change(&cc).unwrap();
        assert!(!cs.voters.contains(&3), "removal applied: {cs:?}");
        // Nothing to send when the entries are gone or the member matched nothing.
        assert!(notice(&leader.raft, 3, 4, 0).is_none());
    }
}
