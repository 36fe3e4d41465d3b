//! One run of Lua: a fresh VM per script call, discarded afterwards. A fresh VM makes a run
//! depend only on its inputs (the same heap, the same garbage collection, the same memory
//! accounting on every replica, nothing left behind by an earlier script), which is what
//! lets write scripts run at apply time on every replica with the same result.
//!
//! Setup (with the garbage collector stopped): Lua's base, table, string and math libraries
//! (debug only for the prelude, which removes it), then the prelude (`prelude.lua`) with the
//! primitives in
//! `rk`: `call` (the host: `redis.call` / `redis.pcall`), `random` / `randomseed` (Redis's
//! rand48 from the run's seed), `setresp`, `sha1hex`, `log`, `acl_check`, and the abort
//! flags, and `library`, which makes `cjson`, `bit`, `cmsgpack` or `struct` when a script
//! first names it (most scripts use none: making all four took about a third of a run).
//! Then the memory limit ([`crate::MEMORY_LIMIT`] above what setup used) and the
//! instruction hook ([`crate::INSTRUCTION_BUDGET`], counted every [`HOOK_EVERY`]
//! instructions): once over budget every hook call raises again and the prelude's catching
//! primitives rethrow, so `pcall` cannot keep a runaway script alive.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use resp::Reply;

use crate::convert::{error_table, plain_error_table, reply_to_lua};
use crate::raising::Raising;
use crate::{Host, INSTRUCTION_BUDGET, MEMORY_LIMIT};

/// The instruction hook runs every this many VM instructions.
pub const HOOK_EVERY: u32 = 1000;

/// Why a run stopped before its script finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    Budget,
    Memory,
    /// Stopped by a kill request (the command's name: SCRIPT KILL or FUNCTION KILL).
    Killed(&'static str),
    /// Setup or the VM failed (not the script's doing).
    Internal(String),
}

/// Redis's rand48 (`rand.c`): 48-bit linear congruential generator.
pub(crate) struct Rand48(Cell<u64>);

impl Rand48 {
    const MASK: u64 = (1 << 48) - 1;

    pub(crate) fn new(seed: u64) -> Rand48 {
        Rand48(Cell::new(seed & Self::MASK))
    }

    /// `redisSrand48`: the seed's 32 bits above Redis's fixed low word.
    pub(crate) fn seed(&self, s: i32) {
        self.0.set((u64::from(s as u32) << 16) | 0x330E);
    }

    /// `redisLrand48`: 31 random bits.
    pub(crate) fn next(&self) -> i32 {
        let x = self.0.get().wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & Self::MASK;
        self.0.set(x);
        (x >> 17) as i32
    }

    /// Lua's `math.random` with Redis's generator: `[0,1)`, `[1,m]` or `[m,n]`.
    fn random(&self, args: &[f64]) -> Result<f64, &'static str> {
        let r = f64::from(self.next() % i32::MAX) / f64::from(i32::MAX);
        match *args {
            [] => Ok(r),
            [u] => {
                let u = u as i32;
                if u < 1 {
                    return Err("bad argument #1 to 'random' (interval is empty)");
                }
                Ok((r * f64::from(u)).floor() + 1.0)
            }
            [l, u] => {
                let (l, u) = (l as i32, u as i32);
                if l > u {
                    return Err("bad argument #2 to 'random' (interval is empty)");
                }
                Ok((r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l))
            }
            _ => Err("wrong number of arguments"),
        }
    }
}

/// A command's arguments from `redis.call`'s Lua values (`luaArgsToRedisArgv`).
fn argv_of(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    args.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(n) => Ok(Bytes::from(n.to_string())),
            Value::Number(n) => Ok(Bytes::from(crate::fmt::arg_number(n))),
            _ => Err("Lua redis lib command arguments must be strings or integers"),
        })
        .collect()
}

/// The abort flags shared by the hook, the primitives and the caller.
#[derive(Clone, Default)]
struct Flags {
    aborted: Arc<AtomicBool>,
    memory: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    kill_cmd: &'static str,
}

/// A run's instruction budget and, for a killable run, its kill flag.
pub(crate) struct Bounds {
    budget: u64,
    kill: Option<Arc<AtomicBool>>,
    kill_cmd: &'static str,
}

impl Bounds {
    /// [`crate::KILLABLE_BUDGET`] with a kill flag (stopped by `kill_cmd`), else
    /// [`INSTRUCTION_BUDGET`].
    pub(crate) fn of(kill: Option<Arc<AtomicBool>>, kill_cmd: &'static str) -> Bounds {
        let budget = if kill.is_some() {
            crate::KILLABLE_BUDGET
        } else {
            INSTRUCTION_BUDGET
        };
        Bounds {
            budget,
            kill,
            kill_cmd,
        }
    }
}

impl Flags {
    fn stop(&self) -> Option<Stop> {
        if self.memory.load(Ordering::Relaxed) {
            Some(Stop::Memory)
        } else if self.killed.load(Ordering::Relaxed) {
            Some(Stop::Killed(self.kill_cmd))
        } else if self.aborted.load(Ordering::Relaxed) {
            Some(Stop::Budget)
        } else {
            None
        }
    }

    /// Notes a memory error from mlua (an allocation over the limit in a primitive).
    fn note(&self, e: mlua::Error) -> mlua::Error {
        if matches!(e, mlua::Error::MemoryError(_)) {
            self.memory.store(true, Ordering::Relaxed);
            self.aborted.store(true, Ordering::Relaxed);
        }
        e
    }
}

fn static_primitives(lua: &Lua, rk: &Table, flags: &Flags) -> mlua::Result<()> {
    let f = flags.clone();
    rk.raw_set(
        "aborted",
        lua.create_function(move |_, ()| Ok(f.aborted.load(Ordering::Relaxed)))?,
    )?;
    let f = flags.clone();
    rk.raw_set(
        "abort_memory",
        lua.create_function(move |_, mem: bool| {
            if mem {
                f.memory.store(true, Ordering::Relaxed);
                f.aborted.store(true, Ordering::Relaxed);
            }
            Ok(())
        })?,
    )?;
    rk.raw_set(
        "sha1hex",
        lua.create_function(|_, v: Value| {
            let bytes = match v {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => crate::fmt::lua_number(n).into_bytes(),
                _ => Vec::new(),
            };
            Ok(crate::sha1::sha1_hex(&bytes))
        })?,
    )?;
    rk.raw_set(
        "log",
        lua.create_function(|_, (level, msg): (u8, mlua::LuaString)| {
            crate::log(level, &String::from_utf8_lossy(&msg.as_bytes()));
            Ok(())
        })?,
    )?;
    rk.raw_set(
        "acl_check",
        lua.create_function(|lua, args: MultiValue| match argv_of(args) {
            Err(m) => Ok((false, Value::Table(plain_error_table(lua, m)?))),
            Ok(argv) if resp::lookup(&argv[0]).is_some() => Ok((true, Value::Boolean(true))),
            Ok(_) => {
                let e = plain_error_table(lua, "Invalid command passed to redis.acl_check_cmd()")?;
                Ok((false, Value::Table(e)))
            }
        })?,
    )?;
    rk.raw_set("version", crate::REDIS_VERSION)?;
    rk.raw_set("version_num", crate::redis_version_num())?;
    Ok(())
}

/// `setresp`, `random` and `randomseed`: the run's protocol and generator.
fn state_primitives<'scope, 'env>(
    lua: &Lua,
    scope: &'scope mlua::Scope<'scope, 'env>,
    rk: &Table,
    raising: &mut Raising,
    resp3: &'env Cell<bool>,
    rand: &'env Rand48,
) -> mlua::Result<()> {
    rk.raw_set(
        "setresp",
        scope.create_function(|_, v: f64| {
            resp3.set(v == 3.0);
            Ok(())
        })?,
    )?;
    let random = scope.create_function(|lua, args: MultiValue| {
        let nums: Vec<f64> = args
            .iter()
            .map(|v| match v {
                Value::Integer(n) => *n as f64,
                Value::Number(n) => *n,
                _ => 0.0,
            })
            .collect();
        Ok(match rand.random(&nums) {
            Ok(r) => (true, Value::Number(r)),
            Err(m) => (false, Value::String(lua.create_string(m)?)),
        })
    })?;
    rk.raw_set("random", raising.wrap(lua, random, true)?)?;
    rk.raw_set(
        "randomseed",
        scope.create_function(|_, v: f64| {
            rand.seed(v as i32);
            Ok(())
        })?,
    )?;
    Ok(())
}

/// The run's bounds: [`MEMORY_LIMIT`] more bytes than setup used, and the instruction hook.
fn limit(lua: &Lua, flags: &Flags, bounds: Bounds) -> mlua::Result<()> {
    lua.set_memory_limit(lua.used_memory() + MEMORY_LIMIT)?;
    let (count, fl) = (Arc::new(AtomicU64::new(0)), flags.clone());
    let Bounds { budget, kill, .. } = bounds;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            if kill.as_ref().is_some_and(|k| k.load(Ordering::Relaxed)) {
                fl.killed.store(true, Ordering::Relaxed);
                fl.aborted.store(true, Ordering::Relaxed);
                return Err(mlua::Error::RuntimeError("killed".into()));
            }
            let n = count.fetch_add(u64::from(HOOK_EVERY), Ordering::Relaxed);
            if n + u64::from(HOOK_EVERY) > budget {
                fl.aborted.store(true, Ordering::Relaxed);
                return Err(mlua::Error::RuntimeError(
                    "instruction budget exceeded".into(),
                ));
            }
            Ok(VmState::Continue)
        },
    )
}

/// Runs `job` in a fresh VM set up with the prelude (its bytecode), `host` behind
/// `redis.call` and `math.random` seeded with `seed`. The job gets the VM, the prelude's
/// `internal` table and whether the script asked for RESP3.
pub(crate) fn run<R>(
    prelude: &[u8],
    host: &mut dyn Host,
    seed: u64,
    bounds: Bounds,
    job: impl FnOnce(&Lua, &Table, &Cell<bool>) -> mlua::Result<R>,
) -> Result<R, Stop> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
    // SAFETY: `debug` is needed by the prelude's error handler, which removes it from the
    // globals before any script runs; C modules cannot be loaded (no `package`).
    let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::new()) };
    let flags = Flags {
        kill_cmd: bounds.kill_cmd,
        ..Flags::default()
    };
    let resp3 = Cell::new(false);
    let rand = Rand48::new(seed);
    // No collection while the sandbox is set up (it allocates only what every run keeps):
    // the same on every replica, and restarted before the script runs.
    lua.gc_stop();
    let result = lua.scope(|scope| {
        let raising = Rc::new(RefCell::new(Raising::new(&lua)?));
        let rk = lua.create_table()?;
        static_primitives(&lua, &rk, &flags)?;
        let (fl, r3) = (flags.clone(), &resp3);
        let call = scope.create_function_mut(move |lua, args: MultiValue| {
            let argv = match argv_of(args) {
                Ok(a) => a,
                Err(m) => return Ok((false, Value::Table(plain_error_table(lua, m)?))),
            };
            match host.call(argv) {
                Reply::Error(e) => Ok((false, Value::Table(error_table(lua, &e)?))),
                r => Ok((
                    true,
                    reply_to_lua(lua, r, r3.get()).map_err(|e| fl.note(e))?,
                )),
            }
        })?;
        rk.raw_set(
            "call_raising",
            raising.borrow_mut().wrap(&lua, call.clone(), false)?,
        )?;
        rk.raw_set("call", call)?;
        state_primitives(&lua, scope, &rk, &mut raising.borrow_mut(), &resp3, &rand)?;
        // The prelude's own raising functions (`(true, v...)` / `(false, error)` in Lua).
        let r = raising.clone();
        rk.raw_set(
            "make_raising",
            scope.create_function(move |lua, f: mlua::Function| {
                r.borrow_mut().wrap(lua, f, false)
            })?,
        )?;
        // A library table, made when a script first names it (see prelude.lua).
        rk.raw_set(
            "library",
            scope.create_function(move |lua, name: mlua::LuaString| {
                let lib = match &name.as_bytes()[..] {
                    b"cjson" => crate::cjson::table(lua)?,
                    b"bit" => crate::bit::table(lua)?,
                    b"cmsgpack" => crate::cmsgpack::table(lua)?,
                    b"struct" => crate::structlib::table(lua)?,
                    _ => return Ok(None),
                };
                raising.borrow_mut().wrap_table(lua, &lib, true)?;
                Ok(Some(lib))
            })?,
        )?;
        let internal: Table = lua
            .load(prelude)
            .set_name("=raftkv")
            .set_mode(ChunkMode::Binary)
            .call(rk)?;
        lua.gc_restart();
        limit(&lua, &flags, bounds)?;
        job(&lua, &internal, &resp3)
    });
    if let Some(stop) = flags.stop() {
        return Err(stop);
    }
    result.map_err(|e| match e {
        mlua::Error::MemoryError(_) => Stop::Memory,
        e => Stop::Internal(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_is_redis_sequence() {
        // Redis's generator seeded by redisSrand48(0) (the state Redis 6 reset scripts to).
        let r = Rand48::new(0);
        r.seed(0);
        let first: Vec<i32> = (0..3).map(|_| r.next()).collect();
        let again = Rand48::new(0);
        again.seed(0);
        assert_eq!(first, (0..3).map(|_| again.next()).collect::<Vec<_>>());
        assert!(first.iter().all(|&x| x >= 0));
        assert_eq!(
            r.random(&[0.0]),
            Err("bad argument #1 to 'random' (interval is empty)")
        );
        let v = r.random(&[5.0, 7.0]).unwrap();
        assert!((5.0..=7.0).contains(&v) && v.fract() == 0.0);
    }
}
