//! Redis Cluster hash slots: CRC16-XMODEM of the key (or of its first non-empty `{tag}`)
//! modulo 16384, and the slot a key pattern pins (SORT's BY / GET patterns). Here, in the
//! pure protocol crate, so parsers can check slots; `store::slot` re-exports it (every
//! stored key is prefixed with its slot, so a slot is one key range).

/// Number of hash slots.
pub const SLOTS: u16 = 16384;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), as Redis Cluster uses.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of a key, honouring `{hashtag}`s.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&c| c == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&c| c == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// The slot every key a pattern can form hashes to (Redis's `patternHashSlot`), or `None`
/// when the keys may be in different slots: a wildcard (`*`, `?`, `[`) or an escape before
/// the first non-empty `{tag}` closes. A pattern without such a tag forms one key: its own.
pub fn pattern_hash_slot(pattern: &[u8]) -> Option<u16> {
    let mut open = None;
    for (i, &c) in pattern.iter().enumerate() {
        match (c, open) {
            (b'*' | b'?' | b'[' | b'\\', _) => return None,
            (b'{', None) => open = Some(i),
            // `{}` hashes the whole key: the braces are ordinary characters from here on.
            (b'}', Some(o)) if o != usize::MAX && i == o + 1 => open = Some(usize::MAX),
            (b'}', Some(o)) if o != usize::MAX => return Some(crc16(&pattern[o + 1..i]) % SLOTS),
            _ => {}
        }
    }
    Some(crc16(pattern) % SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn patterns_pin_a_slot_only_through_a_tag_before_any_wildcard() {
        assert_eq!(pattern_hash_slot(b"{a}by*"), Some(key_slot(b"a")));
        assert_eq!(pattern_hash_slot(b"{a}h*->f"), Some(key_slot(b"a")));
        assert_eq!(pattern_hash_slot(b"by*"), None);
        assert_eq!(pattern_hash_slot(b"by*{a}"), None);
        assert_eq!(pattern_hash_slot(b"{a*}x"), None);
        assert_eq!(pattern_hash_slot(b"{}*"), None);
        assert_eq!(pattern_hash_slot(b"\\{a}*"), None);
        assert_eq!(pattern_hash_slot(b"plain"), Some(key_slot(b"plain")));
        assert_eq!(pattern_hash_slot(b"x{}{b}"), Some(crc16(b"x{}{b}") % SLOTS));
    }
}
