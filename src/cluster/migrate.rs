//! Online slot migration between data groups: the coordinator (the administration
//! commands are in `super::shardgroup`).
//!
//! The metadata records what to move (`store::migrations`); the node leading the metadata
//! group carries it out, one migration at a time, lowest id first:
//!
//! 1. the source group applies `RAFTKV.SLOTS.REMOVE FENCE <id> <ranges>`: from then on it
//!    refuses the slots with `-TRYAGAIN` (certainly not applied; clients retry);
//! 2. the target group applies `RAFTKV.SLOTS.ADD FENCE <id> FROM <source> <ranges>`: on a
//!    node hosting the source too, the slots' records, already in the node's database,
//!    become the target's (each node's apply waits until its source replica has applied
//!    step 1, see `store::claims`), with their TTLs, counters and fresh WATCH versions; on
//!    a node without a source replica the slots start empty (see `store::ingest`);
//! 3. when a node of the target hosts no replica of the source: the copy of the records
//!    into the target (`super::copy`);
//! 4. when a node of the source hosts no replica of the target: the source's
//!    `RAFTKV.SLOTS.DROP FENCE <id> TO <target>`, which deletes the slots' records there;
//! 5. the target applies `RAFTKV.SLOTS.SEAL FENCE <id>`: it takes no more copied records
//!    of the migration (a deposed coordinator still copying, or a run from a lagging view
//!    of a migration already cut over, would overwrite the writes the target takes after
//!    the cut-over with the source's frozen records);
//! 6. the metadata applies `MIGRATED <id>`: the cut-over (new epoch), requests for the
//!    slots route to the target from now on (`-MOVED` in `--redirect moved` mode).
//!
//! Each step is idempotent and fenced by the id, so a coordinator that dies (or loses the
//! metadata leadership) anywhere leaves a record the next metadata leader finishes: a
//! migration always rolls forward, and `RAFT.SHARDGROUP QUERY` lists it until it is done.
//! The window where the slots answer `-TRYAGAIN` is steps 1-6: four Raft commits, plus
//! the copy's and the collection's when they run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use resp::Reply;
use slog::{info, warn};
use store::cluster_meta::MetaCmd;
use store::migrations::{ranges_words, Migration};
use tokio::time::{sleep, timeout};

use crate::server::Server;
use crate::session::Outcome;
use crate::sm::encode_argv;

/// The refusal of a store for a slot it does not serve (`store::slots::tryagain`).
const NOT_SERVED: &[u8] = b"TRYAGAIN slot ";

/// Pause before a request refused by a moving slot is routed again.
const REROUTE_PAUSE: Duration = Duration::from_millis(5);

/// True when every one of the `n` replies is a moving slot's refusal (so none of the
/// requests was applied, and all may be sent again).
fn all_refused(out: &Outcome, n: usize) -> bool {
    match out {
        Outcome::Replies(rs) => {
            rs.len() == n
                && rs
                    .iter()
                    .all(|r| matches!(r, Reply::Error(e) if e.as_bytes().starts_with(NOT_SERVED)))
        }
        Outcome::Raw(raw) => {
            let (mut at, mut seen) = (0, 0);
            while at < raw.len() {
                if raw[at] != b'-' || !raw[at + 1..].starts_with(NOT_SERVED) {
                    return false;
                }
                match resp::relayed::value_end(raw, at) {
                    Some(end) => at = end,
                    None => return false,
                }
                seen += 1;
            }
            seen == n
        }
        Outcome::Overflow(_) => false,
    }
}

/// How often the coordinator looks for work.
const POLL: Duration = Duration::from_millis(50);

/// Pause after a failed step before the migration is tried again.
const BACKOFF: Duration = Duration::from_millis(300);

/// What this node's coordinator did (INFO cluster).
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub slots: AtomicU64,
    pub failures: AtomicU64,
    /// Wall time (ms) of the last finished migration.
    pub last_ms: AtomicU64,
    /// Microseconds the last migration took, start to cut-over.
    pub last_micros: AtomicU64,
    /// Records and bytes (keys and values) copied to nodes without a source replica.
    pub copied_records: AtomicU64,
    pub copied_bytes: AtomicU64,
    /// The migration and copy in progress.
    pub live: super::pace::Live,
    /// Slots the next run of merged migrations may move.
    pub budget: super::batch::Budget,
}

pub(super) fn slots_in(ranges: &[(u16, u16)]) -> u64 {
    ranges.iter().map(|(a, b)| u64::from(b - a) + 1).sum()
}

impl Server {
    /// A write group of group `gid`, routed again while a migration moves its slot (in the
    /// default forwarding mode): a group whose every request was refused by a cut-over
    /// waits and goes to the slot's group as the view then says, until
    /// `--request-timeout-ms`. (The copy of the requests this keeps costs one allocation
    /// per command.) A partly refused group is answered as it is (the rest
    /// applied; clients retry the `-TRYAGAIN` ones).
    pub async fn write_routed(&self, gid: u64, argvs: Vec<Vec<Bytes>>, resp3: bool) -> Outcome {
        if self.cfg.redirect_moved() {
            return self.write_in(gid, argvs, resp3).await;
        }
        let deadline = std::time::Instant::now() + self.cfg.request_timeout();
        let n = argvs.len();
        let mut gid = gid;
        loop {
            let out = self.write_in(gid, argvs.clone(), resp3).await;
            if !all_refused(&out, n) || std::time::Instant::now() >= deadline {
                return out;
            }
            sleep(REROUTE_PAUSE).await;
            gid = self.group_of_argvs(&argvs);
        }
    }

    /// A read group, routed again as [`Server::write_routed`] routes writes (a group this
    /// node does not host runs the reads there, see `crate::remote`).
    pub async fn read_routed(
        &self,
        gid: u64,
        reads: Vec<(Vec<Bytes>, resp::Command)>,
        resp3: bool,
    ) -> Outcome {
        if !self.groups.hosts(gid) {
            let argvs = reads.into_iter().map(|(a, _)| a).collect();
            return self.write_routed(gid, argvs, resp3).await;
        }
        if self.cfg.redirect_moved() {
            let cmds = reads.into_iter().map(|(_, c)| c).collect();
            return self.read_bounded(gid, cmds).await;
        }
        let deadline = std::time::Instant::now() + self.cfg.request_timeout();
        let n = reads.len();
        let mut gid = gid;
        loop {
            if !self.groups.hosts(gid) {
                let argvs = reads.into_iter().map(|(a, _)| a).collect();
                return self.write_routed(gid, argvs, resp3).await;
            }
            let cmds = reads.iter().map(|(_, c)| c.clone()).collect();
            let out = self.read_bounded(gid, cmds).await;
            if !all_refused(&out, n) || std::time::Instant::now() >= deadline {
                return out;
            }
            sleep(REROUTE_PAUSE).await;
            gid = reads
                .iter()
                .find_map(|(_, c)| c.keys().first().map(|k| self.groups.key_group(k)))
                .unwrap_or_else(|| self.groups.home_id());
        }
    }

    /// Carries out the recorded migrations while this node leads the metadata group (runs
    /// for the life of the node).
    pub async fn migrate_loop(self: std::sync::Arc<Self>) {
        let mut busy = false;
        loop {
            // Straight on to the next migration after one finished; else poll.
            if !busy {
                sleep(POLL).await;
            }
            busy = false;
            if !self.groups.meta().node.status.is_leader() {
                continue;
            }
            let state = self.groups.meta_state();
            let Some((id, m)) = state.next_migration() else {
                self.migration.live.idle();
                self.migration.budget.reset();
                self.finish_leaving(&state).await;
                continue;
            };
            let started = std::time::Instant::now();
            let m = self.widen(&state, id, m.clone()).await;
            let copied_before = self.migration.copied_bytes.load(Ordering::Relaxed);
            self.migration.live.started(id, started);
            let result = self.run_migration(id, &m).await;
            let slots = if result.is_ok() {
                slots_in(&m.ranges)
            } else {
                0
            };
            self.migration.live.finished(slots);
            match result {
                Ok(steps) => {
                    busy = true;
                    let p = &self.migration;
                    p.done.fetch_add(1, Ordering::Relaxed);
                    p.slots.fetch_add(slots_in(&m.ranges), Ordering::Relaxed);
                    p.last_ms
                        .store(crate::server::wall_ms() as u64, Ordering::Relaxed);
                    p.last_micros
                        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let copied = p
                        .copied_bytes
                        .load(Ordering::Relaxed)
                        .saturating_sub(copied_before);
                    p.budget.finished(slots, copied, started.elapsed());
                    info!(self.logger, "slots migrated"; "migration" => id, "from" => m.from, "to" => m.to,
                        "slots" => ranges_words(&m.ranges).join(","), "ms" => started.elapsed().as_millis() as u64,
                        "remove_ms" => steps[0], "add_ms" => steps[1], "cutover_ms" => steps[2],
                        "left" => self.groups.meta_state().migrations.len());
                }
                Err(e) => {
                    self.migration.failures.fetch_add(1, Ordering::Relaxed);
                    warn!(self.logger, "slot migration step failed; retrying"; "migration" => id, "err" => e);
                    sleep(BACKOFF).await;
                }
            }
        }
    }

    /// With no migration pending: a group that left and owns no slots is removed from the
    /// metadata; one still owning some (a migration into it was pending when it left)
    /// gets them moved away by a rebalance, which plans only for the staying groups.
    async fn finish_leaving(&self, state: &store::cluster_meta::ClusterMeta) {
        for &g in &state.leaving {
            let cmd = if state.left(g) {
                MetaCmd::Removed { group: g }
            } else {
                MetaCmd::Rebalance
            };
            match self.meta_call(cmd).await {
                Ok(Reply::Error(e)) | Err(e) => {
                    warn!(self.logger, "a leaving group's step failed; retrying"; "group" => g, "err" => e)
                }
                Ok(_) => {
                    info!(self.logger, "leaving group handled"; "group" => g, "removed" => state.left(g))
                }
            }
        }
    }

    /// Steps 1-6 of the module doc for migration `id`; the milliseconds each took.
    async fn run_migration(&self, id: u64, m: &Migration) -> Result<[u64; 3], String> {
        let mut t = std::time::Instant::now();
        let mut lap = || {
            let ms = t.elapsed().as_millis() as u64;
            t = std::time::Instant::now();
            ms
        };
        let (copy, collect) = super::copy::needs(&self.groups.meta_state(), m);
        self.slot_command(m.from, "RAFTKV.SLOTS.REMOVE", id, &m.ranges, None)
            .await?;
        let removed = lap();
        let from = Some(("FROM", m.from));
        self.slot_command(m.to, "RAFTKV.SLOTS.ADD", id, &m.ranges, from)
            .await?;
        if copy {
            self.copy_slots(id, m).await?;
        }
        if collect {
            let to = Some(("TO", m.to));
            self.slot_command(m.from, "RAFTKV.SLOTS.DROP", id, &m.ranges, to)
                .await?;
        }
        // Whether or not this run copied: a run from a lagging view, or a deposed
        // coordinator still copying, must not overwrite the target's writes after the cut-over.
        self.slot_command(m.to, "RAFTKV.SLOTS.SEAL", id, &m.ranges, None)
            .await?;
        let added = lap();
        let ranges = m.ranges.clone();
        match self.meta_call(MetaCmd::Migrated { id, ranges }).await? {
            Reply::Error(e) => Err(e),
            _ => Ok([removed, added, lap()]),
        }
    }

    /// Proposes one fenced slot command to group `gid` (here, or through its leader);
    /// `peer` names the migration's other group (`FROM <g>` / `TO <g>`).
    async fn slot_command(
        &self,
        gid: u64,
        name: &str,
        fence: u64,
        ranges: &[(u16, u16)],
        peer: Option<(&str, u64)>,
    ) -> Result<i64, String> {
        let mut argv = vec![
            Bytes::copy_from_slice(name.as_bytes()),
            Bytes::from_static(b"FENCE"),
            Bytes::from(fence.to_string()),
        ];
        if let Some((word, g)) = peer {
            argv.push(Bytes::copy_from_slice(word.as_bytes()));
            argv.push(Bytes::from(g.to_string()));
        }
        argv.extend(ranges_words(ranges).into_iter().map(Bytes::from));
        match self.group_call(gid, argv, name).await? {
            Reply::Int(n) => Ok(n),
            Reply::Error(e) => Err(format!("{name} in group {gid}: {e}")),
            other => Err(format!("{name} in group {gid}: unexpected reply {other:?}")),
        }
    }

    /// Proposes one command in data group `gid`: through its leader when hosted here, else
    /// through its members (see `crate::remote`); its reply.
    pub(super) async fn group_call(
        &self,
        gid: u64,
        argv: Vec<Bytes>,
        name: &str,
    ) -> Result<Reply, String> {
        self.group_call_encoded(gid, encode_argv(&argv), name).await
    }

    /// [`Server::group_call`] of a command already encoded (see `crate::sm::encode_argv`).
    pub(super) async fn group_call_encoded(
        &self,
        gid: u64,
        data: Vec<u8>,
        name: &str,
    ) -> Result<Reply, String> {
        match self.groups.get(gid) {
            Some(g) => {
                let what = format!("{name} in group {gid}");
                self.call_leader(&g, vec![data], &what).await
            }
            None => Ok(
                match self.remote_call_encoded(gid, vec![data], false).await {
                    Outcome::Replies(mut rs) => rs.pop().unwrap_or(Reply::Nil),
                    Outcome::Raw(raw) => crate::remote::decode_reply(&raw),
                    Outcome::Overflow(_) => Reply::err("ERR reply too large"),
                },
            ),
        }
    }

    /// Proposes one metadata command (here, or through the metadata leader); its reply.
    pub(super) async fn meta_call(&self, cmd: MetaCmd) -> Result<Reply, String> {
        let data = vec![encode_argv(&cmd.to_argv())];
        self.call_leader(self.groups.meta(), data, "metadata change")
            .await
    }

    /// Proposes one command in group `g`, here when this node leads it, else through its
    /// leader; the command's reply (`what` names it in errors).
    async fn call_leader(
        &self,
        g: &crate::groups::GroupRt,
        data: Vec<Vec<u8>>,
        what: &str,
    ) -> Result<Reply, String> {
        let leader = g.node.status.leader();
        let wait = self.cfg.request_timeout();
        if leader == 0 {
            Err(format!("{what}: group {} has no leader", g.id))
        } else if leader == self.cfg.id {
            match timeout(wait, g.node.propose(data)).await {
                Ok(Ok(Ok(mut rs))) if rs.len() == 1 => Ok(rs.remove(0)),
                Ok(Ok(Err(e))) => Err(e.to_string()),
                _ => Err(format!("{what}: no reply in time")),
            }
        } else {
            match timeout(wait, self.transport.forward(leader, g.id, false, data)).await {
                Ok(Ok(raw)) => Ok(resp::relayed::simple_reply(&raw)),
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(_) => Err(format!("{what}: no reply in time")),
            }
        }
    }

    /// INFO cluster's migration fields.
    pub fn migration_info(&self) -> String {
        let state = self.groups.meta_state();
        let pending: u64 = state.migrations.values().map(|m| slots_in(&m.ranges)).sum();
        let p = &self.migration;
        let live = p.live.info(pending);
        format!(
            "raftkv_migrations_pending:{}\r\nraftkv_migrating_slots:{pending}\r\nraftkv_migrations_done:{}\r\nraftkv_migrated_slots:{}\r\nraftkv_migration_failures:{}\r\nraftkv_last_migration_ms:{}\r\nraftkv_last_migration_usec:{}\r\nraftkv_migration_copied_records:{}\r\nraftkv_migration_copied_bytes:{}\r\n{live}",
            state.migrations.len(),
            p.done.load(Ordering::Relaxed),
            p.slots.load(Ordering::Relaxed),
            p.failures.load(Ordering::Relaxed),
            p.last_ms.load(Ordering::Relaxed),
            p.last_micros.load(Ordering::Relaxed),
            p.copied_records.load(Ordering::Relaxed),
            p.copied_bytes.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wholly_refused_group_is_routed_again() {
        let no = Reply::err("TRYAGAIN slot 5 is not served by this group");
        assert!(all_refused(
            &Outcome::Replies(vec![no.clone(), no.clone()]),
            2
        ));
        assert!(!all_refused(
            &Outcome::Replies(vec![no.clone(), Reply::ok()]),
            2
        ));
        assert!(!all_refused(
            &Outcome::Replies(vec![Reply::err("TRYAGAIN no leader")]),
            1
        ));
        let raw = b"-TRYAGAIN slot 5 is not served by this group\r\n".repeat(2);
        assert!(all_refused(&Outcome::Raw(raw.clone()), 2));
        assert!(!all_refused(&Outcome::Raw(raw), 3));
        let mixed = b"-TRYAGAIN slot 5 is not served by this group\r\n+OK\r\n".to_vec();
        assert!(!all_refused(&Outcome::Raw(mixed), 2));
    }
}
