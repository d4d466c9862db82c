//! Durations as people write them in route files: `250ms`, `5s`, `1m30s`, `2h`.

use crate::error::Invalid;
use std::time::Duration;

/// Parses a Go-style duration (the form Traefik uses): one or more `<number><unit>` pairs, units `ms`, `s`, `m`,
/// `h`. A bare `0` is zero. Fractions are allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, Invalid> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration `{text}`: expected a number, e.g. `5s` or `250ms`").into());
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: bad number `{}`", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("invalid duration `{text}`: missing unit (ms, s, m or h)").into()),
            other => {
                return Err(format!("invalid duration `{text}`: unknown unit `{other}` (use ms, s, m or h)").into())
            }
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !total.is_finite() || total > 365.0 * 24.0 * 3600.0 {
        return Err(format!("invalid duration `{text}`: out of range").into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Writes a duration back in the shortest exact form `parse_duration` reads.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests;
