//! Scripting commands: EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO, the SCRIPT container
//! (LOAD EXISTS FLUSH KILL HELP) and the FUNCTION container (LOAD DELETE FLUSH LIST DUMP
//! RESTORE KILL STATS HELP), with Redis 7.2's table data and Redis 7.0's argument errors.
//!
//! Kinds: Redis flags EVAL / EVALSHA / FCALL `may_replicate` and SCRIPT LOAD / FLUSH only
//! `noscript`; here they change replicated state, so their entries are `Kind::Write` (the
//! `_RO` forms, SCRIPT EXISTS, FUNCTION LIST / DUMP / STATS reads): a write script runs at
//! apply time on every replica, a read-only one after the ReadIndex barrier.

use bytes::Bytes;

use super::coll::keynum;
use super::spec::{CommandSpec, Kind};
use super::util::{parse_container, upper};
use crate::{Command, Reply};

pub use super::scripting_help::{function_help, script_help};

/// Which script command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    Eval,
    EvalSha,
    Fcall,
}

/// EVAL, EVALSHA, FCALL and their `_RO` forms: the arguments after the name (script, SHA or
/// function; numkeys; keys; args), so the key spec applies to them as to the request.
#[derive(Debug, Clone)]
pub struct ScriptCall {
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
    pub numkeys: usize,
}

impl PartialEq for ScriptCall {
    fn eq(&self, other: &Self) -> bool {
        self.spec.name == other.spec.name && self.args == other.args
    }
}

impl ScriptCall {
    /// The body (EVAL), SHA (EVALSHA) or function name (FCALL).
    pub fn target(&self) -> &Bytes {
        &self.args[0]
    }

    pub fn keys(&self) -> &[Bytes] {
        &self.args[2..2 + self.numkeys]
    }

    pub fn argv(&self) -> &[Bytes] {
        &self.args[2 + self.numkeys..]
    }

    pub fn kind(&self) -> ScriptKind {
        match self.spec.name {
            "EVAL" | "EVAL_RO" => ScriptKind::Eval,
            "EVALSHA" | "EVALSHA_RO" => ScriptKind::EvalSha,
            _ => ScriptKind::Fcall,
        }
    }

    /// An `_RO` form (or turned into one: see [`ScriptCall::as_read_only`]).
    pub fn read_only(&self) -> bool {
        self.spec.kind == Kind::Read
    }

    /// The same call as its `_RO` form (a script whose flags say `no-writes` runs as a read).
    pub fn as_read_only(&self) -> ScriptCall {
        let spec = match self.kind() {
            ScriptKind::Eval => &EVAL_RO,
            ScriptKind::EvalSha => &EVALSHA_RO,
            ScriptKind::Fcall => &FCALL_RO,
        };
        ScriptCall {
            spec,
            args: self.args.clone(),
            numkeys: self.numkeys,
        }
    }
}

/// SCRIPT subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptAdmin {
    Load(Bytes),
    Exists(Vec<Bytes>),
    Flush,
    Kill,
    Help,
}

/// FUNCTION RESTORE's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Append,
    Replace,
    Flush,
}

/// FUNCTION subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionCmd {
    Load {
        replace: bool,
        code: Bytes,
    },
    Delete(Bytes),
    Flush,
    List {
        pattern: Option<Bytes>,
        with_code: bool,
    },
    Dump,
    Restore {
        payload: Bytes,
        policy: RestorePolicy,
    },
    Kill,
    Stats,
    Help,
}

fn parse_call(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let fcall = spec.name.starts_with("FCALL");
    if spec.name.starts_with("EVALSHA") && argv[1].len() != 40 {
        return Err(Reply::err("NOSCRIPT No matching script. Please use EVAL."));
    }
    let numkeys = crate::request::string2ll(&argv[2]).ok_or_else(|| {
        Reply::err(if fcall {
            "ERR Bad number of keys provided"
        } else {
            "ERR value is not an integer or out of range"
        })
    })?;
    if numkeys > (argv.len() - 3) as i64 {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Reply::err("ERR Number of keys can't be negative"));
    }
    Ok(Command::Script(ScriptCall {
        spec,
        args: argv[1..].to_vec(),
        numkeys: numkeys as usize,
    }))
}

const RW_KEYS: &[&str] = &["RW", "access", "update"];
const RO_KEYS: &[&str] = &["RO", "access"];

macro_rules! call_entry {
    ($id:ident, $name:literal, $flags:expr, $ks:expr, $kind:expr, $since:literal, $summary:literal, $first:literal) => {
        pub(crate) static $id: CommandSpec = CommandSpec {
            summary: $summary,
            since: $since,
            group: "scripting",
            complexity: "Depends on the script that is executed.",
            acl_categories: &["scripting"],
            args: concat!($first, ":string numkeys:integer key:key?*#0 arg:string?*"),
            kind: $kind,
            ..CommandSpec::new($name, -3, $flags, &[$ks], parse_call)
        };
    };
}

const WRITE_FLAGS: &[&str] = &[
    "noscript",
    "skip_monitor",
    "may_replicate",
    "no_mandatory_keys",
    "stale",
    "movablekeys",
];
const RO_FLAGS: &[&str] = &[
    "noscript",
    "skip_monitor",
    "no_mandatory_keys",
    "stale",
    "readonly",
    "movablekeys",
];

call_entry!(
    EVAL,
    "EVAL",
    WRITE_FLAGS,
    keynum(2, RW_KEYS)
        .notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"),
    Kind::Write,
    "2.6.0",
    "Executes a server-side Lua script.",
    "script"
);
call_entry!(
    EVALSHA,
    "EVALSHA",
    WRITE_FLAGS,
    keynum(2, RW_KEYS),
    Kind::Write,
    "2.6.0",
    "Executes a server-side Lua script by SHA1 digest.",
    "sha1"
);
call_entry!(
    EVAL_RO,
    "EVAL_RO",
    RO_FLAGS,
    keynum(2, RO_KEYS)
        .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"),
    Kind::Read,
    "7.0.0",
    "Executes a read-only server-side Lua script.",
    "script"
);
call_entry!(
    EVALSHA_RO,
    "EVALSHA_RO",
    RO_FLAGS,
    keynum(2, RO_KEYS),
    Kind::Read,
    "7.0.0",
    "Executes a read-only server-side Lua script by SHA1 digest.",
    "sha1"
);
call_entry!(
    FCALL,
    "FCALL",
    WRITE_FLAGS,
    keynum(2, RW_KEYS)
        .notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"),
    Kind::Write,
    "7.0.0",
    "Invokes a function.",
    "function"
);
call_entry!(
    FCALL_RO,
    "FCALL_RO",
    RO_FLAGS,
    keynum(2, RO_KEYS)
        .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"),
    Kind::Read,
    "7.0.0",
    "Invokes a read-only function.",
    "function"
);

fn flush_mode(argv: &[Bytes], err: &str) -> Result<(), Reply> {
    match argv.get(2) {
        None => Ok(()),
        Some(m) if matches!(upper(m).as_str(), "SYNC" | "ASYNC") => Ok(()),
        Some(_) => Err(Reply::err(err)),
    }
}

fn parse_script_sub(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    Ok(Command::ScriptAdmin(match spec.name {
        "script|load" => ScriptAdmin::Load(argv[2].clone()),
        "script|exists" => ScriptAdmin::Exists(argv[2..].to_vec()),
        "script|flush" => {
            flush_mode(argv, "ERR SCRIPT FLUSH only support SYNC|ASYNC option")?;
            ScriptAdmin::Flush
        }
        "script|kill" => ScriptAdmin::Kill,
        _ => ScriptAdmin::Help,
    }))
}

/// One SCRIPT / FUNCTION subcommand's entry: `sub!(name, arity, flags, kind, summary, since,
/// complexity, args, parser)`.
macro_rules! sub {
    ($name:expr, $arity:expr, $flags:expr, $kind:expr, $summary:expr, $since:expr,
     $complexity:expr, $args:expr, $parse:expr) => {
        CommandSpec {
            summary: $summary,
            since: $since,
            group: "scripting",
            complexity: $complexity,
            acl_categories: &["scripting"],
            args: $args,
            kind: $kind,
            ..CommandSpec::new($name, $arity, $flags, &[], $parse)
        }
    };
}

const FLUSH_ARGS: &str = "flush-type:oneof?(async:pure-token=ASYNC sync:pure-token=SYNC)";
const HELP: &str = "Returns helpful text about the different subcommands.";

static SCRIPT_SUBCOMMANDS: [CommandSpec; 5] = [
    sub!("script|exists", -3, &["noscript"], Kind::Read, "Determines whether server-side Lua scripts exist in the script cache.", "2.6.0", "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).", "sha1:string*", parse_script_sub),
    sub!("script|flush", -2, &["noscript"], Kind::Write, "Removes all server-side Lua scripts from the script cache.", "2.6.0", "O(N) with N being the number of scripts in cache", FLUSH_ARGS, parse_script_sub),
    sub!("script|help", 2, &["loading", "stale"], Kind::Local, HELP, "5.0.0", "O(1)", "", parse_script_sub),
    sub!("script|kill", 2, &["noscript", "allow_busy"], Kind::Local, "Terminates a server-side Lua script during execution.", "2.6.0", "O(1)", "", parse_script_sub),
    sub!("script|load", 3, &["noscript", "stale"], Kind::Write, "Loads a server-side Lua script to the script cache.", "2.6.0", "O(N) with N being the length in bytes of the script body.", "script:string", parse_script_sub),
];

pub(crate) static SCRIPT: CommandSpec = CommandSpec {
    summary: "A container for Lua scripts management commands.",
    since: "2.6.0",
    group: "scripting",
    complexity: "Depends on subcommand.",
    subcommands: &SCRIPT_SUBCOMMANDS,
    ..CommandSpec::new("SCRIPT", -2, &[], &[], parse_container)
};

fn parse_function_sub(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let syntax = || {
        Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(&argv[1])
        ))
    };
    Ok(Command::Function(match spec.name {
        "function|load" => {
            let mut replace = false;
            for opt in &argv[2..argv.len() - 1] {
                if upper(opt) != "REPLACE" {
                    return Err(Reply::err(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(opt)
                    )));
                }
                replace = true;
            }
            FunctionCmd::Load {
                replace,
                code: argv[argv.len() - 1].clone(),
            }
        }
        "function|delete" => FunctionCmd::Delete(argv[2].clone()),
        "function|flush" => {
            if argv.len() > 3 {
                return Err(syntax());
            }
            flush_mode(argv, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option")?;
            FunctionCmd::Flush
        }
        "function|list" => parse_list(&argv[2..])?,
        "function|dump" => FunctionCmd::Dump,
        "function|restore" => {
            if argv.len() > 4 {
                return Err(syntax());
            }
            let policy = match argv.get(3).map(|p| upper(p)).as_deref() {
                None | Some("APPEND") => RestorePolicy::Append,
                Some("REPLACE") => RestorePolicy::Replace,
                Some("FLUSH") => RestorePolicy::Flush,
                Some(_) => {
                    return Err(Reply::err(
                        "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                    ))
                }
            };
            FunctionCmd::Restore {
                payload: argv[2].clone(),
                policy,
            }
        }
        "function|kill" => FunctionCmd::Kill,
        "function|stats" => FunctionCmd::Stats,
        _ => FunctionCmd::Help,
    }))
}

/// FUNCTION LIST's options (`functionListCommand`).
fn parse_list(args: &[Bytes]) -> Result<FunctionCmd, Reply> {
    let (mut pattern, mut with_code) = (None, false);
    let mut i = 0;
    while i < args.len() {
        let a = upper(&args[i]);
        if !with_code && a == "WITHCODE" {
            with_code = true;
        } else if pattern.is_none() && a == "LIBRARYNAME" {
            let Some(p) = args.get(i + 1) else {
                return Err(Reply::err("ERR library name argument was not given"));
            };
            pattern = Some(p.clone());
            i += 1;
        } else {
            return Err(Reply::err(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
        i += 1;
    }
    Ok(FunctionCmd::List { pattern, with_code })
}

static FUNCTION_SUBCOMMANDS: [CommandSpec; 9] = [
    sub!("function|delete", 3, &["noscript", "write"], Kind::Write, "Deletes a library and its functions.", "7.0.0", "O(1)", "library-name:string", parse_function_sub),
    sub!("function|dump", 2, &["noscript"], Kind::Read, "Dumps all libraries into a serialized binary payload.", "7.0.0", "O(N) where N is the number of functions", "", parse_function_sub),
    sub!("function|flush", -2, &["noscript", "write"], Kind::Write, "Deletes all libraries and functions.", "7.0.0", "O(N) where N is the number of functions deleted", FLUSH_ARGS, parse_function_sub),
    sub!("function|help", 2, &["loading", "stale"], Kind::Local, HELP, "7.0.0", "O(1)", "", parse_function_sub),
    sub!("function|kill", 2, &["noscript", "allow_busy"], Kind::Local, "Terminates a function during execution.", "7.0.0", "O(1)", "", parse_function_sub),
    sub!("function|list", -2, &["noscript"], Kind::Read, "Returns information about all libraries.", "7.0.0", "O(N) where N is the number of functions", "library-name-pattern:string?=LIBRARYNAME withcode:pure-token?=WITHCODE", parse_function_sub),
    sub!("function|load", -3, &["noscript", "write", "denyoom"], Kind::Write, "Creates a library.", "7.0.0", "O(1) (considering compilation time is redundant)", "replace:pure-token?=REPLACE function-code:string", parse_function_sub),
    sub!("function|restore", -3, &["noscript", "write", "denyoom"], Kind::Write, "Restores all libraries from a payload.", "7.0.0", "O(N) where N is the number of functions on the payload", "serialized-value:string policy:oneof?(flush:pure-token=FLUSH append:pure-token=APPEND replace:pure-token=REPLACE)", parse_function_sub),
    sub!("function|stats", 2, &["noscript", "allow_busy"], Kind::Read, "Returns information about a function during execution.", "7.0.0", "O(1)", "", parse_function_sub),
];

pub(crate) static FUNCTION: CommandSpec = CommandSpec {
    summary: "A container for function commands.",
    since: "7.0.0",
    group: "scripting",
    complexity: "Depends on subcommand.",
    subcommands: &FUNCTION_SUBCOMMANDS,
    ..CommandSpec::new("FUNCTION", -2, &[], &[], parse_container)
};

/// The entry of a SCRIPT subcommand.
pub(crate) fn script_spec(s: &ScriptAdmin) -> &'static CommandSpec {
    let name = match s {
        ScriptAdmin::Exists(_) => "script|exists",
        ScriptAdmin::Flush => "script|flush",
        ScriptAdmin::Help => "script|help",
        ScriptAdmin::Kill => "script|kill",
        ScriptAdmin::Load(_) => "script|load",
    };
    SCRIPT_SUBCOMMANDS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or(&SCRIPT)
}

/// The entry of a FUNCTION subcommand.
pub(crate) fn function_spec(f: &FunctionCmd) -> &'static CommandSpec {
    let name = match f {
        FunctionCmd::Delete(_) => "function|delete",
        FunctionCmd::Dump => "function|dump",
        FunctionCmd::Flush => "function|flush",
        FunctionCmd::Help => "function|help",
        FunctionCmd::Kill => "function|kill",
        FunctionCmd::List { .. } => "function|list",
        FunctionCmd::Load { .. } => "function|load",
        FunctionCmd::Restore { .. } => "function|restore",
        FunctionCmd::Stats => "function|stats",
    };
    FUNCTION_SUBCOMMANDS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or(&FUNCTION)
}

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &EVAL,
    &EVALSHA,
    &EVAL_RO,
    &EVALSHA_RO,
    &FCALL,
    &FCALL_RO,
    &SCRIPT,
    &FUNCTION,
];

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::Kind;

    #[test]
    fn script_calls_and_their_errors() {
        let Command::Script(c) = p("EVAL return 2 k1 k2 a") else {
            panic!()
        };
        assert_eq!(c.keys(), &[b("k1"), b("k2")]);
        assert_eq!(c.argv(), &[b("a")]);
        assert_eq!(c.kind(), ScriptKind::Eval);
        assert!(!c.read_only() && c.as_read_only().read_only());
        assert_eq!(p("EVAL x 2 k1 k2 a").keys(), vec![&b("k1"), &b("k2")]);
        assert_eq!(p("EVAL x 0").kind(), Kind::Write);
        assert_eq!(p("EVAL_RO x 0").kind(), Kind::Read);
        assert_eq!(p("FCALL_RO f 0").kind(), Kind::Read);
        assert_eq!(
            err("EVAL x 2 k"),
            "ERR Number of keys can't be greater than number of args"
        );
        assert_eq!(err("EVAL x -1"), "ERR Number of keys can't be negative");
        assert_eq!(
            err("EVAL x y"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err("FCALL f y"), "ERR Bad number of keys provided");
        assert_eq!(
            err("EVALSHA abc 0"),
            "NOSCRIPT No matching script. Please use EVAL."
        );
        assert_eq!(
            err("EVAL x"),
            "ERR wrong number of arguments for 'eval' command"
        );
    }

    #[test]
    fn script_and_function_subcommands() {
        assert_eq!(
            p("SCRIPT LOAD x"),
            Command::ScriptAdmin(ScriptAdmin::Load(b("x")))
        );
        assert_eq!(p("script load x").kind(), Kind::Write);
        assert_eq!(p("SCRIPT EXISTS a b").kind(), Kind::Read);
        assert_eq!(
            err("SCRIPT FLUSH x"),
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
        );
        assert_eq!(p("SCRIPT KILL").kind(), Kind::Local);
        assert!(err("SCRIPT NOPE").starts_with("ERR unknown subcommand 'NOPE'"));
        assert_eq!(
            p("FUNCTION LOAD REPLACE code"),
            Command::Function(FunctionCmd::Load {
                replace: true,
                code: b("code")
            })
        );
        assert_eq!(
            err("FUNCTION LOAD BAD code"),
            "ERR Unknown option given: BAD"
        );
        assert_eq!(
            p("FUNCTION LIST WITHCODE LIBRARYNAME x*"),
            Command::Function(FunctionCmd::List {
                pattern: Some(b("x*")),
                with_code: true
            })
        );
        assert_eq!(
            err("FUNCTION LIST LIBRARYNAME"),
            "ERR library name argument was not given"
        );
        assert_eq!(
            err("FUNCTION LIST WITHCODE WITHCODE"),
            "ERR Unknown argument WITHCODE"
        );
        assert_eq!(
            err("FUNCTION RESTORE x BAD"),
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
        );
        assert_eq!(
            err("FUNCTION RESTORE x FLUSH y"),
            "ERR unknown subcommand or wrong number of arguments for 'RESTORE'. Try FUNCTION HELP."
        );
        assert_eq!(
            err("FUNCTION FLUSH x"),
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option"
        );
        assert_eq!(p("FUNCTION LIST").kind(), Kind::Read);
        assert_eq!(p("FUNCTION DELETE x").kind(), Kind::Write);
        assert!(matches!(script_help(), Reply::Array(v) if v.len() == 15));
    }
}
