//! `ringfence cis scan --root` on hostile node roots, end to end: a FIFO as
//! a process's command line and as the kubelet's config, files the scanner
//! may not read, and `--proc` for both our benchmarks and kube-bench
//! definitions. Every run has a deadline, so a scan that blocks fails its
//! test instead of hanging the suite.

mod common;
use common::kube_bench_cfg;

use ringfence_cis::testkit::{self, KubeletStyle};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run ringfence (as `uid` when given) and kill it after 5 s; returns exit
/// code, stdout, stderr and how long it ran.
fn run_with_deadline(args: &[&str], uid: Option<u32>) -> (Option<i32>, String, String, Duration) {
    let out = tempfile::tempdir().unwrap();
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ringfence {args:?} still running after 5 s: it blocked");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code(),
        std::fs::read_to_string(o).unwrap(),
        std::fs::read_to_string(e).unwrap(),
        start.elapsed(),
    )
}

fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn fifos_in_root_proc_and_as_the_kubelet_config_end_in_notes_and_not_assessed_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    testkit::worker(root, KubeletStyle::ConfigOnly);
    mkfifo(&root.join("proc/1/cmdline"));
    mkfifo(&root.join("var/lib/kubelet/config.yaml"));
    let (code, out, err, took) = run_with_deadline(
        &[
            "cis",
            "scan",
            "--root",
            root.to_str().unwrap(),
            "--benchmark",
            "cis-1.6",
            "--format",
            "json",
        ],
        None,
    );
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {err}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        err.contains("note: process skipped: /proc/1/cmdline: not a regular file"),
        "{err}"
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check(&r, "4.2.1")["status"], "not-assessed");
    // Strict pipelines fail on it.
    let (code, ..) = run_with_deadline(
        &[
            "cis",
            "scan",
            "--root",
            root.to_str().unwrap(),
            "--benchmark",
            "cis-1.6",
            "--fail-on",
            "not-assessed",
        ],
        None,
    );
    assert_eq!(code, Some(1));
}

#[test]
fn a_kubelet_config_the_scanner_may_not_read_is_not_assessed_rather_than_passed() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    testkit::worker(&root, KubeletStyle::ConfigOnly);
    let cfg = root.join("var/lib/kubelet/config.yaml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file whatever its mode: run the scan as nobody, in a
    // tree nobody may traverse.
    let uid = testkit::is_root().then_some(65534);
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err, _) = run_with_deadline(
        &[
            "cis",
            "scan",
            "--root",
            root.to_str().unwrap(),
            "--benchmark",
            "cis-1.6",
            "--check",
            "4.2",
            "--format",
            "json",
        ],
        uid,
    );
    assert!(matches!(code, Some(0 | 1)), "{code:?}: {err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    for id in ["4.2.1", "4.2.4", "4.2.6"] {
        assert_eq!(check(&r, id)["status"], "not-assessed", "{id}: {out}");
    }
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn proc_dir_is_the_process_table_of_kube_bench_definitions_too() {
    if !ringfence_testkit::require!(ringfence_testkit::Need::Root) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    testkit::worker(&root, KubeletStyle::ConfigOnly);
    // The node's own kubelet config turns anonymous auth off; the process
    // table --proc names shows a kubelet that turns it on.
    let procdir = dir.path().join("proc");
    let argv = b"/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0--anonymous-auth=true\0";
    write(&procdir.join("4711/cmdline"), argv);
    write(&procdir.join("4711/comm"), b"kubelet\n");
    let cfg = kube_bench_cfg();
    let scan = |with_proc: bool| {
        let mut args = vec![
            "cis",
            "scan",
            "--root",
            root.to_str().unwrap(),
            "--kube-bench-cfg",
            cfg.to_str().unwrap(),
            "--benchmark",
            "cis-1.6",
            "--check",
            "4.2.1",
            "--format",
            "json",
        ];
        if with_proc {
            args.extend(["--proc", procdir.to_str().unwrap()]);
        }
        let (code, out, err, _) = run_with_deadline(&args, None);
        assert!(matches!(code, Some(0 | 1)), "{code:?}: {err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        check(&r, "4.2.1")["status"].as_str().unwrap().to_string()
    };
    assert_eq!(scan(false), "pass");
    assert_eq!(scan(true), "fail");
}
