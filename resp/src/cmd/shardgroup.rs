//! Shard group administration and slot migration (`RAFT.SHARDGROUP QUERY | MOVE | JOIN |
//! LEAVE`, `RAFT.REBALANCE`): served by the node they reach, recorded in the metadata group
//! (see `store::migrations`). Parsers beside their table entries, then the registration
//! table and the unit tests.

use bytes::Bytes;

use super::raft::{node_id, parse_slot_ranges, raft, raft_doc as doc, ADMIN};
use super::spec::CommandSpec;
use super::util::{int, parse_container};
use crate::{Command, RaftCmd, Reply};

/// A data group id: a positive integer below 2^16 (the metadata group's id is far above).
fn group_id(b: &[u8]) -> Result<u64, Reply> {
    match int(b) {
        Ok(i) if (1..=0xffff).contains(&i) => Ok(i as u64),
        _ => Err(Reply::err(
            "ERR invalid group id: expected an integer from 1 to 65535",
        )),
    }
}

fn parse_query(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::ShardQuery)
}

fn parse_move(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let group = group_id(&argv[2])?;
    let mut ranges = Vec::new();
    for a in &argv[3..] {
        ranges.extend(parse_slot_ranges(a).map_err(Reply::err)?);
    }
    if ranges.is_empty() {
        return Err(Reply::err("ERR no slots given"));
    }
    raft(RaftCmd::ShardMove { group, ranges })
}

fn parse_join(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let group = group_id(&argv[2])?;
    let nodes = argv[3..]
        .iter()
        .map(|b| node_id(b))
        .collect::<Result<_, _>>()?;
    raft(RaftCmd::ShardJoin { group, nodes })
}

fn parse_leave(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::ShardLeave {
        group: group_id(&argv[2])?,
    })
}

static SUBCOMMANDS: [CommandSpec; 4] = [
    doc(
        CommandSpec::new("raft.shardgroup|query", 2, ADMIN, &[], parse_query),
        "Prints the configuration: epoch, groups (members, leader, slot ranges), migrations.",
        "O(N) where N is the number of groups, ranges and migrations.",
    ),
    doc(
        CommandSpec {
            args: "group:integer slots:string+",
            ..CommandSpec::new("raft.shardgroup|move", -4, ADMIN, &[], parse_move)
        },
        "Migrates the slots (<slot> or <lo>-<hi>, several allowed) to the group, online.",
        "O(N) where N is the number of slots; the keys move in the background.",
    ),
    doc(
        CommandSpec {
            args: "group:integer node-id:integer+",
            ..CommandSpec::new("raft.shardgroup|join", -4, ADMIN, &[], parse_join)
        },
        "Creates a data group with replicas on those nodes (not supported yet).",
        "O(1)",
    ),
    doc(
        CommandSpec {
            args: "group:integer",
            ..CommandSpec::new("raft.shardgroup|leave", 3, ADMIN, &[], parse_leave)
        },
        "Moves the group's slots to the others, then removes it (not supported yet).",
        "O(1)",
    ),
];

pub(crate) static SHARDGROUP: CommandSpec = CommandSpec {
    subcommands: &SUBCOMMANDS,
    ..doc(
        CommandSpec::new("RAFT.SHARDGROUP", -2, ADMIN, &[], parse_container),
        "A container for shard group commands (QUERY, MOVE, JOIN, LEAVE).",
        "Depends on subcommand.",
    )
};

fn parse_rebalance(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::Rebalance)
}

pub(crate) static REBALANCE: CommandSpec = doc(
    CommandSpec::new("RAFT.REBALANCE", 1, ADMIN, &[], parse_rebalance),
    "Migrates slots (fewest moves) until every group's slot count differs by at most one.",
    "O(N) where N is the number of slots moved; the keys move in the background.",
);

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&SHARDGROUP, &REBALANCE];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn shardgroup_commands_parse_with_redis_style_errors() {
        assert_eq!(
            p("RAFT.SHARDGROUP QUERY"),
            Command::Raft(RaftCmd::ShardQuery)
        );
        assert_eq!(
            p("raft.shardgroup move 2 0-99 200"),
            Command::Raft(RaftCmd::ShardMove {
                group: 2,
                ranges: vec![(0, 99), (200, 200)]
            })
        );
        assert_eq!(
            p("RAFT.SHARDGROUP JOIN 4 4 5 6"),
            Command::Raft(RaftCmd::ShardJoin {
                group: 4,
                nodes: vec![4, 5, 6]
            })
        );
        assert_eq!(
            p("RAFT.SHARDGROUP LEAVE 4"),
            Command::Raft(RaftCmd::ShardLeave { group: 4 })
        );
        assert_eq!(p("RAFT.REBALANCE"), Command::Raft(RaftCmd::Rebalance));
        assert_eq!(p("RAFT.REBALANCE").kind(), Kind::Admin);
        for (bad, want) in [
            ("RAFT.SHARDGROUP MOVE 0 1", "ERR invalid group id"),
            ("RAFT.SHARDGROUP MOVE 2 16384", "ERR invalid slot range"),
            ("RAFT.SHARDGROUP MOVE 2", "ERR wrong number of arguments"),
            ("RAFT.SHARDGROUP NOPE", "ERR unknown subcommand"),
            ("RAFT.SHARDGROUP JOIN 4 x", "ERR invalid node id"),
        ] {
            let e = err(bad);
            assert!(e.starts_with(want), "{bad}: {e}");
        }
    }
}
