//! `trace` on the Kubernetes-shaped fixtures (tests/data/kube,
//! docs/kube-fixtures.md): for every packet of an expectation file, the batch
//! output must give exactly the expected verdict and the expected set of
//! outcomes (verdict, path, DNAT target, masquerade or not), and exit 0.
//! The expectations themselves are proved against the kernel by
//! crates/ringfence-lab/tests/kube_kernel.rs, so a difference here is
//! `trace` being wrong. A packet the fixture marks `trace_widens` (with the
//! reason: trace lacks a fact the kernel uses) must get every kernel outcome
//! and the kernel's verdict, and may get more, never fewer.

mod common;
use common::{repo_root, run_in};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One outcome as compared: (verdict, path, dnat, snat).
type Fate = (String, String, Option<String>, Option<String>);

fn data_dir() -> PathBuf {
    repo_root().join("crates/ringfence-cli/tests/data/kube")
}

fn fate(o: &Value) -> Fate {
    let text = |k: &str| o[k].as_str().map(str::to_string);
    (
        text("verdict").unwrap_or_default(),
        text("path").unwrap_or_default(),
        text("dnat"),
        text("snat"),
    )
}

fn show(set: &BTreeSet<Fate>) -> String {
    set.iter()
        .map(|(v, p, d, s)| {
            format!(
                "{v} {p} dnat {} snat {}",
                d.as_deref().unwrap_or("-"),
                s.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Trace every packet of `file` and fail with every packet whose verdict or
/// outcome set differs from the expectation.
fn trace_matches_expectations(file: &str) {
    let dir = data_dir();
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(file)).expect("read the expectation file"),
    )
    .expect("expectation JSON");
    let cases = fx["packets"].as_array().expect("packets");
    let tmp = tempfile::tempdir().expect("temp dir");
    let lines: String = cases
        .iter()
        .map(|c| {
            let mut p = c["packet"].clone();
            p["sport"] = Value::from(40000);
            format!("{p}\n")
        })
        .collect();
    let packets = tmp.path().join("packets.jsonl");
    std::fs::write(&packets, lines).expect("write the packet lines");
    let local: Vec<&str> = fx["local"]
        .as_array()
        .expect("local")
        .iter()
        .map(|a| a.as_str().expect("address"))
        .collect();
    let local = local.join(",");
    let mut args = vec!["trace"];
    for r in fx["ruleset"].as_array().expect("ruleset") {
        args.extend(["--ruleset", r.as_str().expect("file name")]);
    }
    let packets = packets.to_str().expect("UTF-8 temp path");
    args.extend(["--local", &local, "--packets", packets, "--format", "json"]);
    let (code, out, err) = run_in(&dir, &args);
    assert_eq!(code, 0, "ringfence {args:?} exited {code}:\n{err}\n{out}");
    let got: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(got.len(), cases.len(), "one line per packet:\n{out}");
    let mut bad = Vec::new();
    for (c, g) in cases.iter().zip(&got) {
        let want: BTreeSet<Fate> = c["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .map(fate)
            .collect();
        let have: BTreeSet<Fate> = g["outcomes"]
            .as_array()
            .map(|v| v.iter().map(fate).collect())
            .unwrap_or_default();
        // A packet whose outcomes trace cannot tell apart (the fixture says
        // why) must still get every outcome the kernel gives and the same
        // verdict: sound, only wider.
        let exact = c["trace_widens"].as_str().is_none_or(str::is_empty);
        let agrees = if exact {
            want == have
        } else {
            want.is_subset(&have)
        };
        if !agrees || c["verdict"] != g["verdict"] {
            bad.push(format!(
                "{file} {}: {}\n  expected {}: {}\n  trace    {}: {}\n  trace said: {g}",
                c["name"].as_str().unwrap_or("?"),
                c["packet"],
                c["verdict"],
                show(&want),
                g["verdict"],
                show(&have),
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} packets traced differently from what the kernel does:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

#[test]
fn trace_gives_kube_proxy_endpoints_and_masquerade_as_the_kernel_does() {
    trace_matches_expectations("kube-proxy.json");
}

#[test]
fn trace_gives_calico_policy_verdicts_and_nat_as_the_kernel_does() {
    trace_matches_expectations("calico.json");
}

#[test]
fn trace_gives_antrea_gateway_verdicts_and_masquerade_as_the_kernel_does_or_wider_where_the_interface_of_a_source_address_decides(
) {
    trace_matches_expectations("antrea.json");
}
