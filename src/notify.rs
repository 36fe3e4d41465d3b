//! Keyspace notifications and the Pub/Sub settings of CONFIG: `notify-keyspace-events`
//! (Redis's flag letters, normalized as Redis prints them) and `client-output-buffer-limit`
//! (its `pubsub` class can be changed at run time; `normal` is fixed at start-up).
//!
//! Events are raised by the store where a write is applied (`store::notify`), on every
//! node that hosts the group, reach this node through the store's push listener (the hook
//! blocking pops use), and are published here to this node's subscribers only, on
//! `__keyspace@0__:<key>` (message: the event) and `__keyevent@0__:<event>` (message: the
//! key). The setting is node-local, as in Redis: CONFIG SET on one node affects that node.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use resp::Reply;
use store::notify::{self as n, Event};

use crate::pubsub::hub;
use crate::server::Server;

/// This node's `notify-keyspace-events` flags.
static FLAGS: AtomicU32 = AtomicU32::new(0);

/// The flag letters and their classes, in the order Redis prints them.
const CLASSES: &[(char, u32)] = &[
    ('g', n::GENERIC),
    ('$', n::STRING),
    ('l', n::LIST),
    ('s', n::SET),
    ('h', n::HASH),
    ('z', n::ZSET),
    ('x', n::EXPIRED),
    ('e', n::EVICTED),
    ('t', n::STREAM),
    ('d', n::MODULE),
    ('n', n::NEW),
];

/// Parses Redis's flag letters (`keyspaceEventsStringToFlags`); `None` on a bad letter.
pub fn parse_flags(s: &[u8]) -> Option<u32> {
    let mut flags = 0;
    for &c in s {
        flags |= match c {
            b'A' => n::ALL,
            b'K' => n::KEYSPACE,
            b'E' => n::KEYEVENT,
            b'm' => n::KEY_MISS,
            c => CLASSES.iter().find(|(l, _)| *l as u8 == c)?.1,
        };
    }
    Some(flags)
}

/// Redis's normalized form of the flags (`keyspaceEventsFlagsToString`).
pub fn flags_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & n::ALL == n::ALL {
        s.push('A');
    } else {
        s.extend(
            CLASSES
                .iter()
                .filter(|(_, f)| flags & f != 0)
                .map(|(c, _)| *c),
        );
    }
    for (c, f) in [('K', n::KEYSPACE), ('E', n::KEYEVENT), ('m', n::KEY_MISS)] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

/// Redis's `memtoull`: a byte count with an optional unit (b, k, kb, m, mb, g, gb).
fn mem_bytes(s: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(s).ok()?.to_ascii_lowercase();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(mul)
}

fn config_error(name: &str, why: &str) -> Reply {
    Reply::err(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}

/// The new `pubsub` hard limit from a `client-output-buffer-limit` value (`class hard soft
/// seconds` groups); `normal` must keep its start-up value.
fn parse_limits(v: &[u8], normal: usize) -> Result<Option<usize>, &'static str> {
    let words: Vec<&[u8]> = v.split(|b| *b == b' ').filter(|w| !w.is_empty()).collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.");
    }
    let mut pubsub = None;
    for g in words.chunks(4) {
        let nums: Option<Vec<usize>> = g[1..].iter().map(|w| mem_bytes(w)).collect();
        let Some(nums) = nums else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            );
        };
        match g[0].to_ascii_lowercase().as_slice() {
            b"pubsub" => pubsub = Some(nums[0]),
            b"normal" if nums[0] == normal => {}
            b"normal" => {
                return Err(
                    "the normal class limit is fixed at start-up (--client-output-buffer-limit)",
                )
            }
            b"slave" | b"replica" => {}
            _ => return Err("Invalid client class specified in buffer limit configuration."),
        }
    }
    Ok(pubsub)
}

impl Server {
    /// CONFIG SET of the Pub/Sub settings; `None` when another setting is named (those are
    /// fixed). All named settings are checked before any is changed, as Redis does.
    pub fn pubsub_config_set(&self, pairs: &[(Bytes, Bytes)]) -> Option<Reply> {
        let mut flags = None;
        let mut limit = None;
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_slice() {
                b"notify-keyspace-events" => match parse_flags(v) {
                    Some(f) => flags = Some(f),
                    None => {
                        return Some(config_error(
                            "notify-keyspace-events",
                            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
                        ))
                    }
                },
                b"client-output-buffer-limit" => {
                    match parse_limits(v, self.cfg.client_output_buffer_limit) {
                        Ok(l) => limit = limit.or(l),
                        Err(why) => return Some(config_error("client-output-buffer-limit", why)),
                    }
                }
                _ => return None,
            }
        }
        if let Some(f) = flags {
            FLAGS.store(f, Ordering::Release);
            for g in self.groups.all().iter() {
                g.reader.set_notify_flags(f);
            }
        }
        if let Some(l) = limit {
            hub().limit.store(l, Ordering::Relaxed);
        }
        Some(Reply::ok())
    }

    /// CONFIG GET values of the Pub/Sub settings.
    pub fn pubsub_config_values(&self) -> Vec<(&'static str, String)> {
        let normal = self.cfg.client_output_buffer_limit;
        let pubsub = hub().limit.load(Ordering::Relaxed);
        vec![
            (
                "client-output-buffer-limit",
                format!("normal {normal} 0 0 slave 0 0 0 pubsub {pubsub} 0 0"),
            ),
            (
                "notify-keyspace-events",
                flags_string(FLAGS.load(Ordering::Acquire)),
            ),
        ]
    }
}

/// Publishes a batch's events to this node's subscribers (never to peers: each node
/// raises the events of the groups it hosts). Called on the apply thread through the
/// store's push listener (`Server::watch_pushes`).
pub fn publish_events(events: &[Event]) {
    let flags = FLAGS.load(Ordering::Acquire);
    if hub().is_empty() {
        return;
    }
    let mut ch = BytesMut::new();
    for e in events {
        if flags & n::KEYSPACE != 0 {
            ch.clear();
            ch.put_slice(b"__keyspace@0__:");
            ch.put_slice(&e.key);
            hub().deliver(&ch, e.name.as_bytes(), false);
        }
        if flags & n::KEYEVENT != 0 {
            ch.clear();
            ch.put_slice(b"__keyevent@0__:");
            ch.put_slice(e.name.as_bytes());
            hub().deliver(&ch, &e.key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_print_as_redis() {
        let s = |f: &str| flags_string(parse_flags(f.as_bytes()).unwrap());
        assert_eq!(s("KEA"), "AKE");
        assert_eq!(s("Kg$lshzxetdn"), "AK");
        assert_eq!(s("Kmn"), "nKm");
        assert_eq!(s("El$"), "$lE");
        assert_eq!(s(""), "");
        assert_eq!(parse_flags(b"gxq"), None);
    }

    #[test]
    fn buffer_limits_take_units_and_keep_normal_fixed() {
        assert_eq!(parse_limits(b"pubsub 32mb 8mb 60", 0), Ok(Some(32 << 20)));
        assert_eq!(
            parse_limits(b"normal 0 0 0 slave 1gb 0 0 pubsub 1000 0 0", 0),
            Ok(Some(1000))
        );
        assert!(parse_limits(b"normal 5 0 0", 0).is_err());
        assert!(parse_limits(b"pubsub 1x 0 0", 0).is_err());
        assert!(parse_limits(b"pubsub 1 0", 0).is_err());
        assert!(parse_limits(b"other 1 0 0", 0).is_err());
        assert_eq!(mem_bytes(b"1kb"), Some(1024));
        assert_eq!(mem_bytes(b"1k"), Some(1000));
    }
}
