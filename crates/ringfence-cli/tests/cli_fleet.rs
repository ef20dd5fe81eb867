//! `ringfence deploy manifests` and the fleet merge, run as a user would.

mod common;
use common::run as ringfence;

use std::path::Path;

/// The words naming the merge subcommand.
const MERGE: &[&str] = &["cis", "merge"];

/// Run the merge subcommand with these arguments.
fn merge(args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&str> = MERGE.to_vec();
    all.extend_from_slice(args);
    ringfence(&all)
}

fn node(name: &str, unexpected: bool) -> String {
    serde_json::json!({
        "benchmark": "cis-1.6", "profile": "tkg-1.5",
        "node": {"name": name, "roles": ["node"], "kubernetes_version": "1.22.9", "root": "/host"},
        "checks": [
            {"id": "4.2.6", "title": "Protect kernel defaults", "target": "node", "status": "fail", "expected": true, "waiver": null},
            {"id": "4.2.1", "title": "Anonymous auth off", "target": "node", "status": if unexpected { "fail" } else { "pass" }, "expected": false, "waiver": null}
        ],
        "summary": {"pass": 1, "fail": 1, "warn": 0, "info": 0, "expected_fail": 1, "unexpected_fail": 0}
    })
    .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn deploy_manifests_prints_one_job_per_node_after_the_namespace() {
    let (code, out, err) = ringfence(&[
        "deploy",
        "manifests",
        "--node",
        "w-1",
        "--node",
        "cp-1",
        "--namespace",
        "cis",
        "--image",
        "reg.example.com/ringfence:0.1.0",
    ]);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<serde_json::Value> = yaml_docs(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "Job", "Job"]);
    assert_eq!(docs[1]["spec"]["template"]["spec"]["nodeName"], "cp-1");
    assert_eq!(docs[2]["metadata"]["namespace"], "cis");
}

/// The `---`-separated documents of the generated YAML, as JSON values.
fn yaml_docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("generated YAML parses")
}

#[test]
fn deploy_manifests_writes_the_daemonset_to_out_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds.yaml");
    let (code, stdout, err) = ringfence(&[
        "deploy",
        "manifests",
        "--kind",
        "daemonset",
        "--no-namespace",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("---\napiVersion: apps/v1\nkind: DaemonSet\n"),
        "{text}"
    );
}

#[test]
fn deploy_manifests_refuses_a_node_for_a_daemonset_and_a_bad_namespace() {
    let (code, _, err) = ringfence(&["deploy", "manifests", "--kind", "daemonset", "--node", "n1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--node applies to --kind job only"), "{err}");
    let (code, _, err) = ringfence(&["deploy", "manifests", "--namespace", "Bad_NS"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("namespace \"Bad_NS\" is not a valid Kubernetes name"),
        "{err}"
    );
}

#[test]
fn merge_of_clean_nodes_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &node("n1", false));
    let b = write(dir.path(), "b.json", &node("n2", false));
    let (code, out, err) = merge(&[&a, &b]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 nodes merged from 2 files"), "{out}");
    assert!(out.contains("No node fails a check unexpectedly."), "{out}");
}

#[test]
fn merge_reports_bad_and_mismatched_files_at_the_end_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(
            dir.path(),
            &format!("n{i}.json"),
            &node(&format!("n{i}"), i == 3),
        );
    }
    write(
        dir.path(),
        "broken.json",
        "{\"benchmark\": \"cis-1.6\",\n \"node\": }",
    );
    let other = node("odd", false).replace("cis-1.6", "cis-1.10");
    write(dir.path(), "other.json", &other);
    let (code, out, err) = merge(&["--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["nodes"], 20);
    assert_eq!(v["summary"]["files_rejected"], 2);
    let c421 = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "4.2.1")
        .unwrap();
    assert_eq!(c421["unexpected_fail"], 1);
    assert_eq!(c421["unexpected_nodes"], serde_json::json!(["n3"]));
    assert!(err.contains("2 of 22 files were left out"), "{err}");
    assert!(err.contains("broken.json:2:10: not valid JSON"), "{err}");
    assert!(
        err.contains("other.json#/benchmark: benchmark \"cis-1.10\""),
        "{err}"
    );
}

#[test]
fn merge_exits_2_when_nothing_could_be_merged() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.json", "{\"benchmark\": \"cis-1.6\",");
    let (code, out, err) = merge(&[&bad]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("bad.json:1:24: not valid JSON: EOF"), "{err}");
    let (code, _, err) = merge(&[dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json: cannot read"), "{err}");
}

#[test]
fn merge_reports_a_missing_file_at_the_end_and_merges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &node("n1", false));
    let missing = dir.path().join("gone.json");
    let (code, out, err) = merge(&[&a, missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("1 node merged from 2 files"), "{out}");
    assert!(err.contains("gone.json: cannot read"), "{err}");
}

#[test]
fn merge_writes_html_to_out() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json", &node("n1", true));
    let out = dir.path().join("fleet.html");
    let (code, _, err) = merge(&["--format", "html", "--out", out.to_str().unwrap(), &a]);
    assert_eq!(code, 1, "{err}");
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.contains("<th scope=\"row\">n1</th>"));
}
