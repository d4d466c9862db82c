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

/// Whether access lines are wanted by the log filter (`RUST_LOG`, read once at start: the edge asks once, after
/// the subscriber is installed, not per request).
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

fn millis(d: Duration) -> (u64, u32) {
    (d.as_millis().try_into().unwrap_or(u64::MAX), d.subsec_micros() % 1000)
}

/// Appends `n` in decimal, at least `width` digits (zero-padded), with `itoa` rather than `std::fmt`'s
/// machinery: the access line is written on every request.
fn number(buf: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    for _ in text.len()..width {
        buf.push('0');
    }
    buf.push_str(text);
}

/// Appends an address the way `Display` writes it; IPv4 (the common case) without `std::fmt` (a third of the
/// line's cost when it went through `Display`).
fn ip(buf: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            buf.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Appends `IP:PORT` (`[IP]:PORT` for IPv6), as `SocketAddr`'s `Display` does.
fn socket(buf: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => ip(buf, IpAddr::V4(*v4.ip())),
        SocketAddr::V6(v6) => {
            let _ = write!(buf, "[{}", v6.ip());
            if v6.scope_id() != 0 {
                let _ = write!(buf, "%{}", v6.scope_id());
            }
            buf.push(']');
        }
    }
    buf.push(':');
    number(buf, addr.port().into(), 1);
}

/// Bytes written as they are inside a quoted text field: printable ASCII and space, except `"` and `\`.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
};

/// Appends `value` quoted as `tracing` writes a `&str` field (Rust's debug form): plain text as is, anything
/// needing an escape through `{:?}`.
fn debug_quoted(buf: &mut String, value: &str) {
    if value.bytes().all(|b| PLAIN[usize::from(b)]) {
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
    number(buf, micros.into(), 6);
    buf.push_str("Z  INFO dime::access: client=");
    if let Some(client) = l.client {
        ip(buf, client);
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
    number(buf, l.status.into(), 1);
    buf.push_str(" route=");
    debug_quoted(buf, l.route);
    buf.push_str(" upstream=");
    debug_quoted(buf, l.upstream);
    buf.push_str(" server=");
    if let Some(addr) = l.server {
        socket(buf, addr);
    }
    buf.push_str(" bytes=");
    number(buf, l.bytes as u64, 1);
    buf.push_str(" duration_ms=");
    number(buf, ms, 1);
    buf.push('.');
    number(buf, us.into(), 3);
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
    if let Some(client) = l.client {
        ip(buf, client);
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
        socket(buf, addr);
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
