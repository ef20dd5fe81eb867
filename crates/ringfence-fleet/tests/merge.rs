//! Merging node results: counts over many generated nodes, bad files left out
//! and reported while the rest merge, and the rendered formats (snapshots).

use ringfence_fleet::merge::{collect_inputs, merge_files, merge_sources, FLEET_SCHEMA};
use ringfence_fleet::render::{render, FleetFormat};
use serde_json::json;

/// The seven checks TKG 1.5 is expected to fail, plus some it passes.
const EXPECTED: [&str; 7] = [
    "1.1.12", "1.2.6", "1.2.16", "1.2.21", "1.3.2", "1.4.1", "4.2.6",
];
const PASSING: [&str; 6] = ["1.1.1", "1.2.9", "1.2.10", "4.1.1", "4.2.1", "5.1.1"];

/// A node result in the scanner's documented shape (issue 6), with every
/// field the scanner writes, so the merge is tested on realistic input.
fn node_result(
    name: &str,
    benchmark: &str,
    unexpected: &[&str],
    warn: &[&str],
) -> serde_json::Value {
    let mut checks = Vec::new();
    for id in EXPECTED.iter().chain(PASSING.iter()) {
        let expected = EXPECTED.contains(id);
        let status = if expected || unexpected.contains(id) {
            "fail"
        } else if warn.contains(id) {
            "warn"
        } else {
            "pass"
        };
        checks.push(json!({
            "id": id,
            "title": format!("Recommendation {id}"),
            "target": if id.starts_with('4') { "node" } else { "master" },
            "status": status,
            "expected": expected,
            "waiver": null,
            "actual": "--profiling=true",
            "expected_value": "--profiling=false",
            "evidence": {"source": "manifest", "path": "/host/etc/kubernetes/manifests/kube-apiserver.yaml"},
            "remediation": "Set the flag."
        }));
    }
    json!({
        "benchmark": benchmark,
        "profile": "tkg-1.5",
        "node": {"name": name, "roles": ["master", "etcd"], "kubernetes_version": "1.22.9", "root": "/host"},
        "checks": checks,
        "summary": {"pass": 0, "fail": 0, "warn": 0, "info": 0, "expected_fail": 7, "unexpected_fail": 0}
    })
}

#[test]
fn five_hundred_nodes_merge_with_exact_counts_while_bad_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let n = 500;
    for i in 0..n {
        // Every 50th node fails 1.2.9 unexpectedly; every 7th warns on 5.1.1.
        let unexpected: &[&str] = if i % 50 == 0 { &["1.2.9"] } else { &[] };
        let warn: &[&str] = if i % 7 == 0 { &["5.1.1"] } else { &[] };
        let doc = node_result(&format!("node-{i}"), "cis-1.6", unexpected, warn);
        std::fs::write(
            dir.path().join(format!("node-{i}.json")),
            serde_json::to_vec_pretty(&doc).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("zz-broken.json"),
        "{\n  \"benchmark\": \"cis-1.6\",\n  \"node\": {\"name\": \"x\"\n",
    )
    .unwrap();
    let other = node_result("node-odd", "cis-1.10", &[], &[]);
    std::fs::write(
        dir.path().join("zz-other.json"),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a result").unwrap();

    let inputs = collect_inputs(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        inputs.len(),
        n + 2,
        "directories expand to their *.json files only"
    );
    for threads in [1, 4] {
        let r = merge_files(&inputs, threads);
        assert_eq!(r.summary.nodes, n);
        assert_eq!(r.summary.files, n + 2);
        assert_eq!(r.summary.files_rejected, 2);
        assert_eq!(r.benchmark.as_deref(), Some("cis-1.6"));
        let row = |id: &str| r.checks.iter().find(|c| c.id == id).unwrap();
        for id in EXPECTED {
            assert_eq!(
                (row(id).expected_fail, row(id).unexpected_fail, row(id).pass),
                (n, 0, 0),
                "{id}"
            );
        }
        assert_eq!(row("1.2.9").unexpected_fail, 10);
        assert_eq!(row("1.2.9").pass, n - 10);
        assert_eq!(
            row("1.2.9").unexpected_nodes[..3],
            ["node-0", "node-50", "node-100"]
        );
        assert_eq!(row("5.1.1").warn, n.div_ceil(7));
        assert_eq!(r.summary.nodes_with_unexpected_fail, 10);
        assert_eq!(r.summary.expected_fail, 7 * n);
        // Nodes in natural order, checks in natural order.
        assert_eq!(
            r.nodes[..3]
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>(),
            ["node-0", "node-1", "node-2"]
        );
        assert_eq!(r.nodes[10].name, "node-10");
        let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
        let i9 = ids.iter().position(|x| *x == "1.2.9").unwrap();
        let i10 = ids.iter().position(|x| *x == "1.2.10").unwrap();
        assert!(i9 < i10, "1.2.9 sorts before 1.2.10: {ids:?}");
        // Problems, in input order, located.
        assert_eq!(r.problems.len(), 2);
        assert!(
            r.problems[0].position.ends_with("zz-broken.json:4:1"),
            "{:?}",
            r.problems[0]
        );
        assert!(
            r.problems[1].position.ends_with("zz-other.json#/benchmark"),
            "{:?}",
            r.problems[1]
        );
        assert!(r.problems[1].message.contains("cis-1.10"));
        assert_eq!(r.exit_code(), 1);
    }
}

#[test]
fn merging_in_parallel_gives_the_same_report_as_sequentially() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..97 {
        let unexpected: &[&str] = if i % 3 == 0 { &["4.2.1", "1.1.1"] } else { &[] };
        let doc = node_result(&format!("w{i}"), "cis-1.6", unexpected, &[]);
        std::fs::write(
            dir.path().join(format!("{i}.json")),
            serde_json::to_vec(&doc).unwrap(),
        )
        .unwrap();
    }
    let inputs = collect_inputs(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(merge_files(&inputs, 1), merge_files(&inputs, 3));
}

/// A node result from a scanner that knows `not-assessed`, `fixed` and
/// expired waivers: 4.2.1 cannot be assessed, 1.2.6 (a profile entry) now
/// passes, 1.2.9 fails under a live waiver, and a waiver for 1.2.10 expired.
fn newer_node_result(name: &str) -> serde_json::Value {
    let mut doc = node_result(name, "cis-1.6", &[], &[]);
    for c in doc["checks"].as_array_mut().unwrap() {
        c["fixed"] = json!(false);
        match c["id"].as_str().unwrap() {
            "4.2.1" => {
                c["status"] = json!("not-assessed");
                c["actual"] = json!(null);
            }
            "1.2.6" => {
                c["status"] = json!("pass");
                c["expected"] = json!(false);
                c["fixed"] = json!(true);
            }
            "1.2.9" => {
                c["status"] = json!("fail");
                c["waiver"] = json!({"reason": "rollout pending", "owner": "platform-team",
                    "expires": "2099-12-31", "expired": false});
            }
            _ => {}
        }
    }
    doc["expired_waivers"] = json!([{"id": "1.2.10", "owner": "net-team",
        "expires": "2026-01-31", "reason": "CNI migration"}]);
    doc
}

#[test]
fn not_assessed_and_fixed_checks_merge_and_are_counted_per_check_and_node() {
    let src =
        |name: &str, doc: serde_json::Value| (name.to_string(), serde_json::to_vec(&doc).unwrap());
    let r = merge_sources(&[
        src("a.json", newer_node_result("worker-4")),
        src("b.json", node_result("worker-5", "cis-1.6", &[], &[])),
    ]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let check = |id: &str| r.checks.iter().find(|c| c.id == id).unwrap();
    let c = check("4.2.1");
    assert_eq!(
        (c.nodes, c.pass, c.not_assessed, c.unexpected_fail),
        (2, 1, 1, 0)
    );
    let c = check("1.2.6");
    assert_eq!((c.pass, c.fixed, c.expected_fail), (1, 1, 1));
    let c = check("1.2.9");
    assert_eq!(
        (c.pass, c.expected_fail, c.unexpected_fail),
        (1, 1, 0),
        "a live waiver covers it"
    );
    for c in &r.checks {
        assert_eq!(
            c.pass + c.expected_fail + c.unexpected_fail + c.warn + c.info + c.not_assessed,
            c.nodes,
            "{}",
            c.id
        );
    }
    let n = &r.nodes[0];
    assert_eq!(n.name, "worker-4");
    assert_eq!((n.not_assessed, n.fixed, n.unexpected_fail), (1, 1, 0));
    assert_eq!(r.summary.not_assessed, 1);
    assert_eq!(r.summary.fixed, 1);
}

#[test]
fn an_expired_waiver_fails_its_node_and_the_merge() {
    let r = merge_sources(&[(
        "a.json".to_string(),
        serde_json::to_vec(&newer_node_result("worker-4")).unwrap(),
    )]);
    assert_eq!(r.summary.unexpected_fail, 0);
    assert_eq!(r.summary.expired_waivers, 1);
    assert_eq!(r.summary.nodes_with_expired_waivers, 1);
    assert_eq!(r.summary.nodes_failing, 1);
    assert!(r.nodes[0].failing());
    assert_eq!(r.nodes[0].expired_waivers[0].owner, "net-team");
    assert_eq!(r.exit_code(), 1);
    for format in [FleetFormat::Text, FleetFormat::Markdown, FleetFormat::Html] {
        let out = render(&r, format);
        assert!(
            out.contains("1.2.10 expired on 2026-01-31, owner net-team"),
            "{format:?}: {out}"
        );
    }
}

fn small_fleet() -> ringfence_fleet::FleetReport {
    let src =
        |name: &str, doc: serde_json::Value| (name.to_string(), serde_json::to_vec(&doc).unwrap());
    merge_sources(&[
        src(
            "results/cp-1.json",
            node_result("cp-1", "cis-1.6", &[], &[]),
        ),
        src(
            "results/worker-10.json",
            node_result("worker-10", "cis-1.6", &["4.2.1"], &["5.1.1"]),
        ),
        src(
            "results/worker-2.json",
            node_result("worker-2", "cis-1.6", &["1.2.10", "4.2.1"], &[]),
        ),
        (
            "results/truncated.json".to_string(),
            b"{\"benchmark\": \"cis-1.6\", \"checks\": [".to_vec(),
        ),
        src("results/worker-4.json", newer_node_result("worker-4")),
        src(
            "results/old.json",
            node_result("worker-3", "cis-1.10", &[], &[]),
        ),
    ])
}

#[test]
fn fleet_text_snapshot() {
    insta::assert_snapshot!(render(&small_fleet(), FleetFormat::Text));
}

#[test]
fn fleet_markdown_snapshot() {
    insta::assert_snapshot!(render(&small_fleet(), FleetFormat::Markdown));
}

#[test]
fn fleet_json_snapshot() {
    insta::assert_snapshot!(render(&small_fleet(), FleetFormat::Json));
}

#[test]
fn fleet_json_has_the_documented_top_level_keys() {
    let v: serde_json::Value =
        serde_json::from_str(&render(&small_fleet(), FleetFormat::Json)).unwrap();
    assert_eq!(v["schema"], FLEET_SCHEMA);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "schema",
        "benchmark",
        "profiles",
        "summary",
        "checks",
        "nodes",
        "problems",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(v["summary"]["nodes"], 4);
    assert_eq!(v["summary"]["files_rejected"], 2);
}

#[test]
fn html_is_one_self_contained_page() {
    let h = render(&small_fleet(), FleetFormat::Html);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("<style>") && !h.contains("<script") && !h.contains("<link"));
    assert!(h.contains("<caption>Checks across the fleet</caption>"));
    assert!(h.contains("<th scope=\"row\">worker-2</th>"));
}

#[test]
fn an_oversized_or_binary_result_file_is_a_problem_not_a_memory_spike() {
    let dir = tempfile::tempdir().unwrap();
    let good = node_result("node-a", "cis-1.6", &[], &[]);
    std::fs::write(
        dir.path().join("node-a.json"),
        serde_json::to_vec(&good).unwrap(),
    )
    .unwrap();
    // A sparse 200 MiB file: refused on its size before a byte is read.
    let big = std::fs::File::create(dir.path().join("node-b.json")).unwrap();
    big.set_len(200 << 20).unwrap();
    std::fs::write(dir.path().join("node-c.json"), b"{\"node\": \"\xff\xfe\"}").unwrap();

    let inputs = collect_inputs(&[dir.path().to_path_buf()]).unwrap();
    let r = merge_files(&inputs, 2);
    assert_eq!(r.summary.nodes, 1, "the good file still counts");
    assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    assert!(
        r.problems[0].message.contains("over the 128 MiB limit"),
        "{:?}",
        r.problems[0]
    );
    assert!(
        r.problems[1].message.contains("not UTF-8"),
        "{:?}",
        r.problems[1]
    );
    assert_eq!(r.exit_code(), 1);
}
