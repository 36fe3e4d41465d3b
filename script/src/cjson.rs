//! The `cjson` library Redis ships (lua-cjson 2.1's API and defaults), written here:
//! `cjson.encode`, `cjson.decode`, `cjson.null`, and the configuration functions (which
//! answer the defaults and keep only the depth limits and number precision). Encoding:
//! tables whose keys are all positive integers are arrays (holes → null; an excessively
//! sparse one is an error, as the default `encode_sparse_array(false, 2, 10)`), other
//! tables objects (string or number keys), an empty table `{}`; numbers with `%.14g`;
//! strings escaped with `/` as `\/`. Decoding: objects and arrays to tables, `null` to
//! `cjson.null`, numbers to Lua numbers, `\u` escapes to UTF-8. Each function returns
//! `(true, result...)` or `(false, message)`; the VM's trampolines raise the message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

/// Deepest nesting encoded or decoded (lua-cjson defaults to 1000; 200 keeps the native
/// stack of the recursive encoder and decoder small on any thread).
const MAX_DEPTH: usize = 200;

/// `cjson.null`: a light userdata NULL, as lua-cjson's.
pub fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if p.0.is_null())
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_number(out: &mut Vec<u8>, n: f64, precision: u8) -> Result<(), String> {
    if !n.is_finite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(crate::fmt::format_g(n, precision).as_bytes());
    Ok(())
}

/// The array length of `t` when every key is a positive integer (`Ok(None)`: an object).
fn array_len(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.fract() != 0.0 {
            return Ok(None);
        }
        max = max.max(n as usize);
        items += 1;
    }
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

struct Encoder {
    out: Vec<u8>,
    max_depth: usize,
    precision: u8,
}

impl Encoder {
    fn value(&mut self, v: &Value, depth: usize) -> Result<(), String> {
        match v {
            Value::Nil => self.out.extend_from_slice(b"null"),
            v if is_null(v) => self.out.extend_from_slice(b"null"),
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Integer(n) => encode_number(&mut self.out, *n as f64, self.precision)?,
            Value::Number(n) => encode_number(&mut self.out, *n, self.precision)?,
            Value::String(s) => encode_string(&mut self.out, &s.as_bytes()),
            Value::Table(t) => self.table(t, depth + 1)?,
            other => {
                return Err(format!(
                    "Cannot serialise {}: type not supported",
                    other.type_name()
                ))
            }
        }
        Ok(())
    }

    fn table(&mut self, t: &Table, depth: usize) -> Result<(), String> {
        if depth > self.max_depth {
            return Err(format!("Cannot serialise, excessive nesting ({depth})"));
        }
        match array_len(t)? {
            Some(n) if n > 0 => {
                self.out.push(b'[');
                for i in 1..=n {
                    if i > 1 {
                        self.out.push(b',');
                    }
                    let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    self.value(&v, depth)?;
                }
                self.out.push(b']');
            }
            _ => {
                self.out.push(b'{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair.map_err(|e| e.to_string())?;
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => encode_string(&mut self.out, &s.as_bytes()),
                        Value::Integer(n) => {
                            let s = crate::fmt::format_g(*n as f64, self.precision);
                            encode_string(&mut self.out, s.as_bytes());
                        }
                        Value::Number(n) => {
                            let s = crate::fmt::format_g(*n, self.precision);
                            encode_string(&mut self.out, s.as_bytes());
                        }
                        _ => {
                            return Err(
                                "Cannot serialise table: table key must be a number or string"
                                    .into(),
                            )
                        }
                    }
                    self.out.push(b':');
                    self.value(&v, depth)?;
                }
                self.out.push(b'}');
            }
        }
        Ok(())
    }
}

struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    i: usize,
    max_depth: usize,
}

impl Decoder<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| b" \t\r\n".contains(c)) {
            self.i += 1;
        }
    }

    /// lua-cjson's parse error: the expected token and lua-cjson's name of the one found.
    fn fail(&self, expected: &str) -> String {
        let rest = &self.s[self.i..];
        let found = match rest.first() {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(c) if c.is_ascii_digit() || *c == b'-' => "T_NUMBER",
            _ if rest.starts_with(b"true") || rest.starts_with(b"false") => "T_BOOLEAN",
            _ if rest.starts_with(b"null") => "T_NULL",
            _ => "invalid token",
        };
        format!(
            "Expected {expected} but found {found} at character {}",
            self.i + 1
        )
    }

    fn lit(&mut self, word: &[u8], v: Value) -> Result<Value, String> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.fail("value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.ws();
        let lerr = |e: mlua::Error| e.to_string();
        match self.s.get(self.i) {
            Some(b'{') | Some(b'[') if depth >= self.max_depth => Err(format!(
                "Found too many nested data structures ({}) at character {}",
                depth + 1,
                self.i + 1
            )),
            Some(b'{') => {
                self.i += 1;
                let t = self.lua.create_table().map_err(lerr)?;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.fail("object key string"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(self.fail("colon"));
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    t.raw_set(k, v).map_err(lerr)?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.fail("comma or object end")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let t = self.lua.create_table().map_err(lerr)?;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Table(t));
                }
                let mut n = 1;
                loop {
                    let v = self.value(depth + 1)?;
                    t.raw_set(n, v).map_err(lerr)?;
                    n += 1;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.fail("comma or array end")),
                    }
                }
            }
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.lit(b"true", Value::Boolean(true)),
            Some(b'f') => self.lit(b"false", Value::Boolean(false)),
            Some(b'n') => self.lit(b"null", null()),
            Some(c) if c.is_ascii_digit() || *c == b'-' => self.number(),
            _ => Err(self.fail("value")),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Value::Number)
            .ok_or_else(|| {
                self.i = start;
                self.fail("value")
            })
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.i += 4;
        Some(v)
    }

    fn string(&mut self) -> Result<mlua::LuaString, String> {
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                self.i = start;
                return Err(self.fail("value"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.fail("value"));
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'u' => {
                            let mut cp = self.hex4().ok_or_else(|| self.fail("value"))?;
                            if (0xd800..0xdc00).contains(&cp)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4().ok_or_else(|| self.fail("value"))?;
                                cp = 0x10000
                                    + ((cp - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        self.lua.create_string(&out).map_err(|e| e.to_string())
    }
}

fn encode_fn(lua: &Lua, depth: Arc<AtomicUsize>) -> mlua::Result<mlua::Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let v = args.into_iter().next().unwrap_or(Value::Nil);
        let mut enc = Encoder {
            out: Vec::new(),
            max_depth: depth.load(Ordering::Relaxed),
            precision: 14,
        };
        Ok(match enc.value(&v, 0) {
            Ok(()) => (true, Value::String(lua.create_string(&enc.out)?)),
            Err(m) => (false, Value::String(lua.create_string(&m)?)),
        })
    })
}

fn decode_fn(lua: &Lua) -> mlua::Result<mlua::Function> {
    lua.create_function(|lua, args: MultiValue| {
        let s = match args.into_iter().next() {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(Value::Number(n)) => crate::fmt::lua_number(n).into_bytes(),
            Some(Value::Integer(n)) => n.to_string().into_bytes(),
            other => {
                let got = other.as_ref().map_or("no value", |v| v.type_name());
                let m = format!("bad argument #1 to 'decode' (string expected, got {got})");
                return Ok((false, Value::String(lua.create_string(&m)?)));
            }
        };
        let mut dec = Decoder {
            lua,
            s: &s,
            i: 0,
            max_depth: MAX_DEPTH,
        };
        let r = dec.value(0).and_then(|v| {
            dec.ws();
            if dec.i < s.len() {
                Err(dec.fail("the end"))
            } else {
                Ok(v)
            }
        });
        Ok(match r {
            Ok(v) => (true, v),
            Err(m) => (false, Value::String(lua.create_string(&m)?)),
        })
    })
}

/// lua-cjson's configuration functions: they answer the defaults (`encode_max_depth`
/// also sets the encoder's limit).
fn config_fn(
    lua: &Lua,
    name: &'static str,
    defaults: &'static str,
    depth: Arc<AtomicUsize>,
) -> mlua::Result<mlua::Function> {
    lua.create_function(move |_, args: MultiValue| {
        if name == "encode_max_depth" {
            if let Some(Value::Number(n)) = args.iter().next() {
                depth.store(n.clamp(1.0, MAX_DEPTH as f64) as usize, Ordering::Relaxed);
            }
        }
        let mut out = vec![Value::Boolean(true)];
        for d in defaults.split(' ') {
            out.push(match d {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                n => Value::Number(n.parse().unwrap_or(0.0)),
            });
        }
        Ok(MultiValue::from_iter(out))
    })
}

/// The `cjson` table of raw functions (each made raising by the VM) and `cjson.null`.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let depth = Arc::new(AtomicUsize::new(MAX_DEPTH));
    t.raw_set("encode", encode_fn(lua, depth.clone())?)?;
    t.raw_set("decode", decode_fn(lua)?)?;
    for (name, defaults) in [
        ("encode_sparse_array", "false 2 10"),
        ("encode_max_depth", "200"),
        ("decode_max_depth", "200"),
        ("encode_number_precision", "14"),
        ("encode_keep_buffer", "true"),
        ("encode_invalid_numbers", "false"),
        ("decode_invalid_numbers", "true"),
    ] {
        t.raw_set(name, config_fn(lua, name, defaults, depth.clone())?)?;
    }
    t.raw_set("null", null())?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lua: &Lua, src: &str) -> String {
        lua.globals().set("cj", table(lua).unwrap()).unwrap();
        lua.load(src).eval::<String>().unwrap()
    }

    #[test]
    fn encodes_and_decodes_like_lua_cjson() {
        let lua = Lua::new();
        assert_eq!(
            run(&lua, "local _, s = cj.encode({1, 2, 'a/b', true}) return s"),
            "[1,2,\"a\\/b\",true]"
        );
        assert_eq!(run(&lua, "local _, s = cj.encode({}) return s"), "{}");
        assert_eq!(
            run(&lua, "local _, s = cj.encode({a={b=0.5}}) return s"),
            "{\"a\":{\"b\":0.5}}"
        );
        assert_eq!(
            run(&lua, "local _, s = cj.encode({[1]=1, [20]=2}) return s"),
            "Cannot serialise table: excessively sparse array"
        );
        assert_eq!(
            run(
                &lua,
                "local _, t = cj.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]') return table.concat(t, ' ')"
            ),
            "0 -5000 -1 0.0003 1023.2 0"
        );
        assert_eq!(
            run(
                &lua,
                "local _, t = cj.decode('{\"k\": [\"\\\\u00e9\", null]}') return t.k[1] .. tostring(t.k[2] == cj.null)"
            ),
            "é".to_string() + "true"
        );
        assert_eq!(
            run(&lua, "local _, m = cj.decode('[1,') return m"),
            "Expected value but found T_END at character 4"
        );
        assert_eq!(
            run(
                &lua,
                "local _, m = cj.decode(string.rep('[', 201)) return m"
            ),
            "Found too many nested data structures (201) at character 201"
        );
    }
}
