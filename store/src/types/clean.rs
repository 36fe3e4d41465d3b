//! The background cleaner: deletes the sub and score records of collection versions that are
//! no longer current (the key was deleted, overwritten, or expired), so DEL of a big key
//! costs one metadata record and the space comes back later.
//!
//! One call examines at most `limit` collections (one seek and one metadata lookup each)
//! from a cursor and stages one range delete per stale collection: the cost of a call is
//! bounded whatever the sizes. It is deterministic (the state, the cursor, the limit and the
//! stamped time decide everything), so the leader can propose it through Raft like the
//! expiry sweep and every replica deletes the same records. Range deletes are not visible to
//! the view's own reads; they only cover versions nothing reads any more.

use super::meta::{header, is_collection, prefix_end, split_sub_key, Meta};
use super::{Cf, Error, Read, Result, Write};

/// Where the next call resumes: the family and the first key not yet examined.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// True once the `sub` family is done and the score index is being cleaned.
    pub in_score: bool,
    /// The first key to examine.
    pub from: Vec<u8>,
}

impl Cursor {
    /// Bytes to carry the cursor in a replicated command.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![u8::from(self.in_score)];
        v.extend_from_slice(&self.from);
        v
    }

    /// The inverse of [`Cursor::encode`] (`None` for bytes it did not make).
    pub fn decode(b: &[u8]) -> Option<Cursor> {
        let (flag, from) = b.split_first()?;
        (*flag <= 1).then(|| Cursor {
            in_score: *flag == 1,
            from: from.to_vec(),
        })
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Collection versions examined.
    pub examined: u64,
    /// Stale versions whose records were deleted (one range delete each).
    pub deleted: u64,
    /// Where to go on; `None` once both families were gone through (start again later).
    pub next: Option<Cursor>,
}

/// The first key at or after `from` in `cf`.
fn first_from<R: Read + ?Sized>(r: &R, cf: Cf, from: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut found = None;
    r.scan(cf, from, &[0xff; 8], false, &mut |k, _| {
        found = Some(k.to_vec());
        false
    })?;
    Ok(found)
}

/// The current version of the collection at data key `dkey`, if it is live.
fn current<R: Read + ?Sized>(r: &R, dkey: &[u8]) -> Result<Option<u64>> {
    let Some(raw) = r.get(Cf::Data, dkey)? else {
        return Ok(None);
    };
    let (typ, expire) = header(&raw).ok_or_else(|| Error::Storage("short data record".into()))?;
    if !is_collection(typ) || (expire != 0 && expire <= r.now()) {
        return Ok(None);
    }
    Ok(Some(Meta::decode(&raw)?.version))
}

/// Examines up to `limit` (at least 1) collection versions from `cursor`, deleting the
/// records of stale ones.
pub fn clean<W: Write + ?Sized>(w: &mut W, cursor: &Cursor, limit: u64) -> Result<Report> {
    let mut report = Report::default();
    let mut cur = cursor.clone();
    while report.examined < limit.max(1) {
        let cf = if cur.in_score { Cf::Score } else { Cf::Sub };
        let Some(k) = first_from(w, cf, &cur.from)? else {
            if cur.in_score {
                return Ok(report);
            }
            cur = Cursor {
                in_score: true,
                from: Vec::new(),
            };
            continue;
        };
        let (dkey, version, sub) =
            split_sub_key(&k).ok_or_else(|| Error::Storage("corrupt sub key".into()))?;
        let prefix = &k[..k.len() - sub.len()];
        let end = prefix_end(prefix);
        report.examined += 1;
        if current(w, &dkey)? != Some(version) {
            w.delete_range(cf, prefix, &end);
            report.deleted += 1;
        }
        cur.from = end;
    }
    report.next = Some(cur);
    Ok(report)
}
