//! The access log: one line per request, formatted straight into a per-thread buffer and handed to the log
//! writer ([`crate::logging`]) whole.
//!
//! Why not a `tracing` event: formatting eleven fields through `tracing`'s visitor (with an allocation for each
//! address, URI and error text) cost about a third of a cached 1 KiB hit (measured, docs/benchmarks.md). The
//! lines keep the shape of the edge's other log lines, text or JSON, and `RUST_LOG` still turns them off
//! (`dime::access=off`).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;

/// One request, as logged.
pub struct Line<'a> {
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a http::Uri,
    pub status: u16,
    pub route: &'a str,
    pub upstream: &'a str,
    pub server: Option<SocketAddr>,
    pub bytes: usize,
    pub duration: Duration,
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl std::fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = String::new();
        text(&mut buf, "-", 0, self)?;
        f.write_str(buf.trim_end())
    }
}

/// Whether access lines are wanted by the log filter (`RUST_LOG`); cheap, the answer is cached by `tracing`.
pub fn enabled() -> bool {
    tracing::enabled!(target: "dime::access", tracing::Level::INFO)
}

thread_local! {
    /// The line being written, and the second whose date-time prefix was last formatted.
    static SCRATCH: RefCell<(String, u64, String)> = const { RefCell::new((String::new(), u64::MAX, String::new())) };
}

/// Formats `line` and hands it to the log writer.
pub fn log(format: LogFormat, line: &Line<'_>) {
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else { return };
        let (buf, second, prefix) = &mut *scratch;
        buf.clear();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if now.as_secs() != *second {
            *second = now.as_secs();
            prefix.clear();
            date_time(prefix, now.as_secs());
        }
        let _ = match format {
            LogFormat::Text => text(buf, prefix, now.subsec_micros(), line),
            LogFormat::Json => json(buf, prefix, now.subsec_micros(), line),
        };
        crate::logging::append(buf.as_bytes());
    });
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (UTC), from the proleptic Gregorian calendar.
fn date_time(out: &mut String, unix: u64) {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Days since 1970-01-01 to a civil date (the well-known era-based conversion).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
}

fn millis(d: Duration) -> (u128, u32) {
    (d.as_millis(), d.subsec_micros() % 1000)
}

/// Appends `n` in decimal, at least `width` digits (zero-padded), without `std::fmt`'s machinery: the access
/// line is written on every request.
fn number(buf: &mut String, n: u128, width: usize) {
    let mut digits = [0u8; 40];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while digits.len() - i < width {
        i -= 1;
        digits[i] = b'0';
    }
    for &d in &digits[i..] {
        buf.push(d as char);
    }
}

/// Appends `value` quoted as `tracing` writes a `&str` field (Rust's debug form): plain text as is, anything
/// needing an escape through `{:?}`.
fn debug_quoted(buf: &mut String, value: &str) {
    if value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ') {
        buf.push('"');
        buf.push_str(value);
        buf.push('"');
    } else {
        let _ = write!(buf, "{value:?}");
    }
}

fn path_of(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn text(buf: &mut String, prefix: &str, micros: u32, l: &Line<'_>) -> std::fmt::Result {
    let (ms, us) = millis(l.duration);
    buf.push_str(prefix);
    buf.push('.');
    number(buf, u128::from(micros), 6);
    buf.push_str("Z  INFO dime::access: client=");
    if let Some(ip) = l.client {
        write!(buf, "{ip}")?;
    }
    buf.push_str(" method=");
    buf.push_str(l.method);
    buf.push_str(" host=");
    debug_quoted(buf, l.host);
    buf.push_str(" path=");
    match l.path.authority() {
        // An absolute-form request keeps its whole URI, as before.
        Some(_) => write!(buf, "{}", l.path)?,
        None => buf.push_str(path_of(l.path)),
    }
    buf.push_str(" status=");
    number(buf, u128::from(l.status), 1);
    buf.push_str(" route=");
    debug_quoted(buf, l.route);
    buf.push_str(" upstream=");
    debug_quoted(buf, l.upstream);
    buf.push_str(" server=");
    if let Some(addr) = l.server {
        write!(buf, "{addr}")?;
    }
    buf.push_str(" bytes=");
    number(buf, l.bytes as u128, 1);
    buf.push_str(" duration_ms=");
    number(buf, ms, 1);
    buf.push('.');
    number(buf, u128::from(us), 3);
    buf.push_str(" error=");
    if let Some(e) = l.error {
        write!(buf, "{e}")?;
    }
    buf.push('\n');
    Ok(())
}

/// A JSON string (quotes and escapes).
fn quoted(buf: &mut String, value: &str) {
    match serde_json::to_string(value) {
        Ok(q) => buf.push_str(&q),
        Err(_) => buf.push_str("\"\""),
    }
}

fn json(buf: &mut String, prefix: &str, micros: u32, l: &Line<'_>) -> std::fmt::Result {
    let (ms, us) = millis(l.duration);
    write!(buf, "{{\"timestamp\":\"{prefix}.{micros:06}Z\",\"level\":\"INFO\",\"client\":\"")?;
    if let Some(ip) = l.client {
        write!(buf, "{ip}")?;
    }
    write!(buf, "\",\"method\":\"{}\",\"host\":", l.method)?;
    quoted(buf, l.host);
    buf.push_str(",\"path\":");
    quoted(buf, &l.path.to_string());
    write!(buf, ",\"status\":{},\"route\":", l.status)?;
    quoted(buf, l.route);
    buf.push_str(",\"upstream\":");
    quoted(buf, l.upstream);
    buf.push_str(",\"server\":\"");
    if let Some(addr) = l.server {
        write!(buf, "{addr}")?;
    }
    write!(buf, "\",\"bytes\":{},\"duration_ms\":{ms}.{us:03},\"error\":", l.bytes)?;
    match l.error {
        Some(e) => quoted(buf, &e.to_string()),
        None => buf.push_str("\"\""),
    }
    buf.push_str(",\"target\":\"dime::access\"}\n");
    Ok(())
}

#[cfg(test)]
mod tests;
