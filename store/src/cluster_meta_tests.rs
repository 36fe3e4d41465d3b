//! Unit tests of the cluster metadata state machine (`super`).

use super::*;

fn node(name: &str, r: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        redis_addr: r.into(),
        raft_addr: "127.0.0.1:1".into(),
    }
}

#[test]
fn even_split_covers_every_slot_once() {
    for n in [1u64, 2, 3, 7, 1000] {
        let r = even_split(n);
        assert_eq!(r.len() as u64, n);
        assert_eq!(r[0].0, 0);
        assert_eq!(r[r.len() - 1].1, SLOTS - 1);
        for w in r.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
    }
    assert_eq!(
        even_split(3),
        vec![(0, 5460), (5461, 10921), (10922, 16383)]
    );
}

#[test]
fn every_change_bumps_the_epoch_once_and_repeats_do_not() {
    let mut m = ClusterMeta::default();
    assert!(m.apply(&MetaCmd::Init { groups: 3 }));
    assert_eq!((m.epoch, m.groups), (1, 3));
    assert_eq!(m.group_of(0), Some(1));
    assert_eq!(m.group_of(5461), Some(2));
    assert_eq!(m.group_of(16383), Some(3));
    // INIT happens once: a second (another founder's) changes nothing.
    assert!(!m.apply(&MetaCmd::Init { groups: 5 }));
    let rec = MetaCmd::Node {
        id: 2,
        record: node("aa", "h:2"),
    };
    assert!(m.apply(&rec));
    assert!(!m.apply(&rec));
    assert_eq!(m.epoch, 2);
    // The name stays the first recorded; the address follows.
    let moved = MetaCmd::Node {
        id: 2,
        record: node("bb", "h:22"),
    };
    assert!(m.apply(&moved));
    assert_eq!(m.nodes[&2], node("aa", "h:22"));
    let members = MetaCmd::Members {
        group: 1,
        members: GroupMembers {
            voters: vec![1, 2, 3],
            learners: vec![4],
        },
    };
    assert!(m.apply(&members) && !m.apply(&members));
    assert!(m.apply(&MetaCmd::Forget { id: 2 }));
    assert_eq!(m.epoch, 5);
    assert!(m.nodes.is_empty());
}

#[test]
fn a_cut_over_is_one_assign_and_keeps_the_map_normal() {
    let mut m = ClusterMeta::default();
    m.apply(&MetaCmd::Init { groups: 2 });
    let e = m.epoch;
    // Slots 100..=199 move from group 1 to group 2: one entry, one epoch.
    assert!(m.apply(&MetaCmd::Assign {
        group: 2,
        ranges: vec![(100, 199)]
    }));
    assert_eq!(m.epoch, e + 1);
    assert_eq!(
        m.slots,
        vec![(0, 99, 1), (100, 199, 2), (200, 8191, 1), (8192, 16383, 2)]
    );
    assert_eq!(m.ranges_of(2), vec![(100, 199), (8192, 16383)]);
    // Moving them back merges the ranges again.
    m.apply(&MetaCmd::Assign {
        group: 1,
        ranges: vec![(100, 199)],
    });
    assert_eq!(m.slots, vec![(0, 8191, 1), (8192, 16383, 2)]);
}

#[test]
fn commands_and_state_round_trip() {
    let cmds = [
        MetaCmd::Init { groups: 3 },
        MetaCmd::Assign {
            group: 2,
            ranges: vec![(0, 0), (5, 9)],
        },
        MetaCmd::Members {
            group: 1,
            members: GroupMembers {
                voters: vec![1, 2],
                learners: vec![],
            },
        },
        MetaCmd::Node {
            id: 7,
            record: node("ab", "127.0.0.1:6379"),
        },
        MetaCmd::Forget { id: 7 },
    ];
    let mut m = ClusterMeta::default();
    for c in &cmds {
        assert_eq!(MetaCmd::parse(&c.to_argv()).as_ref(), Some(c));
        m.apply(c);
    }
    m.apply(&cmds[3]);
    assert_eq!(ClusterMeta::decode(&m.encode()), Some(m));
    let bad: Vec<Bytes> = ["RAFTKV.META", "ASSIGN", "1", "9-5"]
        .iter()
        .map(|s| Bytes::from(s.to_string()))
        .collect();
    assert_eq!(MetaCmd::parse(&bad), None);
    let spaced: Vec<Bytes> = ["RAFTKV.META", "NODE", "1", "n", "a b", "c"]
        .iter()
        .map(|s| Bytes::from(s.to_string()))
        .collect();
    assert_eq!(MetaCmd::parse(&spaced), None);
}
