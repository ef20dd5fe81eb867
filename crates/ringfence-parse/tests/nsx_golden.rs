//! NSX DFW exports (hand-written with the Policy API's field names) parse into
//! the expected model; bad exports give pointed errors.

mod nft_support;

use ringfence_diag::Locus;
use ringfence_model::{Action, Policy};
use ringfence_parse::nsx;

fn load(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/nsx/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn hierarchical_infra_export_parses_in_category_and_sequence_order() {
    let rs = nsx::parse(&load("infra.json"), "infra.json").unwrap_or_else(|e| panic!("{e}"));
    let base = rs.chains[0].base.as_ref().unwrap();
    assert_eq!(
        base.policy,
        Policy::Accept,
        "NSX's implicit default is allow"
    );
    insta::assert_snapshot!(nft_support::render(&rs));
}

#[test]
fn flat_results_list_parses_like_the_hierarchy() {
    let rs = nsx::parse(&load("flat.json"), "flat.json").unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!(nft_support::render(&rs));
}

#[test]
fn service_list_is_split_into_rules_sharing_one_path() {
    let rs = nsx::parse(&load("infra.json"), "infra.json").unwrap();
    let api: Vec<_> = rs.chains[0]
        .rules
        .iter()
        .filter(|r| r.origin.to_string().ends_with("/apps/rules/api"))
        .collect();
    // k8s-api has two entries, HTTPS one, the inline entry one.
    assert_eq!(api.len(), 4);
    assert!(api.iter().all(|r| r.action == Action::Accept));
}

fn errors(text: &str) -> Vec<ringfence_diag::InputError> {
    nsx::parse(text, "x.json").expect_err("must fail").0
}

fn one_rule(rule: &str, extra: &str) -> String {
    format!(
        r#"[{{"resource_type": "SecurityPolicy", "id": "p", "category": "Application", "rules": [{rule}]}}{extra}]"#
    )
}

#[test]
fn group_cycle_is_an_error_naming_the_cycle() {
    let text = one_rule(
        r#"{"resource_type": "Rule", "id": "r", "action": "ALLOW", "source_groups": ["/infra/domains/default/groups/a"]}"#,
        r#", {"resource_type": "Group", "id": "a", "expression": [{"resource_type": "PathExpression", "paths": ["/infra/domains/default/groups/b"]}]},
           {"resource_type": "Group", "id": "b", "expression": [{"resource_type": "PathExpression", "paths": ["/infra/domains/default/groups/a"]}]}"#,
    );
    let e = errors(&text);
    assert!(e[0].message.contains("cycle"), "{}", e[0].message);
    assert!(e[0].message.contains(
        "groups/a -> /infra/domains/default/groups/b -> /infra/domains/default/groups/a"
    ));
}

#[test]
fn unknown_group_is_an_error_at_the_reference_with_suggestion() {
    let text = one_rule(
        r#"{"resource_type": "Rule", "id": "r", "action": "ALLOW", "destination_groups": ["/infra/domains/default/groups/wbe"]}"#,
        r#", {"resource_type": "Group", "id": "web", "expression": []}"#,
    );
    let e = errors(&text);
    assert_eq!(
        e[0].locus,
        Locus::Pointer("/0/rules/0/destination_groups/0".into())
    );
    assert_eq!(
        e[0].help.as_deref(),
        Some("did you mean /infra/domains/default/groups/web?")
    );
}

#[test]
fn bad_port_and_bad_action_are_reported_with_pointers() {
    let text = one_rule(
        r#"{"resource_type": "Rule", "id": "r", "action": "PERMIT", "service_entries": [{"resource_type": "L4PortSetServiceEntry", "l4_protocol": "TCP", "destination_ports": ["80-70"]}]},
           {"resource_type": "Rule", "id": "s", "action": "ALLOW", "service_entries": [{"resource_type": "L4PortSetServiceEntry", "l4_protocol": "TCP", "destination_ports": ["99999"]}]}"#,
        "",
    );
    let e = errors(&text);
    let loci: Vec<_> = e.iter().map(|e| e.position()).collect();
    assert!(
        loci.contains(&"x.json#/0/rules/0/action".to_string()),
        "{loci:?}"
    );
    assert!(
        loci.contains(&"x.json#/0/rules/1/service_entries/0/destination_ports/0".to_string()),
        "{loci:?}"
    );
}

#[test]
fn unknown_category_suggests_the_closest() {
    let e = errors(
        r#"[{"resource_type": "SecurityPolicy", "id": "p", "category": "Aplication", "rules": []}]"#,
    );
    assert_eq!(e[0].help.as_deref(), Some("did you mean `Application`?"));
}

#[test]
fn invalid_json_and_non_nsx_json_are_errors() {
    let e = errors("[{\"resource_type\": }]");
    assert!(matches!(e[0].locus, Locus::LineColumn { line: 1, .. }));
    let e = errors(r#"{"nftables": []}"#);
    assert_eq!(e[0].locus, Locus::Whole);
}

#[test]
fn child_resource_reference_domains_are_walked_with_their_id() {
    let text = r#"{"resource_type": "Infra", "children": [
      {"resource_type": "ChildResourceReference", "id": "prod", "target_type": "Domain", "children": [
        {"resource_type": "ChildGroup", "Group": {"resource_type": "Group", "id": "g",
          "expression": [{"resource_type": "IPAddressExpression", "ip_addresses": ["198.18.7.0/24"]}]}},
        {"resource_type": "ChildSecurityPolicy", "SecurityPolicy": {"resource_type": "SecurityPolicy", "id": "p", "category": "Application",
          "children": [{"resource_type": "ChildRule", "Rule": {"resource_type": "Rule", "id": "r", "action": "DROP",
            "source_groups": ["/infra/domains/prod/groups/g"], "destination_groups": ["ANY"], "services": ["ANY"]}}]}}
      ]}
    ]}"#;
    let rs = nsx::parse(text, "ref.json").unwrap_or_else(|e| panic!("{e}"));
    let r = rs.chains[0]
        .rules
        .iter()
        .find(|r| r.action == Action::Drop)
        .expect("the rule under the referenced domain");
    assert_eq!(
        r.origin.to_string(),
        "/infra/domains/prod/security-policies/p/rules/r"
    );
    assert!(r.matches.src.contains("198.18.7.9".parse().unwrap()));
    assert!(!r.matches.src.contains("198.18.8.9".parse().unwrap()));
}
