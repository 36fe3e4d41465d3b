//! The Redis Cluster introspection replies, in Redis 7's formats, all computed from one
//! [`ClusterView`]: CLUSTER SLOTS, SHARDS, NODES, INFO, MYID, MYSHARDID. A group's leader is
//! its master, its other voters are its replicas. CLUSTER NODES has one line per node (it
//! has room for one role only): a node is shown as the master of the slots of every group
//! it leads, and a node leading none as a replica of the leader of its first group.

use std::fmt::Write as _;

use bytes::Bytes;
use resp::Reply;

use super::view::{split_addr, ClusterView, GroupInfo};

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(Bytes::from(s.into()))
}

fn status(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// One node entry of CLUSTER SLOTS: ip, port, id, metadata (empty map).
fn slots_node(view: &ClusterView, id: u64) -> Option<Reply> {
    let addr = view.nodes.get(&id)?.redis_addr.as_deref()?;
    let (ip, port) = split_addr(addr);
    Some(Reply::Array(vec![
        bulk(ip),
        Reply::Int(port as i64),
        bulk(view.name_of(id)),
        Reply::Map(vec![]),
    ]))
}

/// The node CLUSTER SLOTS shows as the master of `g`: its leader; while the leader is
/// unknown (an election) or its address is not known yet, this node if it is a voter,
/// else the first voter with a known address. A range is never left out while the group
/// has a reachable member: cluster clients (redis-py) refuse a slot map with holes, and
/// the member they pick forwards, redirects or answers a retryable error.
fn slots_master(view: &ClusterView, g: &GroupInfo) -> Option<(u64, Reply)> {
    let fallback = g
        .voters
        .iter()
        .copied()
        .filter(|&id| id != g.leader)
        .filter(|&id| id == view.myself)
        .chain(g.voters.iter().copied());
    std::iter::once(g.leader)
        .chain(fallback)
        .find_map(|id| slots_node(view, id).map(|r| (id, r)))
}

/// CLUSTER SLOTS: per slot range of a group, the range, the master (see
/// [`slots_master`]), then the other voters as replicas.
pub fn slots(view: &ClusterView) -> Reply {
    let mut out = Vec::new();
    for g in view.groups.values() {
        let Some((master_id, master)) = slots_master(view, g) else {
            continue;
        };
        for &(a, b) in &g.ranges {
            let mut entry = vec![Reply::Int(a as i64), Reply::Int(b as i64), master.clone()];
            entry.extend(
                g.voters
                    .iter()
                    .filter(|&&id| id != master_id)
                    .filter_map(|&id| slots_node(view, id)),
            );
            out.push(Reply::Array(entry));
        }
    }
    Reply::Array(out)
}

fn shard_node(view: &ClusterView, g: &GroupInfo, id: u64) -> Option<Reply> {
    let addr = view.nodes.get(&id)?.redis_addr.as_deref()?;
    let (ip, port) = split_addr(addr);
    let role = if id == g.leader { "master" } else { "replica" };
    // Only this node's own applied index is known here; others report what it knows.
    let offset = if id == view.myself { g.applied } else { 0 };
    Some(Reply::Map(vec![
        (status("id"), bulk(view.name_of(id))),
        (status("port"), Reply::Int(port as i64)),
        (status("ip"), bulk(ip)),
        (status("endpoint"), bulk(ip)),
        (status("role"), bulk(role)),
        (status("replication-offset"), Reply::Int(offset as i64)),
        (status("health"), bulk("online")),
    ]))
}

/// CLUSTER SHARDS: one map per group: its slot ranges and its nodes, leader first.
pub fn shards(view: &ClusterView) -> Reply {
    let out = view
        .groups
        .values()
        .map(|g| {
            let slots = g
                .ranges
                .iter()
                .flat_map(|&(a, b)| [Reply::Int(a as i64), Reply::Int(b as i64)])
                .collect();
            let nodes = g
                .members()
                .into_iter()
                .filter(|&id| g.leader == id || g.voters.contains(&id))
                .filter_map(|id| shard_node(view, g, id))
                .collect();
            Reply::Map(vec![
                (status("slots"), Reply::Array(slots)),
                (status("nodes"), Reply::Array(nodes)),
            ])
        })
        .collect();
    Reply::Array(out)
}

fn ranges_text(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                format!(" {a}")
            } else {
                format!(" {a}-{b}")
            }
        })
        .collect()
}

/// CLUSTER NODES: one line per node, `<id> <ip:port@cport> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot>...`.
pub fn nodes(view: &ClusterView) -> String {
    let mut out = String::new();
    for n in view.nodes.values() {
        let led: Vec<&GroupInfo> = view.led_by(n.id).collect();
        let master_of = view
            .groups_of(n.id)
            .find(|g| g.leader != 0 && g.leader != n.id)
            .map(|g| view.name_of(g.leader));
        let (role, master) = match (&led[..], master_of) {
            ([], Some(m)) => ("slave", m),
            _ => ("master", "-".to_string()),
        };
        let mut flags = String::new();
        if n.id == view.myself {
            flags.push_str("myself,");
        }
        flags.push_str(role);
        let addr = match &n.redis_addr {
            Some(a) => a.clone(),
            None => {
                flags.push_str(",noaddr");
                ":0".to_string()
            }
        };
        let cport = split_addr(&n.raft_addr).1;
        let slots: String = led.iter().map(|g| ranges_text(&g.ranges)).collect();
        let _ = writeln!(
            out,
            "{} {addr}@{cport} {flags} {master} 0 0 {} connected{slots}",
            n.name, view.epoch
        );
    }
    out
}

/// CLUSTER INFO.
pub fn info(view: &ClusterView) -> String {
    let size = view.groups.values().filter(|g| g.slot_count() > 0).count();
    let my_epoch = if view.led_by(view.myself).next().is_some() {
        view.epoch
    } else {
        0
    };
    let state = if view.is_ok() { "ok" } else { "fail" };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\ncluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{my_epoch}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n{}:{}\r\nraftkv_meta_leader:{}\r\n",
        view.slots_assigned(),
        view.slots_ok(),
        view.slots_assigned() - view.slots_ok(),
        view.nodes.len(),
        view.epoch,
        super::meta::GROUPS_FIELD,
        view.data_groups,
        view.meta_leader,
    )
}

/// CLUSTER MYSHARDID: the shard of this node's first group.
pub fn my_shard_id(view: &ClusterView) -> Option<String> {
    view.groups_of(view.myself).next().map(GroupInfo::shard_id)
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::three_nodes;
    use super::*;

    #[test]
    fn slots_lists_the_leader_then_replicas() {
        let v = three_nodes(2);
        let Reply::Array(ranges) = slots(&v) else {
            panic!("not an array")
        };
        assert_eq!(ranges.len(), 1);
        let Reply::Array(entry) = &ranges[0] else {
            panic!("not an array")
        };
        assert_eq!(entry[0], Reply::Int(0));
        assert_eq!(entry[1], Reply::Int(16383));
        assert_eq!(entry.len(), 5);
        let Reply::Array(master) = &entry[2] else {
            panic!("not an array")
        };
        assert_eq!(master[0], bulk("127.0.0.1"));
        assert_eq!(master[1], Reply::Int(63792));
        assert_eq!(master[2], bulk(v.name_of(2)));
        // No leader: the range is still listed, this node (a voter) as its master.
        let Reply::Array(ranges) = slots(&three_nodes(0)) else {
            panic!("not an array")
        };
        let Reply::Array(entry) = &ranges[0] else {
            panic!("not an array")
        };
        assert_eq!(entry.len(), 5);
        let Reply::Array(master) = &entry[2] else {
            panic!("not an array")
        };
        assert_eq!(master[2], bulk(v.name_of(v.myself)));
    }

    #[test]
    fn nodes_shows_one_master_with_every_slot() {
        let v = three_nodes(2);
        let text = nodes(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let leader = format!(
            "{} 127.0.0.1:63792@22379 master - 0 0 1 connected 0-16383",
            v.name_of(2)
        );
        assert_eq!(lines[1], leader);
        assert!(lines[0].starts_with(&format!(
            "{} 127.0.0.1:63791@12379 myself,slave {} ",
            v.name_of(1),
            v.name_of(2)
        )));
        assert!(lines[0].ends_with(" connected"));
    }

    #[test]
    fn info_and_shards_agree() {
        let v = three_nodes(3);
        let text = info(&v);
        assert!(text.starts_with(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"
        ));
        assert!(text.contains("cluster_known_nodes:3\r\ncluster_size:1\r\n"));
        assert!(info(&three_nodes(0)).starts_with("cluster_state:fail\r\n"));
        let Reply::Array(groups) = shards(&v) else {
            panic!("not an array")
        };
        let Reply::Map(fields) = &groups[0] else {
            panic!("not a map")
        };
        assert_eq!(
            fields[0].1,
            Reply::Array(vec![Reply::Int(0), Reply::Int(16383)])
        );
        let Reply::Array(nodes) = &fields[1].1 else {
            panic!("not an array")
        };
        assert_eq!(nodes.len(), 3);
        let Reply::Map(first) = &nodes[0] else {
            panic!("not a map")
        };
        assert_eq!(first[0].1, bulk(v.name_of(3)));
        assert_eq!(first[4].1, bulk("master"));
        assert_eq!(my_shard_id(&v).map(|s| s.len()), Some(40));
    }
}
