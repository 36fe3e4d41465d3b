//! Cluster time: the time a leader stamps on each `RaftCommit`, and the time reads judge
//! expiry at, tied to the stamps instead of any one node's wall clock.
//!
//! Every node keeps the last stamp it applied (or, on the leader, proposed) with the local
//! *monotonic* instant it learned it. Its cluster time is that stamp plus the monotonic time
//! elapsed since: it advances at real speed without reading the wall clock, so a node whose
//! wall clock is skewed still judges expiry like the others ([`Status::cluster_time_ms`]).
//!
//! A leader stamps `base + gain`, where `base` is its cluster time and `gain` how far its
//! wall clock is ahead of it, but at most a small credit: [`MAX_LEAD_MS`] that refills at
//! [`CATCH_UP_RATE`] of the monotonic time elapsed. So a leader whose wall clock jumps a day
//! ahead moves cluster time by at most 1 s at once and then runs it at most 25% fast, and a
//! leader whose clock is behind never moves it back (nor stops it). The price: after the
//! whole cluster was down, cluster time lags real time by the outage and catches up at that
//! same rate (keys live longer, never shorter). Stamps never go backwards.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rocksdb::{WriteBatch, DB};
use slog::{warn, Logger};

use crate::node::Status;
use crate::storage::{meta_key, CF_RAFT, TAG_STAMP};

/// Most a leader's stamp may lead its cluster time at once (ms).
pub const MAX_LEAD_MS: i64 = 1000;
/// The credit refills at this fraction of the monotonic time elapsed.
pub const CATCH_UP_RATE: f64 = 0.25;
/// How often a leader may log that its wall clock disagrees with cluster time.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Microseconds of the monotonic clock since this process first asked.
pub fn mono_us() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_micros() as i64
}

/// The published form of a node's cluster time: `stamp_us - learned_at_mono_us`, so the
/// cluster time now is this plus [`mono_us`] (one atomic: readers never pair a new stamp
/// with an old instant).
#[derive(Debug, Default)]
pub struct TimeOffset(AtomicI64);

impl TimeOffset {
    fn set(&self, stamp_ms: i64, at_us: i64) {
        self.0
            .store(stamp_ms.saturating_mul(1000) - at_us, Ordering::Release);
    }
}

impl Status {
    /// Cluster time now (ms): the last stamp this node applied plus the monotonic time
    /// elapsed since it learned it. Never below the last applied stamp.
    pub fn cluster_time_ms(&self) -> i64 {
        let t = (self.time_offset.0.load(Ordering::Acquire) + mono_us()) / 1000;
        t.max(self.last_time_ms.load(Ordering::Acquire))
    }
}

/// The last stamp this node applied, as persisted by [`StampClock::stage`] (0 = none).
pub fn load_stamp(db: &DB, group: u64) -> i64 {
    db.cf_handle(CF_RAFT)
        .and_then(|cf| db.get_cf(cf, meta_key(TAG_STAMP, group)).ok().flatten())
        .and_then(|v| v.try_into().ok())
        .map_or(0, i64::from_be_bytes)
}

/// The Ready loop's view of cluster time, and the leader's stamping rule.
pub struct StampClock {
    last: i64,
    at_us: i64,
    credit_ms: f64,
    credit_at_us: i64,
    last_warn: Option<Instant>,
}

impl StampClock {
    /// Starts from the last stamp the state machine applied (0 = none yet).
    pub fn new(last: i64) -> Self {
        let now = mono_us();
        StampClock {
            last,
            at_us: now,
            credit_ms: MAX_LEAD_MS as f64,
            credit_at_us: now,
            last_warn: None,
        }
    }

    /// The latest stamp seen.
    pub fn last(&self) -> i64 {
        self.last
    }

    /// Cluster time now, by this clock.
    fn base(&self, now_us: i64) -> i64 {
        self.last + (now_us - self.at_us).max(0) / 1000
    }

    /// A stamp applied (from any leader, or restored from a snapshot).
    pub fn observe(&mut self, stamp: i64) {
        if stamp > self.last {
            self.last = stamp;
            self.at_us = mono_us();
        }
    }

    /// Stages the last stamp seen into the batch of applies (the state machine records only
    /// stamps of entries with commands; the leader's idle time ticks have none).
    pub fn stage(&self, db: &DB, wb: &mut WriteBatch, group: u64) {
        if let Some(cf) = db.cf_handle(CF_RAFT) {
            wb.put_cf(cf, meta_key(TAG_STAMP, group), self.last.to_be_bytes());
        }
    }

    /// Publishes this clock for readers.
    pub fn publish(&self, status: &Status) {
        status.time_offset.set(self.last, self.at_us);
        status.last_time_ms.store(self.last, Ordering::Release);
    }

    /// The stamp for a new entry proposed by this (leader) node, given its wall clock.
    pub fn stamp(&mut self, wall: i64, logger: &Logger) -> i64 {
        let now = mono_us();
        let base = self.base(now);
        let t = if self.last == 0 {
            // Nothing was ever stamped (a new cluster): adopt this leader's clock.
            wall.max(base)
        } else {
            let refill = (now - self.credit_at_us).max(0) as f64 / 1000.0 * CATCH_UP_RATE;
            self.credit_ms = (self.credit_ms + refill).min(MAX_LEAD_MS as f64);
            self.credit_at_us = now;
            let ahead = wall - base;
            if ahead.abs() > MAX_LEAD_MS && self.last_warn.is_none_or(|w| w.elapsed() >= WARN_EVERY)
            {
                self.last_warn = Some(Instant::now());
                warn!(logger, "this leader's wall clock disagrees with cluster time; stamping cluster time (bounded catch-up)";
                    "wall_ms" => wall, "cluster_ms" => base, "ahead_ms" => ahead);
            }
            let gain = ahead.clamp(0, self.credit_ms as i64);
            self.credit_ms -= gain as f64;
            base + gain
        };
        let t = t.max(self.last);
        self.last = t;
        self.at_us = now;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    #[test]
    fn a_clock_a_day_ahead_moves_time_by_at_most_the_credit() {
        let mut c = StampClock::new(1_000_000);
        let day = 86_400_000;
        let mut t = 0;
        for _ in 0..1000 {
            t = c.stamp(1_000_000 + day, &log());
        }
        // 1 s of credit plus a quarter of the (tiny) elapsed time, however many entries.
        assert!(t <= 1_000_000 + MAX_LEAD_MS + 1000, "{t}");
        assert!(t >= 1_000_000);
    }

    #[test]
    fn a_clock_behind_never_moves_time_back() {
        let mut c = StampClock::new(5_000_000);
        let a = c.stamp(1_000, &log());
        let b = c.stamp(2_000, &log());
        assert!(a >= 5_000_000 && b >= a);
    }

    #[test]
    fn a_new_cluster_adopts_the_leader_clock_and_agreeing_clocks_pass_through() {
        let mut c = StampClock::new(0);
        assert_eq!(c.stamp(1_700_000_000_000, &log()), 1_700_000_000_000);
        let t = c.stamp(1_700_000_000_300, &log());
        assert!((1_700_000_000_000..=1_700_000_000_300).contains(&t));
    }

    #[test]
    fn cluster_time_advances_from_the_last_stamp_by_monotonic_time() {
        let status = Status::default();
        let mut c = StampClock::new(0);
        c.observe(10_000);
        c.publish(&status);
        let t0 = status.cluster_time_ms();
        assert!((10_000..10_050).contains(&t0), "{t0}");
        std::thread::sleep(Duration::from_millis(30));
        assert!(status.cluster_time_ms() >= 10_030);
    }
}
