//! The routing decision for one request, in one function and in a fixed order (kvrocks'
//! `CanExecByMySelf`): CROSSSLOT (keys in several groups), then an unserved slot, then MOVED (strict Redis Cluster
//! mode) or forwarding (the default), then local execution. A slot migration adds TRYAGAIN
//! and ASK between MOVED and local execution.

use std::collections::BTreeMap;

use resp::Reply;
use store::slot::key_slot;

use super::view::{ClusterView, GroupInfo};

/// What a node does with a request for a slot it does not lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectMode {
    /// Forward it to the group's leader and relay the reply (works with every client).
    #[default]
    Forward,
    /// Answer `-MOVED <slot> <leader>` as Redis Cluster does (cluster-aware clients).
    Moved,
}

/// The request as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub keys: &'a [&'a [u8]],
    /// Changes data (must run on the group's leader).
    pub write: bool,
    /// The connection sent READONLY: reads may run on a replica (still linearizable).
    pub readonly: bool,
    /// The cluster has several data groups: keys must share one slot, as in Redis Cluster
    /// (with one group, multi-key commands over any keys run as in standalone Redis).
    pub sharded: bool,
}

/// Where a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No key: this node answers it.
    Anywhere,
    /// This node runs it for group `0`: it leads the group, or it is a member and the
    /// request is a read (served after a ReadIndex barrier).
    Local(u64),
    /// Forward to node `leader`, which leads `group`.
    Forward { group: u64, leader: u64 },
    /// The group has no known leader: wait for one (bounded), then route again.
    NoLeader(u64),
    /// Answer with this error (`-CROSSSLOT`, `-MOVED`, `-CLUSTERDOWN`).
    Error(String),
}

/// `-CROSSSLOT`, as Redis Cluster words it.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in the request don't hash to the same slot";

/// The slot a request is routed by (its first key's) and the group owning all its keys, or
/// the error: `-CROSSSLOT` when its keys live in different groups (with one group, as with
/// `--groups 1`, multi-key commands over any keys run as in standalone Redis), `-CLUSTERDOWN`
/// when a key's slot has no group.
fn request_group<'v>(
    view: &'v ClusterView,
    keys: &[&[u8]],
) -> Result<(u16, &'v GroupInfo), String> {
    let unserved = || "CLUSTERDOWN Hash slot not served".to_string();
    let mut found: Option<(u16, &GroupInfo)> = None;
    for k in keys {
        let s = key_slot(k);
        let g = view.group_of_slot(s).ok_or_else(unserved)?;
        match found {
            Some((_, first)) if first.id != g.id => return Err(CROSSSLOT.into()),
            Some(_) => {}
            None => found = Some((s, g)),
        }
    }
    found.ok_or_else(unserved)
}

/// Decides where `req` runs on node `view.myself`.
pub fn route(view: &ClusterView, mode: RedirectMode, req: Request<'_>) -> Route {
    if req.keys.is_empty() {
        return Route::Anywhere;
    }
    if req.sharded {
        let first = key_slot(req.keys[0]);
        if req.keys[1..].iter().any(|k| key_slot(k) != first) {
            return Route::Error(CROSSSLOT.into());
        }
    }
    let (slot, g) = match request_group(view, req.keys) {
        Err(e) => return Route::Error(e),
        Ok(x) => x,
    };
    let me = view.myself;
    let member = g.voters.contains(&me) || g.learners.contains(&me);
    if g.leader == me || (member && !req.write && (mode == RedirectMode::Forward || req.readonly)) {
        return Route::Local(g.id);
    }
    if g.leader == 0 {
        return Route::NoLeader(g.id);
    }
    match mode {
        RedirectMode::Forward => Route::Forward {
            group: g.id,
            leader: g.leader,
        },
        RedirectMode::Moved => match view.leader_addr(g) {
            Some(addr) => Route::Error(format!("MOVED {slot} {addr}")),
            None => Route::NoLeader(g.id),
        },
    }
}

/// Splits the positions of `keys` by the group owning their slot, for commands that fan out
/// (MGET, DEL, EXISTS, ...), in key order within each group.
#[allow(dead_code)] // used once several groups serve slots (slot sharding, issue #10)
pub fn by_group(view: &ClusterView, keys: &[&[u8]]) -> Result<BTreeMap<u64, Vec<usize>>, Reply> {
    let mut out: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let g = view
            .group_of_slot(key_slot(k))
            .ok_or_else(|| Reply::err("CLUSTERDOWN Hash slot not served"))?;
        out.entry(g.id).or_default().push(i);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::three_nodes;
    use super::super::view::GroupInfo;
    use super::*;

    fn req<'a>(keys: &'a [&'a [u8]], write: bool, readonly: bool) -> Request<'a> {
        Request {
            keys,
            write,
            readonly,
            sharded: false,
        }
    }

    #[test]
    fn a_sharded_cluster_wants_one_slot_per_request() {
        let v = three_nodes(1);
        let keys: &[&[u8]] = &[b"a", b"b"];
        let sharded = Request {
            sharded: true,
            ..req(keys, true, false)
        };
        assert_eq!(
            route(&v, RedirectMode::Forward, sharded),
            Route::Error(CROSSSLOT.into())
        );
        let tagged: &[&[u8]] = &[b"{a}x", b"{a}y"];
        let sharded = Request {
            sharded: true,
            ..req(tagged, true, false)
        };
        assert_eq!(route(&v, RedirectMode::Forward, sharded), Route::Local(1));
    }

    #[test]
    fn order_crossslot_then_leader_then_mode() {
        let v = three_nodes(2); // this is node 1, a follower
                                // One group owns every slot: keys of any slots go together, as in standalone Redis.
        let cross: &[&[u8]] = &[b"a", b"b"];
        assert_eq!(
            route(&v, RedirectMode::Forward, req(cross, true, false)),
            Route::Forward {
                group: 1,
                leader: 2
            }
        );
        assert_eq!(
            route(&v, RedirectMode::Moved, req(cross, true, false)),
            Route::Error("MOVED 15495 127.0.0.1:63792".into())
        );
        let tagged: &[&[u8]] = &[b"{u}a", b"{u}b"];
        assert_eq!(
            route(&v, RedirectMode::Forward, req(tagged, true, false)),
            Route::Forward {
                group: 1,
                leader: 2
            }
        );
        assert_eq!(
            route(&v, RedirectMode::Forward, req(tagged, false, false)),
            Route::Local(1)
        );
        let foo: &[&[u8]] = &[b"foo"];
        assert_eq!(
            route(&v, RedirectMode::Moved, req(foo, false, false)),
            Route::Error("MOVED 12182 127.0.0.1:63792".into())
        );
        assert_eq!(
            route(&v, RedirectMode::Moved, req(foo, false, true)),
            Route::Local(1)
        );
        assert_eq!(
            route(&v, RedirectMode::Moved, req(foo, true, true)),
            Route::Error("MOVED 12182 127.0.0.1:63792".into())
        );
        assert_eq!(
            route(&v, RedirectMode::Moved, req(&[], true, false)),
            Route::Anywhere
        );
        assert_eq!(
            route(&three_nodes(1), RedirectMode::Moved, req(foo, true, false)),
            Route::Local(1)
        );
        assert_eq!(
            route(&three_nodes(0), RedirectMode::Moved, req(foo, true, false)),
            Route::NoLeader(1)
        );
    }

    #[test]
    fn unowned_slots_and_fan_out() {
        let mut v = three_nodes(2);
        v.groups.insert(
            2,
            GroupInfo {
                id: 2,
                voters: vec![2, 3],
                leader: 3,
                ..Default::default()
            },
        );
        if let Some(g) = v.groups.get_mut(&1) {
            g.ranges = vec![(0, 8191)];
        }
        if let Some(g) = v.groups.get_mut(&2) {
            g.ranges = vec![(8192, 16000)];
        }
        // "foo" is slot 12182 (group 2, which node 1 is not in): forwarded even for reads.
        let foo: &[&[u8]] = &[b"foo"];
        assert_eq!(
            route(&v, RedirectMode::Forward, req(foo, false, false)),
            Route::Forward {
                group: 2,
                leader: 3
            }
        );
        let keys: &[&[u8]] = &[b"foo", b"bar", b"foo"]; // bar is slot 5061
        let split = by_group(&v, keys).expect("all served");
        assert_eq!(split[&1], vec![1]);
        assert_eq!(split[&2], vec![0, 2]);
        // Keys of two groups: CROSSSLOT, before anything else.
        let two: &[&[u8]] = &[b"bar", b"foo"];
        assert_eq!(
            route(&v, RedirectMode::Forward, req(two, false, false)),
            Route::Error(CROSSSLOT.into())
        );
        let unserved = [b"{x}" as &[u8]]; // slot 16287 is nobody's
        assert!(by_group(&v, &unserved).is_err());
        assert_eq!(
            route(&v, RedirectMode::Forward, req(&unserved, false, false)),
            Route::Error("CLUSTERDOWN Hash slot not served".into())
        );
    }
}
