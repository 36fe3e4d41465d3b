//! The `bit` library (LuaBitOp's API, which Redis ships): 32-bit operations on Lua numbers.
//! Numbers are taken modulo 2^32 with LuaBitOp's rounding and results are signed 32-bit.
//! Each function returns `(true, result)` or `(false, message)`; a C trampoline raises the
//! message at the caller's line, as a C library's `luaL_error` would.

use mlua::{Lua, MultiValue, Table, Value};

/// LuaBitOp's conversion: the number plus 2^52 + 2^51, low 32 bits of the double.
fn to_bits(n: f64) -> u32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

fn arg(args: &[Value], i: usize, name: &str) -> Result<u32, String> {
    let n = match args.get(i) {
        Some(Value::Integer(n)) => *n as f64,
        Some(Value::Number(n)) => *n,
        Some(Value::String(s)) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| bad(i, name, "string"))?,
        Some(v) => return Err(bad(i, name, v.type_name())),
        None => return Err(bad(i, name, "no value")),
    };
    Ok(to_bits(n))
}

fn bad(i: usize, name: &str, got: &str) -> String {
    format!(
        "bad argument #{} to '{name}' (number expected, got {got})",
        i + 1
    )
}

fn num(b: u32) -> Value {
    Value::Number(f64::from(b as i32))
}

fn op(name: &'static str, args: &[Value]) -> Result<Value, String> {
    let a = arg(args, 0, name)?;
    Ok(match name {
        "tobit" => num(a),
        "bnot" => num(!a),
        "bswap" => num(a.swap_bytes()),
        "band" | "bor" | "bxor" => {
            let mut r = a;
            for i in 1..args.len() {
                let b = arg(args, i, name)?;
                r = match name {
                    "band" => r & b,
                    "bor" => r | b,
                    _ => r ^ b,
                };
            }
            num(r)
        }
        "tohex" => return Ok(Value::Nil),
        _ => {
            let n = arg(args, 1, name)? & 31;
            num(match name {
                "lshift" => a << n,
                "rshift" => a >> n,
                "arshift" => ((a as i32) >> n) as u32,
                "rol" => a.rotate_left(n),
                _ => a.rotate_right(n),
            })
        }
    })
}

fn tohex(lua: &Lua, args: &[Value]) -> Result<Value, String> {
    let a = arg(args, 0, "tohex")?;
    let mut n = match args.get(1) {
        None | Some(Value::Nil) => 8,
        Some(_) => arg(args, 1, "tohex")? as i32,
    };
    let upper = n < 0;
    if upper {
        n = n.saturating_neg();
    }
    let n = n.min(8) as usize;
    let full = if upper {
        format!("{a:08X}")
    } else {
        format!("{a:08x}")
    };
    lua.create_string(&full.as_bytes()[8 - n..])
        .map(Value::String)
        .map_err(|e| e.to_string())
}

/// The `bit` table of raw functions (each made raising by the VM, see `raising`).
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for name in [
        "tobit", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror",
        "bswap", "tohex",
    ] {
        let f = lua.create_function(move |lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            let r = if name == "tohex" {
                tohex(lua, &args)
            } else {
                op(name, &args)
            };
            Ok(match r {
                Ok(v) => (true, v),
                Err(msg) => (false, Value::String(lua.create_string(&msg)?)),
            })
        })?;
        t.raw_set(name, f)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luabitop_semantics() {
        assert_eq!(to_bits(-1.0) as i32, -1);
        assert_eq!(to_bits(4294967295.0) as i32, -1);
        assert_eq!(to_bits(2147483648.0) as i32, i32::MIN);
        assert_eq!(to_bits(1.5), 2);
        let v = |n: f64| vec![Value::Number(n), Value::Number(4.0)];
        assert_eq!(op("lshift", &v(1.0)), Ok(Value::Number(16.0)));
        assert_eq!(op("rshift", &v(-256.0)), Ok(Value::Number(268435440.0)));
        assert_eq!(op("arshift", &v(-256.0)), Ok(Value::Number(-16.0)));
        assert_eq!(
            op(
                "band",
                &[Value::Number(0x12345678 as f64), Value::Number(255.0)]
            ),
            Ok(Value::Number(0x78 as f64))
        );
        let lua = Lua::new();
        let hex = tohex(&lua, &[Value::Number(-1.0), Value::Number(-4.0)]).unwrap();
        assert_eq!(
            hex.as_string().map(|s| s.to_str().unwrap().to_string()),
            Some("FFFF".into())
        );
        assert!(op("bnot", &[]).unwrap_err().contains("got no value"));
    }
}
