//! Keyspace operations over every type: TYPE's answer, and copying a collection to another
//! key (what RENAME and COPY need: sub records are keyed by the user key, so they move too).

use super::meta::{self, data_key, header, is_collection, join, prefix_end, type_name, Meta};
use super::random::{name_hash, HASH_LEN};
use super::{Cf, Error, Read, Result, Write};
use crate::{TYPE_LIST, TYPE_SET};

/// Records copied per page: what a copy holds in memory at once.
const PAGE: usize = 512;

/// TYPE: `none`, `string`, `hash`, `list`, `set` or `zset` (expired keys are `none`).
pub fn type_of<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<&'static str> {
    let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
        return Ok("none");
    };
    let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    Ok(if expire != 0 && expire <= r.now() {
        "none"
    } else {
        type_name(typ)
    })
}

/// `key`'s live collection metadata whatever its type (`None`: absent, expired or a string).
pub fn collection<R: Read + ?Sized>(r: &R, key: &[u8]) -> Result<Option<Meta>> {
    let Some(raw) = r.get(Cf::Data, &data_key(key))? else {
        return Ok(None);
    };
    let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    if !is_collection(typ) || (expire != 0 && expire <= r.now()) {
        return Ok(None);
    }
    Meta::decode(&raw).map(Some)
}

/// Copies one family's records of `from` (a sub-record prefix) to `to`, a page at a time;
/// `rekey` maps a source sub key to the destination's.
fn copy_family<W: Write + ?Sized>(
    w: &mut W,
    cf: Cf,
    from: &[u8],
    to: &[u8],
    rekey: &dyn Fn(&[u8]) -> Vec<u8>,
) -> Result<()> {
    let end = prefix_end(from);
    let mut start = from.to_vec();
    loop {
        let mut page = Vec::with_capacity(PAGE);
        w.scan(cf, &start, &end, false, &mut |k, v| {
            page.push((k[from.len()..].to_vec(), v.to_vec()));
            page.len() < PAGE
        })?;
        for (sub, v) in &page {
            w.put(cf, &join(to, &[&rekey(sub)]), v);
        }
        match page.last() {
            Some((sub, _)) if page.len() == PAGE => start = join(from, &[sub, &[0]]),
            _ => return Ok(()),
        }
    }
}

/// Copies the collection at `src` to `dst` (with its TTL) under a new version, replacing
/// whatever `dst` held (its old records become the cleaner's). False when `src` holds no
/// live collection (strings are the caller's). Costs O(n) records, as kvrocks' RENAME; for
/// RENAME the caller deletes `src`'s data record afterwards.
pub fn copy<W: Write + ?Sized>(w: &mut W, src: &[u8], dst: &[u8]) -> Result<bool> {
    let Some(m) = collection(w, src)? else {
        return Ok(false);
    };
    if src == dst {
        return Ok(true);
    }
    let mut copied = Meta {
        version: w.next_version(),
        ..m.clone()
    };
    if m.typ == TYPE_SET {
        // A set's hint is a member hash, which the new version changes.
        copied.lo.clear();
    }
    let (from, to) = (m.prefix(src), copied.prefix(dst));
    let version = copied.version;
    let rekey = move |sub: &[u8]| -> Vec<u8> {
        // Hashed sub keys mix in the version: re-hash them for the copy's.
        match sub.get(HASH_LEN..) {
            Some(name) if m.typ != TYPE_LIST => {
                join(&name_hash(version, name).to_be_bytes(), &[name])
            }
            _ => sub.to_vec(),
        }
    };
    copy_family(w, Cf::Sub, &from, &to, &rekey)?;
    copy_family(w, Cf::Score, &from, &to, &|sub| sub.to_vec())?;
    meta::save(w, dst, &copied, true)?;
    Ok(true)
}
