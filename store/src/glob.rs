//! Redis's glob matching (`stringmatchlen` in util.c): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`
//! and `\` escapes, used by KEYS, SCAN MATCH and CONFIG GET.
//!
//! The pattern is first split into tokens exactly as Redis reads it (an unterminated `[`
//! class runs to the end of the pattern, a trailing lone `\` is a literal backslash,
//! reversed ranges like `[z-a]` are swapped). Every token other than `*` matches exactly one
//! byte, so matching is the classic greedy wildcard algorithm with backtracking to the last
//! `*`: O(pattern × string) time and no recursion, so a hostile pattern such as
//! `a*a*a*a*a*b` cannot stall the server (Redis needs a special "skip longer matches"
//! flag for that).

/// One element of a `[...]` class.
#[derive(Debug, Clone, Copy)]
enum Item {
    Byte(u8),
    /// Inclusive, already ordered (`lo <= hi`).
    Range(u8, u8),
}

#[derive(Debug, Clone)]
enum Token {
    Star,
    Any,
    Byte(u8),
    Class { negate: bool, items: Vec<Item> },
}

fn tokenize(p: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                if !matches!(out.last(), Some(Token::Star)) {
                    out.push(Token::Star);
                }
            }
            b'?' => out.push(Token::Any),
            b'\\' if i + 1 < p.len() => {
                i += 1;
                out.push(Token::Byte(p[i]));
            }
            b'[' => {
                i += 1;
                let negate = p.get(i) == Some(&b'^');
                if negate {
                    i += 1;
                }
                let mut items = Vec::new();
                loop {
                    match p.get(i) {
                        // Unterminated: the class takes the rest of the pattern.
                        None => break,
                        Some(b'\\') if i + 1 < p.len() => {
                            i += 1;
                            items.push(Item::Byte(p[i]));
                        }
                        Some(b']') => break,
                        Some(&lo) if i + 2 < p.len() && p[i + 1] == b'-' => {
                            let hi = p[i + 2];
                            items.push(Item::Range(lo.min(hi), lo.max(hi)));
                            i += 2;
                        }
                        Some(&c) => items.push(Item::Byte(c)),
                    }
                    i += 1;
                }
                out.push(Token::Class { negate, items });
            }
            c => out.push(Token::Byte(c)),
        }
        i += 1;
    }
    out
}

fn one(t: &Token, c: u8, nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match t {
        Token::Star => true,
        Token::Any => true,
        Token::Byte(b) => eq(*b, c),
        Token::Class { negate, items } => {
            let hit = items.iter().any(|it| match *it {
                Item::Byte(b) => eq(b, c),
                Item::Range(lo, hi) if nocase => (lo.to_ascii_lowercase()
                    ..=hi.to_ascii_lowercase())
                    .contains(&c.to_ascii_lowercase()),
                Item::Range(lo, hi) => (lo..=hi).contains(&c),
            });
            hit != *negate
        }
    }
}

/// True when `s` matches `pattern` (ASCII case-insensitively when `nocase`).
///
/// As in Redis, the empty string matches only the empty pattern (not even `*`): KEYS and
/// SCAN treat a pattern of exactly `*` as "everything" before calling the matcher.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        return pattern.is_empty();
    }
    let toks = tokenize(pattern);
    let (mut t, mut i) = (0, 0);
    // Position after the last `*` seen, and the string position it is currently tried at.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match toks.get(t) {
            Some(Token::Star) => {
                star = Some((t + 1, i));
                t += 1;
            }
            Some(tok) if one(tok, s[i], nocase) => {
                t += 1;
                i += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more byte and retry.
                Some((st, si)) => {
                    t = st;
                    i = si + 1;
                    star = Some((st, si + 1));
                }
                None => return false,
            },
        }
    }
    toks[t..].iter().all(|x| matches!(x, Token::Star))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn cases() {
        assert!(!m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("**", "x"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("a*", "a"));
        assert!(m("*a*", "a"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("key:*:x", "key:12:x"));
        assert!(!m("abc", "abcd"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
        assert!(m("*.txt", "a.b.txt"));
        assert!(!m("*.txt", "a.txt.b"));
    }

    #[test]
    fn classes_and_escapes() {
        // Reversed ranges are swapped.
        assert!(m("[z-a]", "q"));
        // Escapes inside a class.
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(!m("[\\-]", "a"));
        // `]` right after `[` closes an empty class, which matches nothing.
        assert!(!m("[]", "a"));
        // `[^]` is an empty negated class: any one byte.
        assert!(m("[^]", "a"));
        // Unterminated class: the rest of the pattern is the class.
        assert!(m("[abc", "b"));
        assert!(!m("[abc", "bc"));
        assert!(m("[^", "x"));
        // A `[` at the very end is an empty class: it matches nothing.
        assert!(!m("a[", "a["));
        assert!(!m("a[", "a"));
        // `a-]` is read as the range `]`..`a` (and the class is then unterminated).
        assert!(m("[a-]", "_"));
        assert!(!m("[a-]", "-"));
        // A trailing lone backslash is a literal backslash.
        assert!(m("a\\", "a\\"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "x"));
        assert!(m("[0-9][0-9]", "42"));
        assert!(!m("[0-9][0-9]", "4x"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(glob_match(b"[A-C]x", b"bX", true));
        assert!(glob_match(b"[^a]", b"B", true));
        assert!(!glob_match(b"[^a]", b"A", true));
        assert!(!glob_match(b"SAVE", b"save", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let s = "a".repeat(5000);
        let p = format!("{}b", "a*".repeat(50));
        let t = std::time::Instant::now();
        assert!(!m(&p, &s));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(m(&"a*".repeat(50), &s));
    }

    #[test]
    fn binary_keys() {
        assert!(glob_match(b"\x00*\xff", b"\x00abc\xff", false));
        assert!(glob_match(b"[\x00-\x10]", b"\x05", false));
    }
}
