//! Execution of the hash family (`resp::HashOp`) on the typed operations of
//! [`crate::types::hash`]: reads on any [`Read`] view, writes on the apply path's view.

use resp::{HashCmd, HashOp, Reply};

use crate::cmd_common::{bulk, bulks, int, local_rng, opt_bulk, page, scan_after, scan_reply};
use crate::types::hash as h;
use crate::types::{Read, Result, Write};

/// A read command of the family.
pub(crate) fn read(r: &dyn Read, c: &HashCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        HashOp::Get(f) => opt_bulk(h::hget(r, key, f)?),
        HashOp::MGet(fs) => Reply::Array(h::hmget(r, key, fs)?.into_iter().map(opt_bulk).collect()),
        HashOp::Exists(f) => Reply::Int(h::hexists(r, key, f)?.into()),
        HashOp::Len => int(h::hlen(r, key)?),
        HashOp::StrLen(f) => int(h::hstrlen(r, key, f)?),
        HashOp::Keys => bulks(h::hkeys(r, key)?),
        HashOp::Vals => bulks(h::hvals(r, key)?),
        HashOp::GetAll => Reply::Map(
            h::hgetall(r, key)?
                .into_iter()
                .map(|(f, v)| (bulk(f), bulk(v)))
                .collect(),
        ),
        HashOp::RandField { count, with_values } => {
            let mut rng = local_rng();
            match count {
                None => {
                    let one = h::hrandfield(r, key, 1, &mut rng)?;
                    opt_bulk(one.into_iter().next().map(|(f, _)| f))
                }
                Some(n) => {
                    let got = h::hrandfield(r, key, *n, &mut rng)?;
                    if *with_values {
                        Reply::Pairs(got.into_iter().map(|(f, v)| (bulk(f), bulk(v))).collect())
                    } else {
                        bulks(got.into_iter().map(|(f, _)| f).collect())
                    }
                }
            }
        }
        HashOp::Scan(s) => {
            let after = scan_after(s.cursor);
            let pat = s.pattern.as_deref();
            let p = h::hscan(r, key, after.as_deref(), page(s.count), pat)?;
            let items = p.items.into_iter().flat_map(|(f, v)| [bulk(f), bulk(v)]);
            scan_reply(p.next, items.collect())
        }
        _ => write_only(c),
    })
}

fn write_only(c: &HashCmd) -> Reply {
    Reply::err(format!("ERR '{}' is not a read", c.spec.name))
}

/// A write command of the family.
pub(crate) fn write(w: &mut dyn Write, c: &HashCmd) -> Result<Reply> {
    let key = c.key();
    Ok(match &c.op {
        HashOp::Set { pairs, legacy } => {
            let n = h::hset(w, key, pairs)?;
            if *legacy {
                Reply::ok()
            } else {
                int(n)
            }
        }
        HashOp::SetNx(f, v) => Reply::Int(h::hsetnx(w, key, f, v)?.into()),
        HashOp::Del(fs) => int(h::hdel(w, key, fs)?),
        HashOp::IncrBy(f, d) => Reply::Int(h::hincrby(w, key, f, *d)?),
        HashOp::IncrByFloat(f, d) => bulk(h::hincrbyfloat(w, key, f, *d)?.into_bytes()),
        _ => read(w, c)?,
    })
}
