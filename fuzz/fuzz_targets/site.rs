#![no_main]
//! `ringfence_site::parse_site`: site YAML, then flow resolution of what parses.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ringfence_site::parse_site(text, "fuzz.yaml") {
        Ok(site) => {
            let _ = site.resolve();
        }
        Err(e) => common::check_errors(text, &e),
    }
});
