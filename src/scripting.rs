//! The node's side of scripting: which script calls run as reads, the node-local SCRIPT /
//! FUNCTION subcommands, and where `redis.log` lines go. Everything else (running scripts,
//! storing scripts and libraries) is the store's, in the apply path or on a read snapshot.
//!
//! A write form (EVAL, EVALSHA, FCALL) whose script declares `no-writes` (an EVAL shebang
//! `#!lua flags=no-writes`, a function registered with `flags={'no-writes'}`) is served as
//! its `_RO` form: after the ReadIndex barrier, on any node. The flags are looked up in this
//! node's store; one that has not applied the SCRIPT LOAD / FUNCTION LOAD yet proposes the
//! call, which then runs at apply time, with the same result.

use resp::{Command, FunctionCmd, Reply, ScriptAdmin, ScriptKind};
use slog::{debug, info, warn, Logger};

use crate::server::Server;
use script::kill::{kill, Killed, RunKind};

/// Stops this node's read-only runs of `kind` (EVAL_RO / EVALSHA_RO, or FCALL_RO).
fn kill_reply(kind: RunKind) -> Reply {
    match kill(kind) {
        Killed::Some => Reply::ok(),
        Killed::None => Reply::err(NOTBUSY),
    }
}

/// The reply of SCRIPT KILL / FUNCTION KILL when no read-only run of its kind is in
/// progress on this node (write scripts run at apply time on every replica and are never
/// killed: their deterministic instruction budget bounds them).
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

/// Routes `redis.log` to the node's log (Redis's levels: debug, verbose, notice, warning).
pub fn log_to(logger: Logger) {
    script::set_log_sink(move |level, msg| match level {
        0 => debug!(logger, "script"; "msg" => msg),
        1 | 2 => info!(logger, "script"; "msg" => msg),
        _ => warn!(logger, "script"; "msg" => msg),
    });
}

impl Server {
    /// `cmd`, or its `_RO` form when its script only reads.
    pub fn script_route(&self, cmd: Command) -> Command {
        let Command::Script(c) = &cmd else {
            return cmd;
        };
        if c.read_only() {
            return cmd;
        }
        let flags = match c.kind() {
            ScriptKind::Eval => script::eval_flags(c.target()).ok().map(|f| f.0),
            ScriptKind::EvalSha => self
                .reader
                .script(c.target())
                .and_then(|b| script::eval_flags(&b).ok().map(|f| f.0)),
            ScriptKind::Fcall => self.reader.libraries().function_flags(c.target()),
        };
        if flags.is_some_and(|f| f.no_writes()) {
            return Command::Script(c.as_read_only());
        }
        cmd
    }

    /// SCRIPT KILL / HELP and FUNCTION KILL / HELP.
    pub fn script_local(&self, cmd: &Command) -> Option<Reply> {
        Some(match cmd {
            Command::ScriptAdmin(ScriptAdmin::Kill) => kill_reply(RunKind::Script),
            Command::Function(FunctionCmd::Kill) => kill_reply(RunKind::Function),
            Command::ScriptAdmin(ScriptAdmin::Help) => resp::cmd::scripting::script_help(),
            Command::Function(FunctionCmd::Help) => resp::cmd::scripting::function_help(),
            _ => return None,
        })
    }
}
