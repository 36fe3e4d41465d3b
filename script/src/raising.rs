//! Primitives that raise Lua errors the way Redis's C functions do. A Rust primitive
//! answers `(true, value)` or `(false, error)`; the C trampoline in front of it returns the
//! value or raises the error, a string one prefixed with the caller's position like C's
//! `luaL_error` (`user_script:3: ...`). Being C functions, they keep the caller's frame in a
//! Lua tail call (`return redis.call(...)`), so the error handler still finds the script's
//! line, as with Redis.

use std::ffi::c_int;

use mlua::{ffi, Function, Lua, Table};

/// The registry table holding the primitives the trampolines call, by index.
const PRIMS: &std::ffi::CStr = c"raftkv.prims";

/// Most raising primitives one VM has.
pub(crate) const MAX: usize = 48;

/// Calls primitive `K` with the arguments; it answers `true, results...` (returned) or
/// `false, error` (raised).
unsafe extern "C-unwind" fn trampoline<const K: i32, const WHERE: bool>(
    l: *mut ffi::lua_State,
) -> c_int {
    // SAFETY (whole body): called by Lua as a C function; this frame owns no Rust values,
    // so Lua's error jumps may cross it. A C function has LUA_MINSTACK free slots.
    let n = ffi::lua_gettop(l);
    ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, PRIMS.as_ptr());
    ffi::lua_rawgeti(l, -1, ffi::lua_Integer::from(K));
    ffi::lua_remove(l, -2);
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, n, ffi::LUA_MULTRET);
    if ffi::lua_toboolean(l, 1) != 0 {
        ffi::lua_remove(l, 1);
        return ffi::lua_gettop(l);
    }
    ffi::lua_settop(l, 2);
    if WHERE && ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
        ffi::luaL_where(l, 1);
        ffi::lua_insert(l, -2);
        ffi::lua_concat(l, 2);
    }
    ffi::lua_error(l)
}

macro_rules! table_of {
    ($w:literal; $($k:literal)*) => {
        [$(trampoline::<$k, $w> as ffi::lua_CFunction),*]
    };
}

static PLAIN: [ffi::lua_CFunction; MAX] = table_of!(false; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
    16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45
    46 47);
static WITH_WHERE: [ffi::lua_CFunction; MAX] = table_of!(true; 0 1 2 3 4 5 6 7 8 9 10 11 12 13
    14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43
    44 45 46 47);

/// Hands out raising functions for one VM.
pub(crate) struct Raising {
    prims: Table,
    next: usize,
}

impl Raising {
    pub(crate) fn new(lua: &Lua) -> mlua::Result<Raising> {
        let prims = lua.create_table()?;
        lua.set_named_registry_value("raftkv.prims", &prims)?;
        Ok(Raising { prims, next: 0 })
    }

    /// A C function that calls `prim` and raises its error (`with_where`: a string error
    /// gets the caller's position).
    pub(crate) fn wrap(
        &mut self,
        lua: &Lua,
        prim: Function,
        with_where: bool,
    ) -> mlua::Result<Function> {
        let k = self.next;
        if k >= MAX {
            return Err(mlua::Error::RuntimeError(
                "too many raising primitives".into(),
            ));
        }
        self.next += 1;
        self.prims.raw_set(k as i64, prim)?;
        let f = if with_where { WITH_WHERE[k] } else { PLAIN[k] };
        // SAFETY: the trampolines follow Lua's C function protocol (see above).
        unsafe { lua.create_c_function(f) }
    }

    /// Replaces every function of `t` by its raising form (`with_where`).
    pub(crate) fn wrap_table(
        &mut self,
        lua: &Lua,
        t: &Table,
        with_where: bool,
    ) -> mlua::Result<()> {
        let fs: Vec<(String, Function)> = t
            .pairs::<String, mlua::Value>()
            .filter_map(|p| match p {
                Ok((k, mlua::Value::Function(f))) => Some(Ok((k, f))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<mlua::Result<_>>()?;
        for (k, f) in fs {
            let w = self.wrap(lua, f, with_where)?;
            t.raw_set(k, w)?;
        }
        Ok(())
    }
}
