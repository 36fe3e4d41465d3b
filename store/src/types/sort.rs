//! SORT / SORT_RO over lists, sets and sorted sets, as Redis 7.0's `sortCommandGeneric`:
//! numeric (strtod-like, `ERR One or more scores can't be converted into double`) or ALPHA
//! ordering (byte order: Redis's `strcoll` in the C locale), BY patterns (`*` replaced by
//! the element, `key->field` reading a hash field; a pattern without `*` keeps the
//! collection's own order), LIMIT with Redis's clamping, GET patterns (`#` is the element)
//! and STORE into a list. Like Redis, the whole collection is read (O(N + M log M)); a
//! set sorted BY a constant pattern with STORE is sorted ALPHA, so the stored list is the
//! same whatever the set's internal order.

use std::cmp::Ordering;

use resp::SortArgs;

use super::keyspace::{collection, type_of};
use super::list::{lrange, push, End};
use super::meta::{data_key, header};
use super::zrange::{zrange, RangeBy};
use super::{hash, set, Cf, Error, Read, Result, Write};
use crate::{TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// Redis's error for a numeric sort key that is no number.
pub const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// A string value of `key` (`None`: absent, expired or another type).
fn string_value<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
        return Ok(None);
    };
    let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    if typ != TYPE_STRING || (expire != 0 && expire <= r.now()) {
        return Ok(None);
    }
    Ok(Some(raw[crate::HEADER..].to_vec()))
}

/// Redis's `lookupKeyByPattern`: `#` is the element; otherwise the first `*` is replaced
/// by the element and the key read (a string, or with `->field` after the `*` a hash
/// field); `None` for a pattern without `*`, a missing key or a key of another type.
pub fn lookup<R: Read + ?Sized>(r: &R, pattern: &[u8], elem: &[u8]) -> Result<Option<Vec<u8>>> {
    if pattern == b"#" {
        return Ok(Some(elem.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(postfix);
    match field {
        None => string_value(r, &key),
        Some(f) => match hash::hget(r, &key, f) {
            Err(Error::WrongType) => Ok(None),
            other => other,
        },
    }
}

/// C's `strtod` over the whole text (leading whitespace allowed, nothing after the
/// number), refusing NaN and overflow, as SORT's numeric keys.
fn strtod(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if t.is_empty() {
        // strtod converts nothing: 0, accepted only when the text is empty (the end
        // pointer is then the end).
        return s.is_empty().then_some(0.0);
    }
    let v: f64 = t.parse().ok()?;
    let lower = t.to_ascii_lowercase();
    let literal_inf = lower.trim_start_matches(['+', '-']).starts_with("inf");
    if v.is_nan() || (v.is_infinite() && !literal_inf) {
        return None;
    }
    Some(v)
}

/// The elements of the sorted key, in its own order (list order, rank order, the set's
/// stored order); `None` when the key does not exist.
fn elements<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<(u8, Vec<Vec<u8>>)>> {
    let Some(m) = collection(r, key)? else {
        return match type_of(r, key)? {
            "none" => Ok(None),
            _ => Err(Error::WrongType),
        };
    };
    let items = match m.typ {
        TYPE_LIST => lrange(r, key, 0, -1)?,
        TYPE_SET => set::smembers(r, key)?,
        TYPE_ZSET => zrange(r, key, &RangeBy::Rank(0, -1), false, None)?
            .into_iter()
            .map(|(m, _)| m)
            .collect(),
        _ => return Err(Error::WrongType),
    };
    Ok(Some((m.typ, items)))
}

/// Redis's LIMIT clamping: the output range `[start, end]` (empty when end < start).
fn window(limit: Option<(i64, i64)>, len: i64) -> (i64, i64) {
    let (off, cnt) = limit.unwrap_or((0, -1));
    let start = off.max(0).min(len);
    let cnt = cnt.max(-1).min(len);
    let mut end = if cnt < 0 { len - 1 } else { start + cnt - 1 };
    let start = if start >= len {
        end = len - 2;
        len - 1
    } else {
        start
    };
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// One element with what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    by: Option<Vec<u8>>,
}

/// Sorts `items` in place by Redis's `sortCompare`.
fn order<R: Read + ?Sized>(r: &R, items: &mut [Item], a: &SortArgs, alpha: bool) -> Result<()> {
    let by = a.by.as_deref().filter(|_| !a.dont_sort);
    let mut bad = false;
    for it in items.iter_mut() {
        let val = match by {
            Some(p) => lookup(r, p, &it.elem)?,
            None => None,
        };
        if alpha {
            it.by = val;
        } else if let Some(v) = val.as_deref().or(by.is_none().then_some(&it.elem[..])) {
            match strtod(v) {
                Some(s) => it.score = s,
                None => bad = true,
            }
        }
    }
    if bad {
        return Err(Error::Client(NOT_DOUBLE.into()));
    }
    let cmp = |x: &Item, y: &Item| -> Ordering {
        let c = if !alpha {
            x.score
                .partial_cmp(&y.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| x.elem.cmp(&y.elem))
        } else if by.is_some() {
            // A missing BY value sorts first.
            x.by.cmp(&y.by)
        } else {
            x.elem.cmp(&y.elem)
        };
        if a.desc {
            c.reverse()
        } else {
            c
        }
    };
    // Stable, as glibc's qsort (a merge sort).
    items.sort_by(cmp);
    Ok(())
}

/// SORT's output: one value per element in the window, or one per GET pattern and element
/// (`None`: GET found nothing). `None` overall for a missing key (an empty result).
pub fn sort<R: Read + ?Sized>(r: &R, key: &[u8], a: &SortArgs) -> Result<Vec<Option<Vec<u8>>>> {
    let Some((typ, elems)) = elements(r, key)? else {
        return Ok(Vec::new());
    };
    let (mut dont_sort, mut alpha) = (a.dont_sort, a.alpha);
    if dont_sort && typ == TYPE_SET && a.store.is_some() {
        // Redis sorts a set ALPHA when the result is stored, so replicas agree.
        (dont_sort, alpha) = (false, true);
    }
    let len = i64::try_from(elems.len()).unwrap_or(i64::MAX);
    let (start, end) = window(a.limit, len);
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            by: None,
        })
        .collect();
    if dont_sort {
        if a.desc && typ != TYPE_SET {
            items.reverse();
        }
    } else {
        let args = SortArgs {
            dont_sort: false,
            by: if a.dont_sort { None } else { a.by.clone() },
            ..a.clone()
        };
        order(r, &mut items, &args, alpha)?;
    }
    let mut out = Vec::new();
    if end < start {
        return Ok(out);
    }
    for it in &items[start as usize..=end as usize] {
        if a.gets.is_empty() {
            out.push(Some(it.elem.clone()));
        }
        for g in &a.gets {
            out.push(lookup(r, g, &it.elem)?);
        }
    }
    Ok(out)
}

/// SORT ... STORE: replaces `dst` with the output as a list (a missing GET value stored as
/// an empty string), deleting it when the output is empty. Returns the list's length.
pub fn sort_store<W: Write + ?Sized>(
    w: &mut W,
    key: &[u8],
    a: &SortArgs,
    dst: &[u8],
) -> Result<u64> {
    let values: Vec<Vec<u8>> = sort(w, key, a)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    w.charge(values.iter().map(Vec::len).fold(0, usize::saturating_add))?;
    w.del_data(dst)?;
    if values.is_empty() {
        return Ok(0);
    }
    push(w, dst, End::Right, &values, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_as_sort_reads_numbers() {
        assert_eq!(strtod(b"1.5"), Some(1.5));
        assert_eq!(strtod(b" 12"), Some(12.0));
        assert_eq!(strtod(b"12 "), None);
        assert_eq!(strtod(b""), Some(0.0));
        assert_eq!(strtod(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod(b"nan"), None);
        assert_eq!(strtod(b"1e400"), None);
        assert_eq!(strtod(b"abc"), None);
    }

    #[test]
    fn limit_windows_as_redis() {
        assert_eq!(window(None, 5), (0, 4));
        assert_eq!(window(Some((1, 2)), 5), (1, 2));
        assert_eq!(window(Some((-3, 2)), 5), (0, 1));
        assert_eq!(window(Some((10, 2)), 5), (4, 3));
        assert_eq!(window(Some((2, -1)), 5), (2, 4));
        assert_eq!(window(Some((3, 100)), 5), (3, 4));
        assert_eq!(window(Some((0, 0)), 5), (0, -1));
        assert_eq!(window(None, 0), (-1, -2));
    }
}
