//! Per-command statistics for `INFO commandstats`, `INFO errorstats`, `INFO latencystats`
//! and `total_error_replies`, as Redis 7 keeps them.
//!
//! Each connection's [`Ledger`] notes every request at dispatch (its command table entry and
//! the time); the request's record travels with the pending reply that answers it (the
//! group it joined, or its own reply), and is counted when that reply is known. So "usec"
//! is dispatch → reply, which for a write includes the Raft commit and apply (and, on a
//! follower, the forward to the leader). Counters are atomics in a fixed array indexed by
//! the command table entry; the only lock is the error-prefix table's, taken for error
//! replies alone.
//!
//! An error reply is a *rejected* call when the command was refused before it ran
//! (redirections, NOAUTH, arity errors: Redis's `processCommand` checks), else a *failed*
//! one (a syntax error too, as in Redis, where the command itself finds it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use resp::cmd::CommandSpec;
use resp::Reply;

use crate::session::{Outcome, Pending};

/// Log-linear histogram buckets: exact below 16 µs, then 8 per power of two up to 2^40 µs.
const SUB_BITS: u32 = 3;
const LINEAR: usize = 16;
const MAX_EXP: u32 = 40;
const BUCKETS: usize = LINEAR + (((MAX_EXP - 4 + 1) as usize) << SUB_BITS);

/// Most distinct error prefixes tracked (Redis's limit too).
const MAX_ERROR_KINDS: usize = 128;

/// The percentiles `INFO latencystats` prints (Redis's default
/// `latency-tracking-info-percentiles`).
const PERCENTILES: [(&str, f64); 3] = [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)];

/// A bounded latency histogram in microseconds (relative error under 12.5%).
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of `v` µs.
fn bucket(v: u64) -> usize {
    if v < LINEAR as u64 {
        return v as usize;
    }
    let e = (63 - v.leading_zeros()).min(MAX_EXP);
    let v = v.min((1u64 << (MAX_EXP + 1)) - 1);
    let sub = ((v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1)) as usize;
    LINEAR + (((e - 4) as usize) << SUB_BITS) + sub
}

/// The highest value bucket `i` holds.
fn bucket_high(i: usize) -> u64 {
    if i < LINEAR {
        return i as u64;
    }
    let e = 4 + ((i - LINEAR) >> SUB_BITS) as u32;
    let sub = ((i - LINEAR) & ((1 << SUB_BITS) - 1)) as u64;
    let low = ((1 << SUB_BITS) + sub) << (e - SUB_BITS);
    low + (1 << (e - SUB_BITS)) - 1
}

impl Histogram {
    pub fn record(&self, usec: u64) {
        self.counts[bucket(usec)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The value at percentile `p` (0..=100): the top of the bucket holding it; 0 if empty.
    pub fn percentile(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i);
            }
        }
        bucket_high(BUCKETS - 1)
    }

    /// Samples in the buckets wholly at or below `v`.
    pub fn count_at_most(&self, v: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| bucket_high(*i) <= v)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// One command's counters.
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub latency: Histogram,
}

/// Every command's counters and the error prefixes.
pub struct CmdStats {
    /// Command table entries (top-level, then subcommands), in table order.
    specs: Vec<&'static CommandSpec>,
    /// Entry address → index into `specs` / `cmds`.
    index: HashMap<usize, u32>,
    cmds: Box<[CmdStat]>,
    errors: Mutex<Vec<(String, u64)>>,
    pub total_errors: AtomicU64,
}

impl Default for CmdStats {
    fn default() -> Self {
        let specs: Vec<&'static CommandSpec> = resp::cmd::command_table()
            .iter()
            .chain(resp::cmd::subcommand_table())
            .copied()
            .collect();
        let index = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (*s as *const CommandSpec as usize, i as u32))
            .collect();
        CmdStats {
            cmds: specs.iter().map(|_| CmdStat::default()).collect(),
            specs,
            index,
            errors: Mutex::new(Vec::new()),
            total_errors: AtomicU64::new(0),
        }
    }
}

/// No command table entry (unknown command or subcommand): counted in errorstats only.
const NONE: u32 = u32::MAX;

/// One request on its way to its reply.
pub struct Rec {
    cmd: u32,
    start: Instant,
    /// Kept for SLOWLOG while it is on.
    argv: Option<Vec<Bytes>>,
    client: u64,
    addr: Arc<str>,
}

/// The first word of an error reply: its errorstats prefix.
fn error_prefix(msg: &str) -> &str {
    msg.split(' ').next().unwrap_or("ERR")
}

/// Errors raised before a command runs (Redis counts these as rejected calls).
fn is_rejection(msg: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "MOVED ",
        "ASK ",
        "CROSSSLOT ",
        "TRYAGAIN ",
        "CLUSTERDOWN ",
        "NOAUTH ",
        "NOPERM ",
        "ERR wrong number of arguments",
    ];
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

impl CmdStats {
    /// The global instance's lookup of a request's command table entry.
    fn entry_of(&self, argv: &[Bytes]) -> u32 {
        let Some(top) = argv.first().and_then(|n| resp::cmd::lookup(n)) else {
            return NONE;
        };
        let spec = if top.subcommands.is_empty() {
            top
        } else {
            match argv.get(1) {
                Some(sub) => match resp::cmd::lookup_subcommand(top.name.as_bytes(), sub) {
                    Some(s) => s,
                    None => return NONE,
                },
                None => top,
            }
        };
        self.index
            .get(&(spec as *const CommandSpec as usize))
            .copied()
            .unwrap_or(NONE)
    }

    /// Counts one request whose reply is `err` (None: not an error).
    fn record(&self, rec: &Rec, err: Option<&str>, now: Instant) {
        if let Some(msg) = err {
            self.count_error(msg);
        }
        let Some(c) = self.cmds.get(rec.cmd as usize) else {
            return;
        };
        let usec = now.saturating_duration_since(rec.start).as_micros() as u64;
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.usec.fetch_add(usec, Ordering::Relaxed);
        c.latency.record(usec);
        crate::latency::record("command", usec / 1000);
        if let Some(argv) = &rec.argv {
            if !self.specs[rec.cmd as usize].has_flag("skip_slowlog") {
                crate::slowlog::maybe_log(argv, usec, rec.client, &rec.addr);
            }
        }
        match err {
            Some(m) if is_rejection(m) => c.rejected.fetch_add(1, Ordering::Relaxed),
            Some(_) => c.failed.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
    }

    fn count_error(&self, msg: &str) {
        self.total_errors.fetch_add(1, Ordering::Relaxed);
        let prefix = error_prefix(msg);
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = errs.iter_mut().find(|(p, _)| p == prefix) {
            e.1 += 1;
        } else if errs.len() < MAX_ERROR_KINDS {
            errs.push((prefix.to_string(), 1));
        }
    }

    /// Counts the requests `recs` answered by `outcome` (one reply each, in order; a
    /// request with several replies, as SUBSCRIBE, is judged by its first).
    fn record_outcome(&self, recs: &[Rec], outcome: &Outcome) {
        let now = Instant::now();
        match outcome {
            Outcome::Replies(rs) => {
                for (i, rec) in recs.iter().enumerate() {
                    let err = match rs.get(i) {
                        Some(Reply::Error(m)) => Some(m.as_str()),
                        _ => None,
                    };
                    self.record(rec, err, now);
                }
            }
            Outcome::Raw(raw) => {
                let mut at = 0;
                for rec in recs {
                    let end = resp::relayed::value_end(raw, at);
                    let err = raw_error(raw, at);
                    self.record(rec, err.as_deref(), now);
                    at = end.unwrap_or(raw.len());
                }
            }
            Outcome::Overflow(_) => recs.iter().for_each(|r| self.record(r, None, now)),
        }
    }

    /// Wraps `p` so that `recs` are counted when it is answered.
    pub fn tag(&'static self, recs: Vec<Rec>, p: Pending) -> Pending {
        if recs.is_empty() {
            return p;
        }
        match p {
            Pending::Ready(r) => {
                let err = match &r {
                    Reply::Error(m) => Some(m.as_str()),
                    _ => None,
                };
                let now = Instant::now();
                for rec in &recs {
                    self.record(rec, err, now);
                }
                Pending::Ready(r)
            }
            Pending::Later(f) => Pending::Later(Box::pin(async move {
                let o = f.await;
                self.record_outcome(&recs, &o);
                o
            })),
        }
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in self.cmds.iter() {
            for a in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                a.store(0, Ordering::Relaxed);
            }
            c.latency.reset();
        }
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.total_errors.store(0, Ordering::Relaxed);
    }

    /// Commands with any calls: (Redis's lower-case name, counters).
    pub fn used(&self) -> impl Iterator<Item = (String, &CmdStat)> {
        self.specs
            .iter()
            .zip(self.cmds.iter())
            .filter(|(_, c)| {
                c.calls.load(Ordering::Relaxed) > 0
                    || c.rejected.load(Ordering::Relaxed) > 0
                    || c.failed.load(Ordering::Relaxed) > 0
            })
            .map(|(s, c)| (s.name.to_ascii_lowercase(), c))
    }

    /// Error prefixes and their counts.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `# Commandstats`.
    pub fn info_commandstats(&self, out: &mut String) {
        out.push_str("# Commandstats\r\n");
        for (name, c) in self.used() {
            let calls = c.calls.load(Ordering::Relaxed);
            let usec = c.usec.load(Ordering::Relaxed);
            let per = if calls == 0 {
                0.0
            } else {
                usec as f64 / calls as f64
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                c.rejected.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
            );
        }
    }

    /// `# Errorstats`.
    pub fn info_errorstats(&self, out: &mut String) {
        out.push_str("# Errorstats\r\n");
        for (prefix, n) in self.errors() {
            let _ = write!(out, "errorstat_{prefix}:count={n}\r\n");
        }
    }

    /// `# Latencystats`.
    pub fn info_latencystats(&self, out: &mut String) {
        out.push_str("# Latencystats\r\n");
        for (name, c) in self.used() {
            if c.latency.count() == 0 {
                continue;
            }
            let _ = write!(out, "latency_percentiles_usec_{name}:");
            for (i, (label, p)) in PERCENTILES.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep}{label}={:.3}", c.latency.percentile(*p) as f64);
            }
            out.push_str("\r\n");
        }
    }
}

/// The text of the error reply encoded at `at` (`-...` or RESP3 `!<len>`), if it is one.
fn raw_error(raw: &[u8], at: usize) -> Option<String> {
    let line_end = |from: usize| {
        raw.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|n| from + n)
    };
    match raw.get(at)? {
        b'-' => {
            let end = line_end(at + 1)?;
            Some(String::from_utf8_lossy(&raw[at + 1..end]).into_owned())
        }
        b'!' => {
            let (len, next) = resp::relayed::line(raw, at)?;
            let body = raw.get(next..next + usize::try_from(len).ok()?)?;
            Some(String::from_utf8_lossy(body).into_owned())
        }
        _ => None,
    }
}

/// The process's counters (one server per process; tests in one process share them).
pub fn global() -> &'static CmdStats {
    static STATS: OnceLock<CmdStats> = OnceLock::new();
    STATS.get_or_init(CmdStats::default)
}

/// A connection's requests not yet attached to a pending reply.
#[derive(Default)]
pub struct Ledger {
    client: u64,
    addr: Arc<str>,
    /// The request being dispatched.
    current: Option<Rec>,
    /// The requests in the connection's current group.
    grouped: Vec<Rec>,
}

impl Ledger {
    pub fn new(client: u64, addr: &str) -> Ledger {
        Ledger {
            client,
            addr: addr.into(),
            ..Default::default()
        }
    }

    /// Notes a request about to be dispatched.
    pub fn begin(&mut self, argv: &[Bytes]) {
        self.current = Some(Rec {
            cmd: global().entry_of(argv),
            start: Instant::now(),
            argv: crate::slowlog::enabled().then(|| argv.to_vec()),
            client: self.client,
            addr: self.addr.clone(),
        });
    }

    /// The request being dispatched joined the connection's group.
    pub fn joined(&mut self) {
        if let Some(r) = self.current.take() {
            self.grouped.push(r);
        }
    }

    /// Attaches the group's requests to the group's pending reply.
    pub fn flushed(&mut self, p: Pending) -> Pending {
        global().tag(std::mem::take(&mut self.grouped), p)
    }

    /// After dispatch: a request that joined no group is answered by the last reply.
    pub fn dispatched(&mut self, out: &mut Vec<Pending>) {
        let Some(rec) = self.current.take() else {
            return;
        };
        if let Some(last) = out.pop() {
            out.push(global().tag(vec![rec], last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_their_values() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([1 << 30, (1 << 40) + 5, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v} -> {b}");
            assert!(b >= prev || v > 100_000);
            prev = b;
            if v < (1 << 41) {
                assert!(bucket_high(b) >= v, "{v} above its bucket {b}");
                assert!(bucket_high(b) as f64 <= v as f64 * 1.125 + 1.0, "{v}");
            }
        }
    }

    #[test]
    fn percentiles_of_known_values() {
        let h = Histogram::default();
        assert_eq!(h.percentile(50.0), 0);
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        let p50 = h.percentile(50.0);
        assert!((50..=56).contains(&p50), "{p50}");
        let p99 = h.percentile(99.0);
        assert!((99..=111).contains(&p99), "{p99}");
        assert_eq!(h.percentile(0.0), 1);
        h.reset();
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn raw_errors_are_found() {
        let raw = b"+OK\r\n-ERR bad\r\n!9\r\nWRONGTYPE\r\n:1\r\n";
        assert_eq!(raw_error(raw, 0), None);
        assert_eq!(raw_error(raw, 5).as_deref(), Some("ERR bad"));
        assert_eq!(raw_error(raw, 15).as_deref(), Some("WRONGTYPE"));
        assert_eq!(error_prefix("MOVED 12 1.2.3.4:5"), "MOVED");
    }
}
