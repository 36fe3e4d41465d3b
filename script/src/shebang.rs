//! Script and library headers, as Redis 7.0 reads them: an EVAL body may start with
//! `#!lua [flags=no-writes,...]` (no shebang: "compatibility mode"), and a FUNCTION LOAD
//! payload must start with `#!lua name=<library>`. Error texts are Redis's
//! (`eval.c: evalExtractShebangFlags`, `functions.c: functionExtractLibMetaData`).

/// The script flags Redis 7.0 knows, in the order it lists them (FUNCTION LIST).
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// A script's or a function's flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Bit `i` set: [`FLAG_NAMES`]`[i]` was declared.
    bits: u8,
    /// An EVAL body without a shebang (Redis's `SCRIPT_FLAG_EVAL_COMPAT_MODE`).
    pub compat: bool,
}

impl Flags {
    /// Flags from their names (case-insensitive, as `redis.register_function`); `None` for
    /// an unknown name.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Flags> {
        let mut f = Flags::default();
        for n in names {
            let i = FLAG_NAMES.iter().position(|x| x.eq_ignore_ascii_case(n))?;
            f.bits |= 1 << i;
        }
        Some(f)
    }

    fn has(&self, name: &str) -> bool {
        FLAG_NAMES
            .iter()
            .position(|x| *x == name)
            .is_some_and(|i| self.bits & (1 << i) != 0)
    }

    /// `no-writes` declared (never true in compatibility mode).
    pub fn no_writes(&self) -> bool {
        !self.compat && self.has("no-writes")
    }

    /// `no-cluster` declared.
    pub fn no_cluster(&self) -> bool {
        !self.compat && self.has("no-cluster")
    }

    /// `allow-cross-slot-keys` declared.
    pub fn allow_cross_slot(&self) -> bool {
        !self.compat && self.has("allow-cross-slot-keys")
    }

    /// The declared flags' names, in Redis's order.
    pub fn names(&self) -> Vec<&'static str> {
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The flags as one byte (for storing a library's function table).
    pub fn to_byte(self) -> u8 {
        self.bits | if self.compat { 0x80 } else { 0 }
    }

    /// The flags [`Flags::to_byte`] stored.
    pub fn from_byte(b: u8) -> Flags {
        Flags {
            bits: b & 0x1f,
            compat: b & 0x80 != 0,
        }
    }
}

/// Splits a header line into words like Redis's `sdssplitargs` (spaces separate, `"..."`
/// with backslash escapes and `'...'` quote); `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut word = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&c) = line.get(i) else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match quote {
                Some(q) if c == q => {
                    i += 1;
                    // A closing quote must be followed by a space or the end.
                    if line.get(i).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return None;
                    }
                    break;
                }
                Some(b'"') if c == b'\\' && i + 1 < line.len() => {
                    word.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                Some(_) => word.push(c),
                None if c.is_ascii_whitespace() => break,
                None if (c == b'"' || c == b'\'') && word.is_empty() => quote = Some(c),
                None => word.push(c),
            }
            i += 1;
        }
        out.push(word);
    }
    Some(out)
}

/// An EVAL body's flags and the length of its shebang line (without its newline, which is
/// kept so line numbers stay right), or Redis's error text (without the `ERR ` code).
pub fn eval_flags(body: &[u8]) -> Result<(Flags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((
            Flags {
                compat: true,
                ..Flags::default()
            },
            0,
        ));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let parts = match split_args(&body[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid engine in script shebang".into()),
    };
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = Flags::default();
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(|&c| c == b',') {
            let i = FLAG_NAMES
                .iter()
                .position(|n| n.as_bytes() == f)
                .ok_or_else(|| {
                    format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(f)
                    )
                })?;
            flags.bits |= 1 << i;
        }
    }
    Ok((flags, end))
}

/// A library's header: its name, and the code after the header line (from its newline on,
/// so line numbers stay right), or Redis's error text (without the `ERR ` code).
pub fn library_header(payload: &[u8]) -> Result<(String, Vec<u8>), String> {
    if !payload.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = payload.iter().position(|&c| c == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = match split_args(&payload[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name: Option<String> = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(p)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok((name, payload[end..].to_vec()))
}

/// Redis's rule for library and function names: `[a-zA-Z0-9_]+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_shebangs() {
        let (f, n) = eval_flags(b"return 1").unwrap();
        assert!(f.compat && n == 0 && !f.no_writes());
        let (f, n) = eval_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert_eq!(n, 31);
        assert!(f.no_writes() && !f.compat);
        assert_eq!(f.names(), vec!["no-writes", "allow-oom"]);
        let (f, _) = eval_flags(b"#!lua\nreturn 1").unwrap();
        assert!(!f.compat && f.names().is_empty());
        assert_eq!(eval_flags(b"#!lua"), Err("Invalid script shebang".into()));
        assert_eq!(
            eval_flags(b"#!python\n"),
            Err("Unexpected engine in script shebang: #!python".into())
        );
        assert_eq!(
            eval_flags(b"#!lua flags=bad\n"),
            Err("Unexpected flag in script shebang: bad".into())
        );
        assert_eq!(
            eval_flags(b"#!lua name=x\n"),
            Err("Unknown lua shebang option: name=x".into())
        );
        assert_eq!(Flags::from_byte(f.to_byte()), f);
    }

    #[test]
    fn library_headers() {
        let (name, code) = library_header(b"#!lua name=mylib\nreturn 1").unwrap();
        assert_eq!((name.as_str(), &code[..]), ("mylib", &b"\nreturn 1"[..]));
        assert_eq!(library_header(b"x"), Err("Missing library metadata".into()));
        assert_eq!(
            library_header(b"#!lua\n"),
            Err("Library name was not given".into())
        );
        assert_eq!(
            library_header(b"#!lua name=a name=b\n"),
            Err("Invalid metadata value, name argument was given multiple times".into())
        );
        assert_eq!(
            library_header(b"#!lua name=a foo=b\n"),
            Err("Invalid metadata value given: foo=b".into())
        );
        assert_eq!(
            library_header(b"#!bad_engine name=a\n"),
            Err("Engine 'bad_engine' not found".into())
        );
        assert!(library_header(b"#!lua name=a-b\n")
            .unwrap_err()
            .starts_with("Library names can only"));
        assert_eq!(
            split_args(b"a \"b c\" 'd'"),
            Some(vec![b"a".to_vec(), b"b c".to_vec(), b"d".to_vec()])
        );
        assert_eq!(split_args(b"\"open"), None);
    }
}
