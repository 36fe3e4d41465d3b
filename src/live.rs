//! Settings CONFIG SET changes at run time: `loglevel`, `maxclients`,
//! `slowlog-log-slower-than`, `slowlog-max-len` and `latency-monitor-threshold`. The
//! others are fixed at start-up (CONFIG SET answers Redis's "can't set immutable config").

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use bytes::Bytes;
use resp::Reply;

/// `--maxclients`, as CONFIG SET last changed it.
static MAXCLIENTS: AtomicUsize = AtomicUsize::new(10_000);
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
pub fn init(maxclients: usize, log_level: &str) {
    MAXCLIENTS.store(maxclients, Ordering::Relaxed);
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

/// The level records must reach to be logged.
pub fn log_level() -> slog::Level {
    LEVELS[usize::from(LOG_LEVEL.load(Ordering::Relaxed)).min(LEVELS.len() - 1)].1
}

/// CONFIG GET loglevel.
pub fn loglevel() -> &'static str {
    LEVELS[usize::from(LOG_LEVEL.load(Ordering::Relaxed)).min(LEVELS.len() - 1)].0
}

const SETTINGS: [&str; 5] = [
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "maxclients",
    "loglevel",
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
    let min = match name {
        "slowlog-log-slower-than" => -1,
        "maxclients" => 1,
        _ => 0,
    };
    if n < min {
        return Err(failed(
            name,
            &format!("argument must be between {min} and {} inclusive", i64::MAX),
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
            _ => LOG_LEVEL.store(u8::try_from(u).unwrap_or(3), Ordering::Relaxed),
        }
    }
    Some(Reply::ok())
}
