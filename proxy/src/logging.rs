//! Structured logs with `tracing`, written off the request path; Pingora's own `log` records are bridged in.
//!
//! - Lines are formatted by the thread that logs them and appended to one in-memory buffer ([`Batch`]); a
//!   writer thread writes the buffer to stderr in batches, a few milliseconds after the first line of a batch.
//!   A worker thread never makes a syscall for a log line and never waits on a pipe or a journal. If the writer
//!   falls behind by more than [`MAX_BUFFER`] bytes, new lines are dropped and counted
//!   (`dime_log_lines_dropped_total`) rather than stalling requests. [`flush`] writes out what is buffered; it
//!   runs before the process exits (SIGTERM, start-up errors). Measured: benches/run --only accesslog.
//!   (`tracing-appender` does the same with one allocation and one channel message per line, and one write per
//!   line: measurably dearer on cached hits, see docs/benchmarks.md.)
//! - A panic is a bug: [`count_panics`] makes each one a single ERROR line (message, source location, thread; the
//!   backtrace too when `RUST_BACKTRACE` asks for one) and counts it (`dime_panics_total`), where the standard
//!   hook wrote free text to stderr that no log pipeline or alert would notice.
//! - ERROR means an operator should act. Pingora logs some expected events at error level (an origin closing an
//!   idle keep-alive connection shows up as `failed to acquire reusable stream`); [`demoted`] lists them, and they
//!   are logged at debug.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::metrics::Metrics;

/// Bytes buffered before new lines are dropped.
pub const MAX_BUFFER: usize = 8 << 20;

/// How long the writer lets a batch gather after its first line.
const GATHER: Duration = Duration::from_millis(20);

/// The log buffer shared by every thread, and its writer thread's wake-up.
#[derive(Debug)]
pub struct Batch {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicUsize,
}

static BATCH: Batch = Batch { buf: Mutex::new(Vec::new()), wake: Condvar::new(), dropped: AtomicUsize::new(0) };

impl Batch {
    /// Appends whole lines (one formatted event).
    fn append(&self, line: &[u8]) {
        let mut buf = self.buf.lock();
        if buf.len() + line.len() > MAX_BUFFER {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = buf.is_empty();
        buf.extend_from_slice(line);
        drop(buf);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Takes what is buffered and writes it to stderr.
    fn write_out(&self) {
        let batch = std::mem::take(&mut *self.buf.lock());
        if !batch.is_empty() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&batch);
            let _ = err.flush();
        }
    }

    fn run_writer(&'static self) {
        loop {
            {
                let mut buf = self.buf.lock();
                while buf.is_empty() {
                    self.wake.wait(&mut buf);
                }
            }
            std::thread::sleep(GATHER);
            self.write_out();
        }
    }
}

/// What `tracing`'s formatter writes each event into.
#[derive(Debug, Clone, Copy)]
struct BatchWriter;

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        BATCH.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    if let Err(e) = std::thread::Builder::new().name("dime-log".into()).spawn(|| BATCH.run_writer()) {
        eprintln!("cannot start the log writer thread: {e}");
        return;
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| BatchWriter);
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
}

/// Replaces the standard panic hook: every panic, on any thread, is counted in `metrics.panics` and logged as one
/// structured ERROR line. A backtrace is captured as the standard hook would (`RUST_BACKTRACE`), and then
/// written in the same line.
pub fn count_panics(metrics: Arc<Metrics>) {
    std::panic::set_hook(Box::new(move |info| {
        metrics.process.panics.inc();
        let payload = info.payload();
        let message = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
            (Some(s), _) => s,
            (None, Some(s)) => s.as_str(),
            (None, None) => "(not a string)",
        };
        let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
            .then(|| tracing::field::display(backtrace));
        tracing::error!(panic = message, location, thread, backtrace, "panicked: a bug in dime-edge");
    }));
}

/// Appends whole formatted lines (the access log writes its own, see [`crate::access`]).
pub fn append(lines: &[u8]) {
    BATCH.append(lines);
}

/// Lines dropped because the buffer was full.
pub fn dropped_lines() -> usize {
    BATCH.dropped.load(Ordering::Relaxed)
}

/// Writes out every buffered line now; call before the process exits.
pub fn flush() {
    BATCH.write_out();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_counted() {
        #![allow(clippy::unwrap_used)]
        let metrics = Arc::new(Metrics::new().unwrap());
        count_panics(metrics.clone());
        let caught = std::panic::catch_unwind(|| panic!("a test panic"));
        // Back to the standard hook for the rest of this test binary.
        let _ = std::panic::take_hook();
        assert!(caught.is_err());
        assert!(metrics.process.panics.get() >= 1, "the panic was not counted");
    }

    #[test]
    fn lines_are_kept_whole_until_written_and_dropped_past_the_bound() {
        let batch = Batch { buf: Mutex::new(Vec::new()), wake: Condvar::new(), dropped: AtomicUsize::new(0) };
        batch.append(b"one\n");
        batch.append(b"two\n");
        assert_eq!(&*batch.buf.lock(), b"one\ntwo\n");
        batch.append(&vec![b'x'; MAX_BUFFER]);
        assert_eq!(batch.dropped.load(Ordering::Relaxed), 1, "a line that does not fit is dropped whole");
        assert_eq!(batch.buf.lock().len(), 8);
    }

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
