//! COPY (a replicated write), RANDOMKEY and OBJECT (reads).
//!
//! COPY copies a string's value or a collection's records (under a new version, with the
//! TTL, as RENAME does: O(n) records) and answers 1, or 0 when the source is absent or the
//! destination exists without REPLACE. RANDOMKEY seeks to a random point of the data family
//! (local randomness: a read) and answers the first live key from there, wrapping around.
//! OBJECT ENCODING reports what Redis 7.0 would for the key's type and size (see
//! [`encoding`]); FREQ answers Redis's error for a non-LFU policy (raftkv never evicts:
//! `maxmemory-policy noeviction`), IDLETIME 0 (access times are not tracked: a read must not
//! write) and REFCOUNT 1 (2147483647 for Redis's shared integers 0..9999).

use bytes::Bytes;
use resp::{ObjectCmd, ObjectSub, Reply};
use rocksdb::WriteBatch;

use crate::applier::{apply_error, Applier};
use crate::cmd_common::local_rng;
use crate::reader::{RawFn, Reader, Source};
use crate::types::meta::Meta;
use crate::types::zrange::{self, RangeBy};
use crate::types::{hash, keyspace, num, set, Read};
use crate::{data_key, slot, Store, Value, TYPE_HASH, TYPE_LIST, TYPE_SET, TYPE_STRING, TYPE_ZSET};

/// Redis's error for OBJECT FREQ without an LFU policy.
const NO_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Expired keys RANDOMKEY steps over before giving up on a pass.
const RANDOM_TRIES: usize = 100;

impl Store {
    /// COPY `src` `dst` [REPLACE]: 1 when copied, 0 when `src` is absent or `dst` exists.
    pub(crate) fn apply_copy(
        &mut self,
        wb: &mut WriteBatch,
        src: &[u8],
        dst: &[u8],
        replace: bool,
        now: i64,
    ) -> Reply {
        if src == dst {
            return Reply::err("ERR source and destination objects are the same");
        }
        let Some(v) = self.live(&data_key(src), now) else {
            return Reply::Int(0);
        };
        let dkey = data_key(dst);
        if !replace && self.live(&dkey, now).is_some() {
            return Reply::Int(0);
        }
        if v.typ != TYPE_STRING {
            // A copied list or sorted set may wake clients blocked on `dst`.
            self.pushed.push(dst.to_vec());
            let mut a = Applier::new(self, wb, now);
            return match keyspace::copy(&mut a, src, dst) {
                Ok(_) => Reply::Int(1),
                Err(e) => apply_error(e),
            };
        }
        charge!(self, v.payload.len());
        self.put(wb, dkey, v);
        Reply::Int(1)
    }
}

/// Redis 7.0's encoding name for a live value, with its default thresholds. Strings: `int`
/// (a canonical 64-bit integer), `embstr` (up to 44 bytes) or `raw`. Lists are always
/// `quicklist` (7.0 has no listpack lists). Sets of up to 512 integers are `intset`, other
/// sets `hashtable`; hashes and sorted sets of up to 128 entries whose fields / values /
/// members are all at most 64 bytes are `listpack`, else `hashtable` / `skiplist`. The
/// element checks read at most 512 members (only below the size limits), so the cost stays
/// bounded. Redis never converts back, so a collection that once crossed a limit and shrank
/// again is `hashtable` / `skiplist` in Redis but `listpack` / `intset` here.
fn encoding<R: Read + ?Sized>(
    r: &R,
    key: &[u8],
    typ: u8,
    payload: &[u8],
    size: u64,
) -> crate::types::Result<&'static str> {
    let small = |v: &[u8]| v.len() <= 64;
    Ok(match typ {
        TYPE_STRING => string_encoding(payload),
        TYPE_LIST => "quicklist",
        TYPE_SET
            if size <= 512
                && set::smembers(r, key)?
                    .iter()
                    .all(|m| num::parse_i64(m).is_some()) =>
        {
            "intset"
        }
        TYPE_SET => "hashtable",
        TYPE_HASH
            if size <= 128
                && hash::hgetall(r, key)?
                    .iter()
                    .all(|(f, v)| small(f) && small(v)) =>
        {
            "listpack"
        }
        TYPE_HASH => "hashtable",
        TYPE_ZSET
            if size <= 128
                && zrange::zrange(r, key, &RangeBy::Rank(0, -1), false, None)?
                    .iter()
                    .all(|(m, _)| small(m)) =>
        {
            "listpack"
        }
        TYPE_ZSET => "skiplist",
        _ => "unknown",
    })
}

/// A string's encoding, exactly as Redis's `tryObjectEncoding`.
pub fn string_encoding(payload: &[u8]) -> &'static str {
    if num::parse_i64(payload).is_some() {
        "int"
    } else if payload.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// OBJECT's help lines (Redis 7.0's text).
pub fn object_help() -> Reply {
    let lines = [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(lines.iter().map(|l| Reply::Status(l.to_string())).collect())
}

impl Reader {
    /// OBJECT ENCODING / FREQ / IDLETIME / REFCOUNT (nil for a missing key) and HELP.
    pub(crate) fn object(
        src: &Source<'_>,
        raw: RawFn<'_>,
        o: &ObjectCmd,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Reply, String> {
        let Some(key) = o.key() else {
            return Ok(object_help());
        };
        let Some(v) = Self::live(raw, key, now, expired)? else {
            return Ok(Reply::Nil);
        };
        Ok(match o.sub {
            ObjectSub::Encoding => {
                let size = if v.typ == TYPE_STRING {
                    0
                } else {
                    Meta::decode(&v.encode()).map_err(|e| e.to_string())?.size
                };
                let view = src.view(now);
                let enc =
                    encoding(&view, key, v.typ, &v.payload, size).map_err(|e| e.to_string())?;
                Reply::Status(enc.into())
            }
            ObjectSub::Freq => Reply::err(NO_LFU),
            ObjectSub::IdleTime => Reply::Int(0),
            ObjectSub::RefCount => {
                let shared = v.typ == TYPE_STRING
                    && num::parse_i64(&v.payload).is_some_and(|n| (0..10_000).contains(&n));
                Reply::Int(if shared { i64::from(i32::MAX) } else { 1 })
            }
            ObjectSub::Help => object_help(),
        })
    }

    /// RANDOMKEY: the first live key of an owned slot at or after a random point, wrapping
    /// around once; nil when there is none. Skips at most [`RANDOM_TRIES`] expired keys per
    /// pass.
    pub(crate) fn random_key(
        src: &Source<'_>,
        now: i64,
        expired: &mut Vec<Bytes>,
    ) -> Result<Reply, String> {
        let r = local_rng().next_u64();
        let slot = (r % slot::SLOTS as u64) as u16;
        let mut start = slot.to_be_bytes().to_vec();
        start.push((r >> 32) as u8);
        for from in [&start[..], &[][..]] {
            let (mut seen, mut found) = (0, None);
            src.visit_owned(from, |k, v| {
                let (_, expire) = Value::header(v).ok_or("corrupt value")?;
                let user = Bytes::copy_from_slice(k.get(2..).ok_or("corrupt data key")?);
                if expire == 0 || expire > now {
                    found = Some(user);
                    return Ok(false);
                }
                expired.push(user);
                seen += 1;
                Ok(seen < RANDOM_TRIES)
            })?;
            if let Some(k) = found {
                return Ok(Reply::Bulk(k));
            }
        }
        Ok(Reply::Nil)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{column_family_descriptors, tune_db_options};

    /// A store in a temporary directory; `w` applies one command as one entry at time 1000.
    struct T {
        _dir: tempfile::TempDir,
        db: Arc<rocksdb::DB>,
        store: Store,
        index: u64,
    }

    fn cmd(s: &str) -> resp::Command {
        let argv: Vec<Bytes> = s.split(' ').map(|w| Bytes::from(w.to_string())).collect();
        resp::Command::parse_replicated(&argv).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    impl T {
        fn new() -> T {
            let dir = tempfile::tempdir().unwrap();
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            tune_db_options(&mut opts);
            let db = Arc::new(
                rocksdb::DB::open_cf_descriptors(&opts, dir.path(), column_family_descriptors())
                    .unwrap(),
            );
            let store = Store::open(db.clone(), 1, crate::SlotSet::all()).unwrap();
            T {
                _dir: dir,
                db,
                store,
                index: 0,
            }
        }

        fn w(&mut self, c: &str) -> Reply {
            let mut wb = WriteBatch::default();
            self.index += 1;
            self.store.begin_entry();
            self.store.set_entry_index(self.index);
            let out = self.store.apply(&mut wb, &cmd(c), 1000);
            self.store.stage_applied(&mut wb, self.index);
            self.db.write(wb).unwrap();
            self.store.batch_written();
            out
        }

        fn r(&self, c: &str) -> Reply {
            self.store.reader().read(&cmd(c), 1000).0
        }
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::from(s.to_string()))
    }

    fn st(s: &str) -> Reply {
        Reply::Status(s.into())
    }

    #[test]
    fn copy_every_type_with_ttl_and_replace() {
        let mut t = T::new();
        t.w("SET s v");
        t.w("HSET h a 1 b 2");
        t.w("RPUSH l x y z");
        t.w("SADD set m n");
        t.w("ZADD z 1 one 2 two");
        t.w("PEXPIRE h 100000");
        for k in ["s", "h", "l", "set", "z"] {
            assert_eq!(t.w(&format!("COPY {k} {k}2")), Reply::Int(1), "{k}");
            assert_eq!(t.r(&format!("TYPE {k}2")), t.r(&format!("TYPE {k}")));
        }
        assert_eq!(t.r("GET s2"), bulk("v"));
        assert_eq!(t.r("HGET h2 b"), bulk("2"));
        assert_eq!(t.r("PTTL h2"), t.r("PTTL h"));
        assert_eq!(t.r("LRANGE l2 0 -1"), t.r("LRANGE l 0 -1"));
        assert_eq!(t.r("SCARD set2"), Reply::Int(2));
        assert_eq!(t.r("ZSCORE z2 two"), Reply::Double(2.0));
        // The copy is independent of its source.
        t.w("HSET h2 a 9");
        assert_eq!(t.r("HGET h a"), bulk("1"));
        // Destination exists: 0 without REPLACE, replaced (any type) with it.
        assert_eq!(t.w("COPY s h2"), Reply::Int(0));
        assert_eq!(t.w("COPY s h2 REPLACE"), Reply::Int(1));
        assert_eq!(t.r("TYPE h2"), st("string"));
        assert_eq!(t.w("COPY z s2 DB 0 REPLACE"), Reply::Int(1));
        assert_eq!(t.r("ZCARD s2"), Reply::Int(2));
        assert_eq!(t.w("COPY missing x"), Reply::Int(0));
        assert_eq!(t.r("DBSIZE"), Reply::Int(10));
    }

    #[test]
    fn randomkey_and_object() {
        let mut t = T::new();
        assert_eq!(t.r("RANDOMKEY"), Reply::Nil);
        t.w("SET a 1");
        t.w("SET b hello");
        t.w("RPUSH l x");
        for _ in 0..20 {
            let Reply::Bulk(k) = t.r("RANDOMKEY") else {
                panic!("no key");
            };
            assert!([&b"a"[..], b"b", b"l"].contains(&&k[..]), "{k:?}");
        }
        assert_eq!(t.r("OBJECT ENCODING a"), st("int"));
        assert_eq!(t.r("OBJECT ENCODING b"), st("embstr"));
        assert_eq!(t.r("OBJECT ENCODING l"), st("quicklist"));
        assert_eq!(t.r("OBJECT ENCODING nope"), Reply::Nil);
        assert_eq!(t.r("OBJECT REFCOUNT a"), Reply::Int(2147483647));
        assert_eq!(t.r("OBJECT REFCOUNT b"), Reply::Int(1));
        assert_eq!(t.r("OBJECT IDLETIME b"), Reply::Int(0));
        assert_eq!(t.r("OBJECT FREQ b"), Reply::err(NO_LFU));
        assert_eq!(t.r("OBJECT FREQ nope"), Reply::Nil);
    }

    #[test]
    fn string_encodings_as_redis() {
        assert_eq!(string_encoding(b"12345"), "int");
        assert_eq!(string_encoding(b"-9223372036854775808"), "int");
        assert_eq!(string_encoding(b"007"), "embstr");
        assert_eq!(string_encoding(b""), "embstr");
        assert_eq!(string_encoding(&[b'a'; 44]), "embstr");
        assert_eq!(string_encoding(&[b'a'; 45]), "raw");
    }

    #[test]
    fn collection_encodings_as_redis_7_0() {
        let mut t = T::new();
        let enc = |t: &T, k: &str| t.r(&format!("OBJECT ENCODING {k}"));
        t.w("SADD ints 1 2 -3");
        t.w("SADD strs 1 a");
        t.w("HSET h f v");
        t.w(&format!("HSET hlong f {}", "x".repeat(65)));
        t.w("ZADD z 1 m");
        t.w(&format!("ZADD zlong 1 {}", "m".repeat(65)));
        t.w("RPUSH l a");
        let many: Vec<String> = (0..129).map(|i| format!("f{i} v")).collect();
        t.w(&format!("HSET hbig {}", many.join(" ")));
        let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
        t.w(&format!("SADD sbig {}", ints.join(" ")));
        let members: Vec<String> = (0..129).map(|i| format!("{i} m{i}")).collect();
        t.w(&format!("ZADD zbig {}", members.join(" ")));
        for (k, want) in [
            ("ints", "intset"),
            ("strs", "hashtable"),
            ("sbig", "hashtable"),
            ("h", "listpack"),
            ("hlong", "hashtable"),
            ("hbig", "hashtable"),
            ("z", "listpack"),
            ("zlong", "skiplist"),
            ("zbig", "skiplist"),
            ("l", "quicklist"),
        ] {
            assert_eq!(enc(&t, k), st(want), "{k}");
        }
    }

    #[test]
    fn help_starts_as_redis() {
        let Reply::Array(lines) = object_help() else {
            panic!("not an array");
        };
        assert_eq!(lines.len(), 15);
        assert_eq!(
            lines[0],
            Reply::Status("OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into())
        );
    }
}
