//! Execution of the HyperLogLog family (`resp::HllOp`) and of LCS on string values through
//! the typed views. PFCOUNT and LCS are reads; PFADD and PFMERGE rewrite their key as a
//! dense sketch (see [`crate::types::hll`]), keeping its TTL.

use bytes::Bytes;
use resp::{HllCmd, HllOp, LcsCmd, Reply};

use crate::types::hll::{self, Invalid};
use crate::types::lcs;
use crate::types::strval::{self, StrRecord};
use crate::types::{Error, Read, Result, Write};

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Error {
        match e {
            Invalid::NotHll => Error::NotHll,
            Invalid::Corrupt => Error::CorruptHll,
        }
    }
}

/// `key`'s sketch: `None` when absent; errors for other types and other strings.
fn load(r: &dyn Read, key: &[u8]) -> Result<Option<StrRecord>> {
    let s = strval::load(r, key)?;
    if let Some(s) = &s {
        hll::check(s.payload())?;
    }
    Ok(s)
}

/// PFCOUNT (the only read of the family).
pub(crate) fn read(r: &dyn Read, c: &HllCmd) -> Result<Reply> {
    if c.op != HllOp::Count {
        return Ok(Reply::err(format!("ERR '{}' is not a read", c.spec.name)));
    }
    if let [key] = &c.args[..] {
        return Ok(match load(r, key)? {
            None => Reply::Int(0),
            Some(s) => match hll::cached(s.payload()) {
                Some(n) => int(n),
                None => int(hll::count(&hll::registers(s.payload())?)),
            },
        });
    }
    Ok(int(hll::count(&union(r, &c.args)?)))
}

/// The register-wise maximum of the sketches at `keys` (absent keys are empty sketches).
fn union(r: &dyn Read, keys: &[Bytes]) -> Result<Vec<u8>> {
    let mut max = vec![0u8; hll::REGISTERS];
    for key in keys {
        if let Some(s) = load(r, key)? {
            hll::merge(&mut max, &hll::registers(s.payload())?);
        }
    }
    Ok(max)
}

/// PFADD and PFMERGE.
pub(crate) fn write(w: &mut dyn Write, c: &HllCmd) -> Result<Reply> {
    let key = c.key();
    match c.op {
        HllOp::Add => {
            let old = load(w, key)?;
            let (mut regs, mut updated) = match &old {
                Some(s) => (hll::registers(s.payload())?, false),
                None => (vec![0u8; hll::REGISTERS], true),
            };
            for e in &c.args[1..] {
                updated |= hll::add(&mut regs, e);
            }
            if updated {
                store(w, key, &regs, old)?;
            }
            Ok(Reply::Int(updated.into()))
        }
        // Every key is a source, the destination first (Redis's order of checks).
        HllOp::Merge => {
            let regs = union(w, &c.args)?;
            let old = load(w, key)?;
            store(w, key, &regs, old)?;
            Ok(Reply::ok())
        }
        HllOp::Count => read(w, c),
    }
}

/// Writes `regs` as `key`'s dense sketch under the old value's header and TTL.
fn store(w: &mut dyn Write, key: &[u8], regs: &[u8], old: Option<StrRecord>) -> Result<()> {
    let mut rec = old.unwrap_or_else(|| StrRecord::zeroed(0, 0));
    let sketch = hll::encode(regs, Some(rec.payload()).filter(|p| !p.is_empty()));
    rec.set_payload(&sketch);
    w.put_data(key, rec.0)
}

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// LCS: both keys are looked up (a non-string either way answers Redis's LCS error), then
/// the options are checked, then the table's size.
pub(crate) fn lcs(r: &dyn Read, c: &LcsCmd) -> Result<Reply> {
    let (a, b) = (strval::load(r, &c.args[0]), strval::load(r, &c.args[1]));
    let (a, b) = match (a, b) {
        (Err(Error::WrongType), _) | (_, Err(Error::WrongType)) => return Err(Error::LcsNotString),
        (a, b) => (a?, b?),
    };
    let opts = match &c.op {
        Ok(o) => *o,
        Err(e) => return Ok(e.clone()),
    };
    let a = a.as_ref().map_or(&[][..], |s| s.payload());
    let b = b.as_ref().map_or(&[][..], |s| s.payload());
    if lcs::table_bytes(a.len(), b.len()) > lcs::TABLE_LIMIT {
        return Ok(Reply::err(lcs::TOO_BIG));
    }
    if opts.len {
        return Ok(Reply::Int(lcs::length(a, b).into()));
    }
    let (seq, matches) = lcs::subsequence(a, b, opts.min_match_len);
    if !opts.idx {
        return Ok(Reply::Bulk(Bytes::from(seq)));
    }
    let pair = |(x, y): (u32, u32)| Reply::Array(vec![Reply::Int(x.into()), Reply::Int(y.into())]);
    let ranges = matches
        .into_iter()
        .map(|m| {
            let mut r = vec![pair(m.a), pair(m.b)];
            if opts.with_match_len {
                r.push(Reply::Int(m.len.into()));
            }
            Reply::Array(r)
        })
        .collect();
    Ok(Reply::Map(vec![
        (Reply::bulk("matches"), Reply::Array(ranges)),
        (Reply::bulk("len"), Reply::Int(seq.len() as i64)),
    ]))
}
