//! Redis's glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\`
//! escapes, used by KEYS, SCAN MATCH and CONFIG GET.

/// True when `s` matches `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut i) = (0, 0);
    while p < pattern.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                return (i..=s.len()).any(|j| glob_match(&pattern[p + 1..], &s[j..], nocase));
            }
            b'?' => {
                if i >= s.len() {
                    return false;
                }
                i += 1;
            }
            b'[' => {
                if i >= s.len() {
                    return false;
                }
                p += 1;
                let not = pattern.get(p) == Some(&b'^');
                if not {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    match pattern.get(p) {
                        None => {
                            p -= 1;
                            break;
                        }
                        Some(b']') => break,
                        Some(b'\\') if p + 1 < pattern.len() => {
                            p += 1;
                            matched |= eq(pattern[p], s[i]);
                        }
                        Some(&lo) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                            let hi = pattern[p + 2];
                            let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
                            let c = s[i];
                            matched |= if nocase {
                                let c = c.to_ascii_lowercase();
                                (lo.to_ascii_lowercase()..=hi.to_ascii_lowercase()).contains(&c)
                            } else {
                                (lo..=hi).contains(&c)
                            };
                            p += 2;
                        }
                        Some(&c) => matched |= eq(c, s[i]),
                    }
                    p += 1;
                }
                if matched == not {
                    return false;
                }
                i += 1;
            }
            b'\\' if p + 1 < pattern.len() => {
                p += 1;
                if i >= s.len() || !eq(pattern[p], s[i]) {
                    return false;
                }
                i += 1;
            }
            c => {
                if i >= s.len() || !eq(c, s[i]) {
                    return false;
                }
                i += 1;
            }
        }
        p += 1;
    }
    i == s.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn cases() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
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
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXbY"));
    }
}
