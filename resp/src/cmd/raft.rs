//! raftkv's cluster administration commands, the `RAFT.*` family: snapshots, membership
//! (RAFT.NODE ADD / REMOVE / REPLACE) and leader transfer. Served by the node or forwarded
//! to its leader (`Kind::Admin`). Parsers beside their table entries, then the family's
//! registration table and its unit tests.

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{int, parse_container, syntax};
use crate::{Command, RaftCmd, Reply};

/// A Raft node id: a positive integer.
fn node_id(b: &[u8]) -> Result<u64, Reply> {
    match int(b) {
        Ok(i) if i > 0 => Ok(i as u64),
        _ => Err(Reply::err(
            "ERR invalid node id: expected a positive integer",
        )),
    }
}

/// A peer address `host:port`.
fn peer_addr(b: &[u8]) -> Result<String, Reply> {
    let s = std::str::from_utf8(b).ok().filter(|s| {
        s.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty()
                && p.parse::<u16>().is_ok_and(|p| p > 0)
                && !s.contains(char::is_whitespace)
        })
    });
    s.map(str::to_string)
        .ok_or_else(|| Reply::err("ERR invalid address: expected host:port"))
}

fn raft(c: RaftCmd) -> Result<Command, Reply> {
    Ok(Command::Raft(c))
}

const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];

/// Docs shared by the family's entries.
const fn raft_doc(
    spec: CommandSpec,
    summary: &'static str,
    complexity: &'static str,
) -> CommandSpec {
    CommandSpec {
        summary,
        complexity,
        since: "0.1.0",
        group: "cluster",
        ..spec
    }
}

fn parse_snapshot(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::Snapshot)
}

pub(crate) static SNAPSHOT: CommandSpec = raft_doc(
    CommandSpec::new("RAFT.SNAPSHOT", 1, ADMIN, &[], parse_snapshot),
    "Takes a snapshot of this node's state now and compacts its Raft log.",
    "O(N) where N is the number of keys (written in the background).",
);

fn parse_nodes(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::Nodes)
}

pub(crate) static NODES: CommandSpec = raft_doc(
    CommandSpec::new("RAFT.NODES", 1, ADMIN, &[], parse_nodes),
    "Lists the Raft group's members: id, address, suffrage, role, matched index.",
    "O(N) where N is the number of members.",
);

fn parse_add(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeAdd {
        id: node_id(&argv[2])?,
        addr: peer_addr(&argv[3])?,
    })
}

fn parse_remove(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeRemove {
        id: node_id(&argv[2])?,
    })
}

fn parse_replace(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeReplace {
        old: node_id(&argv[2])?,
        new: node_id(&argv[3])?,
    })
}

static NODE_SUBCOMMANDS: [CommandSpec; 3] = [
    raft_doc(
        CommandSpec {
            args: "id:integer address:string",
            ..CommandSpec::new("raft.node|add", 4, ADMIN, &[], parse_add)
        },
        "Adds a member: RAFT.NODE ADD <id> <raft-host:port>.",
        "O(1)",
    ),
    raft_doc(
        CommandSpec {
            args: "id:integer",
            ..CommandSpec::new("raft.node|remove", 3, ADMIN, &[], parse_remove)
        },
        "Removes a member: RAFT.NODE REMOVE <id>.",
        "O(1)",
    ),
    raft_doc(
        CommandSpec {
            args: "old-id:integer new-id:integer",
            ..CommandSpec::new("raft.node|replace", 4, ADMIN, &[], parse_replace)
        },
        "Swaps voter <old-id> for member <new-id> in one joint-consensus change.",
        "O(1)",
    ),
];

pub(crate) static NODE: CommandSpec = CommandSpec {
    subcommands: &NODE_SUBCOMMANDS,
    ..raft_doc(
        CommandSpec::new("RAFT.NODE", -3, ADMIN, &[], parse_container),
        "A container for membership commands (ADD, REMOVE, REPLACE).",
        "Depends on subcommand.",
    )
};

fn parse_transfer(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    match &argv[1..] {
        [] => raft(RaftCmd::TransferLeader(None)),
        [id] => raft(RaftCmd::TransferLeader(Some(node_id(id)?))),
        _ => Err(syntax()),
    }
}

pub(crate) static TRANSFER_LEADER: CommandSpec = raft_doc(
    CommandSpec {
        args: "id:integer?",
        ..CommandSpec::new("RAFT.TRANSFER-LEADER", -1, ADMIN, &[], parse_transfer)
    },
    "Moves Raft leadership to another voter.",
    "O(1)",
);

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&SNAPSHOT, &NODES, &NODE, &TRANSFER_LEADER];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::*;

    #[test]
    fn admin_commands() {
        assert_eq!(p("raft.snapshot"), Command::Raft(RaftCmd::Snapshot));
        assert_eq!(p("RAFT.NODES"), Command::Raft(RaftCmd::Nodes));
        assert_eq!(
            p("raft.node add 4 127.0.0.1:7000"),
            Command::Raft(RaftCmd::NodeAdd {
                id: 4,
                addr: "127.0.0.1:7000".into()
            })
        );
        assert_eq!(
            p("RAFT.NODE remove 2"),
            Command::Raft(RaftCmd::NodeRemove { id: 2 })
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER"),
            Command::Raft(RaftCmd::TransferLeader(None))
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER 3"),
            Command::Raft(RaftCmd::TransferLeader(Some(3)))
        );
        assert_eq!(
            p("RAFT.NODE REPLACE 1 4"),
            Command::Raft(RaftCmd::NodeReplace { old: 1, new: 4 })
        );
        assert_eq!(p("shutdown nosave"), Command::Shutdown);
        assert_eq!(p("SHUTDOWN").kind(), Kind::Admin);
        let err = |s: &str| match Command::parse(&argv(s)) {
            Err(Reply::Error(e)) => e.to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            err("RAFT.NODE ADD 0 127.0.0.1:1"),
            "ERR invalid node id: expected a positive integer"
        );
        assert_eq!(
            err("RAFT.NODE ADD 4 nowhere"),
            "ERR invalid address: expected host:port"
        );
        assert_eq!(
            err("RAFT.NODE ADD 4 h:99999"),
            "ERR invalid address: expected host:port"
        );
        assert_eq!(
            err("RAFT.NODE"),
            "ERR wrong number of arguments for 'raft.node' command"
        );
        assert!(err("RAFT.NODE JUMP 1").starts_with("ERR unknown subcommand 'JUMP'"));
        assert_eq!(err("RAFT.TRANSFER-LEADER 1 2"), "ERR syntax error");
        assert_eq!(err("SHUTDOWN LATER"), "ERR syntax error");
        assert_eq!(
            err("RAFT.SNAPSHOT now"),
            "ERR wrong number of arguments for 'raft.snapshot' command"
        );
    }
}
