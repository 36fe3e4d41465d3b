//! Diagnostics: SLOWLOG (GET / LEN / RESET / HELP) and LATENCY (LATEST / HISTORY / RESET /
//! HELP), with Redis 7's table entries. Both are node-local.

use bytes::Bytes;

use super::spec::CommandSpec;
use super::util::{int, parse_container};
use crate::{Command, LatencyCmd, Reply, SlowlogCmd};

fn slowlog(c: SlowlogCmd) -> Result<Command, Reply> {
    Ok(Command::Slowlog(c))
}

fn latency(c: LatencyCmd) -> Result<Command, Reply> {
    Ok(Command::Latency(c))
}

fn slowlog_get(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let count = match argv.get(2) {
        None => 10,
        Some(n) => {
            let n = int(n)?;
            if n < -1 {
                return Err(Reply::err(
                    "ERR count should be greater than or equal to -1",
                ));
            }
            n
        }
    };
    slowlog(SlowlogCmd::Get(count))
}

fn slowlog_len(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    slowlog(SlowlogCmd::Len)
}

fn slowlog_reset(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    slowlog(SlowlogCmd::Reset)
}

fn slowlog_help(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    slowlog(SlowlogCmd::Help)
}

const SLOWLOG_FLAGS: &[&str] = &["admin", "loading", "stale"];

static SLOWLOG_SUBCOMMANDS: [CommandSpec; 4] = [
    CommandSpec {
        summary: "Returns the slow log's entries.",
        since: "2.2.12",
        group: "server",
        complexity: "O(N) where N is the number of entries returned",
        tips: &["request_policy:all_nodes", "nondeterministic_output"],
        args: "count:integer?",
        ..CommandSpec::new("slowlog|get", -2, SLOWLOG_FLAGS, &[], slowlog_get)
    },
    CommandSpec {
        summary: "Returns the number of entries in the slow log.",
        since: "2.2.12",
        group: "server",
        complexity: "O(1)",
        tips: &[
            "request_policy:all_nodes",
            "response_policy:agg_sum",
            "nondeterministic_output",
        ],
        ..CommandSpec::new("slowlog|len", 2, SLOWLOG_FLAGS, &[], slowlog_len)
    },
    CommandSpec {
        summary: "Clears all entries from the slow log.",
        since: "2.2.12",
        group: "server",
        complexity: "O(N) where N is the number of entries in the slowlog",
        tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
        ..CommandSpec::new("slowlog|reset", 2, SLOWLOG_FLAGS, &[], slowlog_reset)
    },
    CommandSpec {
        summary: "Show helpful text about the different subcommands",
        since: "6.2.0",
        group: "server",
        complexity: "O(1)",
        ..CommandSpec::new("slowlog|help", 2, &["loading", "stale"], &[], slowlog_help)
    },
];

pub(crate) static SLOWLOG: CommandSpec = CommandSpec {
    summary: "A container for slow log commands.",
    since: "2.2.12",
    group: "server",
    complexity: "Depends on subcommand.",
    subcommands: &SLOWLOG_SUBCOMMANDS,
    ..CommandSpec::new("SLOWLOG", -2, &[], &[], parse_container)
};

fn latency_latest(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    latency(LatencyCmd::Latest)
}

fn latency_history(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    latency(LatencyCmd::History(argv[2].clone()))
}

fn latency_reset(_: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    latency(LatencyCmd::Reset(argv[2..].to_vec()))
}

fn latency_help(_: &'static CommandSpec, _: &[Bytes]) -> Result<Command, Reply> {
    latency(LatencyCmd::Help)
}

const LATENCY_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];

static LATENCY_SUBCOMMANDS: [CommandSpec; 4] = [
    CommandSpec {
        summary: "Returns the latest latency samples for all events.",
        since: "2.8.13",
        group: "server",
        complexity: "O(1)",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_nodes",
            "response_policy:special",
        ],
        ..CommandSpec::new("latency|latest", 2, LATENCY_FLAGS, &[], latency_latest)
    },
    CommandSpec {
        summary: "Returns timestamp-latency samples for an event.",
        since: "2.8.13",
        group: "server",
        complexity: "O(1)",
        tips: &[
            "nondeterministic_output",
            "request_policy:all_nodes",
            "response_policy:special",
        ],
        args: "event:string",
        ..CommandSpec::new("latency|history", 3, LATENCY_FLAGS, &[], latency_history)
    },
    CommandSpec {
        summary: "Resets the latency data for one or more events.",
        since: "2.8.13",
        group: "server",
        complexity: "O(1)",
        tips: &["request_policy:all_nodes", "response_policy:agg_sum"],
        args: "event:string*",
        ..CommandSpec::new("latency|reset", -2, LATENCY_FLAGS, &[], latency_reset)
    },
    CommandSpec {
        summary: "Returns helpful text about the different subcommands.",
        since: "2.8.13",
        group: "server",
        complexity: "O(1)",
        ..CommandSpec::new("latency|help", 2, &["loading", "stale"], &[], latency_help)
    },
];

pub(crate) static LATENCY: CommandSpec = CommandSpec {
    summary: "A container for latency diagnostics commands.",
    since: "2.8.13",
    group: "server",
    complexity: "Depends on subcommand.",
    subcommands: &LATENCY_SUBCOMMANDS,
    ..CommandSpec::new("LATENCY", -2, &[], &[], parse_container)
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[&SLOWLOG, &LATENCY];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::{Command, LatencyCmd, SlowlogCmd};

    #[test]
    fn parses_slowlog_and_latency() {
        assert_eq!(p("SLOWLOG GET"), Command::Slowlog(SlowlogCmd::Get(10)));
        assert_eq!(p("slowlog get -1"), Command::Slowlog(SlowlogCmd::Get(-1)));
        assert_eq!(p("SLOWLOG LEN"), Command::Slowlog(SlowlogCmd::Len));
        assert_eq!(p("SLOWLOG RESET"), Command::Slowlog(SlowlogCmd::Reset));
        assert_eq!(
            err("SLOWLOG GET -2"),
            "ERR count should be greater than or equal to -1"
        );
        assert_eq!(
            err("SLOWLOG GET x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(p("LATENCY LATEST"), Command::Latency(LatencyCmd::Latest));
        assert_eq!(
            p("LATENCY HISTORY raft-apply"),
            Command::Latency(LatencyCmd::History(b("raft-apply")))
        );
        assert_eq!(
            p("LATENCY RESET"),
            Command::Latency(LatencyCmd::Reset(vec![]))
        );
    }
}
