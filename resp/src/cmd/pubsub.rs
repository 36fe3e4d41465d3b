//! Pub/Sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH, the shard forms
//! SSUBSCRIBE SUNSUBSCRIBE SPUBLISH, the PUBSUB container (CHANNELS NUMSUB NUMPAT
//! SHARDCHANNELS SHARDNUMSUB HELP), and RESET (which also leaves subscribe mode), with Redis
//! 7.0's table data and argument errors. None is
//! replicated: the session answers them (`src/pubsub.rs` keeps the subscriptions and
//! delivers messages, cluster-wide over the peer transport).

use bytes::Bytes;

use super::spec::{CommandSpec, KeySpec};
use super::util::parse_container;
use crate::{Command, Reply};

/// What a Pub/Sub command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubOp {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    SSubscribe,
    SUnsubscribe,
    /// PUBLISH / SPUBLISH channel message (`shard`: SPUBLISH).
    Publish {
        shard: bool,
    },
    /// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
    Channels {
        shard: bool,
    },
    /// PUBSUB NUMSUB / SHARDNUMSUB [channel ...].
    NumSub {
        shard: bool,
    },
    NumPat,
    Help,
    /// RESET (a connection command, kept here because it also leaves subscribe mode).
    Reset,
}

/// A parsed Pub/Sub command: its entry, its arguments after the name (after the
/// subcommand name for PUBSUB), and what it does.
pub type PubSubCmd = super::coll::Typed<PubSubOp>;

fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let op = match spec.name {
        "SUBSCRIBE" => PubSubOp::Subscribe,
        "UNSUBSCRIBE" => PubSubOp::Unsubscribe,
        "PSUBSCRIBE" => PubSubOp::PSubscribe,
        "PUNSUBSCRIBE" => PubSubOp::PUnsubscribe,
        "SSUBSCRIBE" => PubSubOp::SSubscribe,
        "SUNSUBSCRIBE" => PubSubOp::SUnsubscribe,
        "PUBLISH" => PubSubOp::Publish { shard: false },
        "RESET" => PubSubOp::Reset,
        _ => PubSubOp::Publish { shard: true },
    };
    Ok(Command::PubSub(PubSubCmd {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

fn parse_sub(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let (op, max) = match spec.name {
        "pubsub|channels" => (PubSubOp::Channels { shard: false }, 3),
        "pubsub|shardchannels" => (PubSubOp::Channels { shard: true }, 3),
        "pubsub|numsub" => (PubSubOp::NumSub { shard: false }, usize::MAX),
        "pubsub|shardnumsub" => (PubSubOp::NumSub { shard: true }, usize::MAX),
        "pubsub|numpat" => (PubSubOp::NumPat, 2),
        _ => (PubSubOp::Help, 2),
    };
    if argv.len() > max {
        return Err(Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&argv[1])
        )));
    }
    Ok(Command::PubSub(PubSubCmd {
        spec,
        args: argv[2..].to_vec(),
        op,
    }))
}

/// The key spec of the shard commands (Redis's, flagged `not_key`: a shard channel hashes to
/// a slot like a key, but is no key, so it never routes a command to a group).
const SHARD_ALL: &[KeySpec] = &[KeySpec::range(1, -1, 1, &["not_key"])];
const SHARD_ONE: &[KeySpec] = &[KeySpec::range(1, 0, 1, &["not_key"])];
const SUB_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];

macro_rules! entry {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $summary:literal, $since:literal, $complexity:literal, $args:literal) => {
        CommandSpec {
            summary: $summary,
            since: $since,
            group: "pubsub",
            complexity: $complexity,
            args: $args,
            ..CommandSpec::new($name, $arity, $flags, $keys, parse)
        }
    };
}

pub(crate) static SUBSCRIBE: CommandSpec = entry!(
    "SUBSCRIBE",
    -2,
    SUB_FLAGS,
    &[],
    "Listen for messages published to the given channels",
    "2.0.0",
    "O(N) where N is the number of channels to subscribe to.",
    "channel:string*"
);
pub(crate) static UNSUBSCRIBE: CommandSpec = entry!(
    "UNSUBSCRIBE",
    -1,
    SUB_FLAGS,
    &[],
    "Stop listening for messages posted to the given channels",
    "2.0.0",
    "O(N) where N is the number of clients already subscribed to a channel.",
    "channel:string?*"
);
pub(crate) static PSUBSCRIBE: CommandSpec = entry!(
    "PSUBSCRIBE",
    -2,
    SUB_FLAGS,
    &[],
    "Listen for messages published to channels matching the given patterns",
    "2.0.0",
    "O(N) where N is the number of patterns the client is already subscribed to.",
    "pattern:pattern*"
);
pub(crate) static PUNSUBSCRIBE: CommandSpec = entry!("PUNSUBSCRIBE", -1, SUB_FLAGS, &[], "Stop listening for messages posted to channels matching the given patterns", "2.0.0", "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).", "pattern:pattern?*");
pub(crate) static SSUBSCRIBE: CommandSpec = entry!(
    "SSUBSCRIBE",
    -2,
    SUB_FLAGS,
    SHARD_ALL,
    "Listen for messages published to the given shard channels",
    "7.0.0",
    "O(N) where N is the number of shard channels to subscribe to.",
    "shardchannel:string*"
);
pub(crate) static SUNSUBSCRIBE: CommandSpec = entry!(
    "SUNSUBSCRIBE",
    -1,
    SUB_FLAGS,
    SHARD_ALL,
    "Stop listening for messages posted to the given shard channels",
    "7.0.0",
    "O(N) where N is the number of clients already subscribed to a shard channel.",
    "shardchannel:string?*"
);
pub(crate) static PUBLISH: CommandSpec = CommandSpec {
    acl_categories: &["fast"],
    ..entry!("PUBLISH", 3, &["pubsub", "loading", "stale", "fast"], &[], "Post a message to a channel", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).", "channel:string message:string")
};
pub(crate) static SPUBLISH: CommandSpec = CommandSpec {
    acl_categories: &["fast"],
    ..entry!(
        "SPUBLISH",
        3,
        &["pubsub", "loading", "stale", "fast"],
        SHARD_ONE,
        "Post a message to a shard channel",
        "7.0.0",
        "O(N) where N is the number of clients subscribed to the receiving shard channel.",
        "shardchannel:string message:string"
    )
};

macro_rules! sub {
    ($name:literal, $arity:expr, $flags:expr, $summary:literal, $since:literal, $complexity:literal, $args:literal) => {
        CommandSpec {
            summary: $summary,
            since: $since,
            group: "pubsub",
            complexity: $complexity,
            args: $args,
            ..CommandSpec::new($name, $arity, $flags, &[], parse_sub)
        }
    };
}

const INFO_FLAGS: &[&str] = &["pubsub", "loading", "stale"];

static PUBSUB_SUBCOMMANDS: [CommandSpec; 6] = [
    sub!("pubsub|channels", -2, INFO_FLAGS, "List active channels", "2.8.0", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)", "pattern:pattern?"),
    sub!("pubsub|help", 2, &["loading", "stale"], "Show helpful text about the different subcommands", "6.2.0", "O(1)", ""),
    sub!("pubsub|numpat", 2, INFO_FLAGS, "Get the count of unique patterns pattern subscriptions", "2.8.0", "O(1)", ""),
    sub!("pubsub|numsub", -2, INFO_FLAGS, "Get the count of subscribers for channels", "2.8.0", "O(N) for the NUMSUB subcommand, where N is the number of requested channels", "channel:string?*"),
    sub!("pubsub|shardchannels", -2, INFO_FLAGS, "List active shard channels", "7.0.0", "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).", "pattern:pattern?"),
    sub!("pubsub|shardnumsub", -2, INFO_FLAGS, "Get the count of subscribers for shard channels", "7.0.0", "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels", "shardchannel:string?*"),
];

pub(crate) static PUBSUB: CommandSpec = CommandSpec {
    summary: "A container for Pub/Sub commands",
    since: "2.8.0",
    group: "pubsub",
    complexity: "Depends on subcommand.",
    subcommands: &PUBSUB_SUBCOMMANDS,
    ..CommandSpec::new("PUBSUB", -2, &[], &[], parse_container)
};

pub(crate) static RESET: CommandSpec = CommandSpec {
    summary: "Reset the connection",
    since: "6.2.0",
    group: "connection",
    complexity: "O(1)",
    ..CommandSpec::new(
        "RESET",
        1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        &[],
        parse,
    )
};

/// PUBSUB HELP, as Redis 7.0 words it.
pub fn help() -> Reply {
    let lines = [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(lines.iter().map(|l| Reply::Status(l.to_string())).collect())
}

/// The registration table of the family.
pub(crate) static COMMANDS: &[&CommandSpec] = &[
    &SUBSCRIBE,
    &UNSUBSCRIBE,
    &PSUBSCRIBE,
    &PUNSUBSCRIBE,
    &SSUBSCRIBE,
    &SUNSUBSCRIBE,
    &PUBLISH,
    &SPUBLISH,
    &PUBSUB,
    &RESET,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn parse_words(words: &str) -> Result<Command, Reply> {
        let argv: Vec<Bytes> = words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        Command::parse(&argv)
    }

    fn op(words: &str) -> (PubSubOp, Vec<Bytes>) {
        match parse_words(words) {
            Ok(Command::PubSub(c)) => (c.op, c.args),
            other => panic!("{words}: {other:?}"),
        }
    }

    fn err(words: &str) -> String {
        match parse_words(words) {
            Err(Reply::Error(e)) => e,
            other => panic!("{words}: {other:?}"),
        }
    }

    #[test]
    fn subscribe_family_parses_its_channels() {
        let (o, a) = op("subscribe a b");
        assert_eq!(o, PubSubOp::Subscribe);
        assert_eq!(a, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(op("UNSUBSCRIBE").0, PubSubOp::Unsubscribe);
        assert_eq!(op("psubscribe n*").0, PubSubOp::PSubscribe);
        assert_eq!(op("punsubscribe").0, PubSubOp::PUnsubscribe);
        assert_eq!(op("ssubscribe x").0, PubSubOp::SSubscribe);
        assert_eq!(op("sunsubscribe").0, PubSubOp::SUnsubscribe);
        assert_eq!(op("reset").0, PubSubOp::Reset);
        assert_eq!(
            err("reset x"),
            "ERR wrong number of arguments for 'reset' command"
        );
        assert_eq!(
            err("subscribe"),
            "ERR wrong number of arguments for 'subscribe' command"
        );
        assert_eq!(
            err("psubscribe"),
            "ERR wrong number of arguments for 'psubscribe' command"
        );
    }

    #[test]
    fn publish_takes_channel_and_message() {
        let (o, a) = op("publish ch hi");
        assert_eq!(o, PubSubOp::Publish { shard: false });
        assert_eq!(a, vec![Bytes::from("ch"), Bytes::from("hi")]);
        assert_eq!(op("spublish ch hi").0, PubSubOp::Publish { shard: true });
        assert_eq!(
            err("publish ch"),
            "ERR wrong number of arguments for 'publish' command"
        );
        assert_eq!(
            err("spublish a b c"),
            "ERR wrong number of arguments for 'spublish' command"
        );
    }

    #[test]
    fn pubsub_subcommands_and_their_errors() {
        assert_eq!(op("pubsub channels").0, PubSubOp::Channels { shard: false });
        assert_eq!(op("pubsub channels a*").1, vec![Bytes::from("a*")]);
        assert_eq!(
            op("pubsub shardchannels").0,
            PubSubOp::Channels { shard: true }
        );
        assert_eq!(op("pubsub numsub a b").1.len(), 2);
        assert_eq!(op("pubsub shardnumsub").0, PubSubOp::NumSub { shard: true });
        assert_eq!(op("pubsub numpat").0, PubSubOp::NumPat);
        assert_eq!(op("pubsub help").0, PubSubOp::Help);
        assert_eq!(
            err("pubsub channels a b"),
            "ERR unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP."
        );
        assert_eq!(
            err("pubsub numpat x"),
            "ERR wrong number of arguments for 'pubsub|numpat' command"
        );
        assert_eq!(
            err("pubsub foo"),
            "ERR unknown subcommand 'foo'. Try PUBSUB HELP."
        );
    }

    #[test]
    fn pubsub_commands_run_in_the_session_and_channels_are_no_keys() {
        let c = parse_words("spublish {t}x m").unwrap();
        assert_eq!(c.kind(), Kind::Local);
        assert!(c.keys().is_empty());
        assert_eq!(c.spec().key_specs[0].flags, &["not_key"]);
        assert!(parse_words("publish a b").unwrap().keys().is_empty());
        assert_eq!(parse_words("subscribe a").unwrap().name(), "SUBSCRIBE");
        assert!(matches!(help(), Reply::Array(l) if l.len() == 14));
    }
}
