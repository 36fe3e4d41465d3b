//! The commands a script calls, for both places scripts run: the apply path (write scripts,
//! [`ApplyHost`]: each command applied to the entry's batch at its stamped time, like the
//! commands of a transaction) and a read snapshot (read-only scripts, [`ReadHost`]).
//!
//! Checks, in Redis's order (`scriptCall`): unknown command or subcommand, arity,
//! `noscript` commands, write commands in a read-only script, keys outside the script's
//! slot. Node-local commands are refused except PING, ECHO, SELECT and TIME (TIME answers the
//! entry's time in a write script). In a write script KEYS, SCAN and RANDOMKEY are refused
//! too: they read the database, not the batch's staged writes, so replicas whose batches
//! differ would answer differently. Random picks of reads (SRANDMEMBER, HRANDFIELD,
//! ZRANDMEMBER) come from the entry's seed there ([`crate::cmd_common::with_seed`]).

use bytes::Bytes;
use resp::{Command, Kind, Reply};
use rocksdb::WriteBatch;

use crate::reader::{RawFn, Source};
use crate::{key_slot, Reader, Store};

fn err(msg: &str) -> Reply {
    Reply::err(format!("ERR {msg}"))
}

/// What a run may do with its commands.
pub(crate) struct Policy {
    pub(crate) read_only: bool,
    /// The slot every key must be in (the declared keys', else the first key used).
    pub(crate) slot: Option<u16>,
    pub(crate) cross_slot: bool,
    /// Running at apply time (a write script's commands must be deterministic).
    pub(crate) apply: bool,
}

impl Policy {
    /// Parses and checks one command a script calls.
    fn check(&mut self, argv: &[Bytes]) -> Result<Command, Reply> {
        let unknown = || err("Unknown Redis command called from script");
        let mut spec = resp::lookup(&argv[0]).ok_or_else(unknown)?;
        if !spec.subcommands.is_empty() {
            if let Some(sub) = argv.get(1) {
                spec = resp::lookup_subcommand(&argv[0], sub).ok_or_else(unknown)?;
            }
        }
        let n = argv.len() as i32;
        if (spec.arity > 0 && spec.arity != n) || n < -spec.arity {
            return Err(err(
                "Wrong number of args calling Redis command from script",
            ));
        }
        // Redis 7.0 flags blocking commands `noscript` (7.2's table, which raftkv's follows,
        // does not).
        if spec.has_flag("noscript") || spec.has_flag("blocking") {
            return Err(err("This Redis command is not allowed from script"));
        }
        let cmd = Command::parse(argv)?;
        match cmd.kind() {
            Kind::Write if self.read_only => {
                return Err(err(
                    "Write commands are not allowed from read-only scripts.",
                ))
            }
            Kind::Read | Kind::Write => {}
            _ if matches!(
                cmd,
                Command::Ping(_) | Command::Echo(_) | Command::Time | Command::Select(_)
            ) => {}
            _ => return Err(err("This Redis command is not allowed from script")),
        }
        if self.apply
            && matches!(
                cmd,
                Command::Keys(_) | Command::Scan { .. } | Command::RandomKey
            )
        {
            return Err(Reply::err(format!(
                "ERR {} is not allowed from a write script (it would not see the writes staged with it)",
                cmd.name()
            )));
        }
        if !self.cross_slot {
            for k in cmd.keys() {
                let s = key_slot(k);
                match self.slot {
                    None => self.slot = Some(s),
                    Some(want) if want != s => {
                        return Err(err(
                            "Script attempted to access keys that do not hash to the same slot",
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(cmd)
    }
}

/// PING, ECHO, SELECT and TIME (at `now`, ms).
fn local(cmd: &Command, now: i64) -> Reply {
    match cmd {
        Command::Select(0) => Reply::ok(),
        Command::Select(_) => Reply::err("ERR DB index is out of range"),
        Command::Ping(None) => Reply::Status("PONG".into()),
        Command::Ping(Some(m)) | Command::Echo(m) => Reply::Bulk(m.clone()),
        _ => Reply::Array(vec![
            Reply::bulk(now.div_euclid(1000).to_string()),
            Reply::bulk((now.rem_euclid(1000) * 1000).to_string()),
        ]),
    }
}

/// A write script's commands: applied to the entry's batch.
pub(crate) struct ApplyHost<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) wb: &'a mut WriteBatch,
    pub(crate) now: i64,
    pub(crate) policy: Policy,
}

impl script::Host for ApplyHost<'_> {
    fn call(&mut self, argv: Vec<Bytes>) -> Reply {
        match self.policy.check(&argv) {
            Err(e) => e,
            Ok(cmd) if matches!(cmd.kind(), Kind::Read | Kind::Write) => {
                self.store.apply(self.wb, &cmd, self.now)
            }
            Ok(cmd) => local(&cmd, self.now),
        }
    }
}

/// A read-only script's commands: reads on one snapshot.
pub(crate) struct ReadHost<'a> {
    pub(crate) reader: &'a Reader,
    pub(crate) src: &'a Source<'a>,
    pub(crate) raw: RawFn<'a>,
    pub(crate) now: i64,
    pub(crate) expired: &'a mut Vec<Bytes>,
    pub(crate) policy: Policy,
}

impl script::Host for ReadHost<'_> {
    fn call(&mut self, argv: Vec<Bytes>) -> Reply {
        match self.policy.check(&argv) {
            Err(e) => e,
            Ok(cmd) if cmd.kind() == Kind::Read => self
                .reader
                .read_on(self.src, self.raw, &cmd, self.now, self.expired)
                .unwrap_or_else(|e| Reply::err(format!("ERR storage error: {e}"))),
            Ok(cmd) => local(&cmd, self.now),
        }
    }
}
