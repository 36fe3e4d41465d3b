//! Execution of the list family (`resp::ListOp`) on [`crate::types::list`].
//!
//! The blocking forms (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP) pop like their non-blocking
//! forms when an element is there, and answer Redis's timeout reply (a null array) at once
//! when there is none, as Redis does inside MULTI; the node's blocking layer
//! (`src/blocking.rs`) takes that reply as "wait for a push and propose again".

use bytes::Bytes;
use resp::{ListCmd, ListOp, Reply};

use crate::cmd_common::{bulk, bulks, int, opt_bulk};
use crate::types::list::{self as l, End};
use crate::types::{Error, Read, Result, Write};

fn end(left: bool) -> End {
    if left {
        End::Left
    } else {
        End::Right
    }
}

/// A read command of the family.
pub(crate) fn read(r: &dyn Read, c: &ListCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        ListOp::Len => int(l::llen(r, key)?),
        ListOp::Range(a, b) => Reply::Array(
            (l::lrange_shared(r, key, *a, *b)?)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        ListOp::Index(i) => match (l::llen(r, key)?, i) {
            (0, _) => Reply::Nil,
            (_, None) => return Err(Error::NotInteger),
            (_, Some(i)) => opt_bulk(l::lindex(r, key, *i)?),
        },
        ListOp::Pos {
            value,
            rank,
            count,
            maxlen,
        } => {
            let found = l::lpos(r, key, value, *rank, count.unwrap_or(1), *maxlen)?;
            match count {
                None => found.first().map_or(Reply::Nil, |&i| int(i)),
                Some(_) => Reply::Array(found.into_iter().map(int).collect()),
            }
        }
        _ => Reply::err(format!("ERR '{}' is not a read", c.spec.name)),
    })
}

/// A write command of the family.
pub(crate) fn write(w: &mut dyn Write, c: &ListCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        ListOp::Push {
            left,
            only_existing,
            values,
        } => int(l::push(w, key, end(*left), values, *only_existing)?),
        ListOp::Pop { left, count: None } => match l::pop(w, key, end(*left), 1)? {
            Some(mut v) if !v.is_empty() => bulk(v.swap_remove(0)),
            _ => Reply::Nil,
        },
        ListOp::Pop {
            left,
            count: Some(n),
        } => match l::pop(w, key, end(*left), *n)? {
            Some(v) => bulks(v),
            None => Reply::NilArray,
        },
        ListOp::Set(i, v) => {
            if l::llen(w, key)? == 0 {
                return Err(Error::NoSuchKey);
            }
            l::lset(w, key, i.ok_or(Error::NotInteger)?, v)?;
            Reply::ok()
        }
        ListOp::Insert {
            before,
            pivot,
            value,
        } => Reply::Int(l::linsert(w, key, *before, pivot, value)?),
        ListOp::Rem(n, v) => int(l::lrem(w, key, *n, v)?),
        ListOp::Trim(a, b) => {
            l::ltrim(w, key, *a, *b)?;
            Reply::ok()
        }
        ListOp::Move {
            dst,
            from_left,
            to_left,
            timeout,
        } => match l::lmove(w, key, dst, end(*from_left), end(*to_left))? {
            Some(v) => bulk(v),
            None if timeout.is_some() => Reply::NilArray,
            None => Reply::Nil,
        },
        ListOp::MPop {
            keys,
            left,
            count,
            bpop,
            ..
        } => mpop(w, keys, *left, *count, *bpop)?,
        _ => read(w, c)?,
    })
}

/// LMPOP / BLMPOP / BLPOP / BRPOP: pops from the first non-empty list.
fn mpop(w: &mut dyn Write, keys: &[Bytes], left: bool, count: u64, bpop: bool) -> Result<Reply> {
    for k in keys {
        if l::llen(w, k)? == 0 {
            continue;
        }
        let got = l::pop(w, k, end(left), count)?.unwrap_or_default();
        let key = Reply::Bulk(k.clone());
        return Ok(if bpop {
            let first = got.into_iter().next().map_or(Reply::Nil, bulk);
            Reply::Array(vec![key, first])
        } else {
            Reply::Array(vec![key, bulks(got)])
        });
    }
    // Also the blocking forms' reply when there is nothing to pop (they wait above the store).
    Ok(Reply::NilArray)
}
