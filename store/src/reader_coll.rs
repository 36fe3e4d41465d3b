//! Reads of the typed families outside the apply path (the collections, geo, SORT, DUMP,
//! and the bitmap, HyperLogLog and LCS commands on strings): one [`Read`] view of the read
//! group's snapshot, dispatched to the family's `read`.

use resp::{Command, Reply};

use crate::types::Read;
use crate::{
    cmd_bitmap, cmd_dump, cmd_geo, cmd_hash, cmd_hll, cmd_list, cmd_set, cmd_sort, cmd_zset,
};

/// Runs a collection read on `r`; storage failures become an error reply.
pub(crate) fn read(r: &dyn Read, cmd: &Command) -> Reply {
    let out = match cmd {
        Command::Hash(c) => cmd_hash::read(r, c),
        Command::List(c) => cmd_list::read(r, c),
        Command::Sets(c) => cmd_set::read(r, c),
        Command::ZSet(c) => cmd_zset::read(r, c),
        Command::Geo(c) => cmd_geo::read(r, c),
        Command::Sort(c) => cmd_sort::read(r, c),
        Command::Dump(c) => cmd_dump::read(r, c),
        Command::Bitmap(c) => cmd_bitmap::read(r, c),
        Command::Hll(c) => cmd_hll::read(r, c),
        Command::Lcs(c) => cmd_hll::lcs(r, c),
        other => return Reply::err(format!("ERR '{}' is not a collection read", other.name())),
    };
    out.unwrap_or_else(|e| match e.is_fatal() {
        true => Reply::err(format!("ERR storage error: {e}")),
        false => Reply::err(e.to_string()),
    })
}
