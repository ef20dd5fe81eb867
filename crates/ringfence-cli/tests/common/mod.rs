//! What every end-to-end test of the `ringfence` binary needs: running it as
//! a user would, reading its output, and finding the repository's files.
//! Each test file includes this with `mod common;` and uses what it needs.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Run the built `ringfence` with `args`, without colour and without a
/// `SOURCE_DATE_EPOCH` inherited from the environment (tests that need one
/// set it themselves).
pub fn ringfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run ringfence")
}

/// [`ringfence`], as (exit code, stdout, stderr); -1 when killed by a signal.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let o = ringfence(args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository root (canonical).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A kube-bench `cfg` directory in the repository: ringfence's own
/// kube-bench-format cis-1.6 (`crates/ringfence-cis/tests/fixtures/kube-bench/cfg`).
pub fn kube_bench_cfg() -> PathBuf {
    let c = repo_root().join("crates/ringfence-cis/tests/fixtures/kube-bench/cfg");
    assert!(
        c.join("config.yaml").is_file(),
        "{} is missing",
        c.display()
    );
    c
}
