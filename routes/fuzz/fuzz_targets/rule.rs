//! Traefik rule expressions: parsing and flattening never panic and stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = dime_routes::rule::parse(text) {
        if let Ok(alts) = dime_routes::rule::alternatives(&expr) {
            assert!(alts.len() <= dime_routes::rule::MAX_ALTERNATIVES);
        }
    }
});
