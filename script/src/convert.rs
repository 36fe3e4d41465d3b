//! Redis 7.0's conversions between replies and Lua values (`script_lua.c`), both ways:
//!
//! - a command's reply to Lua (`redis.call`): integer → number, bulk → string, nil bulk and
//!   nil array → `false` (RESP2) or `nil` (RESP3), status → `{ok=...}`, error →
//!   `{err=...}`, array → table; with `redis.setresp(3)` maps → `{map={...}}`, sets →
//!   `{set={[m]=true}}`, doubles → `{double=n}`, booleans, big numbers → `{big_number=s}`,
//!   verbatim → `{verbatim_string={format=..., string=...}}` (RESP2 flattens maps and sets
//!   and sends doubles as strings, as the reply's RESP2 encoding does);
//! - a script's value to a reply: string → bulk, number → integer (truncated), `true` → 1
//!   and `false` → nil (RESP2) or booleans (RESP3), tables by their `err` / `ok` / `double`
//!   / `big_number` / `verbatim_string` / `map` / `set` field or as an array up to the
//!   first nil, anything else → nil. Fields are read raw (no metamethods run).

use bytes::Bytes;
use mlua::{Lua, Table, Value};
use resp::Reply;

/// Deepest table nesting converted; deeper values (or a table that contains itself) give
/// an error reply in their place, as Redis runs out of Lua stack.
const MAX_DEPTH: usize = 200;

/// The error table Redis builds from an error text (`luaPushErrorBuff`): `-CODE msg` or
/// `CODE msg` keep their code, a text without a space gets `ERR`; CR/LF trimmed.
pub(crate) fn error_text(text: &str) -> String {
    let (code, msg) = match text.strip_prefix('-') {
        Some(t) => t.split_once(' ').unwrap_or(("ERR", t)),
        None => ("ERR", text),
    };
    format!("{code} {}", msg.trim_matches(['\r', '\n']))
}

/// The error table of a command's error reply (its text starts with its code).
pub(crate) fn error_table(lua: &Lua, text: &str) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set("err", error_text(&format!("-{text}")))?;
    Ok(t)
}

/// The error table of a message without a code (`luaPushError`): `{err = "ERR msg"}`.
pub(crate) fn plain_error_table(lua: &Lua, msg: &str) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set("err", error_text(msg))?;
    Ok(t)
}

fn bytes_value(lua: &Lua, b: &[u8]) -> mlua::Result<Value> {
    Ok(Value::String(lua.create_string(b)?))
}

fn field_table(lua: &Lua, name: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(name, v)?;
    Ok(Value::Table(t))
}

fn array(lua: &Lua, items: Vec<Reply>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, r) in items.into_iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, r, resp3)?)?;
    }
    Ok(Value::Table(t))
}

fn flat(pairs: Vec<(Reply, Reply)>) -> Vec<Reply> {
    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
}

/// A command's reply as the Lua value `redis.call` returns, the way a script client of
/// protocol `resp3` would see it.
pub(crate) fn reply_to_lua(lua: &Lua, r: Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Bulk(b) => bytes_value(lua, &b)?,
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Status(s) => field_table(lua, "ok", bytes_value(lua, s.as_bytes())?)?,
        Reply::Error(e) => Value::Table(error_table(lua, &e)?),
        Reply::Array(items) => array(lua, items, resp3)?,
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                let k = reply_to_lua(lua, k, resp3)?;
                let v = reply_to_lua(lua, v, resp3)?;
                if !k.is_nil() {
                    t.raw_set(k, v)?;
                }
            }
            field_table(lua, "map", Value::Table(t))?
        }
        Reply::Map(pairs) => array(lua, flat(pairs), resp3)?,
        Reply::Pairs(pairs) if resp3 => array(
            lua,
            pairs
                .into_iter()
                .map(|(a, b)| Reply::Array(vec![a, b]))
                .collect(),
            resp3,
        )?,
        Reply::Pairs(pairs) => array(lua, flat(pairs), resp3)?,
        Reply::Set(items) if resp3 => {
            let t = lua.create_table_with_capacity(0, items.len())?;
            for m in items {
                let m = reply_to_lua(lua, m, resp3)?;
                if !m.is_nil() {
                    t.raw_set(m, true)?;
                }
            }
            field_table(lua, "set", Value::Table(t))?
        }
        Reply::Set(items) | Reply::Push(items) => array(lua, items, resp3)?,
        Reply::Double(d) if resp3 => field_table(lua, "double", Value::Number(d))?,
        Reply::Double(d) => bytes_value(lua, resp::encode::format_reply_double(d).as_bytes())?,
        Reply::DoubleText(t) if resp3 => {
            field_table(lua, "double", Value::Number(t.parse().unwrap_or(f64::NAN)))?
        }
        Reply::DoubleText(t) => bytes_value(lua, t.as_bytes())?,
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(f64::from(u8::from(b))),
        Reply::BigNumber(n) if resp3 => {
            field_table(lua, "big_number", bytes_value(lua, n.as_bytes())?)?
        }
        Reply::BigNumber(n) => bytes_value(lua, n.as_bytes())?,
        Reply::Verbatim(s) if resp3 => {
            let v = lua.create_table_with_capacity(0, 2)?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(s.as_bytes())?)?;
            field_table(lua, "verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim(s) => bytes_value(lua, s.as_bytes())?,
    })
}

fn lossy(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Number(n) => Some(crate::fmt::lua_number(*n)),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Lua's `(long long)` cast of a number (truncation; out of range saturates).
fn truncate(n: f64) -> i64 {
    n as i64
}

/// A script's value as the reply its client gets; `resp3`: the script's `redis.setresp`.
pub(crate) fn lua_to_reply(v: &Value, resp3: bool) -> Reply {
    to_reply(v, resp3, 0)
}

fn to_reply(v: &Value, resp3: bool, depth: usize) -> Reply {
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(truncate(*n)),
        Value::Table(t) if depth >= MAX_DEPTH => {
            let _ = t;
            Reply::err("ERR reached lua stack limit")
        }
        Value::Table(t) => table_to_reply(t, resp3, depth),
        _ => Reply::Nil,
    }
}

fn raw(t: &Table, k: &str) -> Value {
    t.raw_get::<Value>(k).unwrap_or(Value::Nil)
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    if let Value::String(e) = raw(t, "err") {
        return Reply::Error(String::from_utf8_lossy(&e.as_bytes()).into_owned());
    }
    if let Value::String(s) = raw(t, "ok") {
        return Reply::Status(String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " "));
    }
    if let Some(d) = number(&raw(t, "double")) {
        return Reply::Double(d);
    }
    if let Value::String(s) = raw(t, "big_number") {
        let n = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::BigNumber(n);
    }
    if let Value::Table(v) = raw(t, "verbatim_string") {
        if let (Some(_), Some(s)) = (lossy(&raw(&v, "format")), lossy(&raw(&v, "string"))) {
            return Reply::Verbatim(s);
        }
    }
    if let Value::Table(m) = raw(t, "map") {
        let mut out = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            out.push((
                to_reply(&k, resp3, depth + 1),
                to_reply(&v, resp3, depth + 1),
            ));
        }
        return Reply::Map(out);
    }
    if let Value::Table(s) = raw(t, "set") {
        let mut out = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            out.push(to_reply(&k, resp3, depth + 1));
        }
        return Reply::Set(out);
    }
    let mut out = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => out.push(to_reply(&v, resp3, depth + 1)),
        }
    }
    Reply::Array(out)
}

/// The error reply of a script that raised `err` (the handler's table: `err`, `source`,
/// `line`), as `luaCallFunction` words it: `<err> script: <name>, on <source>:<line>.`
pub(crate) fn script_error(err: &Value, name: &str) -> Reply {
    let Value::Table(t) = err else {
        let msg = lossy(err).unwrap_or_else(|| "execution failure".into());
        return Reply::err(format!("ERR Error running script {name}, {msg:.100}"));
    };
    let msg = lossy(&raw(t, "err")).unwrap_or_else(|| "ERR unknown error".into());
    match (lossy(&raw(t, "source")), lossy(&raw(t, "line"))) {
        (Some(src), Some(line)) => Reply::err(format!("{msg} script: {name}, on {src}:{line}.")),
        _ => Reply::err(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_keep_their_code() {
        assert_eq!(error_text("-WRONGTYPE Operation"), "WRONGTYPE Operation");
        assert_eq!(error_text("-ERR value is bad\r\n"), "ERR value is bad");
        assert_eq!(error_text("-My Error"), "My Error");
        assert_eq!(error_text("-nospace"), "ERR nospace");
        assert_eq!(error_text("plain text"), "ERR plain text");
    }

    #[test]
    fn replies_to_lua_and_back() {
        let lua = Lua::new();
        let round = |r: Reply, resp3: bool| {
            let v = reply_to_lua(&lua, r, resp3).unwrap();
            lua_to_reply(&v, resp3)
        };
        assert_eq!(round(Reply::Int(7), false), Reply::Int(7));
        assert_eq!(round(Reply::bulk("x"), false), Reply::bulk("x"));
        assert_eq!(round(Reply::Nil, false), Reply::Nil);
        assert_eq!(round(Reply::Nil, true), Reply::Nil);
        assert_eq!(round(Reply::ok(), false), Reply::ok());
        assert_eq!(round(Reply::err("ERR x y"), false), Reply::err("ERR x y"));
        let arr = Reply::Array(vec![Reply::Int(1), Reply::bulk("a"), Reply::Int(3)]);
        assert_eq!(round(arr.clone(), false), arr);
        // RESP2 flattens maps and sends doubles as strings.
        let map = Reply::Map(vec![(Reply::bulk("f"), Reply::bulk("v"))]);
        assert_eq!(
            round(map.clone(), false),
            Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
        );
        assert_eq!(round(map.clone(), true), map);
        assert_eq!(round(Reply::Double(1.5), false), Reply::bulk("1.5"));
        assert_eq!(round(Reply::Double(1.5), true), Reply::Double(1.5));
        assert_eq!(round(Reply::Bool(true), true), Reply::Bool(true));
        assert_eq!(round(Reply::Bool(true), false), Reply::Int(1));
        let set = Reply::Set(vec![Reply::bulk("m")]);
        assert_eq!(round(set.clone(), true), set);
        assert_eq!(
            round(Reply::BigNumber("123".into()), true),
            Reply::BigNumber("123".into())
        );
    }

    #[test]
    fn lua_values_to_replies() {
        let lua = Lua::new();
        let eval = |src: &str, resp3: bool| {
            let v: Value = lua.load(src).eval().unwrap();
            lua_to_reply(&v, resp3)
        };
        assert_eq!(eval("return 100.5", false), Reply::Int(100));
        assert_eq!(eval("return -3.9", false), Reply::Int(-3));
        assert_eq!(eval("return true", false), Reply::Int(1));
        assert_eq!(eval("return false", false), Reply::Nil);
        assert_eq!(eval("return false", true), Reply::Bool(false));
        assert_eq!(eval("return nil", false), Reply::Nil);
        assert_eq!(
            eval("return {ok='fi\\r\\nne'}", false),
            Reply::Status("fi  ne".into())
        );
        assert_eq!(
            eval("return {err='My Error'}", false),
            Reply::err("My Error")
        );
        assert_eq!(
            eval("return {1,2,3,'ciao',{1,2}}", false),
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(2),
                Reply::Int(3),
                Reply::bulk("ciao"),
                Reply::Array(vec![Reply::Int(1), Reply::Int(2)])
            ])
        );
        assert_eq!(
            eval("return {1,nil,3}", false),
            Reply::Array(vec![Reply::Int(1)])
        );
        assert_eq!(eval("return {double=3.5}", true), Reply::Double(3.5));
        assert_eq!(
            eval("return {map={a=1}}", true),
            Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))])
        );
        assert_eq!(
            eval("return {set={a=true}}", true),
            Reply::Set(vec![Reply::bulk("a")])
        );
        assert_eq!(eval("return function() end", false), Reply::Nil);
        let deep = eval("local t = {} t[1] = t return t", false);
        let mut r = &deep;
        for _ in 0..MAX_DEPTH {
            match r {
                Reply::Array(v) => r = &v[0],
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(r, &Reply::err("ERR reached lua stack limit"));
    }
}
