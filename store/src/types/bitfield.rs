//! BITFIELD's integer fields on a string payload, ported from Redis's `bitops.c`: fields of
//! 1 to 64 bits (unsigned up to 63) at any bit offset, most significant bit first; SET and
//! INCRBY with the WRAP / SAT / FAIL overflow policies (`check*BitfieldOverflow`, including
//! its quirks: SET of a negative value into an unsigned field saturates to the maximum).

use resp::{FieldAction, FieldOp, Overflow};

/// The unsigned value of `bits` bits at bit `offset` (bits past the end of `s` read as 0).
pub fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |v, j| {
        (v << 1) | u64::from(super::bitmap::get_bit(s, offset + j))
    })
}

/// The two's complement value of `bits` bits at bit `offset`.
pub fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(s, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset` (the field must be inside `s`).
pub fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = value & (1 << (u64::from(bits) - 1 - j)) != 0;
        super::bitmap::set_bit(s, offset + j, on);
    }
}

/// What an overflow check found: the operation's value fits (`None`), or it overflowed and
/// WRAP / SAT give the value to store instead (`Some(None)` under FAIL).
type Checked<T> = Option<Option<T>>;

/// Redis's `checkUnsignedBitfieldOverflow` (`value` + `incr` into `bits` bits).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Checked<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    let limit = |sat: u64| match ow {
        Overflow::Wrap => Some(wrap()),
        Overflow::Sat => Some(sat),
        Overflow::Fail => None,
    };
    if value > max || (incr > 0 && incr > maxincr) {
        Some(limit(max))
    } else if incr < 0 && incr < minincr {
        Some(limit(0))
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow` (`value` + `incr` into `bits` bits).
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Checked<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    let limit = |sat: i64| match ow {
        Overflow::Wrap => Some(wrap()),
        Overflow::Sat => Some(sat),
        Overflow::Fail => None,
    };
    let wide = bits != 64;
    if value > max || (wide && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(limit(max))
    } else if value < min || (wide && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        Some(limit(min))
    } else {
        None
    }
}

/// Runs one operation on `s` (already long enough for every write): the reply value, or
/// `None` for an overflow under FAIL (nothing written).
pub fn run(s: &mut [u8], op: &FieldOp) -> Option<i64> {
    let (offset, bits) = (op.offset, op.bits);
    if op.signed {
        let old = get_signed(s, offset, bits);
        let (new, reply) = match op.action {
            FieldAction::Get => return Some(old),
            FieldAction::IncrBy(d) => {
                let new = match signed_overflow(old, d, bits, op.overflow) {
                    None => old.wrapping_add(d),
                    Some(limit) => limit?,
                };
                (new, new)
            }
            FieldAction::Set(v) => {
                let new = match signed_overflow(v, 0, bits, op.overflow) {
                    None => v,
                    Some(limit) => limit?,
                };
                (new, old)
            }
        };
        set_field(s, offset, bits, new as u64);
        Some(reply)
    } else {
        let old = get_unsigned(s, offset, bits);
        let (new, reply) = match op.action {
            FieldAction::Get => return Some(old as i64),
            FieldAction::IncrBy(d) => {
                let new = match unsigned_overflow(old, d, bits, op.overflow) {
                    None => old.wrapping_add(d as u64),
                    Some(limit) => limit?,
                };
                (new, new)
            }
            FieldAction::Set(v) => {
                let new = match unsigned_overflow(v as u64, 0, bits, op.overflow) {
                    None => v as u64,
                    Some(limit) => limit?,
                };
                (new, old)
            }
        };
        set_field(s, offset, bits, new);
        Some(reply as i64)
    }
}

/// A GET on a string that may be shorter than the field, or absent.
pub fn get(s: &[u8], op: &FieldOp) -> i64 {
    if op.signed {
        get_signed(s, op.offset, op.bits)
    } else {
        get_unsigned(s, op.offset, op.bits) as i64
    }
}
