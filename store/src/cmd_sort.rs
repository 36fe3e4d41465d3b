//! Execution of SORT / SORT_RO (`resp::SortArgs`) on [`crate::types::sort`]: an array of
//! bulk strings (nil where a GET pattern found nothing), or with STORE the stored list's
//! length.

use resp::{Reply, SortCmd};

use crate::cmd_common::{int, opt_bulk};
use crate::types::sort::{sort, sort_store};
use crate::types::{Read, Result, Write};

/// SORT without STORE, SORT_RO.
pub(crate) fn read(r: &dyn Read, c: &SortCmd) -> Result<Reply> {
    let out = sort(r, c.key(), &c.op)?;
    Ok(Reply::Array(out.into_iter().map(opt_bulk).collect()))
}

/// SORT ... STORE.
pub(crate) fn write(w: &mut dyn Write, c: &SortCmd) -> Result<Reply> {
    match &c.op.store {
        Some(dst) => Ok(int(sort_store(w, c.key(), &c.op, dst)?)),
        None => read(w, c),
    }
}
