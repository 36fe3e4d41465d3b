//! The store's apply path for the families that live inside string values: bitmaps,
//! HyperLogLog and LCS (through [`Applier`], the one overlay strings and collections share).
//!
//! Budget ([`crate::budget`]): before it runs, a command is charged with what it will
//! allocate, computed from the lengths of the values it names (no copy): a write the length
//! of the string it rewrites (SETBIT / BITFIELD: the string grown to the farthest bit
//! written; BITOP: the longest source, the result's length; PFADD / PFMERGE: one dense
//! sketch), LCS its table. Reads applied with an entry are also charged with their reply.
//! Every replica computes the same lengths, so every replica refuses alike.
//!
//! WATCH: a write moves the versions of the keys it stores or deletes (through `put_data` /
//! `del_data`, as every string write); a SETBIT that changes no bit and a PFADD that grows
//! no register store nothing, so they move none (Redis signals no change either).

use resp::{BitmapOp, Command, FieldOp, HllOp, Kind, Reply};
use rocksdb::WriteBatch;

use crate::applier::{apply_error, Applier};
use crate::cmd_common::reply_size;
use crate::types::{hll, lcs};
use crate::{cmd_bitmap, cmd_hll, data_key, Store};

impl Store {
    /// Applies a bitmap, HyperLogLog or LCS command (a write, or a read replicated with
    /// writes).
    pub(crate) fn apply_bits(&mut self, wb: &mut WriteBatch, cmd: &Command, now: i64) -> Reply {
        let read = cmd.kind() == Kind::Read;
        charge!(self, self.bits_cost(cmd, now));
        let mut a = Applier::new(self, wb, now);
        let r = match cmd {
            Command::Bitmap(c) if read => cmd_bitmap::read(&a, c),
            Command::Bitmap(c) => cmd_bitmap::write(&mut a, c),
            Command::Hll(c) if read => cmd_hll::read(&a, c),
            Command::Hll(c) => cmd_hll::write(&mut a, c),
            Command::Lcs(c) => cmd_hll::lcs(&a, c),
            other => {
                return Reply::err(format!(
                    "ERR '{}' is not a bitmap, HyperLogLog or LCS command",
                    other.name()
                ))
            }
        };
        let reply = r.unwrap_or_else(apply_error);
        if read {
            charge!(self, reply_size(&reply));
        }
        reply
    }

    /// What the command will allocate, from the lengths of the live values it names.
    fn bits_cost(&self, cmd: &Command, now: i64) -> usize {
        let len = |k: &[u8]| self.live_len(&data_key(k), now);
        // A string past 512 MiB is refused without being built (`cmd_bitmap`).
        let grown = |k: &[u8], last_bit: u64| match (last_bit >> 3) as usize + 1 {
            n if n > crate::MAX_STRING => 0,
            n => len(k).max(n),
        };
        match cmd {
            Command::Bitmap(c) => match &c.op {
                BitmapOp::SetBit { offset, .. } => grown(c.key(), *offset),
                BitmapOp::Field(ops) => ops
                    .iter()
                    .filter_map(FieldOp::last_written_bit)
                    .max()
                    .map_or(0, |last| grown(c.key(), last)),
                BitmapOp::Op(_) => c.sources().iter().map(|k| len(k)).max().unwrap_or(0),
                _ => 0,
            },
            Command::Hll(c) if c.op != HllOp::Count => hll::DENSE_SIZE,
            Command::Lcs(c) => {
                let (a, b) = (len(&c.args[0]), len(&c.args[1]));
                let table = lcs::table_bytes(a, b);
                match &c.op {
                    _ if table > lcs::TABLE_LIMIT => 0,
                    Ok(o) if o.len => (b + 1) * 8,
                    _ => table as usize,
                }
            }
            _ => 0,
        }
    }
}
