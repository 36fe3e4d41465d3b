//! Redis Cluster hash slots (the implementation lives in `resp::slot`, where the parsers can
//! use it too): every stored key is prefixed with its slot, so a slot is one key range.

pub use resp::slot::{crc16, key_slot, pattern_hash_slot, SLOTS};
