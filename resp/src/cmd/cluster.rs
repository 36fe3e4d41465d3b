//! The Redis Cluster family: CLUSTER with its introspection subcommands (SLOTS, SHARDS,
//! NODES, INFO, MYID, MYSHARDID, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, LINKS, HELP), the
//! per-connection flags READONLY / READWRITE / ASKING, and the internal replicated
//! `RAFTKV.NODEADDR <id> <addr>` that records a node's client address in the cluster state.
//! Parsers beside their table entries (Redis 7's data and error texts), then the family's
//! registration table and its unit tests.

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{int, parse_container};
use crate::{Command, Reply};

/// CLUSTER subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCmd {
    Slots,
    Shards,
    Nodes,
    Info,
    MyId,
    MyShardId,
    KeySlot(Bytes),
    CountKeysInSlot(u16),
    GetKeysInSlot { slot: u16, count: u64 },
    Links,
    Help,
}

/// Most keys one CLUSTER GETKEYSINSLOT returns (Redis 3.0's bound; a larger count is
/// refused, so one reply stays bounded).
pub const MAX_GETKEYSINSLOT: i64 = 1 << 20;

fn cluster(c: ClusterCmd) -> Result<Command, Reply> {
    Ok(Command::Cluster(c))
}

/// A slot argument: an integer (else Redis's integer error), then in range (else `bad`).
fn slot_arg(b: &[u8], bad: &str) -> Result<u16, Reply> {
    let n = int(b)?;
    u16::try_from(n)
        .ok()
        .filter(|&s| s < SLOTS)
        .ok_or_else(|| Reply::err(bad))
}

/// Number of hash slots.
const SLOTS: u16 = 16384;

fn parse_simple(spec: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    cluster(match spec.name {
        "cluster|slots" => ClusterCmd::Slots,
        "cluster|shards" => ClusterCmd::Shards,
        "cluster|nodes" => ClusterCmd::Nodes,
        "cluster|info" => ClusterCmd::Info,
        "cluster|myid" => ClusterCmd::MyId,
        "cluster|myshardid" => ClusterCmd::MyShardId,
        "cluster|links" => ClusterCmd::Links,
        _ => ClusterCmd::Help,
    })
}

fn parse_keyslot(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    cluster(ClusterCmd::KeySlot(argv[2].clone()))
}

fn parse_countkeys(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    cluster(ClusterCmd::CountKeysInSlot(slot_arg(
        &argv[2],
        "ERR Invalid slot",
    )?))
}

fn parse_getkeys(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    const BAD: &str = "ERR Invalid slot or number of keys";
    let slot = int(&argv[2])?;
    let count = int(&argv[3])?;
    if !(0..i64::from(SLOTS)).contains(&slot) || !(0..=MAX_GETKEYSINSLOT).contains(&count) {
        return Err(Reply::err(BAD));
    }
    cluster(ClusterCmd::GetKeysInSlot {
        slot: slot as u16,
        count: count as u64,
    })
}

/// A CLUSTER subcommand entry with Redis 7's docs.
const fn sub(
    name: &'static str,
    arity: i32,
    summary: &'static str,
    since: &'static str,
    parse: super::spec::ParseFn,
) -> CommandSpec {
    CommandSpec {
        summary,
        since,
        group: "cluster",
        complexity: "O(N) where N is the total number of Cluster nodes",
        tips: &["nondeterministic_output"],
        ..CommandSpec::new(name, arity, &["loading", "stale"], &[], parse)
    }
}

static CLUSTER_SUBCOMMANDS: [CommandSpec; 11] = [
    sub(
        "cluster|slots",
        2,
        "Returns the mapping of cluster slots to nodes.",
        "3.0.0",
        parse_simple,
    ),
    sub(
        "cluster|shards",
        2,
        "Returns the mapping of cluster slots to shards.",
        "7.0.0",
        parse_simple,
    ),
    sub(
        "cluster|nodes",
        2,
        "Returns the cluster configuration for a node.",
        "3.0.0",
        parse_simple,
    ),
    sub(
        "cluster|info",
        2,
        "Returns information about the state of a node.",
        "3.0.0",
        parse_simple,
    ),
    sub(
        "cluster|myid",
        2,
        "Returns the ID of a node.",
        "3.0.0",
        parse_simple,
    ),
    sub(
        "cluster|myshardid",
        2,
        "Returns the shard ID of a node.",
        "7.2.0",
        parse_simple,
    ),
    CommandSpec {
        complexity: "O(N) where N is the number of bytes in the key",
        args: "key:string",
        tips: &[],
        ..sub(
            "cluster|keyslot",
            3,
            "Returns the hash slot for a key.",
            "3.0.0",
            parse_keyslot,
        )
    },
    CommandSpec {
        complexity: "O(N) where N is the number of keys in the slot",
        args: "slot:integer",
        tips: &[],
        ..sub(
            "cluster|countkeysinslot",
            3,
            "Returns the number of keys in a hash slot.",
            "3.0.0",
            parse_countkeys,
        )
    },
    CommandSpec {
        complexity: "O(N) where N is the number of requested keys",
        args: "slot:integer count:integer",
        ..sub(
            "cluster|getkeysinslot",
            4,
            "Returns the key names in a hash slot.",
            "3.0.0",
            parse_getkeys,
        )
    },
    sub(
        "cluster|links",
        2,
        "Returns a list of all TCP links to and from peer nodes.",
        "7.0.0",
        parse_simple,
    ),
    CommandSpec {
        complexity: "O(1)",
        tips: &[],
        ..sub(
            "cluster|help",
            2,
            "Returns helpful text about the different subcommands.",
            "5.0.0",
            parse_simple,
        )
    },
];

pub(crate) static CLUSTER: CommandSpec = CommandSpec {
    summary: "A container for Redis Cluster commands.",
    since: "3.0.0",
    group: "cluster",
    complexity: "Depends on subcommand.",
    subcommands: &CLUSTER_SUBCOMMANDS,
    ..CommandSpec::new("CLUSTER", -2, &[], &[], parse_container)
};

fn parse_flag(spec: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    Ok(match spec.name {
        "READONLY" => Command::ReadOnly,
        "READWRITE" => Command::ReadWrite,
        _ => Command::Asking,
    })
}

/// A connection-flag command with Redis 7's docs.
const fn flag(name: &'static str, summary: &'static str) -> CommandSpec {
    CommandSpec {
        summary,
        since: "3.0.0",
        group: "cluster",
        complexity: "O(1)",
        acl_categories: &["connection"],
        ..CommandSpec::new(name, 1, &["fast", "loading", "stale"], &[], parse_flag)
    }
}

pub(crate) static READONLY: CommandSpec = flag(
    "READONLY",
    "Enables read-only queries for a connection to a Redis Cluster replica node.",
);
pub(crate) static READWRITE: CommandSpec = flag(
    "READWRITE",
    "Enables read-write queries for a connection to a Redis Cluster replica node.",
);
pub(crate) static ASKING: CommandSpec = flag(
    "ASKING",
    "Signals that a cluster client is following an -ASK redirect.",
);

fn parse_nodeaddr(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let id = int(&argv[1])
        .ok()
        .and_then(|i| u64::try_from(i).ok())
        .filter(|&i| i > 0)
        .ok_or_else(|| Reply::err("ERR invalid node id: expected a positive integer"))?;
    let addr = std::str::from_utf8(&argv[2])
        .ok()
        .filter(|s| {
            s.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        })
        .ok_or_else(|| Reply::err("ERR invalid address: expected host:port"))?;
    Ok(Command::NodeAddr {
        id,
        addr: addr.to_string(),
    })
}

/// `RAFTKV.NODEADDR <id> <host:port>`: records node `id`'s client address (replicated only).
pub(crate) static RAFTKV_NODEADDR: CommandSpec = CommandSpec {
    summary: "Internal: records a node's client address in the cluster state (replicated only).",
    group: "cluster",
    ..CommandSpec::new("RAFTKV.NODEADDR", 3, &["write"], &[], parse_nodeaddr)
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&CLUSTER, &READONLY, &READWRITE, &ASKING];

#[cfg(test)]
mod tests {
    use super::super::test_util::{argv, err, p, NOT_INT};
    use super::*;

    #[test]
    fn cluster_subcommands_parse_with_redis_errors() {
        assert_eq!(p("CLUSTER slots"), Command::Cluster(ClusterCmd::Slots));
        assert_eq!(p("cluster NODES"), Command::Cluster(ClusterCmd::Nodes));
        assert_eq!(
            p("CLUSTER MYSHARDID"),
            Command::Cluster(ClusterCmd::MyShardId)
        );
        assert_eq!(
            p("CLUSTER KEYSLOT foo"),
            Command::Cluster(ClusterCmd::KeySlot(Bytes::from("foo")))
        );
        assert_eq!(
            p("CLUSTER COUNTKEYSINSLOT 16383"),
            Command::Cluster(ClusterCmd::CountKeysInSlot(16383))
        );
        assert_eq!(err("CLUSTER COUNTKEYSINSLOT 16384"), "ERR Invalid slot");
        assert_eq!(err("CLUSTER COUNTKEYSINSLOT -1"), "ERR Invalid slot");
        assert_eq!(err("CLUSTER COUNTKEYSINSLOT x"), NOT_INT);
        assert_eq!(
            p("CLUSTER GETKEYSINSLOT 7 10"),
            Command::Cluster(ClusterCmd::GetKeysInSlot { slot: 7, count: 10 })
        );
        assert_eq!(
            err("CLUSTER GETKEYSINSLOT 7 -1"),
            "ERR Invalid slot or number of keys"
        );
        assert_eq!(
            err("CLUSTER GETKEYSINSLOT 7 99999999"),
            "ERR Invalid slot or number of keys"
        );
        assert_eq!(err("CLUSTER GETKEYSINSLOT 7 y"), NOT_INT);
        assert_eq!(
            err("CLUSTER SLOTS extra"),
            "ERR wrong number of arguments for 'cluster|slots' command"
        );
        assert_eq!(
            err("CLUSTER BOGUS"),
            "ERR unknown subcommand 'BOGUS'. Try CLUSTER HELP."
        );
        assert_eq!(p("CLUSTER SLOTS").kind(), crate::Kind::Local);
    }

    #[test]
    fn connection_flags_and_the_internal_record() {
        assert_eq!(p("READONLY"), Command::ReadOnly);
        assert_eq!(p("readwrite"), Command::ReadWrite);
        assert_eq!(p("ASKING"), Command::Asking);
        assert_eq!(p("READONLY").kind(), crate::Kind::Local);
        // Never from a client, only from the log.
        let rec = argv("RAFTKV.NODEADDR 2 127.0.0.1:6379");
        assert!(Command::parse(&rec).is_err());
        let cmd = Command::parse_replicated(&rec).expect("internal");
        assert_eq!(
            cmd,
            Command::NodeAddr {
                id: 2,
                addr: "127.0.0.1:6379".into()
            }
        );
        assert_eq!(cmd.kind(), crate::Kind::Write);
        assert!(Command::parse_replicated(&argv("RAFTKV.NODEADDR 0 a:1")).is_err());
        assert!(Command::parse_replicated(&argv("RAFTKV.NODEADDR 1 nope")).is_err());
    }
}
