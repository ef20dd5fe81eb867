#![no_main]
//! `ringfence_cis::benchmark::Benchmark::parse`: benchmark definition YAML.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ringfence_cis::benchmark::Benchmark::parse("fuzz.yaml", text) {
        Ok(b) => {
            for c in b.checks() {
                if let Some(t) = &c.test {
                    let _ = ringfence_cis::eval::describe(&b, t);
                }
            }
        }
        Err(e) => common::check_errors(text, &e),
    }
});
