//! Settings CONFIG SET changes at run time: `loglevel`, `maxclients`,
//! `slowlog-log-slower-than`, `slowlog-max-len`, `latency-monitor-threshold`, `timeout`
//! (Redis's idle client timeout, seconds, 0 = never; see `session`) and
//! `request-timeout-ms` (`--request-timeout-ms`) and `migrate-max-mbps`
//! (`--migrate-max-mbps`). The others are fixed at start-up
//! (CONFIG SET answers Redis's "can't set immutable config").

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use resp::Reply;

/// `--maxclients`, as CONFIG SET last changed it.
static MAXCLIENTS: AtomicUsize = AtomicUsize::new(10_000);
/// `--request-timeout-ms`, as CONFIG SET last changed it (0: not set here, the
/// configuration's value holds; see `Config::request_timeout`).
static REQUEST_TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);
/// `--migrate-max-mbps`, as CONFIG SET last changed it (u64::MAX: not set here, the
/// configuration's value holds; 0 is a value: unlimited).
static MIGRATE_MAX_MBPS: AtomicU64 = AtomicU64::new(u64::MAX);
/// `timeout` (s): sessions watch it, so a change applies to the connections open now.
static IDLE_TIMEOUT: OnceLock<tokio::sync::watch::Sender<u64>> = OnceLock::new();
/// The log level: an index into [`LEVELS`].
static LOG_LEVEL: AtomicU8 = AtomicU8::new(3);

/// Redis's level names (and slog's, accepted too) and the slog level each means.
const LEVELS: [(&str, slog::Level); 7] = [
    ("critical", slog::Level::Critical),
    ("error", slog::Level::Error),
    ("warning", slog::Level::Warning),
    ("notice", slog::Level::Info),
    ("verbose", slog::Level::Info),
    ("debug", slog::Level::Debug),
    ("trace", slog::Level::Trace),
];

/// Takes the start-up values.
pub fn init(maxclients: usize, log_level: &str, idle_timeout: u64, request_timeout_ms: u64) {
    MAXCLIENTS.store(maxclients, Ordering::Relaxed);
    idle_timeout_sender().send_replace(idle_timeout);
    REQUEST_TIMEOUT_MS.store(request_timeout_ms, Ordering::Relaxed);
    let i = match log_level.to_ascii_lowercase().as_str() {
        "critical" | "crit" => 0,
        "error" => 1,
        "warning" | "warn" => 2,
        "debug" => 5,
        "trace" => 6,
        _ => 3,
    };
    LOG_LEVEL.store(i, Ordering::Relaxed);
}

pub fn maxclients() -> usize {
    MAXCLIENTS.load(Ordering::Relaxed)
}

fn idle_timeout_sender() -> &'static tokio::sync::watch::Sender<u64> {
    IDLE_TIMEOUT.get_or_init(|| tokio::sync::watch::Sender::new(0))
}

/// `timeout`: seconds a client may stay idle before it is closed (0 = never).
pub fn idle_timeout() -> u64 {
    *idle_timeout_sender().borrow()
}

/// Follows `timeout` (a session re-arms its idle timer when it changes).
pub fn idle_timeout_watch() -> tokio::sync::watch::Receiver<u64> {
    idle_timeout_sender().subscribe()
}

/// `request-timeout-ms` as CONFIG SET last set it (None before `init`).
pub fn request_timeout_ms() -> Option<u64> {
    Some(REQUEST_TIMEOUT_MS.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
}

/// `migrate-max-mbps` as CONFIG SET last set it (None: never set).
pub fn migrate_max_mbps() -> Option<u64> {
    Some(MIGRATE_MAX_MBPS.load(Ordering::Relaxed)).filter(|&n| n != u64::MAX)
}

/// The level records must reach to be logged.
pub fn log_level() -> slog::Level {
    LEVELS[usize::from(LOG_LEVEL.load(Ordering::Relaxed)).min(LEVELS.len() - 1)].1
}

/// CONFIG GET loglevel.
pub fn loglevel() -> &'static str {
    LEVELS[usize::from(LOG_LEVEL.load(Ordering::Relaxed)).min(LEVELS.len() - 1)].0
}

const SETTINGS: [&str; 8] = [
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "maxclients",
    "loglevel",
    "timeout",
    "request-timeout-ms",
    "migrate-max-mbps",
];

fn failed(name: &str, why: &str) -> Reply {
    Reply::err(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}

/// A checked value: an integer setting's number, or a level index.
fn check(name: &'static str, v: &[u8]) -> Result<i64, Reply> {
    if name == "loglevel" {
        let v = String::from_utf8_lossy(v).to_ascii_lowercase();
        return LEVELS
            .iter()
            .position(|(n, _)| *n == v)
            .map(|i| i as i64)
            .ok_or_else(|| {
                failed(
                    name,
                    "argument(s) must be one of the following: debug, verbose, notice, warning",
                )
            });
    }
    let n = std::str::from_utf8(v)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| failed(name, "argument couldn't be parsed into an integer"))?;
    let (min, max) = match name {
        "slowlog-log-slower-than" => (-1, i64::MAX),
        "maxclients" | "request-timeout-ms" => (1, i64::MAX),
        // Redis keeps `timeout` in an int.
        "timeout" => (0, i64::from(i32::MAX)),
        // MB/s: a byte rate that fits u64 (u64::MAX itself means "not set").
        "migrate-max-mbps" => (0, 1 << 40),
        _ => (0, i64::MAX),
    };
    if n < min || n > max {
        return Err(failed(
            name,
            &format!("argument must be between {min} and {max} inclusive"),
        ));
    }
    Ok(n)
}

/// CONFIG SET of these settings; None when another setting is among `pairs`. Every value
/// is checked before any is set, as Redis does.
pub fn config_set(pairs: &[(Bytes, Bytes)]) -> Option<Reply> {
    let mut values = Vec::new();
    for (k, v) in pairs {
        let k = String::from_utf8_lossy(k).to_ascii_lowercase();
        let name = *SETTINGS.iter().find(|s| **s == k)?;
        match check(name, v) {
            Ok(n) => values.push((name, n)),
            Err(e) => return Some(e),
        }
    }
    for (name, n) in values {
        let u = u64::try_from(n).unwrap_or(0);
        match name {
            "slowlog-log-slower-than" => crate::slowlog::SLOWER_THAN.store(n, Ordering::Relaxed),
            "slowlog-max-len" => crate::slowlog::MAX_LEN.store(u, Ordering::Relaxed),
            "latency-monitor-threshold" => crate::latency::THRESHOLD.store(u, Ordering::Relaxed),
            "maxclients" => {
                MAXCLIENTS.store(usize::try_from(u).unwrap_or(usize::MAX), Ordering::Relaxed)
            }
            "timeout" => {
                idle_timeout_sender().send_replace(u);
            }
            "request-timeout-ms" => REQUEST_TIMEOUT_MS.store(u, Ordering::Relaxed),
            "migrate-max-mbps" => MIGRATE_MAX_MBPS.store(u, Ordering::Relaxed),
            _ => LOG_LEVEL.store(u8::try_from(u).unwrap_or(3), Ordering::Relaxed),
        }
    }
    Some(Reply::ok())
}
