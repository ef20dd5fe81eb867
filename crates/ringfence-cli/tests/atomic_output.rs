//! Every `--out` writer replaces its target atomically: when writing fails
//! part-way, the previous file is left exactly as it was and no temporary
//! file remains. The failure is forced with RLIMIT_FSIZE (a file-size limit
//! of a few bytes, with SIGXFSZ ignored so the write returns EFBIG): a writer
//! that truncated and rewrote the target in place would leave a damaged file.

mod common;
use common::repo_root;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn setrlimit(resource: i32, limit: *const RLimit) -> i32;
    fn signal(sig: i32, handler: usize) -> usize;
}
const RLIMIT_FSIZE: i32 = 1;
const SIGXFSZ: i32 = 25;
const SIG_IGN: usize = 1;

/// Run ringfence with every file write capped at 8 bytes.
fn run_capped(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.args(args).current_dir(repo_root()).env("NO_COLOR", "1");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            signal(SIGXFSZ, SIG_IGN);
            if setrlimit(RLIMIT_FSIZE, &RLimit { cur: 8, max: 8 }) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const OLD: &str = "the previous report, which must survive\n";

/// Put OLD at each target, run the writer capped, and check that it failed
/// cleanly (exit 2, an error naming the target), that every target still
/// holds OLD, and that the directory holds nothing else.
fn assert_atomic(what: &str, args: &[&str], dir: &Path, targets: &[&str]) {
    for t in targets {
        std::fs::write(dir.join(t), OLD).unwrap();
    }
    let (code, stderr) = run_capped(args);
    assert_eq!(code, Some(2), "{what}: exit code; stderr:\n{stderr}");
    assert!(
        stderr.contains("error: writing "),
        "{what}: stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    for t in targets {
        assert_eq!(
            std::fs::read_to_string(dir.join(t)).unwrap(),
            OLD,
            "{what}: {t} was damaged by a failed write"
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "{what}: temporary files left behind");
}

#[test]
fn flows_out_is_atomic() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("flows.txt");
    assert_atomic(
        "flows",
        &["flows", "--example", "--out", out.to_str().unwrap()],
        d.path(),
        &["flows.txt"],
    );
}

#[test]
fn generate_out_is_atomic_for_single_and_multi_file_targets() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rules.nft");
    assert_atomic(
        "generate nftables",
        &[
            "generate",
            "--example",
            "--target",
            "nftables",
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
        &["rules.nft"],
    );
    let d = tempfile::tempdir().unwrap();
    let stem = d.path().join("site.rules");
    assert_atomic(
        "generate iptables",
        &[
            "generate",
            "--example",
            "--target",
            "iptables",
            "--out",
            stem.to_str().unwrap(),
        ],
        d.path(),
        &["site.v4.rules", "site.v6.rules"],
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("dfw.json");
    assert_atomic(
        "generate nsxt",
        &[
            "generate",
            "--target",
            "nsxt",
            "--site",
            "examples/all-features.yaml",
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
        &["dfw.json"],
    );
}

#[test]
fn cis_scan_out_is_atomic() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("node");
    drop(ringfence_cis::testkit::worker(
        &root,
        ringfence_cis::testkit::KubeletStyle::ConfigOnly,
    ));
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("report.json");
    assert_atomic(
        "cis scan",
        &[
            "cis",
            "scan",
            "--root",
            root.to_str().unwrap(),
            "--benchmark",
            "cis-1.6",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
        &["report.json"],
    );
}

#[test]
fn site_import_trace_and_deploy_out_are_atomic() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("site.yaml");
    assert_atomic(
        "site import",
        &[
            "site",
            "import",
            "--tkg-config",
            "fuzz/seeds/tkg_config/mgmt-cluster.yaml",
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
        &["site.yaml"],
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("trace.txt");
    assert_atomic(
        "trace",
        &[
            "trace",
            "--ruleset",
            "crates/ringfence-parse/tests/data/mixed.rules",
            "--src",
            "198.18.0.1",
            "--dst",
            "198.18.0.2",
            "--proto",
            "tcp",
            "--dport",
            "443",
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
        &["trace.txt"],
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("jobs.yaml");
    assert_atomic(
        "deploy manifests",
        &["deploy", "manifests", "--out", out.to_str().unwrap()],
        d.path(),
        &["jobs.yaml"],
    );
}

#[test]
fn out_into_a_missing_directory_is_an_error_that_names_it() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("no/such/dir/flows.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["flows", "--example", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no/such/dir/flows.txt"), "{stderr}");
    assert!(!d.path().join("no").exists());
}
