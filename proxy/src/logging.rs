//! Structured logs with `tracing`, written off the request path; Pingora's own `log` records are bridged in.
//!
//! - Lines go through a bounded in-memory queue to a writer thread (`tracing-appender`), which writes them to
//!   stderr in batches: a worker thread formats its line and moves on, it never waits on a pipe or a terminal. If
//!   the queue (64k lines) is ever full the line is dropped and counted (`dime_log_lines_dropped_total`) rather
//!   than stalling requests. [`flush`] drains the queue before the process exits (SIGTERM, start-up errors).
//! - ERROR means an operator should act. Pingora logs some expected events at error level (an origin closing an
//!   idle keep-alive connection shows up as `failed to acquire reusable stream`); [`demoted`] lists them, and they
//!   are logged at debug.

use std::sync::Mutex;

use tracing_appender::non_blocking::{ErrorCounter, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines the queue holds before new ones are dropped.
const QUEUE_LINES: usize = 64 * 1024;

/// The writer thread's guard: dropping it flushes what is queued.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);
static DROPPED: Mutex<Option<ErrorCounter>> = Mutex::new(None);

/// Pingora messages that report expected events at error level: (module prefix, message prefix).
const EXPECTED: &[(&str, &str)] = &[
    // The origin closed an idle pooled connection; Pingora opens a new one. Routine with keep-alive origins.
    ("pingora_core::connectors", "failed to acquire reusable stream"),
];

/// The level a Pingora record is logged at.
pub fn demoted(target: &str, message: &str, level: log::Level) -> log::Level {
    let expected = EXPECTED.iter().any(|(module, text)| target.starts_with(module) && message.starts_with(text));
    if expected && level < log::Level::Debug {
        log::Level::Debug
    } else {
        level
    }
}

/// Forwards Pingora's `log` records to `tracing`, demoting the expected ones.
struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        // `log::max_level` already filters; the tracing filter decides the rest in `format_trace`.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        let level = demoted(record.target(), &message, record.level());
        let args = format_args!("{message}");
        let forwarded = log::Record::builder()
            .args(args)
            .level(level)
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .build();
        let _ = tracing_log::format_trace(&forwarded);
    }

    fn flush(&self) {}
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter (`info`).
pub fn init(format: LogFormat) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let max = if from_env.is_some() { log::LevelFilter::Trace } else { log::LevelFilter::Info };
    let filter = from_env.unwrap_or_else(|| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUE_LINES)
        .lossy(true)
        .thread_name("dime-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Json => tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish()),
        LogFormat::Text => tracing::subscriber::set_global_default(builder.with_ansi(false).finish()),
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
        return;
    }
    if log::set_boxed_logger(Box::new(Bridge)).is_ok() {
        log::set_max_level(max);
    }
    if let Ok(mut slot) = GUARD.lock() {
        *slot = Some(guard);
    }
    if let Ok(mut slot) = DROPPED.lock() {
        *slot = Some(dropped);
    }
}

/// Lines dropped because the queue was full.
pub fn dropped_lines() -> usize {
    DROPPED.lock().ok().and_then(|d| d.as_ref().map(ErrorCounter::dropped_lines)).unwrap_or(0)
}

/// Writes out every queued line; call before the process exits. Later lines go nowhere.
pub fn flush() {
    if let Ok(mut slot) = GUARD.lock() {
        drop(slot.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_pingora_errors_are_debug_and_others_keep_their_level() {
        let cases = [
            ("pingora_core::connectors", "failed to acquire reusable stream", log::Level::Error, log::Level::Debug),
            (
                "pingora_core::connectors::http",
                "failed to acquire reusable stream",
                log::Level::Error,
                log::Level::Debug,
            ),
            ("pingora_core::connectors", "something else broke", log::Level::Error, log::Level::Error),
            ("pingora_proxy", "failed to acquire reusable stream", log::Level::Error, log::Level::Error),
            ("pingora_core::connectors", "failed to acquire reusable stream", log::Level::Trace, log::Level::Trace),
        ];
        for (target, message, level, want) in cases {
            assert_eq!(demoted(target, message, level), want, "{target}: {message}");
        }
    }
}
