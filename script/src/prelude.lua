-- raftkv's Lua sandbox, run first in every fresh VM (see vm.rs). It turns the VM's globals
-- into Redis 7.0's: read-only globals and library tables ("Attempt to modify a readonly
-- table"), an error on reading a missing global, the `redis` API on top of the Rust
-- primitives in `rk`, deterministic `tostring` of tables and functions, `pcall` returning
-- Redis errors as strings, `loadstring` without bytecode, and the error handler that adds
-- the script's source and line. Frames of this chunk (source `=raftkv`) count as Redis's C
-- functions in error positions.
local rk = ...
local getinfo = debug.getinfo
local raw_setmetatable, raw_getmetatable, raw_rawset, raw_rawget, raw_next =
  setmetatable, getmetatable, rawset, rawget, next
local raw_pcall, raw_xpcall, raw_error, raw_type, raw_tostring, raw_select, raw_unpack =
  pcall, xpcall, error, type, tostring, select, unpack
local raw_loadstring, raw_tonumber = loadstring, tonumber
local co_resume = coroutine.resume
local s_byte, s_sub, s_find, s_gsub, s_lower, s_format =
  string.byte, string.sub, string.find, string.gsub, string.lower, string.format
local t_concat = table.concat
local G = _G

local READONLY = 'Attempt to modify a readonly table'
local real = raw_setmetatable({}, {__mode = 'k'}) -- protected proxy -> its table
local metas = raw_setmetatable({}, {__mode = 'k'}) -- proxy -> what getmetatable shows

local function ro_newindex() raw_error(READONLY, 2) end

local function protect(t, shown_meta)
  local p = raw_setmetatable({}, {__index = t, __newindex = ro_newindex})
  real[p] = t
  metas[p] = shown_meta
  return p
end

-- A Redis error table from an error text (`luaPushErrorBuff`): "-CODE msg" or "msg".
local function err_table(s)
  local code, msg = 'ERR', s
  if s_byte(s, 1) == 45 then
    local sp = s_find(s, ' ', 1, true)
    if sp then code, msg = s_sub(s, 2, sp - 1), s_sub(s, sp + 1) else msg = s_sub(s, 2) end
  end
  msg = s_gsub(s_gsub(msg, '^[\r\n]+', ''), '[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end
local function raise(msg) raw_error(err_table(msg)) end

-- Aborts (instruction budget, memory) cannot be caught: every catching primitive rethrows.
local function rethrow_abort(ok, ...)
  if not ok then
    local e = ...
    if rk.aborted() or e == 'not enough memory' then
      rk.abort_memory(e == 'not enough memory')
      raw_error(e, 0)
    end
  end
  return ok, ...
end

local function redis_pcall_result(ok, ...)
  if ok then return true, ... end
  rethrow_abort(ok, ...)
  local e = ...
  if raw_type(e) == 'table' then
    local m = e.err
    if raw_type(m) == 'string' or raw_type(m) == 'number' then e = m end
  end
  return false, e
end

-- ---- the environment scripts see ----
local env = {}
for k, v in raw_next, G do env[k] = v end
for k in raw_next, env do G[k] = nil end
for _, k in raw_next, {'print', 'dofile', 'loadfile', 'debug', 'module', 'require', 'package'} do
  env[k] = nil
end

env.pcall = function(f, ...) return redis_pcall_result(raw_pcall(f, ...)) end
env.xpcall = function(f, h) return rethrow_abort(raw_xpcall(f, h)) end
env.coroutine.resume = function(c, ...) return rethrow_abort(co_resume(c, ...)) end
env.loadstring = function(s, name)
  if raw_type(s) == 'string' and s_byte(s, 1) == 27 then
    return nil, 'loading binary chunks is not allowed'
  end
  return raw_loadstring(s, name)
end
env.load = function(f, name)
  if raw_type(f) ~= 'function' then return env.loadstring(f, name) end
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    if raw_type(p) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = p
  end
  return env.loadstring(t_concat(parts), name)
end
local raising = rk.make_raising
env.setmetatable = raising(function(t, mt)
  if real[t] then return false, READONLY end
  return true, raw_setmetatable(t, mt)
end)
env.getmetatable = function(t)
  if real[t] then return metas[t] end
  return raw_getmetatable(t)
end
env.rawset = raising(function(t, k, v)
  if real[t] then return false, READONLY end
  return true, raw_rawset(t, k, v)
end)
env.rawget = function(t, k)
  local r = real[t]
  if r then return raw_rawget(r, k) end
  return raw_rawget(t, k)
end
local function next_(t, k)
  local r = real[t]
  if r then return raw_next(r, k) end
  return raw_next(t, k)
end
env.next = next_
env.pairs = function(t) return next_, t, nil end

-- tostring without addresses: objects get ids in the order they are first shown.
local ids, last_id = raw_setmetatable({}, {__mode = 'k'}), 0
env.tostring = function(v)
  local s = raw_tostring(v)
  local t = raw_type(v)
  if t == 'table' or t == 'function' or t == 'thread' or t == 'userdata' then
    if s_find(s, '^' .. t .. ': ') and (s_find(s, ': 0x%x+$') or s_find(s, ': %(nil%)$')) then
      if s_find(s, ': %(nil%)$') or s_find(s, ': 0x0+$') then return t .. ': (nil)' end
      local id = ids[v]
      if not id then last_id = last_id + 1; id = last_id; ids[v] = id end
      return s_format('%s: 0x%08x', t, id)
    end
  end
  return s
end

env.math.randomseed = rk.randomseed

-- ---- the redis API ----
local log = raising(function(...)
  local n = raw_select('#', ...)
  if n < 2 then return false, err_table('redis.log() requires two arguments or more.') end
  local level = raw_tonumber((...))
  if level == nil then return false, err_table('First argument must be a number (log level).') end
  level = level - level % 1
  if level < 0 or level > 3 then return false, err_table('Invalid debug level.') end
  local parts = {}
  for i = 2, n do
    local s = raw_select(i, ...)
    local ts = raw_type(s)
    if ts == 'string' or ts == 'number' then parts[#parts + 1] = s end
  end
  rk.log(level, t_concat(parts, ' '))
  return true
end)

local function add_common(r)
  r.log = log
  r.LOG_DEBUG, r.LOG_VERBOSE, r.LOG_NOTICE, r.LOG_WARNING = 0, 1, 2, 3
  r.REDIS_VERSION, r.REDIS_VERSION_NUM = rk.version, rk.version_num
end

local call = rk.call
local rr = {}
add_common(rr)
rr.call = rk.call_raising
rr.pcall = function(...)
  local _, v = call(...)
  return v
end
rr.sha1hex = raising(function(...)
  if raw_select('#', ...) ~= 1 then return false, err_table('wrong number of arguments') end
  return true, rk.sha1hex((...))
end)
rr.error_reply = function(...)
  local e = ...
  if raw_select('#', ...) ~= 1 or raw_type(e) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  if s_byte(e, 1) ~= 45 then e = '-' .. e end
  return err_table(e)
end
rr.status_reply = function(...)
  local s = ...
  if raw_select('#', ...) ~= 1 or raw_type(s) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  return {ok = s}
end
rr.setresp = raising(function(...)
  if raw_select('#', ...) ~= 1 then return false, err_table('redis.setresp() requires one argument.') end
  local v = raw_tonumber((...)) or 0
  v = v - v % 1
  if v ~= 2 and v ~= 3 then return false, err_table('RESP version must be 2 or 3.') end
  rk.setresp(v)
  return true
end)
rr.set_repl = raising(function(...)
  if raw_select('#', ...) ~= 1 then return false, err_table('redis.set_repl() requires two arguments.') end
  local v = raw_tonumber((...)) or 0
  if v ~= 0 and v ~= 1 and v ~= 2 and v ~= 3 then
    return false, err_table('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
  return true
end)
rr.REPL_NONE, rr.REPL_AOF, rr.REPL_SLAVE, rr.REPL_REPLICA, rr.REPL_ALL = 0, 1, 2, 2, 3
rr.replicate_commands = function() return true end
rr.breakpoint = function() return false end
rr.debug = function() end
rr.acl_check_cmd = raising(rk.acl_check)

-- ---- functions: redis.register_function while a library loads ----
local loading, registered, order = false, {}, {}
local function reg_err(m) raise(m) end
local function is_str(v) local t = raw_type(v) return t == 'string' or t == 'number' end
local FLAGS = {'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}
local function read_flags(t)
  local out, i = {}, 1
  while true do
    local f = t[i]
    if f == nil then return out end
    if not is_str(f) then return nil end
    local found
    for _, name in raw_next, FLAGS do
      if s_lower(f) == name then found = name end
    end
    if not found then return nil end
    out[#out + 1] = found
    i = i + 1
  end
end
local function register_function(...)
  if not loading then reg_err('redis.register_function can only be called on FUNCTION LOAD command') end
  local n = raw_select('#', ...)
  if n < 1 or n > 2 then reg_err('wrong number of arguments to redis.register_function') end
  local name, fn, desc, flags
  if n == 1 then
    local t = ...
    if raw_type(t) ~= 'table' then
      reg_err('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for k, v in raw_next, t do
      if not is_str(k) then reg_err('named argument key given to redis.register_function is not a string') end
      local key = s_lower(k)
      if key == 'function_name' then
        if not is_str(v) then reg_err('function_name argument given to redis.register_function must be a string') end
        name = raw_tostring(v)
      elseif key == 'description' then
        if not is_str(v) then reg_err('description argument given to redis.register_function must be a string') end
        desc = raw_tostring(v)
      elseif key == 'callback' then
        if raw_type(v) ~= 'function' then reg_err('callback argument given to redis.register_function must be a function') end
        fn = v
      elseif key == 'flags' then
        if raw_type(v) ~= 'table' then reg_err('flags argument to redis.register_function must be a table representing function flags') end
        flags = read_flags(v)
        if not flags then reg_err('unknown flag given') end
      else
        reg_err('unknown argument given to redis.register_function')
      end
    end
    if not name then reg_err('redis.register_function must get a function name argument') end
    if not fn then reg_err('redis.register_function must get a callback argument') end
  else
    local a, b = ...
    if not is_str(a) then reg_err('first argument to redis.register_function must be a string') end
    if raw_type(b) ~= 'function' then reg_err('second argument to redis.register_function must be a function') end
    name, fn = raw_tostring(a), b
  end
  if not s_find(name, '^[%w_]+$') then
    reg_err('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  if registered[name] then reg_err('Function already exists in the library') end
  registered[name] = {fn = fn, flags = flags or {}, desc = desc}
  order[#order + 1] = name
end

-- What a library's top level sees while it loads: only `redis`, with the load API.
local function missing_global(_, k)
  raw_error("Script attempted to access nonexistent global variable '" .. raw_tostring(k) .. "'", 2)
end
local lr = {register_function = register_function}
add_common(lr)
local load_env = {redis = protect(raw_setmetatable(lr, {__index = missing_global}))}
raw_setmetatable(load_env, {__index = missing_global})

env.math.random = rk.random

-- ---- lock it all ----
for _, name in raw_next, {'string', 'math', 'table', 'coroutine'} do
  if env[name] then env[name] = protect(env[name]) end
end
env.redis = protect(rr)
-- cjson, bit, cmsgpack and struct are made (protected) when a script first names one: most
-- scripts use none, and making them took a good part of a run. Until then `pairs(_G)` and
-- `rawget(_G, ...)` do not show them.
local make_library = rk.library
raw_setmetatable(env, {__index = function(_, k)
  local lib = raw_type(k) == 'string' and make_library(k)
  if lib then
    lib = protect(lib)
    raw_rawset(env, k, lib)
    return lib
  end
  raw_error("Script attempted to access nonexistent global variable '" .. raw_tostring(k) .. "'", 2)
end})
local gmt = {__index = env, __newindex = ro_newindex}
raw_setmetatable(G, gmt)
real[G] = env
metas[G] = protect(gmt)
env._G = G

-- ---- running ----
local function handler(err)
  local lvl = 2
  local i = getinfo(lvl, 'nSl')
  while i and (i.what == 'C' or i.source == '=raftkv') do
    lvl = lvl + 1
    i = getinfo(lvl, 'nSl')
  end
  if raw_type(err) ~= 'table' then err = {err = 'ERR ' .. raw_tostring(err)} end
  if i then
    raw_rawset(err, 'source', i.source)
    raw_rawset(err, 'line', i.currentline)
  end
  return err
end

local internal = {}
-- Runs `f(...)` under the error handler: true and its first result, or false and the error.
function internal.run(f, ...)
  local n, args = raw_select('#', ...), {...}
  return raw_xpcall(function() return (f(raw_unpack(args, 1, n))) end, handler)
end
-- Sets KEYS and ARGV (EVAL).
function internal.set_keys_argv(keys, argv) env.KEYS, env.ARGV = keys, argv end
-- Runs a library's top level in load mode: the registered functions, in order, or an error.
function internal.load_library(chunk)
  loading, registered, order = true, {}, {}
  gmt.__index = load_env
  local ok, e = raw_pcall(chunk)
  loading = false
  gmt.__index = env
  if not ok then return false, e end
  local out = {}
  for i, name in raw_next, order do
    local r = registered[name]
    out[i] = {name = name, fn = r.fn, flags = r.flags, desc = r.desc}
  end
  return true, out
end
return internal
