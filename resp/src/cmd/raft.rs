//! raftkv's cluster administration commands, the `RAFT.*` family: snapshots, membership
//! (RAFT.NODE ADD / REMOVE / REPLACE) and leader transfer. Served by the node or forwarded
//! to its leader (`Kind::Admin`); plus the internal, replicated-only `RAFTKV.SLOTS.ADD` /
//! `RAFTKV.SLOTS.REMOVE` that change which hash slots a group serves, and the slot-range
//! syntax (`0-5460,5461`) they and the logs use. Parsers beside their table entries, then
//! the family's registration table and its unit tests.

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{int, parse_container, syntax};
use crate::{Command, RaftCmd, Reply, SlotsOp};

/// A Raft node id: a positive integer.
pub(super) fn node_id(b: &[u8]) -> Result<u64, Reply> {
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

pub(super) fn raft(c: RaftCmd) -> Result<Command, Reply> {
    Ok(Command::Raft(c))
}

pub(super) const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];

/// Docs shared by the family's entries.
pub(super) const fn raft_doc(
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

/// The optional trailing `GROUP <group>` clause of a command whose fixed arguments end
/// before `rest`.
fn group_clause(rest: &[Bytes]) -> Result<Option<u64>, Reply> {
    match rest {
        [] => Ok(None),
        [kw, g] if kw.eq_ignore_ascii_case(b"GROUP") => match int(g) {
            Ok(g) if g > 0 => Ok(Some(g as u64)),
            _ => Err(Reply::err(
                "ERR invalid group id: expected a positive integer",
            )),
        },
        _ => Err(syntax()),
    }
}

fn parse_add(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeAdd {
        id: node_id(&argv[2])?,
        addr: peer_addr(&argv[3])?,
        group: group_clause(&argv[4..])?,
    })
}

fn parse_remove(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeRemove {
        id: node_id(&argv[2])?,
        group: group_clause(&argv[3..])?,
    })
}

fn parse_replace(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    raft(RaftCmd::NodeReplace {
        old: node_id(&argv[2])?,
        new: node_id(&argv[3])?,
        group: group_clause(&argv[4..])?,
    })
}

static NODE_SUBCOMMANDS: [CommandSpec; 3] = [
    raft_doc(
        CommandSpec {
            args: "id:integer address:string group:integer?=GROUP",
            ..CommandSpec::new("raft.node|add", -4, ADMIN, &[], parse_add)
        },
        "Adds a member: RAFT.NODE ADD <id> <raft-host:port> [GROUP <group>].",
        "O(1)",
    ),
    raft_doc(
        CommandSpec {
            args: "id:integer group:integer?=GROUP",
            ..CommandSpec::new("raft.node|remove", -3, ADMIN, &[], parse_remove)
        },
        "Removes a member: RAFT.NODE REMOVE <id> [GROUP <group>].",
        "O(1)",
    ),
    raft_doc(
        CommandSpec {
            args: "old-id:integer new-id:integer group:integer?=GROUP",
            ..CommandSpec::new("raft.node|replace", -4, ADMIN, &[], parse_replace)
        },
        "Swaps voter <old-id> for member <new-id> in one joint-consensus change (of every group, or of GROUP <group>).",
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
    let (to, group) = match &argv[1..] {
        [] => (None, None),
        [id, rest @ ..] => (Some(node_id(id)?), group_clause(rest)?),
    };
    raft(RaftCmd::TransferLeader { to, group })
}

pub(crate) static TRANSFER_LEADER: CommandSpec = raft_doc(
    CommandSpec {
        args: "id:integer? group:integer?=GROUP",
        ..CommandSpec::new("RAFT.TRANSFER-LEADER", -1, ADMIN, &[], parse_transfer)
    },
    "Moves Raft leadership (of every group, or of one data group) to another voter; the choice sticks.",
    "O(1)",
);

/// Redis Cluster's number of hash slots.
const SLOTS: u32 = 16384;

/// Parses hash slot ranges written as `0-5460,5461` (comma-separated slots or inclusive
/// `lo-hi` ranges, `0 <= lo <= hi <= 16383`), the form slot sets take in commands and logs.
/// Empty text is no range. Ranges may overlap or come in any order.
pub fn parse_slot_ranges(text: &[u8]) -> Result<Vec<(u16, u16)>, String> {
    let bad = |piece: &[u8]| {
        format!(
            "ERR invalid slot range '{}': expected <slot> or <lo>-<hi> within 0-{}",
            super::util::text(piece, 64),
            SLOTS - 1
        )
    };
    let slot = |b: &[u8]| -> Option<u16> {
        let s = std::str::from_utf8(b).ok()?;
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>()
            .ok()
            .filter(|&n| n < SLOTS)
            .map(|n| n as u16)
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(|&c| c == b',')
        .map(|piece| {
            let range = match piece.iter().position(|&c| c == b'-') {
                None => slot(piece).map(|s| (s, s)),
                Some(dash) => slot(&piece[..dash]).zip(slot(&piece[dash + 1..])),
            };
            range.filter(|(lo, hi)| lo <= hi).ok_or_else(|| bad(piece))
        })
        .collect()
}

fn parse_slots(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let op = if spec.name == RAFTKV_SLOTS_ADD.name {
        SlotsOp::Add
    } else if spec.name == RAFTKV_SLOTS_DROP.name {
        SlotsOp::Drop
    } else if spec.name == RAFTKV_SLOTS_SEAL.name {
        SlotsOp::Seal
    } else {
        SlotsOp::Remove
    };
    let num = |n: &[u8]| {
        std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))
    };
    let (fence, rest) = match argv {
        [_, f, n, rest @ ..] if f.eq_ignore_ascii_case(b"FENCE") => (num(n)?, rest),
        [_, rest @ ..] => (0, rest),
        [] => (0, &[][..]),
    };
    let (peer, rest) = match rest {
        [w, g, rest @ ..] if w.eq_ignore_ascii_case(b"FROM") || w.eq_ignore_ascii_case(b"TO") => {
            (num(g)?, rest)
        }
        _ => (0, rest),
    };
    if rest.is_empty() {
        return Err(Reply::err(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name.to_ascii_lowercase()
        )));
    }
    let mut ranges = Vec::new();
    for a in rest {
        ranges.extend(parse_slot_ranges(a).map_err(Reply::err)?);
    }
    Ok(Command::Slots {
        op,
        ranges,
        fence,
        peer,
    })
}

fn parse_ingest(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let bad = || Reply::err("ERR syntax error");
    let (fence, rest) = match argv {
        [_, f, n, rest @ ..] if f.eq_ignore_ascii_case(b"FENCE") => (
            std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(bad)?,
            rest,
        ),
        _ => return Err(bad()),
    };
    if !rest.len().is_multiple_of(3) {
        return Err(bad());
    }
    let records = rest
        .chunks_exact(3)
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    Ok(Command::SlotsIngest { fence, records })
}

/// `RAFTKV.SLOTS.DROP FENCE <n> TO <g> ranges...`: after migration `n`'s cut-over, the
/// source's replicas on nodes not hosting target `g` delete the slots' records
/// (replicated only).
pub(crate) static RAFTKV_SLOTS_DROP: CommandSpec = CommandSpec {
    summary: "Internal: delete moved slots' records where their new group is not hosted (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.SLOTS.DROP", -2, &["write"], &[], parse_slots)
};

/// `RAFTKV.SLOTS.SEAL FENCE <n> ranges...`: migration `n`'s target takes no more copied
/// records of it, before its cut-over (replicated only).
pub(crate) static RAFTKV_SLOTS_SEAL: CommandSpec = CommandSpec {
    summary:
        "Internal: a slot migration's target takes no more copied records of it (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.SLOTS.SEAL", -2, &["write"], &[], parse_slots)
};

/// `RAFTKV.SLOTS.INGEST FENCE <n> (<cf> <key> <value>)...`: copied records of migration
/// `n`'s slots (replicated only).
pub(crate) static RAFTKV_SLOTS_INGEST: CommandSpec = CommandSpec {
    summary: "Internal: records copied into the group by a slot migration (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.SLOTS.INGEST", -3, &["write"], &[], parse_ingest)
};

/// `RAFTKV.SLOTS.ADD [FENCE <n>] ranges...`: the applying group serves these hash slots from now on
/// (replicated only; the migration work proposes it).
pub(crate) static RAFTKV_SLOTS_ADD: CommandSpec = CommandSpec {
    summary: "Internal: the group starts serving these hash slots (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.SLOTS.ADD", -2, &["write"], &[], parse_slots)
};

/// `RAFTKV.SLOTS.REMOVE [FENCE <n>] ranges...`: the applying group stops serving these hash slots
/// (their data stays until a later clean-up; replicated only).
pub(crate) static RAFTKV_SLOTS_REMOVE: CommandSpec = CommandSpec {
    summary: "Internal: the group stops serving these hash slots (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.SLOTS.REMOVE", -2, &["write"], &[], parse_slots)
};

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
                addr: "127.0.0.1:7000".into(),
                group: None,
            })
        );
        assert_eq!(
            p("raft.node add 4 127.0.0.1:7000 group 9"),
            Command::Raft(RaftCmd::NodeAdd {
                id: 4,
                addr: "127.0.0.1:7000".into(),
                group: Some(9),
            })
        );
        assert_eq!(
            p("RAFT.NODE remove 2"),
            Command::Raft(RaftCmd::NodeRemove { id: 2, group: None })
        );
        assert_eq!(
            p("RAFT.NODE REMOVE 2 GROUP 4"),
            Command::Raft(RaftCmd::NodeRemove {
                id: 2,
                group: Some(4)
            })
        );
        assert_eq!(
            p("RAFT.NODE REPLACE 1 4 GROUP 5"),
            Command::Raft(RaftCmd::NodeReplace {
                old: 1,
                new: 4,
                group: Some(5)
            })
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER"),
            Command::Raft(RaftCmd::TransferLeader {
                to: None,
                group: None
            })
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER 3"),
            Command::Raft(RaftCmd::TransferLeader {
                to: Some(3),
                group: None
            })
        );
        assert_eq!(
            p("RAFT.TRANSFER-LEADER 3 group 2"),
            Command::Raft(RaftCmd::TransferLeader {
                to: Some(3),
                group: Some(2)
            })
        );
        assert_eq!(
            p("RAFT.NODE REPLACE 1 4"),
            Command::Raft(RaftCmd::NodeReplace {
                old: 1,
                new: 4,
                group: None
            })
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
        assert_eq!(err("RAFT.NODE REMOVE 2 GROUP"), "ERR syntax error");
        assert_eq!(err("RAFT.NODE REMOVE 2 4"), "ERR syntax error");
        assert_eq!(err("RAFT.NODE ADD 2 h:1 GROUP 4 5"), "ERR syntax error");
        assert_eq!(
            err("RAFT.NODE REPLACE 1 2 GROUP x"),
            "ERR invalid group id: expected a positive integer"
        );
        assert_eq!(
            err("RAFT.TRANSFER-LEADER 1 GROUP 0"),
            "ERR invalid group id: expected a positive integer"
        );
        assert_eq!(err("SHUTDOWN LATER"), "ERR syntax error");
        assert_eq!(
            err("RAFT.SNAPSHOT now"),
            "ERR wrong number of arguments for 'raft.snapshot' command"
        );
    }

    #[test]
    fn slot_ranges_parse_strictly() {
        use super::parse_slot_ranges as p;
        assert_eq!(p(b""), Ok(vec![]));
        assert_eq!(p(b"0-5460,5461"), Ok(vec![(0, 5460), (5461, 5461)]));
        assert_eq!(
            p(b"16383,7-7,3-9"),
            Ok(vec![(16383, 16383), (7, 7), (3, 9)])
        );
        for bad in [
            &b"16384"[..],
            b"5-4",
            b"-3",
            b"3-",
            b"1,,2",
            b"a",
            b" 1",
            b"1-2-3",
            b"+1",
            b"000001",
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.starts_with("ERR invalid slot range"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn slot_commands_are_internal_writes() {
        let add = argv("RAFTKV.SLOTS.ADD 0-10,12 20-30");
        assert!(Command::parse(&add).is_err(), "never from a client");
        let c = Command::parse_replicated(&add).unwrap();
        assert_eq!(
            c,
            Command::Slots {
                op: SlotsOp::Add,
                ranges: vec![(0, 10), (12, 12), (20, 30)],
                fence: 0,
                peer: 0,
            }
        );
        assert_eq!(c.kind(), Kind::Write);
        assert!(c.keys().is_empty());
        assert_eq!(c.name(), "RAFTKV.SLOTS.ADD");
        let rm = Command::parse_replicated(&argv("raftkv.slots.remove 5")).unwrap();
        assert_eq!(
            rm,
            Command::Slots {
                op: SlotsOp::Remove,
                ranges: vec![(5, 5)],
                fence: 0,
                peer: 0,
            }
        );
        assert_eq!(rm.name(), "RAFTKV.SLOTS.REMOVE");
        let from = Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD FENCE 7 FROM 3 1-2"));
        assert!(matches!(
            from,
            Ok(Command::Slots {
                peer: 3,
                fence: 7,
                ..
            })
        ));
        let drop = Command::parse_replicated(&argv("RAFTKV.SLOTS.DROP FENCE 7 TO 4 1-2"));
        assert!(matches!(
            drop,
            Ok(Command::Slots {
                op: SlotsOp::Drop,
                peer: 4,
                ..
            })
        ));
        let seal = Command::parse_replicated(&argv("RAFTKV.SLOTS.SEAL FENCE 7 1-2"));
        assert!(matches!(
            seal,
            Ok(Command::Slots {
                op: SlotsOp::Seal,
                fence: 7,
                ..
            })
        ));
        let ingest = Command::parse_replicated(&argv("RAFTKV.SLOTS.INGEST FENCE 7 data k v"));
        assert!(
            matches!(ingest, Ok(Command::SlotsIngest { fence: 7, ref records }) if records.len() == 1)
        );
        assert!(Command::parse_replicated(&argv("RAFTKV.SLOTS.INGEST FENCE 7 data k")).is_err());
        let fenced = Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD FENCE 7 1-2")).unwrap();
        assert_eq!(
            fenced,
            Command::Slots {
                op: SlotsOp::Add,
                ranges: vec![(1, 2)],
                fence: 7,
                peer: 0,
            }
        );
        assert!(Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD FENCE 7")).is_err());
        assert!(Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD FENCE x 1")).is_err());
        assert_eq!(
            Command::slots_argv(SlotsOp::Remove, "1-2"),
            argv("RAFTKV.SLOTS.REMOVE 1-2")
        );
        assert!(Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD")).is_err());
        let e = Command::parse_replicated(&argv("RAFTKV.SLOTS.ADD 1 99999"));
        assert!(
            matches!(e, Err(Reply::Error(t)) if t.starts_with("ERR invalid slot range '99999'"))
        );
    }
}
