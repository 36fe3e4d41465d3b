//! Which data groups this node hosts, and opening them: at start the bootstrap groups
//! (`1..=--groups`) and every group created by `RAFT.SHARDGROUP JOIN` that the node's
//! recorded metadata names it in; at runtime, a group whose `GROUP` metadata entry names
//! this node once the node has applied it ([`Server::host_loop`], woken by every publish of
//! the metadata view).
//!
//! A created group's storage is bootstrapped with exactly the voters the entry records,
//! on every named node alike (raft-node's storage: an empty snapshot at index 1 holding
//! that configuration), so the members elect a leader among themselves and no snapshot is
//! needed. Opening is idempotent (a restart re-opens from the database; the driver answers
//! the handle of a group it already runs).
//!
//! A created group's member list follows its leader's reports (`MEMBERS`, so it follows
//! `RAFT.NODE ... GROUP <g>`): a node the list names opens the group, founded on the
//! founding voters while the group still has exactly them, else empty (a learner the
//! leader catches up by snapshot or log, see `ClusterMeta::hosted_on`); a node that
//! applied its own removal from a created group closes it as below, and opens it again
//! only once the metadata has shown it out of the group (a stale report would reopen it).
//!
//! A created group the metadata no longer has (it left, `RAFT.SHARDGROUP LEAVE`, and owns
//! no slots) is closed on every node hosting it: its peer stops, its raft records, its
//! own store records and its snapshot files are deleted ([`Server::close_group`]).
//!
//! A bootstrap group (`1..=--groups`) is founded only at a node's start, on the founding
//! voters, and closed like a created group when the node applies its own removal from it
//! (`RAFT.NODE REMOVE ... GROUP <g>`) or when it left the cluster (`gone`). Before closing
//! one, the node records that it left it ([`Host::mark_left`], synced), so no later start
//! founds it again over the empty storage (a founder's configuration on a replica the group
//! no longer counts); it hosts the group again only when the metadata, read after a barrier
//! on the metadata group (never a stale view), reports it a member: opened empty, caught up
//! by the leader.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft_node::NodeConfig;
use rocksdb::DB;
use slog::{info, warn};
use store::claims::Claims;
use store::cluster_meta::ClusterMeta;
use store::Store;

use crate::config::Config;
use crate::groups::{self, GroupRt};
use crate::server::Server;
use crate::sm::KvStateMachine;

/// How often the node looks at the metadata even without a publish.
const RECHECK: Duration = Duration::from_millis(500);

/// A group to open at start: its id, the voters to found a new storage on, member
/// addresses beyond `--cluster`, and whether a new store takes its share of the layout.
pub type Opening = (u64, Vec<u64>, HashMap<u64, String>, bool);

/// What opening a data group on this node takes.
pub struct Host {
    db: Arc<DB>,
    /// The node's one registry of slot claims (see `store::claims`).
    claims: Arc<Claims>,
    cfg: Config,
    raft_addr: String,
    snap_root: PathBuf,
}

impl Host {
    pub fn new(db: Arc<DB>, cfg: &Config, raft_addr: String) -> Host {
        Host {
            db,
            claims: Claims::new(),
            cfg: cfg.clone(),
            snap_root: cfg.data_dir().join("snap"),
            raft_addr,
        }
    }

    /// Deletes what is left of removed group `g` once its peer stopped: its own store
    /// records, its place in the claims registry, its snapshot files.
    pub fn forget(&self, g: u64) -> Result<(), String> {
        self.claims.forget(g);
        store::ingest::destroy_group(&self.db, g)?;
        let dir = raft_node::group_snap_dir(&self.snap_root, g);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("removing {}: {e}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Records (synced) that this node left bootstrap group `g` (see the module doc).
    pub fn mark_left(&self, g: u64) -> Result<(), String> {
        let cf = self
            .db
            .cf_handle(raft_node::CF_RAFT)
            .ok_or("missing raft column family")?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db
            .put_cf_opt(cf, left_key(g), [], &opts)
            .map_err(|e| e.to_string())
    }

    /// True when this node left bootstrap group `g` once.
    fn has_left(&self, g: u64) -> Result<bool, String> {
        let cf = self
            .db
            .cf_handle(raft_node::CF_RAFT)
            .ok_or("missing raft column family")?;
        let got = self.db.get_cf(cf, left_key(g));
        Ok(got.map_err(|e| e.to_string())?.is_some())
    }

    /// Group `g`'s store, its slots claimed in the node's registry: a new store takes its
    /// share of the layout when `layout` (a bootstrap group at start), else none (a
    /// snapshot or its log gives it its slots).
    pub fn open_store(&self, g: u64, layout: bool) -> Result<Store, String> {
        let slots = if layout {
            groups::initial_slots(self.cfg.groups, g)?
        } else {
            store::SlotSet::empty()
        };
        let mut s = Store::open(self.db.clone(), g, slots).map_err(|e| e.to_string())?;
        s.set_claims(self.claims.clone())
            .map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// Group `group_id`'s raft configuration: founded on `voters` when its storage is new;
    /// `addrs` adds member addresses to those of `--cluster`.
    pub fn node_config(
        &self,
        group_id: u64,
        voters: Vec<u64>,
        addrs: HashMap<u64, String>,
    ) -> NodeConfig {
        let cfg = &self.cfg;
        let mut peers = addrs;
        peers.extend(cfg.peers());
        NodeConfig {
            id: cfg.id,
            group_id,
            voters,
            tick: cfg.tick(),
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            lease_reads: cfg.read_mode == "lease",
            addr: self.raft_addr.clone(),
            peers,
            snap_dir: raft_node::group_snap_dir(&self.snap_root, group_id),
            snapshot_entries: cfg.snapshot_entries,
            snapshot_bytes: cfg.snapshot_bytes,
            ..Default::default()
        }
    }

    /// The data groups to open at start: the bootstrap groups, then the created groups
    /// `meta` (as recorded on this node) names it in; each with its founding voters and
    /// the member addresses the metadata knows.
    /// Bootstrap groups the node left (or that left the cluster) are not opened here: the
    /// host loop opens them again if the metadata says so. The list is never empty (the
    /// node's driver and routing need a home group): a node left with none opens the
    /// lowest bootstrap group empty, outside any configuration.
    pub fn at_start(&self, meta: &ClusterMeta) -> Result<Vec<Opening>, String> {
        let mut out = Vec::new();
        for g in 1..=self.cfg.groups {
            if !meta.gone.contains(&g) && !self.has_left(g)? {
                out.push((g, self.cfg.founding_voters(), HashMap::new(), true));
            }
        }
        for (g, voters) in meta.hosted_on(self.cfg.id) {
            if g > self.cfg.groups {
                let addrs = addrs_of(meta, &member_ids(meta, g));
                out.push((g, voters, addrs, false));
            }
        }
        if out.is_empty() {
            let g = (1..=self.cfg.groups)
                .find(|g| !meta.gone.contains(g))
                .unwrap_or(1);
            out.push((g, Vec::new(), HashMap::new(), false));
        }
        Ok(out)
    }
}

/// The raft-family key recording that this node left bootstrap group `g`.
fn left_key(g: u64) -> Vec<u8> {
    format!("raftkv/left-group/{g}").into_bytes()
}

/// Every member of `group` (voters and learners) as `meta` records them.
fn member_ids(meta: &ClusterMeta, group: u64) -> Vec<u64> {
    let m = meta.members_of(group);
    m.voters.into_iter().chain(m.learners).collect()
}

/// The raft addresses `meta` records for `ids`.
fn addrs_of(meta: &ClusterMeta, ids: &[u64]) -> HashMap<u64, String> {
    ids.iter()
        .filter_map(|id| Some((*id, meta.nodes.get(id)?.raft_addr.clone())))
        .collect()
}

impl Server {
    /// Opens every created group the applied metadata names this node in and that it does
    /// not host yet (runs for the life of the node).
    pub async fn host_loop(self: Arc<Self>) {
        // Groups this node was removed from, not yet shown out of them by the metadata.
        let mut left_here = HashSet::new();
        loop {
            let _ = tokio::time::timeout(RECHECK, self.groups.view().changed.notified()).await;
            let state = self.groups.meta_state();
            let hosted = state.hosted_on(self.cfg.id);
            left_here.retain(|g| hosted.iter().any(|(h, _)| h == g));
            for g in self.groups.all().iter() {
                if state.groups == 0 {
                    continue;
                }
                let removed = g.node.status.removed.load(Ordering::Acquire);
                if !removed && state.is_data_group(g.id) {
                    continue;
                }
                if g.id <= self.cfg.groups {
                    if let Err(e) = self.host.mark_left(g.id) {
                        warn!(self.logger, "cannot record leaving a bootstrap group; retrying"; "group" => g.id, "err" => e);
                        continue;
                    }
                }
                match self.close_group(g.id).await {
                    Ok(()) => {
                        info!(self.logger, "data group removed from this node: its data is deleted"; "group" => g.id);
                        if removed {
                            left_here.insert(g.id);
                        }
                    }
                    Err(e) => {
                        warn!(self.logger, "cannot close a removed data group; retrying"; "group" => g.id, "err" => e)
                    }
                }
            }
            let mut barrier = None;
            for (g, voters) in hosted {
                if !state.is_data_group(g) || left_here.contains(&g) {
                    continue;
                }
                if self.groups.hosts(g) {
                    continue;
                }
                if g <= self.cfg.groups && !self.current_member(g, &mut barrier).await {
                    continue;
                }
                match self.open_group(g, voters, &state).await {
                    Ok(()) => info!(self.logger, "hosting a new data group"; "group" => g),
                    Err(e) => {
                        warn!(self.logger, "cannot open a new data group; retrying"; "group" => g, "err" => e)
                    }
                }
            }
        }
    }

    /// True when the metadata, read after one barrier on the metadata group (taken once
    /// per round, in `barrier`), reports this node a member of group `g`.
    async fn current_member(&self, g: u64, barrier: &mut Option<bool>) -> bool {
        if barrier.is_none() {
            let ok = self.read_barrier_in(self.groups.meta()).await.is_ok();
            *barrier = Some(ok);
        }
        *barrier == Some(true) && self.groups.meta_state().reported_member(g, self.cfg.id)
    }

    /// Closes removed group `g` on this node (see the module doc).
    async fn close_group(&self, g: u64) -> Result<(), String> {
        self.groups.remove(g);
        let rx = self.groups.home().node.remove_group(g);
        rx.await.map_err(|_| "the node stopped".to_string())??;
        self.host.forget(g)
    }

    /// Opens created group `g` (founded on `voters`) on this node.
    async fn open_group(&self, g: u64, voters: Vec<u64>, meta: &ClusterMeta) -> Result<(), String> {
        let store = self.host.open_store(g, false)?;
        let reader = store.reader();
        crate::blocking::listen_pushes(&reader);
        let addrs = addrs_of(meta, &member_ids(meta, g));
        let ncfg = self.host.node_config(g, voters, addrs);
        let rx = self
            .groups
            .home()
            .node
            .add_group(ncfg, KvStateMachine::data(store));
        let node = rx.await.map_err(|_| "the node stopped".to_string())??;
        self.groups.add(GroupRt {
            id: g,
            node,
            reader,
        });
        Ok(())
    }
}
