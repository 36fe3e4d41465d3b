//! C's `%g` number formatting, which Lua and Redis use and Rust's formatter does not offer:
//! `%.14g` is how Lua 5.1 turns a number into a string, `%.17g` how Redis passes a Lua
//! number as a command argument (`luaArgsToRedisArgv`).

/// `printf("%.<precision>g", n)`.
pub fn format_g(n: f64, precision: u8) -> String {
    let mut buf = [0u8; 64];
    let fmt: &[u8] = match precision {
        17 => b"%.17g\0",
        _ => b"%.14g\0",
    };
    // SAFETY: the buffer is 64 bytes and snprintf writes at most that many, NUL included;
    // the format is a NUL-terminated constant with one double conversion.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr().cast(), n) };
    let len = usize::try_from(n).unwrap_or(0).min(buf.len() - 1);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A Lua number as Lua 5.1 prints it (`%.14g`).
pub fn lua_number(n: f64) -> String {
    format_g(n, 14)
}

/// A Lua number as Redis passes it to a command (`%.17g`).
pub fn arg_number(n: f64) -> String {
    format_g(n, 17)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_c() {
        assert_eq!(lua_number(1.0), "1");
        assert_eq!(lua_number(0.1), "0.1");
        assert_eq!(arg_number(0.1), "0.10000000000000001");
        assert_eq!(arg_number(3.0), "3");
        assert_eq!(arg_number(1e20), "1e+20");
        assert_eq!(lua_number(f64::INFINITY), "inf");
    }
}
