//! The `struct` library Redis ships (Roberto Ierusalimschy's, 5.1 flavour), written here:
//! `struct.pack(fmt, ...)`, `struct.unpack(fmt, s [, pos])` (values, then the position
//! after them) and `struct.size(fmt)`. Format: `<` little, `>` big, `=` native (little)
//! endian; `!n` maximum alignment (default 1: none); `x` a pad byte; `b B h H l L T i I`
//! integers (`in` / `In`: n bytes, 1-8); `f` float, `d` double; `s` a zero-terminated
//! string; `cn` n characters (`c0`: pack the whole string, unpack as many as the number
//! unpacked before). Each function returns `(true, results...)` or `(false, message)`.

use mlua::{Lua, MultiValue, Table, Value};

#[derive(Clone, Copy)]
enum Item {
    Pad,
    Int { size: usize, signed: bool },
    Float,
    Double,
    Zstr,
    Chars(usize),
}

struct Format<'a> {
    f: &'a [u8],
    i: usize,
    little: bool,
    align: usize,
}

impl Format<'_> {
    fn number(&mut self, default: usize) -> usize {
        let start = self.i;
        while self.f.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(&self.f[start..self.i])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    /// The next item, or `None` at the end.
    fn next(&mut self) -> Result<Option<Item>, String> {
        loop {
            let Some(&c) = self.f.get(self.i) else {
                return Ok(None);
            };
            self.i += 1;
            let int = |size, signed| Ok(Some(Item::Int { size, signed }));
            return match c {
                b' ' => continue,
                b'<' | b'=' => {
                    self.little = true;
                    continue;
                }
                b'>' => {
                    self.little = false;
                    continue;
                }
                b'!' => {
                    self.align = self.number(8);
                    continue;
                }
                b'x' => Ok(Some(Item::Pad)),
                b'b' | b'B' => int(1, c == b'b'),
                b'h' | b'H' => int(2, c == b'h'),
                b'l' | b'L' | b'T' => int(8, c == b'l'),
                b'i' | b'I' => {
                    let n = self.number(4);
                    if !(1..=8).contains(&n) {
                        return Err(format!("integral size {n} is larger than limit of 8"));
                    }
                    int(n, c == b'i')
                }
                b'f' => Ok(Some(Item::Float)),
                b'd' => Ok(Some(Item::Double)),
                b's' => Ok(Some(Item::Zstr)),
                b'c' => Ok(Some(Item::Chars(self.number(1)))),
                other => Err(format!("invalid format option '{}'", other as char)),
            };
        }
    }

    /// Padding before an item of `size` bytes at `pos`.
    fn pad(&self, size: usize, pos: usize) -> usize {
        let a = size.min(self.align).max(1);
        if a.is_power_of_two() {
            (a - pos % a) % a
        } else {
            0
        }
    }
}

fn format(f: &[u8]) -> Format<'_> {
    Format {
        f,
        i: 0,
        little: true,
        align: 1,
    }
}

fn num(v: Option<&Value>, i: usize) -> Result<f64, String> {
    match v {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::String(s)) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("bad argument #{i} to 'pack' (number expected, got string)")),
        other => Err(format!(
            "bad argument #{i} to 'pack' (number expected, got {})",
            other.map_or("no value", |v| v.type_name())
        )),
    }
}

fn bytes(v: Option<&Value>, i: usize) -> Result<Vec<u8>, String> {
    match v {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(crate::fmt::lua_number(*n).into_bytes()),
        Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
        other => Err(format!(
            "bad argument #{i} to 'pack' (string expected, got {})",
            other.map_or("no value", |v| v.type_name())
        )),
    }
}

fn pack(args: &[Value]) -> Result<Vec<u8>, String> {
    let f = bytes(args.first(), 1)?;
    let mut fmt = format(&f);
    let mut out = Vec::new();
    let mut arg = 1;
    while let Some(item) = fmt.next()? {
        let size = match item {
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            _ => 1,
        };
        out.resize(out.len() + fmt.pad(size, out.len()), 0);
        match item {
            Item::Pad => out.push(0),
            Item::Int { size, .. } => {
                let n = num(args.get(arg), arg + 1)? as i64 as u64;
                arg += 1;
                let le = n.to_le_bytes();
                let mut b = le[..size].to_vec();
                if !fmt.little {
                    b.reverse();
                }
                out.extend_from_slice(&b);
            }
            Item::Float | Item::Double => {
                let n = num(args.get(arg), arg + 1)?;
                arg += 1;
                let b = if matches!(item, Item::Float) {
                    let v = n as f32;
                    if fmt.little {
                        v.to_le_bytes().to_vec()
                    } else {
                        v.to_be_bytes().to_vec()
                    }
                } else if fmt.little {
                    n.to_le_bytes().to_vec()
                } else {
                    n.to_be_bytes().to_vec()
                };
                out.extend_from_slice(&b);
            }
            Item::Zstr => {
                let s = bytes(args.get(arg), arg + 1)?;
                arg += 1;
                if s.contains(&0) {
                    return Err("string contains zeros".into());
                }
                out.extend_from_slice(&s);
                out.push(0);
            }
            Item::Chars(n) => {
                let s = bytes(args.get(arg), arg + 1)?;
                arg += 1;
                let n = if n == 0 { s.len() } else { n };
                if s.len() < n {
                    return Err(format!("bad argument #{arg} to 'pack' (string too short)"));
                }
                out.extend_from_slice(&s[..n]);
            }
        }
    }
    Ok(out)
}

/// `pos..pos + n`, or the error for a size past any string.
fn span(pos: usize, n: usize) -> Result<std::ops::Range<usize>, String> {
    let end = pos
        .checked_add(n)
        .ok_or_else(|| "data string too short".to_string())?;
    Ok(pos..end)
}

fn unpack(lua: &Lua, args: &[Value]) -> Result<Vec<Value>, String> {
    let f = bytes(args.first(), 1)?;
    let data = bytes(args.get(1), 2)?;
    let mut pos = match args.get(2) {
        None | Some(Value::Nil) => 0,
        v => (num(v, 3)?.max(0.0) as usize).saturating_sub(1),
    };
    let mut fmt = format(&f);
    let mut out = Vec::new();
    let short = || "data string too short".to_string();
    let lstr = |b: &[u8]| {
        lua.create_string(b)
            .map(Value::String)
            .map_err(|e| e.to_string())
    };
    while let Some(item) = fmt.next()? {
        let size = match item {
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            _ => 1,
        };
        pos = pos.saturating_add(fmt.pad(size, pos));
        match item {
            Item::Pad => pos = pos.saturating_add(1),
            Item::Int { size, signed } => {
                let mut b = data.get(span(pos, size)?).ok_or_else(short)?.to_vec();
                pos += size;
                if !fmt.little {
                    b.reverse();
                }
                let mut v = 0u64;
                for (i, x) in b.iter().enumerate() {
                    v |= u64::from(*x) << (8 * i);
                }
                let n = if signed && size < 8 && v >> (8 * size - 1) & 1 == 1 {
                    (v | (!0u64 << (8 * size))) as i64 as f64
                } else if signed {
                    v as i64 as f64
                } else {
                    v as f64
                };
                out.push(Value::Number(n));
            }
            Item::Float | Item::Double => {
                let b = data.get(span(pos, size)?).ok_or_else(short)?;
                pos += size;
                let n = match (size, fmt.little) {
                    (4, true) => f64::from(f32::from_le_bytes(b.try_into().map_err(|_| short())?)),
                    (4, false) => f64::from(f32::from_be_bytes(b.try_into().map_err(|_| short())?)),
                    (_, true) => f64::from_le_bytes(b.try_into().map_err(|_| short())?),
                    (_, false) => f64::from_be_bytes(b.try_into().map_err(|_| short())?),
                };
                out.push(Value::Number(n));
            }
            Item::Zstr => {
                let rest = data.get(pos..).ok_or_else(short)?;
                let end = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or("unfinished string in data")?;
                out.push(lstr(&rest[..end])?);
                pos += end + 1;
            }
            Item::Chars(n) => {
                let n = if n == 0 {
                    match out.pop() {
                        Some(Value::Number(x)) => x as usize,
                        _ => return Err("format 'c0' needs a previous size".into()),
                    }
                } else {
                    n
                };
                out.push(lstr(data.get(span(pos, n)?).ok_or_else(short)?)?);
                pos += n;
            }
        }
    }
    out.push(Value::Number(pos.saturating_add(1) as f64));
    Ok(out)
}

fn size(args: &[Value]) -> Result<f64, String> {
    let f = bytes(args.first(), 1)?;
    let mut fmt = format(&f);
    let mut pos: usize = 0;
    while let Some(item) = fmt.next()? {
        let n = match item {
            Item::Int { size, .. } => size,
            Item::Float => 4,
            Item::Double => 8,
            Item::Pad => 1,
            Item::Chars(n) if n > 0 => n,
            _ => return Err("options 'c0' - 's' have undefined sizes".into()),
        };
        pos = pos.saturating_add(fmt.pad(n, pos)).saturating_add(n);
    }
    Ok(pos as f64)
}

/// The `struct` table of raw functions (each made raising by the VM).
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for name in ["pack", "unpack", "size"] {
        let f = lua.create_function(move |lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            let r = match name {
                "pack" => pack(&args)
                    .and_then(|b| {
                        lua.create_string(&b)
                            .map(Value::String)
                            .map_err(|e| e.to_string())
                    })
                    .map(|v| vec![v]),
                "unpack" => unpack(lua, &args),
                _ => size(&args).map(|n| vec![Value::Number(n)]),
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
    fn packs_and_unpacks() {
        let lua = Lua::new();
        let v = |vals: Vec<Value>| vals;
        let s = |x: &str| Value::String(lua.create_string(x).unwrap());
        let packed = pack(&v(vec![s(">I2"), Value::Number(258.0)])).unwrap();
        assert_eq!(packed, vec![1, 2]);
        let packed = pack(&v(vec![
            s("<i4 s c3"),
            Value::Number(-2.0),
            s("ab"),
            s("xyz"),
        ]))
        .unwrap();
        assert_eq!(
            packed,
            vec![0xfe, 0xff, 0xff, 0xff, b'a', b'b', 0, b'x', b'y', b'z']
        );
        let out = unpack(
            &lua,
            &[
                s("<i4 s c3"),
                Value::String(lua.create_string(&packed).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0], Value::Number(-2.0));
        assert_eq!(out.last(), Some(&Value::Number(11.0)));
        assert_eq!(size(&[s("!4 b i4 d")]), Ok(16.0));
        assert_eq!(pack(&[s("q")]), Err("invalid format option 'q'".into()));
    }
}
