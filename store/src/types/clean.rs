//! The background cleaner: deletes the sub and score records of collection versions that are
//! no longer current (the key was deleted, overwritten, or expired), so DEL of a big key
//! costs one metadata record and the space comes back later.
//!
//! One call examines at most `limit` collections (one seek and one metadata lookup each)
//! from a cursor and stages one range delete per stale collection: the cost of a call is
//! bounded whatever the sizes. It is deterministic (the state, the cursor, the limit and the
//! stamped time decide everything), so the leader can propose it through Raft like the
//! expiry sweep and every replica deletes the same records. Range deletes are not visible to
//! the view's own reads; they only cover versions nothing reads any more. It walks only the
//! group's own slots (other groups' records, and those of slots the group gave away, are
//! not its business).

use super::meta::{header, is_collection, prefix_end, split_sub_key, Meta};
use super::{Cf, Error, Read, Result, Write};
use crate::slots::{slot_of, slot_start, SlotSet};

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

/// The first key at or after `from` in `cf` in a slot of `slots` (one scan per run of
/// owned slots).
fn first_from<R: Read + ?Sized>(
    r: &R,
    cf: Cf,
    from: &[u8],
    slots: &SlotSet,
) -> Result<Option<Vec<u8>>> {
    let mut from = from.to_vec();
    loop {
        let at = slot_of(&from);
        let Some(lo) = slots.next_owned(u32::from(at)) else {
            return Ok(None);
        };
        if lo != at {
            from = slot_start(lo.into()).to_vec();
        }
        let end = slot_start(slots.next_unowned(u32::from(lo)));
        let mut found = None;
        r.scan(cf, &from, &end, false, &mut |k, _| {
            found = Some(k.to_vec());
            false
        })?;
        if found.is_some() {
            return Ok(found);
        }
        from = end.to_vec();
    }
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

/// Examines up to `limit` (at least 1) collection versions of `slots` from `cursor`,
/// deleting the records of stale ones.
pub fn clean<W: Write + ?Sized>(
    w: &mut W,
    cursor: &Cursor,
    limit: u64,
    slots: &SlotSet,
) -> Result<Report> {
    let mut report = Report::default();
    let mut cur = cursor.clone();
    while report.examined < limit.max(1) {
        let cf = if cur.in_score { Cf::Score } else { Cf::Sub };
        let Some(k) = first_from(w, cf, &cur.from, slots)? else {
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
