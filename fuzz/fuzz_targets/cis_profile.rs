#![no_main]
//! `ringfence_cis::profile`: expected-failure profiles and waiver files.
use libfuzzer_sys::fuzz_target;
use ringfence_cis::benchmark::Benchmark;
use ringfence_cis::profile::{parse_waivers, Profile};
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Profile::parse("fuzz.yaml", text) {
        common::check_errors(text, &e);
    }
    let bench = Benchmark::embedded("cis-1.6").expect("embedded");
    if let Err(e) = parse_waivers("waivers.yaml", text, &bench) {
        common::check_errors(text, &e);
    }
});
