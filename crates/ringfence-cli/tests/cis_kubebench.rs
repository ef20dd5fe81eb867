//! End-to-end tests of `ringfence cis scan --kube-bench-cfg`.

mod common;
use common::{kube_bench_cfg, ringfence, stderr};

use ringfence_cis::testkit;
use ringfence_testkit::Need;

/// Through the repository's kube-bench-format cis-1.6 (`kube_bench_cfg`).
#[test]
fn kube_bench_cis_1_6_on_the_tkg_node_with_profile_and_waivers() {
    // Root sets the node root's file ownership (root:root, etcd:etcd).
    if !ringfence_testkit::require!(Need::Root) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The linked layout (manifest and kubelet config behind symlinks).
    testkit::tkg_control_plane_linked(dir.path());
    let cfg = kube_bench_cfg();
    let base = [
        "cis",
        "scan",
        "--root",
        dir.path().to_str().unwrap(),
        "--kube-bench-cfg",
        cfg.to_str().unwrap(),
        "--benchmark",
        "cis-1.6",
        "--profile",
        "tkg-1.5",
        "--today",
        "2026-01-01",
    ];
    let mut args = base.to_vec();
    args.extend(["--format", "json"]);
    let o = ringfence(&args);
    // kube-bench's stat does not follow symlinks: the symlinked API server
    // manifest (1.1.1) and kubelet config (4.1.9) fail beyond TKG's seven.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unexpected: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" && c["expected"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(unexpected, ["1.1.1", "4.1.9"]);
    assert_eq!(v["summary"]["expected_fail"], 7);
    assert!(
        v["checks"][0]["evidence"]["source"] == "native",
        "{}",
        v["checks"][0]
    );

    let waivers = dir.path().join("waivers.yaml");
    std::fs::write(
        &waivers,
        "waivers:\n- id: 1.1.1\n  reason: symlinked manifest, target is 600\n  owner: platform\n  expires: 2026-06-30\n- id: 4.1.9\n  reason: symlinked config, target is 644\n  owner: platform\n  expires: 2026-06-30\n",
    )
    .unwrap();
    let mut args = base.to_vec();
    args.extend([
        "--waivers",
        waivers.to_str().unwrap(),
        "--format",
        "kube-bench-json",
    ]);
    let o = ringfence(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let kb: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let controls = kb["Controls"].as_array().unwrap();
    assert_eq!(controls[0]["node_type"], "master");
    assert_eq!(controls[0]["version"], "cis-1.6");
    let first = &controls[0]["tests"][0]["results"][0];
    for key in [
        "test_number",
        "test_desc",
        "audit",
        "type",
        "remediation",
        "test_info",
        "status",
        "actual_value",
        "scored",
        "expected_result",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert_eq!(first["test_number"], "1.1.1");
    assert_eq!(first["status"], "FAIL");
    assert_eq!(first["waiver"]["owner"], "platform");
    let sum = |k: &str| controls.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        kb["Totals"]["total_fail"].as_u64().unwrap(),
        sum("total_fail")
    );
    assert_eq!(
        kb["Totals"]["total_pass"].as_u64().unwrap(),
        sum("total_pass")
    );
    assert!(sum("total_pass") > 50);
}

#[test]
fn an_audit_that_is_not_an_idiom_needs_allow_exec_and_then_runs() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.yaml"), "node:\n  components: []\n").unwrap();
    std::fs::create_dir_all(d.path().join("mine")).unwrap();
    std::fs::write(
        d.path().join("mine/node.yaml"),
        "controls:\nid: 4\ntext: mine\ntype: node\ngroups:\n- id: 4.1\n  text: g\n  checks:\n  - id: 4.1.1\n    text: echo\n    audit: \"echo --answer=42\"\n    tests:\n      test_items:\n      - flag: --answer\n        compare:\n          op: eq\n          value: 42\n    scored: true\n",
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    testkit::worker(root.path(), testkit::KubeletStyle::FlagsOnly);
    let base = [
        "cis",
        "scan",
        "--root",
        root.path().to_str().unwrap(),
        "--kube-bench-cfg",
        d.path().to_str().unwrap(),
        "--benchmark",
        "mine",
        "--format",
        "kube-bench-json",
    ];
    let o = ringfence(&base);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("--allow-exec") && e.contains("4.1.1: echo --answer=42"),
        "{e}"
    );

    // With --root, the shell runs inside chroot ROOT: refused when it has no shell.
    let mut args = base.to_vec();
    args.push("--allow-exec");
    let o = ringfence(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no /bin/sh"), "{}", stderr(&o));
}

#[test]
fn allow_exec_and_kube_bench_json_need_kube_bench_definitions() {
    let o = ringfence(&["cis", "scan", "--allow-exec"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--kube-bench-cfg"), "{}", stderr(&o));
    let o = ringfence(&["cis", "scan", "--format", "kube-bench-json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--kube-bench-cfg"), "{}", stderr(&o));
}
