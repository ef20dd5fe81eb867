//! Golden tests: `verify` and `diff` reports on hand-written rulesets against
//! the embedded example site.

use ringfence_analysis::diff::diff;
use ringfence_analysis::verify::{verify, Status};
use ringfence_model::{Hook, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn load(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn verify_report_on_hand_written_site_firewall() {
    let rs = load("site-fw.rules", include_str!("data/site-fw.rules"));
    let site = ringfence_site::example_site().resolve();
    let report = verify(&rs, &site, Hook::Forward);
    // The deliberate mistakes are all found.
    let avi = report
        .flows
        .iter()
        .find(|f| f.id == "avi-nodeport")
        .unwrap();
    assert_eq!(avi.status, Status::Partial);
    let ex = avi.blocked_example.as_ref().unwrap();
    assert!(
        ex.dport >= 32000,
        "the example must be a blocked port: {ex:?}"
    );
    assert!(report.excess.iter().any(|e| e.ports == "8080"));
    assert_eq!(report.shadowed.len(), 1);
    assert!(report.default_deny);
    assert!(!report.summary.ok);
    insta::assert_json_snapshot!(report);
}

#[test]
fn verify_is_clean_on_a_firewall_that_opens_exactly_the_flows() {
    let rs = load("exact.rules", include_str!("data/exact.rules"));
    let site = ringfence_site::example_site().resolve();
    let report = verify(&rs, &site, Hook::Forward);
    for f in &report.flows {
        assert_eq!(f.status, Status::Allowed, "{}", f.id);
        assert_eq!(f.replies, Status::Allowed, "{}", f.id);
    }
    assert!(report.excess.is_empty(), "{:?}", report.excess);
    assert!(report.summary.ok);
}

#[test]
fn replies_fail_without_an_established_accept() {
    let text = include_str!("data/exact.rules").replace(
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
        "",
    );
    let rs = load("nostate.rules", &text);
    let site = ringfence_site::example_site().resolve();
    let report = verify(&rs, &site, Hook::Forward);
    let f = report.flows.iter().find(|f| f.id == "dhcp").unwrap();
    assert_eq!(f.status, Status::Allowed);
    // Replies go from the DHCP server to any address; only those that happen to
    // hit another accept rule (to the DHCP server itself, port 67) pass.
    assert_eq!(f.replies, Status::Partial);
    // Replies from Harbor to the jumpbox's SSH port are accepted by the SSH rule, the rest not.
    let f = report.flows.iter().find(|f| f.id == "to-harbor").unwrap();
    assert_eq!(f.replies, Status::Partial);
    assert!(!report.summary.ok);
}

#[test]
fn diff_reports_newly_allowed_and_blocked_regions_and_flow_changes() {
    let old = load("site-fw.rules", include_str!("data/site-fw.rules"));
    let new_text = include_str!("data/site-fw.rules")
        .replace("--dport 30000:31999", "--dport 30000:32767")
        .replace("-m multiport --dports 443,8080", "-m tcp --dport 443");
    let new = load("site-fw-new.rules", &new_text);
    let site = ringfence_site::example_site().resolve();
    let d = diff(&old, &new, Hook::Forward, Some(&site));
    assert!(d.complete);
    assert_eq!(d.newly_allowed.len(), 1, "{:?}", d.newly_allowed);
    assert_eq!(d.newly_allowed[0].ports, "32000-32767");
    assert_eq!(d.newly_blocked.len(), 1, "{:?}", d.newly_blocked);
    assert_eq!(d.newly_blocked[0].ports, "8080");
    assert_eq!(d.flows.len(), 1);
    assert_eq!(d.flows[0].id, "avi-nodeport");
    assert_eq!(d.flows[0].new, Status::Allowed);
    insta::assert_json_snapshot!(d);
}
