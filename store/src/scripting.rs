//! Scripts in the state machine. Scripts and function libraries are replicated state, kept
//! in column family `scripts` (so snapshots carry them): `s<sha1 hex>` → an EVAL body
//! (SCRIPT LOAD, and every EVAL, as Redis caches them), `l<name>` → a library's payload.
//! The apply path sees its own batch's changes through an overlay (cleared when the batch is
//! written); libraries are also held decoded in memory (see [`crate::functions`]).
//!
//! A write script (EVAL, EVALSHA, FCALL) runs at apply time, inside the entry, on every
//! replica: its commands stage into the entry's batch (same budget, the entry's stamped
//! time, `math.random` and random picks seeded from the entry index and the command's
//! position). A run aborted by the instruction budget or the memory limit is rolled back
//! ([`crate::savepoint`]); a script that raises an error keeps its earlier writes (Redis).
//! A read-only script (the `_RO` forms, or `no-writes`) runs on a read snapshot
//! ([`Reader::read_script`]).

use bytes::Bytes;
use resp::{Reply, ScriptAdmin, ScriptCall, ScriptKind};
use rocksdb::WriteBatch;

use crate::reader::{RawFn, Source};
use crate::script_host::{ApplyHost, Policy, ReadHost};
use crate::{fail_stop, key_slot, Reader, Store};

/// Scripts and libraries.
pub const CF_SCRIPTS: &str = "scripts";

/// Engines kept for read-only scripts (more may run at once; the extra ones are dropped).
const ENGINE_POOL: usize = 4;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const CROSSSLOT: &str = "CROSSSLOT Keys in the request don't hash to the same slot";

/// `[group u64 BE]s[sha]`: every group keeps its own scripts (a snapshot carries its own).
pub(crate) fn script_key(group: u64, sha: &[u8]) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.push(b's');
    k.extend(sha.iter().map(u8::to_ascii_lowercase));
    k
}

/// `[group u64 BE][tag]`: the start of one kind of a group's script records.
pub(crate) fn group_tag(group: u64, tag: u8) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.push(tag);
    k
}

/// The batch's staged script records.
#[derive(Default)]
pub(crate) struct Staged {
    records: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// SCRIPT FLUSH ran in this batch: records not staged are gone.
    flushed: bool,
}

/// The slot all declared keys share, or CROSSSLOT.
fn declared_slot(keys: &[Bytes]) -> Result<Option<u16>, Reply> {
    let mut slot = None;
    for k in keys {
        let s = key_slot(k);
        if slot.is_some_and(|x| x != s) {
            return Err(Reply::err(CROSSSLOT));
        }
        slot = Some(s);
    }
    Ok(slot)
}

/// What runs: an EVAL body or a library's function, with its flags and error name.
pub(crate) struct Target {
    pub(crate) code: Bytes,
    pub(crate) function: Option<String>,
    pub(crate) flags: script::Flags,
    pub(crate) name: String,
}

/// Redis's checks of a script's flags against how it is called (`scriptPrepareForRun`);
/// then whether it runs read-only.
pub(crate) fn prepare(c: &ScriptCall, t: &Target) -> Result<bool, Reply> {
    if t.flags.no_cluster() {
        return Err(Reply::err(
            "ERR Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    if c.read_only() && !t.flags.compat && !t.flags.no_writes() {
        return Err(Reply::err(
            "ERR Can not execute a script with write flag using *_ro command.",
        ));
    }
    Ok(c.read_only() || t.flags.no_writes())
}

/// Runs `c` (`t`); `killable` for a read-only run (SCRIPT KILL / FUNCTION KILL).
fn run(
    engine: &mut script::Engine,
    host: &mut dyn script::Host,
    c: &ScriptCall,
    t: &Target,
    seed: u64,
    killable: bool,
) -> script::Outcome {
    let inv = script::Invocation {
        name: &t.name,
        keys: c.keys(),
        args: c.argv(),
        seed,
        killable,
    };
    match &t.function {
        None => engine.eval(host, &t.code, &inv),
        Some(f) => engine.fcall(host, &t.code, f, &inv),
    }
}

impl Store {
    /// A script's body as of this batch.
    pub(crate) fn script_body(&self, sha: &[u8]) -> Option<Vec<u8>> {
        let k = script_key(self.group, sha);
        if let Some(v) = self.scripts.records.get(&k) {
            return v.clone();
        }
        if self.scripts.flushed {
            return None;
        }
        match self.db.get_cf(self.cf(CF_SCRIPTS), &k) {
            Ok(v) => v,
            Err(e) => fail_stop("reading a script", e),
        }
    }

    fn put_script(&mut self, wb: &mut WriteBatch, sha: &str, body: &[u8]) {
        let k = script_key(self.group, sha.as_bytes());
        wb.put_cf(self.cf(CF_SCRIPTS), &k, body);
        self.scripts.records.insert(k, Some(body.to_vec()));
    }

    pub(crate) fn engine(&mut self) -> script::Engine {
        self.engine.take().unwrap_or_default()
    }

    /// What an EVAL / EVALSHA / FCALL runs, storing an EVAL's body (as Redis caches it).
    fn target(&mut self, wb: &mut WriteBatch, c: &ScriptCall) -> Result<Target, Reply> {
        match c.kind() {
            ScriptKind::Eval => {
                let body = c.target().clone();
                let sha = script::sha1_hex(&body);
                let mut engine = self.engine();
                let checked = engine.check_script(&body);
                self.engine = Some(engine);
                let flags = checked.map_err(|e| Reply::err(format!("ERR {e}")))?;
                if !c.read_only() && self.script_body(sha.as_bytes()).is_none() {
                    self.put_script(wb, &sha, &body);
                }
                Ok(Target {
                    code: body,
                    function: None,
                    flags,
                    name: sha,
                })
            }
            ScriptKind::EvalSha => {
                let body = self
                    .script_body(c.target())
                    .ok_or_else(|| Reply::err(NOSCRIPT))?;
                let flags = script::eval_flags(&body).map(|f| f.0).unwrap_or_default();
                Ok(Target {
                    code: Bytes::from(body),
                    function: None,
                    flags,
                    name: String::from_utf8_lossy(c.target()).to_ascii_lowercase(),
                })
            }
            ScriptKind::Fcall => self.libs.target(c.target()),
        }
    }

    /// Applies EVAL / EVALSHA / FCALL (and their `_RO` forms in a write entry).
    pub(crate) fn apply_script(&mut self, wb: &mut WriteBatch, c: &ScriptCall, now: i64) -> Reply {
        let slot = match declared_slot(c.keys()) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let t = match self.target(wb, c) {
            Ok(t) => t,
            Err(e) => return e,
        };
        let read_only = match prepare(c, &t) {
            Ok(ro) => ro,
            Err(e) => return e,
        };
        let seed = self.next_seed();
        let mut engine = self.engine();
        self.savepoint(wb);
        let policy = Policy {
            read_only,
            slot,
            cross_slot: t.flags.allow_cross_slot(),
            apply: true,
        };
        let outcome = crate::cmd_common::with_seed(seed, || {
            let mut host = ApplyHost {
                store: self,
                wb,
                now,
                policy,
            };
            run(&mut engine, &mut host, c, &t, seed, false)
        });
        self.engine = Some(engine);
        match outcome {
            script::Outcome::Done(r) => {
                self.release();
                r
            }
            script::Outcome::Aborted(r) => {
                self.rollback(wb);
                r
            }
        }
    }

    /// Applies SCRIPT LOAD / FLUSH (and EXISTS in a write entry).
    pub(crate) fn apply_script_admin(&mut self, wb: &mut WriteBatch, s: &ScriptAdmin) -> Reply {
        match s {
            ScriptAdmin::Load(body) => {
                let mut engine = self.engine();
                let checked = engine.check_script(body);
                self.engine = Some(engine);
                if let Err(e) = checked {
                    return Reply::err(format!("ERR {e}"));
                }
                let sha = script::sha1_hex(body);
                if self.script_body(sha.as_bytes()).is_none() {
                    self.put_script(wb, &sha, body);
                }
                Reply::bulk(sha)
            }
            ScriptAdmin::Flush => {
                wb.delete_range_cf(
                    self.cf(CF_SCRIPTS),
                    group_tag(self.group, b's'),
                    group_tag(self.group, b't'),
                );
                self.scripts = Staged {
                    records: Default::default(),
                    flushed: true,
                };
                Reply::ok()
            }
            ScriptAdmin::Exists(shas) => Reply::Array(
                shas.iter()
                    .map(|s| Reply::Int(i64::from(self.script_body(s).is_some())))
                    .collect(),
            ),
            ScriptAdmin::Kill | ScriptAdmin::Help => Reply::err("ERR not a replicated command"),
        }
    }

    /// The batch is written: its script records are in the database.
    pub(crate) fn scripts_written(&mut self) {
        self.scripts = Staged::default();
        self.publish_libraries();
    }
}

impl Reader {
    /// A script's body as of the last written batch (routing; not a linearizable read).
    pub fn script(&self, sha: &[u8]) -> Option<Vec<u8>> {
        let cf = self.cf(CF_SCRIPTS)?;
        self.db
            .get_cf(cf, script_key(self.group(), sha))
            .ok()
            .flatten()
    }

    fn script_on_snapshot(&self, src: &Source<'_>, sha: &[u8]) -> Result<Option<Vec<u8>>, String> {
        src.get_cf(CF_SCRIPTS, &script_key(self.group(), sha))
    }

    /// SCRIPT EXISTS on a snapshot.
    pub(crate) fn script_exists(&self, src: &Source<'_>, shas: &[Bytes]) -> Result<Reply, String> {
        let mut out = Vec::with_capacity(shas.len());
        for s in shas {
            out.push(Reply::Int(i64::from(
                self.script_on_snapshot(src, s)?.is_some(),
            )));
        }
        Ok(Reply::Array(out))
    }

    /// A read-only script (EVAL_RO, EVALSHA_RO, FCALL_RO, or one whose flags say
    /// `no-writes`) on the read snapshot `src` at `now`.
    pub(crate) fn read_script(
        &self,
        src: &Source<'_>,
        raw: RawFn<'_>,
        c: &ScriptCall,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Reply, String> {
        let slot = match declared_slot(c.keys()) {
            Ok(s) => s,
            Err(e) => return Ok(e),
        };
        let mut engine = self.take_engine();
        let t = match c.kind() {
            ScriptKind::Eval => engine.check_script(c.target()).map(|flags| Target {
                code: c.target().clone(),
                function: None,
                flags,
                name: script::sha1_hex(c.target()),
            }),
            ScriptKind::EvalSha => match self.script_on_snapshot(src, c.target())? {
                None => Err(NOSCRIPT.to_string()),
                Some(body) => Ok(Target {
                    flags: script::eval_flags(&body).map(|f| f.0).unwrap_or_default(),
                    code: Bytes::from(body),
                    function: None,
                    name: String::from_utf8_lossy(c.target()).to_ascii_lowercase(),
                }),
            },
            ScriptKind::Fcall => self.libraries().target(c.target()).map_err(|e| match e {
                Reply::Error(e) => e,
                _ => "ERR Function not found".into(),
            }),
        };
        let t = match t {
            Ok(t) => t,
            Err(e) if e.starts_with("NOSCRIPT") || e.starts_with("ERR") => {
                self.give_engine(engine);
                return Ok(Reply::err(e));
            }
            Err(e) => {
                self.give_engine(engine);
                return Ok(Reply::err(format!("ERR {e}")));
            }
        };
        if let Err(e) = prepare(c, &t) {
            self.give_engine(engine);
            return Ok(e);
        }
        let mut host = ReadHost {
            reader: self,
            src,
            raw,
            now,
            expired,
            policy: Policy {
                read_only: true,
                slot,
                cross_slot: t.flags.allow_cross_slot(),
                apply: false,
            },
        };
        let seed = now as u64;
        let reply = match run(&mut engine, &mut host, c, &t, seed, true) {
            script::Outcome::Done(r) | script::Outcome::Aborted(r) => r,
        };
        self.give_engine(engine);
        Ok(reply)
    }

    /// An engine from the readers' pool (or a new one).
    fn take_engine(&self) -> script::Engine {
        let pooled = self
            .counters
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        pooled.unwrap_or_default()
    }

    fn give_engine(&self, e: script::Engine) {
        let mut pool = self
            .counters
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pool.len() < ENGINE_POOL {
            pool.push(e);
        }
    }
}
