//! End-to-end tests of `ringfence report` and of the no-argument help,
//! including the example report opened in headless Chromium.

mod common;
use common::{repo_root as repo, ringfence, stderr, stdout};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn no_arguments_print_a_short_help_pointing_at_the_example_report() {
    let o = ringfence(&[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("ringfence report --example --out report.html"),
        "{out}"
    );
    assert!(out.contains("ringfence --help"), "{out}");
    assert!(out.lines().count() <= 8, "not short: {out}");
}

#[test]
fn example_report_in_markdown_names_every_defect_and_the_fixed_time() {
    let o = ringfence(&[
        "report",
        "--example",
        "--format",
        "markdown",
        "--time",
        "T0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = stdout(&o);
    assert!(md.contains("| ✗ blocked | to-vcenter |"), "{md}");
    assert!(md.contains("| ◐ partial | avi-nodeport |"), "{md}");
    assert!(md.contains("| tcp | 8080 |"), "{md}");
    assert!(md.contains("ringfence 0.1.0, T0"), "{md}");
}

#[test]
fn source_date_epoch_fixes_the_time() {
    let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["report", "--example", "--format", "markdown"])
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("2026-01-01 00:00:00 UTC"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn report_from_files_equals_the_example_inputs_and_writes_out_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let r = repo();
    let o = ringfence(&[
        "report",
        "--site",
        r.join("examples/site.yaml").to_str().unwrap(),
        "--ruleset",
        r.join("examples/ruleset.rules").to_str().unwrap(),
        "--cis",
        r.join("examples/cis-tkg-control-plane.json")
            .to_str()
            .unwrap(),
        "--time",
        "T0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("findings"), "{}", stderr(&o));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("data-flow=\"to-vcenter\" data-kind=\"blocked\""));
    assert!(html.contains("data-node=\"tkg-cp-0\""));
}

#[test]
fn bad_cis_and_lab_files_are_all_reported_with_locations_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"benchmark\": \"cis-1.6\",\n  \"node\": 7\n}").unwrap();
    let lab = dir.path().join("lab.json");
    std::fs::write(&lab, "[{\"kernel\": \"perhaps\"}]").unwrap();
    let missing = dir.path().join("missing.json");
    let site = repo().join("examples/site.yaml");
    let o = ringfence(&[
        "report",
        "--site",
        site.to_str().unwrap(),
        "--cis",
        bad.to_str().unwrap(),
        "--cis",
        missing.to_str().unwrap(),
        "--lab",
        lab.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.json:3:"), "{err}");
    assert!(err.contains("missing.json"), "{err}");
    assert!(err.contains("lab.json#/0/kernel"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn report_needs_a_site_or_the_example() {
    let o = ringfence(&["report"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--site FILE") && err.contains("--example"),
        "{err}"
    );
}

/// The stored example CIS result is what our scanner says about the CIS
/// crate's TKG control-plane test node with anonymous kubelet access enabled
/// (the deliberate defect). Set RINGFENCE_REGENERATE=1 to rewrite it.
#[test]
fn the_stored_example_cis_result_is_what_the_scanner_produces_today() {
    use ringfence_cis::testkit;
    if !ringfence_testkit::require!(ringfence_testkit::Need::Root) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    let cfg = testkit::KUBELET_CONFIG.replace("enabled: false", "enabled: true");
    n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
    let o = ringfence(&[
        "cis",
        "scan",
        "--root",
        dir.path().to_str().unwrap(),
        "--profile",
        "tkg-1.5",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let fresh = stdout(&o).replace(dir.path().to_str().unwrap(), "/mnt/tkg-control-plane");
    let stored_path = repo().join("examples/cis-tkg-control-plane.json");
    if std::env::var_os("RINGFENCE_REGENERATE").is_some() {
        std::fs::write(&stored_path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&stored_path).unwrap();
    assert!(
        stored == fresh,
        "examples/cis-tkg-control-plane.json is out of date with the scanner; \
         rerun this test with RINGFENCE_REGENERATE=1 and commit the file"
    );
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let d = target.join("test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run Chromium with the flags the issue fixes, killing it after two minutes.
/// Its output goes to files (a full pipe would stall it).
fn chromium(profile: &Path, extra: &[&str], url: &str) -> Output {
    let out_path = profile.join("stdout.txt");
    let err_path = profile.join("stderr.txt");
    let mut child = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

#[test]
fn the_example_report_renders_in_headless_chromium() {
    if !ringfence_testkit::require!(ringfence_testkit::Need::File {
        path: "/usr/bin/chromium".into(),
        install: "apt-get install chromium",
    }) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let o = ringfence(&[
        "report",
        "--example",
        "--time",
        "2026-01-01 00:00:00 UTC",
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let url = format!("file://{}", html.display());

    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &["--dump-dom"], &url);
    let dom = stdout(&dom);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom:.300}");
    // Matrix cells: the blocked vCenter cell, the partial NodePort cell, an extra cell.
    assert!(
        dom.contains("data-kind=\"blocked\" data-src=\"management\" data-dst=\"vcenter\""),
        "matrix cell missing"
    );
    assert!(dom.contains("data-kind=\"partial\" data-src=\"avi-se\" data-dst=\"workload\""));
    assert!(dom.contains("data-kind=\"excess\""));
    // Flow rows: every required flow has a row with its verdict.
    assert!(dom.contains("data-flow=\"to-vcenter\" data-kind=\"blocked\""));
    assert!(dom.contains("data-flow=\"workload-to-mgmt\" data-kind=\"ok\""));
    let rows = dom.matches("data-flow=\"").count();
    assert!(rows >= 15, "only {rows} flow rows");
    // CIS summary: the control plane node, one unexpected failure, 4.2.1.
    assert!(dom.contains("id=\"cis-summary\""));
    assert!(
        dom.contains("unexpected CIS failures on 1 of 1 node"),
        "CIS tile missing"
    );
    assert!(dom.contains("4.2.1"));

    let shot = artifacts().join("report-example.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let o = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        &url,
    );
    let png = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{}", shot.display(), stderr(&o)));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "screenshot suspiciously small");
    eprintln!("screenshot: {}", shot.display());
}
