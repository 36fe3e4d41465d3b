//! Commands that span data groups: the keyspace-wide ones (KEYS, DBSIZE, SCAN, FLUSHALL,
//! FLUSHDB, and SCRIPT LOAD / FLUSH and FUNCTION LOAD / DELETE / FLUSH / RESTORE, whose
//! scripts every group keeps) and the multi-key ones Redis Cluster clients may send over several slots
//! (MGET, EXISTS, DEL, UNLINK, TOUCH). Each group runs its share as an ordinary read or
//! write of that group; the replies are combined. Not atomic across groups (as in Redis
//! Cluster, where such commands span nodes); within a group each share is one proposal.
//! FLUSHALL's share of a group applies only where the group serves the slots the entry
//! node's layout gives it, and KEYS' and DBSIZE's read exactly those slots (see
//! [`Server::until_settled`]).
//! SCAN's cursor is a slot number: it runs on the group owning that slot, which returns
//! the next slot to scan (possibly another group's) or 0 at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::{Command, Reply};
use store::migrations::ranges_words;
use store::slot::{key_slot, SLOTS};

use crate::server::Server;
use crate::session::Outcome;

/// True when `cmd` must be split over groups (or, for the keyspace-wide ones, run on each).
pub fn fans_out(cmd: &Command, groups: usize) -> bool {
    match cmd {
        Command::Keys(_) | Command::DbSize | Command::Scan { .. } => true,
        Command::FlushAll => groups > 1,
        // Scripts and function libraries are replicated state of every group (EVALSHA and
        // FCALL run in the group of their keys).
        Command::ScriptAdmin(resp::ScriptAdmin::Load(_) | resp::ScriptAdmin::Flush)
        | Command::Function(
            resp::FunctionCmd::Load { .. }
            | resp::FunctionCmd::Delete(_)
            | resp::FunctionCmd::Flush
            | resp::FunctionCmd::Restore { .. },
        ) => groups > 1,
        _ if groups > 1 && splits(cmd) => {
            let keys = cmd.keys();
            let first = keys.first().map(|k| key_slot(k));
            keys.iter().any(|k| Some(key_slot(k)) != first)
        }
        _ => false,
    }
}

/// Multi-key commands whose keys may be split: every argument after the name is a key,
/// and the reply combines per key (MGET) or sums (the others).
fn splits(cmd: &Command) -> bool {
    ["MGET", "EXISTS", "DEL", "UNLINK", "TOUCH"]
        .iter()
        .any(|n| cmd.name().eq_ignore_ascii_case(n))
}

/// The one reply of a group's write (a relayed reply is decoded: fanned-out writes answer
/// a status, an error or an integer, alike in RESP2 and RESP3).
fn reply_of(o: Outcome) -> Reply {
    match o {
        Outcome::Replies(mut rs) => rs.pop().unwrap_or(Reply::Nil),
        Outcome::Raw(raw) => resp::relayed::simple_reply(&raw),
        Outcome::Overflow(_) => Reply::err("ERR reply too large"),
    }
}

impl Server {
    /// Runs a command that spans groups (see [`fans_out`]).
    pub async fn fan_out(&self, argv: Vec<Bytes>, cmd: Command, resp3: bool) -> Outcome {
        let one = |r: Reply| Outcome::Replies(vec![r]);
        match &cmd {
            Command::Scan { cursor, .. } => {
                let slot = (*cursor).min(SLOTS as u64 - 1) as u16;
                let g = self.groups.slot_group(slot);
                one(self.read_one(g, argv, cmd).await)
            }
            Command::Keys(_) | Command::DbSize => {
                let reply = self.until_settled(|| self.read_shares(&argv, &cmd)).await;
                one(reply)
            }
            Command::FlushAll => {
                let reply = self.until_settled(|| self.flush_shares(resp3)).await;
                one(reply)
            }
            Command::ScriptAdmin(_) | Command::Function(_) => {
                // The same write in every group.
                let shares = self.group_ids().into_iter().map(|g| (g, argv.clone()));
                one(self.write_each(shares, resp3).await)
            }
            _ => one(self.split_keys(argv, &cmd, resp3).await),
        }
    }

    /// Runs a pass over the groups (`pass`: one share per group, from one layout) again
    /// while a share is refused because slots move (`-TRYAGAIN`, the shares are idempotent
    /// reads or flushes), with the layout of then, until the request timeout.
    /// FLUSHALL's shares apply only where the group serves exactly the slots one layout
    /// gives it (see `store::scope`'s `flush_owned`), KEYS' and DBSIZE's read exactly
    /// those (`store::reader_scan`'s `read_slots`): no slot in the middle of a migration
    /// escapes every share, or is counted twice.
    async fn until_settled<F, Fut>(&self, pass: F) -> Reply
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Reply>,
    {
        let deadline = Instant::now() + self.cfg.request_timeout();
        loop {
            let reply = pass().await;
            let moving = matches!(&reply, Reply::Error(e) if e.starts_with("TRYAGAIN"));
            if !moving || Instant::now() >= deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One pass of KEYS or DBSIZE: each group's share over the slots one layout gives
    /// it, combined (the keys joined, the counts summed), or the first error.
    async fn read_shares(&self, argv: &[Bytes], cmd: &Command) -> Reply {
        let mut keys = Vec::new();
        let mut total = 0;
        for (g, ranges) in self.layout() {
            let share = Command::read_slots_argv(&ranges_words(&ranges).join(","), argv);
            let read = Command::ReadSlots {
                expect: ranges,
                read: Box::new(cmd.clone()),
            };
            match self.read_one(g, share, read).await {
                Reply::Array(ks) if matches!(cmd, Command::Keys(_)) => keys.extend(ks),
                Reply::Int(n) if matches!(cmd, Command::DbSize) => total += n,
                other => return other,
            }
        }
        match cmd {
            Command::Keys(_) => Reply::Array(keys),
            _ => Reply::Int(total),
        }
    }

    /// One pass of FLUSHALL: each group's share (`RAFTKV.FLUSHALL` with the slots one
    /// layout gives it); the first group's reply, or the first error.
    async fn flush_shares(&self, resp3: bool) -> Reply {
        let shares = self.layout().into_iter().map(|(g, ranges)| {
            (
                g,
                Command::flush_slots_argv(&ranges_words(&ranges).join(",")),
            )
        });
        self.write_each(shares, resp3).await
    }

    /// Each `(group, argv)` write in turn, stopping at the first error: the first group's
    /// reply (OK when there is none), or that error.
    async fn write_each(
        &self,
        shares: impl Iterator<Item = (u64, Vec<Bytes>)>,
        resp3: bool,
    ) -> Reply {
        let mut first = None;
        for (g, argv) in shares {
            match reply_of(self.write_in(g, vec![argv], resp3).await) {
                e @ Reply::Error(_) => return e,
                r => {
                    first.get_or_insert(r);
                }
            }
        }
        first.unwrap_or_else(Reply::ok)
    }

    /// Every data group of the cluster with its slot ranges, from one layout.
    fn layout(&self) -> Vec<(u64, Vec<(u16, u16)>)> {
        let m = self.groups.meta_state();
        if m.groups == 0 {
            let ids = self.group_ids();
            return ids
                .into_iter()
                .map(|g| (g, self.groups.ranges(g)))
                .collect();
        }
        m.data_groups()
            .into_iter()
            .map(|g| (g, m.ranges_of(g)))
            .collect()
    }

    /// Every data group of the cluster (hosted here or not).
    fn group_ids(&self) -> Vec<u64> {
        let m = self.groups.meta_state();
        if m.groups == 0 {
            return self.groups.all().iter().map(|g| g.id).collect();
        }
        m.data_groups()
    }

    /// MGET / EXISTS / DEL / UNLINK / TOUCH over keys of several groups.
    async fn split_keys(&self, argv: Vec<Bytes>, cmd: &Command, resp3: bool) -> Reply {
        let mut by_group: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, k) in argv.iter().enumerate().skip(1) {
            by_group
                .entry(self.groups.key_group(k))
                .or_default()
                .push(i);
        }
        let mget = cmd.name().eq_ignore_ascii_case("MGET");
        let mut values = vec![Reply::Nil; argv.len()];
        let mut total = 0i64;
        for (g, positions) in by_group {
            let mut sub = vec![argv[0].clone()];
            sub.extend(positions.iter().map(|&i| argv[i].clone()));
            let reply = if cmd.kind() == resp::Kind::Write {
                Some(reply_of(self.write_in(g, vec![sub], resp3).await))
            } else {
                match Command::parse(&sub) {
                    Ok(c) => Some(self.read_one(g, sub, c).await),
                    Err(e) => Some(e),
                }
            };
            match (mget, reply) {
                (true, Some(Reply::Array(vs))) if vs.len() == positions.len() => {
                    for (&i, v) in positions.iter().zip(vs) {
                        values[i] = v;
                    }
                }
                (false, Some(Reply::Int(n))) => total += n,
                (_, Some(other)) => return other,
                (_, None) => return Reply::err("ERR no reply from a group"),
            }
        }
        if mget {
            Reply::Array(values.into_iter().skip(1).collect())
        } else {
            Reply::Int(total)
        }
    }
}
