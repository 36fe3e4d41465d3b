//! Number parsing and formatting with Redis's rules, for values stored in collections.

/// Parses a canonical signed 64-bit integer as Redis's `string2ll` does: no sign on zero, no
/// leading zeros, no spaces, at most 20 characters.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let canonical = matches!(b, [b'0'] | [b'-', b'1'..=b'9', ..] | [b'1'..=b'9', ..]);
    if !canonical || b.len() > 20 {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses a float as Redis's `string2ld`: decimal or exponent notation, `inf`/`infinity`
/// with an optional sign; never NaN, no spaces, at most 5 KiB.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b.len() >= 5 * 1024 {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let lower = s.to_ascii_lowercase();
    let body = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if body == "inf" || body == "infinity" {
        return Some(if lower.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    // Rust also accepts spellings of NaN and infinity, handled or refused here.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    (!f.is_nan()).then_some(f)
}

/// Formats a score as Redis 7.0 replies it: `%.17g` (17 significant digits, trailing zeros
/// dropped, exponent form below 1e-4 and from 1e17), `inf`, `-inf`.
pub fn format_score(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{f:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.unsigned_abs());
    }
    let decimals = (16 - exp) as usize;
    trim_zeros(&format!("{f:.decimals$}")).to_string()
}

/// Formats HINCRBYFLOAT's result as the store formats INCRBYFLOAT's: the shortest digits that
/// read back as the same double, in plain notation.
pub fn format_human(f: f64) -> String {
    if f == 0.0 {
        "0".into()
    } else {
        format!("{f}")
    }
}

/// Drops trailing zeros after a decimal point, and the point when nothing follows it.
fn trim_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_format_like_redis_7_0() {
        assert_eq!(format_score(1.0), "1");
        assert_eq!(format_score(-2.5), "-2.5");
        assert_eq!(format_score(1.1), "1.1000000000000001");
        assert_eq!(format_score(0.1), "0.10000000000000001");
        assert_eq!(format_score(f64::INFINITY), "inf");
        assert_eq!(format_score(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_score(1e17), "1e+17");
        assert_eq!(format_score(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_score(1e16), "10000000000000000");
        assert_eq!(format_score(0.0001), "0.0001");
        assert_eq!(format_score(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_score(-0.0), "-0");
        assert_eq!(format_score(3e-300), "3.0000000000000002e-300");
    }

    #[test]
    fn integers_and_floats_parse_like_redis() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [
            &b"-0"[..],
            b"01",
            b" 1",
            b"1 ",
            b"",
            b"+1",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b".5e1"), Some(5.0));
        for bad in [&b"nan"[..], b"abc", b"", b" 1", b"1 ", b"--1"] {
            assert_eq!(parse_f64(bad), None, "{bad:?}");
        }
        assert_eq!(format_human(3.0), "3");
        assert_eq!(format_human(10.5), "10.5");
    }
}
