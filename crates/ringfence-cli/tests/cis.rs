//! End-to-end tests of `ringfence cis` on node roots built by the tests.

mod common;
use common::{json, ringfence, stderr, stdout, write};

use ringfence_cis::testkit;
use std::path::Path;
use std::process::Output;

fn scan(root: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["cis", "scan", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    ringfence(&args)
}

macro_rules! need_root {
    () => {
        if !ringfence_testkit::require!(ringfence_testkit::Need::Root) {
            return;
        }
    };
}

const TKG_SEVEN: [&str; 7] = [
    "1.1.12", "1.2.6", "1.2.16", "1.2.21", "1.3.2", "1.4.1", "4.2.6",
];

#[test]
fn tkg_control_plane_with_the_tkg_profile_reports_the_seven_as_expected_and_exits_0() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let o = scan(dir.path(), &["--profile", "tkg-1.5", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&stdout(&o));
    assert_eq!(v["benchmark"], "cis-1.6");
    assert_eq!(v["profile"], "tkg-1.5");
    let expected: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .inspect(|c| assert_eq!(c["expected"], true, "{c}"))
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(expected, TKG_SEVEN.to_vec());
    assert_eq!(v["summary"]["expected_fail"], 7);
    assert_eq!(v["summary"]["unexpected_fail"], 0);
}

#[test]
fn without_the_profile_the_same_node_exits_1() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let o = scan(dir.path(), &["--benchmark", "cis-1.6"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o)
        .contains("unexpected failures: 1.1.12, 1.2.6, 1.2.16, 1.2.21, 1.3.2, 1.4.1, 4.2.6"));
}

#[test]
fn a_node_that_breaks_one_more_check_exits_1_and_names_it() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    // Re-enable anonymous kubelet access in the config file (check 4.2.1).
    let cfg = testkit::KUBELET_CONFIG.replace("enabled: false", "enabled: true");
    n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
    let o = scan(dir.path(), &["--profile", "tkg-1.5"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("unexpected failures: 4.2.1\n"), "{out}");
    assert!(
        out.contains("FAIL     4.2.1 Ensure that the anonymous-auth argument is set to false"),
        "{out}"
    );
    assert!(
        out.contains("from: config /var/lib/kubelet/config.yaml"),
        "{out}"
    );
}

fn redact(s: &str, root: &Path) -> String {
    s.replace(root.to_str().unwrap(), "[ROOT]")
}

#[test]
fn text_markdown_and_json_outputs_match_their_snapshots() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    n.chmod("/etc/kubernetes/pki/apiserver.key", 0o640);
    let args = [
        "--profile",
        "tkg-1.5",
        "--check",
        "1.1.12,1.1.21,1.2.6,1.2.21,1.2.34,4.2,5.1.1",
    ];
    let text = scan(dir.path(), &args);
    assert_eq!(text.status.code(), Some(0));
    insta::assert_snapshot!("cis_text", redact(&stdout(&text), dir.path()));
    let mut md_args = args.to_vec();
    md_args.extend(["--format", "markdown"]);
    insta::assert_snapshot!(
        "cis_markdown",
        redact(&stdout(&scan(dir.path(), &md_args)), dir.path())
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    insta::assert_snapshot!(
        "cis_json",
        redact(&stdout(&scan(dir.path(), &json_args)), dir.path())
    );
}

#[test]
fn junit_and_sarif_reports_are_well_formed() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    n.chmod("/etc/kubernetes/admin.conf", 0o644 | 0o022);
    let reports = tempfile::tempdir().unwrap();
    let out = reports.path().join("report.xml");
    let o = scan(
        dir.path(),
        &[
            "--profile",
            "tkg-1.5",
            "--format",
            "junit",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(
        xml.contains("<testsuites name=\"ringfence cis cis-1.6\" tests=\"122\" failures=\"1\""),
        "{}",
        &xml[..300]
    );
    assert!(xml.contains("1.1.13 Ensure that the admin.conf file permissions"));
    let o = scan(dir.path(), &["--profile", "tkg-1.5", "--format", "sarif"]);
    let v = json(&stdout(&o));
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    let errors: Vec<&serde_json::Value> =
        results.iter().filter(|r| r["level"] == "error").collect();
    assert_eq!(errors.len(), 8);
    let unsuppressed: Vec<&str> = errors
        .iter()
        .filter(|r| r.get("suppressions").is_none())
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(unsuppressed, vec!["1.1.13"]);
    assert_eq!(
        v["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        122
    );
}

#[test]
fn an_expired_waiver_fails_the_scan() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let waivers = write(
        dir.path(),
        "waivers.yaml",
        "waivers:\n  - id: \"1.2.6\"\n    reason: kubelet serving certs not yet CA-signed\n    owner: platform\n    expires: 2026-03-01\n",
    );
    let w = waivers.to_str().unwrap();
    let scan_on = |today: &str| {
        scan(
            dir.path(),
            &[
                "--benchmark",
                "cis-1.6",
                "--check",
                "1.2.6",
                "--waivers",
                w,
                "--today",
                today,
            ],
        )
    };
    let o = scan_on("2026-02-01");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("WAIVED   1.2.6"));
    let o = scan_on("2026-03-02");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("waiver (platform, EXPIRED 2026-03-01)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_input_exits_2_with_a_precise_message() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--targets", "mastr"], "did you mean master?"),
        (vec!["--profile", "tkg-15"], "did you mean tkg-1.5?"),
        (
            vec!["--benchmark", "cis-1.70"],
            "unknown benchmark \"cis-1.70\"",
        ),
        (vec!["--check", "1.2.666"], "has no check \"1.2.666\""),
        (
            vec!["--profile", "tkg-1.5", "--benchmark", "cis-1.10"],
            "profile tkg-1.5 pins cis-1.6",
        ),
        (
            vec!["--k8s-version", "latest"],
            "\"latest\" is not a Kubernetes version",
        ),
    ];
    for (args, want) in cases {
        let o = scan(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let waivers = write(
        dir.path(),
        "w.yaml",
        "waivers:\n  - id: \"1.2.6\"\n    reason: r\n    owner: o\n    expires: soon\n",
    );
    let o = scan(
        dir.path(),
        &[
            "--benchmark",
            "cis-1.6",
            "--waivers",
            waivers.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("w.yaml:5:14: expires \"soon\" is not a date"),
        "{}",
        stderr(&o)
    );
    let empty = tempfile::tempdir().unwrap();
    let o = scan(empty.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no Kubernetes component found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_shows_all_122_checks_and_explain_shows_the_tkg_reason() {
    let o = ringfence(&["cis", "list", "--benchmark", "cis-1.6"]);
    assert_eq!(o.status.code(), Some(0));
    let n = stdout(&o).lines().filter(|l| l.starts_with("    ")).count();
    assert_eq!(n, 122);
    let o = ringfence(&["cis", "explain", "1.2.6", "--benchmark", "cis-1.6"]);
    let out = stdout(&o);
    assert!(
        out.contains("passes when: --kubelet-certificate-authority is set"),
        "{out}"
    );
    assert!(out.contains("expected failure in tkg-1.5"), "{out}");
    let o = ringfence(&["cis", "explain", "1.2.600", "--benchmark", "cis-1.6"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_and_explain_without_a_benchmark_exit_2_naming_every_built_in_one() {
    for args in [&["cis", "list"][..], &["cis", "explain", "1.2.6"][..]] {
        let o = ringfence(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?} printed a listing anyway");
        assert!(
            err.contains(&format!("cis {} needs --benchmark NAME", args[1])),
            "{err}"
        );
        assert!(err.contains("--benchmark cis-1.12 (the newest"), "{err}");
        for name in ringfence_cis::benchmark::Benchmark::embedded_names() {
            assert!(err.contains(name), "{name} not named: {err}");
        }
    }
}

#[test]
fn explain_reads_the_benchmark_it_is_given() {
    let old = stdout(&ringfence(&[
        "cis",
        "explain",
        "1.2.6",
        "--benchmark",
        "cis-1.6",
    ]));
    let new = stdout(&ringfence(&[
        "cis",
        "explain",
        "1.1.1",
        "--benchmark",
        "cis-1.12",
    ]));
    assert!(old.contains("benchmark: cis-1.6 "), "{old}");
    assert!(new.contains("benchmark: cis-1.12 "), "{new}");
}

#[test]
fn a_profile_file_marks_only_its_own_checks_as_expected() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let profile = write(
        dir.path(),
        "mine.yaml",
        "profile: mine\ntitle: t\nbenchmark: cis-1.6\nexpected_failures:\n  - id: \"1.2.6\"\n    explanation: e\n    remediation: r\n",
    );
    let o = scan(
        dir.path(),
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--targets",
            "master",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&stdout(&o));
    assert_eq!(v["profile"], "mine");
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["target"] == "master"));
    let unexpected: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "fail" && c["expected"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        unexpected,
        vec!["1.1.12", "1.2.16", "1.2.21", "1.3.2", "1.4.1"]
    );
    assert_eq!(v["summary"]["expected_fail"], 1);
}

#[test]
fn the_report_is_never_written_under_the_scanned_root() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let inside = dir.path().join("etc/report.json");
    let o = scan(
        dir.path(),
        &["--format", "json", "--out", inside.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("inside the scanned root"),
        "{}",
        stderr(&o)
    );
    assert!(!inside.exists());
}

#[test]
fn the_kubernetes_version_picks_the_benchmark_when_no_profile_pins_one() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let o = scan(dir.path(), &["--k8s-version", "1.28.3", "--format", "json"]);
    let v = json(&stdout(&o));
    assert_eq!(v["benchmark"], "cis-1.10");
    assert_eq!(v["node"]["kubernetes_version"], "1.28.3");
    // From the manifests' image tag (1.22.5): cis-1.23, as kube-bench picks.
    let o = scan(dir.path(), &["--format", "json"]);
    let v = json(&stdout(&o));
    assert_eq!(v["benchmark"], "cis-1.23");
    assert_eq!(v["benchmark_reason"], "Kubernetes v1.22.5 from the kube-apiserver image tag in /etc/kubernetes/manifests/kube-apiserver.yaml; kube-bench maps 1.22 to cis-1.23");
    // Older than any built-in benchmark: exit 2, naming the nearest.
    let o = scan(dir.path(), &["--k8s-version", "1.15.3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nearest built-in benchmark is cis-1.6"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn not_assessed_checks_show_their_evidence_and_fail_the_run_only_with_fail_on() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    n.remove("/etc/kubernetes/admin.conf");
    let args = ["--profile", "tkg-1.5", "--check", "1.1.13,1.1.14"];
    let o = scan(dir.path(), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("NOT-ASSESSED 1.1.13 ")
            && text
                .contains("why: no admin kubeconfig found (looked at /etc/kubernetes/admin.conf)")
            && text.contains("from: file /etc/kubernetes/admin.conf: does not exist")
            && text.contains(
                "0 pass, 0 fail (0 expected, 0 unexpected), 0 warn, 0 info, 2 not assessed"
            ),
        "{text}"
    );
    let mut strict = args.to_vec();
    strict.extend(["--fail-on", "not-assessed"]);
    assert_eq!(scan(dir.path(), &strict).status.code(), Some(1));
    let mut as_json = strict.clone();
    as_json.extend(["--format", "json"]);
    let report = json(&stdout(&scan(dir.path(), &as_json)));
    assert_eq!(report["summary"]["not_assessed"], 2);
    assert_eq!(report["checks"][0]["status"], "not-assessed");
}

#[test]
fn an_expired_waiver_of_a_passing_check_fails_the_run_and_names_its_owner() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let waivers = write(
        dir.path(),
        "waivers.yaml",
        "waivers:\n  - id: \"4.2.1\"\n    reason: migration\n    owner: team-orbit\n    expires: 2026-03-31\n",
    );
    let w = waivers.to_str().unwrap();
    let args = [
        "--profile",
        "tkg-1.5",
        "--waivers",
        w,
        "--today",
        "2026-04-01",
    ];
    let o = scan(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "error: the waiver for 4.2.1 expired on 2026-03-31; its owner team-orbit must renew or remove it (migration)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_stale_profile_entry_is_reported_fixed_and_fails_the_run_only_with_fail_on_fixed() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    let cfg = format!("{}protectKernelDefaults: true\n", testkit::KUBELET_CONFIG);
    n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
    let o = scan(dir.path(), &["--profile", "tkg-1.5", "--check", "4.2.6"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("FIXED    4.2.6"), "{}", stdout(&o));
    let o = scan(
        dir.path(),
        &[
            "--profile",
            "tkg-1.5",
            "--check",
            "4.2.6",
            "--fail-on",
            "fixed",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn example_scans_the_built_in_tkg_control_plane_in_one_command() {
    let o = ringfence(&["cis", "scan", "--example", "--profile", "tkg-1.5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "cis-1.6 on tkg-cp-0 (control-plane, etcd, node), Kubernetes 1.22.5, profile tkg-1.5"
        ),
        "{text}"
    );
    assert!(
        text.contains("81 pass, 7 fail (7 expected, 0 unexpected)"),
        "{text}"
    );
    let o = ringfence(&["cis", "scan", "--example", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--profile tkg-1.5"), "{}", stderr(&o));
    let r = json(&stdout(&o));
    assert_eq!(r["node"]["root"], "(example: TKG v1.5.1 control plane)");
    let o = ringfence(&["cis", "scan", "--example", "--root", "/"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn skip_and_check_take_ids_ranges_and_sections() {
    let ids = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["cis", "scan", "--example", "--format", "json"];
        args.extend_from_slice(extra);
        let o = ringfence(&args);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
        let r = json(&stdout(&o));
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&["--check", "4.2.1-4.2.6"]),
        ["4.2.1", "4.2.2", "4.2.3", "4.2.4", "4.2.5", "4.2.6"]
    );
    assert_eq!(
        ids(&["--check", "4.2", "--skip", "4.2.2-4.2.12"]),
        ["4.2.1", "4.2.13"]
    );
    let all = ids(&["--skip", "1.2,5"]);
    assert!(all
        .iter()
        .all(|id| !id.starts_with("1.2.") && !id.starts_with("5.")));
    assert!(all.contains(&"1.1.1".to_string()) && all.contains(&"4.2.1".to_string()));
    let o = ringfence(&["cis", "scan", "--example", "--skip", "4.2.99"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--skip: cis-1.23 has no check \"4.2.99\""),
        "{}",
        stderr(&o)
    );
}
