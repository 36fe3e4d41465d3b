//! Pacing and progress of a migration's data copy (`super::copy`): the token bucket that
//! holds the copy to `--migrate-max-mbps` (CONFIG SET `migrate-max-mbps`, read before
//! every chunk so a change applies at once), and the figures INFO cluster shows while
//! migrations run: the migration in progress, slots done of the current run, the copy's
//! rate over the last seconds and an estimate of the time left.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Span of the copy rate INFO shows.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// A token bucket without credit: the copy may send a chunk once the bytes before it have
/// been paid for at the rate, so it never runs faster than the rate on average (an idle
/// bucket does not save up a burst).
#[derive(Debug)]
pub struct Bucket {
    /// Instant from which the next bytes may go (the debt of the bytes sent so far).
    free_at: Instant,
}

impl Bucket {
    pub fn new(now: Instant) -> Bucket {
        Bucket { free_at: now }
    }

    /// How long to wait at `now` before sending `bytes` at `rate` bytes per second (0 =
    /// unlimited: no wait); the bytes are charged.
    pub fn take(&mut self, now: Instant, bytes: u64, rate: u64) -> Duration {
        if rate == 0 {
            self.free_at = now;
            return Duration::ZERO;
        }
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.free_at - now
    }
}

/// Bytes per second of `--migrate-max-mbps` (MB: 10^6 bytes, as `--snapshot-max-mbps`).
pub fn bytes_per_sec(mbps: u64) -> u64 {
    mbps.saturating_mul(1_000_000)
}

/// What the coordinator is doing now (INFO cluster; the totals are in
/// `super::migrate::Progress`).
#[derive(Default)]
pub struct Live {
    /// The migration in progress (0: none).
    pub current: AtomicU64,
    /// Slots finished since the migrations pending last became non-empty (the run).
    pub run_slots_done: AtomicU64,
    /// Records and bytes the copy in progress (or the last one) copied.
    pub copy_records: AtomicU64,
    pub copy_bytes: AtomicU64,
    inner: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    /// When the run began (its first migration started).
    run_started: Option<Instant>,
    /// When the copy in progress began.
    copy_started: Option<Instant>,
    /// Bytes copied, with when, within [`RATE_WINDOW`].
    samples: VecDeque<(Instant, u64)>,
}

impl Live {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Migration `id` starts (the first of a run when none ran since the queue emptied).
    pub fn started(&self, id: u64, now: Instant) {
        self.current.store(id, Ordering::Relaxed);
        self.window().run_started.get_or_insert(now);
    }

    /// The migration in progress ended, its `slots` done (0 when it failed).
    pub fn finished(&self, slots: u64) {
        self.current.store(0, Ordering::Relaxed);
        self.run_slots_done.fetch_add(slots, Ordering::Relaxed);
    }

    /// No migration is pending: the next one starts a new run.
    pub fn idle(&self) {
        self.current.store(0, Ordering::Relaxed);
        self.run_slots_done.store(0, Ordering::Relaxed);
        let mut w = self.window();
        w.run_started = None;
        w.samples.clear();
    }

    /// A copy starts.
    pub fn copy_started(&self, now: Instant) {
        self.copy_records.store(0, Ordering::Relaxed);
        self.copy_bytes.store(0, Ordering::Relaxed);
        let mut w = self.window();
        w.copy_started = Some(now);
        w.samples.clear();
    }

    /// A chunk of `records` records, `bytes` bytes, was copied at `now`.
    pub fn copied(&self, records: u64, bytes: u64, now: Instant) {
        self.copy_records.fetch_add(records, Ordering::Relaxed);
        self.copy_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut w = self.window();
        w.samples.push_back((now, bytes));
        while w
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            w.samples.pop_front();
        }
    }

    /// Bytes per second copied over the last [`RATE_WINDOW`] (or since the copy began,
    /// when more recent); 0 when nothing was copied in that time.
    pub fn rate(&self, now: Instant) -> u64 {
        let w = self.window();
        let Some(started) = w.copy_started else {
            return 0;
        };
        let bytes: u64 = w
            .samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW)
            .map(|(_, b)| b)
            .sum();
        let span = now.duration_since(started).min(RATE_WINDOW).as_secs_f64();
        if bytes == 0 || span <= 0.0 {
            return 0;
        }
        (bytes as f64 / span) as u64
    }

    /// INFO cluster's fields of the migration in progress, with `pending` slots still to
    /// move (the current migration's among them); ETA -1: unknown.
    pub fn info(&self, pending: u64) -> String {
        let now = Instant::now();
        let done = self.run_slots_done.load(Ordering::Relaxed);
        let eta = self.eta_secs(pending, now).map_or(-1, |s| s as i64);
        format!(
            "raftkv_migration_in_progress:{}\r\nraftkv_migration_run_slots_done:{done}\r\nraftkv_migration_run_slots_total:{}\r\nraftkv_migration_copy_records:{}\r\nraftkv_migration_copy_bytes:{}\r\nraftkv_migration_copy_rate_bps:{}\r\nraftkv_migration_eta_sec:{eta}\r\n",
            self.current.load(Ordering::Relaxed),
            done + pending,
            self.copy_records.load(Ordering::Relaxed),
            self.copy_bytes.load(Ordering::Relaxed),
            self.rate(now),
        )
    }

    /// Seconds left for the run's `pending` slots at the pace of the slots it finished
    /// (None before one finished: unknown). Assumes the run's slots hold similar data.
    pub fn eta_secs(&self, pending: u64, now: Instant) -> Option<u64> {
        let done = self.run_slots_done.load(Ordering::Relaxed);
        let started = self.window().run_started?;
        if done == 0 {
            return None;
        }
        let per_slot = now.duration_since(started).as_secs_f64() / done as f64;
        Some((per_slot * pending as f64).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_paces_bytes_at_the_rate_without_saving_credit() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        // 1 MB/s: each 500 KB chunk waits for the ones before it.
        let rate = bytes_per_sec(1);
        assert_eq!(b.take(t0, 500_000, rate), Duration::from_millis(500));
        assert_eq!(b.take(t0, 500_000, rate), Duration::from_millis(1000));
        // Time that passed pays the debt.
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(b.take(t1, 500_000, rate), Duration::from_millis(500));
        // Idle for long: no credit, the next chunk still waits its own bytes.
        let t2 = t0 + Duration::from_secs(60);
        assert_eq!(b.take(t2, 250_000, rate), Duration::from_millis(250));
        // Unlimited: no wait, no debt left behind.
        assert_eq!(b.take(t2, 1 << 30, 0), Duration::ZERO);
        assert_eq!(b.take(t2, 1000, 0), Duration::ZERO);
    }

    #[test]
    fn the_rate_covers_the_last_seconds_and_the_eta_the_run_pace() {
        let t0 = Instant::now();
        let l = Live::default();
        assert_eq!(l.rate(t0), 0);
        l.started(7, t0);
        l.copy_started(t0);
        assert_eq!(l.eta_secs(100, t0), None);
        for s in 1..=10 {
            l.copied(1, 1_000_000, t0 + Duration::from_secs(s));
        }
        // The last 5 s (samples at 5..=10 s, the one at 5 s on the window's edge).
        assert_eq!(l.rate(t0 + Duration::from_secs(10)), 1_200_000);
        assert_eq!(l.rate(t0 + Duration::from_secs(60)), 0);
        assert_eq!(l.copy_bytes.load(Ordering::Relaxed), 10_000_000);
        l.finished(10);
        assert_eq!(l.current.load(Ordering::Relaxed), 0);
        // 10 slots in 20 s: 30 more take 60 s.
        assert_eq!(l.eta_secs(30, t0 + Duration::from_secs(20)), Some(60));
        l.idle();
        assert_eq!(l.eta_secs(30, t0 + Duration::from_secs(20)), None);
    }
}
