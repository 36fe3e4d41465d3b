//! SLOWLOG: the node's most recent requests slower than `slowlog-log-slower-than` µs
//! (dispatch → reply, as INFO commandstats counts them), at most `slowlog-max-len` of them,
//! in Redis's entry shape: id, unix time, duration µs, argv (at most 32 arguments of at most
//! 128 bytes each, as Redis trims them), client address, client name. Node-local.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use resp::Reply;

/// `slowlog-log-slower-than` (µs; -1 off, 0 every command). Redis's default.
pub static SLOWER_THAN: AtomicI64 = AtomicI64::new(10_000);
/// `slowlog-max-len`. Redis's default.
pub static MAX_LEN: AtomicU64 = AtomicU64::new(128);

const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

/// One logged request.
pub struct Entry {
    id: u64,
    time: i64,
    usec: u64,
    argv: Vec<Bytes>,
    client: u64,
    addr: Arc<str>,
}

#[derive(Default)]
struct Log {
    next_id: u64,
    entries: VecDeque<Entry>,
}

fn log() -> &'static Mutex<Log> {
    static LOG: OnceLock<Mutex<Log>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Log> {
    log().lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether requests are logged at all now (their argv is kept until the reply only then).
pub fn enabled() -> bool {
    SLOWER_THAN.load(Ordering::Relaxed) >= 0 && MAX_LEN.load(Ordering::Relaxed) > 0
}

/// Redis's `slowlogCreateEntry` trimming.
fn trim(argv: &[Bytes]) -> Vec<Bytes> {
    let keep = argv.len().min(MAX_ARGC);
    let mut out = Vec::with_capacity(keep);
    for (i, a) in argv.iter().take(keep).enumerate() {
        if keep != argv.len() && i == keep - 1 {
            let more = argv.len() - keep + 1;
            out.push(Bytes::from(format!("... ({more} more arguments)")));
        } else if a.len() > MAX_STRING {
            let mut s = a[..MAX_STRING].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
            out.push(Bytes::from(s));
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Logs a request that took `usec` if it passes the threshold.
pub fn maybe_log(argv: &[Bytes], usec: u64, client: u64, addr: &Arc<str>) {
    let limit = SLOWER_THAN.load(Ordering::Relaxed);
    if limit < 0 || usec < limit as u64 {
        return;
    }
    let max = MAX_LEN.load(Ordering::Relaxed) as usize;
    let time = raft_node::node::wall_ms() / 1000;
    let mut l = lock();
    let id = l.next_id;
    l.next_id += 1;
    l.entries.push_front(Entry {
        id,
        time,
        usec,
        argv: trim(argv),
        client,
        addr: addr.clone(),
    });
    l.entries.truncate(max);
}

/// SLOWLOG GET `count` (-1: all); `name_of` gives a still-connected client's name.
pub fn get(count: i64, name_of: impl Fn(u64) -> Bytes) -> Reply {
    let l = lock();
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    Reply::Array(
        l.entries
            .iter()
            .take(n)
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time),
                    Reply::Int(e.usec as i64),
                    Reply::Array(e.argv.iter().cloned().map(Reply::Bulk).collect()),
                    Reply::Bulk(Bytes::from(e.addr.to_string())),
                    Reply::Bulk(name_of(e.client)),
                ])
            })
            .collect(),
    )
}

pub fn len() -> usize {
    lock().entries.len()
}

pub fn reset() {
    lock().entries.clear();
}

/// SLOWLOG HELP, Redis 7's text.
pub fn help() -> Reply {
    let lines = [
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Prints this help.",
    ];
    Reply::Array(lines.iter().map(|l| Reply::Status((*l).into())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_redis() {
        let argv: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("a{i}"))).collect();
        let t = trim(&argv);
        assert_eq!(t.len(), 32);
        assert_eq!(t[31], Bytes::from("... (9 more arguments)"));
        assert_eq!(t[30], Bytes::from("a30"));
        let long = vec![Bytes::from(vec![b'x'; 200])];
        let t = trim(&long);
        assert_eq!(t[0].len(), 128 + "... (72 more bytes)".len());
        assert!(t[0].ends_with(b"... (72 more bytes)"));
    }
}
