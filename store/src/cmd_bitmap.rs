//! Execution of the bitmap family (`resp::BitmapOp`) on string values through the typed
//! views: reads (GETBIT BITCOUNT BITPOS BITFIELD_RO) on any [`Read`], writes (SETBIT BITOP
//! BITFIELD) on the apply path's [`Write`], in Redis's order of checks (arguments, then the
//! key's type, then the arguments Redis reads only after the lookup).
//!
//! Writes rewrite the whole string record (one RocksDB value per string), keeping its TTL
//! except BITOP's destination (a new value, as Redis's `setKey`). A SETBIT that changes
//! nothing writes nothing (and so moves no WATCH version), as Redis signals no change.

use resp::{BitmapCmd, BitmapOp, FieldOp, Reply};

use crate::types::strval::{self, StrRecord};
use crate::types::{bitfield, bitmap, Read, Result, Write};

/// A read command of the family (BITFIELD runs here when it has no write).
pub(crate) fn read(r: &dyn Read, c: &BitmapCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        BitmapOp::GetBit { offset } => {
            let s = strval::load(r, key)?;
            let on = s.is_some_and(|s| bitmap::get_bit(s.payload(), *offset));
            Reply::Int(on.into())
        }
        BitmapOp::Count(span) => match strval::load(r, key)? {
            None => Reply::Int(0),
            Some(s) => match span {
                Err(e) => e.clone(),
                Ok(span) => match bitmap::bit_range(s.payload().len(), *span) {
                    None => Reply::Int(0),
                    Some((first, last)) => int(bitmap::count_bits(s.payload(), first, last)),
                },
            },
        },
        BitmapOp::Pos { bit, span } => match strval::load(r, key)? {
            None => Reply::Int(if *bit { -1 } else { 0 }),
            Some(s) => match span {
                Err(e) => e.clone(),
                Ok(span) => Reply::Int(bitmap::bitpos(s.payload(), *bit, *span)),
            },
        },
        BitmapOp::Field(ops) if !has_writes(ops) => {
            let s = strval::load(r, key)?;
            let payload = s.as_ref().map_or(&[][..], |s| s.payload());
            Reply::Array(
                ops.iter()
                    .map(|op| Reply::Int(bitfield::get(payload, op)))
                    .collect(),
            )
        }
        _ => Reply::err(format!("ERR '{}' is not a read", c.spec.name)),
    })
}

/// A write command of the family.
pub(crate) fn write(w: &mut dyn Write, c: &BitmapCmd) -> Result<Reply> {
    Ok(match &c.op {
        BitmapOp::SetBit { offset, on } => setbit(w, c.key(), *offset, *on)?,
        BitmapOp::Op(op) => {
            let mut fold = bitmap::BitOpFold::default();
            for src in c.sources() {
                let s = strval::load(w, src)?;
                fold.add(*op, s.as_ref().map_or(&[][..], |s| s.payload()));
            }
            let out = fold.finish();
            if out.is_empty() {
                if strval_present(w, c.dest())? {
                    w.del_data(c.dest())?;
                }
                Reply::Int(0)
            } else {
                let len = out.len();
                w.put_data(c.dest(), StrRecord::from_payload(&out).0)?;
                int(len as u64)
            }
        }
        BitmapOp::Field(ops) if has_writes(ops) => bitfield_write(w, c.key(), ops)?,
        _ => read(w, c)?,
    })
}

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn has_writes(ops: &[FieldOp]) -> bool {
    ops.iter().any(|op| op.last_written_bit().is_some())
}

/// Whether `key` has a live value of any type (BITOP deletes its destination, whatever it
/// holds, when the result is empty).
fn strval_present(w: &dyn Write, key: &[u8]) -> Result<bool> {
    match strval::load(w, key) {
        Ok(v) => Ok(v.is_some()),
        Err(crate::types::Error::WrongType) => Ok(true),
        Err(e) => Err(e),
    }
}

/// SETBIT: creates or grows the string as needed; replies the old bit.
fn setbit(w: &mut dyn Write, key: &[u8], offset: u64, on: bool) -> Result<Reply> {
    let byte = (offset >> 3) as usize;
    let (mut s, mut changed) = match strval::load(w, key)? {
        Some(s) => (s, false),
        None => (StrRecord::zeroed(byte + 1, 0), true),
    };
    changed |= s.grow_to(byte + 1);
    let old = bitmap::get_bit(s.payload(), offset);
    if changed || old != on {
        bitmap::set_bit(s.payload_mut(), offset, on);
        w.put_data(key, s.0)?;
    }
    Ok(Reply::Int(old.into()))
}

/// BITFIELD with at least one SET / INCRBY: the string grows to the farthest written bit
/// first (even when every write then fails under OVERFLOW FAIL, as Redis), then the
/// operations run in order; the string is written back.
///
/// Unlike Redis, which lets a field that starts below the 512 MiB offset limit end up to
/// 8 bytes past it, a string longer than 512 MiB is refused (the entry's budget could never
/// hold it).
fn bitfield_write(w: &mut dyn Write, key: &[u8], ops: &[FieldOp]) -> Result<Reply> {
    let last = ops.iter().filter_map(FieldOp::last_written_bit).max();
    let len = last.map_or(0, |b| (b >> 3) as usize + 1);
    let old = strval::load(w, key)?;
    if len > crate::MAX_STRING {
        return Ok(Reply::err(crate::budget::STRING_TOO_BIG));
    }
    let mut s = old.unwrap_or_else(|| StrRecord::zeroed(len, 0));
    s.grow_to(len);
    let replies = ops
        .iter()
        .map(|op| match bitfield::run(s.payload_mut(), op) {
            Some(v) => Reply::Int(v),
            None => Reply::Nil,
        })
        .collect();
    w.put_data(key, s.0)?;
    Ok(Reply::Array(replies))
}
