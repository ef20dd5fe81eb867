//! `verify --format sarif` and `diff --format sarif`: pinned output, the
//! SARIF 2.1.0 fields consumers require, and stable `partialFingerprints`.

mod common;
use common::{json as parse, write};

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../../examples/ruleset.rules");
const SITE: &str = include_str!("../../../examples/site.yaml");

/// Write the example site and `rulesets` into a fresh directory and run
/// ringfence there, so paths in the output are the short relative names.
fn run_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = common::run_in(dir, args);
    assert!(err.is_empty(), "stderr: {err}");
    (code, out)
}

/// `verify --site site.yaml --ruleset <ruleset> --format sarif` in `dir`.
fn verify_sarif(dir: &Path, ruleset: &str) -> (i32, String) {
    run_in(
        dir,
        &[
            "verify",
            "--site",
            "site.yaml",
            "--ruleset",
            ruleset,
            "--format",
            "sarif",
        ],
    )
}

fn workdir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "site.yaml", SITE);
    for (name, text) in files {
        write(d.path(), name, text);
    }
    d
}

/// The example with the extra Harbor port moved from 8080 to 8081 and
/// vCenter opened: one excess region replaced by another, one flow fixed.
fn changed_example() -> String {
    EXAMPLE
        .replace("--dport 8080 -j ACCEPT", "--dport 8081 -j ACCEPT")
        .replace(
            "-A INFRA -j RETURN",
            "-A INFRA -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A INFRA -j RETURN",
        )
}

fn without_version(out: &str) -> String {
    out.replace(
        &format!("\"version\": \"{}\"", env!("CARGO_PKG_VERSION")),
        "\"version\": \"[tool version]\"",
    )
}

/// Check what SARIF 2.1.0 requires of the parts ringfence writes, and what
/// ringfence promises on top (fingerprint on every result).
fn check_shape(doc: &Value) {
    // The typed model of serde-sarif reads it back (required fields present, types right).
    let _: serde_sarif::sarif::Sarif =
        serde_json::from_value(doc.clone()).expect("reads as SARIF 2.1.0");
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = doc["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "ringfence");
    let rules = driver["rules"].as_array().expect("driver.rules");
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for r in runs[0]["results"].as_array().expect("results is an array") {
        let text = r["message"]["text"].as_str().expect("message.text");
        assert!(!text.is_empty());
        let id = r["ruleId"].as_str().expect("ruleId");
        let index = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(ids[index], id, "ruleIndex points at ruleId");
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let fp = r["partialFingerprints"]["ringfenceFinding/v1"]
            .as_str()
            .expect("partialFingerprints[ringfenceFinding/v1]");
        assert!(fp.len() == 32 && fp.bytes().all(|b| b.is_ascii_hexdigit()));
        if let Some(b) = r.get("baselineState") {
            assert!(["new", "unchanged", "updated", "absent"].contains(&b.as_str().unwrap()));
        }
        let locs = r["locations"].as_array().expect("locations");
        assert!(!locs.is_empty());
        for l in locs {
            if let Some(p) = l.get("physicalLocation") {
                assert!(p["artifactLocation"]["uri"].is_string());
                assert!(p["region"]["startLine"].as_u64().unwrap() >= 1);
            } else {
                assert!(l["logicalLocations"][0]["fullyQualifiedName"].is_string());
            }
        }
    }
}

fn fingerprints(doc: &Value) -> BTreeSet<String> {
    doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["partialFingerprints"]["ringfenceFinding/v1"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn verify_sarif_is_pinned_and_well_formed() {
    let d = workdir(&[("ruleset.rules", EXAMPLE)]);
    let (code, out) = verify_sarif(d.path(), "ruleset.rules");
    assert_eq!(code, 1, "the example has findings");
    check_shape(&parse(&out));
    insta::assert_snapshot!(without_version(&out));
}

#[test]
fn verify_sarif_fingerprints_survive_renumbering() {
    let d = workdir(&[
        ("ruleset.rules", EXAMPLE),
        ("shifted.rules", &format!("# a\n# b\n{EXAMPLE}")),
    ]);
    let sarif = |f: &str| parse(&verify_sarif(d.path(), f).1);
    let (a, b) = (sarif("ruleset.rules"), sarif("shifted.rules"));
    // Every location line moved by two ...
    assert_ne!(a["runs"][0]["results"], b["runs"][0]["results"]);
    // ... and no fingerprint did.
    assert_eq!(fingerprints(&a), fingerprints(&b));
}

#[test]
fn diff_sarif_marks_new_fixed_and_unchanged_findings() {
    let d = workdir(&[("old.rules", EXAMPLE), ("new.rules", &changed_example())]);
    let (code, out) = run_in(
        d.path(),
        &[
            "diff",
            "old.rules",
            "new.rules",
            "--site",
            "site.yaml",
            "--format",
            "sarif",
        ],
    );
    assert_eq!(code, 1, "the rulesets differ");
    let doc = parse(&out);
    check_shape(&doc);
    let results = doc["runs"][0]["results"].as_array().unwrap();
    let with = |state: &str, id: &str, needle: &str| {
        results.iter().any(|r| {
            r["baselineState"] == state
                && r["ruleId"] == id
                && r["message"]["text"].as_str().unwrap().contains(needle)
        })
    };
    assert!(with("new", "newly-allowed", "port 8081"));
    assert!(with("absent", "newly-blocked", "port 8080"));
    assert!(with("new", "excess", "port 8081"));
    assert!(with("absent", "excess", "port 8080"));
    assert!(
        with("absent", "flow-blocked", "to-vcenter"),
        "the fixed flow is absent"
    );
    assert!(with("unchanged", "flow-partial", "avi-nodeport"));
    assert!(with("unchanged", "shadowed-rule", ""));
    // Unchanged findings carry the fingerprint verify gives them. (`diff`
    // reads both families, so it also has the IPv6-not-covered findings an
    // IPv4-only site spares `verify`.)
    let (_, v) = verify_sarif(d.path(), "new.rules");
    let verify_prints = fingerprints(&parse(&v));
    let ipv6 = |r: &Value| r.to_string().contains("IPv6");
    for r in results
        .iter()
        .filter(|r| r["baselineState"] == "unchanged" && !ipv6(r))
    {
        let fp = r["partialFingerprints"]["ringfenceFinding/v1"]
            .as_str()
            .unwrap();
        assert!(verify_prints.contains(fp), "{r}");
    }
    insta::assert_snapshot!(without_version(&out));
}

#[test]
fn diff_sarif_without_a_site_reports_the_regions_only() {
    let d = workdir(&[("old.rules", EXAMPLE), ("new.rules", &changed_example())]);
    let (_, out) = run_in(
        d.path(),
        &["diff", "old.rules", "new.rules", "--format", "sarif"],
    );
    let doc = parse(&out);
    check_shape(&doc);
    let ids: BTreeSet<&str> = doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["newly-allowed", "newly-blocked"]));
}
