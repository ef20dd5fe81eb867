#![no_main]
//! `ringfence_cis::kubebench::controls::parse`: a kube-bench controls file
//! (cfg/<benchmark>/<target>.yaml), then kube-bench-style judging of every
//! check with canned audit outputs, so the flag, JSONPath, env and compare
//! code sees whatever the definitions ask of it.
//!
//! The input is split at the first NUL byte: before it the controls YAML,
//! after it the text every audit "prints" (a process command line, a config
//! file, an environment), so one input exercises both halves.
use libfuzzer_sys::fuzz_target;
use ringfence_cis::kubebench::{controls, eval};
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (yaml, output) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(yaml) else { return };
    let output = String::from_utf8_lossy(output).into_owned();
    match controls::parse("fuzz.yaml", text, None) {
        Ok(parsed) => {
            for (group, check) in parsed.checks() {
                let skip = group.skip;
                let mut answer = |_: &str| eval::AuditResult {
                    output: output.clone(),
                    error: None,
                    how: "fuzz".into(),
                };
                let outcome = eval::run_check(check, skip, &mut answer);
                let _ = outcome.state.name();
            }
        }
        Err(e) => common::check_errors(text, &e),
    }
});
