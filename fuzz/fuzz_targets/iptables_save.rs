#![no_main]
//! `ringfence_parse::parse_ruleset` with `RulesetFormat::IptablesSave`: iptables-save output.
use libfuzzer_sys::fuzz_target;
use ringfence_parse::{parse_ruleset, RulesetFormat};
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = parse_ruleset(text, "fuzz.rules", RulesetFormat::IptablesSave) {
        common::check_errors(text, &e);
    }
});
