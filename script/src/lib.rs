//! Lua 5.1 scripting for raftkv, as Redis 7.0 has it (EVAL / EVALSHA / FCALL and their
//! `_RO` forms, `FUNCTION LOAD`): the sandbox, the `redis` API, the conversions between
//! replies and Lua values, `cjson`, `bit`, `cmsgpack` and `struct`, script and library
//! headers. No IO and no
//! store: a [`Host`] runs the commands a script calls (the store's apply path for write
//! scripts, a read snapshot for read-only ones).
//!
//! Determinism: every run gets a fresh VM ([`vm`]), so a script's result, the instructions
//! it executes and the memory it allocates depend only on the script, its arguments, the
//! seed and the replies of its commands. The [`Engine`] keeps per node only compiled
//! bytecode (bounded, [`CACHE_ENTRIES`]), which loads the same way on every replica.
//!
//! Bounds: [`INSTRUCTION_BUDGET`] VM instructions per run (a runaway script is aborted:
//! [`Outcome::Aborted`], and the caller discards its writes) and [`MEMORY_LIMIT`] bytes of
//! Lua heap per run (same).

mod bit;
mod cjson;
mod cmsgpack;
mod convert;
pub mod fmt;
pub mod kill;
mod raising;
pub mod sha1;
pub mod shebang;
mod structlib;
mod vm;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{Lua, LuaOptions, StdLib, Table, Value};
use resp::Reply;

pub use sha1::sha1_hex;
pub use shebang::{eval_flags, library_header, valid_name, Flags, FLAG_NAMES};

/// Most Lua VM instructions one script run may execute (about 0.2-0.4 s of one core):
/// then it is aborted, the same way at the same point on every replica.
pub const INSTRUCTION_BUDGET: u64 = 100_000_000;

/// Most instructions of a killable (read-only) run: it changes nothing, so it may run
/// longer than a write script, long enough for SCRIPT KILL / FUNCTION KILL to stop it.
pub const KILLABLE_BUDGET: u64 = 10 * INSTRUCTION_BUDGET;

/// Most bytes of Lua heap one script run may allocate beyond the sandbox's own.
pub const MEMORY_LIMIT: usize = 64 << 20;

/// Compiled chunks kept per node.
pub const CACHE_ENTRIES: usize = 1024;

/// The Redis version scripts see (`redis.REDIS_VERSION`), as INFO reports it.
pub const REDIS_VERSION: &str = "7.0.0";

/// `redis.REDIS_VERSION_NUM`: `0x00MMmmpp`.
pub fn redis_version_num() -> i64 {
    let mut n = 0i64;
    for part in REDIS_VERSION.split('.') {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

/// Runs the commands a script calls.
pub trait Host {
    /// Runs one `redis.call` / `redis.pcall` command; errors are `Reply::Error` with their
    /// code (`ERR ...`, `WRONGTYPE ...`).
    fn call(&mut self, argv: Vec<Bytes>) -> Reply;
}

/// Where `redis.log` lines go (set once by the binary; dropped until then).
type LogSink = Box<dyn Fn(u8, &str) + Send + Sync>;
static LOG_SINK: OnceLock<LogSink> = OnceLock::new();

/// Sends `redis.log` lines (level 0 debug .. 3 warning) to `f`.
pub fn set_log_sink(f: impl Fn(u8, &str) + Send + Sync + 'static) {
    let _ = LOG_SINK.set(Box::new(f));
}

fn log(level: u8, msg: &str) {
    if let Some(f) = LOG_SINK.get() {
        f(level, msg);
    }
}

/// What a run is called with.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The name errors show (`script: <name>, on ...`): the SHA for EVAL, the function.
    pub name: &'a str,
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
    /// Seeds `math.random`.
    pub seed: u64,
    /// A read-only run, which SCRIPT KILL / FUNCTION KILL may stop (and which gets
    /// [`KILLABLE_BUDGET`]); write runs are never killable.
    pub killable: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The script returned or raised: its reply (an error reply for a raised error). Its
    /// writes stay, as in Redis.
    Done(Reply),
    /// Aborted by the instruction budget or the memory limit: the caller must discard the
    /// run's writes; the reply says why.
    Aborted(Reply),
}

/// One function of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub flags: Flags,
}

/// A loaded library: its name, the whole payload (header included) and its functions in
/// the order they were registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<FunctionInfo>,
}

/// A host for library loads, which call no commands.
struct NoCommands;

impl Host for NoCommands {
    fn call(&mut self, _: Vec<Bytes>) -> Reply {
        Reply::err("ERR redis.call is not available while a library loads")
    }
}

/// Compiles scripts (bounded bytecode cache) and runs them, each in a fresh VM.
pub struct Engine {
    compiler: Lua,
    prelude: Arc<Vec<u8>>,
    cache: HashMap<[u8; 20], Arc<Vec<u8>>>,
    order: VecDeque<[u8; 20]>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

const PRELUDE: &str = include_str!("prelude.lua");

fn aborted(stop: vm::Stop, name: &str) -> Outcome {
    Outcome::Aborted(Reply::err(match stop {
        vm::Stop::Budget => format!(
            "ERR Script aborted: it exceeded {INSTRUCTION_BUDGET} Lua instructions (none of its writes were applied) script: {name}"
        ),
        vm::Stop::Memory => format!(
            "ERR Script aborted: it used more than {MEMORY_LIMIT} bytes of Lua memory (none of its writes were applied) script: {name}"
        ),
        vm::Stop::Killed(how) => {
            format!("ERR Script killed by user with {how}... script: {name}")
        }
        vm::Stop::Internal(e) => {
            format!("ERR Script aborted: {e} (none of its writes were applied) script: {name}")
        }
    }))
}

fn new_table<'a, I: IntoIterator<Item = &'a Bytes>>(lua: &Lua, items: I) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (i, b) in items.into_iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(b)?)?;
    }
    Ok(t)
}

/// The message of a load error (`luaExtractErrorInformation`).
fn error_message(e: &Value) -> String {
    match e {
        Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "ERR unknown error".into(),
        },
        other => format!("ERR {}", other.type_name()),
    }
}

impl Engine {
    pub fn new() -> Engine {
        let compiler = Lua::new_with(StdLib::NONE, LuaOptions::new()).unwrap_or_default();
        let prelude = compiler
            .load(PRELUDE)
            .set_name("=raftkv")
            .into_function()
            // Stripped (no line or local names: a third less to load per run); its frames
            // keep their source name, which is what the error handler looks at.
            .map(|f| f.dump(true))
            .unwrap_or_default();
        Engine {
            compiler,
            prelude: Arc::new(prelude),
            cache: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Bytecode of `src` compiled as chunk `name`, or Lua's syntax error text.
    fn compile(&mut self, name: &str, src: &[u8]) -> Result<Arc<Vec<u8>>, String> {
        let mut key_src = name.as_bytes().to_vec();
        key_src.push(0);
        key_src.extend_from_slice(src);
        let key = sha1::sha1(&key_src);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b.clone());
        }
        let f = self
            .compiler
            .load(src)
            .set_name(name)
            .set_mode(ChunkMode::Text)
            .into_function();
        let code = match f {
            Ok(f) => Arc::new(f.dump(false)),
            Err(mlua::Error::SyntaxError { message, .. }) => return Err(message),
            Err(e) => return Err(e.to_string()),
        };
        let _ = self.compiler.gc_collect();
        if self.order.len() >= CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.cache.remove(&old);
            }
        }
        self.order.push_back(key);
        self.cache.insert(key, code.clone());
        Ok(code)
    }

    /// Checks an EVAL body as SCRIPT LOAD and EVAL do (shebang, then compiling): its flags,
    /// or Redis's error text (without `ERR `).
    pub fn check_script(&mut self, body: &[u8]) -> Result<Flags, String> {
        let (flags, skip) = eval_flags(body)?;
        self.compile("@user_script", &body[skip..])
            .map_err(|e| format!("Error compiling script (new function): {e}"))?;
        Ok(flags)
    }

    /// Runs an EVAL body (shebang included) with `KEYS` and `ARGV`.
    pub fn eval(&mut self, host: &mut dyn Host, body: &[u8], inv: &Invocation) -> Outcome {
        let skip = match eval_flags(body) {
            Ok((_, n)) => n,
            Err(e) => return Outcome::Done(Reply::err(format!("ERR {e}"))),
        };
        let code = match self.compile("@user_script", &body[skip..]) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Done(Reply::err(format!(
                    "ERR Error compiling script (new function): {e}"
                )))
            }
        };
        let prelude = self.prelude.clone();
        let reg = inv.killable.then(|| kill::register(kill::RunKind::Script));
        let bounds = vm::Bounds::of(reg.as_ref().map(|r| r.flag.clone()), "SCRIPT KILL");
        let r = vm::run(&prelude, host, inv.seed, bounds, |lua, internal, resp3| {
            let f = lua
                .load(&code[..])
                .set_name("@user_script")
                .set_mode(ChunkMode::Binary)
                .into_function()?;
            let set: mlua::Function = internal.raw_get("set_keys_argv")?;
            set.call::<()>((new_table(lua, inv.keys)?, new_table(lua, inv.args)?))?;
            let run: mlua::Function = internal.raw_get("run")?;
            let (ok, v): (bool, Value) = run.call(f)?;
            Ok(finish(ok, &v, resp3.get(), inv.name))
        });
        match r {
            Ok(Ok(reply)) => Outcome::Done(reply),
            Ok(Err(stop)) | Err(stop) => aborted(stop, inv.name),
        }
    }

    /// Loads a library's top level in `lua` (load mode): its functions, or the error text.
    fn load_in(
        lua: &Lua,
        internal: &Table,
        code: &[u8],
    ) -> mlua::Result<Result<Vec<(FunctionInfo, mlua::Function)>, String>> {
        let f = lua
            .load(code)
            .set_name("@user_function")
            .set_mode(ChunkMode::Binary)
            .into_function()?;
        let load: mlua::Function = internal.raw_get("load_library")?;
        let (ok, v): (bool, Value) = load.call(f)?;
        if !ok {
            return Ok(Err(format!(
                "Error registering functions: {}",
                error_message(&v)
            )));
        }
        let Value::Table(list) = v else {
            return Ok(Err("No functions registered".into()));
        };
        let mut out = Vec::new();
        for entry in list.sequence_values::<Table>() {
            let entry = entry?;
            let names: Vec<String> = entry
                .raw_get::<Table>("flags")?
                .sequence_values::<String>()
                .collect::<mlua::Result<_>>()?;
            let flags = Flags::from_names(names.iter().map(String::as_str)).unwrap_or_default();
            let info = FunctionInfo {
                name: entry.raw_get("name")?,
                description: entry.raw_get("desc")?,
                flags,
            };
            out.push((info, entry.raw_get("fn")?));
        }
        Ok(Ok(out))
    }

    /// FUNCTION LOAD's check of a payload: the library it defines, or Redis's error text
    /// (without `ERR `).
    pub fn load_library(&mut self, payload: &[u8]) -> Result<Library, String> {
        let (name, code) = library_header(payload)?;
        let code = self
            .compile("@user_function", &code)
            .map_err(|e| format!("Error compiling function: {e}"))?;
        let prelude = self.prelude.clone();
        let r = vm::run(
            &prelude,
            &mut NoCommands,
            0,
            vm::Bounds::of(None, ""),
            |lua, internal, _| Self::load_in(lua, internal, &code),
        );
        let functions = match r {
            Ok(Ok(fs)) => fs.into_iter().map(|(i, _)| i).collect::<Vec<_>>(),
            Ok(Err(e)) => return Err(e),
            // A load is never killable.
            Err(vm::Stop::Budget | vm::Stop::Killed(_)) => {
                return Err("FUNCTION LOAD timeout".into())
            }
            Err(vm::Stop::Memory) => {
                return Err("Error registering functions: ERR not enough memory".into())
            }
            Err(vm::Stop::Internal(e)) => return Err(e),
        };
        if functions.is_empty() {
            return Err("No functions registered".into());
        }
        Ok(Library {
            name,
            code: Bytes::copy_from_slice(payload),
            functions,
        })
    }

    /// Runs function `function` of the library `payload` with `keys` and `args`.
    pub fn fcall(
        &mut self,
        host: &mut dyn Host,
        payload: &[u8],
        function: &str,
        inv: &Invocation,
    ) -> Outcome {
        let code =
            match library_header(payload).and_then(|(_, c)| self.compile("@user_function", &c)) {
                Ok(c) => c,
                Err(e) => return Outcome::Done(Reply::err(format!("ERR {e}"))),
            };
        let prelude = self.prelude.clone();
        let reg = inv
            .killable
            .then(|| kill::register(kill::RunKind::Function));
        let bounds = vm::Bounds::of(reg.as_ref().map(|r| r.flag.clone()), "FUNCTION KILL");
        let r = vm::run(&prelude, host, inv.seed, bounds, |lua, internal, resp3| {
            let fs = match Self::load_in(lua, internal, &code)? {
                Ok(fs) => fs,
                Err(e) => return Ok(Ok(Reply::err(format!("ERR {e}")))),
            };
            let Some((_, f)) = fs.into_iter().find(|(i, _)| i.name == function) else {
                return Ok(Ok(Reply::err("ERR Function not found")));
            };
            let run: mlua::Function = internal.raw_get("run")?;
            let keys = new_table(lua, inv.keys)?;
            let args = new_table(lua, inv.args)?;
            let (ok, v): (bool, Value) = run.call((f, keys, args))?;
            Ok(finish(ok, &v, resp3.get(), inv.name))
        });
        match r {
            Ok(Ok(reply)) => Outcome::Done(reply),
            Ok(Err(stop)) | Err(stop) => aborted(stop, inv.name),
        }
    }
}

/// The reply of a finished run, or the stop a memory error means.
fn finish(ok: bool, v: &Value, resp3: bool, name: &str) -> Result<Reply, vm::Stop> {
    if ok {
        return Ok(convert::lua_to_reply(v, resp3));
    }
    let out_of_memory = match v {
        Value::String(s) => s.as_bytes().ends_with(b"not enough memory"),
        Value::Table(t) => matches!(t.raw_get::<Value>("err"),
            Ok(Value::String(s)) if s.as_bytes().ends_with(b"not enough memory")),
        _ => false,
    };
    if out_of_memory {
        return Err(vm::Stop::Memory);
    }
    Ok(convert::script_error(v, name))
}

#[cfg(test)]
mod tests;
