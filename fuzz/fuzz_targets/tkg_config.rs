#![no_main]
//! `ringfence_site::import::TkgConfig`: TKG cluster config YAML into a site.
//! A NUL byte splits the input into two config files (later ones override).
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut cfg = ringfence_site::import::TkgConfig::default();
    for (i, part) in text.split('\0').take(3).enumerate() {
        if let Err(e) = cfg.add(part, &format!("cfg{i}.yaml")) {
            common::check_errors(part, &e);
            return;
        }
    }
    if let Ok(imported) = cfg.to_site() {
        // What import writes must itself be a site file we can read back
        // (or be rejected cleanly: the user still fills in placeholders).
        if let Err(e) = ringfence_site::parse_site(&imported.yaml, "imported.yaml") {
            common::check_errors(&imported.yaml, &e);
        }
    }
});
