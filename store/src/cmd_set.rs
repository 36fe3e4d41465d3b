//! Execution of the set family (`resp::SetOp`) on [`crate::types::set`] and
//! [`crate::types::setops`]. SPOP pops the first members of the set's hash order (every
//! replica pops the same members, see [`crate::types::set`]); SRANDMEMBER uses local
//! randomness.

use resp::{Algebra, Reply, SetCmd, SetOp};

use crate::cmd_common::{bulk, bulks, int, local_rng, opt_bulk, page, scan_after, scan_reply};
use crate::types::{set as s, setops as ops};
use crate::types::{Read, Result, Write};

fn set_reply(v: Vec<Vec<u8>>) -> Reply {
    Reply::Set(v.into_iter().map(bulk).collect())
}

/// A read command of the family.
pub(crate) fn read(r: &dyn Read, c: &SetCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        SetOp::IsMember(m) => Reply::Int(s::sismember(r, key, m)?.into()),
        SetOp::MIsMember(ms) => Reply::Array(
            s::smismember(r, key, ms)?
                .into_iter()
                .map(|b| Reply::Int(b.into()))
                .collect(),
        ),
        SetOp::Card => int(s::scard(r, key)?),
        SetOp::Members => set_reply(s::smembers(r, key)?),
        SetOp::RandMember(None) => {
            let one = s::srandmember(r, key, 1, &mut local_rng())?;
            opt_bulk(one.into_iter().next())
        }
        SetOp::RandMember(Some(n)) => bulks(s::srandmember(r, key, *n, &mut local_rng())?),
        SetOp::Algebra {
            kind,
            keys,
            store: None,
        } => set_reply(algebra(r, *kind, keys)?),
        SetOp::InterCard { keys, limit } => int(ops::sintercard(r, keys, *limit)?),
        SetOp::Scan(a) => {
            let after = scan_after(a.cursor);
            let p = s::sscan(
                r,
                key,
                after.as_deref(),
                page(a.count),
                a.pattern.as_deref(),
            )?;
            scan_reply(p.next, p.items.into_iter().map(bulk).collect())
        }
        _ => Reply::err(format!("ERR '{}' is not a read", c.spec.name)),
    })
}

fn algebra(r: &dyn Read, kind: Algebra, keys: &[bytes::Bytes]) -> Result<Vec<Vec<u8>>> {
    match kind {
        Algebra::Inter => ops::sinter(r, keys),
        Algebra::Union => ops::sunion(r, keys),
        Algebra::Diff => ops::sdiff(r, keys),
    }
}

/// A write command of the family; `seed` comes from the Raft entry.
pub(crate) fn write(w: &mut dyn Write, c: &SetCmd, seed: u64) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        SetOp::Add(ms) => int(s::sadd(w, key, ms)?),
        SetOp::Rem(ms) => int(s::srem(w, key, ms)?),
        SetOp::Pop(None) => match s::spop(w, key, 1, seed)? {
            Some(v) => opt_bulk(v.into_iter().next()),
            None => Reply::Nil,
        },
        SetOp::Pop(Some(n)) => set_reply(s::spop(w, key, *n, seed)?.unwrap_or_default()),
        // Redis answers 0 for a missing source before it looks at the destination's type.
        SetOp::Move { .. } if s::scard(w, key)? == 0 => Reply::Int(0),
        SetOp::Move { dst, member } => Reply::Int(ops::smove(w, key, dst, member)?.into()),
        SetOp::Algebra {
            kind,
            keys,
            store: Some(dst),
        } => {
            let members = algebra(w, *kind, keys)?;
            int(ops::store(w, dst, &members)?)
        }
        _ => read(w, c)?,
    })
}
