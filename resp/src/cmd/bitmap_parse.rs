//! The bitmap family's parser (types and entries in `bitmap.rs`): bit offsets (with
//! BITFIELD's `#n` form), BITCOUNT / BITPOS ranges, BITOP's operation, BITFIELD's
//! operations and types, with Redis 7.0's error texts (`bitops.c`).

use bytes::Bytes;

use super::bitmap::{BitOp, BitmapOp, FieldAction, FieldOp, Overflow, Span, MAX_BITMAP_BYTES};
use super::coll::Typed;
use super::spec::CommandSpec;
use super::util::{int, syntax};
use crate::request::string2ll;
use crate::{Command, Reply};

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// The family's parser (one for every entry, by name).
pub(super) fn parse(spec: &'static CommandSpec, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[2..];
    let op = match spec.name {
        "SETBIT" => {
            let offset = bit_offset(&a[0], 0)?;
            let on = string2ll(&a[1])
                .filter(|v| (*v & !1) == 0)
                .ok_or_else(|| Reply::err(BAD_BIT))?;
            BitmapOp::SetBit {
                offset,
                on: on == 1,
            }
        }
        "GETBIT" => BitmapOp::GetBit {
            offset: bit_offset(&a[0], 0)?,
        },
        "BITCOUNT" => BitmapOp::Count(count_span(a)),
        "BITPOS" => {
            let bit = int(&a[0])?;
            if bit != 0 && bit != 1 {
                return Err(Reply::err("ERR The bit argument must be 1 or 0."));
            }
            BitmapOp::Pos {
                bit: bit == 1,
                span: pos_span(&a[1..]),
            }
        }
        "BITOP" => BitmapOp::Op(bit_op(argv)?),
        _ => BitmapOp::Field(fields(a, spec.name == "BITFIELD_RO")?),
    };
    Ok(Command::Bitmap(Typed {
        spec,
        args: argv[1..].to_vec(),
        op,
    }))
}

/// A bit offset like Redis's `getBitOffsetFromArgument`: a non-negative integer whose byte
/// is below [`MAX_BITMAP_BYTES`]; with `bits` > 0 (BITFIELD) `#n` means `n * bits`. Unlike
/// Redis (whose multiplication may wrap around), a `#n` that overflows is refused.
pub(crate) fn bit_offset(b: &[u8], bits: u32) -> Result<u64, Reply> {
    let err = || Reply::err(BAD_OFFSET);
    let (digits, times) = match b.strip_prefix(b"#") {
        Some(d) if bits > 0 => (d, i64::from(bits)),
        _ => (b, 1),
    };
    let n = string2ll(digits)
        .and_then(|n| n.checked_mul(times))
        .ok_or_else(err)?;
    match u64::try_from(n) {
        Ok(n) if n >> 3 < MAX_BITMAP_BYTES => Ok(n),
        _ => Err(err()),
    }
}

/// `BYTE` (false) or `BIT` (true), case-insensitively.
fn unit(u: &[u8]) -> Result<bool, Reply> {
    if u.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if u.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(syntax())
    }
}

/// BITCOUNT's `[start end [BYTE|BIT]]`, checked in Redis's order: start, end, the
/// both-negative shortcut, the unit.
fn count_span(a: &[Bytes]) -> Result<Span, Reply> {
    let (s, e, u) = match a {
        [] => return Ok(Span::Whole),
        [s, e] => (s, e, None),
        [s, e, u] => (s, e, Some(u)),
        _ => return Err(syntax()),
    };
    let (start, end) = (int(s)?, int(e)?);
    if start < 0 && end < 0 && start > end {
        return Ok(Span::Empty);
    }
    let bits = u.map(|u| unit(u)).transpose()?.unwrap_or(false);
    Ok(Span::Range {
        start,
        end: Some(end),
        bits,
    })
}

/// BITPOS's `[start [end [BYTE|BIT]]]`, in Redis's order: start, the unit, end.
fn pos_span(a: &[Bytes]) -> Result<Span, Reply> {
    if a.is_empty() {
        return Ok(Span::Whole);
    }
    if a.len() > 3 {
        return Err(syntax());
    }
    let start = int(&a[0])?;
    let bits = a.get(2).map(|u| unit(u)).transpose()?.unwrap_or(false);
    let end = a.get(1).map(|e| int(e)).transpose()?;
    Ok(Span::Range { start, end, bits })
}

/// BITOP's operation (`argv[1]`); NOT takes exactly one source.
fn bit_op(argv: &[Bytes]) -> Result<BitOp, Reply> {
    let name = &argv[1];
    let op = [
        (&b"and"[..], BitOp::And),
        (b"or", BitOp::Or),
        (b"xor", BitOp::Xor),
        (b"not", BitOp::Not),
    ]
    .into_iter()
    .find(|(n, _)| name.eq_ignore_ascii_case(n))
    .map(|(_, op)| op)
    .ok_or_else(syntax)?;
    if op == BitOp::Not && argv.len() != 4 {
        return Err(Reply::err(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    Ok(op)
}

/// A BITFIELD type: `i1`..`i64` or `u1`..`u63` (lower-case sign only, as Redis).
fn field_type(t: &[u8]) -> Result<(bool, u32), Reply> {
    let err = || Reply::err(BAD_TYPE);
    let signed = match t.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let max = if signed { 64 } else { 63 };
    match string2ll(&t[1..]) {
        Some(n) if (1..=max).contains(&n) => Ok((signed, n as u32)),
        _ => Err(err()),
    }
}

/// BITFIELD's operations (`a`: the arguments after the key), as Redis's `bitfieldGeneric`
/// parses them: every operation is checked before any runs; BITFIELD_RO refuses writes only
/// after the whole list parsed.
fn fields(a: &[Bytes], read_only: bool) -> Result<Vec<FieldOp>, Reply> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut writes = false;
    let mut i = 0;
    while i < a.len() {
        let rest = a.len() - i - 1;
        let sub = &a[i];
        let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
        let write = if is("get") && rest >= 2 {
            false
        } else if (is("set") || is("incrby")) && rest >= 3 {
            true
        } else if is("overflow") && rest >= 1 {
            overflow = overflow_kind(&a[i + 1])?;
            i += 2;
            continue;
        } else {
            return Err(syntax());
        };
        let (signed, bits) = field_type(&a[i + 1])?;
        let offset = bit_offset(&a[i + 2], bits)?;
        let action = if !write {
            FieldAction::Get
        } else if is("set") {
            FieldAction::Set(int(&a[i + 3])?)
        } else {
            FieldAction::IncrBy(int(&a[i + 3])?)
        };
        writes |= write;
        ops.push(FieldOp {
            action,
            signed,
            bits,
            offset,
            overflow,
        });
        i += if write { 4 } else { 3 };
    }
    if read_only && writes {
        return Err(Reply::err(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    Ok(ops)
}

fn overflow_kind(w: &[u8]) -> Result<Overflow, Reply> {
    [
        (&b"wrap"[..], Overflow::Wrap),
        (b"sat", Overflow::Sat),
        (b"fail", Overflow::Fail),
    ]
    .into_iter()
    .find(|(n, _)| w.eq_ignore_ascii_case(n))
    .map(|(_, o)| o)
    .ok_or_else(|| Reply::err("ERR Invalid OVERFLOW type specified"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_util::{err, p, NOT_INT, SYNTAX};
    use crate::BitmapCmd;

    fn cmd(s: &str) -> BitmapCmd {
        match p(s) {
            Command::Bitmap(c) => c,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn op(s: &str) -> BitmapOp {
        cmd(s).op
    }

    fn range(start: i64, end: Option<i64>, bits: bool) -> Span {
        Span::Range { start, end, bits }
    }

    #[test]
    fn setbit_and_getbit_arguments() {
        assert_eq!(
            op("SETBIT k 7 1"),
            BitmapOp::SetBit {
                offset: 7,
                on: true
            }
        );
        assert_eq!(op("GETBIT k 0"), BitmapOp::GetBit { offset: 0 });
        assert_eq!(err("SETBIT k -1 1"), BAD_OFFSET);
        assert_eq!(err("SETBIT k x 1"), BAD_OFFSET);
        assert_eq!(err("SETBIT k #1 1"), BAD_OFFSET);
        assert_eq!(err("GETBIT k 4294967296"), BAD_OFFSET);
        assert_eq!(
            op("GETBIT k 4294967295"),
            BitmapOp::GetBit { offset: 4294967295 }
        );
        assert_eq!(err("SETBIT k 0 2"), BAD_BIT);
        assert_eq!(err("SETBIT k 0 -1"), BAD_BIT);
        assert_eq!(err("SETBIT k 0 x"), BAD_BIT);
        // The offset is checked first.
        assert_eq!(err("SETBIT k x x"), BAD_OFFSET);
    }

    #[test]
    fn ranges_keep_their_errors_for_the_store() {
        assert_eq!(op("BITCOUNT k"), BitmapOp::Count(Ok(Span::Whole)));
        assert_eq!(
            op("BITCOUNT k 1 -2 bit"),
            BitmapOp::Count(Ok(range(1, Some(-2), true)))
        );
        assert_eq!(
            op("BITCOUNT k 0 5 BYTE"),
            BitmapOp::Count(Ok(range(0, Some(5), false)))
        );
        // Both negative, start past end: 0 before the unit is looked at.
        assert_eq!(
            op("BITCOUNT k -1 -5 nope"),
            BitmapOp::Count(Ok(Span::Empty))
        );
        assert_eq!(op("BITCOUNT k 1"), BitmapOp::Count(Err(syntax())));
        assert_eq!(op("BITCOUNT k 0 1 bit x"), BitmapOp::Count(Err(syntax())));
        assert_eq!(op("BITCOUNT k 0 1 bits"), BitmapOp::Count(Err(syntax())));
        assert_eq!(
            op("BITCOUNT k 0 x"),
            BitmapOp::Count(Err(Reply::err(NOT_INT)))
        );
        let pos = |s| match op(s) {
            BitmapOp::Pos { span, .. } => span,
            other => panic!("{other:?}"),
        };
        assert_eq!(pos("BITPOS k 1"), Ok(Span::Whole));
        assert_eq!(pos("BITPOS k 0 2"), Ok(range(2, None, false)));
        assert_eq!(pos("BITPOS k 0 2 -1 BIT"), Ok(range(2, Some(-1), true)));
        // Redis reads the unit before the end.
        assert_eq!(pos("BITPOS k 0 2 x nope"), Err(syntax()));
        assert_eq!(pos("BITPOS k 0 2 x bit"), Err(Reply::err(NOT_INT)));
        assert_eq!(pos("BITPOS k 0 1 2 bit x"), Err(syntax()));
        assert_eq!(err("BITPOS k 2"), "ERR The bit argument must be 1 or 0.");
        assert_eq!(err("BITPOS k x"), NOT_INT);
    }

    #[test]
    fn bitop_operations_and_keys() {
        let c = cmd("BITOP and d a b");
        assert_eq!(c.op, BitmapOp::Op(BitOp::And));
        assert_eq!((c.dest(), c.sources().len()), (&b"d"[..], 2));
        assert_eq!(op("BITOP XOR d a"), BitmapOp::Op(BitOp::Xor));
        assert_eq!(op("BITOP not d a"), BitmapOp::Op(BitOp::Not));
        assert_eq!(err("BITOP nand d a"), SYNTAX);
        assert_eq!(
            err("BITOP NOT d a b"),
            "ERR BITOP NOT must be called with a single source key."
        );
        let bitop = p("BITOP OR d a b");
        assert_eq!(
            bitop.keys(),
            ["d", "a", "b"].map(Bytes::from).iter().collect::<Vec<_>>()
        );
        assert_eq!(
            err("BITOP AND d"),
            "ERR wrong number of arguments for 'bitop' command"
        );
    }

    #[test]
    fn bitfield_operations() {
        let f = |action, signed, bits, offset, overflow| FieldOp {
            action,
            signed,
            bits,
            offset,
            overflow,
        };
        assert_eq!(
            op("BITFIELD k GET u8 #2 overflow SAT SET i64 0 -5 OVERFLOW fail INCRBY u63 #1 7"),
            BitmapOp::Field(vec![
                f(FieldAction::Get, false, 8, 16, Overflow::Wrap),
                f(FieldAction::Set(-5), true, 64, 0, Overflow::Sat),
                f(FieldAction::IncrBy(7), false, 63, 63, Overflow::Fail),
            ])
        );
        assert_eq!(op("BITFIELD k"), BitmapOp::Field(vec![]));
        for bad in ["u64", "i65", "i0", "U8", "x8", "u", "u08", "i-1"] {
            assert_eq!(err(&format!("BITFIELD k GET {bad} 0")), BAD_TYPE, "{bad}");
        }
        assert_eq!(err("BITFIELD k GET u8 -1"), BAD_OFFSET);
        assert_eq!(err("BITFIELD k GET u8 #x"), BAD_OFFSET);
        assert_eq!(err("BITFIELD k GET u8 4294967296"), BAD_OFFSET);
        assert_eq!(err("BITFIELD k GET i64 #67108864"), BAD_OFFSET);
        assert_eq!(err("BITFIELD k GET u8 #2305843009213693952"), BAD_OFFSET);
        assert_eq!(err("BITFIELD k SET u8 0 x"), NOT_INT);
        assert_eq!(err("BITFIELD k GET u8"), SYNTAX);
        assert_eq!(err("BITFIELD k SET u8 0"), SYNTAX);
        assert_eq!(err("BITFIELD k FOO"), SYNTAX);
        assert_eq!(err("BITFIELD k OVERFLOW"), SYNTAX);
        assert_eq!(
            err("BITFIELD k OVERFLOW up"),
            "ERR Invalid OVERFLOW type specified"
        );
        assert_eq!(
            op("BITFIELD_RO k GET i8 0"),
            BitmapOp::Field(vec![f(FieldAction::Get, true, 8, 0, Overflow::Wrap)])
        );
        assert_eq!(
            err("BITFIELD_RO k GET i8 0 INCRBY i8 0 1"),
            "ERR BITFIELD_RO only supports the GET subcommand"
        );
        // A syntax error anywhere wins over the read-only check.
        assert_eq!(err("BITFIELD_RO k SET i8 0 1 GET"), SYNTAX);
        assert_eq!(p("BITFIELD k GET u8 0").kind(), crate::Kind::Write);
        assert_eq!(p("BITFIELD_RO k GET u8 0").kind(), crate::Kind::Read);
    }
}
