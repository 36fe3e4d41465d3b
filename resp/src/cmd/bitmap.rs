//! Bitmap commands on string values: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
//! BITFIELD_RO. The typed operations, the table entries (Redis 7.2's data), the family's
//! registration table and its unit tests; the argument parsers are in `bitmap_parse.rs`.
//!
//! Redis checks some arguments only once it has found the key: BITCOUNT's and BITPOS's
//! ranges are parsed after the key was looked up (a missing key answers 0 / -1 / 0 whatever
//! the range says; a wrong type answers WRONGTYPE first). Those parts are parsed here into a
//! `Result` the store reports in Redis's order ([`BitmapOp::Count`], [`BitmapOp::Pos`]).

use bytes::Bytes;

use super::bitmap_parse::parse;
use super::coll::Typed;
use super::spec::{CommandSpec, KeySpec};
use crate::Reply;

/// Most bytes a bitmap command may address (Redis's `proto-max-bulk-len` default, the
/// store's `MAX_STRING`): an offset whose byte is at or past it is refused with
/// `ERR bit offset is not an integer or out of range`. A constant, never a node's flag, so
/// every replica parses a replicated command alike.
pub const MAX_BITMAP_BYTES: u64 = 512 * 1024 * 1024;

/// A parsed bitmap command (`args`: the arguments after the name; the key is `args[0]`,
/// except for BITOP: `[operation, destkey, key...]`).
pub type BitmapCmd = Typed<BitmapOp>;

/// What a bitmap command does.
#[derive(Debug, Clone, PartialEq)]
pub enum BitmapOp {
    /// SETBIT key offset 0|1.
    SetBit { offset: u64, on: bool },
    /// GETBIT key offset.
    GetBit { offset: u64 },
    /// BITCOUNT key [start end [BYTE|BIT]]: the range, or the error Redis answers once the
    /// key is known to hold a string.
    Count(Result<Span, Reply>),
    /// BITPOS key bit [start [end [BYTE|BIT]]] (the range as BITCOUNT's).
    Pos {
        bit: bool,
        span: Result<Span, Reply>,
    },
    /// BITOP AND|OR|XOR|NOT destkey key [key ...].
    Op(BitOp),
    /// BITFIELD / BITFIELD_RO: the operations in order (BITFIELD_RO has only GETs).
    Field(Vec<FieldOp>),
}

/// The range of BITCOUNT / BITPOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// No range: the whole string.
    Whole,
    /// BITCOUNT's shortcut: start and end both negative and start > end (counts 0, before
    /// the unit is even looked at, as Redis).
    Empty,
    /// `start` to `end` inclusive (negative: from the end; `None`: BITPOS without an end),
    /// in bits when `bits`, else in bytes.
    Range {
        start: i64,
        end: Option<i64>,
        bits: bool,
    },
}

/// BITOP's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITFIELD's overflow policy (OVERFLOW WRAP|SAT|FAIL; WRAP until one is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// One BITFIELD operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOp {
    pub action: FieldAction,
    /// `i<bits>` (1..=64) when signed, `u<bits>` (1..=63) when not.
    pub signed: bool,
    pub bits: u32,
    /// Bit offset of the field's most significant bit (`#n` already multiplied out).
    pub offset: u64,
    /// The policy in force where the operation was given.
    pub overflow: Overflow,
}

/// What a BITFIELD operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAction {
    Get,
    /// Replies the old value.
    Set(i64),
    /// Replies the new value.
    IncrBy(i64),
}

impl FieldOp {
    /// The last bit a SET / INCRBY writes (`None` for GET).
    pub fn last_written_bit(&self) -> Option<u64> {
        match self.action {
            FieldAction::Get => None,
            _ => Some(self.offset + u64::from(self.bits) - 1),
        }
    }
}

const GROUP: &str = "bitmap";
const RO_ACCESS: &[&str] = &["RO", "access"];
const HISTORY_UNIT: &[(&str, &str)] = &[("7.0.0", "Added the `BYTE|BIT` option.")];

pub(crate) static SETBIT: CommandSpec = CommandSpec {
    summary:
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
    since: "2.2.0",
    group: GROUP,
    complexity: "O(1)",
    acl_categories: &["bitmap"],
    args: "key:key#0 offset:integer value:integer",
    ..CommandSpec::new(
        "SETBIT",
        4,
        &["write", "denyoom"],
        &[KeySpec::range(1, 0, 1, &["RW", "access", "update"])],
        parse,
    )
};

pub(crate) static GETBIT: CommandSpec = CommandSpec {
    summary: "Returns a bit value by offset.",
    since: "2.2.0",
    group: GROUP,
    complexity: "O(1)",
    acl_categories: &["bitmap"],
    args: "key:key#0 offset:integer",
    ..CommandSpec::new(
        "GETBIT",
        3,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, RO_ACCESS)],
        parse,
    )
};

pub(crate) static BITCOUNT: CommandSpec = CommandSpec {
    summary: "Counts the number of set bits (population counting) in a string.",
    since: "2.6.0",
    group: GROUP,
    complexity: "O(N)",
    acl_categories: &["bitmap"],
    history: HISTORY_UNIT,
    args: "key:key#0 range:block?(start:integer end:integer unit:oneof?@7.0.0(byte:pure-token=BYTE bit:pure-token=BIT))",
    ..CommandSpec::new(
        "BITCOUNT",
        -2,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO_ACCESS)],
        parse,
    )
};

pub(crate) static BITPOS: CommandSpec = CommandSpec {
    summary: "Finds the first set (1) or clear (0) bit in a string.",
    since: "2.8.7",
    group: GROUP,
    complexity: "O(N)",
    acl_categories: &["bitmap"],
    history: HISTORY_UNIT,
    args: "key:key#0 bit:integer range:block?(start:integer end-unit-block:block?(end:integer unit:oneof?@7.0.0(byte:pure-token=BYTE bit:pure-token=BIT)))",
    ..CommandSpec::new(
        "BITPOS",
        -3,
        &["readonly"],
        &[KeySpec::range(1, 0, 1, RO_ACCESS)],
        parse,
    )
};

pub(crate) static BITOP: CommandSpec = CommandSpec {
    summary: "Performs bitwise operations on multiple strings, and stores the result.",
    since: "2.6.0",
    group: GROUP,
    complexity: "O(N)",
    acl_categories: &["bitmap"],
    args: "operation:oneof(and:pure-token=AND or:pure-token=OR xor:pure-token=XOR not:pure-token=NOT) destkey:key#0 key:key*#1",
    ..CommandSpec::new(
        "BITOP",
        -4,
        &["write", "denyoom"],
        &[
            KeySpec::range(2, 0, 1, &["OW", "update"]),
            KeySpec::range(3, -1, 1, RO_ACCESS),
        ],
        parse,
    )
};

pub(crate) static BITFIELD: CommandSpec = CommandSpec {
    summary: "Performs arbitrary bitfield integer operations on strings.",
    since: "3.2.0",
    group: GROUP,
    complexity: "O(1) for each subcommand specified",
    acl_categories: &["bitmap"],
    args: "key:key#0 operation:oneof?*(get-block:block=GET(encoding:string offset:integer) write:block(overflow-block:oneof?=OVERFLOW(wrap:pure-token=WRAP sat:pure-token=SAT fail:pure-token=FAIL) write-operation:oneof(set-block:block=SET(encoding:string offset:integer value:integer) incrby-block:block=INCRBY(encoding:string offset:integer increment:integer))))",
    ..CommandSpec::new(
        "BITFIELD",
        -2,
        &["write", "denyoom"],
        &[
            KeySpec::range(1, 0, 1, &["RW", "access", "update", "variable_flags"])
                .notes("This command allows both access and modification of the key"),
        ],
        parse,
    )
};

pub(crate) static BITFIELD_RO: CommandSpec = CommandSpec {
    summary: "Performs arbitrary read-only bitfield integer operations on strings.",
    since: "6.0.0",
    group: GROUP,
    complexity: "O(1) for each subcommand specified",
    acl_categories: &["bitmap"],
    args: "key:key#0 get-block:block?*+=GET(encoding:string offset:integer)",
    ..CommandSpec::new(
        "BITFIELD_RO",
        -2,
        &["readonly", "fast"],
        &[KeySpec::range(1, 0, 1, RO_ACCESS)],
        parse,
    )
};

/// The family's registration table.
pub(super) static COMMANDS: &[&CommandSpec] = &[
    &SETBIT,
    &GETBIT,
    &BITCOUNT,
    &BITPOS,
    &BITOP,
    &BITFIELD,
    &BITFIELD_RO,
];

/// BITOP's arguments are `[operation, destkey, key...]`: its keys by role.
impl BitmapCmd {
    /// BITOP's destination key (empty for the other commands).
    pub fn dest(&self) -> &[u8] {
        match self.op {
            BitmapOp::Op(_) => self.args.get(1).map_or(&b""[..], |k| &k[..]),
            _ => b"",
        }
    }

    /// BITOP's source keys (empty for the other commands).
    pub fn sources(&self) -> &[Bytes] {
        match self.op {
            BitmapOp::Op(_) => self.args.get(2..).unwrap_or_default(),
            _ => &[],
        }
    }
}
