//! Any bytes given to the routes parser give a table or errors, never a panic; a table it accepts serializes to
//! a document that parses again to the same version.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(table) = dime_routes::parse("fuzz.yaml", text) {
        let again = dime_routes::parse("again.json", &table.to_json()).expect("a compiled table re-parses");
        assert_eq!(again.version(), table.version());
        let _ = table.find("video.example.com", "/hls/a.ts");
    }
});
