//! The routing decision for one request, in one function and in a fixed order (kvrocks'
//! `CanExecByMySelf`): CROSSSLOT, then an unserved slot, then MOVED (strict Redis Cluster
//! mode) or forwarding (the default), then local execution. A slot migration adds TRYAGAIN
//! and ASK between MOVED and local execution.

use std::collections::BTreeMap;

use resp::Reply;
use store::slot::key_slot;

use super::view::ClusterView;

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

/// The single slot of `keys`, or the CROSSSLOT error.
pub fn single_slot(keys: &[&[u8]]) -> Result<Option<u16>, String> {
    let mut slot = None;
    for k in keys {
        let s = key_slot(k);
        if slot.is_some_and(|x| x != s) {
            return Err(CROSSSLOT.into());
        }
        slot = Some(s);
    }
    Ok(slot)
}

/// Decides where `req` runs on node `view.myself`.
pub fn route(view: &ClusterView, mode: RedirectMode, req: Request<'_>) -> Route {
    let slot = match single_slot(req.keys) {
        Err(e) => return Route::Error(e),
        Ok(None) => return Route::Anywhere,
        Ok(Some(s)) => s,
    };
    let Some(g) = view.group_of_slot(slot) else {
        return Route::Error("CLUSTERDOWN Hash slot not served".into());
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
        }
    }

    #[test]
    fn order_crossslot_then_leader_then_mode() {
        let v = three_nodes(2); // this is node 1, a follower
        let cross: &[&[u8]] = &[b"a", b"b"];
        assert_eq!(
            route(&v, RedirectMode::Forward, req(cross, true, false)),
            Route::Error(CROSSSLOT.into())
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
        let unserved = [b"{x}" as &[u8]]; // slot 16287 is nobody's
        assert!(by_group(&v, &unserved).is_err());
        assert_eq!(
            route(&v, RedirectMode::Forward, req(&unserved, false, false)),
            Route::Error("CLUSTERDOWN Hash slot not served".into())
        );
    }
}
