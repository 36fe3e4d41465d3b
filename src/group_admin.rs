//! `RAFT.NODE ADD|REMOVE|REPLACE ... GROUP <group>`: a membership change of one data group
//! created by `RAFT.SHARDGROUP JOIN`, so the group can move to other nodes.
//!
//! The entry node checks the request against its metadata view (a created group, nodes
//! the cluster knows, an added node not a member already) and runs the change on the
//! group's leader: here or forwarded when it hosts the group, else through the group's
//! members like any request for a group not hosted here (`crate::remote`). The leader
//! answers as for the whole-cluster form (the removal of a non-member, a replacement by a
//! non-member are its refusals). The group's leader then reports its new members to the
//! metadata (`MEMBERS`), and every node follows: an added node opens the group as an empty
//! learner the leader catches up, a removed one closes it and deletes its data (see
//! `crate::hosting`). The reply waits, up to the request timeout, for that report.

use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::{RaftCmd, Reply};
use tokio::time::sleep;

use crate::server::Server;
use crate::session::Outcome;

impl Server {
    /// Runs `cmd`, a membership change with `GROUP <group>`, in that group only.
    pub async fn on_one_group(
        &self,
        argv: Vec<Bytes>,
        cmd: RaftCmd,
        group: u64,
        resp3: bool,
    ) -> Outcome {
        if let Err(e) = self.check_one_group(&cmd, group) {
            return Outcome::Replies(vec![Reply::err(e)]);
        }
        let out = if self.groups.hosts(group) {
            self.on_leader(group, argv, cmd.clone(), resp3).await
        } else {
            self.remote_call(group, vec![argv], resp3).await
        };
        if !crate::raft_admin::failed(&out) {
            self.await_members_report(&cmd, group).await;
        }
        out
    }

    /// Why the change would be refused by this node's metadata view, if it would.
    fn check_one_group(&self, cmd: &RaftCmd, group: u64) -> Result<(), String> {
        if group == self.groups.meta().id {
            return Err("ERR the metadata group is not a valid target for GROUP".into());
        }
        let state = self.groups.meta_state();
        let ids = match cmd {
            RaftCmd::NodeAdd { id, .. } | RaftCmd::NodeRemove { id, .. } => vec![*id],
            RaftCmd::NodeReplace { old, new, .. } => vec![*old, *new],
            _ => return Err("ERR not a membership command".into()),
        };
        for id in ids {
            state.check_group_member_change(group, id)?;
        }
        if let RaftCmd::NodeAdd { id, addr, .. } = cmd {
            let m = state.members_of(group);
            if m.voters.contains(id) || m.learners.contains(id) {
                return Err(format!(
                    "ERR node {id} is already a member of group {group}"
                ));
            }
            let known = state.nodes.get(id).map(|n| n.raft_addr.as_str());
            if known.is_some_and(|a| !a.is_empty() && a != addr) {
                return Err(format!(
                    "ERR node {id} has raft address {} in the cluster metadata",
                    known.unwrap_or("?")
                ));
            }
        }
        Ok(())
    }

    /// Waits (up to the request timeout) until the metadata shows the change's outcome
    /// for `group`, so CLUSTER SHARDS and the hosting nodes see it once the reply is out.
    async fn await_members_report(&self, cmd: &RaftCmd, group: u64) {
        let deadline = Instant::now() + self.cfg.request_timeout();
        while Instant::now() < deadline {
            let m = self.groups.meta_state().members_of(group);
            let has = |id: &u64| m.voters.contains(id) || m.learners.contains(id);
            let done = match cmd {
                RaftCmd::NodeAdd { id, .. } => has(id),
                RaftCmd::NodeRemove { id, .. } => !has(id),
                RaftCmd::NodeReplace { old, new, .. } => !has(old) && m.voters.contains(new),
                _ => true,
            };
            if done {
                return;
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
}
