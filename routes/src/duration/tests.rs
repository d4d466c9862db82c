use super::*;

#[test]
fn parses_units_and_compounds() {
    for (text, ms) in [("0", 0), ("250ms", 250), ("5s", 5000), ("1m30s", 90_000), ("1.5s", 1500), ("2h", 7_200_000)] {
        assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
    }
}

#[test]
fn rejects_missing_or_unknown_units() {
    for text in ["", "5", "5x", "s", "1d", "-1s"] {
        assert!(parse_duration(text).is_err(), "{text} should fail");
    }
}

#[test]
fn format_round_trips() {
    for ms in [0u64, 1, 250, 1000, 90_000] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
    }
}
