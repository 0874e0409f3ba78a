//! A small stderr logger for the slcp processes (never writes into the REPL transcript).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr {
    name: &'static str,
}

impl Log for Stderr {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = t.as_secs() % 86_400;
        let line = format!(
            "{:02}:{:02}:{:02}.{:03} {} {:5} {}\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            t.subsec_millis(),
            self.name,
            r.level(),
            r.args()
        );
        // One write per line so lines of several processes sharing a log file do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger: `verbose` 0 = warnings, 1 = info, 2 = debug, 3+ = trace; `SLCP_LOG`
/// (`error`..`trace`) wins when set.
pub fn init(name: &'static str, verbose: u8) {
    let from_env = std::env::var("SLCP_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok());
    let level = from_env.unwrap_or(match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    });
    if log::set_boxed_logger(Box::new(Stderr { name })).is_ok() {
        log::set_max_level(level);
    }
}
