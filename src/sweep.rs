//! The leader's background work per group, proposed through Raft like any write: the time
//! tick (cluster time stays in the log), the sweep of expired keys, and the cleaner of
//! stale collection records.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::{Command, Reply};
use tokio::time::{sleep, timeout};

use crate::groups::GroupRt;
use crate::server::Server;
use crate::sm::encode_argv;

/// Longest time the leader leaves cluster time unstamped while its group holds keys with
/// a TTL (see [`Server::sweep_loop`]).
const TIME_TICK: Duration = Duration::from_secs(1);
/// ... and while it holds none (nothing reads cluster time then; a slow tick still bounds
/// how far a restarted node's time lags, and keeps idle groups nearly free).
const IDLE_TIME_TICK: Duration = Duration::from_secs(60);

/// The sweep's state of one group.
#[derive(Default)]
struct SweepState {
    next_sweep: Option<Instant>,
    /// The first key of the last proposed sweep.
    stuck: Option<Bytes>,
    /// A time tick or sweep of the group is in flight.
    busy: Arc<std::sync::atomic::AtomicBool>,
}

/// Pause between two cleaner steps.
const CLEAN_STEP: Duration = Duration::from_millis(200);
/// Pause after a cleaner pass that found nothing to delete.
const CLEAN_IDLE: Duration = Duration::from_secs(5);

impl Server {
    /// The leader's periodic sweep of expired keys, proposed through Raft; and its time
    /// tick: when nothing was stamped for [`TIME_TICK`], it proposes an entry with no
    /// commands, so cluster time stays in the log (a follower or a restarted node judges
    /// expiry from a stamp at most that old, never from its own clock).
    pub async fn sweep_loop(self: Arc<Self>) {
        self.watch_pushes();
        // One task for every group (a node may host a thousand): each round looks at the
        // groups this node leads, with a flag per group so one slow proposal never piles up.
        // A group opened at runtime gets its state and its cleaner when first seen.
        let sweep_every = Duration::from_millis(self.cfg.expire_sweep_ms.max(10));
        let mut states: std::collections::HashMap<u64, SweepState> = Default::default();
        loop {
            for g in self.groups.all().iter() {
                let st = states.entry(g.id).or_insert_with(|| {
                    tokio::spawn(self.clone().clean_loop(g.id));
                    SweepState::default()
                });
                if g.node.status.is_leader() {
                    self.sweep_step(g, st, sweep_every);
                }
            }
            sleep(sweep_every.min(TIME_TICK / 4)).await;
        }
    }

    /// One group's time tick and sweep, when due and nothing of it is in flight.
    fn sweep_step(&self, g: &GroupRt, st: &mut SweepState, sweep_every: Duration) {
        if st.busy.load(Ordering::Acquire) {
            return;
        }
        let ttl_keys = g.reader.expires_count() > 0;
        let now = Self::read_time_in(g);
        let last = g.node.status.last_time_ms.load(Ordering::Acquire);
        // Only keys with a TTL depend on cluster time; a group without any keeps it in the
        // log at a slower pace (bounding how far a restarted node's time lags).
        let tick = if ttl_keys {
            TIME_TICK
        } else {
            // Spread over groups, so a thousand idle groups do not all wake at once.
            IDLE_TIME_TICK + Duration::from_millis(g.id.wrapping_mul(7919) % 30_000)
        };
        let mut cmds = Vec::new();
        if now - last >= tick.as_millis() as i64 {
            cmds.push(None);
        }
        if ttl_keys && st.next_sweep.is_none_or(|t| Instant::now() >= t) {
            st.next_sweep = Some(Instant::now() + sweep_every);
            let due = g.reader.due_keys(now, 1000);
            if !due.is_empty() {
                // The keys go by name: a replica applying this entry in one batch with the
                // writes that set those expiries (a follower catching up) deletes the same
                // keys as the leader. `RAFTKV.SWEEP` (which walks each replica's own index)
                // only when the same head key stays due, i.e. a stale index entry to clean.
                let cmd = if st.stuck.as_ref() == due.first() {
                    Command::sweep_argv(1000)
                } else {
                    Command::del_if_expired_argv(&due)
                };
                st.stuck = due.first().cloned();
                cmds.push(Some(cmd));
            }
        }
        if cmds.is_empty() {
            return;
        }
        st.busy.store(true, Ordering::Release);
        let busy = st.busy.clone();
        let node = g.node.clone();
        let wait = self.cfg.request_timeout();
        tokio::spawn(async move {
            for cmd in cmds {
                let data = cmd.map(|c| vec![encode_argv(&c)]).unwrap_or_default();
                let _ = timeout(wait, node.propose(data)).await;
            }
            busy.store(false, Ordering::Release);
        });
    }

    /// The leader's background cleaner of stale collection records (deleted, overwritten
    /// or expired collections leave their elements behind): proposes `RAFTKV.CLEAN` through
    /// Raft, a bounded step at a time, carrying the cursor from one step to the next; an
    /// idle pass (nothing deleted) waits [`CLEAN_IDLE`] before the next.
    async fn clean_loop(self: Arc<Self>, gid: u64) {
        let mut cursor = String::new();
        let mut deleted_in_pass = 0i64;
        loop {
            sleep(CLEAN_STEP).await;
            // A group removed from this node (RAFT.SHARDGROUP LEAVE) is cleaned no more.
            let Some(g) = self.groups.get(gid) else {
                return;
            };
            if !g.node.status.is_leader() {
                cursor.clear();
                // Followers only wait for leadership: look rarely (a node may host many).
                sleep(CLEAN_IDLE).await;
                continue;
            }
            if cursor.is_empty() && !g.reader.has_collection_records() {
                // Nothing to clean: look again later (cheap for many idle groups).
                sleep(CLEAN_IDLE).await;
                continue;
            }
            let rx = g
                .node
                .propose(vec![encode_argv(&Command::clean_argv(&cursor, 256))]);
            let reply = match timeout(self.cfg.request_timeout(), rx).await {
                Ok(Ok(Ok(mut replies))) => replies.pop(),
                _ => None,
            };
            let Some(Reply::Array(parts)) = reply else {
                cursor.clear();
                continue;
            };
            if let [Reply::Bulk(next), Reply::Int(n)] = parts.as_slice() {
                deleted_in_pass += n;
                cursor = String::from_utf8_lossy(next).into_owned();
            }
            if cursor.is_empty() {
                if deleted_in_pass == 0 {
                    sleep(CLEAN_IDLE).await;
                }
                deleted_in_pass = 0;
            }
        }
    }
}
