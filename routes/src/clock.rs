//! Wall-clock time as Unix seconds, as the edge and control report and compare it (one home for the conversion).

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` in Unix seconds with a fraction (metrics, `/config`); 0 for a time before 1970.
pub fn unix_secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Now, in whole Unix seconds (token expiries, certificate validity); 0 if the clock is before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unix_seconds_of_known_times() {
        assert_eq!(unix_secs_f64(UNIX_EPOCH + Duration::from_millis(1_500)), 1.5);
        assert_eq!(unix_secs_f64(UNIX_EPOCH - Duration::from_secs(1)), 0.0);
        assert!(unix_now() > 1_700_000_000);
    }
}
