//! The Raft state machine of a raftkv node: decodes each committed command (an encoded
//! `Argv`), re-parses it with the same parser every replica runs, and applies it to the
//! store at the leader-stamped time; the metadata group's applies `RAFTKV.META` commands
//! to the cluster metadata and publishes it to the node's view. Also the encoding helpers
//! for proposals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use protobuf::Message as _;
use raft_node::proto::Argv;
use resp::{Command, Reply, SlotsOp};
use rocksdb::WriteBatch;
use store::cluster_meta::ClusterMeta;
use store::Store;

use crate::groups::MetaView;

/// Encodes an argument vector as a proposal / forwarded request.
pub fn encode_argv(argv: &[Bytes]) -> Vec<u8> {
    let msg = Argv {
        args: argv.iter().map(|a| a.to_vec()).collect(),
        ..Default::default()
    };
    msg.write_to_bytes().unwrap_or_default()
}

/// Bytes [`encode_argv`] makes of `argv`, plus the field header it takes inside a
/// `RaftCommit` or a forwarded request (computed without encoding).
pub fn encoded_len(argv: &[Bytes]) -> usize {
    field_len(argv.iter().map(|a| field_len(a.len())).sum())
}

/// Bytes of one length-delimited protobuf field (tag, length, data) of `len` bytes.
pub fn field_len(len: usize) -> usize {
    1 + varint_len(len) + len
}

/// Length of `n` as a protobuf varint.
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Decodes an argument vector; `None` if malformed.
pub fn decode_argv(data: &[u8]) -> Option<Vec<Bytes>> {
    Argv::parse_from_bytes(data)
        .ok()
        .map(|a| a.args.into_iter().map(Bytes::from).collect())
}

/// The store as a Raft state machine.
pub struct KvStateMachine {
    pub store: Store,
    /// Set on the metadata group: it applies `RAFTKV.META` commands only.
    pub meta: Option<MetaSm>,
    /// The database's data size from which snapshots are captured by checkpoint (see
    /// `store::snapshot_checkpoint`); never for the metadata group (its state is small).
    checkpoint_min_bytes: u64,
}

/// The metadata group's state (see `store::cluster_meta`) and the view it publishes to.
pub struct MetaSm {
    pub state: ClusterMeta,
    pub view: Arc<MetaView>,
}

impl KvStateMachine {
    /// A data group's state machine.
    pub fn data(store: Store, checkpoint_min_bytes: u64) -> KvStateMachine {
        KvStateMachine {
            store,
            meta: None,
            checkpoint_min_bytes,
        }
    }

    /// The metadata group's state machine; publishes the recorded state at once.
    pub fn meta(store: Store, view: Arc<MetaView>) -> KvStateMachine {
        let state = store.load_cluster_meta();
        view.publish(&state);
        KvStateMachine {
            store,
            meta: Some(MetaSm { state, view }),
            checkpoint_min_bytes: u64::MAX,
        }
    }
}

/// The first argument of an encoded argument vector (protobuf field 1, length-delimited),
/// read without decoding the rest.
fn first_arg(data: &[u8]) -> Option<&[u8]> {
    let (&tag, mut rest) = data.split_first()?;
    if tag != 0x0a {
        return None;
    }
    let mut len = 0usize;
    for shift in (0..35).step_by(7) {
        let (&b, r) = rest.split_first()?;
        rest = r;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return rest.get(..len);
        }
    }
    None
}

impl KvStateMachine {
    /// The ranges and fences of the `RAFTKV.SLOTS.ADD`s among `commands` (none on the
    /// metadata group).
    fn slot_additions<'a>(
        &'a self,
        commands: &'a [Vec<u8>],
    ) -> impl Iterator<Item = (Vec<(u16, u16)>, u64, u64)> + 'a {
        commands
            .iter()
            .filter(move |_| self.meta.is_none())
            .filter(|c| <Self as raft_node::StateMachine>::may_wait(c))
            .filter_map(|c| decode_argv(c))
            .filter_map(|argv| match Command::parse_replicated(&argv) {
                Ok(Command::Slots {
                    op: SlotsOp::Add,
                    ranges,
                    fence,
                    peer,
                }) => Some((ranges, fence, peer)),
                _ => None,
            })
    }
}

/// The one command that may wait for another group: a group taking slots over.
const SLOTS_ADD: &[u8] = b"RAFTKV.SLOTS.ADD";

impl raft_node::StateMachine for KvStateMachine {
    type Output = Reply;

    fn may_wait(cmd: &[u8]) -> bool {
        first_arg(cmd).is_some_and(|a| a.eq_ignore_ascii_case(SLOTS_ADD))
    }

    /// A `RAFTKV.SLOTS.ADD` waits while another group of this node still claims one of its
    /// slots, or while this node's records of one are stale (see `store::claims`).
    fn must_wait(&self, commands: &[Vec<u8>]) -> bool {
        self.slot_additions(commands)
            .any(|(ranges, fence, from)| self.store.must_wait_for(&ranges, fence, from))
    }

    /// Stale records are only replaced by a snapshot of the target group.
    fn needs_snapshot(&self, commands: &[Vec<u8>]) -> bool {
        self.slot_additions(commands)
            .any(|(ranges, fence, from)| self.store.stale_in(&ranges, fence, from))
    }

    fn apply(
        &mut self,
        wb: &mut WriteBatch,
        index: u64,
        time_ms: i64,
        commands: &[Vec<u8>],
    ) -> Vec<Reply> {
        // The entry's commands share one write budget, the same on every replica.
        self.store.begin_entry_at(index);
        self.store.set_entry_index(index);
        if let Some(m) = self.meta.as_mut() {
            let mut changed = false;
            let out = commands
                .iter()
                .map(|c| match decode_argv(c) {
                    Some(argv) => {
                        let (reply, ch) = Store::apply_cluster_meta(&mut m.state, &argv);
                        changed |= ch;
                        reply
                    }
                    None => Reply::err("ERR malformed replicated command"),
                })
                .collect();
            // One record and one published view per entry, however many commands it has.
            if changed {
                self.store.stage_cluster_meta(wb, &m.state);
                m.view.publish(&m.state);
            }
            return out;
        }
        commands
            .iter()
            .map(
                |c| match decode_argv(c).map(|argv| Command::parse_replicated(&argv)) {
                    Some(Ok(cmd)) => self.store.apply(wb, &cmd, time_ms),
                    Some(Err(reply)) => reply,
                    None => Reply::err("ERR malformed replicated command"),
                },
            )
            .collect()
    }

    fn stage_applied(&mut self, wb: &mut WriteBatch, index: u64) {
        self.store.stage_applied(wb, index);
    }

    fn batch_written(&mut self) {
        self.store.batch_written();
    }

    fn applied_index(&self) -> u64 {
        self.store.applied_index()
    }

    fn last_time_ms(&self) -> i64 {
        self.store.last_time_ms()
    }

    fn snapshot_export(&mut self, dir: PathBuf) -> Result<raft_node::SnapshotJob, String> {
        let export = self.store.export_snapshot(dir)?;
        Ok(Box::new(move || export.finish().map(|_| ())))
    }

    fn snapshot_capture(&mut self, dir: PathBuf) -> Result<(raft_node::SnapshotJob, bool), String> {
        if !self.store.snapshot_by_checkpoint(self.checkpoint_min_bytes) {
            return Ok((self.snapshot_export(dir)?, false));
        }
        self.store.capture_snapshot(&dir)?;
        Ok((Box::new(|| Ok(())), true))
    }

    fn snapshot_materialize(&mut self, dir: PathBuf) -> Result<raft_node::SnapshotJob, String> {
        Ok(Box::new(move || {
            store::snapshot_checkpoint::materialize(&dir)
        }))
    }

    fn snapshot_restore(&mut self, dir: &Path) -> Result<(), String> {
        self.store.restore_snapshot(dir)?;
        if let Some(m) = self.meta.as_mut() {
            m.state = self.store.load_cluster_meta();
            m.view.publish(&m.state);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_slot_addition_may_wait() {
        use raft_node::StateMachine as _;
        let enc = |s: &str| {
            encode_argv(
                &s.split(' ')
                    .map(|a| Bytes::from(a.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(KvStateMachine::may_wait(&enc(
            "RAFTKV.SLOTS.ADD FENCE 3 0-10"
        )));
        assert!(!KvStateMachine::may_wait(&enc("RAFTKV.SLOTS.REMOVE 0-10")));
        assert!(!KvStateMachine::may_wait(&enc("SET RAFTKV.SLOTS.ADD x")));
        let long = "k".repeat(300);
        assert!(!KvStateMachine::may_wait(&enc(&format!("{long} x"))));
        assert!(!KvStateMachine::may_wait(&[]));
        assert!(!KvStateMachine::may_wait(&[0x0a, 0xff]));
    }

    #[test]
    fn argv_round_trip() {
        let argv = vec![
            Bytes::from_static(b"SET"),
            Bytes::from_static(b""),
            Bytes::from(vec![0u8, 255]),
        ];
        assert_eq!(decode_argv(&encode_argv(&argv)), Some(argv));
        assert_eq!(decode_argv(&[0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn encoded_len_matches_the_encoding() {
        for sizes in [
            vec![],
            vec![0],
            vec![3, 1, 127],
            vec![128, 16383, 16384],
            vec![300_000],
        ] {
            let argv: Vec<Bytes> = sizes.iter().map(|&n| Bytes::from(vec![7u8; n])).collect();
            let body = encode_argv(&argv).len();
            assert_eq!(encoded_len(&argv), 1 + varint_len(body) + body, "{sizes:?}");
        }
    }
}
