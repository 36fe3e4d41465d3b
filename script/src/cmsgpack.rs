//! The `cmsgpack` library Redis ships (lua-cmsgpack 0.4's API and encoding), written here:
//! `cmsgpack.pack(...)` (each value encoded, concatenated), `cmsgpack.unpack(s)` (every
//! value), `cmsgpack.unpack_one(s [, offset])` and `cmsgpack.unpack_limit(s, limit [,
//! offset])` (the next offset, -1 at the end, then the values). Numbers that are integers
//! pack as the smallest integer type, others as float when exact, else double; tables whose
//! keys are exactly 1..n as arrays, others as maps; nesting past 16 levels packs nil.
//! Each function returns `(true, results...)` or `(false, message)`.

use mlua::{Lua, MultiValue, Table, Value};

const MAX_NESTING: usize = 16;

fn int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        let u = n as u64;
        match u {
            0..=0x7f => out.push(u as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, u as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(u as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(u as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn number(out: &mut Vec<u8>, n: f64) {
    if n.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&n) {
        int(out, n as i64);
    } else if f64::from(n as f32) == n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, b16: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    match s.len() {
        0..=31 => out.push(0xa0 | s.len() as u8),
        32..=0xff => out.extend_from_slice(&[0xd9, s.len() as u8]),
        n => header(out, n, 0, 0, 0xda),
    }
    out.extend_from_slice(s);
}

/// The array length of `t` when its keys are exactly 1..n.
fn array_len(t: &Table) -> Option<usize> {
    let (mut count, mut max) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.ok()?;
        let n = match k {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => return None,
        };
        if n < 1.0 || n.fract() != 0.0 {
            return None;
        }
        count += 1;
        max = max.max(n as usize);
    }
    (max == count).then_some(count)
}

fn encode(out: &mut Vec<u8>, v: &Value, depth: usize) {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => int(out, *n),
        Value::Number(n) => number(out, *n),
        Value::String(s) => string(out, &s.as_bytes()),
        Value::Table(t) if depth < MAX_NESTING => match array_len(t) {
            Some(n) => {
                header(out, n, 0x90, 15, 0xdc);
                for i in 1..=n {
                    encode(out, &t.raw_get(i).unwrap_or(Value::Nil), depth + 1);
                }
            }
            None => {
                let pairs: Vec<(Value, Value)> = t.pairs().flatten().collect();
                header(out, pairs.len(), 0x80, 15, 0xde);
                for (k, v) in pairs {
                    encode(out, &k, depth + 1);
                    encode(out, &v, depth + 1);
                }
            }
        },
        _ => out.push(0xc0),
    }
}

struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    i: usize,
}

const MISSING: &str = "Missing bytes in input.";
const BAD: &str = "Bad data format in input.";

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let b = self.s.get(self.i..self.i + n).ok_or(MISSING)?;
        self.i += n;
        Ok(b)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    fn str(&mut self, n: usize) -> Result<Value, String> {
        let b = self.take(n)?.to_vec();
        self.lua
            .create_string(&b)
            .map(Value::String)
            .map_err(|e| e.to_string())
    }

    fn table(&mut self, n: usize, map: bool, depth: usize) -> Result<Value, String> {
        let t = self.lua.create_table().map_err(|e| e.to_string())?;
        for i in 1..=n {
            let (k, v) = if map {
                (self.value(depth + 1)?, self.value(depth + 1)?)
            } else {
                (Value::Number(i as f64), self.value(depth + 1)?)
            };
            if !k.is_nil() {
                t.raw_set(k, v).map_err(|e| e.to_string())?;
            }
        }
        Ok(Value::Table(t))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        // Nesting deeper than this is refused (the decoder recurses on the native stack).
        if depth > 200 {
            return Err(BAD.into());
        }
        let c = *self.take(1)?.first().ok_or(MISSING)?;
        let num = |n: f64| Ok(Value::Number(n));
        match c {
            0x00..=0x7f => num(f64::from(c)),
            0x80..=0x8f => self.table(usize::from(c & 0x0f), true, depth),
            0x90..=0x9f => self.table(usize::from(c & 0x0f), false, depth),
            0xa0..=0xbf => self.str(usize::from(c & 0x1f)),
            0xc0 => Ok(Value::Nil),
            0xc2 => Ok(Value::Boolean(false)),
            0xc3 => Ok(Value::Boolean(true)),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                self.str(n)
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                self.str(n)
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                self.str(n)
            }
            0xca => num(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => num(f64::from_bits(self.uint(8)?)),
            0xcc => num(self.uint(1)? as f64),
            0xcd => num(self.uint(2)? as f64),
            0xce => num(self.uint(4)? as f64),
            0xcf => num(self.uint(8)? as f64),
            0xd0 => num(f64::from(self.uint(1)? as u8 as i8)),
            0xd1 => num(f64::from(self.uint(2)? as u16 as i16)),
            0xd2 => num(f64::from(self.uint(4)? as u32 as i32)),
            0xd3 => num(self.uint(8)? as i64 as f64),
            0xdc..=0xdf => {
                let n = self.uint(if c & 1 == 0 { 2 } else { 4 })? as usize;
                if n > self.s.len() {
                    return Err(MISSING.into());
                }
                self.table(n, c >= 0xde, depth)
            }
            0xe0..=0xff => num(f64::from(c as i8)),
            _ => Err(BAD.into()),
        }
    }
}

/// `unpack_limit`: the next offset (-1 at the end) and up to `limit` values (0: all).
fn unpack(lua: &Lua, s: &[u8], limit: usize, offset: usize) -> Result<Vec<Value>, String> {
    let mut d = Decoder { lua, s, i: offset };
    let mut vals = Vec::new();
    while d.i < s.len() && (limit == 0 || vals.len() < limit) {
        vals.push(d.value(0)?);
    }
    let next = if d.i >= s.len() { -1.0 } else { d.i as f64 };
    vals.insert(0, Value::Number(next));
    Ok(vals)
}

fn arg_num(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Integer(n)) => (*n).max(0) as usize,
        Some(Value::Number(n)) => n.max(0.0) as usize,
        _ => 0,
    }
}

/// The `cmsgpack` table of raw functions (each made raising by the VM).
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for name in ["pack", "unpack", "unpack_one", "unpack_limit"] {
        let f = lua.create_function(move |lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            let r = if name == "pack" {
                let mut out = Vec::new();
                for a in &args {
                    encode(&mut out, a, 0);
                }
                lua.create_string(&out)
                    .map(|s| vec![Value::String(s)])
                    .map_err(|e| e.to_string())
            } else {
                match args.first() {
                    Some(Value::String(s)) => {
                        let b = s.as_bytes().to_vec();
                        match name {
                            "unpack" => unpack(lua, &b, 0, 0).map(|mut v| {
                                v.remove(0);
                                v
                            }),
                            "unpack_one" => unpack(lua, &b, 1, arg_num(args.get(1))),
                            _ => unpack(lua, &b, arg_num(args.get(1)), arg_num(args.get(2))),
                        }
                    }
                    _ => Err(format!("bad argument #1 to '{name}' (string expected)")),
                }
            };
            let mut out = vec![Value::Boolean(r.is_ok())];
            match r {
                Ok(vs) => out.extend(vs),
                Err(m) => out.push(Value::String(lua.create_string(&m)?)),
            }
            Ok(MultiValue::from_iter(out))
        })?;
        t.raw_set(name, f)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_lua_cmsgpack() {
        let lua = Lua::new();
        let enc = |src: &str| {
            let v: Value = lua.load(src).eval().unwrap();
            let mut out = Vec::new();
            encode(&mut out, &v, 0);
            out
        };
        assert_eq!(enc("return 1"), vec![1]);
        assert_eq!(enc("return -1"), vec![0xff]);
        assert_eq!(enc("return 300"), vec![0xcd, 1, 44]);
        assert_eq!(enc("return 1.5"), vec![0xca, 0x3f, 0xc0, 0, 0]);
        assert_eq!(enc("return 'ab'"), vec![0xa2, b'a', b'b']);
        assert_eq!(enc("return {1, 2}"), vec![0x92, 1, 2]);
        assert_eq!(enc("return {a = true}"), vec![0x81, 0xa1, b'a', 0xc3]);
        let packed = enc("return {1, {x = 'y'}, 'z', 0.1}");
        let vals = unpack(&lua, &packed, 0, 0).unwrap();
        assert_eq!(vals[0], Value::Number(-1.0));
        let Value::Table(t) = &vals[1] else { panic!() };
        assert_eq!(t.raw_get::<f64>(4).unwrap(), 0.1);
        assert_eq!(unpack(&lua, &[0x92, 1], 0, 0), Err(MISSING.into()));
        assert_eq!(unpack(&lua, &[0xc1], 0, 0), Err(BAD.into()));
    }
}
