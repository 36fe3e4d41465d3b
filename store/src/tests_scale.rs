//! Scaling figures of the cluster metadata (issue #11, `docs/scaling.md`): the encoded size
//! of [`ClusterMeta`] (the one record every metadata change rewrites) for 3..100 nodes and
//! 3..10,000 groups, with the slot map as laid out at bootstrap (one range per group) and
//! fully fragmented (one range per slot, the worst case after many migrations), the time
//! to apply one `ASSIGN`, to encode, decode and clone the state, and the size of a CLUSTER
//! SLOTS / SHARDS reply of the same shape as `src/cluster/reply.rs` builds; and the metadata
//! side of a rebalance (`REBALANCE`, then every `MIGRATED`). Each prints a table; ignored in
//! the default run:
//! `cargo test --release -p store --lib meta_scale -- --ignored --nocapture`,
//! `cargo test --release -p store --lib rebalance_scale -- --ignored --nocapture`.
//! The always-run test checks the builders the tables rely on.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use resp::encode::encode;
use resp::{Protocol, Reply};

use crate::cluster_meta::{ClusterMeta, GroupMembers, MetaCmd, NodeRecord};
use crate::slot::SLOTS;

/// The metadata of `nodes` nodes and `groups` groups (each on 3 nodes, spread evenly),
/// every node and group reported; `fragmented`: one slot range per slot, slot `s` owned
/// by group `s % groups + 1` (no two adjacent slots in one group).
fn meta(nodes: u64, groups: u64, fragmented: bool) -> ClusterMeta {
    let mut m = ClusterMeta::default();
    m.apply(&MetaCmd::Init { groups });
    if fragmented {
        m.slots = (0..SLOTS)
            .map(|s| (s, s, u64::from(s) % groups + 1))
            .collect();
    }
    for g in 1..=groups {
        let members = GroupMembers {
            voters: placement(nodes, g),
            learners: Vec::new(),
        };
        m.apply(&MetaCmd::Members { group: g, members });
    }
    for id in 1..=nodes {
        m.apply(&MetaCmd::Node {
            id,
            record: record(id),
        });
    }
    m
}

/// The 3 nodes of group `g` (1-based) among `nodes`: consecutive, rotating, so every node
/// holds the same number of replicas.
fn placement(nodes: u64, g: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..3).map(|i| (3 * (g - 1) + i) % nodes + 1).collect();
    v.sort_unstable();
    v
}

/// A node record with realistic lengths (40-hex name, private addresses).
fn record(id: u64) -> NodeRecord {
    NodeRecord {
        name: format!("{:040x}", id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        redis_addr: format!("10.0.{}.{}:6379", id / 250, id % 250 + 1),
        raft_addr: format!("10.0.{}.{}:16379", id / 250, id % 250 + 1),
    }
}

fn bulk(s: String) -> Reply {
    Reply::Bulk(Bytes::from(s))
}

/// One node of a CLUSTER SLOTS entry: ip, port, name, empty map (`reply::slots_node`).
fn slots_node(id: u64) -> Reply {
    let r = record(id);
    let ip = r
        .redis_addr
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    Reply::Array(vec![
        bulk(ip),
        Reply::Int(6379),
        bulk(r.name),
        Reply::Map(vec![]),
    ])
}

/// A CLUSTER SLOTS reply of `m`: per range, start, end, master, two replicas.
fn cluster_slots(m: &ClusterMeta) -> Reply {
    let entries = m
        .slots
        .iter()
        .map(|&(a, b, g)| {
            let mut e = vec![Reply::Int(a.into()), Reply::Int(b.into())];
            e.extend(m.members[&g].voters.iter().map(|&id| slots_node(id)));
            Reply::Array(e)
        })
        .collect();
    Reply::Array(entries)
}

/// A CLUSTER SHARDS reply of `m`: per group, its ranges and its three nodes' maps.
fn cluster_shards(m: &ClusterMeta) -> Reply {
    let shards = m
        .members
        .iter()
        .map(|(&g, mem)| {
            let slots = m
                .ranges_of(g)
                .into_iter()
                .flat_map(|(a, b)| [Reply::Int(a.into()), Reply::Int(b.into())])
                .collect();
            let nodes = mem
                .voters
                .iter()
                .map(|&id| {
                    let r = record(id);
                    let ip = r
                        .redis_addr
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let kv = |k: &str, v: Reply| (bulk(k.to_string()), v);
                    Reply::Map(vec![
                        kv("id", bulk(r.name)),
                        kv("port", Reply::Int(6379)),
                        kv("ip", bulk(ip.clone())),
                        kv("endpoint", bulk(ip)),
                        kv("role", bulk("replica".into())),
                        kv("replication-offset", Reply::Int(123_456_789)),
                        kv("health", bulk("online".into())),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (bulk("slots".into()), Reply::Array(slots)),
                (bulk("nodes".into()), Reply::Array(nodes)),
            ])
        })
        .collect();
    Reply::Array(shards)
}

fn resp2_len(r: &Reply) -> usize {
    let mut out = BytesMut::new();
    encode(r, Protocol::Resp2, &mut out);
    out.len()
}

/// Microseconds per call of `f`: the fastest of several timed calls over about 100 ms (the
/// machine is shared: the fastest is the one least disturbed by other work).
fn micros(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut n = 0u32;
    while n < 5 || (start.elapsed().as_millis() < 100 && n < 10_000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e6);
        n += 1;
    }
    best
}

#[test]
fn the_scale_builders_give_the_shapes_the_table_assumes() {
    let m = meta(10, 100, true);
    assert_eq!(m.slots.len(), SLOTS as usize);
    assert_eq!(m.members.len(), 100);
    assert_eq!(m.nodes.len(), 10);
    assert_eq!(ClusterMeta::decode(&m.encode()), Some(m.clone()));
    let even = meta(10, 100, false);
    assert_eq!(even.slots.len(), 100);
    // Every node holds 30 of the 300 replicas.
    for id in 1..=10 {
        let held = (1..=100)
            .filter(|&g| placement(10, g).contains(&id))
            .count();
        assert_eq!(held, 30);
    }
    assert_eq!(placement(3, 7), vec![1, 2, 3]);
}

#[test]
#[ignore]
fn meta_scale() {
    println!("| nodes | groups | slot map | ranges | encoded record | encode µs | decode µs | clone µs | ASSIGN 1 slot µs | CLUSTER SLOTS | CLUSTER SHARDS |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for nodes in [3u64, 10, 30, 100] {
        for groups in [3u64, 100, 1000, 10_000] {
            for fragmented in [false, true] {
                let m = meta(nodes, groups, fragmented);
                let text = m.encode();
                let enc = micros(|| drop(std::hint::black_box(m.encode())));
                let dec = micros(|| drop(std::hint::black_box(ClusterMeta::decode(&text))));
                let clone = micros(|| drop(std::hint::black_box(m.clone())));
                let mut work = m.clone();
                let mut slot = 0u16;
                let assign = micros(|| {
                    slot = (slot + 1) % SLOTS;
                    let group = u64::from(slot) % groups + 1;
                    work.apply(&MetaCmd::Assign {
                        group,
                        ranges: vec![(slot, slot)],
                    });
                });
                println!(
                    "| {nodes} | {groups} | {} | {} | {} | {enc:.0} | {dec:.0} | {clone:.0} | {assign:.0} | {} | {} |",
                    if fragmented { "1 range/slot" } else { "even split" },
                    m.slots.len(),
                    text.len(),
                    resp2_len(&cluster_slots(&m)),
                    resp2_len(&cluster_shards(&m)),
                );
            }
        }
    }
    let one = MetaCmd::Assign {
        group: 2,
        ranges: vec![(100, 100)],
    };
    let entry: usize = one.to_argv().iter().map(|a| a.len()).sum();
    println!("ASSIGN of one slot as a log entry: {entry} bytes of arguments");
}

/// The metadata side of a rebalance from `groups` to `groups + more` data groups: the plan
/// (`REBALANCE`, re-applied while the pending-migration cap cut it short), then every
/// migration's cut-over (`MIGRATED`), each followed by what a metadata replica does after
/// applying it: encode the record and clone the state for the view. The groups' own steps
/// (the source's REMOVE, the target's ADD: two more commits per migration) are not run here.
#[test]
#[ignore]
fn rebalance_scale() {
    println!("| groups | slots moved | migrations | REBALANCE entries | plan ms (total) | cut-over apply + encode + clone µs (mean) | record bytes rewritten by the cut-overs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (groups, more) in [(3u64, 1u64), (100, 10), (1000, 100), (10_000, 1000)] {
        let mut m = meta(10, groups, false);
        m.groups = groups + more;
        for g in groups + 1..=groups + more {
            let members = GroupMembers {
                voters: placement(10, g),
                learners: Vec::new(),
            };
            m.apply(&MetaCmd::Members { group: g, members });
        }
        let (mut moved, mut migrations, mut entries, mut bytes) = (0usize, 0usize, 0, 0usize);
        let (mut plan, mut cut) = (0f64, 0f64);
        loop {
            let t = Instant::now();
            let changed = m.apply(&MetaCmd::Rebalance);
            plan += t.elapsed().as_secs_f64();
            if !changed {
                break;
            }
            entries += 1;
            moved += m
                .migrations
                .values()
                .flat_map(|x| &x.ranges)
                .map(|&(a, b)| usize::from(b - a) + 1)
                .sum::<usize>();
            while let Some((id, _)) = m.next_migration() {
                let t = Instant::now();
                m.apply(&MetaCmd::Migrated { id, ranges: vec![] });
                let text = m.encode();
                let view = std::hint::black_box(m.clone());
                cut += t.elapsed().as_secs_f64();
                bytes += text.len();
                migrations += 1;
                drop(view);
            }
        }
        println!(
            "| {groups} → {} | {moved} | {migrations} | {entries} | {:.1} | {:.0} | {:.1} MB |",
            groups + more,
            plan * 1e3,
            cut * 1e6 / migrations.max(1) as f64,
            bytes as f64 / 1e6,
        );
    }
}
