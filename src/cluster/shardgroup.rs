//! The shard group administration commands: `RAFT.SHARDGROUP QUERY | MOVE | JOIN | LEAVE`
//! and `RAFT.REBALANCE`. Each is checked here against the metadata this node applied (for
//! a clear error at once), then recorded by one metadata entry, through the metadata
//! leader (the same check runs where it applies, see `store::shard_groups`); the moves are
//! carried out by the coordinator (`super::migrate`).

use bytes::Bytes;
use resp::{RaftCmd, Reply};
use store::cluster_meta::{ids_text, ClusterMeta, MetaCmd};
use store::migrations::ranges_words;

use super::migrate::slots_in;
use crate::server::Server;

impl Server {
    /// Serves RAFT.SHARDGROUP and RAFT.REBALANCE.
    pub async fn shardgroup(&self, cmd: RaftCmd) -> Reply {
        let state = self.groups.meta_state();
        match cmd {
            RaftCmd::ShardQuery => Reply::Bulk(Bytes::from(self.shard_query())),
            RaftCmd::ShardMove { group, ranges } => {
                if !state.is_data_group(group) {
                    return Reply::err(format!("ERR unknown data group {group}"));
                }
                if state.leaving.contains(&group) {
                    return Reply::err(format!("ERR group {group} is leaving"));
                }
                self.migrate_call(MetaCmd::Migrate { to: group, ranges })
                    .await
            }
            // Planned where it applies: from the metadata as of that entry, never from a
            // view that may lag behind it.
            RaftCmd::Rebalance => self.migrate_call(MetaCmd::Rebalance).await,
            RaftCmd::ShardJoin { group, nodes } => self.create_group(&state, group, nodes).await,
            RaftCmd::ShardLeave { group } => {
                if let Err(e) = state.check_leave(group) {
                    return Reply::err(e);
                }
                self.migrate_call(MetaCmd::Leave { group }).await
            }
            _ => Reply::err("ERR not a shard group command"),
        }
    }

    /// `RAFT.SHARDGROUP JOIN <group> <nodes>`: records the new group (see
    /// `store::shard_groups`); its nodes open it once they apply the entry. With
    /// `--auto-rebalance yes` a rebalance is recorded next.
    async fn create_group(&self, state: &ClusterMeta, group: u64, nodes: Vec<u64>) -> Reply {
        if let Err(e) = state.check_new_group(group, &nodes) {
            return Reply::err(e);
        }
        match self.meta_call(MetaCmd::Group { group, voters: nodes }).await {
            Ok(Reply::Status(s)) if self.cfg.auto_rebalance == "yes" => {
                // Planned where it applies, with the new group counted (`--auto-rebalance`).
                match self.migrate_call(MetaCmd::Rebalance).await {
                    Reply::Error(e) => Reply::err(format!(
                        "ERR group {group} was created but the rebalance was not recorded ({e}); run RAFT.REBALANCE"
                    )),
                    _ => Reply::Status(s),
                }
            }
            Ok(r) => r,
            Err(e) => Reply::err(format!(
                "ERR group {group} may not have been recorded ({e}); RAFT.SHARDGROUP QUERY shows whether it was"
            )),
        }
    }

    /// Records migrations; the number recorded.
    async fn migrate_call(&self, cmd: MetaCmd) -> Reply {
        match self.meta_call(cmd).await {
            Ok(r) => r,
            Err(e) => Reply::err(format!(
                "TRYAGAIN the migration could not be recorded ({e}); it was not, or it was and a repeat changes nothing"
            )),
        }
    }

    /// The leader of data group `gid` as this node knows it (0: none known).
    fn leader_of(&self, gid: u64) -> u64 {
        match self.groups.get(gid) {
            Some(g) => g.node.status.leader(),
            None => self.groups.hint(gid),
        }
    }

    /// RAFT.SHARDGROUP QUERY's text: one line per fact, every data group (hosted here or
    /// not; the leader of one hosted elsewhere is the one last seen, 0 when none).
    fn shard_query(&self) -> String {
        let state = self.groups.meta_state();
        let mut out = format!("epoch {}\n", state.epoch);
        let ids = if state.groups == 0 {
            self.groups.all().iter().map(|g| g.id).collect()
        } else {
            state.data_groups()
        };
        for gid in ids {
            let ranges = state.ranges_of(gid);
            let words = ranges_words(&ranges).join(",");
            let members = state.members_of(gid);
            out.push_str(&format!(
                "group {gid} leader {} voters {} learners {} slots {} ranges {}\n",
                self.leader_of(gid),
                ids_text(&members.voters),
                ids_text(&members.learners),
                slots_in(&ranges),
                if words.is_empty() { "-".into() } else { words },
            ));
        }
        for (id, m) in &state.migrations {
            out.push_str(&format!(
                "migration {id} from {} to {} slots {}\n",
                m.from,
                m.to,
                ranges_words(&m.ranges).join(",")
            ));
        }
        out
    }
}
