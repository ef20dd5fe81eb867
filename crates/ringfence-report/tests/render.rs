//! The example report's content, its Markdown and HTML snapshots, escaping,
//! and the tolerant CIS and lab inputs.

use ringfence_report::{cis, example, lab, render_html, render_markdown};

const TIME: &str = "2026-01-01 00:00:00 UTC";

#[test]
fn the_example_report_finds_every_deliberate_defect() {
    let r = example::report(TIME, "0.0.0-test");
    let flow = |id: &str| r.flows.iter().find(|f| f.id == id).unwrap();
    assert_eq!(flow("to-vcenter").kind.key, "blocked");
    assert!(flow("to-vcenter")
        .example
        .as_deref()
        .unwrap()
        .contains("198.18.1.30"));
    assert_eq!(flow("avi-nodeport").kind.key, "partial");
    assert_eq!(flow("workload-to-mgmt").kind.key, "ok");
    assert!(r.excess.iter().any(|e| e.ports == "8080"), "{:?}", r.excess);
    assert_eq!(r.shadowed.len(), 1);
    assert!(r.shadowed[0]
        .rule
        .text
        .as_deref()
        .unwrap()
        .contains("10250"));
    // The deliberate redundant rule is found; so are the explicit final DROP
    // (the chain policy drops anyway) and the trailing RETURN.
    assert!(
        r.redundant
            .iter()
            .any(|x| x.rule.text.as_deref().unwrap_or("").contains("198.18.10.5")),
        "{:?}",
        r.redundant
    );
    // The matrix cell of the blocked flow says so, with a link to its drill-down.
    let row = r.rows.iter().find(|x| x.zone == "management").unwrap();
    let cell = row.cells.iter().find(|c| c.dst == "vcenter").unwrap();
    assert_eq!(cell.kind.key, "blocked");
    assert_eq!(cell.anchor.as_deref(), Some("cell--management--vcenter"));
    // Harbor's extra port shows in the cells into harbor.
    let cell = row.cells.iter().find(|c| c.dst == "harbor").unwrap();
    assert!(cell.also_excess, "{cell:?}");
    // CIS: the TKG profile's seven expected failures and the deliberate 4.2.1.
    assert_eq!(r.cis.len(), 1);
    let n = &r.cis[0];
    assert_eq!(n.counts.expected_fail, 7);
    let ids: Vec<&str> = n.unexpected.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["4.2.1"]);
    assert!(!n.unexpected[0].remediation.is_empty());
    assert!(!r.summary.all_ok);
}

#[test]
fn markdown_of_the_example_matches_its_snapshot() {
    let md = render_markdown(&example::report(TIME, "0.0.0-test")).unwrap();
    insta::assert_snapshot!("example_markdown", md);
}

#[test]
fn html_of_the_example_matches_its_snapshot() {
    let html = render_html(&example::report(TIME, "0.0.0-test")).unwrap();
    insta::assert_snapshot!("example_html", html);
}

#[test]
fn markdown_matrix_has_one_symbol_per_cell() {
    let r = example::report(TIME, "t");
    let md = render_markdown(&r).unwrap();
    let header = md
        .lines()
        .find(|l| l.starts_with("| from ↓ to →"))
        .expect("matrix header");
    let cols = header.matches('|').count() - 1;
    let rows: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| from ↓ to →"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(rows.len(), r.rows.len());
    for row in rows {
        assert_eq!(row.matches('|').count() - 1, cols, "{row}");
    }
}

const NODE_JSON: &str = r#"{
  "benchmark": "cis-1.6", "profile": null,
  "node": {"name": "<img src=x onerror=alert(1)>|*x*", "roles": ["node"], "kubernetes_version": null},
  "checks": [
    {"id": "4.2.1", "title": "anon <b>auth</b>", "status": "fail", "expected": false,
     "actual": "true", "expected_value": "false", "remediation": "Set `anonymous: enabled: false` | restart"},
    {"id": "4.2.6", "title": "kernel defaults", "status": "fail", "expected": false,
     "waiver": {"reason": "vendor fix pending", "owner": "platform", "expires": "2099-01-01", "expired": false}},
    {"id": "4.2.2", "status": "pass", "newer_field": 1}
  ],
  "summary": {}
}"#;

fn report_with(cis: Vec<cis::CisInput>, lab: Option<lab::LabInput>) -> ringfence_report::Report {
    let site = ringfence_site::example_site();
    ringfence_report::build(&ringfence_report::Inputs {
        site: &site,
        site_file: "site.yaml".into(),
        ruleset: None,
        cis,
        lab,
        generated: TIME.into(),
        version: "t".into(),
        example: false,
    })
}

#[test]
fn every_input_value_is_escaped_in_html_and_markdown() {
    let c = cis::parse_cis(NODE_JSON, "node.json").unwrap();
    let r = report_with(vec![c], None);
    let html = render_html(&r).unwrap();
    assert!(!html.contains("<img"), "raw HTML leaked");
    assert!(!html.contains("<b>auth"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let md = render_markdown(&r).unwrap();
    assert!(!md.contains("<img"));
    assert!(
        md.contains("&lt;img src=x onerror=alert(1)&gt;\\|\\*x\\*"),
        "{md}"
    );
    // A pipe inside a remediation does not split the table row.
    let line = md.lines().find(|l| l.starts_with("| 4.2.1")).unwrap();
    assert_eq!(line.matches(" | ").count(), 3, "{line}");
}

#[test]
fn a_node_result_counts_waived_failures_as_expected_and_tolerates_new_fields() {
    let c = cis::parse_cis(NODE_JSON, "node.json").unwrap();
    let r = report_with(vec![c], None);
    let n = &r.cis[0];
    assert_eq!(n.counts.unexpected_fail, 1);
    assert_eq!(n.counts.expected_fail, 1);
    assert_eq!(n.counts.pass, 1);
    assert!(n.expected[0]
        .covered_by
        .as_deref()
        .unwrap()
        .contains("waiver until 2099-01-01"));
}

#[test]
fn a_fleet_result_lists_each_node_with_its_unexpected_failures() {
    let text = include_str!("data/fleet.json");
    let c = cis::parse_cis(text, "fleet.json").unwrap();
    let r = report_with(vec![c], None);
    let names: Vec<&str> = r.cis.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["worker-1", "worker-2"]);
    assert!(r.cis[0].ok);
    assert_eq!(r.cis[1].unexpected[0].id, "4.2.1");
    assert_eq!(r.summary.cis_unexpected_fail, 1);
    let md = render_markdown(&r).unwrap();
    assert!(md.contains("| worker-2 | ✗ unexpected fail |"), "{md}");
}

#[test]
fn bad_cis_input_is_located() {
    let e = cis::parse_cis("{\n  \"benchmark\": 3\n}", "x.json").unwrap_err();
    assert!(e.position().starts_with("x.json:2:"), "{}", e.position());
    let e = cis::parse_cis("[1]", "y.json").unwrap_err();
    assert_eq!(e.position(), "y.json#");
    let e = cis::parse_cis("{ nope", "z.json").unwrap_err();
    assert_eq!(e.position(), "z.json:1:3");
}

#[test]
fn lab_results_mark_disagreements_and_required_probes_that_fail() {
    let text = r#"{"probes": [
      {"flow": "workload-to-mgmt", "src": "198.18.20.1", "dst": "198.18.10.1", "proto": "tcp", "port": 6443,
       "kernel": "accepted", "predicted": "accepted", "required": true},
      {"flow": "avi-nodeport", "src": "198.18.30.1", "dst": "198.18.20.1", "proto": "tcp", "port": 32000,
       "kernel": false, "predicted": "blocked", "required": true},
      {"src": "198.18.1.10", "dst": "198.18.1.20", "proto": "tcp", "port": 8080,
       "kernel": "accepted", "predicted": "blocked", "required": false}
    ]}"#;
    let l = lab::parse_lab(text, "lab.json").unwrap();
    let r = report_with(vec![], Some(l));
    let kinds: Vec<&str> = r.lab.iter().map(|p| p.kind.key.as_str()).collect();
    assert_eq!(kinds, vec!["ok", "blocked", "blocked"]);
    assert_eq!(r.summary.lab_mismatches, 1);
    let e = lab::parse_lab(r#"[{"kernel": "maybe"}]"#, "lab.json").unwrap_err();
    assert_eq!(e.position(), "lab.json#/0/kernel");
}

#[test]
fn without_a_ruleset_the_matrix_shows_required_cells_unchecked() {
    let r = report_with(vec![], None);
    assert!(!r.summary.checked);
    assert!(r.flows.iter().all(|f| f.kind.key == "required"));
    let html = render_html(&r).unwrap();
    assert!(html.contains("none given: flows are listed, not checked"));
    assert!(!html.contains("id=\"excess\""));
}

/// A node result of the current scanner: 1.2.6 is a stale profile entry
/// (fixed), 4.2.10 could not be assessed, and the waiver for 1.1.12 expired.
const NEWER_NODE_JSON: &str = r#"{
  "benchmark": "cis-1.6", "profile": "tkg-1.5",
  "node": {"name": "cp-1", "roles": ["control-plane"], "kubernetes_version": "1.22.5"},
  "checks": [
    {"id": "1.2.6", "title": "kubelet certificate authority", "status": "pass", "expected": false,
     "fixed": true, "actual": "/etc/kubernetes/pki/ca.crt"},
    {"id": "4.2.10", "title": "kubelet TLS cert", "status": "not-assessed", "expected": false,
     "fixed": false, "expected_value": "--tls-cert-file set", "remediation": "Set the flag."},
    {"id": "1.2.21", "title": "profiling", "status": "fail", "expected": true, "fixed": false},
    {"id": "4.2.2", "status": "pass", "expected": false, "fixed": false}
  ],
  "expired_waivers": [{"id": "1.1.12", "owner": "etcd-team", "expires": "2026-01-31",
                       "reason": "etcd data dir owner pending"}],
  "summary": {}
}"#;

#[test]
fn not_assessed_is_counted_on_its_own_and_never_as_an_unexpected_failure() {
    let c = cis::parse_cis(NEWER_NODE_JSON, "cp-1.json").unwrap();
    let r = report_with(vec![c], None);
    let n = &r.cis[0];
    assert_eq!(n.counts.not_assessed, 1);
    assert_eq!(n.counts.unexpected_fail, 0);
    assert_eq!(n.counts.expected_fail, 1);
    assert_eq!(n.not_assessed[0].id, "4.2.10");
    assert!(n.unexpected.is_empty());
    assert_eq!(r.summary.cis_not_assessed, 1);
    assert_eq!(r.summary.cis_unexpected_fail, 0);
    let html = render_html(&r).unwrap();
    assert!(html.contains("data-cis=\"not-assessed\""), "{html}");
    assert!(html.contains("not assessed</span> 4.2.10"), "{html}");
    let md = render_markdown(&r).unwrap();
    assert!(md.contains("1 check not assessed on cp-1"), "{md}");
    assert!(
        md.contains("| 4.2.10 kubelet TLS cert | --tls-cert-file set |"),
        "{md}"
    );
}

#[test]
fn a_fixed_check_is_shown_as_a_stale_profile_entry_and_counted_as_a_pass() {
    let c = cis::parse_cis(NEWER_NODE_JSON, "cp-1.json").unwrap();
    let r = report_with(vec![c], None);
    let n = &r.cis[0];
    assert_eq!((n.counts.pass, n.counts.fixed), (2, 1));
    assert_eq!(n.fixed[0].id, "1.2.6");
    assert_eq!(n.fixed[0].covered_by.as_deref(), Some("profile tkg-1.5"));
    assert_eq!(r.summary.cis_fixed, 1);
    let html = render_html(&r).unwrap();
    assert!(
        html.contains("1 fixed check: stale profile entry"),
        "{html}"
    );
    let md = render_markdown(&r).unwrap();
    assert!(
        md.contains("1 fixed check on cp-1 (stale profile entry)"),
        "{md}"
    );
}

#[test]
fn an_expired_waiver_fails_the_node_and_names_its_owner() {
    let c = cis::parse_cis(NEWER_NODE_JSON, "cp-1.json").unwrap();
    let r = report_with(vec![c], None);
    let n = &r.cis[0];
    assert!(!n.ok);
    assert_eq!(n.kind.key, "expired_waiver");
    assert_eq!(n.expired_waivers[0].owner, "etcd-team");
    assert_eq!(r.summary.cis_expired_waivers, 1);
    assert_eq!(r.summary.cis_nodes_failing, 1);
    assert!(!r.summary.all_ok);
    let html = render_html(&r).unwrap();
    assert!(html.contains("data-cis=\"expired-waivers\""), "{html}");
    assert!(html.contains("1 expired CIS waiver"), "{html}");
    let md = render_markdown(&r).unwrap();
    assert!(
        md.contains("| 1.1.12 | etcd-team | 2026-01-31 | etcd data dir owner pending |"),
        "{md}"
    );
    assert!(md.contains("| cp-1 | ⊘ expired waiver |"), "{md}");
}

#[test]
fn a_fleet_node_with_an_expired_waiver_fails_and_shows_its_new_counts() {
    let mut v: serde_json::Value = serde_json::from_str(include_str!("data/fleet.json")).unwrap();
    let w1 = &mut v["nodes"][0];
    w1["not_assessed"] = serde_json::json!(2);
    w1["fixed"] = serde_json::json!(1);
    w1["expired_waivers"] = serde_json::json!([{"id": "4.2.6", "owner": "platform",
        "expires": "2026-02-01", "reason": "vendor fix"}]);
    let c = cis::parse_cis(&v.to_string(), "fleet.json").unwrap();
    let r = report_with(vec![c], None);
    let n = &r.cis[0];
    assert_eq!(n.name, "worker-1");
    assert_eq!((n.counts.not_assessed, n.counts.fixed), (2, 1));
    assert!(!n.ok);
    assert_eq!(n.kind.key, "expired_waiver");
    assert_eq!(r.summary.cis_nodes_failing, 2);
    let md = render_markdown(&r).unwrap();
    assert!(
        md.contains("| 4.2.6 | platform | 2026-02-01 | vendor fix |"),
        "{md}"
    );
}
