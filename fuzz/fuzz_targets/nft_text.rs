#![no_main]
//! `ringfence_parse::parse_ruleset` with `RulesetFormat::NftText`: `nft list ruleset` output and `nft -f` scripts.
use libfuzzer_sys::fuzz_target;
use ringfence_parse::{parse_ruleset, RulesetFormat};
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = parse_ruleset(text, "fuzz.nft", RulesetFormat::NftText) {
        common::check_errors(text, &e);
    }
});
