//! The simulated nodes' loggers: critical records (the reason of a fail-stop, which the
//! simulation turns into a panic) are kept for the failure report; with `SIM_LOG` set,
//! every record from debug up is also printed to stderr.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use slog::{Drain, Key, Level, OwnedKVList, Record, KV};

/// Critical records of one run.
pub type CritLines = Arc<Mutex<Vec<String>>>;

/// Keeps critical records as text.
struct Capture(CritLines);

/// Appends `, key: value` for each pair.
struct Text<'a>(&'a mut String);

impl slog::Serializer for Text<'_> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, ", {key}: {val}");
        Ok(())
    }
}

impl Drain for Capture {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, r: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        if r.level().is_at_least(Level::Critical) {
            let mut s = r.msg().to_string();
            let _ = r.kv().serialize(r, &mut Text(&mut s));
            let _ = values.serialize(r, &mut Text(&mut s));
            self.0.lock().expect("log lock").push(s);
        }
        Ok(())
    }
}

/// The logger of node `id` in the run of `seed`.
pub fn logger(seed: u64, id: u64, crit: &CritLines) -> slog::Logger {
    let capture = Capture(crit.clone());
    let kv = slog::o!("seed" => seed, "node" => id);
    if std::env::var_os("SIM_LOG").is_some() {
        let dec = slog_term::PlainSyncDecorator::new(std::io::stderr());
        let term = slog_term::FullFormat::new(dec).build().fuse();
        let term = slog::LevelFilter::new(term, Level::Debug).fuse();
        slog::Logger::root(slog::Duplicate::new(capture, term).fuse(), kv)
    } else {
        slog::Logger::root(capture, kv)
    }
}
